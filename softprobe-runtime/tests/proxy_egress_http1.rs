//! The egress proxy's plain-HTTP requests on the proxies' own HTTP/1 exchange, over real
//! sockets: a raw client writing proxy requests (absolute-form, with the session in the
//! proxy credentials or a header), a runtime in the same process holding the sessions, and
//! an upstream that counts its connections and keeps the request heads it read. Also what
//! that exchange hands to hyper: `CONNECT` tunnels, HTTP/1.0, malformed heads.

mod support;

use std::sync::Arc;

use base64::Engine as _;
use serde_json::json;

use softprobe_runtime::proxy::{EgressProxy, RunningEgress, StoreBackend};
use support::*;

const PRICE: &str = r#"{"sku":"sku-42","price":1999}"#;

async fn egress_for(runtime: &softprobe_runtime::RunningServer) -> RunningEgress {
    EgressProxy::builder()
        .backend(Arc::new(StoreBackend::new(runtime.store())))
        .start()
        .await
        .unwrap()
}

/// `Proxy-Authorization: Basic` naming `session` (and `token` as the password).
fn credentials(session: &str, token: &str) -> String {
    let pair = base64::engine::general_purpose::STANDARD.encode(format!("{session}:{token}"));
    format!("proxy-authorization: Basic {pair}\r\n")
}

/// A replay session whose case recorded `GET prices.test/v1/price/sku-42`, under the strict
/// policy: anything else is a strict miss.
async fn strict_replay(rt: &str) -> String {
    let id = create_session(rt, "replay").await;
    let recorded = Hop {
        response: Some((200, vec![("content-type", "application/json")], PRICE)),
        ..Hop::outbound("sess_recorded", "GET", "prices.test", "/v1/price/sku-42")
    };
    let case = json!({
        "version": "1.0.0",
        "caseId": "prices",
        "createdAt": "2026-04-20T10:00:00Z",
        "traces": [traces(vec![recorded.span()])],
    });
    let (status, body) = post_json(rt, &format!("/v1/sessions/{id}/load-case"), &case).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post_json(
        rt,
        &format!("/v1/sessions/{id}/policy"),
        &json!({"externalHttp": "strict"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    id
}

/// An upstream that answers every request with `from upstream`, counting its connections
/// and keeping the request heads it read.
async fn counting_upstream() -> RawUpstream {
    RawUpstream::start(
        |_| b"HTTP/1.1 200 OK\r\ncontent-length: 13\r\n\r\nfrom upstream".to_vec(),
        false,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_answers_and_a_strict_miss_on_one_kept_alive_connection() {
    let runtime = runtime().await;
    let rt = runtime.uri();
    let session = strict_replay(&rt).await;
    let egress = egress_for(&runtime).await;
    let mut client = RawClient::connect(egress.addr()).await;
    let creds = credentials(&session, "");
    for _ in 0..2 {
        client
            .send(
                format!(
                    "GET http://prices.test/v1/price/sku-42 HTTP/1.1\r\nhost: prices.test\r\n\
                     {creds}accept: application/json\r\n\r\n"
                )
                .as_bytes(),
            )
            .await;
        let answer = client.answer(false).await;
        assert_eq!(answer.status(), 200, "{answer:?}");
        assert_eq!(answer.body, PRICE.as_bytes(), "{answer:?}");
        assert_eq!(answer.header("content-type"), Some("application/json"));
        assert_eq!(
            answer.header("connection"),
            None,
            "the connection stays open"
        );
    }
    // Nothing recorded answers this one, and external HTTP is strict.
    client
        .send(
            format!(
                "GET http://prices.test/v1/price/sku-43 HTTP/1.1\r\nhost: prices.test\r\n{creds}\r\n"
            )
            .as_bytes(),
        )
        .await;
    let miss = client.answer(false).await;
    assert_eq!(miss.status(), 599, "{miss:?}");
    assert_eq!(miss.json()["error"]["code"], "strict_miss", "{miss:?}");
    // The session header names the session as well as the credentials do.
    client
        .send(
            format!(
                "GET http://prices.test/v1/price/sku-42 HTTP/1.1\r\nhost: prices.test\r\n\
                 x-softprobe-session-id: {session}\r\nconnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .await;
    let answer = client.answer(false).await;
    assert_eq!(answer.status(), 200, "{answer:?}");
    assert_eq!(answer.header("connection"), Some("close"));
    assert_eq!(
        client.rest().await,
        "",
        "closed after the answer it was asked to close"
    );
    assert_eq!(
        stats(&rt, &session).await["strictMisses"],
        1,
        "{}",
        stats(&rt, &session).await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_answers_are_captured_over_one_upstream_connection() {
    let runtime = runtime().await;
    let rt = runtime.uri();
    let session = create_session(&rt, "capture").await;
    let upstream = counting_upstream().await;
    let egress = egress_for(&runtime).await;
    let mut client = RawClient::connect(egress.addr()).await;
    let creds = credentials(&session, "");
    let target = upstream.addr;
    for n in 0..3 {
        client
            .send(
                format!(
                    "POST http://{target}/orders?n={n} HTTP/1.1\r\nhost: {target}\r\n{creds}\
                     content-length: 7\r\n\r\norder-{n}"
                )
                .as_bytes(),
            )
            .await;
        let answer = client.answer(false).await;
        assert_eq!(answer.status(), 200, "{answer:?}");
        assert_eq!(answer.body, b"from upstream");
    }
    assert_eq!(
        upstream.connections(),
        1,
        "one upstream connection, kept alive"
    );
    let heads = upstream.heads();
    assert_eq!(heads.len(), 3, "{heads:?}");
    for (n, head) in heads.iter().enumerate() {
        assert!(
            head.starts_with(&format!("POST /orders?n={n} HTTP/1.1\r\n")),
            "the upstream gets origin-form: {head}"
        );
        let lower = head.to_ascii_lowercase();
        assert!(!lower.contains("proxy-authorization"), "{head}");
        assert!(lower.contains("via: 1.1 softprobe-"), "{head}");
    }
    wait_extracted(&rt, &session, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_credentials_are_checked_before_the_body_is_read() {
    let runtime = runtime().await;
    let upstream = counting_upstream().await;
    let egress = EgressProxy::builder()
        .backend(Arc::new(StoreBackend::new(runtime.store())))
        .proxy_token(Some("s3cret".into()))
        .start()
        .await
        .unwrap();
    let target = upstream.addr;
    let mut client = RawClient::connect(egress.addr()).await;
    // Without a body the connection stays usable after the 407.
    client
        .send(format!("GET http://{target}/a HTTP/1.1\r\nhost: {target}\r\n\r\n").as_bytes())
        .await;
    let refused = client.answer(false).await;
    assert_eq!(refused.status(), 407, "{refused:?}");
    assert_eq!(
        refused.header("proxy-authenticate"),
        Some("Basic realm=\"softprobe\"")
    );
    assert_eq!(refused.json()["error"]["code"], "proxy_auth_required");
    let good = credentials("", "s3cret");
    client
        .send(format!("GET http://{target}/b HTTP/1.1\r\nhost: {target}\r\n{good}\r\n").as_bytes())
        .await;
    let answer = client.answer(false).await;
    assert_eq!(answer.status(), 200, "{answer:?}");
    // With a body that was never read, the 407 closes the connection.
    let wrong = credentials("", "guess");
    client
        .send(
            format!(
                "POST http://{target}/c HTTP/1.1\r\nhost: {target}\r\n{wrong}content-length: 5\r\n\r\nhello"
            )
            .as_bytes(),
        )
        .await;
    let refused = client.answer(false).await;
    assert_eq!(refused.status(), 407, "{refused:?}");
    assert_eq!(refused.header("connection"), Some("close"));
    assert_eq!(client.rest().await, "");
    assert_eq!(
        upstream.heads().len(),
        1,
        "only the request with credentials went on"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_unforwardable_requests_get_answers_that_say_why() {
    let runtime = runtime().await;
    let egress = egress_for(&runtime).await;
    // Ambiguous body framing: refused by the own exchange, and the connection closed.
    let mut client = RawClient::connect(egress.addr()).await;
    client
        .send(
            b"POST http://example.test/ HTTP/1.1\r\nhost: example.test\r\ncontent-length: 3\r\n\
              transfer-encoding: chunked\r\n\r\n0\r\n\r\n",
        )
        .await;
    let refused = client.answer(false).await;
    assert_eq!(refused.status(), 400, "{refused:?}");
    let message = refused.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("both Content-Length and Transfer-Encoding"),
        "{message}"
    );
    assert_eq!(client.rest().await, "");
    // A scheme the proxy does not forward: the hop building's own answer.
    let mut client = RawClient::connect(egress.addr()).await;
    client
        .send(b"GET ftp://example.test/file HTTP/1.1\r\nhost: example.test\r\n\r\n")
        .await;
    let refused = client.answer(false).await;
    assert_eq!(refused.status(), 400, "{refused:?}");
    let message = refused.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("unsupported scheme \"ftp\""), "{message}");
    // A malformed head goes to hyper, which answers 400 and closes.
    let mut client = RawClient::connect(egress.addr()).await;
    client
        .send(b"GET http://example.test/ HTTP/1.1\r\nbad header\r\n\r\n")
        .await;
    let rest = client.rest().await;
    assert!(rest.starts_with("HTTP/1.1 400"), "{rest}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_tunnels_and_http10_still_go_to_hyper() {
    let runtime = runtime().await;
    let rt = runtime.uri();
    let session = create_session(&rt, "capture").await;
    let upstream = counting_upstream().await;
    let egress = egress_for(&runtime).await;
    let target = upstream.addr;
    let creds = credentials(&session, "");
    // A plain-HTTP request inside a CONNECT tunnel, in the tunnel's session.
    let mut client = RawClient::connect(egress.addr()).await;
    client
        .send(format!("CONNECT {target} HTTP/1.1\r\nhost: {target}\r\n{creds}\r\n").as_bytes())
        .await;
    let established = client.answer(true).await;
    assert_eq!(established.status(), 200, "{established:?}");
    client
        .send(format!("GET /inside HTTP/1.1\r\nhost: {target}\r\n\r\n").as_bytes())
        .await;
    let answer = client.answer(false).await;
    assert_eq!(answer.status(), 200, "{answer:?}");
    assert_eq!(answer.body, b"from upstream");
    // HTTP/1.0, absolute-form: hyper's.
    let mut client = RawClient::connect(egress.addr()).await;
    client
        .send(format!("GET http://{target}/old HTTP/1.0\r\n{creds}\r\n").as_bytes())
        .await;
    let rest = client.rest().await;
    assert!(
        rest.starts_with("HTTP/1.") && rest.contains(" 200 OK\r\n"),
        "{rest}"
    );
    assert!(rest.ends_with("from upstream"), "{rest}");
    let heads = upstream.heads();
    assert!(heads[0].starts_with("GET /inside HTTP/1.1"), "{heads:?}");
    assert!(heads[1].starts_with("GET /old HTTP/1.1"), "{heads:?}");
    wait_extracted(&rt, &session, 2).await;
}
