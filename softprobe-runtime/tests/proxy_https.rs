//! HTTPS through `CONNECT`: the egress proxy terminates TLS with its own CA (a real rustls
//! client trusts it), talks to a TLS upstream signed by another CA, captures the hop, and
//! replays it with the upstream gone.

mod support;

use std::sync::Arc;

use serde_json::Value;
use softprobe_runtime::case::Direction;
use softprobe_runtime::proxy::{CertificateAuthority, EgressProxy, StoreBackend};

use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_capture_through_connect_then_offline_replay() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (upstream_ca, upstream_cfg) = upstream_tls();
    let upstream = serve(price_handler(), Some(upstream_cfg)).await;
    let target = format!("localhost:{}", upstream.addr.port());

    let runtime = runtime().await;
    let rt = runtime.uri();
    let proxy_ca = Arc::new(CertificateAuthority::generate().unwrap());
    let egress = EgressProxy::builder()
        .backend(Arc::new(StoreBackend::new(runtime.store())))
        .shared_ca(proxy_ca.clone())
        .upstream_root(upstream_ca.cert_der().clone())
        .start()
        .await
        .unwrap();
    assert_eq!(egress.ca_cert_pem(), proxy_ca.cert_pem());

    let session = create_session(&rt, "capture").await;
    let (status, headers, body) = https_via_connect(
        egress.addr(),
        &target,
        "/price?item=7",
        Some(&session),
        &proxy_ca,
    )
    .await;
    assert_eq!(status, 200, "{body:?}");
    assert_eq!(headers["content-type"], "application/json");
    let captured: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(captured["item"], "item=7");
    assert_eq!(upstream.hits(), 1);
    let closed = close_case(&rt, &session, 1).await;
    let hops = closed.exchanges().unwrap();
    assert_eq!(hops.len(), 1);
    let hop = &hops[0];
    assert_eq!(hop.direction, Direction::Outbound);
    assert_eq!(hop.scheme.as_deref(), Some("https"));
    assert_eq!(hop.host, target);
    assert_eq!(
        (hop.path.as_str(), hop.query.as_deref()),
        ("/price", Some("item=7"))
    );
    assert_eq!(hop.session_id.as_deref(), Some(session.as_str()));

    upstream.stop().await;
    let replay = create_session(&rt, "replay").await;
    let case_json: Value = serde_json::to_value(&closed).unwrap();
    post(&rt, &format!("/v1/sessions/{replay}/load-case"), case_json).await;
    let (status, _, body) = https_via_connect(
        egress.addr(),
        &target,
        "/price?item=7",
        Some(&replay),
        &proxy_ca,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap(), captured);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_session_connect_is_still_intercepted_and_relayed() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (upstream_ca, upstream_cfg) = upstream_tls();
    let upstream = serve(echo_handler(), Some(upstream_cfg)).await;
    let target = format!("localhost:{}", upstream.addr.port());
    let egress = EgressProxy::builder()
        .upstream_root(upstream_ca.cert_der().clone())
        .start()
        .await
        .unwrap();
    let ca = egress.ca().clone();
    let (status, _, body) = https_via_connect(egress.addr(), &target, "/hello", None, &ca).await;
    assert_eq!(status, 200);
    let echoed: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(echoed["path"], "/hello");
    // The upstream offered HTTP/2 by ALPN and the proxy took it.
    assert_eq!(echoed["version"], "HTTP/2.0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_with_an_untrusted_certificate_is_a_502_naming_it() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (_other_ca, upstream_cfg) = upstream_tls();
    let upstream = serve(echo_handler(), Some(upstream_cfg)).await;
    let target = format!("localhost:{}", upstream.addr.port());
    // The upstream's CA is not given to the proxy.
    let egress = EgressProxy::builder().start().await.unwrap();
    let ca = egress.ca().clone();
    let (status, _, body) = https_via_connect(egress.addr(), &target, "/x", None, &ca).await;
    assert_eq!(status, 502);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["code"], "upstream_unreachable", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains(&format!("https://{target}")), "{message}");
    assert!(message.to_lowercase().contains("certificate"), "{message}");
}

#[tokio::test]
async fn plain_http_inside_a_connect_tunnel_is_relayed_too() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let upstream = echo().await;
    let egress = EgressProxy::builder().start().await.unwrap();
    let target = upstream.addr.to_string();
    let mut stream = open_tunnel(egress.addr(), &target, None).await;
    stream
        .write_all(
            format!("GET /plain?q=1 HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"path\":\"/plain\""), "{answer}");
    assert_eq!(upstream.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reqwest_through_https_proxy_trusting_the_ca_is_captured() {
    let (upstream_ca, upstream_cfg) = upstream_tls();
    let upstream = serve(echo_handler(), Some(upstream_cfg)).await;
    let runtime = runtime().await;
    let rt = runtime.uri();
    let egress = EgressProxy::builder()
        .backend(Arc::new(StoreBackend::new(runtime.store())))
        .upstream_root(upstream_ca.cert_der().clone())
        .start()
        .await
        .unwrap();
    let session = create_session(&rt, "capture").await;

    let mut roots = rustls::RootCertStore::empty();
    for cert in
        softprobe_runtime::proxy::tls::parse_certs(egress.ca_cert_pem().as_bytes(), "ca").unwrap()
    {
        roots.add(cert).unwrap();
    }
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let client = reqwest::Client::builder()
        .proxy(reqwest::Proxy::https(egress.uri_for_session(&session)).unwrap())
        .tls_backend_preconfigured(tls)
        .build()
        .unwrap();
    let url = format!("https://localhost:{}/secure?x=1", upstream.addr.port());
    let resp = client
        .post(&url)
        .header("authorization", "Bearer app-secret")
        .body("{\"amount\":5}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let echoed: Value = resp.json().await.unwrap();
    assert_eq!(echoed["path"], "/secure");
    assert_eq!(echoed["body"], "{\"amount\":5}");
    assert_eq!(echoed["headers"]["authorization"], "Bearer app-secret");
    assert!(echoed["headers"].get("proxy-authorization").is_none());
    let hops = close_case(&rt, &session, 1).await.exchanges().unwrap();
    assert_eq!(hops[0].method, "POST");
    assert_eq!(hops[0].scheme.as_deref(), Some("https"));
    assert_eq!(
        hops[0]
            .request_headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .map(|(_, v)| v.as_str()),
        Some("[REDACTED]")
    );
}

#[tokio::test]
async fn a_body_over_the_limit_inside_a_connect_tunnel_is_answered_413_after_it_was_sent() {
    // Requests inside a tunnel are served by hyper, not by the proxies' own HTTP/1 exchange.
    // A client writes its whole body before it reads the answer: were the tunnel closed right
    // after the 413, the rest of the body would meet a reset connection and the answer would
    // be lost with it.
    let upstream = echo().await;
    let egress = EgressProxy::builder()
        .body_limit(64 * 1024)
        .start()
        .await
        .unwrap();
    let target = upstream.addr.to_string();
    let mut stream = open_tunnel(egress.addr(), &target, None).await;
    const LEN: usize = 8 << 20;
    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: {target}\r\ncontent-length: {LEN}\r\n\
         connection: close\r\n\r\n"
    );
    refused_after_whole_body(&mut stream, &head, LEN, 64 * 1024).await;
    assert_eq!(
        upstream.hits(),
        0,
        "a refused body never reaches the upstream"
    );
}
