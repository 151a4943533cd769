//! The ingress's own HTTP/1 exchange over real sockets: a raw client writing bytes, and
//! upstreams that answer with every body framing (length, chunked, until close), close
//! kept-alive connections, or go away mid-answer. Also what it hands to hyper: malformed and
//! oversized heads, HTTP/1.0, HTTP/2.

mod support;

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use softprobe_runtime::proxy::{IngressProxy, RunningProxy, StoreBackend};
use support::*;

async fn ingress_to(upstream: &str) -> RunningProxy {
    install_crypto_provider();
    IngressProxy::builder()
        .upstream(upstream)
        .start()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_client_connection_keeps_one_upstream_connection() {
    let upstream = RawUpstream::start(
        |n| format!("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{:02}", n % 100).into_bytes(),
        false,
    )
    .await;
    let ingress = ingress_to(&upstream.url()).await;
    let mut client = RawClient::connect(ingress.addr()).await;
    for n in 0..5 {
        client
            .send(format!("GET /item/{n} HTTP/1.1\r\nhost: app\r\n\r\n").as_bytes())
            .await;
        let answer = client.answer(false).await;
        assert_eq!(answer.status(), 200, "{answer:?}");
        assert_eq!(answer.body, format!("{n:02}").as_bytes());
        assert!(answer.header("date").is_some(), "{answer:?}");
    }
    assert_eq!(upstream.connections(), 1);
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let echo = echo().await;
    let ingress = ingress_to(&echo.url()).await;
    let mut client = RawClient::connect(ingress.addr()).await;
    client
        .send(
            b"GET /first HTTP/1.1\r\nhost: app\r\n\r\n\
              POST /second HTTP/1.1\r\nhost: app\r\ncontent-length: 3\r\n\r\nabc\
              GET /third HTTP/1.1\r\nhost: app\r\n\r\n",
        )
        .await;
    for (path, body) in [("/first", ""), ("/second", "abc"), ("/third", "")] {
        let answer = client.answer(false).await;
        assert_eq!(answer.status(), 200, "{answer:?}");
        let echoed = answer.json();
        assert_eq!(echoed["path"], path);
        assert_eq!(echoed["body"], body);
    }
}

#[tokio::test]
async fn a_chunked_request_body_reaches_the_upstream_whole_with_its_length() {
    let echo = echo().await;
    let ingress = ingress_to(&echo.url()).await;
    let mut client = RawClient::connect(ingress.addr()).await;
    client
        .send(
            b"POST /upload HTTP/1.1\r\nhost: app\r\ntransfer-encoding: chunked\r\n\r\n\
              5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: t\r\n\r\n",
        )
        .await;
    let answer = client.answer(false).await;
    assert_eq!(answer.status(), 200, "{answer:?}");
    let echoed = answer.json();
    assert_eq!(echoed["body"], "hello world");
    assert_eq!(echoed["headers"]["content-length"], "11");
    assert!(echoed["headers"].get("transfer-encoding").is_none());
}

#[tokio::test]
async fn a_chunked_request_sent_after_100_continue_is_read() {
    let echo = echo().await;
    let ingress = ingress_to(&echo.url()).await;
    let mut client = RawClient::connect(ingress.addr()).await;
    client
        .send(
            b"POST /upload HTTP/1.1\r\nhost: app\r\ntransfer-encoding: chunked\r\n\
              expect: 100-continue\r\n\r\n",
        )
        .await;
    let interim = client.answer(true).await;
    assert_eq!(interim.status(), 100, "{interim:?}");
    client.send(b"3\r\nabc\r\n0\r\n\r\n").await;
    let answer = client.answer(false).await;
    assert_eq!(answer.json()["body"], "abc");
}

#[tokio::test]
async fn answers_framed_by_chunks_or_by_close_reach_the_client_whole() {
    let chunked = RawUpstream::start(
        |_| {
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
              4\r\nwiki\r\n5\r\npedia\r\n0\r\n\r\n"
                .to_vec()
        },
        false,
    )
    .await;
    let ingress = ingress_to(&chunked.url()).await;
    let mut client = RawClient::connect(ingress.addr()).await;
    for _ in 0..2 {
        client.send(b"GET / HTTP/1.1\r\nhost: app\r\n\r\n").await;
        let answer = client.answer(false).await;
        assert_eq!(answer.body, b"wikipedia", "{answer:?}");
    }
    assert_eq!(
        chunked.connections(),
        1,
        "a chunked answer keeps the connection"
    );

    let until_close = RawUpstream::start(
        |_| b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil the end".to_vec(),
        true,
    )
    .await;
    let ingress = ingress_to(&until_close.url()).await;
    let mut client = RawClient::connect(ingress.addr()).await;
    for _ in 0..2 {
        client.send(b"GET / HTTP/1.1\r\nhost: app\r\n\r\n").await;
        let answer = client.answer(false).await;
        assert_eq!(answer.status(), 200, "{answer:?}");
        assert_eq!(answer.body, b"until the end");
        assert_eq!(answer.header("transfer-encoding"), Some("chunked"));
    }
    assert_eq!(
        until_close.connections(),
        2,
        "an answer read to its close ends it"
    );
}

#[tokio::test]
async fn a_kept_alive_connection_the_upstream_closed_is_replaced() {
    // Answers with a length and then closes, without saying so.
    let upstream = RawUpstream::start(
        |_| b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec(),
        true,
    )
    .await;
    let ingress = ingress_to(&upstream.url()).await;
    let mut client = RawClient::connect(ingress.addr()).await;
    for _ in 0..3 {
        client.send(b"GET / HTTP/1.1\r\nhost: app\r\n\r\n").await;
        // Let the upstream's close arrive before the next request.
        let answer = client.answer(false).await;
        assert_eq!((answer.status(), &answer.body[..]), (200, &b"ok"[..]));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(upstream.connections(), 3);
}

#[tokio::test]
async fn an_answer_cut_short_by_the_upstream_closes_the_client_connection() {
    let upstream = RawUpstream::start(
        |_| b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly this".to_vec(),
        true,
    )
    .await;
    let ingress = ingress_to(&upstream.url()).await;
    let mut client = RawClient::connect(ingress.addr()).await;
    client.send(b"GET / HTTP/1.1\r\nhost: app\r\n\r\n").await;
    let rest = client.rest().await;
    assert!(rest.starts_with("HTTP/1.1 200"), "{rest}");
    assert!(rest.contains("content-length: 100"), "{rest}");
    assert!(
        rest.ends_with("only this"),
        "the connection closes after: {rest}"
    );
}

#[tokio::test]
async fn an_unreachable_upstream_is_a_502_and_the_connection_stays_usable() {
    let gone = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", gone.local_addr().unwrap());
    drop(gone);
    let ingress = ingress_to(&url).await;
    let mut client = RawClient::connect(ingress.addr()).await;
    for _ in 0..2 {
        client.send(b"GET /x HTTP/1.1\r\nhost: app\r\n\r\n").await;
        let answer = client.answer(false).await;
        assert_eq!(answer.status(), 502, "{answer:?}");
        assert_eq!(answer.json()["error"]["code"], "upstream_unreachable");
    }
}

#[tokio::test]
async fn a_head_answer_keeps_the_upstreams_length_and_has_no_body() {
    let echo = echo().await;
    let ingress = ingress_to(&echo.url()).await;
    let mut client = RawClient::connect(ingress.addr()).await;
    client.send(b"HEAD /x HTTP/1.1\r\nhost: app\r\n\r\n").await;
    let head = client.answer(true).await;
    assert_eq!(head.status(), 200, "{head:?}");
    let len: usize = head.header("content-length").unwrap().parse().unwrap();
    assert!(len > 0, "{head:?}");
    // The next answer starts right after the head: no body bytes came between.
    client.send(b"GET /y HTTP/1.1\r\nhost: app\r\n\r\n").await;
    assert_eq!(client.answer(false).await.json()["path"], "/y");
}

#[tokio::test]
async fn ambiguous_body_framing_is_refused_with_400_naming_it() {
    let echo = echo().await;
    let ingress = ingress_to(&echo.url()).await;
    for (request, why) in [
        (
            &b"POST / HTTP/1.1\r\nhost: app\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n"[..],
            "both Content-Length and Transfer-Encoding",
        ),
        (
            &b"POST / HTTP/1.1\r\nhost: app\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\nabcd"[..],
            "Content-Length is not one number",
        ),
        (
            &b"POST / HTTP/1.1\r\nhost: app\r\ntransfer-encoding: chunked, gzip\r\n\r\n"[..],
            "does not end with chunked",
        ),
    ] {
        let mut client = RawClient::connect(ingress.addr()).await;
        client.send(request).await;
        let answer = client.answer(false).await;
        assert_eq!(answer.status(), 400, "{answer:?}");
        let message = answer.json()["error"]["message"].as_str().unwrap().to_owned();
        assert!(message.contains(why), "{message}");
        assert_eq!(answer.header("connection"), Some("close"));
        assert_eq!(client.rest().await, "", "nothing after the refusal");
    }
    assert_eq!(echo.hits(), 0, "no ambiguous request reached the upstream");
}

#[tokio::test]
async fn a_malformed_head_is_a_400_and_an_oversized_one_a_431() {
    let echo = echo().await;
    let ingress = ingress_to(&echo.url()).await;
    let mut client = RawClient::connect(ingress.addr()).await;
    client.send(b"GET / HTTP/1.1\r\nbad header\r\n\r\n").await;
    let rest = client.rest().await;
    assert!(rest.starts_with("HTTP/1.1 400"), "{rest}");

    let mut client = RawClient::connect(ingress.addr()).await;
    let big = format!(
        "GET / HTTP/1.1\r\nhost: app\r\nx-big: {}\r\n\r\n",
        "a".repeat(600 * 1024)
    );
    // The proxy may answer and close before it has read every byte.
    let _ = client.stream.write_all(big.as_bytes()).await;
    let rest = client.rest().await;
    assert!(rest.starts_with("HTTP/1.1 431"), "{rest}");
    assert_eq!(echo.hits(), 0);
}

#[tokio::test]
async fn http_1_0_and_a_large_body_over_the_cap_are_still_answered() {
    let echo = echo().await;
    install_crypto_provider();
    let ingress = IngressProxy::builder()
        .upstream(echo.url())
        .body_limit(16)
        .start()
        .await
        .unwrap();
    let mut client = RawClient::connect(ingress.addr()).await;
    client.send(b"GET /old HTTP/1.0\r\nhost: app\r\n\r\n").await;
    let rest = client.rest().await;
    assert!(rest.contains("\"path\":\"/old\""), "{rest}");

    // Over the cap: 413, the body read and dropped, the connection still serves.
    let mut client = RawClient::connect(ingress.addr()).await;
    client
        .send(b"POST /big HTTP/1.1\r\nhost: app\r\ncontent-length: 32\r\n\r\n")
        .await;
    client.send(&[b'x'; 32]).await;
    let answer = client.answer(false).await;
    assert_eq!(answer.status(), 413, "{answer:?}");
    client
        .send(b"GET /after HTTP/1.1\r\nhost: app\r\n\r\n")
        .await;
    assert_eq!(client.answer(false).await.json()["path"], "/after");

    // A chunked body over the cap: 413, and the connection closes.
    let mut client = RawClient::connect(ingress.addr()).await;
    client
        .send(b"POST /big HTTP/1.1\r\nhost: app\r\ntransfer-encoding: chunked\r\n\r\n20\r\n")
        .await;
    client.send(&[b'x'; 32]).await;
    client.send(b"\r\n0\r\n\r\n").await;
    let rest = client.rest().await;
    assert!(rest.starts_with("HTTP/1.1 413"), "{rest}");
    assert_eq!(echo.hits(), 2, "no body over the cap was forwarded");
}

#[tokio::test]
async fn captures_through_the_own_exchange_record_the_streamed_answer() {
    let upstream = RawUpstream::start(
        |_| {
            b"HTTP/1.1 201 Created\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n\
              3\r\none\r\n3\r\ntwo\r\n0\r\n\r\n"
                .to_vec()
        },
        false,
    )
    .await;
    let runtime = runtime().await;
    let rt = runtime.uri();
    install_crypto_provider();
    let ingress = IngressProxy::builder()
        .upstream(upstream.url())
        .backend(Arc::new(StoreBackend::new(runtime.store())))
        .start()
        .await
        .unwrap();
    let session = create_session(&rt, "capture").await;
    let mut client = RawClient::connect(ingress.addr()).await;
    client
        .send(
            format!(
                "POST /orders?id=7 HTTP/1.1\r\nhost: app\r\nx-softprobe-session-id: {session}\r\n\
                 content-length: 4\r\n\r\nbody"
            )
            .as_bytes(),
        )
        .await;
    let answer = client.answer(false).await;
    assert_eq!((answer.status(), &answer.body[..]), (201, &b"onetwo"[..]));
    let case = close_case(&rt, &session, 1).await;
    let hops = case.exchanges().unwrap();
    assert_eq!(hops.len(), 1);
    let hop = &hops[0];
    assert_eq!(hop.method, "POST");
    assert_eq!(hop.path, "/orders");
    assert_eq!(hop.query.as_deref(), Some("id=7"));
    assert_eq!(hop.status, Some(201));
    assert_eq!(
        hop.request_body.as_ref().map(|b| b.as_bytes().to_vec()),
        Some(b"body".to_vec())
    );
    assert_eq!(
        hop.response_body.as_ref().map(|b| b.as_bytes().to_vec()),
        Some(b"onetwo".to_vec())
    );
}
