//! The part of a `*.suite.yaml` the macro needs: which case files it names, under which test
//! names, and which are skipped. The rest of the suite (mocks, assertions, hooks) is read at
//! run time by `softprobe-runtime`, so this follows its planning rules exactly: `${VAR}`
//! expansion, globs relative to the suite file, `only`, `skip`, `name` and `name/stem`.

use std::path::{Path, PathBuf};

use crate::yaml::Value;

/// One case of the suite, in the suite's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PlannedCase {
    /// The name reports use: the entry's `name`, `name/stem` for a multi-file entry, or the
    /// file stem.
    pub(crate) name: String,
    /// The case file, as the glob returned it.
    pub(crate) path: PathBuf,
    /// Why it is skipped, when it is.
    pub(crate) skip: Option<String>,
}

/// A suite error: the line (1-based) it points at and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PlanError {
    pub(crate) line: usize,
    pub(crate) message: String,
}

fn at(line: usize, message: impl Into<String>) -> PlanError {
    PlanError {
        line,
        message: message.into(),
    }
}

fn is_var_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `${VAR}`, `${VAR:-default}` and `$$`, as the runtime expands them, from `lookup`.
pub(crate) fn expand(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, PlanError> {
    let mut out = String::with_capacity(text.len());
    for (i, line) in text.split_inclusive('\n').enumerate() {
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
                    .ok_or_else(|| at(i + 1, "`${` without a closing `}`"))?;
                let expr = &inner[..end];
                let (name, default) = match expr.split_once(":-") {
                    Some((n, d)) => (n, Some(d)),
                    None => (expr, None),
                };
                if !is_var_name(name) {
                    return Err(at(
                        i + 1,
                        format!("`${{{expr}}}`: {name:?} is not a variable name"),
                    ));
                }
                match (lookup(name).filter(|v| !v.is_empty()), default) {
                    (Some(v), _) => out.push_str(&v),
                    (None, Some(d)) => out.push_str(d),
                    (None, None) => {
                        return Err(at(
                            i + 1,
                            format!(
                                "variable {name} is not set when the test is compiled (set it, or write ${{{name}:-default}})"
                            ),
                        ));
                    }
                }
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

fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .map_or(1, |i| i + 1)
}

struct Entry {
    pattern: String,
    name: Option<String>,
    only: bool,
    skip: Option<String>,
}

fn entry(value: &Value, text: &str) -> Result<Entry, PlanError> {
    match value {
        Value::String(g) => Ok(Entry {
            pattern: g.clone(),
            name: None,
            only: false,
            skip: None,
        }),
        Value::Mapping(m) => {
            let get = |k: &str| m.get(Value::String(k.to_owned()));
            let pattern = match get("path") {
                Some(Value::String(p)) => p.clone(),
                _ => {
                    return Err(at(
                        line_of(text, "cases:"),
                        "$.cases: an entry needs `path`, a glob of case files",
                    ));
                }
            };
            let line = line_of(text, &pattern);
            let name = match get("name") {
                None | Some(Value::Null) => None,
                Some(Value::String(n)) => Some(n.clone()),
                Some(_) => return Err(at(line, format!("cases {pattern:?}: `name` is text"))),
            };
            let only = match get("only") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => {
                    return Err(at(
                        line,
                        format!("cases {pattern:?}: `only` is true or false"),
                    ));
                }
            };
            let skip = match get("skip") {
                None | Some(Value::Null) | Some(Value::Bool(false)) => None,
                Some(Value::Bool(true)) => Some("skipped in the suite".to_owned()),
                Some(Value::String(r)) => Some(r.clone()),
                Some(_) => {
                    return Err(at(
                        line,
                        format!("cases {pattern:?}: `skip` is true, false or a reason"),
                    ));
                }
            };
            Ok(Entry {
                pattern,
                name,
                only,
                skip,
            })
        }
        _ => Err(at(
            line_of(text, "cases:"),
            "$.cases: each entry is a glob or {path, name, only, skip, overrides}",
        )),
    }
}

/// Reads the suite text (already expanded) and lists its cases, globbing relative to
/// `base` (the suite's directory).
pub(crate) fn plan(text: &str, base: &Path) -> Result<Vec<PlannedCase>, PlanError> {
    if text.trim().is_empty() {
        return Err(at(1, "empty suite file"));
    }
    let doc = crate::yaml::from_str(text).map_err(|e| at(e.line, e.message))?;
    let Value::Mapping(root) = &doc else {
        return Err(at(1, "a suite is a mapping with `name` and `cases`"));
    };
    let entries: Vec<Entry> = match root.get(Value::String("cases".into())) {
        None => return Err(at(1, "$: missing field `cases`")),
        Some(Value::String(g)) => vec![entry(&Value::String(g.clone()), text)?],
        Some(Value::Sequence(list)) => list
            .iter()
            .map(|v| entry(v, text))
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(at(
                line_of(text, "cases:"),
                "$.cases: a glob, or a list of globs and {path, ...} entries",
            ));
        }
    };
    let any_only = entries.iter().any(|e| e.only);
    let mut out = Vec::new();
    for e in entries.iter().filter(|e| e.only || !any_only) {
        let line = line_of(text, &e.pattern);
        let full = if Path::new(&e.pattern).is_absolute() {
            PathBuf::from(&e.pattern)
        } else {
            base.join(&e.pattern)
        };
        let shown = full.to_string_lossy().into_owned();
        let mut files: Vec<PathBuf> = glob::glob(&shown)
            .map_err(|err| at(line, format!("cases {:?}: bad glob: {err}", e.pattern)))?
            .filter_map(Result::ok)
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(at(
                line,
                format!(
                    "cases {:?} matches no file (globs are relative to the suite's directory)",
                    e.pattern
                ),
            ));
        }
        let single = files.len() == 1;
        for f in files {
            let stem = f
                .file_name()
                .map(|n| {
                    n.to_string_lossy()
                        .trim_end_matches(".case.json")
                        .to_owned()
                })
                .unwrap_or_default();
            let name = match (&e.name, single) {
                (Some(n), true) => n.clone(),
                (Some(n), false) => format!("{n}/{stem}"),
                (None, _) => stem,
            };
            out.push(PlannedCase {
                name,
                path: f,
                skip: e.skip.clone(),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion_defaults_and_missing_variables() {
        let env = |n: &str| (n == "A").then(|| "x".to_owned());
        assert_eq!(expand("${A}/${B:-y} $$", &env).unwrap(), "x/y $");
        assert_eq!(expand("a\n${B}\n", &env).unwrap_err().line, 2);
    }

    #[test]
    fn plans_like_the_runtime() {
        let dir = std::env::temp_dir().join(format!("sp-plan-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("c")).unwrap();
        for f in ["b.case.json", "a.case.json"] {
            std::fs::write(dir.join("c").join(f), "{}").unwrap();
        }
        let names = |text: &str| {
            plan(text, &dir).map(|p| p.into_iter().map(|c| (c.name, c.skip)).collect::<Vec<_>>())
        };
        assert_eq!(
            names("name: s\ncases: c/*.case.json\n").unwrap(),
            [("a".into(), None), ("b".into(), None)]
        );
        assert_eq!(
            names("name: s\ncases:\n- c/a.case.json\n- {path: c/*.json, name: all, skip: later}\n")
                .unwrap()[1..],
            [
                ("all/a".into(), Some("later".into())),
                ("all/b".into(), Some("later".into()))
            ]
        );
        assert_eq!(
            names(
                "name: s\ncases:\n- c/a.case.json\n- {path: c/b.case.json, name: bee, only: true}\n"
            )
            .unwrap(),
            [("bee".into(), None)]
        );
        let err = names("name: s\ncases:\n- c/a.case.json\n- c/zzz*.json\n").unwrap_err();
        assert_eq!(err.line, 4, "{err:?}");
        let err = names("name: s\ncases: [\n").unwrap_err();
        assert!(err.line >= 2, "{err:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
