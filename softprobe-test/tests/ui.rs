//! Compile-time behaviour of `#[softprobe::case]`: each misuse is a spanned error (one file per
//! mistake under `tests/ui/fail/`), and the accepted forms compile (`tests/ui/pass/`).
//!
//! trybuild compiles the cases as a crate of its own in `<target dir>/tests/trybuild/softprobe-test`,
//! and the attribute resolves file paths against that crate's manifest directory. The files the
//! cases name (`tests/ui/suites/` and the case files those suites list, `tests/cases/`) are copied
//! there first, so the cases name them with the same relative path wherever the target directory is (inside the repository, a shared
//! `CARGO_TARGET_DIR`, or a `build.target-dir` in the user's cargo configuration).

use std::path::{Path, PathBuf};

#[test]
fn ui() {
    for dir in ["tests/ui/suites", "tests/cases"] {
        copy_beside_trybuild_project(dir);
    }
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}

/// Copies the files of `dir` (relative to this crate) to the same relative place inside trybuild's
/// project directory.
fn copy_beside_trybuild_project(dir: &str) {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let project = target_dir()
        .join("tests/trybuild")
        .join(env!("CARGO_PKG_NAME"));
    let destination = project.join(dir);
    std::fs::create_dir_all(&destination)
        .unwrap_or_else(|e| panic!("creating {}: {e}", destination.display()));
    for entry in
        std::fs::read_dir(&source).unwrap_or_else(|e| panic!("reading {}: {e}", source.display()))
    {
        let path = entry.unwrap().path();
        let to = destination.join(path.file_name().unwrap());
        std::fs::copy(&path, &to)
            .unwrap_or_else(|e| panic!("copying {} to {}: {e}", path.display(), to.display()));
    }
}

/// The target directory as cargo resolves it (the same question trybuild asks).
fn target_dir() -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = std::process::Command::new(cargo)
        .args(["metadata", "--format-version=1", "--no-deps"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("running cargo metadata");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON");
    PathBuf::from(
        metadata["target_directory"]
            .as_str()
            .expect("cargo metadata names the target directory"),
    )
}
