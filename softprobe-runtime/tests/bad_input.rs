//! The bad-input corpus (`fixtures/invalid/`) against every entry point that takes each kind
//! of file: `softprobe validate`, `load-case`, the rules and policy routes, `/v1/traces` and
//! `/v1/inject` (OTLP JSON and protobuf). Each must refuse the file with an error that names
//! the problem (its JSON path, and a line where the entry point reports positions), and a
//! refused file must leave what the session already held exactly as it was.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::*;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// What a file of the corpus is, from its suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Case,
    Trace,
    Rules,
    Policy,
}

impl Kind {
    fn of(name: &str) -> Kind {
        if name.ends_with(".case.json") {
            Kind::Case
        } else if name.ends_with(".trace.json") {
            Kind::Trace
        } else if name.contains(".rules.") {
            Kind::Rules
        } else if name.ends_with(".policy.json") {
            Kind::Policy
        } else {
            panic!("fixtures/invalid/{name}: unknown kind of file")
        }
    }

    fn cli_word(self) -> &'static str {
        match self {
            Kind::Case => "case",
            Kind::Trace => "trace",
            Kind::Rules => "rules",
            Kind::Policy => "policy",
        }
    }
}

/// One broken file and the error its `.expected` sibling says the validator reports.
struct Bad {
    name: String,
    path: PathBuf,
    kind: Kind,
    bytes: Vec<u8>,
    code: String,
    json_path: String,
}

impl Bad {
    /// The `content-type` a client sending this file would use.
    fn content_type(&self) -> &'static str {
        if self.name.ends_with(".yaml") {
            "application/yaml"
        } else {
            "application/json"
        }
    }
}

fn corpus() -> Vec<Bad> {
    let mut out: Vec<Bad> = std::fs::read_dir(root().join("fixtures/invalid"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.to_string_lossy().ends_with(".expected"))
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let expected = std::fs::read_to_string(format!("{}.expected", path.display()))
                .unwrap_or_else(|e| panic!("{name}.expected: {e}"));
            let (code, json_path) = expected.trim().split_once(' ').unwrap();
            Bad {
                kind: Kind::of(&name),
                bytes: std::fs::read(&path).unwrap(),
                code: code.to_owned(),
                json_path: json_path.to_owned(),
                name,
                path,
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    // Every class of mistake is represented; see fixtures/README.md.
    assert!(
        out.len() >= 55,
        "only {} files in fixtures/invalid",
        out.len()
    );
    out
}

fn of_kind(kind: Kind) -> Vec<Bad> {
    corpus().into_iter().filter(|b| b.kind == kind).collect()
}

/// The problem named in an API error: the message holds the file's JSON path or one of its
/// ancestors below the root (`$` alone names nothing), or the line of the mistake.
fn assert_names_the_problem(bad: &Bad, entry: &str, message: &str) {
    let names_path = bad
        .json_path
        .match_indices(['.', '['])
        .map(|(i, _)| &bad.json_path[..i])
        .chain([bad.json_path.as_str()])
        .filter(|p| *p != "$")
        .any(|p| message.contains(p));
    let names_line = message.contains("line ") || message.contains("not UTF-8");
    if bad.bytes.is_empty() {
        assert!(message.contains("empty"), "{entry} {}: {message}", bad.name);
        return;
    }
    assert!(
        names_path || names_line || (bad.json_path == "$" && message.contains('$')),
        "{entry} {}: the error names neither {} ({}) nor a line: {message}",
        bad.name,
        bad.json_path,
        bad.code
    );
}

async fn post_raw(
    base: &str,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    json_of(
        client()
            .post(format!("{base}{path}"))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// Asserts a refusal with `want` and `code`, naming the file and the entry point when not.
fn refused(bad: &Bad, entry: &str, status: StatusCode, body: &Value, want: u16) -> String {
    assert_eq!(
        status.as_u16(),
        want,
        "{entry} accepted or mishandled {}: {body}",
        bad.name
    );
    expect_error(status, body, want, "invalid_request")
}

/// Everything a client can see of a session: its state (revision, case, rules, policy) and
/// its stats.
async fn observed(base: &str, id: &str) -> (Value, Value) {
    let (status, state) = get_json(base, &format!("/v1/sessions/{id}/state")).await;
    assert_eq!(status, 200, "{state}");
    let (status, stats) = get_json(base, &format!("/v1/sessions/{id}/stats")).await;
    assert_eq!(status, 200, "{stats}");
    (state, stats)
}

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(root().join("fixtures").join(path)).unwrap()
}

#[test]
fn cli_validate_names_the_file_line_and_path_of_every_mistake() {
    for bad in corpus() {
        let out = Command::new(env!("CARGO_BIN_EXE_softprobe"))
            .args(["validate", bad.kind.cli_word()])
            .arg(&bad.path)
            .current_dir(root())
            .env_remove("SOFTPROBE_RUNTIME_URL")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let text = format!("{stdout}{stderr}");
        assert_eq!(out.status.code(), Some(5), "{}: {text}", bad.name);
        // `FILE:LINE:COL: error[CODE]: PATH: message`
        let wanted = format!("error[{}]: {}: ", bad.code, bad.json_path);
        let line = text
            .lines()
            .find(|l| l.contains(&wanted))
            .unwrap_or_else(|| panic!("{}: no `{wanted}` in:\n{text}", bad.name));
        let at = line.find(&bad.name).unwrap_or_else(|| panic!("{line}"));
        let mut position = line[at + bad.name.len()..].split(':').skip(1);
        let line_no: usize = position.next().unwrap().parse().unwrap();
        let column: usize = position.next().unwrap().parse().unwrap();
        assert!(line_no >= 1 && column >= 1, "{line}");
    }
}

#[tokio::test]
async fn load_case_refuses_every_bad_case_and_keeps_the_loaded_one() {
    let server = start(None, None).await;
    let base = server.uri();
    let id = create_session(&base, "replay").await;
    let (status, body) = post_raw(
        &base,
        &format!("/v1/sessions/{id}/load-case"),
        "application/json",
        fixture("cases/checkout.case.json"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let before = observed(&base, &id).await;
    assert_eq!(
        before.0["case"]["caseId"], "checkout-happy-path",
        "{}",
        before.0
    );

    for bad in of_kind(Kind::Case) {
        let (status, body) = post_raw(
            &base,
            &format!("/v1/sessions/{id}/load-case"),
            bad.content_type(),
            bad.bytes.clone(),
        )
        .await;
        let message = refused(&bad, "load-case", status, &body, 400);
        assert_names_the_problem(&bad, "load-case", &message);
        assert_eq!(
            observed(&base, &id).await,
            before,
            "{} changed the session",
            bad.name
        );
    }
}

#[tokio::test]
async fn rules_and_policy_routes_refuse_every_bad_document_and_keep_the_old_one() {
    let server = start(None, None).await;
    let base = server.uri();
    let id = create_session(&base, "replay").await;
    let (status, body) = post_raw(
        &base,
        &format!("/v1/sessions/{id}/rules"),
        "application/json",
        fixture("rules/mocks.json"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post_raw(
        &base,
        &format!("/v1/sessions/{id}/policy"),
        "application/json",
        fixture("policy/strict.json"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let before = observed(&base, &id).await;
    assert_ne!(before.0["rules"]["session"], 0, "{}", before.0);

    let mut checked = 0;
    for bad in corpus() {
        let route = match bad.kind {
            Kind::Rules => "rules",
            Kind::Policy => "policy",
            _ => continue,
        };
        let (status, body) = post_raw(
            &base,
            &format!("/v1/sessions/{id}/{route}"),
            bad.content_type(),
            bad.bytes.clone(),
        )
        .await;
        let message = refused(&bad, route, status, &body, 400);
        assert_names_the_problem(&bad, route, &message);
        assert_eq!(
            observed(&base, &id).await,
            before,
            "{} changed the session",
            bad.name
        );
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} rules and policy files");
}

/// A capture session that already holds one hop, recorded through `/v1/traces`.
async fn capture_with_one_hop(base: &str) -> String {
    let id = create_session(base, "capture").await;
    let mut hop = Hop::outbound(&id, "GET", "api.example.com", "/v1/ping");
    hop.response = Some((200, vec![], "pong"));
    let resp = client()
        .post(format!("{base}/v1/traces"))
        .json(&traces(vec![hop.span()]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    id
}

#[tokio::test]
async fn otlp_routes_refuse_every_bad_trace_document_in_both_encodings() {
    let server = start(None, None).await;
    let base = server.uri();
    let id = capture_with_one_hop(&base).await;
    let before = observed(&base, &id).await;
    assert_eq!(before.1["extractedSpans"], 1, "{}", before.1);

    let mut checked = 0;
    for bad in corpus() {
        // Trace documents are what these routes take, binary garbage (not even a JSON object)
        // what a broken exporter might send. A JSON case file is not refused: OTLP readers
        // ignore unknown fields, so it reads as a document without spans; neither is an empty
        // body, which is the empty protobuf message.
        let garbage = bad.bytes.first().is_some_and(|b| *b != b'{');
        if bad.kind != Kind::Trace && !garbage {
            continue;
        }
        for route in ["/v1/traces", "/v1/inject"] {
            let (status, body) =
                post_raw(&base, route, "application/json", bad.bytes.clone()).await;
            // `/v1/traces` refuses what does not decode; a decoded span it cannot use (no
            // session, not a hop, a zero id) is dropped and logged, not refused, because OTLP
            // senders ignore answers and one odd span must not cost the batch. `/v1/inject`
            // decides about one span, so it refuses any it cannot use.
            if route == "/v1/traces" && status == StatusCode::NO_CONTENT {
                assert!(
                    !garbage && bad.code != "syntax",
                    "{route} {}: accepted",
                    bad.name
                );
            } else {
                let message = refused(&bad, route, status, &body, 400);
                assert!(message.contains('$'), "{route} {}: {message}", bad.name);
                if bad.kind == Kind::Trace && message.starts_with("OTLP JSON") {
                    assert_names_the_problem(&bad, route, &message);
                }
            }
            let (status, body) =
                post_raw(&base, route, "application/x-protobuf", bad.bytes.clone()).await;
            let message = refused(&bad, &format!("{route} (protobuf)"), status, &body, 400);
            assert!(
                message.starts_with("OTLP protobuf"),
                "{route} {}: {message}",
                bad.name
            );
        }
        assert_eq!(
            observed(&base, &id).await,
            before,
            "{} changed the session",
            bad.name
        );
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} documents");
}

/// Bodies above the server's limit (64 KiB in these tests) are refused before they are
/// parsed, with 413 and the limit in the message, on every route that takes a document.
#[tokio::test]
async fn oversize_documents_are_refused_with_413_and_change_nothing() {
    let server = start(None, None).await;
    let base = server.uri();
    let replay = create_session(&base, "replay").await;
    let capture = capture_with_one_hop(&base).await;
    let before = (
        observed(&base, &replay).await,
        observed(&base, &capture).await,
    );

    // A well-formed case whose one response body is 100 KiB.
    let mut case: Value = serde_json::from_slice(&fixture("cases/minimal.case.json")).unwrap();
    case["traces"][0]["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"][5]["value"] =
        json!({"stringValue": "x".repeat(100 * 1024)});
    let big_case = serde_json::to_vec(&case).unwrap();
    let big_trace = serde_json::to_vec(&case["traces"][0]).unwrap();
    let big_rules = serde_json::to_vec(&json!({"version": 1, "rules": [
        {"when": {"path": format!("/{}", "p".repeat(100 * 1024))}, "then": {"action": "passthrough"}}
    ]}))
    .unwrap();

    let attempts = [
        (format!("/v1/sessions/{replay}/load-case"), big_case),
        (format!("/v1/sessions/{replay}/rules"), big_rules.clone()),
        (format!("/v1/sessions/{replay}/policy"), big_rules),
        ("/v1/traces".to_owned(), big_trace.clone()),
        ("/v1/inject".to_owned(), big_trace),
    ];
    for (route, body) in attempts {
        let (status, answer) = post_raw(&base, &route, "application/json", body).await;
        let message = expect_error(status, &answer, 413, "payload_too_large");
        assert!(message.contains("65536"), "{route}: {message}");
    }
    let after = (
        observed(&base, &replay).await,
        observed(&base, &capture).await,
    );
    assert_eq!(after, before);
}

/// Inputs the fuzzers found (`fixtures/fuzz-crashes/`), against the entry point that broke.
#[tokio::test]
async fn inputs_found_by_fuzzing_are_refused_cleanly() {
    let server = start(None, None).await;
    let base = server.uri();
    let id = capture_with_one_hop(&base).await;
    let before = observed(&base, &id).await;

    // Protobuf allowed any span kind, JSON only 0-5: a hop taken from protobuf with kind 39
    // was written to a case file that could not be read back.
    let bytes = fixture("fuzz-crashes/otlp-protobuf-span-kind-39.pb");
    for route in ["/v1/traces", "/v1/inject"] {
        let (status, body) = post_raw(&base, route, "application/x-protobuf", bytes.clone()).await;
        let message = expect_error(status, &body, 400, "invalid_request");
        assert!(
            message.contains("$.resourceSpans[0].scopeSpans[0].spans[2].kind: span kind 39"),
            "{route}: {message}"
        );
    }
    assert_eq!(observed(&base, &id).await, before);
}

/// NaN and infinite doubles (OTLP JSON spells them `"NaN"`, `"Infinity"`, `"-Infinity"`) were
/// read, then written back as `null`, which no reader takes: a rewritten case (scrub, capture
/// from protobuf) became unreadable. Found by running the `case` fuzz target on this input.
#[test]
fn non_finite_doubles_survive_a_canonical_rewrite() {
    use softprobe_runtime::case::Case;
    let case = Case::from_slice(&fixture("fuzz-crashes/non-finite-doubles.case.json")).unwrap();
    let written = case.to_json_bytes();
    let again = Case::from_slice(&written).unwrap_or_else(|e| {
        panic!(
            "the rewrite does not read back: {e}\n{}",
            String::from_utf8_lossy(&written)
        )
    });
    assert_eq!(again.to_json_bytes(), written);
    let text = String::from_utf8(written).unwrap();
    for spelled in ["\"NaN\"", "\"Infinity\"", "\"-Infinity\""] {
        assert!(
            text.contains(&format!("\"doubleValue\": {spelled}")),
            "{spelled} in:\n{text}"
        );
    }
}
