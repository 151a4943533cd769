//! Shared pieces of the benchmarks: the case files they replay, the minimal hyper server the
//! peers answer from, and latency statistics.
//!
//! Every server binds loopback on a free port; every count is bounded by the caller.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use softprobe_runtime::case::{Body, Case, Direction, Exchange, SpanId, TraceId};

/// The host the replayed call names; nothing listens there, the case answers.
pub(crate) const RECORDED_HOST: &str = "127.0.0.1:9";
/// The path of the replayed call.
pub(crate) const PRICE_PATH: &str = "/v1/price/sku-42";

/// The response body every peer returns, byte for byte.
pub(crate) fn price_body() -> Bytes {
    Bytes::from_static(
        br#"{"sku":"sku-42","currency":"EUR","amount":1999,"tax":{"rate":0.2,"amount":400},"stock":17}"#,
    )
}

fn ids(n: u64) -> (TraceId, SpanId) {
    let mut trace = [0u8; 16];
    trace[..8].copy_from_slice(&(n + 1).to_be_bytes());
    trace[8..].copy_from_slice(&0x5eed_u64.to_be_bytes());
    (TraceId(trace), SpanId((n + 1).to_be_bytes()))
}

/// One outbound GET hop answered with `body`.
pub(crate) fn outbound(n: u64, path: &str, body: &[u8]) -> Exchange {
    let (trace_id, span_id) = ids(n);
    Exchange {
        direction: Direction::Outbound,
        service: Some("pricing".to_owned()),
        session_id: None,
        span_type: Some("extract".to_owned()),
        method: "GET".to_owned(),
        scheme: Some("http".to_owned()),
        host: RECORDED_HOST.to_owned(),
        path: path.to_owned(),
        query: None,
        request_headers: vec![("accept".to_owned(), "application/json".to_owned())],
        request_body: None,
        status: Some(200),
        response_headers: vec![("content-type".to_owned(), "application/json".to_owned())],
        response_body: Some(Body::from_bytes(body.to_vec())),
        trace_id,
        span_id,
        parent_span_id: None,
        name: "HTTP GET".to_owned(),
        start_time_unix_nano: 1_700_000_000_000_000_000 + n * 1_000_000,
        end_time_unix_nano: 1_700_000_000_000_000_000 + n * 1_000_000 + 500_000,
        extra_attributes: Vec::new(),
    }
}

/// The case of rows 1-3: one recorded outbound call answered with [`price_body`].
pub(crate) fn price_case() -> Case {
    let mut case = Case::new("bench-price", "2026-01-01T00:00:00Z");
    case.push_exchanges([&outbound(0, PRICE_PATH, &price_body())]);
    case
}

/// A case of distinct outbound hops with JSON bodies, grown until its file is at least
/// `target` bytes: the shape of a real capture, sized on demand.
pub(crate) fn sized_case(target: usize) -> Vec<u8> {
    let mut hops = Vec::new();
    let mut n = 0u64;
    loop {
        // Big cases grow in steps so the serialization below runs a handful of times.
        let step = if target > 256 * 1024 { 16 } else { 1 };
        for _ in 0..step {
            let body = format!(
                r#"{{"id":{n},"name":"item {n}","tags":["a","b","c"],"price":{{"amount":{},"currency":"EUR"}},"description":"{}"}}"#,
                n * 37 % 10_000,
                "lorem ipsum dolor sit amet ".repeat(4)
            );
            hops.push(outbound(n, &format!("/v1/items/{n}"), body.as_bytes()));
            n += 1;
        }
        let mut case = Case::new("bench-sized", "2026-01-01T00:00:00Z");
        case.push_exchanges(hops.iter());
        let bytes = case.to_json_bytes();
        if bytes.len() >= target {
            return bytes;
        }
    }
}

/// Serves `body` as `application/json` for every request, like the smallest possible
/// upstream; returns its address. Runs until the runtime stops.
pub(crate) async fn serve_bytes(body: Bytes) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("binding 127.0.0.1:0 for the bench server");
    let addr = listener.local_addr().expect("a bound address");
    tokio::spawn(accept_loop(listener, body));
    addr
}

/// Like [`serve_bytes`], on a thread of its own with a current-thread runtime: how
/// wiremock runs each mock server, and how row 2 runs our egress proxy, so the direct
/// server is measured under the same scheduling. Runs until the process ends.
pub(crate) fn serve_bytes_on_own_thread(body: Bytes) -> SocketAddr {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
        .expect("binding 127.0.0.1:0 for the bench server");
    let addr = listener.local_addr().expect("a bound address");
    listener
        .set_nonblocking(true)
        .expect("a non-blocking listener");
    std::thread::Builder::new()
        .name("bench-hyper".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a current-thread runtime");
            rt.block_on(async move {
                let listener =
                    tokio::net::TcpListener::from_std(listener).expect("adopting the listener");
                accept_loop(listener, body).await;
            });
        })
        .expect("starting the bench server thread");
    addr
}

/// Serves `body` on an already bound listener.
pub(crate) async fn accept_loop(listener: tokio::net::TcpListener, body: Bytes) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let body = body.clone();
        tokio::spawn(async move {
            let service = service_fn(move |_req| {
                let body = body.clone();
                async move {
                    Ok::<_, Infallible>(
                        http::Response::builder()
                            .header("content-type", "application/json")
                            .body(Full::new(body))
                            .expect("a static response builds"),
                    )
                }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Installs the TLS provider every reqwest client of the workspace needs.
pub(crate) fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Latency samples of one side of a comparison.
#[derive(Debug, Default, Clone)]
pub(crate) struct Samples(Vec<Duration>);

impl Samples {
    pub(crate) fn push(&mut self, d: Duration) {
        self.0.push(d);
    }

    /// The `q` quantile (0.0-1.0), nearest rank.
    pub(crate) fn quantile(&self, q: f64) -> Duration {
        let mut sorted = self.0.clone();
        sorted.sort_unstable();
        if sorted.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1]
    }

    pub(crate) fn p50(&self) -> Duration {
        self.quantile(0.5)
    }

    pub(crate) fn p99(&self) -> Duration {
        self.quantile(0.99)
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

/// Times `f` once.
pub(crate) async fn timed<F: std::future::Future>(f: F) -> (Duration, F::Output) {
    let start = Instant::now();
    let out = f.await;
    (start.elapsed(), out)
}

/// The 1-minute load average (`/proc/loadavg`), or "unknown": the machine is shared, and
/// build figures mean little without it.
pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".into())
}

/// A duration for tables: µs below a millisecond, ms above.
pub(crate) fn fmt_dur(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.0} µs")
    } else {
        format!("{:.2} ms", us / 1000.0)
    }
}

/// `ours / peer`, two decimals.
pub(crate) fn ratio(ours: f64, peer: f64) -> f64 {
    if peer == 0.0 {
        f64::INFINITY
    } else {
        ours / peer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_use_nearest_rank() {
        let mut s = Samples::default();
        for ms in 1..=100 {
            s.push(Duration::from_millis(ms));
        }
        assert_eq!(s.p50(), Duration::from_millis(50));
        assert_eq!(s.p99(), Duration::from_millis(99));
        assert_eq!(s.quantile(1.0), Duration::from_millis(100));
    }

    #[test]
    fn sized_cases_reach_their_size_and_parse_back() {
        let bytes = sized_case(64 * 1024);
        assert!(bytes.len() >= 64 * 1024);
        let case = Case::from_slice(&bytes).unwrap();
        assert!(case.exchanges().unwrap().len() > 16);
    }
}
