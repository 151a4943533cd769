//! The runtime's per-hop log lines, read from the binary's stderr as people (and log
//! collectors, with `--log-format json`) see them: a capture, a replay and a strict miss
//! through the egress proxy, sensitive query values masked; `RUST_LOG` honoured unless
//! `SOFTPROBE_LOG` says otherwise.

mod support;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Runtime, Spawn, free_port, spawn_runtime};

/// An upstream that answers every request `200 {"quote": 499}`.
fn upstream() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { break };
            let mut buf = [0u8; 8192];
            let _ = s.read(&mut buf);
            let body = r#"{"quote":499}"#;
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

/// The runtime's stderr lines, collected as they come.
fn collect(rt: &mut Runtime) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let stderr = rt.child.stderr.take().unwrap();
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            sink.lock().unwrap().push(line);
        }
    });
    lines
}

fn hop_lines(lines: &Arc<Mutex<Vec<String>>>, want: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let hops: Vec<Value> = lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["target"] == "softprobe::hop")
            .map(|v| v["fields"].clone())
            .collect();
        if hops.len() >= want || Instant::now() > deadline {
            return hops;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn http() -> reqwest::blocking::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::blocking::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
}

#[test]
fn capture_replay_and_strict_miss_each_log_one_line() {
    let up = upstream();
    let egress = free_port();
    let egress_addr = format!("127.0.0.1:{egress}");
    let mut rt = spawn_runtime(
        &[
            ("SOFTPROBE_EGRESS_LISTEN_ADDR", egress_addr.as_str()),
            ("SOFTPROBE_LOG_FORMAT", "json"),
        ],
        Spawn {
            log: "info",
            keep_stderr: true,
        },
    );
    let lines = collect(&mut rt);
    let control = http();
    let via_proxy = reqwest::blocking::Client::builder()
        .proxy(reqwest::Proxy::http(format!("http://{egress_addr}")).unwrap())
        .build()
        .unwrap();
    let url = format!("http://127.0.0.1:{up}/quote?zip=94107&access_token=abc123");
    let session = |mode: &str| -> String {
        let v: Value = control
            .post(format!("{}/v1/sessions", rt.base))
            .json(&json!({"mode": mode}))
            .send()
            .unwrap()
            .json()
            .unwrap();
        v["sessionId"].as_str().unwrap().to_owned()
    };

    let capture = session("capture");
    let resp = via_proxy
        .get(&url)
        .header("x-softprobe-session-id", &capture)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let dir = tempfile::tempdir().unwrap();
    let case = dir.path().join("quote.case.json");
    let closed = control
        .post(format!(
            "{}/v1/sessions/{capture}/close?out={}",
            rt.base,
            case.display()
        ))
        .send()
        .unwrap();
    assert_eq!(closed.status(), 200);

    let replay = session("replay");
    let load = control
        .post(format!("{}/v1/sessions/{replay}/load-case", rt.base))
        .header("content-type", "application/json")
        .body(std::fs::read(&case).unwrap())
        .send()
        .unwrap();
    assert_eq!(load.status(), 200, "{}", load.text().unwrap());
    let policy = control
        .post(format!("{}/v1/sessions/{replay}/policy", rt.base))
        .json(&json!({"externalHttp": "strict"}))
        .send()
        .unwrap();
    assert_eq!(policy.status(), 200);
    let resp = via_proxy
        .get(&url)
        .header("x-softprobe-session-id", &replay)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = via_proxy
        .post(format!("http://127.0.0.1:{up}/charge"))
        .header("x-softprobe-session-id", &replay)
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 599);

    // A per-request mode header is refused, not silently ignored.
    let resp = via_proxy
        .get(&url)
        .header("x-softprobe-session-id", &replay)
        .header("x-softprobe-mode", "capture")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().unwrap();
    assert_eq!(body["error"]["code"], "mode_override_unsupported", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("x-softprobe-mode: \"capture\" is not applied per request"),
        "{body}"
    );

    let hops = hop_lines(&lines, 4);
    let seen: Vec<(String, String, String, String, u64)> = hops
        .iter()
        .map(|h| {
            assert!(
                h["durationMs"].is_string() || h["durationMs"].is_number(),
                "{h}"
            );
            (
                h["sessionId"].as_str().unwrap().to_owned(),
                format!(
                    "{} {}",
                    h["direction"].as_str().unwrap(),
                    h["method"].as_str().unwrap()
                ),
                h["url"].as_str().unwrap().to_owned(),
                h["decision"].as_str().unwrap().to_owned(),
                h["status"].as_u64().unwrap(),
            )
        })
        .collect();
    let masked = format!("http://127.0.0.1:{up}/quote?zip=94107&access_token=***");
    assert_eq!(
        seen,
        [
            (
                capture.clone(),
                "outbound GET".into(),
                masked.clone(),
                "captured".into(),
                200
            ),
            (
                replay.clone(),
                "outbound GET".into(),
                masked,
                "replayed".into(),
                200
            ),
            (
                replay.clone(),
                "outbound POST".into(),
                format!("http://127.0.0.1:{up}/charge"),
                "strict miss".into(),
                599
            ),
            (
                replay.clone(),
                "outbound GET".into(),
                format!("http://127.0.0.1:{up}/quote?zip=94107&access_token=***"),
                "refused".into(),
                400
            ),
        ],
        "{hops:#?}"
    );
    let all = lines.lock().unwrap().join("\n");
    assert!(!all.contains("abc123"), "the token reached the log:\n{all}");
}

#[test]
fn rust_log_is_honoured_and_softprobe_log_wins() {
    let run = |envs: &[(&str, &str)]| -> Vec<String> {
        let mut rt = spawn_runtime(
            envs,
            Spawn {
                log: "",
                keep_stderr: true,
            },
        );
        let lines = collect(&mut rt);
        // A capture session's `/v1/traces` upload is one hop line at info.
        let v: Value = http()
            .post(format!("{}/v1/sessions", rt.base))
            .json(&json!({"mode": "capture"}))
            .send()
            .unwrap()
            .json()
            .unwrap();
        let id = v["sessionId"].as_str().unwrap().to_owned();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_softprobe"))
            .args([
                "export",
                "otlp",
                "--case",
                "fixtures/cases/checkout.case.json",
            ])
            .args(["--endpoint", &rt.base, "--session", &id])
            .current_dir(support::root())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(300));
        drop(rt);
        std::thread::sleep(Duration::from_millis(100));
        let text = lines.lock().unwrap().clone();
        text.into_iter()
            .filter(|l| l.contains("softprobe::hop"))
            .collect()
    };
    let quiet = run(&[("RUST_LOG", "warn")]);
    assert!(quiet.is_empty(), "{quiet:#?}");
    let loud = run(&[("RUST_LOG", "warn"), ("SOFTPROBE_LOG", "info")]);
    assert_eq!(loud.len(), 3, "{loud:#?}");
    assert!(
        loud.iter()
            .all(|l| l.contains("decision=\"captured\"") || l.contains("decision=captured")),
        "{loud:#?}"
    );
    // Not a terminal: no colour codes.
    assert!(loud.iter().all(|l| !l.contains('\x1b')), "{loud:#?}");
}
