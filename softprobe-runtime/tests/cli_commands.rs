//! The built `softprobe` CLI against the built `softprobe-runtime`, as a user drives them from
//! a shell: every command's JSON and human output, every exit code, `eval` of `--shell`.

mod support;

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use softprobe_runtime::case::validate::validate_case;
use support::{Runtime, cli, free_port, json_line, root, run, spawn_runtime};

fn runtime(envs: &[(&str, &str)]) -> Runtime {
    spawn_runtime(envs, support::Spawn::default())
}

fn start(base: &str, mode: &str) -> String {
    let mut cmd = cli(base);
    cmd.args(["session", "start", "--mode", mode, "--json"]);
    let (code, out, err) = run(cmd);
    assert_eq!(code, 0, "{err}");
    json_line(&out)["sessionId"].as_str().unwrap().to_owned()
}

#[test]
fn session_start_json_matches_the_guide() {
    let rt = runtime(&[]);
    let mut cmd = cli(&rt.base);
    cmd.args(["session", "start", "--mode", "capture", "--json"]);
    let (code, out, _) = run(cmd);
    assert_eq!(code, 0);
    let body = json_line(&out);
    let id = body["sessionId"].as_str().unwrap();
    assert!(id.starts_with("sess_") && id.len() >= 5 + 16, "{id}");
    assert_eq!(body["sessionRevision"], 0);
    assert_eq!(body["status"], "ok");
    assert_eq!(body["exitCode"], 0);
}

#[test]
fn eval_of_shell_output_exports_the_session_id() {
    let rt = runtime(&[]);
    let script = format!(
        "set -e; eval \"$('{}' session start --mode capture --shell)\"; echo \"Session: $SOFTPROBE_SESSION_ID\"; '{}' session stats --json",
        env!("CARGO_BIN_EXE_softprobe"),
        env!("CARGO_BIN_EXE_softprobe")
    );
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(script)
        .env("SOFTPROBE_RUNTIME_URL", &rt.base)
        .env_remove("SOFTPROBE_SESSION_ID");
    let (code, out, err) = run(cmd);
    assert_eq!(code, 0, "{err}");
    let mut lines = out.lines();
    let first = lines.next().unwrap();
    let id = first.strip_prefix("Session: ").unwrap();
    assert!(id.starts_with("sess_"), "{first}");
    // `session stats` found the session through SOFTPROBE_SESSION_ID alone.
    let stats: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(stats["sessionId"], id);
    assert_eq!(stats["extractedSpans"], 0);
    assert_eq!(stats["injectedSpans"], 0);
}

#[test]
fn capture_through_the_otlp_api_then_close_with_out_writes_a_valid_case() {
    let rt = runtime(&[]);
    let id = start(&rt.base, "capture");
    // Feed the capture session the checkout fixture's traffic, as a proxy would.
    let mut cmd = cli(&rt.base);
    cmd.args([
        "export",
        "otlp",
        "--case",
        "fixtures/cases/checkout.case.json",
        "--endpoint",
        &rt.base,
        "--session",
        &id,
        "--encoding",
        "protobuf",
        "--json",
    ]);
    let (code, out, err) = run(cmd);
    assert_eq!(code, 0, "{err}");
    assert_eq!(json_line(&out)["spans"], 3);

    let mut cmd = cli(&rt.base);
    cmd.args(["session", "stats", "--session", &id, "--json"]);
    let (_, out, _) = run(cmd);
    let stats = json_line(&out);
    assert_eq!(stats["extractedSpans"], 3, "{stats}");
    assert_eq!(stats["stats"]["extractedSpans"], 3, "{stats}");

    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("cases/checkout.case.json");
    let mut cmd = cli(&rt.base);
    cmd.args(["session", "close", "--session", &id, "--out"])
        .arg(&out_path);
    let (code, out, err) = run(cmd);
    assert_eq!(code, 0, "{err}");
    // The guide's output: {"closed": true, "casePath": ...}
    let closed: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        closed,
        json!({"closed": true, "casePath": out_path.display().to_string()})
    );
    let bytes = std::fs::read(&out_path).unwrap();
    let report = validate_case(&bytes, &out_path.display().to_string());
    assert!(report.is_valid(), "{report}");

    // Its table is the checkout fixture's table.
    let mut cmd = cli(&rt.base);
    cmd.args(["inspect", "case"]).arg(&out_path);
    let (code, table, _) = run(cmd);
    assert_eq!(code, 0);
    assert!(
        table.contains("│ inbound (app) │ POST   │ 200    │ /checkout"),
        "{table}"
    );
    assert!(
        table.contains("│ outbound      │ POST   │ 200    │ https://api.stripe.com/… │"),
        "{table}"
    );
}

#[test]
fn inspect_case_prints_the_guides_table() {
    let mut cmd = cli("http://127.0.0.1:9");
    cmd.args(["inspect", "case", "fixtures/cases/checkout.case.json"]);
    let (code, out, err) = run(cmd);
    assert_eq!(code, 0, "{err}");
    // The guide's table: long URLs cut to their origin, query strings left out.
    assert!(out.contains("│ https://api.stripe.com/… │"), "{out}");
    assert!(out.contains("│ http://fragment/shipping │"), "{out}");
    insta::assert_snapshot!(out);

    let mut cmd = cli("http://127.0.0.1:9");
    cmd.args([
        "inspect",
        "case",
        "--wide",
        "fixtures/cases/checkout.case.json",
    ]);
    let (code, out, err) = run(cmd);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("https://api.stripe.com/v1/payment_intents"),
        "{out}"
    );
    assert!(out.contains("http://fragment/shipping?zip=94107"), "{out}");
    insta::assert_snapshot!("inspect_case_wide", out);

    let mut cmd = cli("http://127.0.0.1:9");
    cmd.args([
        "inspect",
        "case",
        "fixtures/cases/checkout.case.json",
        "--json",
    ]);
    let (_, out, _) = run(cmd);
    let body = json_line(&out);
    let rows: Vec<(String, String)> = body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["direction"].as_str().unwrap().to_owned(),
                r["url"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            ("inbound".to_owned(), "/checkout".to_owned()),
            (
                "outbound".to_owned(),
                "https://api.stripe.com/v1/payment_intents".to_owned()
            ),
            (
                "outbound".to_owned(),
                "http://fragment/shipping?zip=94107".to_owned()
            ),
        ]
    );
}

#[test]
fn rules_policy_and_load_case_bump_the_revision() {
    let rt = runtime(&[]);
    let id = start(&rt.base, "replay");
    let steps: [&[&str]; 3] = [
        &[
            "session",
            "rules",
            "apply",
            "--file",
            "fixtures/rules/redact.yaml",
        ],
        &["session", "policy", "set", "--strict"],
        &[
            "session",
            "load-case",
            "--file",
            "fixtures/cases/checkout.case.json",
        ],
    ];
    for (i, step) in steps.iter().enumerate() {
        let mut cmd = cli(&rt.base);
        cmd.args(*step).args(["--session", &id, "--json"]);
        let (code, out, err) = run(cmd);
        assert_eq!(code, 0, "{step:?}: {err}");
        assert_eq!(json_line(&out)["sessionRevision"], i as u64 + 1, "{out}");
    }
    let mut cmd = cli(&rt.base);
    cmd.args(["inspect", "session", "--session", &id]);
    let (code, out, _) = run(cmd);
    assert_eq!(code, 0);
    assert!(out.contains("policy:    strict"), "{out}");
    assert!(out.contains("checkout-happy-path"), "{out}");
}

#[test]
fn exit_codes_are_the_documented_ones() {
    let rt = runtime(&[]);
    // 4: unknown session, with the runtime's error code in --json.
    let mut cmd = cli(&rt.base);
    cmd.args(["session", "stats", "--session", "sess_nope", "--json"]);
    let (code, out, _) = run(cmd);
    assert_eq!(code, 4);
    let body = json_line(&out);
    assert_eq!(body["error"]["code"], "unknown_session");
    assert_eq!(body["exitCode"], 4);
    assert_eq!(body["status"], "error");

    // 5: invalid input rejected by the runtime, naming the field.
    let id = start(&rt.base, "replay");
    let mut cmd = cli(&rt.base);
    cmd.args([
        "session",
        "rules",
        "apply",
        "--session",
        &id,
        "--file",
        "fixtures/invalid/rule-unknown-field.rules.json",
    ]);
    let (code, _, err) = run(cmd);
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("error:"), "{err}");

    // 3: nothing listens.
    let mut cmd = cli(&format!("http://127.0.0.1:{}", free_port()));
    cmd.args(["session", "start", "--mode", "capture"]);
    let (code, _, err) = run(cmd);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("cannot reach the runtime"), "{err}");

    // 2: usage.
    let mut cmd = cli(&rt.base);
    cmd.args(["session", "start", "--mode", "sideways"]);
    assert_eq!(run(cmd).0, 2);

    // 1: a command that ran and failed (scrub --check finding secrets is tested below).
    let mut cmd = cli(&rt.base);
    cmd.args(["session", "close"]);
    // --session missing and no SOFTPROBE_SESSION_ID: usage.
    assert_eq!(run(cmd).0, 2);
}

#[test]
fn validate_accepts_every_fixture_and_rejects_every_invalid_one() {
    let cli_at = || cli("http://127.0.0.1:9");
    let mut cmd = cli_at();
    cmd.args(["validate", "case"]);
    for entry in std::fs::read_dir(root().join("fixtures/cases")).unwrap() {
        cmd.arg(entry.unwrap().path());
    }
    let (code, out, err) = run(cmd);
    assert_eq!(code, 0, "{out}{err}");

    let mut checked = 0;
    for entry in std::fs::read_dir(root().join("fixtures/invalid")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let kind = if name.ends_with(".case.json") {
            "case"
        } else if name.ends_with(".trace.json") {
            "trace"
        } else if name.contains(".rules.") {
            "rules"
        } else if name.contains(".policy.") {
            "policy"
        } else {
            continue;
        };
        let mut cmd = cli_at();
        cmd.args(["validate", kind]).arg(&path).arg("--json");
        let (code, out, _) = run(cmd);
        assert_eq!(code, 5, "{name} should be invalid: {out}");
        let body = json_line(&out);
        let finding = &body["files"][0]["findings"][0];
        assert!(finding["line"].as_u64().unwrap() >= 1, "{name}: {body}");
        assert!(
            finding["jsonPath"].as_str().unwrap().starts_with('$'),
            "{name}: {body}"
        );
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} invalid fixtures");
}

#[test]
fn scrub_check_refuses_secrets_and_scrub_removes_them() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("leaky.case.json");
    let text = std::fs::read_to_string(root().join("fixtures/cases/checkout.case.json"))
        .unwrap()
        .replace(
            "\"[REDACTED]\"",
            "\"Bearer sk_live_4eC39HqLyjWDarjtT1zdp7dc\"",
        );
    assert!(
        text.contains("sk_live_"),
        "the fixture has a redacted header to leak"
    );
    std::fs::write(&file, &text).unwrap();

    let mut cmd = cli("http://127.0.0.1:9");
    cmd.args(["scrub", "--check"]).arg(&file);
    let (code, out, _) = run(cmd);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("sensitive header"), "{out}");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        text,
        "--check changes nothing"
    );

    let mut cmd = cli("http://127.0.0.1:9");
    cmd.arg("scrub").arg(&file);
    assert_eq!(run(cmd).0, 0);
    let scrubbed = std::fs::read_to_string(&file).unwrap();
    assert!(!scrubbed.contains("sk_live_"), "{scrubbed}");
    assert!(validate_case(scrubbed.as_bytes(), "scrubbed").is_valid());

    let mut cmd = cli("http://127.0.0.1:9");
    cmd.args(["scrub", "--check"]).arg(&file);
    assert_eq!(run(cmd).0, 0);
}

#[test]
fn capture_run_runs_the_driver_and_writes_the_case() {
    let rt = runtime(&[]);
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("captured.case.json");
    // The driver plays the proxy: it reports one hop for $SOFTPROBE_SESSION_ID over OTLP.
    let trace = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"0102030405060708","kind":2,"startTimeUnixNano":"1","endTimeUnixNano":"2","attributes":[{"key":"sp.session.id","value":{"stringValue":"SESSION"}},{"key":"sp.traffic.direction","value":{"stringValue":"inbound"}},{"key":"http.request.method","value":{"stringValue":"POST"}},{"key":"url.host","value":{"stringValue":"127.0.0.1:8082"}},{"key":"url.path","value":{"stringValue":"/checkout"}},{"key":"http.response.status_code","value":{"intValue":"200"}}]}]}]}]}"#;
    std::fs::write(dir.path().join("trace.json"), trace).unwrap();
    let driver = format!(
        "sed \"s/SESSION/$SOFTPROBE_SESSION_ID/\" '{}' | curl -sf -X POST \"$SOFTPROBE_RUNTIME_URL/v1/traces\" -H 'content-type: application/json' --data-binary @- && test \"$SOFTPROBE_TARGET\" = http://127.0.0.1:8082",
        dir.path().join("trace.json").display()
    );
    let mut cmd = cli(&rt.base);
    cmd.args([
        "capture",
        "run",
        "--driver",
        &driver,
        "--target",
        "http://127.0.0.1:8082",
        "--out",
    ])
    .arg(&out_path);
    let (code, out, err) = run(cmd);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("│ inbound (app) │ POST   │ 200    │ /checkout"),
        "{out}"
    );
    assert!(validate_case(&std::fs::read(&out_path).unwrap(), "captured").is_valid());

    // A failing driver: the session is still closed and written, and its code comes back.
    let mut cmd = cli(&rt.base);
    cmd.args(["capture", "run", "--driver", "exit 7", "--out"])
        .arg(dir.path().join("empty.case.json"));
    let (code, out, err) = run(cmd);
    assert_eq!(code, 7, "{out}{err}");
    assert!(out.contains("driver exited with code 7"), "{out}");
}

#[test]
fn doctor_passes_on_a_healthy_runtime_and_fails_with_a_wrong_token() {
    let rt = runtime(&[("SOFTPROBE_API_TOKEN", "s3cret")]);
    let mut cmd = cli(&rt.base);
    cmd.env("SOFTPROBE_API_TOKEN", "s3cret")
        .args(["doctor", "--json"]);
    let (code, out, _) = run(cmd);
    assert_eq!(code, 0, "{out}");
    assert_eq!(json_line(&out)["ok"], true);

    let mut cmd = cli(&rt.base);
    cmd.env("SOFTPROBE_API_TOKEN", "wrong").arg("doctor");
    let (code, out, _) = run(cmd);
    assert_eq!(code, 10, "{out}");
    assert!(out.contains("rejects SOFTPROBE_API_TOKEN"), "{out}");
}

#[test]
fn export_protobuf_reaches_a_separate_collector_process() {
    // A one-shot collector in its own thread: accept one POST, keep its headers and body.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let collector = std::thread::spawn(move || {
        let (mut sock, _) = listener.accept().unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let (head_end, length) = loop {
            let n = sock.read(&mut chunk).unwrap();
            buf.extend_from_slice(&chunk[..n]);
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..i]).to_ascii_lowercase();
                let len = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map(|v| v.trim().parse::<usize>().unwrap())
                    .unwrap();
                break (i + 4, len);
            }
        };
        while buf.len() < head_end + length {
            let n = sock.read(&mut chunk).unwrap();
            buf.extend_from_slice(&chunk[..n]);
        }
        sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .unwrap();
        (
            String::from_utf8_lossy(&buf[..head_end]).into_owned(),
            buf[head_end..].to_vec(),
        )
    });
    let mut cmd = cli("http://127.0.0.1:9");
    cmd.args([
        "export",
        "otlp",
        "--case",
        "fixtures/cases/minimal.case.json",
        "--endpoint",
        &format!("http://{addr}"),
        "--encoding",
        "protobuf",
    ]);
    let (code, out, err) = run(cmd);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Exported 1 trace document(s)"), "{out}");
    let (head, body) = collector.join().unwrap();
    assert!(head.starts_with("POST /v1/traces "), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("application/x-protobuf"),
        "{head}"
    );
    let decoded =
        softprobe_runtime::otlp::decode(&body, softprobe_runtime::otlp::WireFormat::Protobuf)
            .expect("the collector receives valid OTLP protobuf");
    let case = softprobe_runtime::case::Case::read(root().join("fixtures/cases/minimal.case.json"))
        .unwrap();
    assert_eq!(decoded, case.traces[0]);
}

/// A case of `n` trace documents, one outbound span each (its own trace and span id) whose
/// response body is `body_len` bytes, written to `path`. Returns the span ids.
fn many_traces_case(path: &std::path::Path, n: usize, body_len: usize) -> Vec<String> {
    let body = "x".repeat(body_len);
    let mut span_ids = Vec::new();
    let traces: Vec<Value> = (0..n)
        .map(|k| {
            let span_id = format!("{:016x}", 0x1000 + k);
            span_ids.push(span_id.clone());
            json!({"resourceSpans": [{"scopeSpans": [{"spans": [{
                "traceId": format!("{:032x}", 0x5000 + k),
                "spanId": span_id,
                "name": "HTTP GET",
                "kind": 3,
                "startTimeUnixNano": "1776681022000000000",
                "endTimeUnixNano": "1776681022009000000",
                "attributes": [
                    {"key": "sp.traffic.direction", "value": {"stringValue": "outbound"}},
                    {"key": "http.request.method", "value": {"stringValue": "GET"}},
                    {"key": "url.host", "value": {"stringValue": "api.example.com"}},
                    {"key": "url.path", "value": {"stringValue": format!("/v1/item/{k}")}},
                    {"key": "http.response.status_code", "value": {"intValue": "200"}},
                    {"key": "http.response.body", "value": {"stringValue": body}},
                ],
            }]}]}]})
        })
        .collect();
    let case = json!({
        "version": "1.0.0",
        "caseId": "many",
        "createdAt": "2026-04-20T10:30:22Z",
        "traces": traces,
    });
    std::fs::write(path, serde_json::to_vec_pretty(&case).unwrap()).unwrap();
    span_ids
}

fn extracted_spans(base: &str, id: &str) -> Value {
    let mut cmd = cli(base);
    cmd.args(["session", "stats", "--session", id, "--json"]);
    let (code, out, err) = run(cmd);
    assert_eq!(code, 0, "{err}");
    json_line(&out)["extractedSpans"].clone()
}

/// `softprobe export otlp` of `case` into the runtime at `base`, for `session`.
fn export_cmd(base: &str, case: &std::path::Path, session: &str, extra: &[&str]) -> Command {
    let mut cmd = cli(base);
    cmd.args(["export", "otlp", "--case"])
        .arg(case)
        .args(["--endpoint", base, "--session", session])
        .args(extra);
    cmd
}

#[test]
fn export_of_a_case_larger_than_one_request_arrives_whole_in_several() {
    // 2400 trace documents of about 4 KB each: about 10 MB of OTLP/JSON, more than two
    // requests' worth, each under the runtime's default body limit (16 MiB).
    let dir = tempfile::tempdir().unwrap();
    let case = dir.path().join("many.case.json");
    let span_ids = many_traces_case(&case, 2400, 4000);
    let rt = runtime(&[]);
    let id = start(&rt.base, "capture");
    let cmd = export_cmd(&rt.base, &case, &id, &["--json"]);
    let (code, out, err) = run(cmd);
    assert_eq!(code, 0, "{out}{err}");
    let report = json_line(&out);
    assert_eq!(report["traces"], 2400, "{report}");
    assert_eq!(report["spans"], 2400, "{report}");
    let requests = report["requests"].as_u64().unwrap();
    assert!((3..=4).contains(&requests), "{report}");
    assert_eq!(extracted_spans(&rt.base, &id), 2400);

    // Every span arrived, each once, in the case the session closes into.
    let closed = dir.path().join("closed.case.json");
    let mut cmd = cli(&rt.base);
    cmd.args(["session", "close", "--session", &id, "--out"])
        .arg(&closed);
    let (code, _, err) = run(cmd);
    assert_eq!(code, 0, "{err}");
    let closed = softprobe_runtime::case::Case::read(&closed).unwrap();
    let mut got: Vec<String> = closed
        .spans()
        .map(|(_, span, _)| span.span_id.to_string())
        .collect();
    got.sort();
    assert_eq!(got, span_ids);

    // In protobuf, a request is the documents' `TracesData` messages one after another,
    // which decode as one message holding all their `resourceSpans`.
    let id = start(&rt.base, "capture");
    let cmd = export_cmd(&rt.base, &case, &id, &["--encoding", "protobuf", "--json"]);
    let (code, out, err) = run(cmd);
    assert_eq!(code, 0, "{out}{err}");
    assert!(json_line(&out)["requests"].as_u64().unwrap() >= 3, "{out}");
    assert_eq!(extracted_spans(&rt.base, &id), 2400);

    // The same export against a runtime whose body limit is below one request's size: the
    // collector's refusal names the status and the trace documents of the request.
    let small = runtime(&[("SOFTPROBE_BODY_LIMIT", "1048576")]);
    let id = start(&small.base, "capture");
    let cmd = export_cmd(&small.base, &case, &id, &[]);
    let (code, out, err) = run(cmd);
    assert_eq!(code, 1, "{out}{err}");
    let text = format!("{out}{err}");
    assert!(
        text.contains("answered 413 Payload Too Large to ")
            && text.contains("many.case.json traces[0] to traces["),
        "{text}"
    );
}

#[test]
fn export_stops_at_a_malformed_trace_document_after_sending_those_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let case = dir.path().join("bad.case.json");
    many_traces_case(&case, 3, 10);
    let mut doc: Value = serde_json::from_slice(&std::fs::read(&case).unwrap()).unwrap();
    doc["traces"][2]["resourceSpans"][0]["scopeSpans"][0]["spans"] = json!("not a list");
    std::fs::write(&case, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    let rt = runtime(&[]);
    let id = start(&rt.base, "capture");
    let cmd = export_cmd(&rt.base, &case, &id, &[]);
    let (code, out, err) = run(cmd);
    assert_eq!(code, 5, "{out}{err}");
    let text = format!("{out}{err}");
    assert!(
        text.contains("bad.case.json: $.traces[2].resourceSpans[0].scopeSpans[0].spans: "),
        "{text}"
    );
    assert_eq!(extracted_spans(&rt.base, &id), 2);
}

#[test]
fn completion_scripts_are_generated() {
    for shell in ["bash", "zsh", "fish"] {
        let mut cmd = cli("http://127.0.0.1:9");
        cmd.args(["completion", shell]);
        let (code, out, _) = run(cmd);
        assert_eq!(code, 0);
        assert!(
            out.contains("softprobe") && out.contains("session"),
            "{shell}"
        );
    }
}

#[test]
fn replay_run_answers_from_the_case_and_reports_misses() {
    let rt = runtime(&[]);
    let dir = tempfile::tempdir().unwrap();
    // The driver plays the proxy: it asks the runtime about one outbound hop over /v1/inject.
    let span = |query: &str| {
        format!(
            r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"0102030405060708","kind":3,"attributes":[{{"key":"sp.session.id","value":{{"stringValue":"SESSION"}}}},{{"key":"sp.span.type","value":{{"stringValue":"inject"}}}},{{"key":"sp.traffic.direction","value":{{"stringValue":"outbound"}}}},{{"key":"http.request.method","value":{{"stringValue":"GET"}}}},{{"key":"url.scheme","value":{{"stringValue":"http"}}}},{{"key":"url.host","value":{{"stringValue":"fragment"}}}},{{"key":"url.path","value":{{"stringValue":"/shipping"}}}},{{"key":"url.query","value":{{"stringValue":"{query}"}}}}]}}]}}]}}]}}"#
        )
    };
    let driver = |file: &str| {
        format!(
            "sed \"s/SESSION/$SOFTPROBE_SESSION_ID/\" '{}' | curl -s -o /dev/null -X POST \"$SOFTPROBE_RUNTIME_URL/v1/inject\" -H 'content-type: application/json' --data-binary @-",
            dir.path().join(file).display()
        )
    };
    std::fs::write(dir.path().join("hit.json"), span("zip=94107")).unwrap();
    std::fs::write(dir.path().join("miss.json"), span("zip=10001")).unwrap();

    let mut cmd = cli(&rt.base);
    cmd.args([
        "replay",
        "run",
        "--case",
        "fixtures/cases/checkout.case.json",
        "--driver",
        &driver("hit.json"),
        "--json",
    ]);
    let (code, out, err) = run(cmd);
    assert_eq!(code, 0, "{out}{err}");
    let body = json_line(&out);
    assert_eq!(body["stats"]["injectedSpans"], 1, "{body}");
    assert_eq!(body["strictMisses"], json!([]), "{body}");

    let mut cmd = cli(&rt.base);
    cmd.args([
        "replay",
        "run",
        "--case",
        "fixtures/cases/checkout.case.json",
        "--driver",
        &driver("miss.json"),
    ]);
    let (code, out, err) = run(cmd);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains(
            "1. no rule or recorded exchange answers GET http://fragment/shipping?zip=10001"
        ),
        "{out}"
    );
    assert!(
        out.contains("  1. GET http://fragment/shipping?zip=94107  (span "),
        "{out}"
    );
}

#[test]
fn validate_suite_accepts_the_fixture_and_names_the_line_of_a_mistake() {
    let mut cmd = cli("http://127.0.0.1:9");
    cmd.args(["validate", "suite", "fixtures/suites/checkout.suite.yaml"]);
    let (code, out, err) = run(cmd);
    assert_eq!(code, 0, "{out}{err}");
    let mut cmd = cli("http://127.0.0.1:9");
    cmd.args([
        "validate",
        "suite",
        "fixtures/suites/invalid/bad-body-mode.suite.yaml",
        "--json",
    ]);
    let (code, out, _) = run(cmd);
    assert_eq!(code, 5, "{out}");
    let finding = &json_line(&out)["files"][0]["findings"][0];
    assert_eq!(finding["line"], 6, "{finding}");
    assert!(
        finding["message"].as_str().unwrap().contains("fuzzy"),
        "{finding}"
    );
}
