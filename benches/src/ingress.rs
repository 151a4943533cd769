//! Row 4: the ingress proxy hop under `wrk` (64 connections) in front of a small app, against
//! nginx as a reverse proxy to the same app. The app, the ingress and nginx each run in their
//! own process so no side shares a tokio runtime with the app it proxies.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use softprobe_runtime::proxy::{IngressProxy, StoreBackend};
use softprobe_runtime::session::{InMemoryStore, NewSession, SessionStore};

use crate::support::{PRICE_PATH, price_body, price_case};

/// A child process stopped when dropped.
pub(crate) struct Proc {
    child: Child,
    what: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        // SIGTERM first: an nginx master killed outright leaves its workers running.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl std::fmt::Debug for Proc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (pid {})", self.what, self.child.id())
    }
}

/// Starts this binary with `args` and reads its `READY <words...>` line.
pub(crate) fn spawn_self(args: &[&str]) -> Result<(Proc, Vec<String>), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let mut child = Command::new(&exe)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start {} {}: {e}", exe.display(), args.join(" ")))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let proc = Proc {
        child,
        what: args.join(" "),
    };
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| format!("{}: no READY line: {e}", proc.what))?;
    let words: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
    if words.first().map(String::as_str) != Some("READY") {
        return Err(format!("{}: expected READY, got {line:?}", proc.what));
    }
    Ok((proc, words[1..].to_vec()))
}

fn runtime() -> tokio::runtime::Runtime {
    // The harness runs its proxies on two workers; SOFTPROBE_BENCH_WORKERS tries others.
    let workers = std::env::var("SOFTPROBE_BENCH_WORKERS")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(2);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// `serve-app`: the small app both proxies front.
pub(crate) fn serve_app() -> ! {
    let rt = runtime();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("binding the app");
        println!("READY {}", listener.local_addr().expect("an address"));
        crate::support::accept_loop(listener, price_body()).await;
    });
    std::process::exit(0)
}

/// `serve-ingress <upstream>`: our ingress proxy with an in-process store holding one replay
/// session (the price case loaded), as the harness runs it.
pub(crate) fn serve_ingress(upstream: &str) -> ! {
    let rt = runtime();
    rt.block_on(async {
        let store: Arc<dyn SessionStore> = Arc::new(InMemoryStore::new());
        let session = store
            .create(NewSession::new(softprobe_runtime::Mode::Replay))
            .expect("a session");
        let case = price_case();
        store
            .update(session.id(), &mut |state| {
                state.load_case(case.clone(), "bench-price").map(|_| ())
            })
            .expect("the case loads");
        // As the standalone runtime serves it: one thread of its own per CPU.
        let threads = std::env::var("SOFTPROBE_INGRESS_THREADS")
            .ok()
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let ingress = IngressProxy::builder()
            .upstream(upstream)
            .threads(threads)
            .backend(Arc::new(StoreBackend::new(store.clone())))
            .start()
            .await
            .expect("the ingress proxy starts");
        println!("READY {} {}", ingress.addr(), session.id());
        std::future::pending::<()>().await;
    });
    std::process::exit(0)
}

/// `serve-hyper-proxy <upstream>`: the least a hyper reverse proxy does (rewrite the URI, send
/// through hyper-util's pooled client, stream the answer back), to show how much of the
/// ingress's cost is the stack it is built on.
pub(crate) fn serve_hyper_proxy(upstream: &str) -> ! {
    let authority: http::uri::Authority = upstream
        .trim_start_matches("http://")
        .parse()
        .expect("an upstream host:port");
    serve_sharded(move |listener| pooled_loop(listener, authority.clone()))
}

async fn pooled_loop(listener: tokio::net::TcpListener, authority: http::uri::Authority) {
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let client: Client<_, hyper::body::Incoming> =
        Client::builder(TokioExecutor::new()).build_http();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (client, authority) = (client.clone(), authority.clone());
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
                    let (client, authority) = (client.clone(), authority.clone());
                    async move {
                        let mut parts = req.uri().clone().into_parts();
                        parts.scheme = Some(http::uri::Scheme::HTTP);
                        parts.authority = Some(authority);
                        *req.uri_mut() = http::Uri::from_parts(parts).expect("a valid URI");
                        client.request(req).await
                    }
                });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// `serve-affine-proxy <upstream>`: a bare hyper reverse proxy where each client connection
/// owns one upstream HTTP/1 connection, driven on the same task (no pool, no cross-task
/// hand-off), to show what the stack can do without hyper-util's pooled client.
pub(crate) fn serve_affine_proxy(upstream: &str) -> ! {
    let addr: std::net::SocketAddr = upstream
        .trim_start_matches("http://")
        .parse()
        .expect("an upstream ip:port");
    serve_sharded(move |listener| affine_loop(listener, addr))
}

/// Runs `serve` on one multi-thread runtime, or with `SOFTPROBE_BENCH_SHARDS=N` on N
/// current-thread runtimes, each with its own `SO_REUSEPORT` listener on the same port.
fn serve_sharded<F, Fut>(serve: F) -> !
where
    F: Fn(tokio::net::TcpListener) -> Fut + Send + Clone + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let shards: usize = std::env::var("SOFTPROBE_BENCH_SHARDS")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(0);
    if shards == 0 {
        let rt = runtime();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
                .await
                .expect("binding the proxy");
            println!("READY {}", listener.local_addr().expect("an address"));
            serve(listener).await
        });
        std::process::exit(0)
    }
    let first = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("a port");
    let port = first.local_addr().expect("an address").port();
    drop(first);
    let mut threads = Vec::new();
    for _ in 0..shards {
        let serve = serve.clone();
        threads.push(std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            rt.block_on(async move {
                let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
                socket.set_reuseport(true).expect("reuseport");
                socket
                    .bind(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
                    .expect("bind");
                serve(socket.listen(1024).expect("listen")).await
            })
        }));
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    println!("READY 127.0.0.1:{port}");
    for t in threads {
        let _ = t.join();
    }
    std::process::exit(0)
}

async fn affine_loop(listener: tokio::net::TcpListener, addr: std::net::SocketAddr) {
    use hyper_util::rt::TokioIo;
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let Ok(up) = tokio::net::TcpStream::connect(addr).await else {
                return;
            };
            let _ = up.set_nodelay(true);
            let writev = std::env::var_os("SOFTPROBE_BENCH_NOWRITEV").is_none();
            let Ok((sender, conn)) = hyper::client::conn::http1::Builder::new()
                .writev(writev)
                .handshake::<_, hyper::body::Incoming>(TokioIo::new(up))
                .await
            else {
                return;
            };
            let sender = std::sync::Arc::new(tokio::sync::Mutex::new(sender));
            let service =
                hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let sender = sender.clone();
                    async move {
                        let mut s = sender.lock().await;
                        s.ready().await?;
                        s.send_request(req).await
                    }
                });
            let server = hyper::server::conn::http1::Builder::new()
                .writev(writev)
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = server => {}
                _ = conn => {}
            }
        });
    }
}

fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind(("127.0.0.1", 0))
        .map_err(|e| format!("cannot find a free port: {e}"))?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

fn wait_for_port(port: u16, what: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!(
        "{what} did not accept connections on 127.0.0.1:{port} within 10 s"
    ))
}

/// Starts nginx as a reverse proxy to `app` with a configuration written into `dir`.
fn start_nginx(dir: &Path, app: &str) -> Result<(Proc, u16), String> {
    let port = free_port()?;
    let d = dir.display();
    let conf = format!(
        "worker_processes 2;\n\
         daemon off;\n\
         pid {d}/nginx.pid;\n\
         error_log {d}/error.log warn;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n\
           access_log off;\n\
           client_body_temp_path {d}/body;\n\
           proxy_temp_path {d}/proxy;\n\
           fastcgi_temp_path {d}/fastcgi;\n\
           uwsgi_temp_path {d}/uwsgi;\n\
           scgi_temp_path {d}/scgi;\n\
           upstream app {{ server {app}; keepalive 64; }}\n\
           server {{\n\
             listen 127.0.0.1:{port};\n\
             location / {{\n\
               proxy_pass http://app;\n\
               proxy_http_version 1.1;\n\
               proxy_set_header Connection \"\";\n\
             }}\n\
           }}\n\
         }}\n"
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    let child = Command::new(nginx_binary())
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&path)
        .arg("-e")
        .arg(dir.join("error.log"))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start nginx: {e}"))?;
    let proc = Proc {
        child,
        what: "nginx".to_owned(),
    };
    wait_for_port(port, "nginx")?;
    Ok((proc, port))
}

fn nginx_binary() -> PathBuf {
    ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("nginx"))
}

/// Whether wrk and nginx are installed (`scripts/bench.sh` installs them).
pub(crate) fn tools_present() -> bool {
    let wrk = Command::new("wrk")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    wrk && nginx_binary().exists()
}

/// What one wrk run measured.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Load {
    pub(crate) rps: f64,
    pub(crate) p50: Duration,
    pub(crate) p99: Duration,
    pub(crate) errors: u64,
}

fn parse_latency(v: &str) -> Option<Duration> {
    let (num, unit) = v
        .find(|c: char| c.is_ascii_alphabetic())
        .map(|i| v.split_at(i))?;
    let n: f64 = num.parse().ok()?;
    let nanos_per_unit = match unit {
        "us" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" => 60e9,
        _ => return None,
    };
    Some(Duration::from_nanos((n * nanos_per_unit).round() as u64))
}

/// Reads `wrk --latency` output.
pub(crate) fn parse_wrk(out: &str) -> Result<Load, String> {
    let mut load = Load::default();
    let (mut p50, mut p99, mut rps) = (None, None, None);
    for line in out.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["50%", v] => p50 = parse_latency(v),
            ["99%", v] => p99 = parse_latency(v),
            ["Requests/sec:", v] => rps = v.parse().ok(),
            ["Non-2xx", "or", "3xx", "responses:", n] => load.errors += n.parse().unwrap_or(1),
            ["Socket", "errors:", rest @ ..] => {
                load.errors += rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum::<u64>();
            }
            _ => {}
        }
    }
    load.p50 = p50.ok_or_else(|| format!("no 50% latency in wrk output:\n{out}"))?;
    load.p99 = p99.ok_or_else(|| format!("no 99% latency in wrk output:\n{out}"))?;
    load.rps = rps.ok_or_else(|| format!("no Requests/sec in wrk output:\n{out}"))?;
    Ok(load)
}

fn wrk(port: u16, session: &str, secs: u64) -> Result<Load, String> {
    let out = Command::new("wrk")
        .args(["-t2", "-c64", &format!("-d{secs}s"), "--latency", "-H"])
        .arg(format!("x-softprobe-session-id: {session}"))
        .arg(format!("http://127.0.0.1:{port}{PRICE_PATH}"))
        .output()
        .map_err(|e| format!("cannot run wrk: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "wrk failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    parse_wrk(&String::from_utf8_lossy(&out.stdout))
}

/// Loads of the targets: the app directly, a bare hyper proxy, nginx, and our ingress.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IngressResult {
    pub(crate) direct: Load,
    pub(crate) bare_hyper: Load,
    pub(crate) nginx: Load,
    pub(crate) ingress: Load,
}

fn mean(loads: &[Load]) -> Load {
    let n = loads.len().max(1) as f64;
    let secs = |f: fn(&Load) -> Duration| {
        Duration::from_secs_f64(loads.iter().map(|l| f(l).as_secs_f64()).sum::<f64>() / n)
    };
    Load {
        rps: loads.iter().map(|l| l.rps).sum::<f64>() / n,
        p50: secs(|l| l.p50),
        p99: secs(|l| l.p99),
        errors: loads.iter().map(|l| l.errors).sum(),
    }
}

/// Alternates nginx and our ingress `rounds` times, `secs` seconds per wrk run.
pub(crate) fn run(secs: u64, rounds: usize) -> Result<IngressResult, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("cannot create a temp dir: {e}"))?;
    let (_app, app_words) = spawn_self(&["serve-app"])?;
    let app = app_words
        .first()
        .ok_or("serve-app printed no address")?
        .clone();
    let (_ingress, words) = spawn_self(&["serve-ingress", &format!("http://{app}")])?;
    let ingress_port: u16 = words
        .first()
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .ok_or("serve-ingress printed no address")?;
    let session = words
        .get(1)
        .ok_or("serve-ingress printed no session")?
        .clone();
    let (_bare, bare_words) = spawn_self(&["serve-hyper-proxy", &format!("http://{app}")])?;
    let bare_port: u16 = bare_words
        .first()
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .ok_or("serve-hyper-proxy printed no address")?;
    let (_nginx, nginx_port) = start_nginx(dir.path(), &app)?;
    let app_port: u16 = app
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or("bad app address")?;

    // A short run per target first: connection pools fill, caches warm.
    for port in [app_port, bare_port, nginx_port, ingress_port] {
        wrk(port, &session, 1)?;
    }
    let direct = wrk(app_port, &session, secs)?;
    let bare_hyper = wrk(bare_port, &session, secs)?;
    let (mut nginx, mut ours) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        nginx.push(wrk(nginx_port, &session, secs)?);
        ours.push(wrk(ingress_port, &session, secs)?);
    }
    Ok(IngressResult {
        direct,
        bare_hyper,
        nginx: mean(&nginx),
        ingress: mean(&ours),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_output_is_read_with_its_units() {
        let out = "Running 1s test @ http://127.0.0.1:1/\n  2 threads and 64 connections\n  Latency Distribution\n     50%  635.00us\n     75%    1.01ms\n     90%    1.50ms\n     99%    2.14ms\n  12000 requests in 1.00s, 2.00MB read\n  Socket errors: connect 0, read 2, write 0, timeout 1\nRequests/sec:  45000.12\n";
        let load = parse_wrk(out).unwrap();
        assert_eq!(load.p50, Duration::from_micros(635));
        assert_eq!(load.p99, Duration::from_micros(2140));
        assert!((load.rps - 45000.12).abs() < 1e-6);
        assert_eq!(load.errors, 3);
    }

    #[test]
    fn wrk_output_without_latencies_is_an_error_that_shows_it() {
        let err = parse_wrk("Requests/sec: 1.0\n").unwrap_err();
        assert!(err.contains("no 50% latency"), "{err}");
    }
}
