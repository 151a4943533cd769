//! Helpers shared by the runtime's integration tests: a server on a free loopback port, a
//! JSON client, OTLP span builders and a small case file.

#![allow(dead_code, unreachable_pub)]

use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};
use softprobe_runtime::case::validate::{SchemaKind, validate_json};
use softprobe_runtime::{RunningServer, Server};

pub const TRACE_ID: &str = "5b8efff798038103d269b633813fc60c";

/// A server on `127.0.0.1:0` with the given token and capture path template.
pub async fn start(token: Option<&str>, capture_path: Option<String>) -> RunningServer {
    Server::builder()
        .listen("127.0.0.1:0".parse().unwrap())
        .token(token.map(str::to_owned))
        .capture_path(capture_path)
        // Tests close into their temporary directories.
        .capture_root(Some(std::env::temp_dir()))
        .body_limit(64 * 1024)
        .start()
        .await
        .expect("the server starts")
}

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

/// An OTLP JSON attribute.
pub fn attr(key: &str, value: &str) -> Value {
    json!({"key": key, "value": {"stringValue": value}})
}

/// A recorded response: status, headers, body.
pub type Recorded<'a> = (i64, Vec<(&'a str, &'a str)>, &'a str);

/// An OTLP JSON span for one HTTP hop.
pub struct Hop<'a> {
    pub session: &'a str,
    pub span_type: &'a str,
    pub direction: &'a str,
    pub method: &'a str,
    pub host: &'a str,
    pub path: &'a str,
    pub span_id: &'a str,
    pub request_headers: Vec<(&'a str, &'a str)>,
    pub request_body: Option<&'a str>,
    pub response: Option<Recorded<'a>>,
}

impl<'a> Hop<'a> {
    pub fn outbound(session: &'a str, method: &'a str, host: &'a str, path: &'a str) -> Self {
        Hop {
            session,
            span_type: "extract",
            direction: "outbound",
            method,
            host,
            path,
            span_id: "eee19b7ec3c1b174",
            request_headers: Vec::new(),
            request_body: None,
            response: None,
        }
    }

    pub fn span(&self) -> Value {
        let mut attrs = vec![
            attr("sp.session.id", self.session),
            attr("sp.span.type", self.span_type),
            attr("sp.traffic.direction", self.direction),
            attr("http.request.method", self.method),
            attr("url.host", self.host),
            attr("url.path", self.path),
        ];
        for (name, value) in &self.request_headers {
            attrs.push(attr(&format!("http.request.header.{name}"), value));
        }
        if let Some(body) = self.request_body {
            attrs.push(attr("http.request.body", body));
        }
        if let Some((status, headers, body)) = &self.response {
            attrs.push(json!({"key": "http.response.status_code", "value": {"intValue": status.to_string()}}));
            for (name, value) in headers {
                attrs.push(attr(&format!("http.response.header.{name}"), value));
            }
            attrs.push(attr("http.response.body", body));
        }
        json!({
            "traceId": TRACE_ID,
            "spanId": self.span_id,
            "name": format!("HTTP {}", self.method),
            "kind": if self.direction == "inbound" { 2 } else { 3 },
            "startTimeUnixNano": "1713616200000000000",
            "endTimeUnixNano": "1713616200035000000",
            "attributes": attrs,
        })
    }
}

/// OTLP JSON `TracesData` holding the given spans under one service.
pub fn traces(spans: Vec<Value>) -> Value {
    json!({"resourceSpans": [{
        "resource": {"attributes": [attr("service.name", "checkout")]},
        "scopeSpans": [{"spans": spans}]
    }]})
}

/// A case with one inbound hop and one outbound call to the payment API.
pub fn sample_case() -> Value {
    let inbound = Hop {
        direction: "inbound",
        span_id: "eee19b7ec3c1b173",
        response: Some((
            200,
            vec![("content-type", "application/json")],
            r#"{"ok":true}"#,
        )),
        ..Hop::outbound("sess_recorded", "POST", "app.local", "/checkout")
    };
    let outbound = Hop {
        request_headers: vec![("content-type", "application/json")],
        request_body: Some(r#"{"amount":1000}"#),
        response: Some((
            201,
            vec![("content-type", "application/json")],
            r#"{"id":"pi_1","status":"succeeded"}"#,
        )),
        ..Hop::outbound(
            "sess_recorded",
            "POST",
            "api.stripe.com",
            "/v1/payment_intents",
        )
    };
    json!({
        "version": "1.0.0",
        "caseId": "checkout-happy-path",
        "createdAt": "2026-04-20T10:00:00Z",
        "traces": [traces(vec![inbound.span(), outbound.span()])],
    })
}
