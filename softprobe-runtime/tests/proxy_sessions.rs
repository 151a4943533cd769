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

/// A hop nothing in its session can answer (a replay session without rules, an inbound hop)
/// is forwarded without a decision request, and still counted exactly as a decided one: a
/// passthrough in the inject metric, an extracted span in the session and the process once
/// the application answered, none when it could not be reached. A rule posted afterwards
/// answers the very next hop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hop_no_rule_can_answer_is_forwarded_and_counted_as_decided() {
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
    let get = |path: &str| {
        client()
            .get(format!("{}{path}", ingress.uri()))
            .header("x-softprobe-session-id", &session)
            .send()
    };
    for i in 0..3 {
        let resp = get(&format!("/shop/{i}")).await.unwrap();
        assert_eq!(resp.status(), 200);
    }
    assert_eq!(app.hits(), 3);
    wait_extracted(&rt, &session, 3).await;
    let counted = stats(&rt, &session).await;
    assert_eq!(counted["extractedSpans"], 3, "{counted}");
    assert_eq!(counted["injectedSpans"], 0, "{counted}");
    let metrics = metrics_text(&rt).await;
    assert_metric(&metrics, "softprobe_inject_total{result=\"miss\"} 3");
    assert_metric(&metrics, "softprobe_inject_duration_seconds_count 3");
    assert_metric(&metrics, "softprobe_extracted_spans_total 3");

    post(
        &rt,
        &format!("/v1/sessions/{session}/rules"),
        json!([{"when": {"direction": "inbound", "path": "/shop/0"},
                "then": {"action": "mock", "response": {"body": {"from": "rule"}}}}]),
    )
    .await;
    let (status, body) = json_of(get("/shop/0").await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"from": "rule"}));
    assert_eq!(app.hits(), 3, "the rule answered, not the application");
    let counted = stats(&rt, &session).await;
    assert_eq!(counted["injectedSpans"], 1, "{counted}");
    assert_eq!(counted["extractedSpans"], 4, "{counted}");

    // An application that cannot be reached: the decision is counted, the hop is not.
    let gone = IngressProxy::builder()
        .upstream(format!("http://127.0.0.1:{}", free_port()))
        .backend(Arc::new(StoreBackend::new(runtime.store())))
        .start()
        .await
        .unwrap();
    let other = create_session(&rt, "replay").await;
    let resp = client()
        .get(format!("{}/shop", gone.uri()))
        .header("x-softprobe-session-id", &other)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    assert_eq!(stats(&rt, &other).await["extractedSpans"], 0);
    let metrics = metrics_text(&rt).await;
    assert_metric(&metrics, "softprobe_inject_total{result=\"miss\"} 4");
    assert_metric(&metrics, "softprobe_extracted_spans_total 4");
}
