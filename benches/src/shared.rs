//! Row 9: the Redis session store against the in-memory one, in the same run: capture
//! throughput (row 5's traffic, the two stores' rounds in turn) and the latency of a
//! replayed call through the egress proxy (row 2's call), the two stores' proxies called in
//! turn. Starts its own `redis-server`
//! (`SOFTPROBE_REDIS_SERVER` or on `PATH`) on a free port, without persistence.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use softprobe_runtime::case::Case;
use softprobe_runtime::proxy::{CertificateAuthority, EgressProxy, RunningEgress, StoreBackend};
use softprobe_runtime::session::{
    InMemoryStore, NewSession, RedisStore, SessionLimits, SessionStore,
};

use crate::capture::{self, CaptureResult};
use crate::support::{PRICE_PATH, RECORDED_HOST, Samples, price_body, timed};

/// Both stores' figures.
pub(crate) struct SharedResult {
    pub(crate) memory: CaptureResult,
    pub(crate) redis: CaptureResult,
    pub(crate) memory_replay: Samples,
    pub(crate) redis_replay: Samples,
}

struct RedisServer(Child);

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `redis-server` program, if installed.
pub(crate) fn redis_program() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("SOFTPROBE_REDIS_SERVER") {
        return Some(p.into());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join("redis-server"))
        .find(|p| p.is_file())
}

fn start_redis(program: &std::path::Path) -> Result<(RedisServer, String), String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port: {e}"))?
        .port();
    let child = Command::new(program)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
    let server = RedisServer(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err("redis-server never listened".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((server, format!("redis://127.0.0.1:{port}/0")))
}

async fn replay_egress(
    store: Arc<dyn SessionStore>,
    case: &Case,
) -> Result<(RunningEgress, reqwest::Client), String> {
    let session = store
        .create(NewSession::new(softprobe_runtime::Mode::Replay))
        .map_err(|e| e.to_string())?;
    let id = session.id().to_owned();
    store
        .update(&id, &mut |state| {
            state.load_case(case.clone(), "bench-price").map(|_| ())
        })
        .map_err(|e| e.to_string())?;
    let egress = EgressProxy::builder()
        .threads(1)
        .ca(CertificateAuthority::generate().map_err(|e| e.to_string())?)
        .backend(Arc::new(StoreBackend::new(store)))
        .start()
        .await
        .map_err(|e| format!("egress: {e}"))?;
    let client = reqwest::Client::builder()
        .proxy(reqwest::Proxy::http(egress.uri_for_session(&id)).map_err(|e| e.to_string())?)
        .build()
        .map_err(|e| e.to_string())?;
    Ok((egress, client))
}

/// Adds one round's figures to the sums.
fn add(sum: &mut CaptureResult, round: CaptureResult) {
    for (sum, pass) in [(&mut sum.on, round.on), (&mut sum.off, round.off)] {
        sum.requests += pass.requests;
        sum.failed += pass.failed;
        sum.elapsed += pass.elapsed;
        sum.spans_written += pass.spans_written;
    }
    sum.spans_expected += round.spans_expected;
}

async fn call(client: &reqwest::Client, url: &str) -> Result<(), String> {
    let resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    let status = resp.status();
    let body = resp.bytes().await.map_err(|e| e.to_string())?;
    if status != 200 || body != price_body() {
        return Err(format!("GET {url}: {status} with other bytes"));
    }
    Ok(())
}

/// Runs both stores: capture bursts of `requests` x `rounds`, then `calls` replayed calls
/// per store, alternating.
pub(crate) async fn run(
    program: &std::path::Path,
    case: &Case,
    requests: usize,
    rounds: usize,
    calls: usize,
) -> Result<SharedResult, String> {
    let (_server, url) = start_redis(program)?;
    let redis: Arc<dyn SessionStore> = {
        let url = url.clone();
        let store = tokio::task::spawn_blocking(move || {
            RedisStore::connect(&url, SessionLimits::UNLIMITED, None)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
        Arc::new(store)
    };
    let memory: Arc<dyn SessionStore> = Arc::new(InMemoryStore::new());

    // The stores' capture rounds in turn (each on proxies of its own), which goes first
    // alternating, so a slow moment of the machine lands on both alike.
    let (mut memory_capture, mut redis_capture) =
        (CaptureResult::default(), CaptureResult::default());
    for round in 0..rounds {
        for k in 0..2 {
            if (round + k) % 2 == 0 {
                add(
                    &mut memory_capture,
                    capture::run_with(memory.clone(), requests, 1).await?,
                );
            } else {
                add(
                    &mut redis_capture,
                    capture::run_with(redis.clone(), requests, 1).await?,
                );
            }
        }
    }

    let (memory_egress, memory_client) = replay_egress(memory, case).await?;
    let (redis_egress, redis_client) = replay_egress(redis, case).await?;
    let url = format!("http://{RECORDED_HOST}{PRICE_PATH}");
    for _ in 0..(calls / 10).max(5) {
        call(&memory_client, &url).await?;
        call(&redis_client, &url).await?;
    }
    let (mut memory_replay, mut redis_replay) = (Samples::default(), Samples::default());
    for i in 0..calls {
        // Alternate which goes first, so a slow moment lands on both alike.
        for k in 0..2 {
            if (i + k) % 2 == 0 {
                let (d, r) = timed(call(&memory_client, &url)).await;
                r?;
                memory_replay.push(d);
            } else {
                let (d, r) = timed(call(&redis_client, &url)).await;
                r?;
                redis_replay.push(d);
            }
        }
    }
    memory_egress.shutdown().await;
    redis_egress.shutdown().await;
    Ok(SharedResult {
        memory: memory_capture,
        redis: redis_capture,
        memory_replay,
        redis_replay,
    })
}
