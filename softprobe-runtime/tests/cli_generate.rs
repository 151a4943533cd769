//! `softprobe generate case` against a stand-in for an OpenAI-compatible chat-completions
//! endpoint (a thread serving canned answers over a real socket): the findings of an invalid
//! answer go back to the model, a valid one is written, and with no endpoint configured the
//! command says which variables to set.

#![cfg(feature = "cli")]

mod support;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use softprobe_runtime::case::Case;
use softprobe_runtime::case::validate::validate_case;
use support::{cli, json_line, root, run};

/// One request the stand-in received: its headers (lower-cased names) and JSON body.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    headers: Vec<(String, String)>,
    body: Value,
}

/// Serves `answers` in order as chat completions, one per connection, recording each request.
fn model_endpoint(answers: Vec<String>) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for answer in answers {
            let Ok((stream, _)) = listener.accept() else {
                return;
            };
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
            let mut headers = Vec::new();
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).unwrap();
                let h = h.trim_end();
                if h.is_empty() {
                    break;
                }
                if let Some((n, v)) = h.split_once(':') {
                    headers.push((n.trim().to_ascii_lowercase(), v.trim().to_owned()));
                }
            }
            let len: usize = headers
                .iter()
                .find(|(n, _)| n == "content-length")
                .map(|(_, v)| v.parse().unwrap())
                .unwrap_or(0);
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            record.lock().unwrap().push(Seen {
                path,
                headers,
                body: serde_json::from_slice(&body).unwrap(),
            });
            let reply = json!({
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
            })
            .to_string();
            let mut stream = reader.into_inner();
            write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
                reply.len()
            )
            .unwrap();
        }
    });
    (base, seen)
}

fn generate(base: Option<&str>, out: &std::path::Path, extra: &[&str]) -> (i32, String, String) {
    let mut cmd = cli("http://127.0.0.1:9");
    cmd.env_remove("SOFTPROBE_GENERATE_URL")
        .env_remove("SOFTPROBE_GENERATE_MODEL")
        .env_remove("SOFTPROBE_GENERATE_TOKEN");
    if let Some(base) = base {
        cmd.env("SOFTPROBE_GENERATE_URL", base)
            .env("SOFTPROBE_GENERATE_MODEL", "case-writer-1")
            .env("SOFTPROBE_GENERATE_TOKEN", "gen-token-123");
    }
    cmd.args([
        "generate",
        "case",
        "--schema",
        "spec/schemas/case.schema.json",
        "--prompt",
        "A successful /checkout call with Stripe payment",
        "--out",
    ])
    .arg(out)
    .args(extra);
    run(cmd)
}

fn content(message: &Value) -> &str {
    message["content"].as_str().unwrap()
}

#[test]
fn an_invalid_answer_is_sent_back_with_its_findings_and_the_valid_one_is_written() {
    let valid = std::fs::read_to_string(root().join("fixtures/cases/checkout.case.json")).unwrap();
    // The first span's trace id is two characters too long: the validator names the field.
    let invalid = valid.replacen("\"traceId\": \"", "\"traceId\": \"00", 1);
    assert_ne!(invalid, valid);
    let (base, seen) = model_endpoint(vec![
        format!("Here is the case you asked for:\n```json\n{invalid}\n```"),
        valid.clone(),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cases/synthetic.case.json");

    let (code, stdout, stderr) = generate(Some(&base), &out, &["--json"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let report = json_line(&stdout);
    assert_eq!(report["attempts"], 2, "{report}");
    assert_eq!(report["caseId"], "checkout-happy-path");
    assert_eq!(report["spans"], 3);

    let written = std::fs::read(&out).unwrap();
    assert!(validate_case(&written, "written").is_valid());
    assert_eq!(
        Case::read(&out).unwrap().exchanges().unwrap().len(),
        3,
        "the case the model gave is the one written"
    );

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    let first = &seen[0];
    assert_eq!(first.path, "/v1/chat/completions");
    assert!(
        first
            .headers
            .contains(&("authorization".into(), "Bearer gen-token-123".into())),
        "{:?}",
        first.headers
    );
    assert_eq!(first.body["model"], "case-writer-1");
    let messages = first.body["messages"].as_array().unwrap();
    let system = content(&messages[0]);
    assert!(
        system.contains("\"title\": \"Case file\""),
        "the schema is sent: {system}"
    );
    assert!(
        system.contains("An example case file:") && system.contains("\"caseId\""),
        "{system}"
    );
    assert_eq!(
        content(&messages[1]),
        "A successful /checkout call with Stripe payment"
    );

    // The retry carries the whole conversation and the validator's findings.
    let retry = seen[1].body["messages"].as_array().unwrap();
    assert_eq!(retry.len(), 4, "{retry:?}");
    assert_eq!(retry[2]["role"], "assistant");
    let feedback = content(&retry[3]);
    assert!(feedback.contains("That case file is invalid"), "{feedback}");
    assert!(feedback.contains("traceId"), "{feedback}");
    assert!(
        feedback.contains("synthetic.case.json:"),
        "findings name the file and line: {feedback}"
    );
}

#[test]
fn no_valid_answer_within_the_attempts_writes_nothing_and_fails() {
    let (base, seen) = model_endpoint(vec![
        "I cannot do that.".to_owned(),
        "{\"caseId\": \"x\"}".to_owned(),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("never.case.json");
    let (code, _, stderr) = generate(Some(&base), &out, &["--attempts", "2"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("no valid case after 2 attempt(s)"),
        "{stderr}"
    );
    assert!(stderr.contains("never.case.json"), "{stderr}");
    assert!(!out.exists());
    let seen = seen.lock().unwrap();
    assert!(
        content(&seen[1].body["messages"][3]).contains("holds no JSON object"),
        "{:?}",
        seen[1].body
    );
}

#[test]
fn without_an_endpoint_it_exits_2_naming_the_variables() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.case.json");
    let (code, stdout, stderr) = generate(None, &out, &[]);
    assert_eq!(code, 2, "{stdout}{stderr}");
    for var in [
        "SOFTPROBE_GENERATE_URL",
        "SOFTPROBE_GENERATE_MODEL",
        "SOFTPROBE_GENERATE_TOKEN",
    ] {
        assert!(stderr.contains(var), "{var} in {stderr}");
    }
    assert!(!out.exists());
}
