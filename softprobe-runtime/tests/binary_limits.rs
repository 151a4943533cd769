//! The limits as the `softprobe-runtime` binary takes them, from flags and from the
//! environment: open sessions, spans per session, idle expiry writing the capture, and the
//! header read timeout on the control API and the egress proxy.

#![cfg(feature = "cli")]

mod support;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use serde_json::{Value, json};
use softprobe_runtime::case::Case;
use support::{Binary, Hop, free_addr, runtime_command, traces, wait_health};

fn client() -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::builder().no_proxy().build().unwrap()
}

fn post(base: &str, path: &str, body: &Value) -> (u16, Value) {
    let resp = client()
        .post(format!("{base}{path}"))
        .json(body)
        .send()
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

fn span(session: &str, i: usize) -> Value {
    let span_id = format!("{:016x}", i + 1);
    let path = format!("/item/{i}");
    Hop {
        span_id: &span_id,
        ..Hop::outbound(session, "GET", "api.test", &path)
    }
    .span()
}

/// Sends a request head one byte every 100 ms; returns how long until the peer closed.
fn dribble(addr: &str, give_up: Duration) -> Option<Duration> {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let head =
        b"GET /health HTTP/1.1\r\nhost: localhost\r\nx-slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
    let started = Instant::now();
    let mut buf = [0u8; 256];
    for byte in head.iter().cycle() {
        if started.elapsed() > give_up {
            return None;
        }
        if stream.write_all(&[*byte]).is_err() {
            return Some(started.elapsed());
        }
        match stream.read(&mut buf) {
            Ok(_) => return Some(started.elapsed()),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Some(started.elapsed()),
        }
    }
    None
}

#[test]
fn the_binary_applies_its_limit_flags_and_variables() {
    let dir = tempfile::tempdir().unwrap();
    let (runtime, egress) = (free_addr(), free_addr());
    let template = format!("{}/{{sessionId}}.case.json", dir.path().display());
    let child = runtime_command()
        .args([
            "--listen",
            &runtime,
            "--egress-listen",
            &egress,
            "--max-sessions",
            "2",
            "--header-read-timeout",
            "800ms",
        ])
        .env("SOFTPROBE_MAX_SPANS_PER_SESSION", "3")
        .env("SOFTPROBE_IDLE_TIMEOUT", "2")
        .env("SOFTPROBE_CAPTURE_CASE_PATH", &template)
        .spawn()
        .unwrap();
    let _bin = Binary(child);
    let base = format!("http://{runtime}");
    wait_health(&runtime);

    for addr in [&runtime, &egress] {
        let closed = dribble(addr, Duration::from_secs(8));
        let after = closed.unwrap_or_else(|| panic!("{addr} kept a dribbling client"));
        assert!(
            after >= Duration::from_millis(800) && after < Duration::from_secs(4),
            "{addr}: closed after {after:?}"
        );
    }

    let (_, created) = post(&base, "/v1/sessions", &json!({"mode": "capture"}));
    let capture = created["sessionId"].as_str().unwrap().to_owned();
    let (status, _) = post(&base, "/v1/sessions", &json!({"mode": "replay"}));
    assert_eq!(status, 200);
    let (status, body) = post(&base, "/v1/sessions", &json!({"mode": "replay"}));
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "too_many_sessions");

    let (status, _) = post(
        &base,
        "/v1/traces",
        &traces((0..3).map(|i| span(&capture, i)).collect()),
    );
    assert_eq!(status, 204);
    let (status, body) = post(&base, "/v1/traces", &traces(vec![span(&capture, 3)]));
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "span_limit_exceeded");

    // Left alone, the capture expires into its case file with its three spans.
    let written = dir.path().join(format!("{capture}.case.json"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !written.exists() {
        assert!(
            Instant::now() < deadline,
            "the idle capture was never written"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Written atomically: once it exists it is whole.
    let case = Case::read(&written).unwrap();
    assert_eq!(case.exchanges().unwrap().len(), 3);
    // Both sessions expired, so there is room again.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, _) = post(&base, "/v1/sessions", &json!({"mode": "replay"}));
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the idle sessions were never closed"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
