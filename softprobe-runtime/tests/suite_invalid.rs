//! Suite files that are wrong: `softprobe suite validate` and `suite run` exit 5 and name the
//! file and the line; the valid fixture suite validates, with `--env-file` and defaults; the
//! JSON Schema in `spec/schemas/suite.schema.json` agrees with the reader on every fixture.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn softprobe(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_softprobe"))
        .args(args)
        .current_dir(root())
        .env_remove("SOFTPROBE_SUITE_FIXTURE_UNSET")
        .env_remove("CASES_DIR")
        .env_remove("SOFTPROBE_RUNTIME_URL")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every invalid fixture with the line its error must name and a word the message must hold
/// (read with `--strict-suite`: without it an unknown key is a warning).
const INVALID: &[(&str, usize, &str)] = &[
    ("unknown-key.suite.yaml", 6, "unknown field `bodies`"),
    (
        "unset-variable.suite.yaml",
        4,
        "SOFTPROBE_SUITE_FIXTURE_UNSET is not set",
    ),
    ("bad-regex.suite.yaml", 7, "bad regex"),
    ("bad-body-mode.suite.yaml", 6, "fuzzy"),
    ("no-cases-match.suite.yaml", 4, "matches no file"),
    (
        "inline-mock-without-response.suite.yaml",
        5,
        "needs a response",
    ),
    (
        "reversed-status-range.suite.yaml",
        5,
        "status range \"599-200\"",
    ),
    ("bad-consume.suite.yaml", 8, "not \"twice\""),
    ("bad-request-source.suite.yaml", 5, "the only source is"),
    (
        "override-bad-ignore-path.suite.yaml",
        7,
        "body.ignore \"orderId\"",
    ),
    // A non-ASCII first character used to panic (slicing at byte 1).
    (
        "non-ascii-status-range.suite.yaml",
        5,
        "status range \"é2\"",
    ),
];

#[test]
fn every_invalid_fixture_is_listed() {
    let mut on_disk: Vec<String> = std::fs::read_dir(root().join("fixtures/suites/invalid"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = INVALID.iter().map(|(f, _, _)| f.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed);
}

#[test]
fn validate_and_run_exit_5_naming_the_file_and_line() {
    for (file, line, needle) in INVALID {
        let path = format!("fixtures/suites/invalid/{file}");
        let (code, _, stderr) = softprobe(&["suite", "validate", "--strict-suite", &path]);
        assert_eq!(code, 5, "{file}: {stderr}");
        assert!(
            stderr.contains(&format!("{path}:{line}: ")) && stderr.contains(needle),
            "{file}: expected line {line} and {needle:?} in: {stderr}"
        );
        // `run` refuses the suite before it talks to any runtime or application.
        let (code, stdout, _) = softprobe(&[
            "--json",
            "--runtime-url",
            "http://127.0.0.1:9",
            "suite",
            "run",
            "--strict-suite",
            &path,
            "--app-url",
            "http://127.0.0.1:9",
        ]);
        assert_eq!(code, 5, "{file}: {stdout}");
        let out: Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(out["line"], *line, "{out:#}");
        assert_eq!(out["error"]["code"], "invalid_input");
    }
}

#[test]
fn unknown_keys_are_warnings_naming_file_line_and_key_without_strict() {
    let path = "fixtures/suites/invalid/unknown-key.suite.yaml";
    let (code, stdout, stderr) = softprobe(&["suite", "validate", path]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("valid (1 case(s))"), "{stdout}");
    assert_eq!(
        stderr.trim(),
        format!(
            "warning: {path}:6: unknown key $.defaults.assertions.bodies ignored (--strict-suite refuses it)"
        )
    );
}

#[test]
fn the_fixture_suite_validates_with_defaults_and_env_files() {
    let (code, stdout, stderr) =
        softprobe(&["suite", "validate", "fixtures/suites/checkout.suite.yaml"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("valid (2 case(s))"), "{stdout}");

    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join("suite.env");
    std::fs::write(&env, "CASES_DIR=/nowhere\n").unwrap();
    let (code, _, stderr) = softprobe(&[
        "suite",
        "validate",
        "fixtures/suites/checkout.suite.yaml",
        "--env-file",
        env.to_str().unwrap(),
    ]);
    assert_eq!(code, 5);
    assert!(
        stderr.contains("checkout.suite.yaml:6: ")
            && stderr.contains("/nowhere/checkout.case.json"),
        "{stderr}"
    );
}

#[test]
fn runtime_unreachable_is_exit_3() {
    let (code, _, stderr) = softprobe(&[
        "--runtime-url",
        "http://127.0.0.1:9",
        "suite",
        "run",
        "fixtures/suites/checkout.suite.yaml",
        "--app-url",
        "http://127.0.0.1:9",
    ]);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("cannot reach the runtime"), "{stderr}");
}

fn yaml(path: &Path) -> Value {
    softprobe_runtime::yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn the_schema_accepts_the_fixture_and_refuses_bad_keys_and_modes() {
    let schema: Value = serde_json::from_slice(
        &std::fs::read(root().join("spec/schemas/suite.schema.json")).unwrap(),
    )
    .unwrap();
    // The suite schema refers to the rule and policy schemas by their `$id`.
    let mut registry = jsonschema::Registry::new();
    for entry in std::fs::read_dir(root().join("spec/schemas")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let doc: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            let id = doc["$id"].as_str().unwrap().to_owned();
            registry = registry.add(id, doc).unwrap();
        }
    }
    let registry = registry.prepare().unwrap();
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .with_registry(&registry)
        .build(&schema)
        .unwrap();
    let good = yaml(&root().join("fixtures/suites/checkout.suite.yaml"));
    let errors: Vec<String> = validator
        .iter_errors(&good)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    for bad in ["unknown-key.suite.yaml", "bad-body-mode.suite.yaml"] {
        let v = yaml(&root().join("fixtures/suites/invalid").join(bad));
        assert!(!validator.is_valid(&v), "{bad} passed the schema");
    }
}
