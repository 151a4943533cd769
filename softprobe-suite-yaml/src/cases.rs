//! Which case files a suite's `cases` entries name: each entry's glob, relative to the
//! suite's directory, with the `glob` crate (the matcher the `#[softprobe::cases]` guard
//! uses too); `only`, `skip`, and the names reports use (`name`, `name/stem` for an entry
//! matching several files, else the file stem).

use std::path::{Path, PathBuf};

/// The reason reported for `skip: true`.
pub const SKIPPED: &str = "skipped in the suite";

/// One entry of `cases`, as written.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Entry {
    /// A case file or a glob.
    pub pattern: String,
    /// The name in reports.
    pub name: Option<String>,
    /// When any entry says `only: true`, only those entries run.
    pub only: bool,
    /// Why the entry is skipped, when it is (`skip: true` is [`SKIPPED`]).
    pub skip: Option<String>,
}

/// One case file of the suite, in the suite's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// The index of the entry that named it.
    pub entry: usize,
    /// The name reports use.
    pub name: String,
    /// The case file, as the glob returned it.
    pub path: PathBuf,
    /// Why it is skipped, when it is.
    pub skip: Option<String>,
}

/// An entry that names no file, or whose glob is malformed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListError {
    /// The index of the entry.
    pub entry: usize,
    /// What is wrong.
    pub problem: GlobProblem,
}

/// Why a glob names no case file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GlobProblem {
    /// The pattern is not a glob (the `glob` crate's message).
    Bad(String),
    /// No file matches the pattern, which was made absolute as shown.
    NoMatch(String),
}

impl std::fmt::Display for GlobProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GlobProblem::Bad(e) => write!(f, "bad glob: {e}"),
            GlobProblem::NoMatch(full) => write!(f, "matches no file (looked for {full})"),
        }
    }
}

/// The case files of `entries`, globbing relative to `base` (the suite's directory).
pub fn list(entries: &[Entry], base: &Path) -> Result<Vec<Listed>, ListError> {
    let any_only = entries.iter().any(|e| e.only);
    let mut out = Vec::new();
    for (index, e) in entries.iter().enumerate() {
        if any_only && !e.only {
            continue;
        }
        let files = glob_files(base, &e.pattern).map_err(|problem| ListError {
            entry: index,
            problem,
        })?;
        let single = files.len() == 1;
        for path in files {
            let stem = path
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
            out.push(Listed {
                entry: index,
                name,
                path,
                skip: e.skip.clone(),
            });
        }
    }
    Ok(out)
}

/// The files `pattern` (absolute, or relative to `base`) matches, sorted; an error when it
/// is malformed or matches nothing.
pub fn glob_files(base: &Path, pattern: &str) -> Result<Vec<PathBuf>, GlobProblem> {
    let full = if Path::new(pattern).is_absolute() {
        PathBuf::from(pattern)
    } else {
        base.join(pattern)
    };
    let full = full.to_string_lossy().into_owned();
    let files = matching(&full).map_err(GlobProblem::Bad)?;
    if files.is_empty() {
        return Err(GlobProblem::NoMatch(full));
    }
    Ok(files)
}

/// The files (not directories) an absolute glob matches, sorted, with the `glob` crate; `Err`
/// is the crate's message for a malformed pattern.
pub fn matching(pattern: &str) -> Result<Vec<PathBuf>, String> {
    let mut files: Vec<PathBuf> = glob::glob(pattern)
        .map_err(|e| e.to_string())?
        .filter_map(Result::ok)
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(pattern: &str) -> Entry {
        Entry {
            pattern: pattern.to_owned(),
            ..Entry::default()
        }
    }

    #[test]
    fn lists_names_skips_and_only() {
        let dir = std::env::temp_dir().join(format!("sp-suite-list-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("c")).unwrap();
        for f in ["b.case.json", "a.case.json"] {
            std::fs::write(dir.join("c").join(f), "{}").unwrap();
        }
        let names = |entries: &[Entry]| {
            list(entries, &dir).map(|l| {
                l.into_iter()
                    .map(|c| (c.entry, c.name, c.skip))
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(
            names(&[entry("c/*.case.json")]).unwrap(),
            [(0, "a".into(), None), (0, "b".into(), None)]
        );
        let all = Entry {
            name: Some("all".into()),
            skip: Some(SKIPPED.into()),
            ..entry("c/*.json")
        };
        assert_eq!(
            names(&[entry("c/a.case.json"), all]).unwrap()[1..],
            [
                (1, "all/a".into(), Some(SKIPPED.into())),
                (1, "all/b".into(), Some(SKIPPED.into()))
            ]
        );
        let bee = Entry {
            name: Some("bee".into()),
            only: true,
            ..entry("c/b.case.json")
        };
        assert_eq!(
            names(&[entry("c/a.case.json"), bee]).unwrap(),
            [(1, "bee".into(), None)]
        );
        let err = names(&[entry("c/a.case.json"), entry("c/zzz*.json")]).unwrap_err();
        assert_eq!(err.entry, 1);
        assert_eq!(
            err.problem.to_string(),
            format!(
                "matches no file (looked for {})",
                dir.join("c/zzz*.json").display()
            )
        );
        let err = names(&[entry("c/[.json")]).unwrap_err();
        assert!(matches!(err.problem, GlobProblem::Bad(_)), "{err:?}");
        assert!(err.problem.to_string().starts_with("bad glob: "), "{err:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
