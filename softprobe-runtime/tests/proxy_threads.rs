//! The ingress proxy serving its connections on threads of its own
//! (`IngressBuilder::threads`): every connection answered and recorded as on the shared
//! runtime, loops caught across threads, in-flight requests finished on shutdown, and the
//! threads gone afterwards.

mod support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use softprobe_runtime::proxy::{EgressProxy, IngressProxy, StoreBackend};

use support::*;

/// Names of this process's threads that serve the ingress on `port`.
fn proxy_threads(port: u16) -> Vec<String> {
    let mut names = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").expect("/proc/self/task") {
        let comm = task.expect("a task entry").path().join("comm");
        if let Ok(name) = std::fs::read_to_string(comm) {
            let name = name.trim().to_owned();
            if name.starts_with(&format!("ingress:{port}/")) {
                names.push(name);
            }
        }
    }
    names.sort();
    names
}

/// `count` requests at once, each on a connection of its own, with `session` in the header.
async fn burst(ingress: &str, session: &str, count: usize) -> Vec<serde_json::Value> {
    let mut calls = Vec::new();
    for i in 0..count {
        let url = format!("{ingress}/orders/{i}");
        let session = session.to_owned();
        calls.push(tokio::spawn(async move {
            // A fresh client per call: its own connection, so the calls spread over the
            // proxy's threads.
            let resp = client()
                .get(&url)
                .header("x-softprobe-session-id", session)
                .send()
                .await
                .unwrap_or_else(|e| panic!("GET {url}: {e}"));
            let (status, body) = json_of(resp).await;
            assert_eq!(status, 200, "GET {url}: {body}");
            assert_eq!(body["path"], format!("/orders/{i}"), "GET {url}: {body}");
            body
        }));
    }
    let mut bodies = Vec::new();
    for call in calls {
        bodies.push(call.await.expect("the call task"));
    }
    bodies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threaded_ingress_answers_records_and_counts_every_hop() {
    let upstream = echo().await;
    let runtime = runtime().await;
    let rt = runtime.uri();
    let capture = create_session(&rt, "capture").await;
    let replay = create_session(&rt, "replay").await;
    let ingress = IngressProxy::builder()
        .upstream(upstream.url())
        .backend(Arc::new(StoreBackend::new(runtime.store())))
        .threads(2)
        .start()
        .await
        .unwrap();
    let port = ingress.addr().port();
    // A thread names itself once it runs.
    for _ in 0..200 {
        if proxy_threads(port).len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        proxy_threads(port),
        [format!("ingress:{port}/0"), format!("ingress:{port}/1")],
        "two threads of the ingress"
    );

    let bodies = burst(&ingress.uri(), &capture, 40).await;
    // The application saw the trace context the ingress stamped, with the session in it.
    for body in &bodies {
        let state = body["headers"]["tracestate"].as_str().unwrap_or("");
        assert!(state.contains(&format!("sp={capture}")), "{body}");
    }
    wait_extracted(&rt, &capture, 40).await;
    let held = runtime.store().get(&capture).unwrap().captured();
    assert_eq!(held.len(), 40, "every inbound hop of the capture is kept");
    let mut paths: Vec<String> = held.iter().map(|h| h.path.clone()).collect();
    paths.sort();
    paths.dedup();
    assert_eq!(paths.len(), 40, "40 distinct hops: {paths:?}");

    burst(&ingress.uri(), &replay, 40).await;
    // A replay session's hops are counted, not kept.
    wait_extracted(&rt, &replay, 40).await;
    assert_eq!(stats(&rt, &replay).await["extractedSpans"], 40);
    assert_eq!(runtime.store().get(&replay).unwrap().captured_len(), 0);
    assert_eq!(upstream.hits(), 80);

    ingress.shutdown().await;
    // The threads end once their connections have drained.
    for _ in 0..200 {
        if proxy_threads(port).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(proxy_threads(port), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loop_through_another_thread_of_the_same_ingress_is_caught() {
    let runtime = runtime().await;
    // Bind first, then point the ingress at its own port.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let ingress = IngressProxy::builder()
        .listen(format!("127.0.0.1:{port}").parse().unwrap())
        .upstream(format!("http://127.0.0.1:{port}"))
        .backend(Arc::new(StoreBackend::new(runtime.store())))
        .threads(2)
        .start()
        .await
        .unwrap();
    let (status, body) = json_of(client().get(ingress.uri()).send().await.unwrap()).await;
    assert_eq!(status, 508, "{body}");
    assert_eq!(body["error"]["code"], "loop_detected", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_a_request_in_flight_finish_then_refuses_connections() {
    // The upstream says when the request has reached it: the shutdown below starts while
    // that request is in flight, however slowly the machine got it there.
    let arrived = Arc::new(tokio::sync::Notify::new());
    let slow = serve(
        Arc::new({
            let arrived = arrived.clone();
            move |_req: http::Request<Bytes>| {
                arrived.notify_one();
                Box::pin(async move {
                    tokio::time::sleep(Duration::from_millis(400)).await;
                    http::Response::new(Full::new(Bytes::from_static(b"slow answer")))
                })
            }
        }),
        None,
    )
    .await;
    let ingress = IngressProxy::builder()
        .upstream(slow.url())
        .threads(2)
        .start()
        .await
        .unwrap();
    let url = ingress.uri();
    let in_flight = tokio::spawn({
        let url = url.clone();
        async move { client().get(&url).send().await?.text().await }
    });
    arrived.notified().await;
    ingress.shutdown().await;
    assert_eq!(in_flight.await.unwrap().unwrap(), "slow answer");
    let refused = client()
        .get(&url)
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    assert!(refused.is_err(), "answered after shutdown: {refused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threaded_egress_intercepts_https_and_shares_its_bound_session() {
    let (upstream_ca, upstream_tls) = upstream_tls();
    let upstream = serve(echo_handler(), Some(upstream_tls)).await;
    let plain = echo().await;
    let runtime = runtime().await;
    let rt = runtime.uri();
    let capture = create_session(&rt, "capture").await;
    let egress = EgressProxy::builder()
        .backend(Arc::new(StoreBackend::new(runtime.store())))
        .upstream_root(upstream_ca.cert_der().clone())
        .threads(2)
        .start()
        .await
        .unwrap();
    let target = format!("localhost:{}", upstream.addr.port());
    // Several tunnels, so both threads serve some.
    for i in 0..6 {
        let path = format!("/secure/{i}");
        let (status, _, body) =
            https_via_connect(egress.addr(), &target, &path, Some(&capture), egress.ca()).await;
        assert_eq!(status, 200, "{body:?}");
        let echoed: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(echoed["path"], path);
    }
    wait_extracted(&rt, &capture, 6).await;

    // A session bound after start reaches every thread.
    egress.bind_session(Some(capture.clone()));
    let proxied = reqwest::Client::builder()
        .proxy(reqwest::Proxy::http(egress.uri()).unwrap())
        .build()
        .unwrap();
    for i in 0..6 {
        // A fresh connection each time: `Connection: close`.
        let resp = proxied
            .get(format!("{}/bound/{i}", plain.url()))
            .header("connection", "close")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    wait_extracted(&rt, &capture, 12).await;
    let held = runtime.store().get(&capture).unwrap().captured();
    assert_eq!(held.len(), 12, "every hop of both kinds is in the capture");
    egress.shutdown().await;
}
