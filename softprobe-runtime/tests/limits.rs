//! The runtime's limits over real sockets: open sessions, spans per session, idle expiry
//! (a capture is written, not lost), the header read timeout of every listener (control
//! API, ingress, egress) and the refusal of non-loopback binds.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use softprobe_runtime::case::Case;
use softprobe_runtime::proxy::{EgressProxy, IngressProxy};
use softprobe_runtime::session::SessionLimits;
use softprobe_runtime::{Error, RunningServer, Server};
use support::{Hop, create_session, expect_error, get_json, post_json, traces};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

async fn server_with(limits: SessionLimits, idle: Option<Duration>, dir: &Path) -> RunningServer {
    support::install_crypto_provider();
    Server::builder()
        .listen(loopback())
        .limits(limits)
        .idle_timeout(idle)
        .capture_path(Some(format!(
            "{}/{{sessionId}}.case.json",
            dir.to_string_lossy()
        )))
        // Tests close into their temporary directories.
        .capture_root(Some(std::env::temp_dir()))
        .start()
        .await
        .expect("the server starts")
}

/// `n` outbound spans for `session`, each with its own span id and path.
fn spans(session: &str, from: usize, n: usize) -> serde_json::Value {
    let ids: Vec<String> = (from..from + n)
        .map(|i| format!("{:016x}", i + 1))
        .collect();
    let paths: Vec<String> = (from..from + n).map(|i| format!("/item/{i}")).collect();
    let spans = ids
        .iter()
        .zip(&paths)
        .map(|(id, path)| {
            Hop {
                span_id: id,
                response: Some((200, vec![], "{}")),
                ..Hop::outbound(session, "GET", "api.test", path)
            }
            .span()
        })
        .collect();
    traces(spans)
}

#[tokio::test]
async fn creating_one_session_too_many_answers_429_and_closing_one_makes_room() {
    let dir = tempfile::tempdir().unwrap();
    let limits = SessionLimits {
        max_sessions: Some(3),
        ..SessionLimits::default()
    };
    let server = server_with(limits, None, dir.path()).await;
    let base = server.uri();
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(create_session(&base, "replay").await);
    }
    let (status, body) = post_json(&base, "/v1/sessions", &json!({"mode": "replay"})).await;
    let message = expect_error(status, &body, 429, "too_many_sessions");
    assert!(message.contains("3 sessions are open"), "{message}");
    assert!(message.contains("SOFTPROBE_MAX_SESSIONS"), "{message}");
    // The refused create changed nothing: the three sessions are still there.
    let (_, listed) = get_json(&base, "/v1/sessions").await;
    assert_eq!(listed["sessions"].as_array().unwrap().len(), 3);

    let (status, _) = post_json(&base, &format!("/v1/sessions/{}/close", ids[0]), &json!({})).await;
    assert_eq!(status, StatusCode::OK);
    create_session(&base, "replay").await;
}

#[tokio::test]
async fn spans_over_the_session_limit_answer_413_and_keep_what_was_stored() {
    let dir = tempfile::tempdir().unwrap();
    let limits = SessionLimits {
        max_spans_per_session: Some(3),
        ..SessionLimits::default()
    };
    let server = server_with(limits, None, dir.path()).await;
    let base = server.uri();
    let session = create_session(&base, "capture").await;
    let other = create_session(&base, "capture").await;

    let (status, body) = post_json(&base, "/v1/traces", &spans(&session, 0, 2)).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    // Two more do not fit: the whole batch is refused, the first two stay.
    let (status, body) = post_json(&base, "/v1/traces", &spans(&session, 2, 2)).await;
    let message = expect_error(status, &body, 413, "span_limit_exceeded");
    assert!(message.contains(&session), "{message}");
    assert!(message.contains("3 captured spans"), "{message}");
    assert!(message.contains("2 span(s) were not recorded"), "{message}");
    // Another session in the same runtime is not affected.
    let (status, _) = post_json(&base, "/v1/traces", &spans(&other, 0, 3)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // One more fits exactly; the next does not.
    let (status, _) = post_json(&base, "/v1/traces", &spans(&session, 4, 1)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = post_json(&base, "/v1/traces", &spans(&session, 5, 1)).await;
    expect_error(status, &body, 413, "span_limit_exceeded");

    let out = dir.path().join("limited.case.json");
    let (status, body) = post_json(
        &base,
        &format!("/v1/sessions/{session}/close?out={}", out.display()),
        &json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let case = Case::read(&out).unwrap();
    let paths: Vec<String> = case
        .exchanges()
        .unwrap()
        .into_iter()
        .map(|e| e.path)
        .collect();
    assert_eq!(paths, ["/item/0", "/item/1", "/item/4"]);
}

#[tokio::test]
async fn an_idle_capture_session_is_written_to_its_case_path_and_closed() {
    let dir = tempfile::tempdir().unwrap();
    // Long beside the 100 ms between the requests that keep `busy` in use, so a loaded
    // machine's pause between two of them does not make it idle too.
    let idle = Duration::from_secs(2);
    let server = server_with(SessionLimits::default(), Some(idle), dir.path()).await;
    let base = server.uri();
    let capture = create_session(&base, "capture").await;
    let replay = create_session(&base, "replay").await;
    let busy = create_session(&base, "capture").await;
    let (status, _) = post_json(&base, "/v1/traces", &spans(&capture, 0, 2)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let expected = dir.path().join(format!("{capture}.case.json"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !expected.exists() {
        assert!(
            Instant::now() < deadline,
            "the idle capture was never written"
        );
        // Keeps `busy` in use: it must outlive the idle ones.
        let (status, _) = get_json(&base, &format!("/v1/sessions/{busy}/stats")).await;
        assert_eq!(status, StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let case = Case::read(&expected).unwrap();
    assert_eq!(case.exchanges().unwrap().len(), 2);
    // Both idle sessions are gone; the busy one is not.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, listed) = get_json(&base, "/v1/sessions").await;
        let open: Vec<String> = listed["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["sessionId"].as_str().unwrap().to_owned())
            .collect();
        assert!(!open.contains(&capture), "{open:?}");
        if !open.contains(&replay) {
            assert_eq!(open, std::slice::from_ref(&busy));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the idle replay session stayed open"
        );
        let (status, _) = get_json(&base, &format!("/v1/sessions/{busy}/stats")).await;
        assert_eq!(status, StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, body) = get_json(&base, &format!("/v1/sessions/{capture}/state")).await;
    expect_error(status, &body, 404, "unknown_session");
}

#[tokio::test]
async fn an_idle_capture_that_cannot_be_written_stays_open() {
    let dir = tempfile::tempdir().unwrap();
    // The capture path's parent is a file: every write fails.
    let blocker = dir.path().join("blocker");
    std::fs::write(&blocker, "x").unwrap();
    let server = server_with(
        SessionLimits::default(),
        Some(Duration::from_millis(300)),
        &blocker,
    )
    .await;
    let base = server.uri();
    let session = create_session(&base, "capture").await;
    let (status, _) = post_json(&base, "/v1/traces", &spans(&session, 0, 1)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, _) = get_json(&base, &format!("/v1/sessions/{session}/stats")).await;
    assert_eq!(status, StatusCode::OK, "the session was lost");
    let out = dir.path().join("retry.case.json");
    let (status, body) = post_json(
        &base,
        &format!("/v1/sessions/{session}/close?out={}", out.display()),
        &json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(Case::read(&out).unwrap().exchanges().unwrap().len(), 1);
}

/// Opens a connection to `addr`, sends a request head one byte every 100 ms, and returns
/// how long the listener took to close the connection (None if it never did within
/// `give_up`).
async fn dribble_until_closed(addr: SocketAddr, give_up: Duration) -> Option<Duration> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = b"GET /health HTTP/1.1\r\nhost: localhost\r\nx-slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
    let started = Instant::now();
    let mut buf = [0u8; 512];
    for byte in head.iter().cycle() {
        if started.elapsed() > give_up {
            return None;
        }
        if stream.write_all(&[*byte]).await.is_err() {
            return Some(started.elapsed());
        }
        // A closed connection reads as EOF (or a reset); a 408 answer counts as closed too.
        match tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {
                let rest = tokio::time::timeout(Duration::from_secs(2), async {
                    let mut sink = Vec::new();
                    stream.read_to_end(&mut sink).await
                })
                .await;
                assert!(rest.is_ok(), "the connection stayed open after answering");
                return Some(started.elapsed());
            }
            Err(_) => {}
        }
    }
    None
}

async fn assert_slow_headers_are_cut(what: &str, addr: SocketAddr, timeout: Duration) {
    let closed = dribble_until_closed(addr, timeout * 6).await;
    let Some(after) = closed else {
        panic!("{what}: a client dribbling its headers kept the connection open");
    };
    assert!(
        after >= timeout && after < timeout * 4,
        "{what}: closed after {after:?}, timeout {timeout:?}"
    );
}

/// A whole request on a fresh connection, answered: the timeout only hits slow clients.
async fn assert_prompt_request_works(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut answer))
        .await
        .unwrap()
        .unwrap();
    answer
}

#[tokio::test]
async fn every_listener_closes_connections_that_dribble_their_headers() {
    support::install_crypto_provider();
    let timeout = Duration::from_millis(700);
    let server = Server::builder()
        .listen(loopback())
        .header_read_timeout(timeout)
        .start()
        .await
        .unwrap();
    let ingress = IngressProxy::builder()
        .upstream(server.uri())
        .header_read_timeout(timeout)
        .start()
        .await
        .unwrap();
    let egress = EgressProxy::builder()
        .upstream(server.uri())
        .header_read_timeout(timeout)
        .start()
        .await
        .unwrap();
    let (a, b, c) = tokio::join!(
        assert_slow_headers_are_cut("control API", server.addr(), timeout),
        assert_slow_headers_are_cut("ingress", ingress.addr(), timeout),
        assert_slow_headers_are_cut("egress", egress.addr(), timeout),
    );
    let ((), (), ()) = (a, b, c);
    for (what, addr) in [
        ("control API", server.addr()),
        ("ingress", ingress.addr()),
        ("egress", egress.addr()),
    ] {
        let answer = assert_prompt_request_works(addr, "/health").await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{what}: {answer}");
    }
}

#[tokio::test]
async fn a_non_loopback_bind_needs_allow_remote() {
    let err = Server::builder()
        .listen("0.0.0.0:0".parse().unwrap())
        .start()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::RemoteBindRefused { .. }), "{err}");
    assert!(err.to_string().contains("--allow-remote"), "{err}");
    let err = Server::builder()
        .listen("0.0.0.0:0".parse().unwrap())
        .allow_remote(true)
        .start()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::RemoteWithoutToken { .. }), "{err}");
    assert!(err.to_string().contains("--insecure-no-token"), "{err}");
    let server = Server::builder()
        .listen("0.0.0.0:0".parse().unwrap())
        .allow_remote(true)
        .token(Some("s3cret".to_owned()))
        .start()
        .await
        .expect("allowed on purpose");
    let port = server.addr().port();
    let answer = assert_prompt_request_works(([127, 0, 0, 1], port).into(), "/health").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn a_body_over_the_limit_is_answered_413_after_the_client_has_sent_it() {
    // A client writes its whole body before it reads the answer. Were the connection closed
    // right after the 413, the rest of its body would meet a reset connection and the
    // answer would be lost with it: the client would report a broken connection.
    let dir = tempfile::tempdir().unwrap();
    support::install_crypto_provider();
    let server = Server::builder()
        .listen(loopback())
        .body_limit(64 * 1024)
        .capture_root(Some(dir.path().to_owned()))
        .start()
        .await
        .expect("the server starts");
    const LEN: usize = 8 << 20;
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    let head = format!(
        "POST /v1/traces HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n\
         content-length: {LEN}\r\nconnection: close\r\n\r\n"
    );
    support::refused_after_whole_body(&mut stream, &head, LEN, 64 * 1024).await;
}
