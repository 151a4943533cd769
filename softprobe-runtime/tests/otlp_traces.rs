//! `POST /v1/traces` and capture: extracted hops are redacted, buffered for capture
//! sessions, and written as a case file on close.

mod support;

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1 as pt;
use prost::Message as _;
use serde_json::json;
use softprobe_runtime::case::{Body, Case, CaseMode, Direction};
use support::*;

fn checkout_traces(id: &str) -> serde_json::Value {
    let inbound = Hop {
        direction: "inbound",
        span_id: "eee19b7ec3c1b173",
        request_headers: vec![
            ("content-type", "application/json"),
            ("cookie", "sid=secret"),
        ],
        request_body: Some(r#"{"amount": 1000, "currency": "USD"}"#),
        response: Some((
            200,
            vec![
                ("content-type", "application/json"),
                ("set-cookie", "sid=new"),
            ],
            r#"{"ok":true}"#,
        )),
        ..Hop::outbound(id, "POST", "127.0.0.1:8082", "/checkout")
    };
    let outbound = Hop {
        request_headers: vec![
            ("authorization", "Bearer sk_live_123"),
            ("content-type", "application/json"),
        ],
        request_body: Some(
            r#"{"card": {"number": "4242424242424242", "cvc": "123"}, "amount": 1000}"#,
        ),
        response: Some((
            200,
            vec![("content-type", "application/json")],
            r#"{"id":"pi_1"}"#,
        )),
        ..Hop::outbound(id, "POST", "api.stripe.com", "/v1/payment_intents")
    };
    traces(vec![inbound.span(), outbound.span()])
}

#[tokio::test]
async fn capture_redacts_and_writes_the_case_on_close() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(None, None).await;
    let base = server.uri();
    let id = create_session(&base, "capture").await;
    let (status, body) = post_json(
        &base,
        &format!("/v1/sessions/{id}/rules"),
        &json!({"version": 1, "rules": [{"id": "strip-card", "when": {"direction": "outbound"},
            "then": {"action": "capture_only", "captureOnly": {"redactHeaders": ["content-type"], "redactJsonPaths": ["$.card.number"]}}}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let resp = client()
        .post(format!("{base}/v1/traces"))
        .json(&checkout_traces(&id))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let (_, stats) = get_json(&base, &format!("/v1/sessions/{id}/stats")).await;
    assert_eq!(stats["extractedSpans"], 2);

    let out = dir.path().join("nested/dir/checkout.case.json");
    let (status, closed) = post_json(
        &base,
        &format!("/v1/sessions/{id}/close?out={}", out.display()),
        &json!({}),
    )
    .await;
    assert_eq!(status, 200, "{closed}");
    assert_eq!(closed["casePath"], out.display().to_string());
    assert_eq!(closed["closed"], true);

    let report =
        softprobe_runtime::case::validate::validate_case(&std::fs::read(&out).unwrap(), "captured");
    assert!(report.is_valid(), "{report}");
    let case = Case::read(&out).unwrap();
    assert_eq!(case.case_id, id);
    assert_eq!(case.mode, Some(CaseMode::Capture));
    let hops = case.exchanges().unwrap();
    assert_eq!(hops.len(), 2);
    let inbound = hops
        .iter()
        .find(|h| h.direction == Direction::Inbound)
        .unwrap();
    let outbound = hops
        .iter()
        .find(|h| h.direction == Direction::Outbound)
        .unwrap();
    // Default sensitive headers, in every session.
    assert_eq!(inbound.request_header("cookie"), Some("[REDACTED]"));
    assert_eq!(inbound.response_header("set-cookie"), Some("[REDACTED]"));
    assert_eq!(outbound.request_header("authorization"), Some("[REDACTED]"));
    // The capture_only rule, for outbound hops only.
    assert_eq!(outbound.request_header("content-type"), Some("[REDACTED]"));
    assert_eq!(
        inbound.request_header("content-type"),
        Some("application/json")
    );
    let body: serde_json::Value =
        serde_json::from_str(outbound.request_body.as_ref().unwrap().as_text().unwrap()).unwrap();
    assert_eq!(body["card"]["number"], "[REDACTED]");
    assert_eq!(body["card"]["cvc"], "123");
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        !text.contains("sk_live_123") && !text.contains("4242424242424242"),
        "{text}"
    );
    assert!(text.ends_with("}\n"));

    // Closed: the session is gone.
    let (status, body) = get_json(&base, &format!("/v1/sessions/{id}/stats")).await;
    expect_error(status, &body, 404, "unknown_session");
}

#[tokio::test]
async fn capture_path_template_and_failed_writes() {
    let dir = tempfile::tempdir().unwrap();
    let template = format!("{}/{{mode}}/{{sessionId}}.case.json", dir.path().display());
    let server = start(None, Some(template)).await;
    let base = server.uri();
    let id = create_session(&base, "capture").await;
    client()
        .post(format!("{base}/v1/traces"))
        .json(&checkout_traces(&id))
        .send()
        .await
        .unwrap();

    // A path whose parent is a file cannot be written: 500, session and spans kept.
    let blocker = dir.path().join("blocker");
    std::fs::write(&blocker, "not a directory").unwrap();
    let bad = blocker.join("x.case.json");
    let (status, body) = post_json(
        &base,
        &format!("/v1/sessions/{id}/close?out={}", bad.display()),
        &json!({}),
    )
    .await;
    let msg = expect_error(status, &body, 500, "internal_error");
    assert!(msg.contains(&id) && msg.contains("blocker"), "{msg}");
    let (_, stats) = get_json(&base, &format!("/v1/sessions/{id}/stats")).await;
    assert_eq!(stats["extractedSpans"], 2);

    // Retry without ?out=: the template is used.
    let (status, closed) = post_json(&base, &format!("/v1/sessions/{id}/close"), &json!({})).await;
    assert_eq!(status, 200, "{closed}");
    let want = dir.path().join("capture").join(format!("{id}.case.json"));
    assert_eq!(closed["casePath"], want.display().to_string());
    assert_eq!(Case::read(&want).unwrap().exchanges().unwrap().len(), 2);
}

#[tokio::test]
async fn non_capture_sessions_count_but_do_not_buffer() {
    let server = start(None, None).await;
    let base = server.uri();
    let id = create_session(&base, "replay").await;
    let resp = client()
        .post(format!("{base}/v1/traces"))
        .json(&checkout_traces(&id))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let (_, stats) = get_json(&base, &format!("/v1/sessions/{id}/stats")).await;
    assert_eq!(stats["extractedSpans"], 2);
    assert_eq!(server.store().session(&id).unwrap().captured_len(), 0);
    let metrics = metrics_text(&base).await;
    assert_metric(&metrics, "softprobe_extracted_spans_total 2");
}

#[tokio::test]
async fn unknown_sessions_and_odd_spans_are_skipped() {
    let server = start(None, None).await;
    let base = server.uri();
    // OTLP senders ignore answers: spans of closed sessions are dropped, the call succeeds.
    let resp = client()
        .post(format!("{base}/v1/traces"))
        .json(&checkout_traces("sess_gone"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let metrics = metrics_text(&base).await;
    assert_metric(&metrics, "softprobe_extracted_spans_total 0");

    // A span with a session but no HTTP method is skipped; its neighbour is recorded.
    let id = create_session(&base, "capture").await;
    let mut payload = checkout_traces(&id);
    let spans = payload["resourceSpans"][0]["scopeSpans"][0]["spans"]
        .as_array_mut()
        .unwrap();
    spans[1]["attributes"]
        .as_array_mut()
        .unwrap()
        .retain(|kv| kv["key"] != "http.request.method");
    let resp = client()
        .post(format!("{base}/v1/traces"))
        .json(&payload)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let (_, stats) = get_json(&base, &format!("/v1/sessions/{id}/stats")).await;
    assert_eq!(stats["extractedSpans"], 1);
    let hops = server.store().session(&id).unwrap().captured();
    assert_eq!(hops.len(), 1);
    assert_eq!(hops[0].path, "/checkout");

    // Spans that name no session (the app's own internal spans) are ignored.
    let internal =
        json!({"traceId": TRACE_ID, "spanId": "0102030405060708", "name": "db.query", "kind": 1});
    let resp = client()
        .post(format!("{base}/v1/traces"))
        .json(&traces(vec![internal]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);

    // A payload that does not decode is a 400 naming the field.
    let (status, body) = post_json(
        &base,
        "/v1/traces",
        &json!({"resourceSpans": [{"scopeSpans": {}}]}),
    )
    .await;
    let msg = expect_error(status, &body, 400, "invalid_request");
    assert!(
        msg.starts_with("OTLP JSON $.resourceSpans[0].scopeSpans: invalid type: map"),
        "{msg}"
    );
}

#[tokio::test]
async fn protobuf_extract_keeps_binary_bodies() {
    let server = start(None, None).await;
    let base = server.uri();
    let id = create_session(&base, "capture").await;
    let kv = |k: &str, v: any_value::Value| KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    };
    let s = |v: &str| any_value::Value::StringValue(v.into());
    let payload = pt::TracesData {
        resource_spans: vec![pt::ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", s("images"))],
                ..Default::default()
            }),
            scope_spans: vec![pt::ScopeSpans {
                spans: vec![pt::Span {
                    trace_id: vec![1; 16],
                    span_id: vec![2; 8],
                    kind: 2,
                    attributes: vec![
                        kv("sp.span.type", s("extract")),
                        kv("sp.session.id", s(&id)),
                        kv("sp.traffic.direction", s("inbound")),
                        kv("url.host", s("app:8081")),
                        kv("url.path", s("/logo.png?size=2")),
                        kv("http.request.header.:method", s("GET")),
                        kv("http.response.status_code", any_value::Value::IntValue(200)),
                        kv("http.response.header.content-type", s("image/png")),
                        kv(
                            "http.response.body",
                            any_value::Value::BytesValue(vec![0x89, b'P', b'N', b'G', 0, 0xff]),
                        ),
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let resp = client()
        .post(format!("{base}/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(payload.encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let session = server.store().session(&id).unwrap();
    let hops = session.captured();
    assert_eq!(hops.len(), 1);
    assert_eq!(hops[0].method, "GET");
    assert_eq!(hops[0].path, "/logo.png");
    assert_eq!(hops[0].query.as_deref(), Some("size=2"));
    assert_eq!(hops[0].service.as_deref(), Some("images"));
    assert_eq!(
        hops[0].response_body,
        Some(Body::Binary(vec![0x89, b'P', b'N', b'G', 0, 0xff]))
    );
    // And it survives the trip through the case file.
    let case = Case::from_slice(&session.capture_case().to_json_bytes()).unwrap();
    assert_eq!(
        case.exchanges().unwrap()[0].response_body,
        hops[0].response_body
    );
}
