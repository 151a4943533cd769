//! Load without loss, over loopback only: many capture sessions at once, each driving its
//! own requests through ingress → application → egress → upstream; every hop must land in
//! its own session's case and nowhere else. Then every case is replayed at once, strictly,
//! with the upstream stopped: zero misses, every answer the captured one.
//!
//! 20 sessions × 10 requests by default; `SOFTPROBE_LOAD_FULL=1` runs 100 × 20 (the
//! figure in RELIABILITY). Bounded: a fixed number of requests and a deadline.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use serde_json::{Value, json};
use softprobe_runtime::case::{Case, Direction};
use softprobe_runtime::proxy::{EgressProxy, IngressProxy, StoreBackend};
use softprobe_runtime::session::SessionLimits;
use softprobe_runtime::{RunningServer, Server};

use support::*;

/// What `support::serve` takes.
type Handler = std::sync::Arc<
    dyn Fn(
            http::Request<bytes::Bytes>,
        ) -> std::pin::Pin<
            Box<
                dyn std::future::Future<Output = http::Response<http_body_util::Full<bytes::Bytes>>>
                    + Send,
            >,
        > + Send
        + Sync,
>;

/// Whole test, both phases.
const DEADLINE: Duration = Duration::from_secs(600);

fn size() -> (usize, usize) {
    match std::env::var("SOFTPROBE_LOAD_FULL").as_deref() {
        Ok("1") | Ok("true") => (100, 20),
        _ => (20, 10),
    }
}

/// The upstream: a price derived from the tags, so every answer is distinct and stable.
fn tagged_upstream() -> Handler {
    Arc::new(|req: http::Request<Bytes>| {
        Box::pin(async move {
            let query = req.uri().query().unwrap_or("").to_owned();
            let body = json!({"query": query, "price": query.len() * 100 + 7});
            http::Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body.to_string())))
                .unwrap()
        })
    })
}

/// The application: `GET /order?s=S&i=I` calls `{upstream}/price?s=S&i=I` through the
/// egress proxy, propagating the trace context as an instrumented app would.
fn tagged_app(egress: String, upstream: String) -> Handler {
    let client = reqwest::Client::builder()
        .proxy(reqwest::Proxy::http(&egress).unwrap())
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    Arc::new(move |req: http::Request<Bytes>| {
        let client = client.clone();
        let upstream = upstream.clone();
        Box::pin(async move {
            let query = req.uri().query().unwrap_or("").to_owned();
            let mut call = client.get(format!("{upstream}/price?{query}"));
            for name in ["traceparent", "tracestate"] {
                if let Some(v) = req.headers().get(name) {
                    call = call.header(name, v.clone());
                }
            }
            let (status, body) = match call.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    (status, resp.text().await.unwrap_or_default())
                }
                Err(e) => (0, e.to_string()),
            };
            let out = json!({"order": query, "upstreamStatus": status, "upstream": body});
            http::Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(out.to_string())))
                .unwrap()
        })
    })
}

async fn runtime_for(sessions: usize) -> RunningServer {
    install_crypto_provider();
    Server::builder()
        .listen(localhost())
        .limits(SessionLimits {
            max_sessions: Some(sessions * 2),
            ..SessionLimits::default()
        })
        // Tests close into their temporary directories.
        .capture_root(Some(std::env::temp_dir()))
        .start()
        .await
        .unwrap()
}

/// Sends request `i` of session number `s` through the ingress; returns the answer body.
async fn order(http: &reqwest::Client, ingress: &str, session: &str, s: usize, i: usize) -> Value {
    let resp = http
        .get(format!("{ingress}/order?s={s}&i={i}"))
        .header("x-softprobe-session-id", session)
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(resp).await;
    assert_eq!(status, 200, "session {s} request {i}: {body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_capture_sessions_lose_nothing_and_replay_without_misses() {
    let started = Instant::now();
    let (n, r) = size();
    let upstream = serve(tagged_upstream(), None).await;
    let runtime = runtime_for(n).await;
    let rt = runtime.uri();
    let backend = Arc::new(StoreBackend::new(runtime.store()));
    let egress = EgressProxy::builder()
        .backend(backend.clone())
        .start()
        .await
        .unwrap();
    let app = serve(tagged_app(egress.uri(), upstream.url()), None).await;
    let ingress = IngressProxy::builder()
        .upstream(app.url())
        .backend(backend)
        .start()
        .await
        .unwrap();
    let ingress_url = ingress.uri();
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(n)
        .build()
        .unwrap();

    // Capture: n sessions at once, each sending its r requests in order.
    let mut sessions = Vec::new();
    for _ in 0..n {
        sessions.push(create_session(&rt, "capture").await);
    }
    let mut tasks = Vec::new();
    for (s, session) in sessions.iter().cloned().enumerate() {
        let (http, ingress_url) = (http.clone(), ingress_url.clone());
        tasks.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            for i in 0..r {
                answers.push(order(&http, &ingress_url, &session, s, i).await);
            }
            answers
        }));
    }
    let mut captured_answers = Vec::new();
    for task in tasks {
        captured_answers.push(task.await.unwrap());
    }
    let capture_time = started.elapsed();
    assert_eq!(upstream.hits(), n * r);
    for session in &sessions {
        wait_extracted(&rt, session, (2 * r) as u64).await;
    }
    let mut closing = Vec::new();
    for (s, session) in sessions.iter().cloned().enumerate() {
        let out = dir.path().join(format!("{s}.case.json"));
        let rt = rt.clone();
        closing.push(tokio::spawn(async move {
            close_to(&rt, &session, &out).await;
            out
        }));
    }
    let mut files = Vec::new();
    for task in closing {
        files.push(task.await.unwrap());
    }

    // Every span in its own session's case, and every case complete.
    let mut total_spans = 0;
    for (s, file) in files.iter().enumerate() {
        let case = Case::read(file).unwrap();
        let hops = case.exchanges().unwrap();
        total_spans += hops.len();
        assert_eq!(hops.len(), 2 * r, "session {s}: {} hops", hops.len());
        let mut inbound = BTreeSet::new();
        let mut outbound = BTreeSet::new();
        for hop in &hops {
            assert_eq!(hop.session_id.as_deref(), Some(sessions[s].as_str()));
            let query = hop.query.as_deref().unwrap_or("");
            let (tag_s, tag_i) = tags(query);
            assert_eq!(
                tag_s, s,
                "session {s} holds a hop of session {tag_s}: {query}"
            );
            let fresh = match hop.direction {
                Direction::Inbound => inbound.insert(tag_i),
                Direction::Outbound => outbound.insert(tag_i),
            };
            assert!(fresh, "session {s}: request {tag_i} recorded twice");
        }
        let all: BTreeSet<usize> = (0..r).collect();
        assert_eq!(inbound, all, "session {s} inbound");
        assert_eq!(outbound, all, "session {s} outbound");
    }
    assert_eq!(total_spans, 2 * n * r);
    assert!(runtime.store().is_empty());

    // Replay: every case at once, strict, with the upstream gone.
    upstream.stop().await;
    let setup_started = Instant::now();
    let mut replays = Vec::new();
    for file in &files {
        let replay = create_session(&rt, "replay").await;
        let case: Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
        post(&rt, &format!("/v1/sessions/{replay}/load-case"), case).await;
        post(
            &rt,
            &format!("/v1/sessions/{replay}/policy"),
            json!({"externalHttp": "strict"}),
        )
        .await;
        replays.push(replay);
    }
    let setup_time = setup_started.elapsed();
    let replay_started = Instant::now();
    let mut tasks = Vec::new();
    for (s, session) in replays.iter().cloned().enumerate() {
        let (http, ingress_url) = (http.clone(), ingress_url.clone());
        tasks.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            for i in 0..r {
                answers.push(order(&http, &ingress_url, &session, s, i).await);
            }
            answers
        }));
    }
    let mut misses = 0;
    for (s, task) in tasks.into_iter().enumerate() {
        let answers = task.await.unwrap();
        assert_eq!(answers, captured_answers[s], "session {s}: replay differs");
        let st = stats(&rt, &replays[s]).await;
        misses += st["strictMisses"].as_u64().unwrap();
        assert_eq!(st["injectedSpans"], r as u64, "session {s}: {st}");
    }
    let replay_time = replay_started.elapsed();
    assert_eq!(misses, 0);
    assert!(started.elapsed() < DEADLINE, "took {:?}", started.elapsed());
    eprintln!(
        "load: {n} sessions x {r} requests: capture {capture_time:?}, {total_spans} spans in \
         {n} cases, replay set-up (create, load-case, policy) {setup_time:?}, replay \
         {replay_time:?}, {misses} misses"
    );
    drop(app);
}

/// `s=S&i=I` → (S, I).
fn tags(query: &str) -> (usize, usize) {
    let mut s = None;
    let mut i = None;
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("s", v)) => s = v.parse().ok(),
            Some(("i", v)) => i = v.parse().ok(),
            _ => {}
        }
    }
    (
        s.unwrap_or_else(|| panic!("no s= in {query:?}")),
        i.unwrap_or_else(|| panic!("no i= in {query:?}")),
    )
}
