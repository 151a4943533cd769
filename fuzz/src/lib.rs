//! Checks shared by the fuzz targets: what every validation report and every parse error
//! must look like, whatever the input. A target panics (and libFuzzer saves the input) when
//! one of these does not hold.

use std::path::{Path, PathBuf};

use softprobe_runtime::case::validate::Report;

/// Asserts the shape every report must have: each finding located at a line and column of
/// at least 1, with a JSON path starting at `$` and a message that says something.
pub fn check_report(report: &Report) {
    for f in &report.findings {
        assert!(f.line >= 1 && f.column >= 1, "unlocated finding: {f:?}");
        assert!(
            f.json_path.starts_with('$'),
            "finding without a path: {f:?}"
        );
        assert!(
            !f.message.trim().is_empty(),
            "finding without a message: {f:?}"
        );
    }
    // Rendering must not panic either; it is what the CLI prints.
    let _ = report.to_string();
}

/// The repository root, for targets that start from a fixture.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("fuzz/ sits in the repository")
        .to_owned()
}

/// Bytes of a file under `fixtures/`.
pub fn fixture(relative: &str) -> Vec<u8> {
    let path = repo_root().join("fixtures").join(relative);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
