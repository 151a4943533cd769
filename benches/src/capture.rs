//! Row 5: capture under load. 2,000 concurrent requests go through the ingress proxy to an
//! app that calls its upstream through the egress proxy; with a capture session every hop
//! must reach the written case (none lost), and throughput is compared with the same traffic
//! carrying no session (nothing recorded).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use softprobe_runtime::case::Case;
use softprobe_runtime::proxy::{CertificateAuthority, EgressProxy, IngressProxy, StoreBackend};
use softprobe_runtime::session::{InMemoryStore, NewSession, SessionStore};

use crate::support::{PRICE_PATH, price_body, serve_bytes};

/// One pass of traffic.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Pass {
    pub(crate) requests: usize,
    pub(crate) failed: usize,
    pub(crate) elapsed: Duration,
    /// Hops written to the case (capture passes only).
    pub(crate) spans_written: usize,
}

impl Pass {
    pub(crate) fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
}

/// Both sides, summed over their rounds.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CaptureResult {
    pub(crate) on: Pass,
    pub(crate) off: Pass,
    /// Hops expected in the cases written: two per request.
    pub(crate) spans_expected: usize,
}

/// The app: answers each request with what its upstream answered, called through the egress
/// proxy with the trace context the ingress gave it, as an instrumented service does.
async fn serve_app(egress: String) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("binding the app");
    let addr = listener.local_addr().expect("an address");
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("a plain client");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (client, egress) = (client.clone(), egress.clone());
            tokio::spawn(async move {
                let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let (client, egress) = (client.clone(), egress.clone());
                    async move {
                        let mut out = client.get(format!("{egress}{PRICE_PATH}"));
                        for name in ["traceparent", "tracestate"] {
                            if let Some(v) = req.headers().get(name) {
                                out = out.header(name, v.as_bytes());
                            }
                        }
                        let (status, body) = match out.send().await {
                            Ok(r) => (r.status(), r.bytes().await.unwrap_or_default()),
                            Err(e) => (http::StatusCode::BAD_GATEWAY, Bytes::from(e.to_string())),
                        };
                        Ok::<_, Infallible>(
                            http::Response::builder()
                                .status(status.as_u16())
                                .header("content-type", "application/json")
                                .body(Full::new(body))
                                .expect("a response builds"),
                        )
                    }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

async fn burst(
    client: &reqwest::Client,
    url: &str,
    session: Option<&str>,
    requests: usize,
) -> Pass {
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..requests {
        let mut req = client.get(url);
        if let Some(id) = session {
            req = req.header("x-softprobe-session-id", id);
        }
        tasks.spawn(async move {
            match req.send().await {
                Ok(r) if r.status() == 200 => r.bytes().await.is_ok_and(|b| b == price_body()),
                _ => false,
            }
        });
    }
    let mut failed = 0;
    while let Some(ok) = tasks.join_next().await {
        if !matches!(ok, Ok(true)) {
            failed += 1;
        }
    }
    Pass {
        requests,
        failed,
        elapsed: start.elapsed(),
        spans_written: 0,
    }
}

/// Alternates capture off and on `rounds` times with `requests` concurrent requests each.
pub(crate) async fn run(requests: usize, rounds: usize) -> Result<CaptureResult, String> {
    run_with(Arc::new(InMemoryStore::new()), requests, rounds).await
}

/// [`run`] over a given session store (row 9 compares the Redis store with the in-memory
/// one).
pub(crate) async fn run_with(
    store: Arc<dyn SessionStore>,
    requests: usize,
    rounds: usize,
) -> Result<CaptureResult, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("cannot create a temp dir: {e}"))?;
    let backend = Arc::new(StoreBackend::new(store.clone()));
    let upstream = serve_bytes(price_body()).await;
    let egress = EgressProxy::builder()
        .ca(CertificateAuthority::generate().map_err(|e| e.to_string())?)
        .upstream(format!("http://{upstream}"))
        .backend(backend.clone())
        .start()
        .await
        .map_err(|e| format!("egress: {e}"))?;
    let app = serve_app(egress.uri()).await;
    let ingress = IngressProxy::builder()
        .upstream(format!("http://{app}"))
        .backend(backend)
        .start()
        .await
        .map_err(|e| format!("ingress: {e}"))?;
    let url = format!("{}{PRICE_PATH}", ingress.uri());

    // One client for every pass: its connections (and those of every pool behind it) are
    // opened once by the warm-up, so each pass measures traffic, not 2,000 handshakes, and
    // the process stays within its file descriptor limit (eight sockets per request).
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(requests)
        .build()
        .map_err(|e| format!("a plain client: {e}"))?;
    burst(&client, &url, None, requests).await;
    let mut result = CaptureResult::default();
    for round in 0..rounds {
        let off = burst(&client, &url, None, requests).await;
        result.off.requests += off.requests;
        result.off.failed += off.failed;
        result.off.elapsed += off.elapsed;

        let session = store
            .create(NewSession::new(softprobe_runtime::Mode::Capture))
            .map_err(|e| e.to_string())?;
        let id = session.id().to_owned();
        let on = burst(&client, &url, Some(&id), requests).await;
        result.on.requests += on.requests;
        result.on.failed += on.failed;
        result.on.elapsed += on.elapsed;
        result.spans_expected += 2 * requests;
        // A hop is recorded once its response has streamed; give the last ones a moment.
        let deadline = Instant::now() + Duration::from_secs(2);
        let stored = |store: &Arc<dyn SessionStore>| {
            store
                .stats_json(&id)
                .ok()
                .and_then(|s| s["extractedSpans"].as_u64())
                .unwrap_or(0)
        };
        while stored(&store) < 2 * requests as u64 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let path = dir.path().join(format!("capture-{round}.case.json"));
        store
            .close(&id, Some(&path))
            .map_err(|e| format!("closing the capture session: {e}"))?;
        let written = Case::read(&path)
            .and_then(|c| c.exchanges())
            .map_err(|e| format!("reading back {}: {e}", path.display()))?;
        result.on.spans_written += written.len();
    }
    ingress.shutdown().await;
    egress.shutdown().await;
    Ok(result)
}
