//! Close answers `capturePath` as the original runtime does, `GET /v1/captures/{sessionId}`
//! serves the case a capture wrote, and `softprobe cases get` fetches it, against the built
//! binaries.

mod support;

use serde_json::{Value, json};
use support::{cli, json_line, run, spawn_runtime};

fn capture_with_traffic(base: &str) -> String {
    let mut cmd = cli(base);
    cmd.args(["session", "start", "--mode", "capture", "--json"]);
    let (code, out, err) = run(cmd);
    assert_eq!(code, 0, "{err}");
    let id = json_line(&out)["sessionId"].as_str().unwrap().to_owned();
    let mut cmd = cli(base);
    cmd.args([
        "export",
        "otlp",
        "--case",
        "fixtures/cases/checkout.case.json",
        "--endpoint",
        base,
        "--session",
        &id,
    ]);
    let (code, _, err) = run(cmd);
    assert_eq!(code, 0, "{err}");
    id
}

fn http() -> reqwest::blocking::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::blocking::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
}

#[test]
fn close_answers_capture_path_and_the_capture_can_be_fetched() {
    let rt = spawn_runtime(&[], Default::default());
    let dir = tempfile::tempdir().unwrap();
    let id = capture_with_traffic(&rt.base);

    // Still open: nothing written yet, and the answer says why.
    let mut cmd = cli(&rt.base);
    cmd.args(["cases", "get", &id]);
    let (code, _, err) = run(cmd);
    assert_eq!(code, 5, "{err}");
    assert!(
        err.contains("is still open: its capture is written when it closes"),
        "{err}"
    );

    let written = dir.path().join("written.case.json");
    let closed: Value = http()
        .post(format!(
            "{}/v1/sessions/{id}/close?out={}",
            rt.base,
            written.display()
        ))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let shown = written.display().to_string();
    assert_eq!(
        closed,
        json!({"sessionId": id, "closed": true, "casePath": shown, "capturePath": shown})
    );
    let on_disk = std::fs::read(&written).unwrap();
    let resp = http()
        .get(format!("{}/v1/captures/{id}", rt.base))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_eq!(resp.bytes().unwrap().to_vec(), on_disk);

    // `cases get --out` writes the same bytes, creating the missing directories.
    let out = dir.path().join("fetched/deeper/case.json");
    let mut cmd = cli(&rt.base);
    cmd.args(["cases", "get", &id, "--out"]).arg(&out);
    let (code, stdout, err) = run(cmd);
    assert_eq!(code, 0, "{err}");
    assert_eq!(stdout.trim(), format!("wrote {}", out.display()));
    assert_eq!(std::fs::read(&out).unwrap(), on_disk);
    // Without --out it prints the case.
    let mut cmd = cli(&rt.base);
    cmd.args(["cases", "get", &id]);
    let (code, stdout, _) = run(cmd);
    assert_eq!(code, 0);
    let printed: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(printed, serde_json::from_slice::<Value>(&on_disk).unwrap());

    // A session it never captured is unknown (exit 4); a deleted file is named.
    let mut cmd = cli(&rt.base);
    cmd.args(["cases", "get", "sess_AAAAAAAAAAAAAAAAAAAAAA"]);
    let (code, _, err) = run(cmd);
    assert_eq!(code, 4, "{err}");
    std::fs::remove_file(&written).unwrap();
    let mut cmd = cli(&rt.base);
    cmd.args(["cases", "get", &id]);
    let (code, _, err) = run(cmd);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("was written to {shown}, which cannot be read now")),
        "{err}"
    );
}
