//! The control API from a test: an in-process server on a free loopback port, a JSON client,
//! session helpers and the assertions on contract bodies, metrics and schemas.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};
use softprobe_runtime::case::Case;
use softprobe_runtime::case::validate::{SchemaKind, validate_json};
use softprobe_runtime::{RunningServer, Server};

/// `127.0.0.1:0`: a loopback address the system gives a free port.
pub fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A server on `127.0.0.1:0` with the given token and capture path template.
pub async fn start(token: Option<&str>, capture_path: Option<String>) -> RunningServer {
    install_crypto_provider();
    Server::builder()
        .listen(localhost())
        .token(token.map(str::to_owned))
        .capture_path(capture_path)
        // Tests close into their temporary directories.
        .capture_root(Some(std::env::temp_dir()))
        .body_limit(64 * 1024)
        .start()
        .await
        .expect("the server starts")
}

/// A runtime on a free loopback port with the defaults (no token, no capture path).
pub async fn runtime() -> RunningServer {
    install_crypto_provider();
    Server::builder()
        .listen(localhost())
        // Tests close into their temporary directories.
        .capture_root(Some(std::env::temp_dir()))
        .start()
        .await
        .expect("the runtime starts")
}

/// A reqwest client that never goes through an environment proxy.
pub fn client() -> Client {
    install_crypto_provider();
    Client::builder().no_proxy().build().unwrap()
}

/// reqwest is built without a default TLS provider in this workspace; install one (once per
/// process) before any client is built.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The status and the JSON body of a response (Null for an empty body).
pub async fn json_of(resp: Response) -> (StatusCode, Value) {
    let status = resp.status();
    let bytes = resp.bytes().await.unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{status}: body is not JSON ({e}): {bytes:?}"))
    };
    (status, body)
}

/// `POST {base}{path}` with a JSON body: the status and the JSON answer.
pub async fn post_json(base: &str, path: &str, body: &Value) -> (StatusCode, Value) {
    json_of(
        client()
            .post(format!("{base}{path}"))
            .json(body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// `GET {base}{path}`: the status and the JSON answer.
pub async fn get_json(base: &str, path: &str) -> (StatusCode, Value) {
    json_of(client().get(format!("{base}{path}")).send().await.unwrap()).await
}

/// The Prometheus text of `/metrics`.
pub async fn metrics_text(base: &str) -> String {
    let resp = client()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap()
}

/// Asserts that the metrics text holds one exact sample line (name, labels and value).
pub fn assert_metric(metrics: &str, sample: &str) {
    assert!(
        metrics.lines().any(|line| line == sample),
        "no line `{sample}` in the metrics:\n{metrics}"
    );
}

/// Asserts that a body matches its schema in `spec/schemas/`.
pub fn assert_schema(kind: SchemaKind, body: &Value) {
    if let Err(violations) = validate_json(kind, body) {
        panic!("{kind:?} schema violations {violations:?} in {body}");
    }
}

/// Creates a session and returns its id.
pub async fn create_session(base: &str, mode: &str) -> String {
    let (status, body) = post_json(base, "/v1/sessions", &json!({"mode": mode})).await;
    assert_eq!(status, 200, "{body}");
    body["sessionId"].as_str().unwrap().to_owned()
}

/// The session's `sessionRevision`.
pub async fn revision(base: &str, session: &str) -> u64 {
    let (status, body) = get_json(base, &format!("/v1/sessions/{session}/state")).await;
    assert_eq!(status, 200, "{body}");
    body["sessionRevision"].as_u64().unwrap()
}

/// Asserts a contract error body and returns its message.
pub fn expect_error(status: StatusCode, body: &Value, want_status: u16, code: &str) -> String {
    assert_eq!(status.as_u16(), want_status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert_schema(SchemaKind::ErrorResponse, body);
    let message = body["error"]["message"].as_str().unwrap().to_owned();
    assert!(!message.is_empty());
    message
}

/// `POST {base}{path}` with a JSON body that must answer 200; the JSON answer.
pub async fn post(base: &str, path: &str, body: Value) -> Value {
    let (status, answer) = post_json(base, path, &body).await;
    assert_eq!(status, 200, "POST {path}: {answer}");
    answer
}

/// The session's `/stats` body.
pub async fn stats(base: &str, session: &str) -> Value {
    get_json(base, &format!("/v1/sessions/{session}/stats"))
        .await
        .1
}

/// Waits until the session has recorded `n` hops (recording finishes after the response
/// body has been passed on, so it can trail the client by a moment).
pub async fn wait_extracted(base: &str, session: &str, n: u64) {
    for _ in 0..200 {
        if stats(base, session).await["extractedSpans"].as_u64() >= Some(n) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "session {session} never recorded {n} hops: {}",
        stats(base, session).await
    );
}

/// Closes the session into `out` (`?out=`), which must answer 200; the close answer.
pub async fn close_to(base: &str, session: &str, out: &Path) -> Value {
    post(
        base,
        &format!("/v1/sessions/{session}/close?out={}", out.display()),
        json!({}),
    )
    .await
}

/// Waits until the session has recorded `hops` hops, closes it into a temporary file and
/// reads the case back.
pub async fn close_case(base: &str, session: &str, hops: u64) -> Case {
    wait_extracted(base, session, hops).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join(format!("{session}.case.json"));
    close_to(base, session, &out).await;
    Case::read(&out).unwrap_or_else(|e| panic!("the closed case of {session}: {e}"))
}
