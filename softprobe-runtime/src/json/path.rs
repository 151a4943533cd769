//! Path patterns: which fields of a JSON document a test ignores or insists on.
//!
//! The syntax is the singular JSONPath of [`crate::rules::jsonpath`] (`$`, `.name`,
//! `['name']`, `[index]`) plus one wildcard step, `[*]` (also written `[]`), that matches
//! every member or element at its depth. The harness writes body fields as `.body.items[].at`;
//! [`PathPattern::parse_body`] reads that form.

use std::fmt;

use serde_json::Value;

/// One step of a concrete path, as the diff walks a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step<'a> {
    /// An object member.
    Key(&'a str),
    /// An array element.
    Index(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Matcher {
    Key(String),
    Index(usize),
    Any,
}

/// A parsed path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    text: String,
    steps: Vec<Matcher>,
}

impl PathPattern {
    /// Parses `$.a.b[0]['c d'][*]`: a pattern rooted at `$`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let rest = text
            .trim()
            .strip_prefix('$')
            .ok_or_else(|| format!("{text:?}: a JSON path starts with `$`"))?;
        Ok(PathPattern {
            text: text.trim().to_owned(),
            steps: parse_steps(rest).map_err(|e| format!("{text:?}: {e}"))?,
        })
    }

    /// Parses a body field as tests write it: `.body.items[].at` (or `.items[].at`, or a
    /// `$`-rooted path). `.body` alone is the whole body.
    pub fn parse_body(text: &str) -> Result<Self, String> {
        let t = text.trim();
        if t.starts_with('$') {
            return Self::parse(t);
        }
        let rest = match t.strip_prefix(".body") {
            Some(r) if r.is_empty() || r.starts_with(['.', '[']) => r,
            _ => t,
        };
        if !rest.is_empty() && !rest.starts_with(['.', '[']) {
            return Err(format!(
                "{text:?}: a body field starts with `.body`, `.` or `$` (for example .body.id)"
            ));
        }
        Ok(PathPattern {
            text: t.to_owned(),
            steps: parse_steps(rest).map_err(|e| format!("{text:?}: {e}"))?,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the concrete path `steps` is one this pattern names.
    pub fn matches(&self, steps: &[Step<'_>]) -> bool {
        self.steps.len() == steps.len()
            && self.steps.iter().zip(steps).all(|(m, s)| match (m, s) {
                (Matcher::Any, _) => true,
                (Matcher::Key(k), Step::Key(s)) => k == s,
                (Matcher::Index(i), Step::Index(s)) => i == s,
                _ => false,
            })
    }

    /// Whether the pattern names `steps` or a field inside it.
    pub fn covers(&self, steps: &[Step<'_>]) -> bool {
        self.steps.len() <= steps.len() && self.matches(&steps[..self.steps.len()])
    }
}

impl PathPattern {
    /// Replaces every value this pattern names in `doc` with `with`.
    pub fn replace_in(&self, doc: &mut Value, with: &Value) {
        fn walk(steps: &[Matcher], node: &mut Value, with: &Value) {
            let Some((first, rest)) = steps.split_first() else {
                *node = with.clone();
                return;
            };
            match (first, node) {
                (Matcher::Key(k), Value::Object(map)) => {
                    if let Some(v) = map.get_mut(k) {
                        walk(rest, v, with);
                    }
                }
                (Matcher::Index(i), Value::Array(items)) => {
                    if let Some(v) = items.get_mut(*i) {
                        walk(rest, v, with);
                    }
                }
                (Matcher::Any, Value::Array(items)) => {
                    items.iter_mut().for_each(|v| walk(rest, v, with));
                }
                (Matcher::Any, Value::Object(map)) => {
                    map.values_mut().for_each(|v| walk(rest, v, with));
                }
                _ => {}
            }
        }
        walk(&self.steps, doc, with);
    }
}

impl fmt::Display for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Renders a concrete path as JSONPath: `$`, then `.name` / `['odd name']` / `[3]`.
pub fn render(steps: &[Step<'_>]) -> String {
    let mut out = String::from("$");
    for step in steps {
        match step {
            Step::Key(k) => crate::rules::jsonpath::push_member(&mut out, k),
            Step::Index(i) => {
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
        }
    }
    out
}

fn parse_steps(mut rest: &str) -> Result<Vec<Matcher>, String> {
    let mut steps = Vec::new();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            if r.starts_with('.') {
                return Err("descendant steps (`..`) are not supported".into());
            }
            let end = r.find(['.', '[']).unwrap_or(r.len());
            match &r[..end] {
                "" => return Err("an empty member name after `.`".into()),
                "*" => steps.push(Matcher::Any),
                name => steps.push(Matcher::Key(name.to_owned())),
            }
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let (inner, after) = bracket(r)?;
            steps.push(match inner.trim() {
                "" | "*" => Matcher::Any,
                quoted if quoted.starts_with(['\'', '"']) => Matcher::Key(unquote(quoted)?),
                n => Matcher::Index(
                    n.parse()
                        .map_err(|_| format!("`[{n}]` is neither an index nor a quoted name"))?,
                ),
            });
            rest = after;
        } else {
            return Err(format!("unexpected {rest:?}; steps start with `.` or `[`"));
        }
    }
    Ok(steps)
}

/// Splits `...]rest` at the closing bracket, skipping brackets inside quotes.
fn bracket(r: &str) -> Result<(&str, &str), String> {
    let mut quote = None;
    let mut escaped = false;
    for (i, c) in r.char_indices() {
        match (quote, c) {
            (Some(_), _) if escaped => escaped = false,
            (Some(_), '\\') => escaped = true,
            (Some(q), c) if c == q => quote = None,
            (None, '\'' | '"') => quote = Some(c),
            (None, ']') => return Ok((&r[..i], &r[i + 1..])),
            _ => {}
        }
    }
    Err("a `[` without its `]`".into())
}

fn unquote(q: &str) -> Result<String, String> {
    let quote = q.chars().next().unwrap_or('\'');
    let body = q
        .strip_prefix(quote)
        .and_then(|s| s.strip_suffix(quote))
        .ok_or_else(|| format!("{q} is not a quoted name"))?;
    let mut out = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.extend(chars.next());
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_concrete_paths_with_wildcards() {
        let p = PathPattern::parse_body(".body.items[].at").unwrap();
        assert!(p.matches(&[Step::Key("items"), Step::Index(3), Step::Key("at")]));
        assert!(!p.matches(&[Step::Key("items"), Step::Index(3)]));
        let q = PathPattern::parse("$['first name'][0]").unwrap();
        assert!(q.matches(&[Step::Key("first name"), Step::Index(0)]));
        assert!(q.covers(&[Step::Key("first name"), Step::Index(0), Step::Key("x")]));
        assert!(PathPattern::parse_body(".body").unwrap().matches(&[]));
        assert!(PathPattern::parse("a.b").is_err());
        assert!(PathPattern::parse("$..a").is_err());
        assert!(PathPattern::parse("$[x]").is_err());
        assert!(PathPattern::parse_body("body.id").is_err());
    }

    #[test]
    fn rendering_quotes_odd_names() {
        assert_eq!(
            render(&[Step::Key("a"), Step::Index(2), Step::Key("new name")]),
            "$.a[2]['new name']"
        );
    }
}
