//! `suite diff`: which hops were added or removed between two sets of case files (say, the
//! committed cases and a fresh capture), matched by case file name and compared as
//! `direction method host path` lines, repeated hops counted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::case::Case;

/// The hops of one case that changed.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CaseDiff {
    /// The case file name.
    pub case: String,
    /// Hops only in the current set.
    pub added: Vec<String>,
    /// Hops only in the baseline.
    pub removed: Vec<String>,
}

/// The difference between two sets of cases.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SetDiff {
    /// Case files only in the current set.
    pub added_cases: Vec<String>,
    /// Case files only in the baseline.
    pub removed_cases: Vec<String>,
    /// Cases in both whose hops differ.
    pub changed: Vec<CaseDiff>,
}

impl SetDiff {
    /// True when nothing differs.
    pub fn is_empty(&self) -> bool {
        self.added_cases.is_empty() && self.removed_cases.is_empty() && self.changed.is_empty()
    }
}

/// Files matched by a glob, keyed by file name.
pub fn files(pattern: &str) -> Result<BTreeMap<String, PathBuf>, String> {
    let mut out = BTreeMap::new();
    let paths = glob::glob(pattern).map_err(|e| format!("bad glob {pattern:?}: {e}"))?;
    for p in paths.filter_map(Result::ok).filter(|p| p.is_file()) {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        out.insert(name, p);
    }
    Ok(out)
}

fn hops(path: &Path) -> Result<Vec<String>, String> {
    let case = Case::read(path).map_err(|e| e.to_string())?;
    let mut out: Vec<String> = case
        .exchanges_named(&path.display().to_string())
        .map_err(|e| e.to_string())?
        .iter()
        .map(|e| format!("{} {} {}{}", e.direction, e.method, e.host, e.path))
        .collect();
    out.sort();
    Ok(out)
}

/// Compares two sets of case files.
pub fn compare(baseline: &str, current: &str) -> Result<SetDiff, String> {
    let (base, cur) = (files(baseline)?, files(current)?);
    let mut diff = SetDiff::default();
    for name in base.keys().filter(|k| !cur.contains_key(*k)) {
        diff.removed_cases.push(name.clone());
    }
    for name in cur.keys().filter(|k| !base.contains_key(*k)) {
        diff.added_cases.push(name.clone());
    }
    for (name, b) in &base {
        let Some(c) = cur.get(name) else { continue };
        let (mut old, new) = (hops(b)?, hops(c)?);
        let mut added = Vec::new();
        for h in new {
            match old.iter().position(|o| *o == h) {
                Some(i) => {
                    old.remove(i);
                }
                None => added.push(h),
            }
        }
        if !added.is_empty() || !old.is_empty() {
            diff.changed.push(CaseDiff {
                case: name.clone(),
                added,
                removed: old,
            });
        }
    }
    Ok(diff)
}
