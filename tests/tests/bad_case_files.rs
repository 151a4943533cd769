//! `softprobe::Run` (what `#[softprobe::case]` expands to) on every broken case file of
//! `fixtures/invalid/`: the run fails before the test body starts, and the failure names the
//! file and the line of the mistake, so the person fixing it knows where to look.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

fn invalid_cases() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/invalid");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".case.json"))
        .collect();
    out.sort();
    assert!(out.len() >= 20, "only {} broken case files", out.len());
    out
}

#[test]
fn a_broken_case_file_fails_the_run_naming_the_file_and_the_line() {
    for path in invalid_cases() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let expected = std::fs::read_to_string(format!("{}.expected", path.display())).unwrap();
        let (code, json_path) = expected.trim().split_once(' ').unwrap();
        let body_ran = AtomicBool::new(false);
        let outcome = softprobe::Run::new(&path)
            .name(format!("bad_case_files::{name}"))
            .run(|| body_ran.store(true, Ordering::SeqCst));
        let failure = outcome.expect_err(&format!("{name}: the run accepted a broken case file"));
        let report = failure.report();
        assert!(
            !body_ran.load(Ordering::SeqCst),
            "{name}: the test body ran on a broken case"
        );
        // `path:LINE:COL: error[CODE]: $.json.path: message`, as `softprobe validate` prints.
        let wanted = format!("error[{code}]: {json_path}: ");
        let line = report
            .lines()
            .find(|l| l.contains(&wanted))
            .unwrap_or_else(|| panic!("{name}: no `{wanted}` in the report:\n{report}"));
        let shown = path.display().to_string();
        let rest = line
            .split_once(&format!("{shown}:"))
            .unwrap_or_else(|| panic!("{name}: the report does not name {shown}:\n{report}"))
            .1;
        let line_no: usize =
            rest.split(':').next().unwrap().parse().unwrap_or_else(|_| {
                panic!("{name}: no line number after the file name:\n{report}")
            });
        assert!(line_no >= 1, "{report}");
    }
}
