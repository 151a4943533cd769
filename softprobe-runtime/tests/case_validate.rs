//! The validation API as its callers use it: warnings for the size guidance and legacy
//! spellings, located findings in JSON and YAML, and `validate_json` on control API bodies.

use serde_json::json;
use softprobe_runtime::case::validate::{
    Report, SchemaKind, Severity, validate_case, validate_json, validate_policy, validate_rules,
    validate_trace,
};
use softprobe_runtime::case::{Body, Case, Direction, Exchange, KeyValue, SpanId, TraceId};

fn exchange(direction: Direction, n: u8) -> Exchange {
    Exchange {
        direction,
        service: Some("checkout-api".into()),
        session_id: None,
        span_type: None,
        method: "GET".into(),
        scheme: Some("http".into()),
        host: if direction == Direction::Inbound {
            "127.0.0.1:8082".into()
        } else {
            "inventory".into()
        },
        path: format!("/items/{n}"),
        query: None,
        request_headers: vec![("accept".into(), "application/json".into())],
        request_body: None,
        status: Some(200),
        response_headers: vec![("content-type".into(), "application/json".into())],
        response_body: Some(Body::Text(format!("{{\"n\":{n}}}"))),
        trace_id: TraceId([7; 16]),
        span_id: SpanId([n.max(1), 1, 2, 3, 4, 5, 6, 7]),
        parent_span_id: None,
        name: String::new(),
        start_time_unix_nano: 1,
        end_time_unix_nano: 2,
        extra_attributes: Vec::new(),
    }
}

fn case_of(exchanges: &[Exchange]) -> Vec<u8> {
    let mut case = Case::new("generated", "2026-04-20T10:00:00Z");
    case.push_exchanges(exchanges);
    case.to_json_bytes()
}

fn codes(report: &Report, severity: Severity) -> Vec<&'static str> {
    report
        .findings
        .iter()
        .filter(|f| f.severity == severity)
        .map(|f| f.code)
        .collect()
}

#[test]
fn a_written_case_with_both_legs_has_no_finding() {
    let bytes = case_of(&[
        exchange(Direction::Inbound, 1),
        exchange(Direction::Outbound, 2),
    ]);
    let report = validate_case(&bytes, "generated.case.json");
    assert!(report.findings.is_empty(), "{report}");
    assert!(report.is_valid());
    assert_eq!(report.to_string(), "");
}

#[test]
fn size_guidance_gives_warnings_not_errors() {
    let mut hops = vec![exchange(Direction::Inbound, 0)];
    hops.extend((1..=100).map(|n| exchange(Direction::Outbound, n)));
    let mut wide = exchange(Direction::Outbound, 101);
    wide.extra_attributes = (0..130)
        .map(|i| KeyValue::string(format!("custom.{i}"), "x"))
        .collect();
    hops.push(wide);
    let mut big = exchange(Direction::Outbound, 102);
    big.response_body = Some(Body::Text("a".repeat(1_100_000)));
    hops.push(big);
    let report = validate_case(&case_of(&hops), "big.case.json");
    assert!(report.is_valid(), "{report}");
    let warnings = codes(&report, Severity::Warning);
    for code in [
        "too-many-spans",
        "too-many-attributes",
        "long-string",
        "large-trace",
    ] {
        assert!(warnings.contains(&code), "no {code}:\n{report}");
    }
    let long = report.warnings().find(|f| f.code == "long-string").unwrap();
    assert!(
        long.json_path.ends_with(".value") && long.message.contains("1074 KiB"),
        "{long:?}"
    );
}

#[test]
fn missing_legs_and_duplicate_span_ids_are_warnings() {
    let mut twin = exchange(Direction::Outbound, 3);
    twin.path = "/other".into();
    let bytes = case_of(&[exchange(Direction::Outbound, 3), twin]);
    let report = validate_case(&bytes, "dup.case.json");
    assert!(report.is_valid(), "{report}");
    assert_eq!(
        codes(&report, Severity::Warning),
        ["no-inbound", "duplicate-span-id"],
        "{report}"
    );
    let dup = report
        .warnings()
        .find(|f| f.code == "duplicate-span-id")
        .unwrap();
    assert_eq!(
        dup.json_path,
        "$.traces[0].resourceSpans[0].scopeSpans[0].spans[1].spanId"
    );
    assert!(
        dup.message
            .contains("already used by $.traces[0].resourceSpans[0].scopeSpans[0].spans[0]"),
        "{}",
        dup.message
    );
}

#[test]
fn legacy_spellings_suggest_the_canonical_names() {
    let text = r#"{"version": "1.0.0", "caseId": "legacy", "createdAt": "2026-04-20T10:00:00Z",
 "traces": [{"resourceSpans": [{"scopeSpans": [{"spans": [
  {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "0102030405060708", "kind": "SPAN_KIND_SERVER",
   "attributes": [
    {"key": "sp.traffic.direction", "value": {"stringValue": "outbound"}},
    {"key": "http.request.header.:method", "value": {"stringValue": "GET"}},
    {"key": "http.target", "value": {"stringValue": "/a?b=1"}},
    {"key": "http.request.header.:authority", "value": {"stringValue": "svc"}},
    {"key": "http.status_code", "value": {"intValue": 204}}]}]}]}]}]}"#;
    let report = validate_case(text.as_bytes(), "legacy.case.json");
    assert!(report.is_valid(), "{report}");
    let rendered = report.to_string();
    for expected in [
        "legacy.case.json:6:5: warning[legacy-attribute]: $.traces[0].resourceSpans[0].scopeSpans[0].spans[0].attributes[1]: `http.request.header.:method` is a legacy spelling; the method is read from this pseudo-header; write `http.request.method`",
        "legacy.case.json:7:5: warning[legacy-attribute]: $.traces[0].resourceSpans[0].scopeSpans[0].spans[0].attributes[2]: `http.target` is a legacy spelling; write `url.path` and `url.query`",
        "legacy.case.json:8:5: warning[legacy-attribute]: $.traces[0].resourceSpans[0].scopeSpans[0].spans[0].attributes[3]: `http.request.header.:authority` is a legacy spelling; the host is read from this pseudo-header; write `url.host`",
        "legacy.case.json:9:5: warning[legacy-attribute]: $.traces[0].resourceSpans[0].scopeSpans[0].spans[0].attributes[4]: `http.status_code` is a legacy spelling; write `http.response.status_code`",
    ] {
        assert!(
            rendered.contains(expected),
            "missing {expected}\nin:\n{rendered}"
        );
    }
}

#[test]
fn non_utf8_input_is_a_located_syntax_error() {
    let mut bytes = b"{\n  \"caseId\": \"".to_vec();
    bytes.push(0xff);
    bytes.extend_from_slice(b"\"\n}\n");
    let report = validate_case(&bytes, "bin.case.json");
    assert_eq!(
        report.to_string(),
        "bin.case.json:2:14: error[syntax]: $: the file is not UTF-8 text\n"
    );
}

#[test]
fn trace_documents_validate_on_their_own() {
    let good = json!({"resourceSpans": [{"resource": {"attributes": [
    {"key": "service.name", "value": {"stringValue": "checkout-api"}}]},
    "scopeSpans": [{"spans": [{
        "traceId": "W47/95gDgQPSabYzgT/GDA==", "spanId": "AQIDBAUGBwg=", "kind": "client",
        "startTimeUnixNano": 1776681022000000000u64, "endTimeUnixNano": "1776681022010000000",
        "attributes": [
            {"key": "sp.span.type", "value": {"stringValue": "inject"}},
            {"key": "http.request.header.:method", "value": {"stringValue": "GET"}},
            {"key": "url.host", "value": {"stringValue": "fragment"}},
            {"key": "url.path", "value": {"stringValue": "/shipping"}},
            {"key": "http.response.status_code", "value": {"intValue": "200"}}
        ]}]}]}]});
    let report = validate_trace(&serde_json::to_vec_pretty(&good).unwrap(), "inject.json");
    assert!(report.is_valid(), "{report}");
    assert!(validate_json(SchemaKind::Trace, &good).is_ok());

    let report = validate_trace(br#"{"resourceSpans": {}}"#, "bad.json");
    assert_eq!(
        report.to_string(),
        "bad.json:1:2: error[type]: $.resourceSpans: expected array, found an object\n"
    );
}

#[test]
fn bare_rule_arrays_and_yaml_documents_are_rules_documents() {
    let report = validate_rules(
        br#"[{"id": "a", "when": {"method": "GET"}, "then": {"action": "replay"}}]"#,
        "bare.json",
    );
    assert!(report.findings.is_empty(), "{report}");
    let yaml = b"- id: a\n  then:\n    action: mock\n    response:\n      status: 1000\n";
    let report = validate_rules(yaml, "mocks.yml");
    assert_eq!(
        report.to_string(),
        "mocks.yml:5:7: error[range]: $[0].then.response.status: 1000 is greater than the maximum of 599\n"
    );
}

#[test]
fn policies_in_yaml_are_detected_by_content() {
    let report = validate_policy(
        b"externalHttp: strict\nexternalAllowlist: ['*.internal']\ndefaultOnMiss: erorr\n",
        "policy",
    );
    assert_eq!(
        report.to_string(),
        "policy:3:1: error[enum]: $.defaultOnMiss: expected one of \"passthrough\", \"error\", found string \"erorr\"\n"
    );
}

#[test]
fn control_api_bodies_match_their_schemas() {
    let session = "sess_ZqOyyR3gT3qLXC2eDxo7TA";
    let good = [
        (
            SchemaKind::CreateSessionRequest,
            json!({"mode": "capture", "caseId": "checkout", "testName": "t"}),
        ),
        (
            SchemaKind::CreateSessionResponse,
            json!({"sessionId": session, "sessionRevision": 0}),
        ),
        (
            SchemaKind::ListSessionsResponse,
            json!({"sessions": [{"sessionId": session, "mode": "replay", "sessionRevision": 2, "createdAt": "2026-04-20T10:00:00Z", "caseId": "checkout"}]}),
        ),
        (
            SchemaKind::LoadCaseResponse,
            json!({"sessionId": session, "sessionRevision": 1, "caseId": "checkout", "traces": 1, "spans": 3}),
        ),
        (SchemaKind::RulesRequest, json!({"version": 1, "rules": []})),
        (
            SchemaKind::RulesResponse,
            json!({"sessionId": session, "sessionRevision": 2, "rules": 0}),
        ),
        (SchemaKind::PolicyRequest, json!({"externalHttp": "strict"})),
        (
            SchemaKind::PolicyResponse,
            json!({"sessionId": session, "sessionRevision": 3}),
        ),
        (
            SchemaKind::FixturesAuthRequest,
            json!({"tokens": ["t"], "cookies": [{"name": "sid", "value": "1", "domain": "example.com"}], "metadata": {"tenant": "acme"}}),
        ),
        (
            SchemaKind::FixturesAuthResponse,
            json!({"sessionId": session, "sessionRevision": 4}),
        ),
        (
            SchemaKind::StatsResponse,
            json!({"sessionId": session, "injectedSpans": 2, "extractedSpans": 2, "strictMisses": 0, "requestDrift": 0, "stats": {"injectedSpans": 2, "extractedSpans": 2, "strictMisses": 0, "requestDrift": 0}}),
        ),
        (SchemaKind::CloseRequest, json!({})),
        (
            SchemaKind::CloseResponse,
            json!({"sessionId": session, "closed": true, "casePath": null, "capturePath": null}),
        ),
        (
            SchemaKind::MetaResponse,
            json!({"name": "softprobe-runtime", "version": "0.1.0", "runtimeVersion": "0.1.0", "specVersion": "http-control-api@v1", "schemaVersion": "1", "caseFormatVersion": "1.0.0", "capabilities": ["replay"], "modes": ["capture", "replay", "generate"]}),
        ),
        (
            SchemaKind::HealthResponse,
            json!({"status": "ok", "specVersion": "http-control-api@v1", "schemaVersion": "1", "runtimeVersion": "0.1.0"}),
        ),
        (
            SchemaKind::ErrorResponse,
            json!({"error": {"code": "unknown_session", "message": "no session sess_x"}}),
        ),
    ];
    for (kind, body) in good {
        if let Err(errors) = validate_json(kind, &body) {
            panic!("{kind:?}: {errors:?}");
        }
    }
    let bad = [
        (
            SchemaKind::CreateSessionRequest,
            json!({}),
            "$",
            "missing required field `mode`",
        ),
        (
            SchemaKind::CreateSessionRequest,
            json!({"mode": "replay", "ttl": 5}),
            "$.ttl",
            "unknown field `ttl`; expected one of `caseId`, `mode`, `testName`",
        ),
        (
            SchemaKind::CreateSessionResponse,
            json!({"sessionId": "sess_short", "sessionRevision": 0}),
            "$.sessionId",
            "invalid value string \"sess_short\": sess_ followed by base64url (no padding) of 16 random bytes.",
        ),
        (
            SchemaKind::FixturesAuthRequest,
            json!({"cookies": [{"name": "sid"}]}),
            "$.cookies[0]",
            "missing required field `value`",
        ),
        (
            SchemaKind::ErrorResponse,
            json!({"error": {"code": "teapot", "message": ""}}),
            "$.error.code",
            "expected one of \"invalid_request\", \"capture_path_outside_root\", \"missing_bearer_token\", \"origin_not_allowed\", \"host_not_allowed\", \"invalid_bearer_token\", \"unknown_session\", \"not_found\", \"method_not_allowed\", \"payload_too_large\", \"unsupported_media_type\", \"too_many_sessions\", \"span_limit_exceeded\", \"internal_error\", \"store_unavailable\", found string \"teapot\"",
        ),
        (
            SchemaKind::CloseResponse,
            json!({"sessionId": session, "closed": false, "casePath": null, "capturePath": null}),
            "$.closed",
            "expected true, found boolean false",
        ),
    ];
    for (kind, body, path, message) in bad {
        let errors = validate_json(kind, &body).expect_err(path);
        assert_eq!(
            errors,
            vec![(path.to_owned(), message.to_owned())],
            "{kind:?}"
        );
    }
}

#[test]
fn strict_miss_and_state_bodies_match_their_schemas() {
    let session = "sess_ZqOyyR3gT3qLXC2eDxo7TA";
    let miss = json!({
        "error": {"code": "strict_miss", "message": "no rule or captured exchange answers POST https://api.stripe.com/v1/refunds"},
        "sessionId": session,
        "request": {"method": "POST", "url": "https://api.stripe.com/v1/refunds", "bodySha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "bodyBytes": 4},
        "candidates": [{"method": "POST", "url": "https://api.stripe.com/v1/payment_intents", "spanId": "a3f1c2d4e5b60718",
                        "differences": [{"field": "path", "expected": "/v1/payment_intents", "actual": "/v1/refunds"}]}]
    });
    assert_eq!(validate_json(SchemaKind::StrictMissResponse, &miss), Ok(()));
    let state = json!({
        "sessionId": session, "mode": "replay", "sessionRevision": 3, "createdAt": "2026-04-20T10:00:00Z",
        "case": {"caseId": "checkout", "traces": 1, "spans": 3, "inbound": 1, "outbound": 2},
        "policy": {"externalHttp": "strict", "externalAllowlist": [], "defaultOnMiss": "passthrough", "rules": []},
        "rules": {"policy": 0, "case": 1, "session": 2},
        "fixtures": null,
        "stats": {"injectedSpans": 1, "extractedSpans": 0, "strictMisses": 1, "requestDrift": 0},
        "strictMisses": [miss],
        "requestDrift": [],
        "unusedRecordings": []
    });
    assert_eq!(validate_json(SchemaKind::StateResponse, &state), Ok(()));
    let mut too_many = miss.clone();
    too_many["candidates"] = json!([
        miss["candidates"][0],
        miss["candidates"][0],
        miss["candidates"][0],
        miss["candidates"][0]
    ]);
    let errors = validate_json(SchemaKind::StrictMissResponse, &too_many).unwrap_err();
    assert_eq!(errors[0].0, "$.candidates");
}

#[test]
fn a_byte_order_mark_does_not_shift_or_break_anything() {
    let mut bytes = b"\xef\xbb\xbf".to_vec();
    bytes.extend_from_slice(&case_of(&[
        exchange(Direction::Inbound, 1),
        exchange(Direction::Outbound, 2),
    ]));
    let report = validate_case(&bytes, "bom.case.json");
    assert!(report.findings.is_empty(), "{report}");
}

#[test]
fn reports_serialize_for_machines() {
    let report = validate_policy(br#"{"externalHttp": "deny"}"#, "p.json");
    assert_eq!(
        serde_json::to_value(&report).unwrap(),
        json!({
            "sourceName": "p.json",
            "findings": [{
                "severity": "error",
                "code": "enum",
                "jsonPath": "$.externalHttp",
                "line": 1,
                "column": 2,
                "message": "expected one of \"strict\", \"allow\", found string \"deny\""
            }]
        })
    );
}

#[test]
fn the_schema_accepts_every_spelling_the_reader_accepts() {
    let text = r#"{"resourceSpans": [{
        "resource": null, "schemaUrl": null,
        "scopeSpans": [{"scope": null, "schemaUrl": null, "spans": [{
            "traceId": "5B8EFFF798038103D269B633813FC60C",
            "spanId": "AQIDBAUGBwg",
            "parentSpanId": null,
            "traceState": null,
            "name": "HTTP GET",
            "kind": "Client",
            "startTimeUnixNano": " +1776681022000000000 ",
            "endTimeUnixNano": 1776681022000000001,
            "droppedAttributesCount": "0", "flags": null, "events": null, "links": null,
            "droppedEventsCount": null, "droppedLinksCount": 0, "status": null,
            "attributes": [
                {"key": "http.method", "value": {"stringValue": "GET"}},
                {"key": "url.full", "value": {"stringValue": "http://inventory/stock"}},
                {"key": "http.status_code", "value": {"intValue": "+200"}},
                {"key": "ratio", "value": {"doubleValue": "-Infinity"}},
                {"key": "nan", "value": {"doubleValue": "nan"}},
                {"key": "whole", "value": {"intValue": 7.0}},
                {"key": "raw", "value": {"bytesValue": "AAEC"}},
                {"key": "empty", "value": {}},
                {"key": "list", "value": {"arrayValue": {"values": [{"boolValue": true}]}}},
                {"key": "map", "value": {"kvlistValue": {"values": [{"key": "k", "value": {"intValue": -3}}]}}}
            ]}]}]}]}"#;
    let lenient: serde_json::Value = serde_json::from_str(text).unwrap();
    let trace: softprobe_runtime::case::TracesData =
        serde_json::from_value(lenient.clone()).expect("the reader accepts it");
    assert_eq!(trace.resource_spans[0].scope_spans[0].spans[0].kind, 3);
    let report = validate_trace(
        &serde_json::to_vec_pretty(&lenient).unwrap(),
        "lenient.json",
    );
    assert!(report.is_valid(), "{report}");
}

#[test]
fn protocol_attributes_must_have_the_value_kind_the_spec_gives_them() {
    let mut grpc = exchange(Direction::Outbound, 3);
    grpc.extra_attributes = vec![
        KeyValue::string("rpc.system", "grpc"),
        KeyValue::int("rpc.grpc.status_code", 0),
        KeyValue::string("sp.http.response.body.content_encoding", "br"),
    ];
    let report = validate_case(&case_of(&[grpc.clone()]), "good.case.json");
    assert!(codes(&report, Severity::Error).is_empty(), "{report:#?}");

    // A status written as a string, a coding written as a number: both are named with where.
    grpc.extra_attributes = vec![
        KeyValue::string("rpc.grpc.status_code", "OK"),
        KeyValue::int("sp.http.response.body.content_encoding", 1),
    ];
    let report = validate_case(&case_of(&[grpc]), "bad.case.json");
    let errors: Vec<&str> = report
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .map(|f| f.json_path.as_str())
        .collect();
    assert_eq!(errors.len(), 2, "{report:#?}");
    assert!(
        errors.iter().all(|p| p.contains(".attributes[")),
        "{errors:?}"
    );
}

/// serde_json keeps the last of repeated keys without a word; validation names each
/// repetition with its line, also in a case that is otherwise valid.
#[test]
fn a_repeated_key_is_an_error_at_its_line() {
    let bytes = case_of(&[
        exchange(Direction::Inbound, 1),
        exchange(Direction::Outbound, 2),
    ]);
    let text = String::from_utf8(bytes).unwrap();
    assert!(validate_case(text.as_bytes(), "ok.case.json").is_valid());
    // The case id given twice, on a line of its own.
    let repeated = text.replacen(
        "\"caseId\": \"generated\",",
        "\"caseId\": \"generated\",\n  \"caseId\": \"again\",",
        1,
    );
    assert_ne!(repeated, text, "the case file names its caseId as expected");
    let report = validate_case(repeated.as_bytes(), "repeated.case.json");
    let finding = report
        .findings
        .iter()
        .find(|f| f.code == "duplicate-key")
        .unwrap_or_else(|| panic!("no duplicate-key finding: {report:?}"));
    assert_eq!(finding.severity, Severity::Error);
    assert_eq!(finding.json_path, "$.caseId");
    let line = repeated
        .lines()
        .position(|l| l.contains("\"again\""))
        .unwrap()
        + 1;
    assert_eq!(finding.line, line, "{report:?}");
    assert!(!report.is_valid());
}
