//! HTTP behaviour of the proxies over real sockets: trace context on ingress, hop-by-hop
//! headers, body caps, timeouts and unreachable upstreams, `Expect: 100-continue`, HTTP/2
//! clients, rules answered locally, refusing traffic without a session.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use softprobe_runtime::proxy::{EgressProxy, IngressProxy, StoreBackend};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use support::*;

async fn ingress_to(upstream: &str) -> softprobe_runtime::proxy::RunningProxy {
    IngressProxy::builder()
        .upstream(upstream)
        .start()
        .await
        .unwrap()
}

#[tokio::test]
async fn ingress_keeps_a_valid_traceparent_and_writes_sp_first() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let echo = echo().await;
    let ingress = ingress_to(&echo.url()).await;
    let (status, body) = json_of(
        client()
            .get(format!("{}/echo-headers", ingress.uri()))
            .header("x-softprobe-session-id", "sess_abc")
            .header(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )
            .header("tracestate", "congo=t61,sp=stale,rojo=00f")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let h = &body["headers"];
    let tp = h["traceparent"].as_str().unwrap();
    assert!(
        tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "{tp}"
    );
    assert!(
        !tp.contains("00f067aa0ba902b7"),
        "parent-id is the inbound span: {tp}"
    );
    assert!(tp.ends_with("-01"), "{tp}");
    assert_eq!(h["tracestate"], "sp=sess_abc,congo=t61,rojo=00f");

    // An invalid traceparent is replaced by a fresh sampled one.
    let (_, body) = json_of(
        client()
            .get(format!("{}/x", ingress.uri()))
            .header("x-softprobe-session-id", "sess_abc")
            .header(
                "traceparent",
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            )
            .send()
            .await
            .unwrap(),
    )
    .await;
    let tp = body["headers"]["traceparent"].as_str().unwrap();
    assert_eq!(tp.len(), 55);
    assert!(
        !tp.starts_with("00-00000000000000000000000000000000"),
        "{tp}"
    );
    assert_eq!(body["headers"]["tracestate"], "sp=sess_abc");
}

#[tokio::test]
async fn hop_by_hop_headers_do_not_cross_the_egress() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let echo = echo().await;
    let egress = EgressProxy::builder().start().await.unwrap();
    let proxied = reqwest::Client::builder()
        .proxy(reqwest::Proxy::http(egress.uri()).unwrap())
        .build()
        .unwrap();
    let resp = proxied
        .get(format!("{}/hop", echo.url()))
        .header("connection", "x-private")
        .header("x-private", "secret")
        .header("te", "trailers")
        .header("x-kept", "yes")
        .header("x-sp-session-id", "sess_alias")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-upstream"], "echo");
    let body: Value = resp.json().await.unwrap();
    let h = &body["headers"];
    assert_eq!(h["x-kept"], "yes");
    for gone in ["x-private", "te", "x-sp-session-id", "proxy-connection"] {
        assert!(h.get(gone).is_none(), "{gone} crossed: {h}");
    }
    assert_eq!(h["host"], echo.addr.to_string());
}

#[tokio::test]
async fn bodies_over_the_cap_are_refused_with_413_before_reaching_the_upstream() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let echo = echo().await;
    let ingress = IngressProxy::builder()
        .upstream(echo.url())
        .body_limit(1024)
        .start()
        .await
        .unwrap();
    let resp = client()
        .post(format!("{}/upload", ingress.uri()))
        .body(vec![b'x'; 4096])
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(resp).await;
    assert_eq!(status, 413);
    assert_eq!(body["error"]["code"], "payload_too_large");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1024 bytes")
    );
    assert_eq!(echo.hits(), 0);
    let ok = client()
        .post(format!("{}/upload", ingress.uri()))
        .body(vec![b'y'; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn an_unreachable_upstream_is_a_502_and_a_slow_one_a_504() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let ingress = ingress_to(&format!("http://{closed}")).await;
    let (status, body) = json_of(
        client()
            .get(format!("{}/x", ingress.uri()))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "upstream_unreachable");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&format!("http://{closed}")),
        "{body}"
    );

    let slow = serve(
        Arc::new(|_req| {
            Box::pin(async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                http::Response::new(Full::new(Bytes::from_static(b"late")))
            })
        }),
        None,
    )
    .await;
    let ingress = IngressProxy::builder()
        .upstream(slow.url())
        .upstream_timeout(Duration::from_millis(200))
        .start()
        .await
        .unwrap();
    let started = Instant::now();
    let (status, body) = json_of(
        client()
            .get(format!("{}/x", ingress.uri()))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["error"]["code"], "upstream_timeout");
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn expect_100_continue_gets_its_interim_answer() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let echo = echo().await;
    let ingress = ingress_to(&echo.url()).await;
    let mut stream = tokio::net::TcpStream::connect(ingress.addr())
        .await
        .unwrap();
    stream
        .write_all(
            b"POST /upload HTTP/1.1\r\nHost: app\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
        )
        .await
        .unwrap();
    let mut buf = vec![0u8; 25];
    stream.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"HTTP/1.1 100 Continue\r\n\r\n");
    stream.write_all(b"hello").await.unwrap();
    let mut rest = Vec::new();
    let mut chunk = [0u8; 4096];
    while !String::from_utf8_lossy(&rest).contains("\"body\":\"hello\"") {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&rest));
        rest.extend_from_slice(&chunk[..n]);
    }
    assert!(String::from_utf8_lossy(&rest).starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn an_http2_client_is_served_and_relayed() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let echo = echo().await;
    let ingress = ingress_to(&echo.url()).await;
    let stream = tokio::net::TcpStream::connect(ingress.addr())
        .await
        .unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = http::Request::builder()
        .uri(format!("http://{}/h2?x=1", ingress.addr()))
        .header("x-softprobe-session-id", "sess_h2")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), http::Version::HTTP_2);
    let body: Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["path"], "/h2");
    assert_eq!(body["query"], "x=1");
    assert_eq!(body["headers"]["tracestate"], "sp=sess_h2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_answer_locally_after_their_latency_and_are_recorded() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let echo = echo().await;
    let runtime = runtime().await;
    let rt = runtime.uri();
    let backend = Arc::new(StoreBackend::new(runtime.store()));
    let egress = EgressProxy::builder()
        .backend(backend.clone())
        .start()
        .await
        .unwrap();
    let session = create_session(&rt, "capture").await;
    post(
        &rt,
        &format!("/v1/sessions/{session}/rules"),
        json!({"version": 1, "rules": [{
            "id": "stub-pay",
            "latencyMs": 150,
            "when": {"direction": "outbound", "method": "POST", "path": "/pay"},
            "then": {"action": "mock", "response": {"status": 402, "body": {"declined": true}}}
        }]}),
    )
    .await;
    // The session is bound to the listener: the request itself names none.
    egress.bind_session(Some(session.clone()));
    let proxied = reqwest::Client::builder()
        .proxy(reqwest::Proxy::http(egress.uri()).unwrap())
        .build()
        .unwrap();
    let started = Instant::now();
    let resp = proxied
        .post(format!("{}/pay", echo.url()))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(resp.status(), 402);
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"declined": true})
    );
    assert_eq!(echo.hits(), 0);
    // Other calls still reach the upstream.
    let resp = proxied
        .get(format!("{}/other", echo.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(echo.hits(), 1);
    wait_extracted(&rt, &session, 2).await;
    let st = stats(&rt, &session).await;
    assert_eq!(st["injectedSpans"], 1, "{st}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_session_refuses_traffic_without_an_open_session() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let echo = echo().await;
    let runtime = runtime().await;
    let backend = Arc::new(StoreBackend::new(runtime.store()));
    let egress = EgressProxy::builder()
        .backend(backend.clone())
        .require_session(true)
        .start()
        .await
        .unwrap();
    let ingress = IngressProxy::builder()
        .upstream(echo.url())
        .backend(backend)
        .require_session(true)
        .start()
        .await
        .unwrap();
    let proxied = reqwest::Client::builder()
        .proxy(reqwest::Proxy::http(egress.uri()).unwrap())
        .build()
        .unwrap();
    let (status, body) = json_of(
        proxied
            .get(format!("{}/x", echo.url()))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "session_required");
    let (status, body) = json_of(
        client()
            .get(format!("{}/x", ingress.uri()))
            .header("x-softprobe-session-id", "sess_not_open")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "unknown_session");
    assert_eq!(echo.hits(), 0);

    let session = create_session(&runtime.uri(), "replay").await;
    let resp = client()
        .get(format!("{}/x", ingress.uri()))
        .header("x-softprobe-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(echo.hits(), 1);
}

#[tokio::test]
async fn origin_form_requests_go_to_the_default_upstream_or_are_refused() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let echo = echo().await;
    let reverse = EgressProxy::builder()
        .upstream(format!("{}/base/", echo.url()))
        .start()
        .await
        .unwrap();
    let (status, body) = json_of(
        client()
            .get(format!("{}/v1/items?a=b", reverse.uri()))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["path"], "/base/v1/items");
    assert_eq!(body["query"], "a=b");

    let forward_only = EgressProxy::builder().start().await.unwrap();
    let (status, body) = json_of(
        client()
            .get(format!("{}/v1/items", forward_only.uri()))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no default upstream"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_over_the_cap_is_streamed_whole_and_recorded_without_its_body() {
    let big = serve(
        Arc::new(|_req| {
            Box::pin(async { http::Response::new(Full::new(Bytes::from(vec![b'z'; 64 * 1024]))) })
        }),
        None,
    )
    .await;
    let runtime = runtime().await;
    let rt = runtime.uri();
    let ingress = IngressProxy::builder()
        .upstream(big.url())
        .backend(Arc::new(StoreBackend::new(runtime.store())))
        .body_limit(1024)
        .start()
        .await
        .unwrap();
    let session = create_session(&rt, "capture").await;
    let resp = client()
        .get(format!("{}/download", ingress.uri()))
        .header("x-softprobe-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap().len(), 64 * 1024);
    wait_extracted(&rt, &session, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("big.case.json");
    close_to(&rt, &session, &out).await;
    let hops = softprobe_runtime::case::Case::read(&out)
        .unwrap()
        .exchanges()
        .unwrap();
    assert_eq!(hops.len(), 1);
    assert_eq!(hops[0].response_body, None);
    assert!(
        hops[0]
            .extra_attributes
            .iter()
            .any(|kv| kv.key == "sp.http.response.body.omitted"),
        "{:?}",
        hops[0].extra_attributes
    );
}

#[tokio::test]
async fn shutdown_closes_the_port() {
    let echo = echo().await;
    let ingress = ingress_to(&echo.url()).await;
    let addr = ingress.addr();
    assert!(tokio::net::TcpStream::connect(addr).await.is_ok());
    ingress.shutdown().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());

    let egress = EgressProxy::builder().start().await.unwrap();
    let addr = egress.addr();
    drop(egress);
    // Dropping stops accepting as soon as the accept loop sees it.
    let mut closed = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(closed, "the dropped proxy still accepts on {addr}");
}

#[tokio::test]
async fn a_proxy_pointed_at_itself_stops_the_loop() {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let egress = EgressProxy::builder()
        .listen(addr)
        .upstream(format!("http://{addr}"))
        .start()
        .await
        .unwrap();
    let (status, body) = json_of(
        client()
            .get(format!("{}/again", egress.uri()))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 508, "{body}");
    assert_eq!(body["error"]["code"], "loop_detected");
}
