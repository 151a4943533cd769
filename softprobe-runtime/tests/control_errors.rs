//! Every documented error of the control API, over real HTTP: each bad request gets its
//! code and a message naming what was wrong, and changes nothing stored.

mod support;

use serde_json::json;
use support::*;

#[tokio::test]
async fn bearer_token_is_required_on_v1_routes_only() {
    let server = start(Some("s3cret"), None).await;
    let base = server.uri();
    let c = client();

    let resp = c.get(format!("{base}/v1/sessions")).send().await.unwrap();
    let (status, body) = json_of(resp).await;
    expect_error(status, &body, 401, "missing_bearer_token");

    let resp = c
        .get(format!("{base}/v1/sessions"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(resp).await;
    expect_error(status, &body, 403, "invalid_bearer_token");

    let resp = c
        .get(format!("{base}/v1/sessions"))
        .basic_auth("user", Some("s3cret"))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(resp).await;
    expect_error(status, &body, 403, "invalid_bearer_token");

    // Unknown /v1 routes are not revealed without the token either.
    let resp = c.get(format!("{base}/v1/nope")).send().await.unwrap();
    let (status, body) = json_of(resp).await;
    expect_error(status, &body, 401, "missing_bearer_token");

    let resp = c
        .post(format!("{base}/v1/sessions"))
        .bearer_auth("s3cret")
        .json(&json!({"mode": "replay"}))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(resp).await;
    assert_eq!(status, 200, "{body}");

    let resp = c.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    insta::assert_json_snapshot!("missing_token", {
        let resp = c.get(format!("{base}/v1/meta")).send().await.unwrap();
        json_of(resp).await.1
    });
}

#[tokio::test]
async fn unknown_routes_and_methods() {
    let server = start(None, None).await;
    let base = server.uri();
    let (status, body) = get_json(&base, "/nope").await;
    let msg = expect_error(status, &body, 404, "not_found");
    assert_eq!(msg, "no route for GET /nope");

    let resp = client()
        .delete(format!("{base}/v1/sessions"))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(resp).await;
    let msg = expect_error(status, &body, 405, "method_not_allowed");
    assert_eq!(msg, "DELETE is not allowed on /v1/sessions");

    let (status, body) = get_json(&base, "/v1/sessions/sess_x/close").await;
    expect_error(status, &body, 405, "method_not_allowed");

    let (status, body) = get_json(&base, "/v1/proxy/ca.pem").await;
    expect_error(status, &body, 404, "not_found");
}

#[tokio::test]
async fn unknown_session_on_every_session_route() {
    let server = start(None, None).await;
    let base = server.uri();
    let id = "sess_AAAAAAAAAAAAAAAAAAAAAA";
    for route in ["load-case", "rules", "policy", "fixtures/auth", "close"] {
        let (status, body) =
            post_json(&base, &format!("/v1/sessions/{id}/{route}"), &json!({})).await;
        let msg = expect_error(status, &body, 404, "unknown_session");
        assert!(msg.contains(id), "{route}: {msg}");
    }
    for route in ["stats", "state"] {
        let (status, body) = get_json(&base, &format!("/v1/sessions/{id}/{route}")).await;
        expect_error(status, &body, 404, "unknown_session");
    }
    insta::assert_json_snapshot!(
        "unknown_session",
        get_json(&base, &format!("/v1/sessions/{id}/stats")).await.1
    );
}

#[tokio::test]
async fn create_rejects_bad_bodies_naming_the_field() {
    let server = start(None, None).await;
    let base = server.uri();
    let c = client();
    let cases = [
        (r#"{"mode": "replya"}"#, "$.mode: unknown variant `replya`"),
        (r#"{"mode": 3}"#, "$.mode: "),
        (
            r#"{"mode": "replay", "caseId": 7}"#,
            "$.caseId: invalid type: integer `7`, expected a string",
        ),
        (
            r#"{"mode": "replay", "colour": 1}"#,
            "$.colour: unknown field `colour`, expected one of `mode`, `caseId`, `testName`",
        ),
        (r#"{}"#, "$: missing field `mode`"),
        (
            r#"{"mode": "replay""#,
            "$: EOF while parsing an object (line 1, column 17)",
        ),
        (r#"{"mode": "replay"} trailing"#, "$: trailing characters"),
        ("", "request body is empty"),
        // Caught by the schema, not by the typed parse.
        (r#"{"mode": "replay", "caseId": ""}"#, "$.caseId: "),
    ];
    for (body, want) in cases {
        let resp = c
            .post(format!("{base}/v1/sessions"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let (status, answer) = json_of(resp).await;
        let msg = expect_error(status, &answer, 400, "invalid_request");
        assert!(msg.starts_with(want), "{body}: {msg}");
    }
    let (_, list) = get_json(&base, "/v1/sessions").await;
    assert_eq!(list, json!({"sessions": []}), "nothing was created");
}

#[tokio::test]
async fn wrong_media_type_is_415() {
    let server = start(None, None).await;
    let base = server.uri();
    let resp = client()
        .post(format!("{base}/v1/sessions"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("mode=replay")
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(resp).await;
    let msg = expect_error(status, &body, 415, "unsupported_media_type");
    assert!(msg.contains("application/x-www-form-urlencoded"), "{msg}");

    let id = create_session(&base, "replay").await;
    let resp = client()
        .post(format!("{base}/v1/sessions/{id}/fixtures/auth"))
        .header("content-type", "application/yaml")
        .body("tokens: [a]")
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(resp).await;
    expect_error(status, &body, 415, "unsupported_media_type");

    let resp = client()
        .post(format!("{base}/v1/traces"))
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(resp).await;
    expect_error(status, &body, 415, "unsupported_media_type");
    assert_eq!(revision(&base, &id).await, 0);
}

#[tokio::test]
async fn oversize_bodies_are_413_and_change_nothing() {
    // The test server's limit is 64 KiB.
    let server = start(None, None).await;
    let base = server.uri();
    let id = create_session(&base, "replay").await;
    let big = format!(r#"{{"tokens": ["{}"]}}"#, "x".repeat(70 * 1024));
    for route in ["fixtures/auth", "load-case", "rules"] {
        let resp = client()
            .post(format!("{base}/v1/sessions/{id}/{route}"))
            .header("content-type", "application/json")
            .body(big.clone())
            .send()
            .await
            .unwrap();
        let (status, body) = json_of(resp).await;
        let msg = expect_error(status, &body, 413, "payload_too_large");
        assert_eq!(msg, "request body exceeds the limit of 65536 bytes");
    }
    let resp = client()
        .post(format!("{base}/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(vec![0u8; 70 * 1024])
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(resp).await;
    expect_error(status, &body, 413, "payload_too_large");
    assert_eq!(revision(&base, &id).await, 0);
}

#[tokio::test]
async fn bad_configuration_bodies_keep_the_revision() {
    let server = start(None, None).await;
    let base = server.uri();
    let id = create_session(&base, "replay").await;
    let cases = [
        (
            "fixtures/auth",
            json!({"tokens": "abc"}),
            "$.tokens: invalid type: string \"abc\"",
        ),
        (
            "fixtures/auth",
            json!({"cookies": [{"name": "a"}]}),
            "$.cookies[0]: missing field `value`",
        ),
        (
            "fixtures/auth",
            json!({"token": []}),
            "$.token: unknown field `token`",
        ),
        (
            "fixtures/auth",
            json!({"cookies": [{"name": "", "value": "v"}]}),
            "$.cookies[0].name: ",
        ),
        ("policy", json!({"externalHttp": "strickt"}), "externalHttp"),
        ("policy", json!({"externalHTTP": "strict"}), "externalHTTP"),
        (
            "rules",
            json!({"version": 1, "rules": [{"when": {"hots": "x"}, "then": {"action": "passthrough"}}]}),
            "hots",
        ),
        (
            "rules",
            json!({"version": 1, "rules": [{"then": {"action": "teleport"}}]}),
            "teleport",
        ),
        (
            "load-case",
            json!({"version": "1.0.0", "caseId": "x", "traces": []}),
            "missing field `createdAt`",
        ),
        (
            "load-case",
            json!({"version": "1.0.0", "caseId": "x", "createdAt": "2026-04-20T10:00:00Z",
            "traces": [{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz", "spanId": "0102030405060708"}]}]}]}]}),
            "$.traces[0].resourceSpans[0].scopeSpans[0].spans[0].traceId",
        ),
        (
            "load-case",
            json!({"version": "1.0.0", "caseId": "x", "createdAt": "2026-04-20T10:00:00Z",
            "traces": [{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": TRACE_ID, "spanId": "0102030405060708", "kind": 3}]}]}]}]}),
            "$.traces[0].resourceSpans[0].scopeSpans[0].spans[0]: span has no HTTP method",
        ),
        (
            "load-case",
            json!({"version": "1.0.0", "caseId": "x", "createdAt": "2026-04-20T10:00:00Z", "traces": [],
            "rules": [{"when": {"methd": "GET"}, "then": {"action": "passthrough"}}]}),
            "methd",
        ),
    ];
    for (route, body, want) in cases {
        let (status, answer) = post_json(&base, &format!("/v1/sessions/{id}/{route}"), &body).await;
        let msg = expect_error(status, &answer, 400, "invalid_request");
        assert!(msg.contains(want), "{route} {body}: {msg}");
    }
    let (_, state) = get_json(&base, &format!("/v1/sessions/{id}/state")).await;
    assert_eq!(state["sessionRevision"], 0);
    assert_eq!(state["case"], serde_json::Value::Null);
    assert_eq!(state["fixtures"], serde_json::Value::Null);
    assert_eq!(
        state["rules"],
        json!({"policy": 0, "case": 0, "session": 0})
    );
}

#[tokio::test]
async fn close_rejects_unknown_body_fields() {
    let server = start(None, None).await;
    let base = server.uri();
    let id = create_session(&base, "replay").await;
    let (status, body) = post_json(
        &base,
        &format!("/v1/sessions/{id}/close"),
        &json!({"force": true}),
    )
    .await;
    let msg = expect_error(status, &body, 400, "invalid_request");
    assert!(msg.contains("unknown field `force`"), "{msg}");
    // Still open.
    assert_eq!(revision(&base, &id).await, 0);
}

/// Rules and policy documents come as JSON or YAML: an empty body is refused with what was
/// expected, a YAML one is read, and a JSON one is also held to its schema.
#[tokio::test]
async fn rules_and_policy_documents_name_what_an_empty_body_lacks() {
    let server = start(None, None).await;
    let base = server.uri();
    let id = create_session(&base, "replay").await;
    let send = |route: &str, media: &str, body: &'static str| {
        client()
            .post(format!("{base}/v1/sessions/{id}/{route}"))
            .header("content-type", media)
            .body(body)
            .send()
    };
    for (route, want) in [
        (
            "rules",
            r#"request body is empty: expected a rules document {"version": 1, "rules": [...]}"#,
        ),
        (
            "policy",
            r#"request body is empty: expected a policy document such as {"externalHttp": "strict"}"#,
        ),
    ] {
        let (status, answer) =
            json_of(send(route, "application/json", "  \n").await.unwrap()).await;
        let msg = expect_error(status, &answer, 400, "invalid_request");
        assert_eq!(msg, want, "{route}");
    }
    let (_, state) = get_json(&base, &format!("/v1/sessions/{id}/state")).await;
    assert_eq!(state["sessionRevision"], 0, "refused bodies change nothing");

    let yaml_rules = "version: 1\nrules:\n  - when: {path: /a}\n    then: {action: passthrough}\n";
    let (status, answer) =
        json_of(send("rules", "application/yaml", yaml_rules).await.unwrap()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["rules"], 1);
    let (status, answer) = json_of(
        send("policy", "application/yaml", "externalHttp: strict\n")
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["sessionRevision"], 2);
}
