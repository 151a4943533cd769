//! WebSockets through both proxies with tokio-tungstenite on both ends: the upgrade and the
//! frames pass through (the session header does not reach the upstream), capture records the
//! conversation, replay plays it back with the upstream stopped, and a client message that
//! differs from the recording closes the socket with the difference and counts as a miss.

mod support;

use std::sync::{Arc, Mutex};

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use softprobe_runtime::case::Case;
use softprobe_runtime::proxy::websocket::{PROTOCOL, Transcript, WEBSOCKET};
use softprobe_runtime::proxy::{EgressProxy, IngressProxy, StoreBackend};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use support::*;

type Seen = Arc<Mutex<Vec<http::HeaderMap>>>;

/// A WebSocket upstream: answers each text message with `{"echo": <it>, "n": <count>}` and
/// each binary message with its bytes reversed; keeps the headers of every handshake.
async fn upstream(seen: Seen) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind(localhost()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let seen = seen.clone();
            tokio::spawn(async move {
                // The callback's signature is tungstenite's; its error type is not ours.
                #[allow(clippy::result_large_err)]
                let callback = |req: &http::Request<()>, resp| {
                    seen.lock().unwrap().push(req.headers().clone());
                    Ok(resp)
                };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
                    return;
                };
                let mut n = 0;
                while let Some(Ok(msg)) = ws.next().await {
                    let reply = match msg {
                        Message::Text(t) => {
                            n += 1;
                            let asked: Value = serde_json::from_str(t.as_str()).unwrap();
                            Message::Text(json!({"echo": asked, "n": n}).to_string().into())
                        }
                        Message::Binary(b) => {
                            Message::Binary(b.iter().rev().copied().collect::<Vec<u8>>().into())
                        }
                        Message::Close(_) => break,
                        _ => continue,
                    };
                    if ws.send(reply).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (addr, task)
}

type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

/// Opens `/feed` through the ingress at `ingress`, naming `session`.
async fn through_ingress(ingress: std::net::SocketAddr, session: &str) -> Ws {
    let mut req = format!("ws://{ingress}/feed")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("x-softprobe-session-id", session.parse().unwrap());
    let stream = TcpStream::connect(ingress).await.unwrap();
    let (ws, resp) = tokio_tungstenite::client_async(req, stream).await.unwrap();
    assert_eq!(resp.status(), 101);
    ws
}

/// Opens `ws://{target}/feed` through a `CONNECT` tunnel of the egress at `egress`, the
/// session in the proxy credentials, as a client behind `HTTP_PROXY` does.
async fn through_egress(
    egress: std::net::SocketAddr,
    target: std::net::SocketAddr,
    session: &str,
) -> Ws {
    let mut stream = TcpStream::connect(egress).await.unwrap();
    let creds = base64::engine::general_purpose::STANDARD.encode(format!("{session}:"));
    stream
        .write_all(
            format!(
                "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nProxy-Authorization: Basic {creds}\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        assert_eq!(stream.read(&mut byte).await.unwrap(), 1);
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    let mut req = format!("ws://{target}/feed").into_client_request().unwrap();
    req.headers_mut()
        .insert("x-softprobe-session-id", session.parse().unwrap());
    let (ws, resp) = tokio_tungstenite::client_async(req, stream).await.unwrap();
    assert_eq!(resp.status(), 101);
    ws
}

/// The conversation every test has: two JSON texts and one binary message, then close.
/// Returns the replies.
async fn converse(mut ws: Ws, first: Value) -> Vec<Message> {
    let mut replies = Vec::new();
    for msg in [
        Message::Text(first.to_string().into()),
        Message::Binary(vec![1u8, 2, 3, 250].into()),
        Message::Text(json!({"subscribe": "B-7"}).to_string().into()),
    ] {
        ws.send(msg).await.unwrap();
        replies.push(ws.next().await.unwrap().unwrap());
    }
    ws.close(None).await.unwrap();
    while ws.next().await.is_some() {}
    replies
}

fn expected_replies() -> Vec<Message> {
    vec![
        Message::Text(
            json!({"echo": {"subscribe": "A-1"}, "n": 1})
                .to_string()
                .into(),
        ),
        Message::Binary(vec![250u8, 3, 2, 1].into()),
        Message::Text(
            json!({"echo": {"subscribe": "B-7"}, "n": 2})
                .to_string()
                .into(),
        ),
    ]
}

async fn close_to_case(rt: &str, session: &str, dir: &tempfile::TempDir) -> (Value, Transcript) {
    wait_extracted(rt, session, 1).await;
    let out = dir.path().join(format!("{session}.case.json"));
    close_to(rt, session, &out).await;
    let hops = Case::read(&out).unwrap().exchanges().unwrap();
    assert_eq!(hops.len(), 1, "{hops:#?}");
    let hop = &hops[0];
    assert_eq!(hop.status, Some(101));
    assert_eq!(hop.path, "/feed");
    assert!(
        hop.extra_attributes
            .iter()
            .any(|kv| kv.key == PROTOCOL && kv.value.as_str() == Some(WEBSOCKET)),
        "{hop:#?}"
    );
    let transcript: Transcript =
        serde_json::from_slice(hop.response_body.as_ref().unwrap().as_bytes()).unwrap();
    let json = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    (json, transcript)
}

fn check_transcript(t: &Transcript) {
    let shape: Vec<(&str, &str)> = t
        .messages
        .iter()
        .map(|m| (m.from.as_str(), m.kind.as_str()))
        .collect();
    assert_eq!(
        shape,
        vec![
            ("client", "text"),
            ("server", "text"),
            ("client", "binary"),
            ("server", "binary"),
            ("client", "text"),
            ("server", "text"),
        ]
    );
    assert_eq!(t.messages[0].data, r#"{"subscribe":"A-1"}"#);
    assert_eq!(t.messages[3].data, "+gMCAQ==", "binary as base64");
    assert!(t.messages.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_through_the_ingress_is_relayed_and_captured() {
    let seen: Seen = Arc::default();
    let (up, _up_task) = upstream(seen.clone()).await;
    let runtime = runtime().await;
    let rt = runtime.uri();
    let ingress = IngressProxy::builder()
        .upstream(format!("http://{up}"))
        .backend(Arc::new(StoreBackend::new(runtime.store())))
        .start()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();

    let session = create_session(&rt, "capture").await;
    let replies = converse(
        through_ingress(ingress.addr(), &session).await,
        json!({"subscribe": "A-1"}),
    )
    .await;
    assert_eq!(replies, expected_replies());
    let (_, transcript) = close_to_case(&rt, &session, &dir).await;
    check_transcript(&transcript);
    let shown = std::process::Command::new(env!("CARGO_BIN_EXE_softprobe"))
        .args(["inspect", "case"])
        .arg(dir.path().join(format!("{session}.case.json")))
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.lines().any(|l| l.contains("websocket")
            && l.contains("101")
            && l.contains("/feed (6 messages)")),
        "{shown}"
    );
    // The application sees the upgrade with trace context stamped by the ingress.
    let headers = seen.lock().unwrap()[0].clone();
    assert!(
        headers["tracestate"]
            .to_str()
            .unwrap()
            .contains(&format!("sp={session}")),
        "{headers:?}"
    );

    // Inbound hops are never answered by the ingress: in a replay session the socket still
    // reaches the live application.
    let replay = create_session(&rt, "replay").await;
    let replies = converse(
        through_ingress(ingress.addr(), &replay).await,
        json!({"subscribe": "A-1"}),
    )
    .await;
    assert_eq!(replies, expected_replies());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_through_an_egress_tunnel_is_captured_replayed_and_drift_is_reported() {
    let seen: Seen = Arc::default();
    let (up, up_task) = upstream(seen.clone()).await;
    let runtime = runtime().await;
    let rt = runtime.uri();
    let egress = EgressProxy::builder()
        .backend(Arc::new(StoreBackend::new(runtime.store())))
        .start()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();

    let session = create_session(&rt, "capture").await;
    let replies = converse(
        through_egress(egress.addr(), up, &session).await,
        json!({"subscribe": "A-1"}),
    )
    .await;
    assert_eq!(replies, expected_replies());
    let (case, transcript) = close_to_case(&rt, &session, &dir).await;
    check_transcript(&transcript);
    let headers = seen.lock().unwrap()[0].clone();
    assert!(
        headers.get("x-softprobe-session-id").is_none(),
        "the session header reached the upstream: {headers:?}"
    );

    // Replay with the upstream stopped: the same replies, byte for byte.
    up_task.abort();
    let replay = create_session(&rt, "replay").await;
    post(
        &rt,
        &format!("/v1/sessions/{replay}/load-case"),
        case.clone(),
    )
    .await;
    post(
        &rt,
        &format!("/v1/sessions/{replay}/policy"),
        json!({"externalHttp": "strict"}),
    )
    .await;
    let replies = converse(
        through_egress(egress.addr(), up, &replay).await,
        json!({"subscribe": "A-1"}),
    )
    .await;
    assert_eq!(replies, expected_replies());
    assert_eq!(stats(&rt, &replay).await["strictMisses"], 0);

    // A changed client message: the socket closes with the difference, the session counts it.
    let drift = create_session(&rt, "replay").await;
    post(&rt, &format!("/v1/sessions/{drift}/load-case"), case).await;
    let mut ws = through_egress(egress.addr(), up, &drift).await;
    ws.send(Message::Text(
        json!({"subscribe": "Z-9"}).to_string().into(),
    ))
    .await
    .unwrap();
    let Some(Ok(Message::Close(Some(frame)))) = ws.next().await else {
        panic!("the replay did not close the socket on a changed message");
    };
    assert_eq!(frame.code, CloseCode::Policy);
    assert!(
        frame.reason.as_str().starts_with(
            r#"client message 1 differs from the recording: expected text "{\"subscribe\":\"A-1\"}", got text"#
        ),
        "{}",
        frame.reason
    );
    let mut state = Value::Null;
    for _ in 0..100 {
        state = json_of(
            client()
                .get(format!("{rt}/v1/sessions/{drift}/state"))
                .send()
                .await
                .unwrap(),
        )
        .await
        .1;
        if state.to_string().contains("websocket_drift") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let text = state.to_string();
    assert!(
        text.contains("websocket_drift") && text.contains("Z-9") && text.contains("A-1"),
        "{state}"
    );
    assert_eq!(stats(&rt, &drift).await["strictMisses"], 1);
}
