//! Configuring a session over HTTP: load-case, rules (JSON and YAML), policy, fixtures; each
//! success adds one to the revision and shows up in `state`.

mod support;

use serde_json::json;
use softprobe_runtime::case::validate::SchemaKind;
use support::*;

#[tokio::test]
async fn each_configuration_call_adds_one_revision() {
    let server = start(None, None).await;
    let base = server.uri();
    let id = create_session(&base, "replay").await;

    let (status, loaded) = post_json(
        &base,
        &format!("/v1/sessions/{id}/load-case"),
        &sample_case(),
    )
    .await;
    assert_eq!(status, 200, "{loaded}");
    assert_schema(SchemaKind::LoadCaseResponse, &loaded);
    assert_eq!(
        loaded,
        json!({"sessionId": id, "sessionRevision": 1, "caseId": "checkout-happy-path", "traces": 1, "spans": 2})
    );

    let rules = json!({"version": 1, "rules": [
        {"id": "stub-shipping", "priority": 10, "when": {"direction": "outbound", "host": "fragment", "path": "/shipping"},
         "then": {"action": "mock", "response": {"status": 200, "body": {"days": 2}}}},
        {"name": "no-analytics", "when": {"hostSuffix": ".analytics.example"}, "then": {"action": "error"}}
    ]});
    let (status, set) = post_json(&base, &format!("/v1/sessions/{id}/rules"), &rules).await;
    assert_eq!(status, 200, "{set}");
    assert_schema(SchemaKind::RulesResponse, &set);
    assert_eq!(
        set,
        json!({"sessionId": id, "sessionRevision": 2, "rules": 2})
    );

    let (status, set) = post_json(
        &base,
        &format!("/v1/sessions/{id}/policy"),
        &json!({"externalHttp": "strict", "externalAllowlist": ["localhost", "*.internal"], "defaultOnMiss": "error"}),
    )
    .await;
    assert_eq!(status, 200, "{set}");
    assert_eq!(set, json!({"sessionId": id, "sessionRevision": 3}));
    assert_schema(SchemaKind::PolicyResponse, &set);

    let fixtures = json!({"tokens": ["stub_eyJ"], "cookies": [{"name": "sid", "value": "abc", "domain": "app.local"}], "metadata": {"tenant": "t1"}});
    let (status, set) = post_json(
        &base,
        &format!("/v1/sessions/{id}/fixtures/auth"),
        &fixtures,
    )
    .await;
    assert_eq!(status, 200, "{set}");
    assert_eq!(set, json!({"sessionId": id, "sessionRevision": 4}));
    assert_schema(SchemaKind::FixturesAuthResponse, &set);

    let (_, state) = get_json(&base, &format!("/v1/sessions/{id}/state")).await;
    assert_eq!(state["sessionRevision"], 4);
    assert_schema(SchemaKind::StateResponse, &state);
    assert_eq!(
        state["case"],
        json!({"caseId": "checkout-happy-path", "traces": 1, "spans": 2, "inbound": 1, "outbound": 1})
    );
    assert_eq!(state["policy"]["externalHttp"], "strict");
    assert_eq!(state["policy"]["defaultOnMiss"], "error");
    assert_eq!(
        state["rules"],
        json!({"policy": 0, "case": 0, "session": 2})
    );
    assert_eq!(state["fixtures"], fixtures);
    insta::assert_json_snapshot!("state_configured", state, {
        ".sessionId" => "[sessionId]",
        ".createdAt" => "[createdAt]",
    });

    // The list shows the loaded case's id.
    let (_, list) = get_json(&base, "/v1/sessions").await;
    assert_eq!(list["sessions"][0]["caseId"], "checkout-happy-path");
}

#[tokio::test]
async fn rules_are_replaced_not_appended() {
    let server = start(None, None).await;
    let base = server.uri();
    let id = create_session(&base, "replay").await;
    let one = json!({"version": 1, "rules": [{"id": "a", "then": {"action": "passthrough"}}]});
    let two = json!([{"id": "a", "then": {"action": "passthrough"}}, {"id": "b", "then": {"action": "passthrough"}}]);
    post_json(&base, &format!("/v1/sessions/{id}/rules"), &two).await;
    let (status, set) = post_json(&base, &format!("/v1/sessions/{id}/rules"), &one).await;
    assert_eq!(status, 200);
    assert_eq!(set["rules"], 1);
    let (_, state) = get_json(&base, &format!("/v1/sessions/{id}/state")).await;
    assert_eq!(state["rules"]["session"], 1);
    assert_eq!(state["sessionRevision"], 2);
}

#[tokio::test]
async fn rules_accept_yaml() {
    let server = start(None, None).await;
    let base = server.uri();
    let id = create_session(&base, "capture").await;
    let yaml = "version: 1\nrules:\n  - id: strip-auth\n    priority: 100\n    when: { direction: outbound }\n    then:\n      action: capture_only\n      captureOnly:\n        redactHeaders: [authorization, cookie, x-api-key]\n        redactJsonPaths:\n          - \"$.card.number\"\n";
    let resp = client()
        .post(format!("{base}/v1/sessions/{id}/rules"))
        .header("content-type", "application/yaml")
        .body(yaml)
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(resp).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rules"], 1);

    let bad = "version: 1\nrules:\n  - id: x\n    when: { direction: sideways }\n    then: { action: passthrough }\n";
    let resp = client()
        .post(format!("{base}/v1/sessions/{id}/rules"))
        .header("content-type", "application/yaml")
        .body(bad)
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(resp).await;
    let msg = expect_error(status, &body, 400, "invalid_request");
    assert!(msg.contains("direction"), "{msg}");
    assert_eq!(revision(&base, &id).await, 1);
}

#[tokio::test]
async fn case_embedded_rules_are_counted() {
    let server = start(None, None).await;
    let base = server.uri();
    let id = create_session(&base, "replay").await;
    let mut case = sample_case();
    case["rules"] = json!([{"id": "redact-auth-headers", "priority": 10000, "when": {"direction": "outbound"},
        "then": {"action": "capture_only", "captureOnly": {"redactHeaders": ["authorization", "cookie"]}}}]);
    let (status, body) = post_json(&base, &format!("/v1/sessions/{id}/load-case"), &case).await;
    assert_eq!(status, 200, "{body}");
    let (_, state) = get_json(&base, &format!("/v1/sessions/{id}/state")).await;
    assert_eq!(
        state["rules"],
        json!({"policy": 0, "case": 1, "session": 0})
    );

    // A second case replaces the first.
    let (status, body) = post_json(
        &base,
        &format!("/v1/sessions/{id}/load-case"),
        &sample_case(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, state) = get_json(&base, &format!("/v1/sessions/{id}/state")).await;
    assert_eq!(state["rules"]["case"], 0);
    assert_eq!(state["sessionRevision"], 2);
}
