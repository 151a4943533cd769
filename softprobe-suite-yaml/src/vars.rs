//! A suite's variables: `${VAR}`, `${VAR:-default}` (used when `VAR` is unset or empty) and
//! `$$` for a literal `$`, expanded in the text before it is read as YAML.

/// A reference that cannot be expanded, with its 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpandError {
    /// 1-based line of the reference.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for ExpandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ExpandError {}

/// A variable name: an ASCII letter or `_`, then letters, digits or `_`.
fn is_var_name(s: &str) -> bool {
    crate::path::is_identifier(s)
}

/// Expands every reference of `text` with `lookup` (an empty value counts as unset).
pub fn expand(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, ExpandError> {
    let mut out = String::with_capacity(text.len());
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let at = |message: String| ExpandError {
            line: i + 1,
            message,
        };
        let mut rest = line;
        while let Some(pos) = rest.find('$') {
            out.push_str(&rest[..pos]);
            let tail = &rest[pos..];
            if let Some(after) = tail.strip_prefix("$$") {
                out.push('$');
                rest = after;
            } else if let Some(inner) = tail.strip_prefix("${") {
                let end = inner
                    .find('}')
                    .ok_or_else(|| at("`${` without a closing `}`".to_owned()))?;
                let expr = &inner[..end];
                let (name, default) = match expr.split_once(":-") {
                    Some((n, d)) => (n, Some(d)),
                    None => (expr, None),
                };
                if !is_var_name(name) {
                    return Err(at(format!(
                        "`${{{expr}}}`: {name:?} is not a variable name"
                    )));
                }
                let value = match (lookup(name).filter(|v| !v.is_empty()), default) {
                    (Some(v), _) => v,
                    (None, Some(d)) => d.to_owned(),
                    (None, None) => {
                        return Err(at(format!(
                            "variable {name} is not set (set it, pass --env-file to `softprobe suite run`, or write ${{{name}:-default}})"
                        )));
                    }
                };
                if value.contains('\n') {
                    return Err(at(format!(
                        "variable {name} holds a newline; suites take one-line values"
                    )));
                }
                out.push_str(&value);
                rest = &inner[end + 1..];
            } else {
                out.push('$');
                rest = &tail[1..];
            }
        }
        out.push_str(rest);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_defaults_and_names_what_is_missing() {
        let env = |n: &str| (n == "A").then(|| "x".to_owned());
        assert_eq!(expand("${A}/${B:-y} $$ $5", &env).unwrap(), "x/y $ $5");
        let err = expand("a\n${B}\n", &env).unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.message.starts_with("variable B is not set"), "{err}");
        let err = expand("${1A}", &env).unwrap_err();
        assert_eq!(err.message, "`${1A}`: \"1A\" is not a variable name");
        assert!(expand("${A", &env).is_err());
    }
}
