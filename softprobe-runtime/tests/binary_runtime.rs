//! The built `softprobe-runtime` binary, as a user runs it: the seed's capture steps over
//! HTTP, a real OpenTelemetry OTLP/HTTP exporter sending spans to it, and SIGTERM flushing
//! open capture sessions.
//!
//! The binary exists only with the `cli` feature (on by default).

#![cfg(feature = "cli")]

mod support;

use std::path::Path;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, SpanKind, Tracer as _, TracerProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use reqwest::blocking::Client;
use serde_json::{Value, json};
use softprobe_runtime::case::{Case, Direction};
use support::{Runtime, spawn_runtime};

fn client() -> Client {
    install_crypto_provider();
    Client::builder().no_proxy().build().unwrap()
}

/// reqwest is built without a default TLS provider in this workspace (the OTLP exporter
/// builds a client too); install one once per process.
fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn spawn(envs: &[(&str, &str)]) -> Runtime {
    spawn_runtime(
        envs,
        support::Spawn {
            log: "info",
            keep_stderr: true,
        },
    )
}

fn post(base: &str, path: &str, body: &Value) -> (u16, Value) {
    let resp = client()
        .post(format!("{base}{path}"))
        .json(body)
        .send()
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn get(base: &str, path: &str) -> (u16, Value) {
    let resp = client().get(format!("{base}{path}")).send().unwrap();
    (resp.status().as_u16(), resp.json().unwrap())
}

fn wait_exit(child: &mut Child, within: Duration) -> ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the runtime did not exit in time"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stderr_of(child: &mut Child) -> String {
    use std::io::Read as _;
    let mut text = String::new();
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut text);
    }
    text
}

/// One inbound and one outbound span, as the proxy reports them on /v1/traces.
fn extract_payload(session: &str) -> Value {
    let attr = |k: &str, v: &str| json!({"key": k, "value": {"stringValue": v}});
    let span = |span_id: &str, dir: &str, host: &str, path: &str| {
        json!({
            "traceId": "5b8efff798038103d269b633813fc60c",
            "spanId": span_id,
            "kind": if dir == "inbound" { 2 } else { 3 },
            "attributes": [
                attr("sp.session.id", session), attr("sp.span.type", "extract"),
                attr("sp.traffic.direction", dir), attr("http.request.method", "POST"),
                attr("url.host", host), attr("url.path", path),
                {"key": "http.response.status_code", "value": {"intValue": 200}},
                attr("http.response.body", "{\"ok\":true}")
            ]
        })
    };
    json!({"resourceSpans": [{"scopeSpans": [{"spans": [
        span("eee19b7ec3c1b173", "inbound", "127.0.0.1:8082", "/checkout"),
        span("eee19b7ec3c1b174", "outbound", "api.stripe.com", "/v1/payment_intents"),
    ]}]}]})
}

#[test]
fn seed_capture_steps_against_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let case_path = dir.path().join("e2e/captured.case.json");
    let rt = spawn(&[("SOFTPROBE_CAPTURE_CASE_PATH", case_path.to_str().unwrap())]);
    let base = &rt.base;

    // 1. Start a capture session.
    let (status, created) = post(base, "/v1/sessions", &json!({"mode": "capture"}));
    assert_eq!(status, 200, "{created}");
    let id = created["sessionId"].as_str().unwrap().to_owned();
    assert_eq!(created["sessionRevision"], 0);

    // 2. Traffic arrives (as the proxy reports it).
    let resp = client()
        .post(format!("{base}/v1/traces"))
        .json(&extract_payload(&id))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 204);
    let (status, stats) = get(base, &format!("/v1/sessions/{id}/stats"));
    assert_eq!(status, 200);
    assert_eq!(stats["extractedSpans"], 2);
    assert_eq!(stats["injectedSpans"], 0);

    // 3. Close: the runtime writes SOFTPROBE_CAPTURE_CASE_PATH.
    let resp = client()
        .post(format!("{base}/v1/sessions/{id}/close"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let closed: Value = resp.json().unwrap();
    assert_eq!(closed["closed"], true);
    assert_eq!(closed["casePath"], case_path.to_str().unwrap());

    // 4. Inspect.
    let case = Case::read(&case_path).unwrap();
    assert_eq!(case.case_id, id);
    assert_eq!(case.traces.len(), 1);
    let hops = case.exchanges().unwrap();
    assert_eq!(hops.len(), 2);
    assert!(hops.iter().any(|h| h.direction == Direction::Inbound));
    assert!(hops.iter().any(|h| h.direction == Direction::Outbound));
    let text = std::fs::read_to_string(&case_path).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    let trace_id = doc["traces"][0]["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"]
        .as_str()
        .unwrap();
    assert_eq!(trace_id.len(), 32);

    let mut rt = rt;
    let _ = rt.child.kill();
    let log = stderr_of(&mut rt.child);
    assert!(
        log.contains(&format!("handling POST /v1/traces spans=2 sessionId={id}")),
        "{log}"
    );
}

#[test]
fn bearer_token_from_the_environment() {
    let rt = spawn(&[("SOFTPROBE_API_TOKEN", "s3cret")]);
    let resp = client()
        .get(format!("{}/v1/sessions", rt.base))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = client()
        .get(format!("{}/v1/sessions", rt.base))
        .bearer_auth("s3cret")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[cfg(unix)]
#[test]
fn sigterm_flushes_open_capture_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let template = format!("{}/{{sessionId}}.case.json", dir.path().display());
    let mut rt = spawn(&[("SOFTPROBE_CAPTURE_CASE_PATH", &template)]);
    let base = rt.base.clone();
    let (_, created) = post(&base, "/v1/sessions", &json!({"mode": "capture"}));
    let id = created["sessionId"].as_str().unwrap().to_owned();
    let (_, replay) = post(&base, "/v1/sessions", &json!({"mode": "replay"}));
    assert!(replay["sessionId"].is_string());
    let resp = client()
        .post(format!("{base}/v1/traces"))
        .json(&extract_payload(&id))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 204);

    let killed = Command::new("kill")
        .arg("-TERM")
        .arg(rt.child.id().to_string())
        .status()
        .unwrap();
    assert!(killed.success());
    let status = wait_exit(&mut rt.child, Duration::from_secs(15));
    let log = stderr_of(&mut rt.child);
    assert!(status.success(), "{status}: {log}");
    let written = dir.path().join(format!("{id}.case.json"));
    let case = Case::read(&written).unwrap_or_else(|e| panic!("{e}\n{log}"));
    assert_eq!(case.exchanges().unwrap().len(), 2);
    // Only the capture session is written.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn real_otlp_exporter_sends_spans_to_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let rt = spawn(&[]);
    let base = rt.base.clone();
    let (_, created) = post(&base, "/v1/sessions", &json!({"mode": "capture"}));
    let id = created["sessionId"].as_str().unwrap().to_owned();

    install_crypto_provider();
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(format!("{base}/v1/traces"))
        .build()
        .unwrap();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name("checkout-api")
                .build(),
        )
        .build();
    let tracer = provider.tracer("softprobe-test");
    for (kind, dir_name, host, path) in [
        (SpanKind::Server, "inbound", "127.0.0.1:8082", "/checkout"),
        (
            SpanKind::Client,
            "outbound",
            "api.stripe.com",
            "/v1/payment_intents",
        ),
    ] {
        let mut span = tracer
            .span_builder(format!("HTTP POST {path}"))
            .with_kind(kind)
            .with_attributes(vec![
                KeyValue::new("sp.session.id", id.clone()),
                KeyValue::new("sp.span.type", "extract"),
                KeyValue::new("sp.traffic.direction", dir_name),
                KeyValue::new("http.request.method", "POST"),
                KeyValue::new("url.host", host),
                KeyValue::new("url.path", path),
                KeyValue::new("http.request.header.authorization", "Bearer sk_live_1"),
                KeyValue::new("http.response.status_code", 200i64),
            ])
            .start(&tracer);
        span.end();
    }
    // A span that is not an HTTP hop of any session is ignored, not an error.
    tracer.start("internal work").end();
    provider.force_flush().unwrap();
    provider.shutdown().unwrap();

    let (_, stats) = get(&base, &format!("/v1/sessions/{id}/stats"));
    assert_eq!(stats["extractedSpans"], 2, "{stats}");
    let out = dir.path().join("otel.case.json");
    let (status, closed) = post(
        &base,
        &format!("/v1/sessions/{id}/close?out={}", out.display()),
        &json!({}),
    );
    assert_eq!(status, 200, "{closed}");
    let case = Case::read(Path::new(&out)).unwrap();
    let hops = case.exchanges().unwrap();
    assert_eq!(hops.len(), 2);
    assert!(
        hops.iter()
            .all(|h| h.service.as_deref() == Some("checkout-api"))
    );
    assert!(
        hops.iter()
            .all(|h| h.request_header("authorization") == Some("[REDACTED]"))
    );
    assert_eq!(hops[1].status, Some(200));
}
