//! Replay from a loaded case through the public engine API: index lookups, body preference,
//! recorded order, repetition, directions, modes and load errors.

use std::sync::Arc;

use softprobe_runtime::Mode;
use softprobe_runtime::case::{Body, Case, Direction, Exchange, SpanId, TraceId};
use softprobe_runtime::replay::{Decision, Engine, IndexedCase, Layer, Origin, Request, Response};
use softprobe_runtime::rules::parse_rules_document;

fn hop(
    n: u8,
    direction: Direction,
    method: &str,
    host: &str,
    path_and_query: &str,
    request_body: Option<&str>,
    (status, response_body): (u16, &str),
) -> Exchange {
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
        None => (path_and_query.to_owned(), None),
    };
    Exchange {
        direction,
        service: Some("checkout".into()),
        session_id: Some("sess_test".into()),
        span_type: Some("extract".into()),
        method: method.into(),
        scheme: Some("https".into()),
        host: host.into(),
        path,
        query,
        request_headers: vec![("content-type".into(), "application/json".into())],
        request_body: request_body.map(|b| Body::Text(b.into())),
        status: Some(status),
        response_headers: vec![
            ("content-type".into(), "application/json".into()),
            ("content-length".into(), response_body.len().to_string()),
            ("x-recorded".into(), n.to_string()),
        ],
        response_body: Some(Body::Text(response_body.into())),
        trace_id: TraceId([1; 16]),
        span_id: SpanId([n; 8]),
        parent_span_id: None,
        name: format!("HTTP {method}"),
        start_time_unix_nano: u64::from(n),
        end_time_unix_nano: u64::from(n) + 1,
        extra_attributes: vec![],
    }
}

fn case_of(hops: &[Exchange]) -> Arc<Case> {
    let mut case = Case::new("checkout-happy-path", "2026-04-20T10:00:00Z");
    case.push_exchanges(hops);
    // Round-trip through the file format so the engine reads what a user's file holds.
    Arc::new(Case::from_slice(&case.to_json_bytes()).unwrap())
}

fn request(method: &str, host: &str, path_and_query: &str, body: Option<&str>) -> Request {
    let mut ex = hop(
        0,
        Direction::Outbound,
        method,
        host,
        path_and_query,
        body,
        (0, ""),
    );
    ex.request_headers
        .push(("traceparent".into(), "00-01-02-01".into()));
    Request::from_exchange(&ex)
}

fn answered(decision: &Decision) -> (&Response, &Origin) {
    match decision {
        Decision::Respond {
            response, origin, ..
        } => (response, origin),
        other => panic!("expected an answer, got {other:?}"),
    }
}

fn body_of(decision: &Decision) -> String {
    let (response, _) = answered(decision);
    String::from_utf8(response.body.as_ref().unwrap().as_bytes().to_vec()).unwrap()
}

fn stripe_case() -> Arc<Case> {
    case_of(&[
        hop(
            1,
            Direction::Inbound,
            "POST",
            "app",
            "/checkout",
            Some("{}"),
            (200, r#"{"ok":true}"#),
        ),
        hop(
            2,
            Direction::Outbound,
            "POST",
            "api.stripe.com",
            "/v1/payment_intents",
            Some(r#"{"amount":1000,"currency":"usd"}"#),
            (200, r#"{"id":"pi_1"}"#),
        ),
        hop(
            3,
            Direction::Outbound,
            "POST",
            "api.stripe.com",
            "/v1/payment_intents",
            Some(r#"{"amount":2000,"currency":"usd"}"#),
            (200, r#"{"id":"pi_2"}"#),
        ),
        hop(
            4,
            Direction::Outbound,
            "GET",
            "fragment",
            "/shipping?zip=1",
            None,
            (200, r#"{"days":1}"#),
        ),
        hop(
            5,
            Direction::Outbound,
            "GET",
            "fragment",
            "/shipping?zip=1",
            None,
            (200, r#"{"days":2}"#),
        ),
        hop(
            6,
            Direction::Outbound,
            "GET",
            "fragment:8080",
            "/rates",
            None,
            (503, "busy"),
        ),
    ])
}

fn replay_engine() -> Engine {
    let mut engine = Engine::new(Mode::Replay);
    engine
        .load_case(stripe_case(), "cases/checkout.case.json")
        .unwrap();
    engine
}

#[test]
fn an_outbound_request_is_answered_from_its_recording() {
    let engine = replay_engine();
    let d = engine.decide(&request("GET", "fragment:8080", "/rates", None));
    let (response, origin) = answered(&d);
    assert_eq!(response.status, 503);
    assert_eq!(response.body, Some(Body::Text("busy".into())));
    // Framing headers of the recorded connection are not replayed; the rest are.
    assert_eq!(
        response.headers,
        vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            ("x-recorded".to_owned(), "6".to_owned())
        ]
    );
    assert_eq!(
        origin,
        &Origin::Case {
            span_id: SpanId([6; 8]),
            json_path: "$.traces[0].resourceSpans[0].scopeSpans[0].spans[5]".into()
        }
    );
}

#[test]
fn host_case_default_ports_and_method_case_do_not_matter() {
    let engine = replay_engine();
    let d = engine.decide(&request("get", "FRAGMENT:443", "/shipping?zip=1", None));
    assert_eq!(body_of(&d), r#"{"days":1}"#);
    // A non-default port is part of the request line.
    let d = engine.decide(&request("GET", "fragment", "/rates", None));
    assert_eq!(d, Decision::Passthrough { origin: None });
    // So is the query.
    let d = engine.decide(&request("GET", "fragment", "/shipping?zip=2", None));
    assert_eq!(d, Decision::Passthrough { origin: None });
}

#[test]
fn an_equal_body_wins_even_out_of_recorded_order_and_json_compares_semantically() {
    let engine = replay_engine();
    let second = engine.decide(&request(
        "POST",
        "api.stripe.com",
        "/v1/payment_intents",
        Some(r#"{ "currency": "usd", "amount": 2000.0 }"#),
    ));
    assert_eq!(body_of(&second), r#"{"id":"pi_2"}"#);
    let first = engine.decide(&request(
        "POST",
        "api.stripe.com",
        "/v1/payment_intents",
        Some(r#"{"amount":1000,"currency":"usd"}"#),
    ));
    assert_eq!(body_of(&first), r#"{"id":"pi_1"}"#);
    // The same body again repeats its own recording rather than another one.
    let again = engine.decide(&request(
        "POST",
        "api.stripe.com",
        "/v1/payment_intents",
        Some(r#"{"amount":2000,"currency":"usd"}"#),
    ));
    assert_eq!(body_of(&again), r#"{"id":"pi_2"}"#);
}

#[test]
fn without_an_equal_body_recordings_answer_in_order_then_the_last_repeats() {
    let engine = replay_engine();
    let bodies: Vec<String> = (0..4)
        .map(|_| body_of(&engine.decide(&request("GET", "fragment", "/shipping?zip=1", None))))
        .collect();
    assert_eq!(
        bodies,
        vec![
            r#"{"days":1}"#,
            r#"{"days":2}"#,
            r#"{"days":2}"#,
            r#"{"days":2}"#
        ]
    );
    let changed = engine.decide(&request(
        "POST",
        "api.stripe.com",
        "/v1/payment_intents",
        Some(r#"{"amount":3000}"#),
    ));
    assert_eq!(body_of(&changed), r#"{"id":"pi_1"}"#);
}

#[test]
fn inbound_hops_are_never_answered_from_the_case() {
    let engine = replay_engine();
    let mut req = request("POST", "app", "/checkout", Some("{}"));
    req.direction = Direction::Inbound;
    assert_eq!(engine.decide(&req), Decision::Passthrough { origin: None });
}

#[test]
fn only_replay_mode_answers_from_the_case_but_a_replay_rule_works_in_any_mode() {
    for mode in [Mode::Capture, Mode::Generate] {
        let mut engine = Engine::new(mode);
        engine.load_case(stripe_case(), "c.json").unwrap();
        let req = request("GET", "fragment:8080", "/rates", None);
        assert_eq!(
            engine.decide(&req),
            Decision::Passthrough { origin: None },
            "{mode}"
        );
        engine.set_session_rules(
            parse_rules_document(
                br#"[{"name": "from-case", "when": {"host": "fragment:8080"}, "then": {"action": "replay"}}]"#,
                "rules.json",
            )
            .unwrap(),
        );
        let d = engine.decide(&req);
        let (response, origin) = answered(&d);
        assert_eq!(response.status, 503);
        assert_eq!(
            origin,
            &Origin::Rule {
                layer: Layer::Session,
                name: Some("from-case".into())
            }
        );
    }
}

#[test]
fn a_replay_rule_without_a_candidate_falls_through() {
    let mut engine = Engine::new(Mode::Generate);
    engine.set_session_rules(
        parse_rules_document(
            br#"[{"priority": 1, "then": {"action": "replay"}},
                 {"then": {"action": "mock", "response": {"status": 204}}}]"#,
            "rules.json",
        )
        .unwrap(),
    );
    // No case at all: the replay rule is a miss and the mock below it answers.
    let d = engine.decide(&request("GET", "x", "/", None));
    assert_eq!(answered(&d).0.status, 204);
    engine.load_case(stripe_case(), "c.json").unwrap();
    let d = engine.decide(&request("GET", "x", "/", None));
    assert_eq!(answered(&d).0.status, 204);
    let d = engine.decide(&request("GET", "fragment:8080", "/rates", None));
    assert_eq!(answered(&d).0.status, 503);
}

#[test]
fn unused_captures_are_the_outbound_hops_never_replayed() {
    let engine = replay_engine();
    assert_eq!(engine.case_hop_counts(), (1, 5));
    let ids = |list: Vec<Exchange>| list.iter().map(|e| e.span_id.0[0]).collect::<Vec<_>>();
    assert_eq!(ids(engine.unused_captures()), vec![2, 3, 4, 5, 6]);
    engine.decide(&request("GET", "fragment", "/shipping?zip=1", None));
    engine.decide(&request(
        "POST",
        "api.stripe.com",
        "/v1/payment_intents",
        Some(r#"{"amount":2000,"currency":"usd"}"#),
    ));
    assert_eq!(ids(engine.unused_captures()), vec![2, 5, 6]);
}

#[test]
fn loading_a_new_case_replaces_the_old_one_and_resets_usage() {
    let mut engine = replay_engine();
    engine.decide(&request("GET", "fragment:8080", "/rates", None));
    let other = case_of(&[hop(
        9,
        Direction::Outbound,
        "GET",
        "other",
        "/x",
        None,
        (201, "new"),
    )]);
    engine.load_case(other, "other.case.json").unwrap();
    assert_eq!(engine.case().unwrap().case_id, "checkout-happy-path");
    assert_eq!(engine.case_exchanges().len(), 1);
    let rates = engine.decide(&request("GET", "fragment:8080", "/rates", None));
    assert_eq!(rates, Decision::Passthrough { origin: None });
    assert_eq!(
        body_of(&engine.decide(&request("GET", "other", "/x", None))),
        "new"
    );
    assert!(engine.unused_captures().is_empty());
}

#[test]
fn case_rules_are_loaded_and_errors_name_the_case_file_and_path() {
    let mut case = (*stripe_case()).clone();
    case.rules = Some(vec![serde_json::json!({
        "id": "slow-rates", "latencyMs": 250,
        "when": {"path": "/rates"},
        "then": {"action": "mock", "response": {"status": 200, "body": {"fast": false}}}
    })]);
    let mut engine = Engine::new(Mode::Replay);
    engine
        .load_case(Arc::new(case.clone()), "c.case.json")
        .unwrap();
    assert_eq!(engine.rule_counts(), (0, 1, 0));
    match engine.decide(&request("GET", "fragment:8080", "/rates", None)) {
        Decision::Respond {
            response,
            latency,
            origin,
            injected_error,
        } => {
            assert_eq!(response.body, Some(Body::Text(r#"{"fast":false}"#.into())));
            assert_eq!(latency, Some(std::time::Duration::from_millis(250)));
            assert_eq!(
                origin,
                Origin::Rule {
                    layer: Layer::Case,
                    name: Some("slow-rates".into())
                }
            );
            assert!(!injected_error);
        }
        other => panic!("{other:?}"),
    }

    case.rules = Some(vec![
        serde_json::json!({"then": {"action": "mock", "respons": {}}}),
    ]);
    let err = engine
        .load_case(Arc::new(case), "bad.case.json")
        .unwrap_err();
    assert_eq!(err.json_path, "$.rules[0].then.respons", "{err}");
    assert!(
        err.to_string()
            .starts_with("bad.case.json: $.rules[0].then.respons: unknown field"),
        "{err}"
    );
    // The failed load kept the previous case and its rules.
    assert_eq!(engine.rule_counts(), (0, 1, 0));
}

#[test]
fn a_span_that_is_not_a_hop_is_a_load_error_naming_its_path() {
    let mut case = (*stripe_case()).clone();
    case.traces[0].resource_spans[0].scope_spans[0].spans[2]
        .attributes
        .retain(|kv| kv.key != "http.request.method");
    let mut engine = Engine::new(Mode::Replay);
    let err = engine
        .load_case(Arc::new(case), "broken.case.json")
        .unwrap_err();
    assert_eq!(
        err.json_path,
        "$.traces[0].resourceSpans[0].scopeSpans[0].spans[2]"
    );
    assert!(err.message.contains("http.request.method"), "{err}");
    assert!(engine.case().is_none());
}

#[test]
fn without_repeat_last_an_exhausted_request_is_a_miss() {
    let mut engine = replay_engine();
    engine.set_repeat_last(false);
    let shipping = || request("GET", "fragment", "/shipping?zip=1", None);
    assert_eq!(body_of(&engine.decide(&shipping())), r#"{"days":1}"#);
    assert_eq!(body_of(&engine.decide(&shipping())), r#"{"days":2}"#);
    assert_eq!(
        engine.decide(&shipping()),
        Decision::Passthrough { origin: None }
    );
    let rates = || request("GET", "fragment:8080", "/rates", None);
    assert_eq!(answered(&engine.decide(&rates())).0.status, 503);
    assert_eq!(
        engine.decide(&rates()),
        Decision::Passthrough { origin: None }
    );
    // An equal body is preferred; once it is used, another unused recording still answers.
    let intent = |amount: u32| {
        request(
            "POST",
            "api.stripe.com",
            "/v1/payment_intents",
            Some(&format!(r#"{{"amount":{amount},"currency":"usd"}}"#)),
        )
    };
    assert_eq!(body_of(&engine.decide(&intent(2000))), r#"{"id":"pi_2"}"#);
    assert_eq!(body_of(&engine.decide(&intent(2000))), r#"{"id":"pi_1"}"#);
    assert_eq!(
        engine.decide(&intent(2000)),
        Decision::Passthrough { origin: None }
    );
}

#[test]
fn engines_sharing_one_indexed_case_keep_their_own_record_of_used_hops() {
    let indexed = IndexedCase::build(stripe_case(), "cases/checkout.case.json").unwrap();
    let engine_of = || {
        let mut engine = Engine::new(Mode::Replay);
        engine.load_indexed(&indexed);
        engine.set_repeat_last(false);
        engine
    };
    let (first, second) = (engine_of(), engine_of());
    assert!(
        Arc::ptr_eq(first.case().unwrap(), second.case().unwrap()),
        "both engines replay the one indexed case"
    );
    let shipping = || request("GET", "fragment", "/shipping?zip=1", None);
    assert_eq!(body_of(&first.decide(&shipping())), r#"{"days":1}"#);
    assert_eq!(body_of(&first.decide(&shipping())), r#"{"days":2}"#);
    assert_eq!(
        first.decide(&shipping()),
        Decision::Passthrough { origin: None }
    );
    // The first engine used up both recordings; the second starts from the first of them.
    assert_eq!(body_of(&second.decide(&shipping())), r#"{"days":1}"#);
    assert_eq!(
        second.unused_recordings().len(),
        first.unused_recordings().len() + 1,
        "the second engine left one more shipping recording unused"
    );
    assert_eq!(indexed.exchanges().len(), first.case_exchanges().len());
}
