//! Row 10: closing a large capture. `wrk` drives traffic through an ingress proxy holding one
//! capture session (in a child process of its own, `serve-capture`, as the standalone runtime
//! holds it: in-memory store, one ingress thread per CPU) for a few seconds; then the child
//! closes the session into a case file and reports its own resident set before the close, its
//! peak during the close (`VmHWM` after `clear_refs` reset it) and after it, with the time the
//! close took and the bytes written. Row 10b scrubs that case and rewrites it as
//! `softprobe scrub` does (one trace document at a time) and as it did before (the whole
//! case parsed), row 10c sends it to a collector with `softprobe export otlp`; each in a
//! child of its own, `scrub-case`.
//!
//! The peer is the process itself: the targets are ratios to its resident set before the
//! close (peak ≤ 1.5×, after ≤ 1.0×) and a rate (≤ 1 s per 100 MB written).

use std::io::{BufRead, BufReader, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser as _;

use softprobe_runtime::case::{Case, CaseStream};
use softprobe_runtime::proxy::{IngressProxy, StoreBackend};
use softprobe_runtime::scrub::{ScrubMode, ScrubRules, scrub_file};
use softprobe_runtime::session::{InMemoryStore, NewSession, SessionLimits, SessionStore};

use crate::ingress::spawn_self;
use crate::support::PRICE_PATH;

/// A line of `/proc/self/status` in KiB (`VmRSS`, `VmHWM`).
fn status_kib(field: &str) -> Result<u64, String> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("cannot read /proc/self/status: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("no {field} line in /proc/self/status"))
}

/// Resets this process's `VmHWM` to its current resident set.
fn reset_peak() -> Result<(), String> {
    std::fs::write("/proc/self/clear_refs", "5")
        .map_err(|e| format!("cannot reset the peak resident set (/proc/self/clear_refs): {e}"))
}

/// What one measured step did to the process's memory.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Step {
    pub(crate) before_kib: u64,
    pub(crate) peak_kib: u64,
    pub(crate) after_kib: u64,
    pub(crate) took: Duration,
    pub(crate) bytes: u64,
    pub(crate) hops: u64,
}

impl Step {
    fn line(&self) -> String {
        format!(
            "before={} peak={} after={} micros={} bytes={} hops={}",
            self.before_kib,
            self.peak_kib,
            self.after_kib,
            self.took.as_micros(),
            self.bytes,
            self.hops
        )
    }

    fn parse(text: &str) -> Result<Step, String> {
        let field = |name: &str| {
            text.split_whitespace()
                .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| format!("no {name}= in {text:?}"))
        };
        Ok(Step {
            before_kib: field("before")?,
            peak_kib: field("peak")?,
            after_kib: field("after")?,
            took: Duration::from_micros(field("micros")?),
            bytes: field("bytes")?,
            hops: field("hops")?,
        })
    }

    /// Seconds per 100 MB written.
    pub(crate) fn secs_per_100mb(&self) -> f64 {
        self.took.as_secs_f64() / (self.bytes.max(1) as f64 / 100e6)
    }

    /// Peak over the resident set before.
    pub(crate) fn peak_ratio(&self) -> f64 {
        self.peak_kib as f64 / self.before_kib.max(1) as f64
    }

    /// Resident set after over before.
    pub(crate) fn after_ratio(&self) -> f64 {
        self.after_kib as f64 / self.before_kib.max(1) as f64
    }
}

/// Runs `work` and measures it: resident set before, peak during, after; `work` answers
/// (bytes, hops).
fn measured(work: impl FnOnce() -> Result<(u64, u64), String>) -> Result<Step, String> {
    let before_kib = status_kib("VmRSS")?;
    reset_peak()?;
    let started = Instant::now();
    let (bytes, hops) = work()?;
    let took = started.elapsed();
    Ok(Step {
        before_kib,
        peak_kib: status_kib("VmHWM")?,
        after_kib: status_kib("VmRSS")?,
        took,
        bytes,
        hops,
    })
}

/// `serve-capture <upstream>`: an ingress proxy with one capture session; prints
/// `READY <addr> <session>`, then on a `close <path>` line on stdin closes the session into
/// `path` and prints the measured [`Step`].
pub(crate) fn serve_capture(upstream: &str) -> ! {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let store: Arc<dyn SessionStore> =
        Arc::new(InMemoryStore::with_limits(SessionLimits::UNLIMITED));
    let session = store
        .create(NewSession::new(softprobe_runtime::Mode::Capture))
        .expect("a session");
    let id = session.id().to_owned();
    drop(session);
    let ingress = rt.block_on(async {
        IngressProxy::builder()
            .upstream(upstream)
            .threads(std::thread::available_parallelism().map_or(1, |n| n.get()))
            .backend(Arc::new(StoreBackend::new(store.clone())))
            .start()
            .await
            .expect("the ingress proxy starts")
    });
    println!("READY {} {id}", ingress.addr());
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    let Some(path) = line.trim().strip_prefix("close ") else {
        eprintln!("serve-capture: expected `close <path>`, got {line:?}");
        std::process::exit(2)
    };
    let path = Path::new(path);
    let step = measured(|| {
        let hops = store
            .close(&id, Some(path))
            .map_err(|e| format!("close: {e}"))?
            .unwrap_or(0);
        let bytes = std::fs::metadata(path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .len();
        Ok((bytes, hops as u64))
    });
    match step {
        Ok(step) => println!("CLOSED {}", step.line()),
        Err(e) => println!("FAILED {e}"),
    }
    std::process::exit(0)
}

/// `serve-collector`: the OTLP/HTTP collector of row 10c. Each request's body is read to its
/// end (as a collector must before it can decode it) and answered `200 {}`: the least a
/// collector does, so the row measures the export and not the collector. The row 4 app
/// answers without reading the body, which a large request can outrun.
pub(crate) fn serve_collector() -> ! {
    use http_body_util::{BodyExt as _, Full};
    use hyper::service::service_fn;
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("binding the collector");
        println!("READY {}", listener.local_addr().expect("an address"));
        let _ = std::io::stdout().flush();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service = service_fn(|req: http::Request<hyper::body::Incoming>| async move {
                    let status = match req.into_body().collect().await {
                        Ok(_) => http::StatusCode::OK,
                        Err(_) => http::StatusCode::BAD_REQUEST,
                    };
                    Ok::<_, std::convert::Infallible>(
                        http::Response::builder()
                            .status(status)
                            .header("content-type", "application/json")
                            .body(Full::new(bytes::Bytes::from_static(b"{}")))
                            .expect("a static response builds"),
                    )
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    std::process::exit(0)
}

/// The rules rows 10b and 10c scrub with: the built-in patterns and one that matches in
/// every hop (its URL), so every span is rewritten and the file is written back.
fn bench_rules() -> Result<ScrubRules, String> {
    ScrubRules::parse(
        br#"{"version": 1, "patterns": [{"name": "sku", "regex": "sku-42", "replacement": "sku-XX"}]}"#,
        "bench-rules.json",
    )
    .map_err(|e| e.to_string())
}

/// `scrub-case parsed|streamed|export <path> [collector]`: one way of going through the case
/// at `path`; prints the measured [`Step`].
///
/// - `parsed`: reads the whole case, scrubs it, writes it ([`Case::read`],
///   `scrub_case_with`, [`Case::write`]): how `softprobe scrub` worked before it streamed.
///   Its "before" is the process holding the parsed case; `hops` counts the spans.
/// - `streamed`: what `softprobe scrub` runs ([`CaseStream`], `scrub_file`); its "before"
///   is the process before it; `hops` counts the findings.
/// - `export`: `softprobe export otlp --case <path> --endpoint <collector>`, the command
///   itself, in this process; its "before" is the process before it; `hops` counts nothing.
pub(crate) fn scrub_case(how: &str, path: &str, collector: Option<&str>) -> Result<(), String> {
    let rules = bench_rules()?;
    let path = Path::new(path);
    let step = match how {
        "parsed" => {
            reset_peak()?;
            let started = Instant::now();
            let mut case = Case::read(path).map_err(|e| e.to_string())?;
            let held_kib = status_kib("VmRSS")?;
            let hops = case.spans().count() as u64;
            softprobe_runtime::scrub::scrub_case_with(&mut case, &rules);
            case.write(path).map_err(|e| e.to_string())?;
            let took = started.elapsed();
            let step = Step {
                before_kib: held_kib,
                peak_kib: status_kib("VmHWM")?,
                after_kib: status_kib("VmRSS")?,
                took,
                bytes: std::fs::metadata(path).map_err(|e| e.to_string())?.len(),
                hops,
            };
            drop(case);
            step
        }
        "streamed" => measured(|| {
            let stream = CaseStream::open(path).map_err(|e| e.to_string())?;
            let found =
                scrub_file(&stream, path, &rules, ScrubMode::Rewrite).map_err(|e| e.to_string())?;
            if found.is_empty() {
                return Err("the scrub found nothing, so it wrote nothing".into());
            }
            Ok((stream.len() as u64, found.len() as u64))
        })?,
        "export" => {
            let collector = collector.ok_or("export needs a collector URL")?;
            let file = path.display().to_string();
            measured(|| {
                let cli = softprobe_runtime::cli::Cli::try_parse_from([
                    "softprobe",
                    "--quiet",
                    "export",
                    "otlp",
                    "--case",
                    &file,
                    "--endpoint",
                    collector,
                ])
                .map_err(|e| e.to_string())?;
                match softprobe_runtime::cli::run(cli) {
                    0 => Ok((std::fs::metadata(path).map_err(|e| e.to_string())?.len(), 0)),
                    code => Err(format!("softprobe export exited with {code}")),
                }
            })?
        }
        other => return Err(format!("unknown way {other:?}")),
    };
    println!("SCRUBBED {}", step.line());
    Ok(())
}

/// Runs `scrub-case <how> <path> [collector]` in a child process and reads its [`Step`].
fn scrub_child(how: &str, path: &Path, collector: Option<&str>) -> Result<Step, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let mut cmd = Command::new(&exe);
    cmd.args(["scrub-case", how]).arg(path);
    if let Some(url) = collector {
        cmd.arg(url);
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {} scrub-case: {e}", exe.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    match text
        .lines()
        .find_map(|l| l.trim().strip_prefix("SCRUBBED "))
    {
        Some(rest) if out.status.success() => Step::parse(rest),
        _ => Err(format!(
            "scrub-case {how} failed ({}): {}{}",
            out.status,
            text,
            String::from_utf8_lossy(&out.stderr)
        )),
    }
}

/// What rows 10b and 10c measured: the scrub as it was (whole case parsed), the scrub as
/// `softprobe scrub` runs it now, and the export.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scrubs {
    pub(crate) parsed: Step,
    pub(crate) streamed: Step,
    pub(crate) export: Step,
}

/// Rows 10 and 10b: `secs` seconds of wrk through a capturing ingress, then its close; then a
/// scrub of the written case.
pub(crate) fn run(secs: u64) -> Result<(Step, Scrubs), String> {
    let dir = tempfile::tempdir().map_err(|e| format!("cannot create a temp dir: {e}"))?;
    let case_path = dir.path().join("large.case.json");
    let (_app, app_words) = spawn_self(&["serve-app"])?;
    let app = app_words.first().ok_or("serve-app printed no address")?;

    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let mut child = Command::new(&exe)
        .args(["serve-capture", &format!("http://{app}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start {} serve-capture: {e}", exe.display()))?;
    let mut out = BufReader::new(child.stdout.take().expect("piped stdout"));
    let mut line = String::new();
    out.read_line(&mut line)
        .map_err(|e| format!("serve-capture: no READY line: {e}"))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let (addr, session) = match words.as_slice() {
        ["READY", addr, session] => (addr.to_string(), session.to_string()),
        _ => {
            let _ = child.kill();
            return Err(format!("serve-capture: expected READY, got {line:?}"));
        }
    };
    let load = Command::new("wrk")
        .args(["-t2", "-c64", &format!("-d{secs}s"), "-H"])
        .arg(format!("x-softprobe-session-id: {session}"))
        .arg(format!("http://{addr}{PRICE_PATH}"))
        .output()
        .map_err(|e| format!("cannot run wrk: {e}"));
    let closed = load.and_then(|_| {
        let mut stdin = child.stdin.take().expect("piped stdin");
        writeln!(stdin, "close {}", case_path.display())
            .map_err(|e| format!("serve-capture: cannot ask it to close: {e}"))?;
        let mut line = String::new();
        out.read_line(&mut line)
            .map_err(|e| format!("serve-capture: no answer to close: {e}"))?;
        match line.strip_prefix("CLOSED ") {
            Some(rest) => Step::parse(rest),
            None => Err(format!("serve-capture: {}", line.trim())),
        }
    });
    let _ = child.kill();
    let _ = child.wait();
    let closed = closed?;

    // Each way gets its own copy of the case: each rewrites it.
    let copy = dir.path().join("copy.case.json");
    std::fs::copy(&case_path, &copy).map_err(|e| format!("cannot copy the case: {e}"))?;
    let parsed = scrub_child("parsed", &copy, None)?;
    std::fs::copy(&case_path, &copy).map_err(|e| format!("cannot copy the case: {e}"))?;
    let streamed = scrub_child("streamed", &copy, None)?;
    let (_collector, collector_words) = spawn_self(&["serve-collector"])?;
    let collector = collector_words
        .first()
        .ok_or("serve-collector printed no address")?;
    let export = scrub_child("export", &case_path, Some(&format!("http://{collector}")))?;
    Ok((
        closed,
        Scrubs {
            parsed,
            streamed,
            export,
        },
    ))
}
