//! A CLI that never surprises: no panic when the reader of stdout goes away, colour flags and
//! environment, `version` and `-v`, `session start` in replay by default, several files and
//! globs for `inspect case` and `validate case`, report files in directories that do not exist.

mod support;

use std::process::{Command, Stdio};

use serde_json::Value;
use support::{cli, json_line, root, run, spawn_runtime};

/// Runs `softprobe ARGS | head -1` in bash and returns softprobe's own exit code, the line
/// head printed and softprobe's stderr.
fn piped_into_head(base: &str, args: &str) -> (i32, String, String) {
    let script = format!(
        "'{}' {args} 2>stderr.txt | head -1; echo \"exit=${{PIPESTATUS[0]}}\"",
        env!("CARGO_BIN_EXE_softprobe")
    );
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("cd '{}' && {script}", dir.path().display()))
        .env("SOFTPROBE_RUNTIME_URL", base)
        .env("FIXTURES", root().join("fixtures"))
        .env_remove("SOFTPROBE_SESSION_ID")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = std::fs::read_to_string(dir.path().join("stderr.txt")).unwrap_or_default();
    let mut lines = stdout.lines();
    let first = lines.next().unwrap_or_default().to_owned();
    let code = stdout
        .lines()
        .find_map(|l| l.strip_prefix("exit="))
        .and_then(|c| c.parse().ok())
        .unwrap_or(-1);
    (code, first, stderr)
}

#[test]
fn no_command_panics_when_its_reader_goes_away() {
    let rt = spawn_runtime(&[], Default::default());
    let case = "\"$FIXTURES/cases/checkout.case.json\"";
    for args in [
        "completion bash".to_owned(),
        "completion zsh".to_owned(),
        "--help".to_owned(),
        "session --help".to_owned(),
        format!("inspect case {case}"),
        format!("inspect case --wide {case} {case}"),
        format!("inspect case --json {case}"),
        format!("validate case {case}"),
        "suite validate \"$FIXTURES/suites/checkout.suite.yaml\"".to_owned(),
        "doctor".to_owned(),
        "session list".to_owned(),
        "version".to_owned(),
    ] {
        let (code, first, stderr) = piped_into_head(&rt.base, &args);
        assert_eq!(code, 0, "softprobe {args}: {stderr}");
        assert!(!stderr.contains("panicked"), "softprobe {args}: {stderr}");
        assert!(!first.is_empty(), "softprobe {args} printed nothing");
    }
}

#[test]
fn colour_follows_flags_then_no_color_then_clicolor_force() {
    let error_line = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_softprobe"));
        cmd.args(args)
            .args(["validate", "case", "/nonexistent.case.json"])
            .env_remove("NO_COLOR")
            .env_remove("CLICOLOR_FORCE");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let (code, _, err) = run(cmd);
        assert_eq!(code, 5, "{err}");
        err
    };
    let red = "\x1b[31merror\x1b[0m: cannot read /nonexistent.case.json";
    let plain = "error: cannot read /nonexistent.case.json";
    // Not a terminal: plain unless asked.
    assert!(error_line(&[], &[]).starts_with(plain));
    assert!(error_line(&[], &[("CLICOLOR_FORCE", "1")]).starts_with(red));
    assert!(error_line(&["--color", "always"], &[]).starts_with(red));
    assert!(error_line(&["--color", "always"], &[("NO_COLOR", "1")]).starts_with(red));
    assert!(error_line(&[], &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")]).starts_with(plain));
    assert!(error_line(&["--no-color"], &[("CLICOLOR_FORCE", "1")]).starts_with(plain));
    assert!(error_line(&["--color", "never"], &[("CLICOLOR_FORCE", "1")]).starts_with(plain));
}

#[test]
fn version_session_default_and_several_files() {
    for args in [&["version"][..], &["-v"], &["--version"]] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_softprobe"));
        cmd.args(args);
        let (code, out, err) = run(cmd);
        assert_eq!(code, 0, "{err}");
        assert!(
            out.starts_with(&format!("softprobe {}", env!("CARGO_PKG_VERSION"))),
            "{args:?}: {out}"
        );
    }
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_softprobe"));
    cmd.args(["version", "--json"]);
    let (_, out, _) = run(cmd);
    assert_eq!(json_line(&out)["specVersion"], "http-control-api@v1");

    let rt = spawn_runtime(&[], Default::default());
    let mut cmd = cli(&rt.base);
    cmd.args(["session", "start", "--json"]);
    let (code, out, err) = run(cmd);
    assert_eq!(code, 0, "{err}");
    let id = json_line(&out)["sessionId"].as_str().unwrap().to_owned();
    let mut cmd = cli(&rt.base);
    cmd.args(["session", "list", "--json"]);
    let (_, out, _) = run(cmd);
    let list: Value = json_line(&out);
    let listed = list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["sessionId"] == id.as_str())
        .unwrap();
    assert_eq!(listed["mode"], "replay", "{list:#}");

    // Several files and a glob (quoted, so the CLI expands it).
    let mut cmd = cli(&rt.base);
    cmd.args([
        "inspect",
        "case",
        "--json",
        "fixtures/cases/checkout.case.json",
        "fixtures/cases/check*.case.json",
    ]);
    let (code, out, err) = run(cmd);
    assert_eq!(code, 0, "{err}");
    let cases = json_line(&out)["cases"].as_array().unwrap().clone();
    assert!(cases.len() >= 2, "{out}");
    assert!(
        cases
            .iter()
            .all(|c| c["file"].as_str().unwrap().ends_with(".case.json"))
    );
    let mut cmd = cli(&rt.base);
    cmd.args(["validate", "case", "fixtures/cases/*.case.json"]);
    let (code, _, err) = run(cmd);
    assert!(code == 0 || code == 5, "{err}");
    let mut cmd = cli(&rt.base);
    cmd.args(["validate", "case", "fixtures/nothing/*.case.json"]);
    let (code, _, err) = run(cmd);
    assert_eq!(code, 5);
    assert!(
        err.contains("fixtures/nothing/*.case.json matches no file"),
        "{err}"
    );
}
