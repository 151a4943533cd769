//! Which session a hop belongs to: the egress lookup order (tracestate, session header, proxy
//! credentials, bound session) and inbound rules answered by the ingress itself.

mod support;

use std::sync::Arc;

use serde_json::json;
use softprobe_runtime::proxy::{EgressProxy, IngressProxy, StoreBackend};

use support::*;

/// A replay session whose rule answers every outbound call with its own name.
async fn named_session(rt: &str, name: &str) -> String {
    let id = create_session(rt, "replay").await;
    post(
        rt,
        &format!("/v1/sessions/{id}/rules"),
        json!([{"name": name, "when": {"direction": "outbound"},
                "then": {"action": "mock", "response": {"body": name}}}]),
    )
    .await;
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn egress_session_lookup_order() {
    let upstream = echo().await;
    let runtime = runtime().await;
    let rt = runtime.uri();
    let (a, b, c, d) = (
        named_session(&rt, "tracestate").await,
        named_session(&rt, "header").await,
        named_session(&rt, "credentials").await,
        named_session(&rt, "bound").await,
    );
    let egress = EgressProxy::builder()
        .backend(Arc::new(StoreBackend::new(runtime.store())))
        .bind_session(d.clone())
        .start()
        .await
        .unwrap();
    let with_creds = reqwest::Client::builder()
        .proxy(reqwest::Proxy::http(egress.uri_for_session(&c)).unwrap())
        .build()
        .unwrap();
    let plain = reqwest::Client::builder()
        .proxy(reqwest::Proxy::http(egress.uri()).unwrap())
        .build()
        .unwrap();
    let url = format!("{}/who", upstream.url());

    let answer = with_creds
        .get(&url)
        .header("tracestate", format!("vendor=1,sp={a}"))
        .header("x-softprobe-session-id", &b)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.text().await.unwrap(), "tracestate");
    // The original proxy's member is read too.
    let answer = plain
        .get(&url)
        .header("tracestate", format!("x-softprobe-session-id={a}"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.text().await.unwrap(), "tracestate");
    let answer = with_creds
        .get(&url)
        .header("x-session-id", &b)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.text().await.unwrap(), "header");
    let answer = with_creds.get(&url).send().await.unwrap();
    assert_eq!(answer.text().await.unwrap(), "credentials");
    let answer = plain.get(&url).send().await.unwrap();
    assert_eq!(answer.text().await.unwrap(), "bound");
    egress.bind_session(None);
    let answer = plain.get(&url).send().await.unwrap();
    assert_eq!(
        answer.headers()["x-upstream"],
        "echo",
        "no session: relayed"
    );
    assert_eq!(upstream.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbound_rule_is_answered_by_the_ingress_without_the_application() {
    let app = echo().await;
    let runtime = runtime().await;
    let rt = runtime.uri();
    let ingress = IngressProxy::builder()
        .upstream(app.url())
        .backend(Arc::new(StoreBackend::new(runtime.store())))
        .start()
        .await
        .unwrap();
    let session = create_session(&rt, "replay").await;
    post(
        &rt,
        &format!("/v1/sessions/{session}/rules"),
        json!([{"name": "maintenance", "when": {"direction": "inbound", "pathPrefix": "/admin"},
                "then": {"action": "error", "response": {"status": 503, "body": {"down": true}}}}]),
    )
    .await;
    let (status, body) = json_of(
        client()
            .get(format!("{}/admin/users", ingress.uri()))
            .header("x-softprobe-session-id", &session)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 503);
    assert_eq!(body, json!({"down": true}));
    assert_eq!(app.hits(), 0);
    let resp = client()
        .get(format!("{}/shop", ingress.uri()))
        .header("x-softprobe-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(app.hits(), 1);
}
