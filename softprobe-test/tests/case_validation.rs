//! The harness as a user builds it by default (no `schema-validation` feature, so no JSON
//! Schema engine unless another crate of the build turns it on) still refuses every broken
//! case file of `fixtures/invalid/` before the test body starts, naming the file and a line.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

fn invalid_cases() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/invalid");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".case.json"))
        .collect();
    out.sort();
    assert!(out.len() >= 20, "only {} broken case files", out.len());
    out
}

#[test]
fn every_broken_case_file_fails_the_run_before_the_body_naming_file_and_line() {
    let mut accepted = Vec::new();
    let mut unlocated = Vec::new();
    for path in invalid_cases() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let body_ran = AtomicBool::new(false);
        let outcome = softprobe::Run::new(&path)
            .name(format!("case_validation::{name}"))
            .run(|| body_ran.store(true, Ordering::SeqCst));
        let Err(failure) = outcome else {
            accepted.push(name);
            continue;
        };
        assert!(
            !body_ran.load(Ordering::SeqCst),
            "{name}: the test body ran on a broken case"
        );
        let report = failure.report();
        let shown = format!("{}:", path.display());
        let located = report.lines().any(|l| {
            l.split_once(&shown).is_some_and(|(_, rest)| {
                rest.split(':')
                    .next()
                    .is_some_and(|n| n.parse::<usize>().is_ok_and(|n| n >= 1))
            })
        });
        if !located {
            unlocated.push(format!("{name}:\n{report}"));
        }
    }
    assert!(
        unlocated.is_empty(),
        "no file:line in the failure of:\n{}",
        unlocated.join("\n")
    );
    assert!(
        accepted.is_empty(),
        "the harness accepted these broken case files: {accepted:?}"
    );
}
