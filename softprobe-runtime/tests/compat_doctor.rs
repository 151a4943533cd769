//! What the original Softprobe CLI's `doctor` requires of a runtime, checked against the built
//! `softprobe-runtime`: a stand-in for its checks (the fields and values it reads, its exit
//! codes) passes, and fails with `runtime_drift` against a runtime without them. Our own
//! `softprobe doctor --json` answers in the original's shape.

mod support;

use std::io::{Read as _, Write as _};
use std::net::TcpListener;

use serde_json::Value;
use support::{cli, json_line, run, spawn_runtime};

/// The original doctor's verdict: 0, 10 (`runtime_drift`) or `auth_required`, as compat.md
/// describes it: `/health` must answer 200 with JSON, `/v1/meta` (with the token) must carry
/// `specVersion == "http-control-api@v1"` and `schemaVersion == "1"`.
fn original_doctor(base: &str, token: Option<&str>) -> Result<Value, (i32, String)> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::blocking::Client::builder()
        .no_proxy()
        .build()
        .unwrap();
    let health = http
        .get(format!("{base}/health"))
        .send()
        .map_err(|e| (1, format!("runtime_unreachable: {e}")))?;
    if health.status() != 200 {
        return Err((1, format!("runtime_unhealthy: {}", health.status())));
    }
    let _: Value = health
        .json()
        .map_err(|e| (1, format!("runtime_unhealthy: not JSON: {e}")))?;
    let mut req = http.get(format!("{base}/v1/meta"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let meta = req.send().map_err(|e| (1, e.to_string()))?;
    if meta.status() == 401 || meta.status() == 403 {
        return Err((1, "auth_required".into()));
    }
    let meta: Value = meta
        .json()
        .map_err(|e| (10, format!("runtime_drift: {e}")))?;
    if meta["specVersion"] != "http-control-api@v1" || meta["schemaVersion"] != "1" {
        return Err((10, format!("runtime_drift: {meta}")));
    }
    Ok(meta)
}

/// A runtime of another generation: healthy, but without the versions the original checks.
fn drifted_runtime() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { break };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let body = r#"{"status":"ok","specVersion":"1.0.0"}"#;
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://{addr}")
}

#[test]
fn the_original_doctors_checks_pass_against_the_runtime_and_fail_on_drift() {
    let rt = spawn_runtime(&[("SOFTPROBE_API_TOKEN", "s3cret")], Default::default());
    let meta = original_doctor(&rt.base, Some("s3cret")).unwrap();
    assert_eq!(meta["runtimeVersion"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        original_doctor(&rt.base, None).unwrap_err(),
        (1, "auth_required".to_owned())
    );
    let health: Value = reqwest::blocking::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("{}/health", rt.base))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(health["specVersion"], "http-control-api@v1");
    assert_eq!(health["schemaVersion"], "1");

    let old = drifted_runtime();
    let (code, message) = original_doctor(&old, None).unwrap_err();
    assert_eq!(code, 10, "{message}");
    assert!(message.starts_with("runtime_drift"), "{message}");
}

#[test]
fn doctor_json_has_the_originals_shape_and_exits_10_on_drift() {
    let rt = spawn_runtime(&[], Default::default());
    let mut cmd = cli(&rt.base);
    cmd.args(["doctor", "--json"]);
    let (code, out, err) = run(cmd);
    assert_eq!(code, 0, "{out}{err}");
    let body = json_line(&out);
    assert_eq!(body["status"], "ok");
    assert_eq!(body["exitCode"], 0);
    assert_eq!(body["cliVersion"], env!("CARGO_PKG_VERSION"));
    assert_eq!(body["runtimeHealthy"], true);
    assert_eq!(body["runtimeVersion"], env!("CARGO_PKG_VERSION"));
    assert_eq!(body["specVersion"], "http-control-api@v1");
    assert_eq!(body["schemaVersion"], "1");
    let checks: Vec<(String, String)> = body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            assert!(c["details"].is_string(), "{c}");
            (
                c["name"].as_str().unwrap().to_owned(),
                c["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected = [
        ("runtime-reachable", "ok"),
        ("auth", "ok"),
        ("version-drift", "ok"),
        ("schema-version", "ok"),
        ("wasm-binary", "skip"),
        ("header-echo", "skip"),
    ];
    assert_eq!(
        checks,
        expected.map(|(a, b)| (a.to_owned(), b.to_owned())),
        "{body:#}"
    );

    let old = drifted_runtime();
    let mut cmd = cli(&old);
    cmd.args(["doctor", "--json"]);
    let (code, out, _) = run(cmd);
    assert_eq!(code, 10, "{out}");
    let body = json_line(&out);
    let drift = body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "version-drift")
        .unwrap();
    assert_eq!(drift["status"], "fail");
    assert_eq!(
        drift["details"],
        format!(
            "runtime ? speaks 1.0.0; this CLI ({}) speaks http-control-api@v1",
            env!("CARGO_PKG_VERSION")
        )
    );
}
