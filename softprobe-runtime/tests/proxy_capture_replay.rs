//! The seed's flow end to end through real sockets: a client calls the application through
//! the ingress proxy, the application calls an upstream through the egress proxy; capture
//! writes one linked trace, replay answers the upstream's part with the upstream gone.

mod support;

use std::sync::Arc;

use serde_json::{Value, json};
use softprobe_runtime::RunningServer;
use softprobe_runtime::case::{Case, Direction};
use softprobe_runtime::proxy::{
    EgressProxy, IngressProxy, RunningEgress, RunningProxy, StoreBackend,
};

use support::*;

struct Stack {
    runtime: RunningServer,
    ingress: RunningProxy,
    egress: RunningEgress,
    app: TestServer,
}

async fn stack(upstream: &str) -> Stack {
    let runtime = runtime().await;
    let backend = Arc::new(StoreBackend::new(runtime.store()));
    let egress = EgressProxy::builder()
        .backend(backend.clone())
        .service("checkout")
        .start()
        .await
        .unwrap();
    let app = app(egress.uri(), upstream.to_owned()).await;
    let ingress = IngressProxy::builder()
        .upstream(app.url())
        .backend(backend)
        .service("checkout")
        .start()
        .await
        .unwrap();
    Stack {
        runtime,
        ingress,
        egress,
        app,
    }
}

async fn checkout(ingress: &str, session: &str) -> (reqwest::StatusCode, Value) {
    json_of(
        client()
            .get(format!("{ingress}/checkout?cart=7"))
            .header("x-softprobe-session-id", session)
            .header("authorization", "Bearer user-secret")
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capture_through_both_proxies_then_replay_offline() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let upstream = serve(price_handler(), None).await;
    let s = stack(&upstream.url()).await;
    let rt = s.runtime.uri();
    let dir = tempfile::tempdir().unwrap();

    // Capture.
    let session = create_session(&rt, "capture").await;
    let (status, captured) = checkout(&s.ingress.uri(), &session).await;
    assert_eq!(status, 200, "{captured}");
    assert_eq!(captured["upstreamStatus"], 200, "{captured}");
    assert_eq!(captured["upstream"]["price"], 1299);
    assert_eq!(upstream.hits(), 1);
    wait_extracted(&rt, &session, 2).await;
    let out = dir.path().join("checkout.case.json");
    let closed = close_to(&rt, &session, &out).await;
    assert_eq!(closed["casePath"], out.display().to_string());

    let case = Case::read(&out).unwrap();
    let hops = case.exchanges().unwrap();
    assert_eq!(hops.len(), 2, "{hops:#?}");
    let inbound = hops
        .iter()
        .find(|h| h.direction == Direction::Inbound)
        .unwrap();
    let outbound = hops
        .iter()
        .find(|h| h.direction == Direction::Outbound)
        .unwrap();
    assert_eq!(
        (inbound.method.as_str(), inbound.path.as_str()),
        ("GET", "/checkout")
    );
    assert_eq!(inbound.query.as_deref(), Some("cart=7"));
    assert_eq!(inbound.status, Some(200));
    assert_eq!(outbound.path, "/price");
    assert_eq!(outbound.query.as_deref(), Some("item=42"));
    assert_eq!(outbound.host, upstream.addr.to_string());
    assert_eq!(outbound.scheme.as_deref(), Some("http"));
    assert_eq!(outbound.service.as_deref(), Some("checkout"));
    // One trace: the outbound call is a child of the inbound span.
    assert_eq!(inbound.trace_id, outbound.trace_id);
    assert_eq!(outbound.parent_span_id, Some(inbound.span_id));
    // Sensitive and correlation headers are not stored as sent.
    let header =
        |h: &[(String, String)], n: &str| h.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    assert_eq!(
        header(&inbound.request_headers, "authorization").as_deref(),
        Some("[REDACTED]")
    );
    assert_eq!(
        header(&inbound.request_headers, "x-softprobe-session-id"),
        None
    );
    assert_eq!(
        header(&outbound.response_headers, "set-cookie").as_deref(),
        Some("[REDACTED]")
    );
    let recorded_body: Value =
        serde_json::from_slice(outbound.response_body.as_ref().unwrap().as_bytes()).unwrap();
    assert_eq!(recorded_body, captured["upstream"]);
    let inbound_body: Value =
        serde_json::from_slice(inbound.response_body.as_ref().unwrap().as_bytes()).unwrap();
    assert_eq!(inbound_body, captured);

    // Replay with the upstream gone: the egress answers from the case.
    upstream.stop().await;
    let replay = create_session(&rt, "replay").await;
    let case_json: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    post(&rt, &format!("/v1/sessions/{replay}/load-case"), case_json).await;
    post(
        &rt,
        &format!("/v1/sessions/{replay}/policy"),
        json!({"externalHttp": "strict"}),
    )
    .await;
    let (status, replayed) = checkout(&s.ingress.uri(), &replay).await;
    assert_eq!(status, 200);
    assert_eq!(replayed, captured, "replay gives the captured answer");
    let st = stats(&rt, &replay).await;
    assert_eq!(st["injectedSpans"], 1, "{st}");
    assert_eq!(st["strictMisses"], 0, "{st}");
    drop(s.app);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_header_never_leaves_the_proxy_and_tracestate_carries_it() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let upstream = echo().await;
    let s = stack(&upstream.url()).await;
    let session = create_session(&s.runtime.uri(), "capture").await;
    let (status, body) = checkout(&s.ingress.uri(), &session).await;
    assert_eq!(status, 200, "{body}");
    let seen = &body["upstream"]["headers"];
    assert!(seen.is_object(), "{body}");
    for name in [
        "x-softprobe-session-id",
        "proxy-authorization",
        "proxy-connection",
    ] {
        assert!(seen.get(name).is_none(), "upstream saw {name}: {seen}");
    }
    let tracestate = seen["tracestate"].as_str().unwrap();
    assert_eq!(tracestate, format!("sp={session}"));
    let traceparent = seen["traceparent"].as_str().unwrap();
    assert_eq!(traceparent.len(), 55, "{traceparent}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strict_miss_answers_599_with_the_nearest_candidates() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let upstream = serve(price_handler(), None).await;
    let s = stack(&upstream.url()).await;
    let rt = s.runtime.uri();
    let dir = tempfile::tempdir().unwrap();
    let session = create_session(&rt, "capture").await;
    checkout(&s.ingress.uri(), &session).await;
    wait_extracted(&rt, &session, 2).await;
    let out = dir.path().join("c.case.json");
    close_to(&rt, &session, &out).await;

    let replay = create_session(&rt, "replay").await;
    let case_json: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    post(&rt, &format!("/v1/sessions/{replay}/load-case"), case_json).await;
    post(
        &rt,
        &format!("/v1/sessions/{replay}/policy"),
        json!({"externalHttp": "strict"}),
    )
    .await;
    let before = upstream.hits();
    // The application would call with item=42; this call differs in its query.
    let proxied = reqwest::Client::builder()
        .proxy(reqwest::Proxy::http(s.egress.uri_for_session(&replay)).unwrap())
        .build()
        .unwrap();
    let resp = proxied
        .get(format!("{}/price?item=99", upstream.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 599);
    assert_eq!(resp.headers()["x-softprobe-strict-miss"], "1");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "strict_miss", "{body}");
    assert_eq!(body["sessionId"], replay);
    let candidates = body["candidates"].as_array().unwrap();
    assert_eq!(candidates.len(), 1, "{body}");
    assert!(
        candidates[0]["url"]
            .as_str()
            .unwrap()
            .ends_with("/price?item=42"),
        "{body}"
    );
    assert!(
        candidates[0]["differences"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["field"] == "query"),
        "{body}"
    );
    assert_eq!(
        upstream.hits(),
        before,
        "a strict miss never reaches the upstream"
    );
    let st = stats(&rt, &replay).await;
    assert_eq!(st["strictMisses"], 1, "{st}");
}

/// The library `Runtime` the standalone binary runs: server and proxies over one store, the
/// egress CA published, and an open capture written to its case file by `shutdown`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runtime_library_flushes_open_captures_on_shutdown() {
    use softprobe_runtime::proxy::ProxyConfig;
    use softprobe_runtime::{Runtime, RuntimeError, Server};

    let _ = rustls::crypto::ring::default_provider().install_default();
    let upstream = serve(echo_handler(), None).await;
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("{sessionId}.case.json");
    let runtime = Runtime::builder()
        .server(
            Server::builder()
                .listen(localhost())
                .capture_path(Some(template.display().to_string()))
                .capture_root(Some(dir.path().to_owned())),
        )
        .proxies(ProxyConfig {
            ingress_listen: Some(localhost()),
            ingress_upstream: Some(upstream.url()),
            ingress_threads: Some(0),
            egress_listen: Some(localhost()),
            ..ProxyConfig::default()
        })
        .start()
        .await
        .expect("the runtime starts");
    let rt = runtime.uri().expect("a full runtime has a server");
    let ingress = runtime.ingress_uri().expect("the ingress runs");

    let served = client()
        .get(format!("{rt}/v1/proxy/ca.pem"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(Some(served.as_str()), runtime.ca_cert_pem());

    let session = create_session(&rt, "capture").await;
    let resp = client()
        .get(format!("{ingress}/orders/7"))
        .header("x-softprobe-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    wait_extracted(&rt, &session, 1).await;

    let flushed = runtime.shutdown().await;
    assert_eq!(flushed.len(), 1, "{flushed:?}");
    assert_eq!(flushed[0].session_id, session);
    assert!(flushed[0].result.is_ok(), "{flushed:?}");
    let case =
        Case::from_slice_named(&std::fs::read(&flushed[0].path).unwrap(), "flushed").unwrap();
    let exchanges = case.exchanges_named("flushed").unwrap();
    assert_eq!(exchanges.len(), 1);
    assert_eq!(exchanges[0].path, "/orders/7");

    // Unsafe settings are refused before anything starts, as the binary's usage errors.
    let err = Runtime::builder()
        .allow_remote(true)
        .start()
        .await
        .expect_err("a remote runtime without a token is refused");
    assert!(matches!(err, RuntimeError::Settings(_)), "{err:?}");
    assert_eq!(err.exit_code(), 2);
    assert!(
        err.to_string().contains("--allow-remote without a token"),
        "{err}"
    );
}
