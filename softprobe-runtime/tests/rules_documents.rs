//! Rules and policy documents as users and the original SDKs write them: the seed's YAML,
//! the SDK JSON payloads, and the errors people see for mistakes.

use softprobe_runtime::case::Body;
use softprobe_runtime::policy::{DefaultOnMiss, ExternalHttp, parse_policy};
use softprobe_runtime::rules::{Consume, MockResponse, Redaction, Then, parse_rules_document};

#[test]
fn the_redaction_yaml_of_the_capture_guide() {
    let yaml = r#"# rules/redact.yaml
version: 1
rules:
  - id: strip-auth
    priority: 100
    when: { direction: outbound }
    then:
      action: capture_only
      captureOnly:
        redactHeaders: [authorization, cookie, x-api-key]
        redactJsonPaths:
          - "$.card.number"
          - "$.user.ssn"
"#;
    let rules = parse_rules_document(yaml.as_bytes(), "rules/redact.yaml").unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].name.as_deref(), Some("strip-auth"));
    assert_eq!(rules[0].priority, 100);
    assert_eq!(
        rules[0].then,
        Then::CaptureOnly(Redaction {
            headers: vec!["authorization".into(), "cookie".into(), "x-api-key".into()],
            json_paths: vec!["$.card.number".into(), "$.user.ssn".into()],
        })
    );
}

#[test]
fn the_payload_the_original_sdks_send() {
    let json = br#"{"version":1,"rules":[
        {"id":"stripe-ok","when":{"direction":"outbound","service":"checkout","host":"api.stripe.com",
         "method":"POST","path":"/v1/payment_intents"},
         "then":{"action":"mock","response":{"status":200,"headers":{"Content-Type":"application/json"},
         "body":"{\"id\":\"pi_1\"}"}}},
        {"name":"fragments","priority":5,"when":{"pathPrefix":"/shipping"},
         "then":{"action":"mock","response":{"status":200,"body":{"days":2}}}}]}"#;
    let rules = parse_rules_document(json, "<request body>").unwrap();
    assert_eq!(rules.len(), 2);
    assert_eq!(rules[0].consume, Consume::Many);
    assert_eq!(rules[0].priority, 0);
    assert_eq!(rules[0].when.host.as_deref(), Some("api.stripe.com"));
    assert_eq!(
        rules[0].then,
        Then::Mock(MockResponse {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: Some(Body::Text(r#"{"id":"pi_1"}"#.into())),
        })
    );
    assert_eq!(
        rules[1].then,
        Then::Mock(MockResponse {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: Some(Body::Text(r#"{"days":2}"#.into())),
        })
    );
}

#[test]
fn error_messages_name_file_path_and_line() {
    let yaml = "version: 1\nrules:\n  - id: a\n    when:\n      hots: api.stripe.com\n    then: { action: passthrough }\n";
    let err = parse_rules_document(yaml.as_bytes(), "rules/live.yaml").unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("rules/live.yaml: $.rules[0].when.hots: unknown field `hots`, expected one of `direction`, `service`, `host`"),
        "{text}"
    );
    assert!(text.ends_with("(line 5, column 7)"), "{text}");

    let json = "[\n  {\"then\": {\"action\": \"mock\", \"response\": {\"status\": \"200\"}}}\n]";
    let err = parse_rules_document(json.as_bytes(), "rules.json").unwrap_err();
    assert_eq!(err.json_path, "$[0].then.response.status");
    assert!(
        err.message.contains("invalid type: string \"200\""),
        "{err}"
    );
    assert_eq!(err.line, Some(2), "{err}");

    let err = parse_rules_document(br#"{"rules": [[1, 2]]}"#, "rules.json").unwrap_err();
    assert_eq!(err.json_path, "$.rules[0]");
    assert!(err.message.contains("expected an object"), "{err}");

    let err =
        parse_rules_document(br#"{"rules": [{"then": {"action": 3}}]}"#, "r.json").unwrap_err();
    assert_eq!(err.json_path, "$.rules[0].then.action");
    assert!(err.message.contains(r#"expected one of "mock""#), "{err}");

    let err = parse_rules_document(b"{\"rules\": [", "r.json").unwrap_err();
    assert_eq!(err.json_path, "$.rules");
    assert!(err.message.contains("EOF"), "{err}");
}

#[test]
fn yaml_flow_style_that_looks_like_json_is_still_yaml() {
    let rules = parse_rules_document(
        b"{version: 1, rules: [{id: a, then: {action: passthrough}}]}",
        "r.yaml",
    )
    .unwrap();
    assert_eq!(rules[0].then, Then::Passthrough);
}

#[test]
fn policy_documents_as_the_sdks_send_them() {
    let p = parse_policy(
        br#"{"externalHttp": "strict", "defaultOnMiss": "error"}"#,
        "<request body>",
    )
    .unwrap();
    assert_eq!(p.external_http, ExternalHttp::Strict);
    assert_eq!(p.default_on_miss, DefaultOnMiss::Error);
    let p = parse_policy(
        b"externalHttp: strict\nexternalAllowlist:\n  - localhost\nrules:\n  - id: health\n    when: { path: /health }\n    then: { action: passthrough }\n",
        "policy.yaml",
    )
    .unwrap();
    assert_eq!(p.external_allowlist, vec!["localhost"]);
    assert_eq!(p.rules[0].name.as_deref(), Some("health"));
    let err = parse_policy(br#"{"externalHttp": "strict", "strict": true}"#, "p.json").unwrap_err();
    assert_eq!(
        err.to_string(),
        "p.json: $.strict: unknown field `strict`, expected one of `externalHttp`, `externalAllowlist`, `defaultOnMiss`, `rules`, `requestDrift`, `volatileFields`, `exactFields`, `comparedHeaders`, `streamTiming` (line 1, column 35)"
    );
}
