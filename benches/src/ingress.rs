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
    spawn_self_with(args, &[])
}

/// [`spawn_self`] with extra environment variables.
fn spawn_self_with(args: &[&str], env: &[(String, String)]) -> Result<(Proc, Vec<String>), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let mut child = Command::new(&exe)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
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
    /// The one-minute load average when the run ended.
    pub(crate) load_average: f64,
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

/// One wrk run against `port`, with the session header when `session` is given.
fn wrk(port: u16, session: Option<&str>, secs: u64) -> Result<Load, String> {
    let mut cmd = Command::new("wrk");
    cmd.args(["-t2", "-c64", &format!("-d{secs}s"), "--latency"]);
    if let Some(session) = session {
        cmd.arg("-H")
            .arg(format!("x-softprobe-session-id: {session}"));
    }
    let out = cmd
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
    let mut load = parse_wrk(&String::from_utf8_lossy(&out.stdout))?;
    load.load_average = load_average();
    Ok(load)
}

/// The one-minute load average (`/proc/loadavg`), 0 where there is none.
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// The runs of one target: each figure is the median of its runs.
#[derive(Debug, Clone, Default)]
pub(crate) struct Runs(pub(crate) Vec<Load>);

impl Runs {
    fn median_of(&self, f: impl Fn(&Load) -> f64) -> f64 {
        let mut v: Vec<f64> = self.0.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        match v.len() {
            0 => 0.0,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }

    /// The median throughput, p50 and p99 of the runs, and their errors summed.
    pub(crate) fn median(&self) -> Load {
        Load {
            rps: self.median_of(|l| l.rps),
            p50: Duration::from_secs_f64(self.median_of(|l| l.p50.as_secs_f64())),
            p99: Duration::from_secs_f64(self.median_of(|l| l.p99.as_secs_f64())),
            errors: self.0.iter().map(|l| l.errors).sum(),
            load_average: self.median_of(|l| l.load_average),
        }
    }

    /// The load averages seen at the end of each run, lowest to highest.
    pub(crate) fn load_range(&self) -> (f64, f64) {
        let loads = self.0.iter().map(|l| l.load_average);
        (
            loads.clone().fold(f64::INFINITY, f64::min),
            loads.fold(0.0, f64::max),
        )
    }
}

/// One ingress set-up measured beside the default one: a name and the environment its
/// `serve-ingress` process gets.
#[derive(Debug, Clone)]
struct Variant {
    name: String,
    env: Vec<(String, String)>,
}

/// `SOFTPROBE_BENCH_INGRESS_VARIANTS="name:VAR=value,VAR2=value;name2:..."`: more ingress
/// processes measured in the same alternation (to compare a set-up by hand, e.g.
/// `threads0:SOFTPROBE_INGRESS_THREADS=0`).
fn variants() -> Result<Vec<Variant>, String> {
    let Ok(spec) = std::env::var("SOFTPROBE_BENCH_INGRESS_VARIANTS") else {
        return Ok(Vec::new());
    };
    spec.split(';')
        .filter(|v| !v.trim().is_empty())
        .map(|v| {
            let (name, vars) = v.split_once(':').ok_or_else(|| {
                format!("SOFTPROBE_BENCH_INGRESS_VARIANTS: {v:?} is not name:VAR=value,...")
            })?;
            let env = vars
                .split(',')
                .filter(|kv| !kv.is_empty())
                .map(|kv| {
                    kv.split_once('=')
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .ok_or_else(|| {
                            format!("SOFTPROBE_BENCH_INGRESS_VARIANTS: {kv:?} is not VAR=value")
                        })
                })
                .collect::<Result<_, _>>()?;
            Ok(Variant {
                name: name.trim().to_owned(),
                env,
            })
        })
        .collect()
}

/// What row 4 measured: every target's runs, with and without the session header.
#[derive(Debug, Clone, Default)]
pub(crate) struct IngressResult {
    /// The app alone.
    pub(crate) direct: Runs,
    /// hyper-util's pooled client behind hyper's server, one current-thread runtime per
    /// CPU, each with its own `SO_REUSEPORT` listener: the stack without softprobe.
    pub(crate) bare_hyper: Runs,
    /// As `bare_hyper`, each client connection owning one upstream connection on its task.
    pub(crate) bare_affine: Runs,
    /// nginx, with the session header (which it passes on).
    pub(crate) nginx: Runs,
    /// Our ingress, with the session header: a replay session decides each hop.
    pub(crate) ingress: Runs,
    /// nginx without the header.
    pub(crate) nginx_plain: Runs,
    /// Our ingress without the header: relayed without a decision.
    pub(crate) ingress_plain: Runs,
    /// Extra set-ups (`SOFTPROBE_BENCH_INGRESS_VARIANTS`), with and without the header.
    pub(crate) variants: Vec<(String, Runs, Runs)>,
}

fn port_of(words: &[String], what: &str) -> Result<u16, String> {
    words
        .first()
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| format!("{what} printed no address"))
}

/// Runs nginx and our ingress in turn, `rounds` times each, with and without the session
/// header, `secs` seconds per wrk run; the bare hyper proxies and the app alone once per
/// round too.
pub(crate) fn run(secs: u64, rounds: usize) -> Result<IngressResult, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("cannot create a temp dir: {e}"))?;
    let (_app, app_words) = spawn_self(&["serve-app"])?;
    let app = app_words
        .first()
        .ok_or("serve-app printed no address")?
        .clone();
    let upstream = format!("http://{app}");
    let (_ingress, words) = spawn_self(&["serve-ingress", &upstream])?;
    let ingress_port = port_of(&words, "serve-ingress")?;
    let session = words
        .get(1)
        .ok_or("serve-ingress printed no session")?
        .clone();
    let cpus = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .to_string();
    let shards = [("SOFTPROBE_BENCH_SHARDS".to_owned(), cpus)];
    let (_bare, bare_words) = spawn_self_with(&["serve-hyper-proxy", &upstream], &shards)?;
    let bare_port = port_of(&bare_words, "serve-hyper-proxy")?;
    let (_affine, affine_words) = spawn_self_with(&["serve-affine-proxy", &upstream], &shards)?;
    let affine_port = port_of(&affine_words, "serve-affine-proxy")?;
    let mut extra = Vec::new();
    for variant in variants()? {
        let (proc, words) = spawn_self_with(&["serve-ingress", &upstream], &variant.env)?;
        let port = port_of(&words, "serve-ingress")?;
        // Each process has its own store: its own session id.
        let id = words
            .get(1)
            .ok_or("serve-ingress printed no session")?
            .clone();
        extra.push((variant.name, proc, port, id));
    }
    let (_nginx, nginx_port) = start_nginx(dir.path(), &app)?;
    let app_port = port_of(std::slice::from_ref(&app), "serve-app")?;

    // A short run per target first: connection pools fill, caches warm.
    for port in [app_port, bare_port, affine_port, nginx_port, ingress_port]
        .into_iter()
        .chain(extra.iter().map(|e| e.2))
    {
        wrk(port, Some(&session), 1)?;
    }
    let mut res = IngressResult {
        variants: extra
            .iter()
            .map(|e| (e.0.clone(), Runs::default(), Runs::default()))
            .collect(),
        ..IngressResult::default()
    };
    let s = Some(session.as_str());
    for _ in 0..rounds {
        res.nginx.0.push(wrk(nginx_port, s, secs)?);
        res.ingress.0.push(wrk(ingress_port, s, secs)?);
        res.nginx_plain.0.push(wrk(nginx_port, None, secs)?);
        res.ingress_plain.0.push(wrk(ingress_port, None, secs)?);
        for (i, (_, _, port, id)) in extra.iter().enumerate() {
            res.variants[i].1.0.push(wrk(*port, Some(id), secs)?);
            res.variants[i].2.0.push(wrk(*port, None, secs)?);
        }
        res.bare_hyper.0.push(wrk(bare_port, None, secs)?);
        res.bare_affine.0.push(wrk(affine_port, None, secs)?);
        res.direct.0.push(wrk(app_port, None, secs)?);
    }
    Ok(res)
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
