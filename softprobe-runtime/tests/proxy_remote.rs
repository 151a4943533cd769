//! The proxy against a runtime in another place (`--runtime-url`): decisions over
//! `POST /v1/inject`, recordings over `POST /v1/traces`, the wire the original proxy uses.

mod support;

use std::sync::Arc;

use serde_json::{Value, json};
use softprobe_runtime::case::Direction;
use softprobe_runtime::proxy::{EgressProxy, ProxyBackend, RemoteBackend};

use support::*;

fn proxied(egress: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .proxy(reqwest::Proxy::http(egress).unwrap())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capture_mock_and_strict_miss_over_the_otlp_api() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let upstream = serve(price_handler(), None).await;
    let runtime = runtime().await;
    let rt = runtime.uri();
    let backend = Arc::new(
        RemoteBackend::new(&rt, None)
            .unwrap()
            .with_service("checkout"),
    );
    assert!(!backend.session_exists("sess_nope").await.unwrap());
    let egress = EgressProxy::builder()
        .backend(backend.clone())
        .start()
        .await
        .unwrap();

    // Capture: the hop reaches the runtime through /v1/traces.
    let session = create_session(&rt, "capture").await;
    assert!(backend.session_exists(&session).await.unwrap());
    let resp = proxied(&egress.uri_for_session(&session))
        .get(format!("{}/price?item=3", upstream.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let captured: Value = resp.json().await.unwrap();
    let hops = close_case(&rt, &session, 1).await.exchanges().unwrap();
    assert_eq!(hops.len(), 1);
    assert_eq!(hops[0].direction, Direction::Outbound);
    assert_eq!(hops[0].host, upstream.addr.to_string());
    assert_eq!(hops[0].query.as_deref(), Some("item=3"));
    assert_eq!(hops[0].service.as_deref(), Some("checkout"));
    let body: Value =
        serde_json::from_slice(hops[0].response_body.as_ref().unwrap().as_bytes()).unwrap();
    assert_eq!(body, captured);

    // A mock rule answers through /v1/inject.
    let replay = create_session(&rt, "replay").await;
    post(
        &rt,
        &format!("/v1/sessions/{replay}/rules"),
        json!([{
            "name": "price-stub",
            "when": {"path": "/price", "method": "get"},
            "then": {"action": "mock", "response": {
                "status": 201, "headers": {"x-stub": "yes"}, "body": "stubbed"
            }}
        }]),
    )
    .await;
    let hits = upstream.hits();
    let resp = proxied(&egress.uri_for_session(&replay))
        .get(format!("{}/price?item=3", upstream.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(resp.headers()["x-stub"], "yes");
    assert_eq!(resp.text().await.unwrap(), "stubbed");
    assert_eq!(upstream.hits(), hits);

    // A strict miss travels as the runtime's 599 answer.
    post(
        &rt,
        &format!("/v1/sessions/{replay}/policy"),
        json!({"externalHttp": "strict"}),
    )
    .await;
    let resp = proxied(&egress.uri_for_session(&replay))
        .get(format!("{}/other", upstream.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 599);
    assert_eq!(resp.headers()["x-softprobe-strict-miss"], "1");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "strict_miss", "{body}");
    assert_eq!(upstream.hits(), hits);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_runtime_lets_traffic_through() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let upstream = echo().await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let backend = Arc::new(RemoteBackend::new(&format!("http://{closed}"), None).unwrap());
    let err = backend.session_exists("sess_x").await.unwrap_err();
    assert!(err.to_string().contains(&closed.to_string()), "{err}");
    let egress = EgressProxy::builder()
        .backend(backend)
        .start()
        .await
        .unwrap();
    let resp = proxied(&egress.uri_for_session("sess_x"))
        .get(format!("{}/x", upstream.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(upstream.hits(), 1);
}
