//! Strict policy and `defaultOnMiss: error`: which hops get the strict-miss answer, and the
//! report that names the request and the nearest recordings.

use std::sync::Arc;

use serde_json::json;
use softprobe_runtime::Mode;
use softprobe_runtime::case::{Body, Case, Direction, Exchange, SpanId, TraceId};
use softprobe_runtime::policy::parse_policy;
use softprobe_runtime::replay::{Decision, Engine, MissReport, Request};
use softprobe_runtime::rules::parse_rules_document;

fn hop(
    n: u8,
    method: &str,
    host: &str,
    path: &str,
    query: Option<&str>,
    body: Option<&str>,
) -> Exchange {
    Exchange {
        direction: Direction::Outbound,
        service: None,
        session_id: None,
        span_type: None,
        method: method.into(),
        scheme: Some("https".into()),
        host: host.into(),
        path: path.into(),
        query: query.map(str::to_owned),
        request_headers: vec![
            ("content-type".into(), "application/json".into()),
            ("stripe-version".into(), "2024-06-20".into()),
            ("authorization".into(), "[REDACTED]".into()),
            ("traceparent".into(), "00-aa-bb-01".into()),
        ],
        request_body: body.map(|b| Body::Text(b.into())),
        status: Some(200),
        response_headers: vec![],
        response_body: Some(Body::Text("{}".into())),
        trace_id: TraceId([7; 16]),
        span_id: SpanId([n; 8]),
        parent_span_id: None,
        name: String::new(),
        start_time_unix_nano: 1,
        end_time_unix_nano: 2,
        extra_attributes: vec![],
    }
}

fn engine(mode: Mode, policy: &str) -> Engine {
    let mut case = Case::new("payments", "2026-04-20T10:00:00Z");
    case.push_exchanges(&[
        hop(
            1,
            "POST",
            "api.stripe.com",
            "/v1/payment_intents",
            None,
            Some(r#"{"amount":1000,"currency":"usd","meta":{"order":"A1"}}"#),
        ),
        hop(
            2,
            "GET",
            "api.stripe.com",
            "/v1/customers/cus_1",
            None,
            None,
        ),
        hop(3, "GET", "fragment", "/shipping", Some("zip=1"), None),
        hop(4, "DELETE", "other.example", "/x", None, None),
    ]);
    let mut engine = Engine::new(mode);
    engine
        .load_case(Arc::new(case), "cases/payments.case.json")
        .unwrap();
    engine.set_policy(parse_policy(policy.as_bytes(), "policy.json").unwrap());
    engine
}

fn outbound(
    method: &str,
    host: &str,
    path: &str,
    query: Option<&str>,
    body: Option<&str>,
) -> Request {
    let mut req = Request::from_exchange(&hop(0, method, host, path, query, body));
    req.headers
        .retain(|(n, _)| n != "authorization" && n != "traceparent");
    req.headers
        .push(("traceparent".into(), "00-cc-dd-01".into()));
    req
}

fn miss(d: Decision) -> MissReport {
    match d {
        Decision::StrictMiss(report) => *report,
        other => panic!("expected a strict miss, got {other:?}"),
    }
}

#[test]
fn strict_miss_report_names_the_request_and_the_nearest_recordings() {
    let engine = engine(Mode::Replay, r#"{"externalHttp": "strict"}"#);
    let req = outbound(
        "POST",
        "api.stripe.com",
        "/v1/payment_intents",
        Some("expand=x"),
        Some(r#"{"amount":1500,"currency":"usd","meta":{"order":"A1"},"extra":true}"#),
    );
    let report = miss(engine.decide(&req));
    let body = report.to_json("sess_abc");
    let expected_sha = {
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(req.body.as_ref().unwrap().as_bytes());
        digest
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    assert_eq!(
        body,
        json!({
            "error": {
                "code": "strict_miss",
                "message": "no rule or recorded exchange answers POST https://api.stripe.com/v1/payment_intents?expand=x and external HTTP is strict"
            },
            "sessionId": "sess_abc",
            "caseId": "payments",
            "caseSource": "cases/payments.case.json",
            "request": {
                "method": "POST",
                "url": "https://api.stripe.com/v1/payment_intents?expand=x",
                "bodySha256": expected_sha,
                "bodyBytes": req.body.as_ref().unwrap().len()
            },
            "candidates": [
                {
                    "method": "POST",
                    "url": "https://api.stripe.com/v1/payment_intents",
                    "spanId": "0101010101010101",
                    "jsonPath": "$.traces[0].resourceSpans[0].scopeSpans[0].spans[0]",
                    "differences": [
                        {"field": "query", "actual": "expand=x"},
                        {"field": "body $.amount", "expected": 1000, "actual": 1500},
                        {"field": "body $.extra", "actual": true}
                    ]
                },
                {
                    "method": "GET",
                    "url": "https://api.stripe.com/v1/customers/cus_1",
                    "spanId": "0202020202020202",
                    "jsonPath": "$.traces[0].resourceSpans[0].scopeSpans[0].spans[1]",
                    "differences": [
                        {"field": "method", "expected": "GET", "actual": "POST"},
                        {"field": "path", "expected": "/v1/customers/cus_1", "actual": "/v1/payment_intents"},
                        {"field": "query", "actual": "expand=x"},
                        {"field": "body", "actual": "{\"amount\":1500,\"currency\":\"usd\",\"meta\":{\"order\":\"A1\"},\"extra\":true}"}
                    ]
                },
                {
                    "method": "GET",
                    "url": "https://fragment/shipping?zip=1",
                    "spanId": "0303030303030303",
                    "jsonPath": "$.traces[0].resourceSpans[0].scopeSpans[0].spans[2]",
                    "differences": [
                        {"field": "method", "expected": "GET", "actual": "POST"},
                        {"field": "host", "expected": "fragment", "actual": "api.stripe.com"},
                        {"field": "path", "expected": "/shipping", "actual": "/v1/payment_intents"},
                        {"field": "query", "expected": "zip=1", "actual": "expand=x"},
                        {"field": "body", "actual": "{\"amount\":1500,\"currency\":\"usd\",\"meta\":{\"order\":\"A1\"},\"extra\":true}"}
                    ]
                }
            ]
        })
    );
    // The body reads back into the same report, so a remote miss reads as a local one.
    let (back, session) = MissReport::from_json(&body).unwrap();
    assert_eq!((back, session.as_str()), (report.clone(), "sess_abc"));
    let text = report.render_text();
    assert!(
        text.contains("nearest recorded exchanges in cases/payments.case.json:"),
        "{text}"
    );
    assert!(text.contains("1. POST https://api.stripe.com/v1/payment_intents  (span 0101010101010101, $.traces[0].resourceSpans[0].scopeSpans[0].spans[0])"), "{text}");
    assert!(
        text.contains("body $.amount: expected 1000, actual 1500"),
        "{text}"
    );
    assert!(
        text.contains("query: expected (absent), actual \"expand=x\""),
        "{text}"
    );
}

#[test]
fn differing_headers_are_listed_but_volatile_and_redacted_ones_are_not() {
    let engine = engine(Mode::Generate, r#"{"externalHttp": "strict"}"#);
    let mut req = outbound("GET", "api.stripe.com", "/v1/customers/cus_1", None, None);
    for (name, value) in &mut req.headers {
        if name == "stripe-version" {
            *value = "2025-01-01".into();
        }
    }
    // Generate mode never replays, so even the exact recording is a miss here.
    let report = miss(engine.decide(&req));
    let nearest = &report.candidates[0];
    assert_eq!(nearest.span_id, SpanId([2; 8]));
    let fields: Vec<&str> = nearest
        .differences
        .iter()
        .map(|d| d.field.as_str())
        .collect();
    assert_eq!(fields, vec!["header stripe-version"]);
    assert_eq!(nearest.differences[0].expected, Some(json!("2024-06-20")));
    assert_eq!(nearest.differences[0].actual, Some(json!("2025-01-01")));
}

#[test]
fn allow_passes_through_and_strict_blocks_only_non_allowlisted_outbound_hops() {
    let allow = engine(Mode::Replay, "{}");
    let unknown = outbound("GET", "api.github.com", "/", None, None);
    assert_eq!(
        allow.decide(&unknown),
        Decision::Passthrough { origin: None }
    );

    let strict = engine(
        Mode::Replay,
        r#"{"externalHttp": "strict", "externalAllowlist": ["api.github.com", "*.internal", "localhost:9000"]}"#,
    );
    assert_eq!(
        strict.decide(&unknown),
        Decision::Passthrough { origin: None }
    );
    let internal = outbound("GET", "billing.svc.INTERNAL:8443", "/", None, None);
    assert_eq!(
        strict.decide(&internal),
        Decision::Passthrough { origin: None }
    );
    assert!(matches!(
        strict.decide(&outbound("GET", "localhost:9001", "/", None, None)),
        Decision::StrictMiss(_)
    ));
    let mut inbound = outbound("GET", "app", "/checkout", None, None);
    inbound.direction = Direction::Inbound;
    assert_eq!(
        strict.decide(&inbound),
        Decision::Passthrough { origin: None }
    );
    // A recorded hop still answers under strict.
    assert!(matches!(
        strict.decide(&outbound(
            "GET",
            "fragment",
            "/shipping",
            Some("zip=1"),
            None
        )),
        Decision::Respond { .. }
    ));
}

#[test]
fn default_on_miss_error_misses_even_when_external_http_is_allow() {
    let engine = engine(
        Mode::Capture,
        r#"{"externalHttp": "allow", "defaultOnMiss": "error"}"#,
    );
    let report = miss(engine.decide(&outbound(
        "GET",
        "fragment",
        "/shipping",
        Some("zip=1"),
        None,
    )));
    assert!(
        report.message.ends_with("and defaultOnMiss is error"),
        "{}",
        report.message
    );
    // Capture mode does not replay, so the exact recording is the nearest with no difference.
    assert!(report.candidates[0].differences.is_empty());
    assert!(
        report
            .render_text()
            .contains("same request line; it was not selected")
    );
}

#[test]
fn passthrough_rules_beat_strict_and_capture_only_rules_never_answer() {
    let mut engine = engine(Mode::Replay, r#"{"externalHttp": "strict"}"#);
    engine.set_session_rules(
        parse_rules_document(
            br#"{"version": 1, "rules": [
                {"id": "redact", "priority": 100, "then": {"action": "capture_only", "captureOnly": {"redactHeaders": ["authorization"]}}},
                {"id": "github-live", "when": {"hostSuffix": "github.com"}, "then": {"action": "passthrough"}}
            ]}"#,
            "rules.json",
        )
        .unwrap(),
    );
    match engine.decide(&outbound("GET", "api.github.com", "/", None, None)) {
        Decision::Passthrough {
            origin: Some(origin),
        } => {
            assert_eq!(
                format!("{origin:?}"),
                r#"Rule { layer: Session, name: Some("github-live") }"#
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        engine.decide(&outbound("GET", "api.gitlab.com", "/", None, None)),
        Decision::StrictMiss(_)
    ));
}

#[test]
fn a_miss_without_a_case_says_so() {
    let mut engine = Engine::new(Mode::Replay);
    engine.set_policy(parse_policy(br#"{"externalHttp": "strict"}"#, "p").unwrap());
    let report = miss(engine.decide(&outbound("PUT", "x", "/y", None, Some(""))));
    assert!(report.candidates.is_empty());
    assert_eq!(report.request.body_sha256, None);
    assert_eq!(report.request.body_bytes, 0);
    let json = report.to_json("s");
    assert!(json["request"].get("bodySha256").is_none(), "{json}");
    assert_eq!(json["candidates"], json!([]));
    assert!(
        report.render_text().contains("no case is loaded"),
        "{}",
        report.render_text()
    );
}

#[test]
fn the_strict_miss_answer_is_a_599_with_its_marker_header_and_json_body() {
    let engine = engine(Mode::Replay, r#"{"externalHttp": "strict"}"#);
    let decision = engine.decide(&outbound("GET", "nowhere.example", "/", None, None));
    let response = decision.local_response("sess_q").unwrap();
    assert_eq!(response.status, 599);
    assert_eq!(
        response.headers,
        vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            ("x-softprobe-strict-miss".to_owned(), "1".to_owned())
        ]
    );
    let body: serde_json::Value =
        serde_json::from_slice(response.body.unwrap().as_bytes()).unwrap();
    assert_eq!(body["error"]["code"], "strict_miss");
    assert_eq!(body["sessionId"], "sess_q");
    assert_eq!(body["candidates"].as_array().unwrap().len(), 3);
    let pass = engine.decide(&outbound(
        "GET",
        "fragment",
        "/shipping",
        Some("zip=1"),
        None,
    ));
    assert!(pass.local_response("sess_q").is_some());
    let allow = engine_allow();
    assert_eq!(
        allow
            .decide(&outbound("GET", "nowhere.example", "/", None, None))
            .local_response("s"),
        None
    );
}

fn engine_allow() -> Engine {
    engine(Mode::Replay, "{}")
}
