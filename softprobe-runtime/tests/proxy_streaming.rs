//! Server-sent events through both proxies: a client reads `/events` from an application
//! behind the ingress; the application relays an upstream event stream it reads through the
//! egress. The upstream sends one event and holds the second until the client has the first
//! (or a second has passed), so a proxy that buffers shows up as the wrong order of events,
//! never as a timing threshold. Capture records the body and its chunk timings; replay, with
//! the upstream stopped, sends the body at once, or chunk by chunk when the hop asks for the
//! recorded timing.

mod support;

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::Frame;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use softprobe_runtime::case::Direction;
use softprobe_runtime::proxy::{EgressProxy, IngressProxy, StoreBackend};
use softprobe_runtime::streaming::{REPLAY_TIMING, RESPONSE_CHUNKS, parse_chunks};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};

use support::*;

const ONE: &str = "event: stock\ndata: {\"sku\":\"A-1\",\"left\":3}\n\n";
const TWO: &str = "event: stock\ndata: {\"sku\":\"A-1\",\"left\":2}\n\n";

/// A response body fed from a channel, frame by frame.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.get_mut()
            .0
            .poll_recv(cx)
            .map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

type Log = Arc<Mutex<Vec<String>>>;

/// Serves `respond(request headers, sender)` on a loopback port; the answer is a
/// `text/event-stream` whose frames are whatever the task sends. Returns the address and
/// the accept task (aborted to stop the server).
async fn serve_stream<F, Fut>(respond: F) -> (String, tokio::task::JoinHandle<()>)
where
    F: Fn(http::HeaderMap, mpsc::Sender<Bytes>) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind(localhost()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let respond = respond.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let (tx, rx) = mpsc::channel(8);
                    tokio::spawn(respond.clone()(req.headers().clone(), tx));
                    async move {
                        Ok::<_, Infallible>(
                            http::Response::builder()
                                .header("content-type", "text/event-stream")
                                .header("cache-control", "no-cache")
                                .body(ChannelBody(rx))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (format!("http://{addr}"), task)
}

/// The upstream: sends [`ONE`], waits until the client has it (or one second), notes that
/// it sends [`TWO`], sends it.
async fn upstream(got_one: Arc<Notify>, log: Log) -> (String, tokio::task::JoinHandle<()>) {
    serve_stream(move |_, tx| {
        let got_one = got_one.clone();
        let log = log.clone();
        async move {
            let _ = tx.send(Bytes::from_static(ONE.as_bytes())).await;
            let _ = tokio::time::timeout(Duration::from_secs(1), got_one.notified()).await;
            log.lock().unwrap().push("upstream sends two".into());
            let _ = tx.send(Bytes::from_static(TWO.as_bytes())).await;
        }
    })
    .await
}

/// The application: relays `{upstream}/stock` (read through `egress`, trace context and
/// session header passed on) to its own client chunk by chunk.
async fn app(egress: String, upstream: String) -> (String, tokio::task::JoinHandle<()>) {
    let client = reqwest::Client::builder()
        .proxy(reqwest::Proxy::http(&egress).unwrap())
        .build()
        .unwrap();
    serve_stream(move |headers, tx| {
        let client = client.clone();
        let upstream = upstream.clone();
        async move {
            let mut call = client.get(format!("{upstream}/stock"));
            for name in ["traceparent", "tracestate", "x-softprobe-session-id"] {
                if let Some(v) = headers.get(name) {
                    call = call.header(name, v.clone());
                }
            }
            let mut resp = call.send().await.unwrap();
            while let Ok(Some(chunk)) = resp.chunk().await {
                if tx.send(chunk).await.is_err() {
                    break;
                }
            }
        }
    })
    .await
}

/// Reads `/events` through the ingress: each chunk as it arrives, noting in `log` when the
/// first event is in and telling the upstream.
async fn read_events(ingress: &str, session: &str, got_one: &Notify, log: &Log) -> Vec<String> {
    let mut resp = client()
        .get(format!("{ingress}/events"))
        .header("x-softprobe-session-id", session)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut chunks = Vec::new();
    let mut seen = String::new();
    while let Some(chunk) = resp.chunk().await.unwrap() {
        let text = String::from_utf8(chunk.to_vec()).unwrap();
        seen.push_str(&text);
        chunks.push(text);
        if seen.contains("\"left\":3") && !log.lock().unwrap().iter().any(|l| l == "client has one")
        {
            log.lock().unwrap().push("client has one".into());
            got_one.notify_one();
        }
    }
    chunks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_stream_is_relayed_unbuffered_recorded_with_timings_and_replayed() {
    let runtime = runtime().await;
    let rt = runtime.uri();
    let backend = Arc::new(StoreBackend::new(runtime.store()));
    let egress = EgressProxy::builder()
        .backend(backend.clone())
        .start()
        .await
        .unwrap();
    let got_one = Arc::new(Notify::new());
    let log: Log = Arc::default();
    let (upstream_url, upstream_task) = upstream(got_one.clone(), log.clone()).await;
    let (app_url, _app_task) = app(egress.uri(), upstream_url.clone()).await;
    let ingress = IngressProxy::builder()
        .upstream(app_url)
        .backend(backend)
        .start()
        .await
        .unwrap();

    // Capture: the client has event one before the upstream sends event two.
    let session = create_session(&rt, "capture").await;
    let chunks = read_events(&ingress.uri(), &session, &got_one, &log).await;
    assert_eq!(chunks.concat(), format!("{ONE}{TWO}"));
    assert_eq!(
        *log.lock().unwrap(),
        vec!["client has one", "upstream sends two"],
        "a proxy held event one back until event two was sent"
    );
    let closed = close_case(&rt, &session, 2).await;
    let hops = closed.exchanges().unwrap();
    for direction in [Direction::Inbound, Direction::Outbound] {
        let hop = hops.iter().find(|h| h.direction == direction).unwrap();
        assert_eq!(
            hop.response_body.as_ref().unwrap().as_text(),
            Some(format!("{ONE}{TWO}").as_str()),
            "{direction}"
        );
        let timings = hop
            .extra_attributes
            .iter()
            .find(|kv| kv.key == RESPONSE_CHUNKS)
            .and_then(|kv| kv.value.as_str())
            .unwrap_or_else(|| panic!("{direction} hop has no chunk timings: {hop:#?}"));
        let timings = parse_chunks(timings).unwrap();
        assert_eq!(
            timings.iter().map(|(end, _)| *end).collect::<Vec<_>>(),
            vec![ONE.len(), ONE.len() + TWO.len()],
            "{direction}"
        );
    }

    // Replay with the upstream stopped: the whole stream at once by default.
    upstream_task.abort();
    let mut case: Value = serde_json::to_value(&closed).unwrap();
    let replay = create_session(&rt, "replay").await;
    post(
        &rt,
        &format!("/v1/sessions/{replay}/load-case"),
        case.clone(),
    )
    .await;
    post(
        &rt,
        &format!("/v1/sessions/{replay}/policy"),
        json!({"externalHttp": "strict"}),
    )
    .await;
    let quiet = Arc::new(Notify::new());
    let chunks = read_events(&ingress.uri(), &replay, &quiet, &Arc::default()).await;
    assert_eq!(chunks, vec![format!("{ONE}{TWO}")], "one piece, at once");

    // With the recorded timing asked for on the outbound hop: event by event.
    let spans = case["traces"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .flat_map(|t| t["resourceSpans"].as_array_mut().unwrap())
        .flat_map(|rs| rs["scopeSpans"].as_array_mut().unwrap())
        .flat_map(|ss| ss["spans"].as_array_mut().unwrap());
    for span in spans {
        if span["kind"] == 3 {
            span["attributes"]
                .as_array_mut()
                .unwrap()
                .push(json!({"key": REPLAY_TIMING, "value": {"stringValue": "recorded"}}));
        }
    }
    let paced = create_session(&rt, "replay").await;
    post(&rt, &format!("/v1/sessions/{paced}/load-case"), case).await;
    let chunks = read_events(&ingress.uri(), &paced, &quiet, &Arc::default()).await;
    assert_eq!(chunks, vec![ONE.to_owned(), TWO.to_owned()]);
    assert_eq!(stats(&rt, &replay).await["strictMisses"], 0);

    // The same pacing for every stream of a session, from its policy, with the case as
    // recorded.
    let unmarked: Value = serde_json::to_value(&closed).unwrap();
    let by_policy = create_session(&rt, "replay").await;
    post(
        &rt,
        &format!("/v1/sessions/{by_policy}/load-case"),
        unmarked,
    )
    .await;
    post(
        &rt,
        &format!("/v1/sessions/{by_policy}/policy"),
        json!({"externalHttp": "strict", "streamTiming": "recorded"}),
    )
    .await;
    let chunks = read_events(&ingress.uri(), &by_policy, &quiet, &Arc::default()).await;
    assert_eq!(
        chunks,
        vec![ONE.to_owned(), TWO.to_owned()],
        "paced by the policy"
    );
    assert_eq!(stats(&rt, &by_policy).await["strictMisses"], 0);
}
