//! Which rule decides: priority, then layer (policy < case < session), then position;
//! `consume: once`; `latencyMs`; injected errors; capture-only redaction; concurrent hops.

use std::sync::Arc;
use std::time::Duration;

use softprobe_runtime::Mode;
use softprobe_runtime::case::{Body, Case, Direction};
use softprobe_runtime::policy::parse_policy;
use softprobe_runtime::replay::{Decision, Engine, Layer, Origin, Request};
use softprobe_runtime::rules::{Redaction, parse_rules_document};

fn request(path: &str) -> Request {
    Request {
        direction: Direction::Outbound,
        service: Some("checkout".into()),
        method: "GET".into(),
        scheme: Some("http".into()),
        host: "upstream".into(),
        path: path.into(),
        query: None,
        headers: vec![],
        body: None,
        trace_tags: vec![],
    }
}

/// A mock rule answering with its own name as the body.
fn mock(name: &str, priority: i64, extra: &str) -> String {
    format!(
        r#"{{"id": "{name}", "priority": {priority}, {extra} "then": {{"action": "mock", "response": {{"body": "{name}"}}}}}}"#
    )
}

fn rules(list: &[String]) -> Vec<softprobe_runtime::rules::Rule> {
    parse_rules_document(format!("[{}]", list.join(",")).as_bytes(), "rules.json").unwrap()
}

fn engine(policy: &[String], case: &[String], session: &[String]) -> Engine {
    let mut engine = Engine::new(Mode::Generate);
    let policy_doc = format!(r#"{{"rules": [{}]}}"#, policy.join(","));
    engine.set_policy(parse_policy(policy_doc.as_bytes(), "policy.json").unwrap());
    let mut c = Case::new("c", "2026-01-01T00:00:00Z");
    c.rules = Some(
        case.iter()
            .map(|r| serde_json::from_str(r).unwrap())
            .collect(),
    );
    engine.load_case(Arc::new(c), "c.case.json").unwrap();
    engine.set_session_rules(rules(session));
    engine
}

fn winner(engine: &Engine, path: &str) -> Option<String> {
    match engine.decide(&request(path)) {
        Decision::Respond { response, .. } => {
            Some(String::from_utf8(response.body.unwrap().as_bytes().to_vec()).unwrap())
        }
        Decision::Passthrough { .. } => None,
        Decision::StrictMiss(r) => panic!("unexpected strict miss: {}", r.render_text()),
    }
}

#[test]
fn precedence_table() {
    let s = |v: &[String]| v.to_vec();
    let table: Vec<(&str, Engine, Option<&str>)> = vec![
        (
            "higher priority wins across layers",
            engine(
                &s(&[mock("policy-hi", 10, "")]),
                &s(&[mock("case", 5, "")]),
                &s(&[mock("session", 0, "")]),
            ),
            Some("policy-hi"),
        ),
        (
            "equal priority: session beats case beats policy",
            engine(
                &s(&[mock("policy", 0, "")]),
                &s(&[mock("case", 0, "")]),
                &s(&[mock("session", 0, "")]),
            ),
            Some("session"),
        ),
        (
            "equal priority: case beats policy",
            engine(
                &s(&[mock("policy", 0, "")]),
                &s(&[mock("case", 0, "")]),
                &[],
            ),
            Some("case"),
        ),
        (
            "equal priority within a layer: the later rule wins",
            engine(&[], &[], &s(&[mock("first", 3, ""), mock("second", 3, "")])),
            Some("second"),
        ),
        (
            "priority beats position",
            engine(&[], &[], &s(&[mock("first", 4, ""), mock("second", 3, "")])),
            Some("first"),
        ),
        (
            "negative priority loses to the default",
            engine(
                &[],
                &s(&[mock("case", 0, "")]),
                &s(&[mock("session", -1, "")]),
            ),
            Some("case"),
        ),
        (
            "a non-matching rule is skipped",
            engine(
                &[],
                &s(&[mock("case", 0, "")]),
                &s(&[mock("session", 9, r#""when": {"path": "/other"},"#)]),
            ),
            Some("case"),
        ),
        (
            "rules with and without a path interleave by precedence",
            engine(
                &[],
                &s(&[mock("case-path", 9, r#""when": {"path": "/x"},"#)]),
                &s(&[
                    mock("generic-hi", 5, ""),
                    mock("path-lo", 1, r#""when": {"path": "/x"},"#),
                    mock("generic-mid", 3, ""),
                ]),
            ),
            Some("case-path"),
        ),
        (
            "equal priority: a later rule without a path beats an earlier one with it",
            engine(
                &[],
                &[],
                &s(&[
                    mock("path", 0, r#""when": {"path": "/x"},"#),
                    mock("generic", 0, ""),
                ]),
            ),
            Some("generic"),
        ),
        (
            "equal priority: a later rule with a path beats an earlier one without",
            engine(
                &[],
                &[],
                &s(&[
                    mock("generic", 0, ""),
                    mock("path", 0, r#""when": {"path": "/x"},"#),
                ]),
            ),
            Some("path"),
        ),
        (
            "a path rule for another path never applies",
            engine(
                &[],
                &[],
                &s(&[
                    mock("generic", 0, ""),
                    mock("other", 9, r#""when": {"path": "/y"},"#),
                ]),
            ),
            Some("generic"),
        ),
        ("no rules: passthrough", engine(&[], &[], &[]), None),
    ];
    for (what, engine, expected) in table {
        assert_eq!(winner(&engine, "/x").as_deref(), expected, "{what}");
    }
}

#[test]
fn a_once_rule_answers_once_then_the_next_candidate_decides() {
    let mut engine = engine(
        &[],
        &[],
        &[
            mock("always", 0, ""),
            mock("first-call", 1, r#""consume": "once","#),
        ],
    );
    assert_eq!(winner(&engine, "/x").as_deref(), Some("first-call"));
    assert_eq!(winner(&engine, "/x").as_deref(), Some("always"));
    assert_eq!(winner(&engine, "/x").as_deref(), Some("always"));
    // A once-rule that did not match stays available.
    let once_other = mock(
        "other-once",
        1,
        r#""consume": "once", "when": {"path": "/y"},"#,
    );
    engine.set_session_rules(rules(&[mock("always", 0, ""), once_other]));
    assert_eq!(winner(&engine, "/x").as_deref(), Some("always"));
    assert_eq!(winner(&engine, "/y").as_deref(), Some("other-once"));
    assert_eq!(winner(&engine, "/y").as_deref(), Some("always"));
    // Posting the rules again (SDKs send the whole list) starts them fresh.
    engine.set_session_rules(rules(&[mock("first-call", 1, r#""consume": "once","#)]));
    assert_eq!(winner(&engine, "/x").as_deref(), Some("first-call"));
    assert_eq!(winner(&engine, "/x"), None);
}

#[test]
fn a_once_rule_answers_exactly_once_under_concurrency() {
    let engine = Arc::new(engine(
        &[],
        &[],
        &[
            mock("fallback", 0, ""),
            mock("once", 1, r#""consume": "once","#),
        ],
    ));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let engine = Arc::clone(&engine);
            std::thread::spawn(move || {
                (0..50)
                    .filter(|_| winner(&engine, "/x").as_deref() == Some("once"))
                    .count()
            })
        })
        .collect();
    let total: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(total, 1);
}

#[test]
fn latency_error_flag_and_origin_are_carried_in_the_decision() {
    let engine = engine(
        &[],
        &[],
        &[r#"{"name": "outage", "latencyMs": 1500, "when": {"path": "/x"},
              "then": {"action": "error", "response": {"status": 503, "headers": {"Retry-After": "1"}, "body": "down"}}}"#
            .to_owned()],
    );
    match engine.decide(&request("/x")) {
        Decision::Respond {
            response,
            latency,
            origin,
            injected_error,
        } => {
            assert_eq!(response.status, 503);
            assert_eq!(
                response.headers,
                vec![("retry-after".to_owned(), "1".to_owned())]
            );
            assert_eq!(response.body, Some(Body::Text("down".into())));
            assert_eq!(latency, Some(Duration::from_millis(1500)));
            assert!(injected_error);
            assert_eq!(
                origin,
                Origin::Rule {
                    layer: Layer::Session,
                    name: Some("outage".into())
                }
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn capture_redaction_is_the_union_of_matching_capture_only_rules() {
    let capture_only = |name: &str, when: &str, headers: &str, paths: &str| {
        format!(
            r#"{{"id": "{name}", "when": {when}, "then": {{"action": "capture_only",
                 "captureOnly": {{"redactHeaders": {headers}, "redactJsonPaths": {paths}}}}}}}"#
        )
    };
    let engine = engine(
        &[capture_only("p", "{}", r#"["authorization"]"#, "[]")],
        &[capture_only(
            "c",
            r#"{"direction": "outbound"}"#,
            r#"["Cookie", "authorization"]"#,
            r#"["$.card.number"]"#,
        )],
        &[
            capture_only("s", r#"{"path": "/users"}"#, "[]", r#"["$.user.ssn"]"#),
            mock("answer", 0, ""),
        ],
    );
    assert_eq!(
        engine.capture_redaction(&request("/users")),
        Redaction {
            // Highest precedence first: session, then case, then policy.
            headers: vec!["cookie".into(), "authorization".into()],
            json_paths: vec!["$.user.ssn".into(), "$.card.number".into()],
        }
    );
    let mut inbound = request("/x");
    inbound.direction = Direction::Inbound;
    assert_eq!(
        engine.capture_redaction(&inbound),
        Redaction {
            headers: vec!["authorization".into()],
            json_paths: vec![],
        }
    );
    // Capture-only rules never answer: the mock does.
    assert_eq!(winner(&engine, "/users").as_deref(), Some("answer"));
    assert_eq!(engine.rule_counts(), (1, 1, 2));
}

#[test]
fn the_engine_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Engine>();
}
