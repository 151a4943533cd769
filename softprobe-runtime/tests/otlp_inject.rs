//! `POST /v1/inject` over HTTP with JSON and protobuf payloads: hits carry the response as
//! span attributes, misses are 404, strict misses 599 with the miss report.

mod support;

use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1 as pt;
use prost::Message as _;
use serde_json::{Value, json};
use support::*;

fn inject_span(session: &str, method: &str, host: &str, path: &str) -> Value {
    Hop {
        span_type: "inject",
        ..Hop::outbound(session, method, host, path)
    }
    .span()
}

/// The attributes of the one span of an OTLP JSON answer, as a map.
fn answer_attrs(body: &Value) -> serde_json::Map<String, Value> {
    let span = &body["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
    span["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|kv| {
            let v = &kv["value"];
            let value = v
                .get("stringValue")
                .or_else(|| v.get("intValue"))
                .cloned()
                .unwrap();
            (kv["key"].as_str().unwrap().to_owned(), value)
        })
        .collect()
}

async fn with_rules(base: &str, id: &str, rules: Value) {
    let (status, body) = post_json(base, &format!("/v1/sessions/{id}/rules"), &rules).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn json_inject_hit_miss_and_counts() {
    let server = start(None, None).await;
    let base = server.uri();
    let id = create_session(&base, "replay").await;
    with_rules(
        &base,
        &id,
        json!({"version": 1, "rules": [{"id": "ship", "when": {"host": "fragment", "path": "/shipping"},
            "then": {"action": "mock", "response": {"status": 201, "headers": {"x-stub": "1"}, "body": {"days": 2}}}}]}),
    )
    .await;

    let payload = traces(vec![inject_span(&id, "GET", "fragment", "/shipping")]);
    let (status, body) = post_json(&base, "/v1/inject", &payload).await;
    assert_eq!(status, 200, "{body}");
    softprobe_runtime::case::validate::validate_json(
        softprobe_runtime::case::validate::SchemaKind::Trace,
        &body,
    )
    .unwrap();
    let attrs = answer_attrs(&body);
    assert_eq!(attrs["http.response.status_code"], "201");
    assert_eq!(attrs["http.response.header.x-stub"], "1");
    assert_eq!(
        attrs["http.response.header.content-type"],
        "application/json"
    );
    assert_eq!(attrs["http.response.body"], r#"{"days":2}"#);
    assert_eq!(attrs["sp.session.id"], id.as_str());
    // The request's span comes back with the response added.
    assert_eq!(attrs["url.path"], "/shipping");
    assert_eq!(attrs["sp.span.type"], "inject");
    let span = &body["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
    assert_eq!(span["traceId"], TRACE_ID);
    assert_eq!(span["spanId"], "eee19b7ec3c1b174");

    let payload = traces(vec![inject_span(&id, "GET", "elsewhere", "/x")]);
    let resp = client()
        .post(format!("{base}/v1/inject"))
        .json(&payload)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);

    let (_, stats) = get_json(&base, &format!("/v1/sessions/{id}/stats")).await;
    assert_eq!(stats["injectedSpans"], 1);
    assert_eq!(stats["stats"]["injectedSpans"], 1);

    let metrics = metrics_text(&base).await;
    assert_metric(&metrics, "softprobe_inject_total{result=\"hit\"} 1");
    assert_metric(&metrics, "softprobe_inject_total{result=\"miss\"} 1");
    assert_metric(&metrics, "softprobe_inject_duration_seconds_count 2");
}

#[tokio::test]
async fn replay_session_answers_from_the_loaded_case() {
    let server = start(None, None).await;
    let base = server.uri();
    let id = create_session(&base, "replay").await;
    let (status, body) = post_json(
        &base,
        &format!("/v1/sessions/{id}/load-case"),
        &sample_case(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let span = Hop {
        span_type: "inject",
        request_headers: vec![("content-type", "application/json")],
        request_body: Some(r#"{"amount":1000}"#),
        ..Hop::outbound(&id, "POST", "api.stripe.com", "/v1/payment_intents")
    }
    .span();
    let (status, body) = post_json(&base, "/v1/inject", &traces(vec![span])).await;
    assert_eq!(status, 200, "{body}");
    let attrs = answer_attrs(&body);
    assert_eq!(attrs["http.response.status_code"], "201");
    assert_eq!(
        attrs["http.response.body"],
        r#"{"id":"pi_1","status":"succeeded"}"#
    );
}

#[tokio::test]
async fn strict_miss_is_599_with_the_report_and_kept_in_state() {
    let server = start(None, None).await;
    let base = server.uri();
    let id = create_session(&base, "replay").await;
    post_json(
        &base,
        &format!("/v1/sessions/{id}/load-case"),
        &sample_case(),
    )
    .await;
    let (status, _) = post_json(
        &base,
        &format!("/v1/sessions/{id}/policy"),
        &json!({"externalHttp": "strict"}),
    )
    .await;
    assert_eq!(status, 200);

    let payload = traces(vec![inject_span(
        &id,
        "POST",
        "api.stripe.com",
        "/v1/refunds",
    )]);
    let resp = client()
        .post(format!("{base}/v1/inject"))
        .json(&payload)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 599);
    assert_eq!(resp.headers()["x-softprobe-strict-miss"], "1");
    let (_, body) = json_of(resp).await;
    assert_eq!(body["error"]["code"], "strict_miss");
    softprobe_runtime::case::validate::validate_json(
        softprobe_runtime::case::validate::SchemaKind::StrictMissResponse,
        &body,
    )
    .unwrap();
    assert_eq!(body["sessionId"], id.as_str());
    assert_eq!(body["request"]["method"], "POST");
    assert!(
        body["request"]["url"]
            .as_str()
            .unwrap()
            .contains("/v1/refunds"),
        "{body}"
    );
    let candidates = body["candidates"].as_array().unwrap();
    assert!(!candidates.is_empty() && candidates.len() <= 3, "{body}");
    assert!(
        candidates[0]["url"]
            .as_str()
            .unwrap()
            .contains("/v1/payment_intents")
    );

    let (_, state) = get_json(&base, &format!("/v1/sessions/{id}/state")).await;
    assert_eq!(state["stats"]["strictMisses"], 1);
    assert_eq!(state["strictMisses"].as_array().unwrap().len(), 1);
    assert_eq!(state["strictMisses"][0], body);

    // Inbound hops never strict-miss.
    let inbound = Hop {
        span_type: "inject",
        direction: "inbound",
        ..Hop::outbound(&id, "GET", "app.local", "/anything")
    }
    .span();
    let resp = client()
        .post(format!("{base}/v1/inject"))
        .json(&traces(vec![inbound]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);

    let metrics = metrics_text(&base).await;
    assert_metric(&metrics, "softprobe_inject_total{result=\"strict_miss\"} 1");
}

#[tokio::test]
async fn error_rules_count_as_injected_errors_and_latency_is_honoured() {
    let server = start(None, None).await;
    let base = server.uri();
    let id = create_session(&base, "replay").await;
    with_rules(
        &base,
        &id,
        json!([{"id": "down", "latencyMs": 150, "when": {"host": "flaky"}, "then": {"action": "error", "response": {"status": 503, "body": "unavailable"}}}]),
    )
    .await;
    let started = Instant::now();
    let (status, body) = post_json(
        &base,
        "/v1/inject",
        &traces(vec![inject_span(&id, "GET", "flaky", "/")]),
    )
    .await;
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(status, 200, "{body}");
    let attrs = answer_attrs(&body);
    assert_eq!(attrs["http.response.status_code"], "503");
    assert_eq!(attrs["http.response.body"], "unavailable");
    let metrics = metrics_text(&base).await;
    assert_metric(&metrics, "softprobe_inject_total{result=\"error\"} 1");
}

fn proto_kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        ..Default::default()
    }
}

/// An inject payload as the original Envoy proxy sends it: protobuf, method and host only
/// in pseudo-headers, the query inside `url.path`.
fn envoy_style_inject(session: &str) -> Vec<u8> {
    pt::TracesData {
        resource_spans: vec![pt::ResourceSpans {
            scope_spans: vec![pt::ScopeSpans {
                spans: vec![pt::Span {
                    trace_id: vec![7; 16],
                    span_id: vec![8; 8],
                    name: "inject".into(),
                    kind: 3,
                    attributes: vec![
                        proto_kv("sp.span.type", "inject"),
                        proto_kv("sp.session.id", session),
                        proto_kv("sp.traffic.direction", "outbound"),
                        proto_kv("url.host", "proxy:8084"),
                        proto_kv("url.path", "/items?page=2"),
                        proto_kv("http.request.header.:method", "GET"),
                        proto_kv("http.request.header.:authority", "proxy:8084"),
                        proto_kv("http.request.header.accept", "*/*"),
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

#[tokio::test]
async fn protobuf_inject_answers_in_protobuf_unless_json_is_accepted() {
    let server = start(None, None).await;
    let base = server.uri();
    let id = create_session(&base, "replay").await;
    with_rules(
        &base,
        &id,
        json!([{"id": "items", "when": {"method": "get", "host": "proxy:8084", "path": "/items"},
            "then": {"action": "mock", "response": {"status": 200, "headers": {"content-type": "image/png"}, "bodyBase64": "iVBORw0KGgo="}}}]),
    )
    .await;

    let resp = client()
        .post(format!("{base}/v1/inject"))
        .header("content-type", "application/x-protobuf")
        .header("accept", "application/x-protobuf")
        .body(envoy_style_inject(&id))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/x-protobuf");
    let answer = pt::TracesData::decode(resp.bytes().await.unwrap()).unwrap();
    let span = &answer.resource_spans[0].scope_spans[0].spans[0];
    assert_eq!(span.trace_id, vec![7; 16]);
    let get = |key: &str| {
        span.attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.clone())
            .and_then(|v| v.value)
    };
    assert_eq!(
        get("http.response.status_code"),
        Some(any_value::Value::IntValue(200))
    );
    assert_eq!(
        get("http.response.body"),
        Some(any_value::Value::StringValue("iVBORw0KGgo=".into()))
    );
    assert_eq!(
        get("sp.http.response.body.encoding"),
        Some(any_value::Value::StringValue("base64".into()))
    );

    // Same request, JSON accepted.
    let resp = client()
        .post(format!("{base}/v1/inject"))
        .header("content-type", "application/x-protobuf")
        .header("accept", "application/json")
        .body(envoy_style_inject(&id))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "application/json");
    let (status, body) = json_of(resp).await;
    assert_eq!(status, 200);
    assert_eq!(answer_attrs(&body)["http.response.status_code"], "200");
}

#[tokio::test]
async fn bad_inject_payloads() {
    let server = start(None, None).await;
    let base = server.uri();
    let (status, body) = post_json(&base, "/v1/inject", &json!({"resourceSpans": []})).await;
    let msg = expect_error(status, &body, 400, "invalid_request");
    assert!(msg.contains("no span"), "{msg}");

    let mut span = inject_span("sess_x", "GET", "h", "/");
    span["attributes"].as_array_mut().unwrap().remove(0);
    let (status, body) = post_json(&base, "/v1/inject", &traces(vec![span])).await;
    let msg = expect_error(status, &body, 400, "invalid_request");
    assert!(msg.contains("sp.session.id"), "{msg}");

    let (status, body) = post_json(
        &base,
        "/v1/inject",
        &traces(vec![inject_span("sess_gone", "GET", "h", "/")]),
    )
    .await;
    expect_error(status, &body, 404, "unknown_session");

    let resp = client()
        .post(format!("{base}/v1/inject"))
        .header("content-type", "application/x-protobuf")
        .body(vec![0xff, 0xff, 0xff])
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(resp).await;
    let msg = expect_error(status, &body, 400, "invalid_request");
    assert!(msg.starts_with("OTLP protobuf:"), "{msg}");
}
