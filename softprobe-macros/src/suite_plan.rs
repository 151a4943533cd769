//! The part of a `*.suite.yaml` the macro reads: which case files its `cases` name, under
//! which test names, and which are skipped, listed by `softprobe_suite_yaml` exactly as the
//! runtime lists them when the tests run. The rest of the suite (request, mocks, assertions,
//! hooks) is read at run time by `softprobe-runtime`.
//!
//! The macro never reads the environment (cargo would not rebuild the tests when a variable
//! changes). Each `${VAR}` stands for an unknown text while the macro reads the suite: a
//! reference anywhere else is left to the run time, and when `cases` itself uses one, the
//! files cannot be known when the test compiles, so the suite is [`Listing::AtRunTime`].

use std::path::Path;

use softprobe_suite_yaml::cases::{self, Entry, GlobProblem, Listed};
use softprobe_suite_yaml::document::{self, Node};
use softprobe_suite_yaml::vars;

/// What every `${VAR}` reads as while the macro lists the suite.
const UNRESOLVED: &str = "__softprobe_variable_set_at_run_time__";

/// The cases of a suite, as far as the macro can know them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Listing {
    /// Every case, in the suite's order.
    Cases(Vec<Listed>),
    /// `cases` depends on a variable: the generated test lists and runs them at run time.
    AtRunTime,
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

/// Whether what decides the listing (`cases` itself, or an entry's glob, `path`, `name`,
/// `only`, `skip`) uses a variable; `overrides` are read at run time anyway.
fn lists_with_variables(cases: &Node) -> bool {
    let uses = |v: Option<&Node>| match v {
        Some(Node::String(s)) => s.contains(UNRESOLVED),
        _ => false,
    };
    let entry = |v: &Node| match v {
        Node::Map(_) => ["path", "name", "only", "skip"]
            .iter()
            .any(|k| uses(v.get(k))),
        other => uses(Some(other)),
    };
    match cases {
        Node::Seq(items) => items.iter().any(entry),
        other => uses(Some(other)),
    }
}

fn entry(value: &Node, path: &str, line: usize) -> Result<Entry, PlanError> {
    let map = match value {
        Node::String(g) => {
            return Ok(Entry {
                pattern: g.clone(),
                ..Entry::default()
            });
        }
        Node::Map(_) => value,
        _ => {
            return Err(at(
                line,
                format!("{path}: each entry is a glob or {{path, name, only, skip, overrides}}"),
            ));
        }
    };
    let Some(Node::String(pattern)) = map.get("path") else {
        return Err(at(
            line,
            format!("{path}: an entry needs `path`, a glob of case files"),
        ));
    };
    let wrong = |what: &str| Err(at(line, format!("cases {pattern:?}: {what}")));
    let name = match map.get("name") {
        None | Some(Node::Null) => None,
        Some(Node::String(n)) => Some(n.clone()),
        Some(_) => return wrong("`name` is text"),
    };
    let only = match map.get("only") {
        None | Some(Node::Null) => false,
        Some(Node::Bool(b)) => *b,
        Some(_) => return wrong("`only` is true or false"),
    };
    let skip = match map.get("skip") {
        None | Some(Node::Null) | Some(Node::Bool(false)) => None,
        Some(Node::Bool(true)) => Some(cases::SKIPPED.to_owned()),
        Some(Node::String(r)) => Some(r.clone()),
        Some(_) => return wrong("`skip` is true, false or a reason"),
    };
    Ok(Entry {
        pattern: pattern.clone(),
        name,
        only,
        skip,
    })
}

/// Reads the suite text and lists its cases, globbing relative to `base` (the suite's
/// directory).
pub(crate) fn plan(text: &str, base: &Path) -> Result<Listing, PlanError> {
    if text.trim().is_empty() {
        return Err(at(1, "empty suite file"));
    }
    let text =
        vars::expand(text, &|_| Some(UNRESOLVED.to_owned())).map_err(|e| at(e.line, e.message))?;
    let (root, locator) = document::read_yaml(&text).map_err(|e| at(e.position.line, e.message))?;
    let line = |path: &str| locator.locate(path).line;
    if !matches!(root, Node::Map(_)) {
        return Err(at(1, "a suite is a mapping with `name` and `cases`"));
    }
    let Some(listed) = root.get("cases") else {
        return Err(at(1, "$: missing field `cases`"));
    };
    if lists_with_variables(listed) {
        return Ok(Listing::AtRunTime);
    }
    let (entries, paths): (Vec<Entry>, Vec<String>) = match listed {
        Node::String(_) => (
            vec![entry(listed, "$.cases", line("$.cases"))?],
            vec!["$.cases".to_owned()],
        ),
        Node::Seq(list) => list
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let path = format!("$.cases[{i}]");
                entry(v, &path, line(&path)).map(|e| (e, path))
            })
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .unzip(),
        _ => {
            return Err(at(
                line("$.cases"),
                "$.cases: a glob, or a list of globs and {path, ...} entries",
            ));
        }
    };
    cases::list(&entries, base)
        .map(Listing::Cases)
        .map_err(|err| {
            let pattern = &entries[err.entry].pattern;
            let message = match err.problem {
                GlobProblem::NoMatch(_) => format!(
                    "cases {pattern:?} matches no file (globs are relative to the suite's directory)"
                ),
                GlobProblem::Bad(e) => format!("cases {pattern:?}: bad glob: {e}"),
            };
            at(line(&paths[err.entry]), message)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_like_the_runtime_and_leaves_variables_to_the_run() {
        let dir = std::env::temp_dir().join(format!("sp-plan-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("c")).unwrap();
        for f in ["b.case.json", "a.case.json"] {
            std::fs::write(dir.join("c").join(f), "{}").unwrap();
        }
        let names = |text: &str| {
            plan(text, &dir).map(|l| match l {
                Listing::Cases(c) => c.into_iter().map(|c| (c.name, c.skip)).collect(),
                Listing::AtRunTime => vec![("at run time".to_owned(), None)],
            })
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
        // A variable outside `cases` is not the macro's business; inside, the run lists.
        assert_eq!(
            names("name: s\nrequest: {headers: {x-token: \"${TOKEN}\"}}\ncases: [c/a.case.json]\n")
                .unwrap(),
            [("a".into(), None)]
        );
        assert_eq!(
            names("name: s\ncases:\n- {path: \"${DIR:-c}/*.case.json\", only: true}\n").unwrap(),
            [("at run time".into(), None)]
        );
        assert_eq!(
            names("name: s\ncases:\n- {path: c/a.case.json, overrides: {request: {headers: {x: \"${X}\"}}}}\n")
                .unwrap(),
            [("a".into(), None)]
        );
        let err = names("name: s\ncases:\n- c/a.case.json\n- c/zzz*.json\n").unwrap_err();
        assert_eq!(err.line, 4, "{err:?}");
        assert_eq!(
            err.message,
            "cases \"c/zzz*.json\" matches no file (globs are relative to the suite's directory)"
        );
        let err = names("name: s\ncases: [\n").unwrap_err();
        assert!(err.line >= 2, "{err:?}");
        let err = names("name: s\ncases:\n- c/a.case.json\n- {path: c/b.case.json, only: yes}\n")
            .unwrap_err();
        assert_eq!(
            (err.line, err.message.as_str()),
            (4, "cases \"c/b.case.json\": `only` is true or false")
        );
        let err = names("name: s\ncases: ${1DIR}/*.json\n").unwrap_err();
        assert_eq!(err.line, 2, "{err:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
