//! `softprobe-bench`: softprobe against the tools a Rust team would otherwise use, each row a
//! ratio to a peer measured in the same run on the same machine. `--smoke` runs every row
//! with tiny counts and no targets (CI); `scripts/bench.sh` runs the full set in release.
//!
//! Internal subcommands (`serve-app`, `serve-ingress`, `serve-hyper-proxy`, `mem`) are the
//! child processes of rows 4 and 7; `serve-affine-proxy` (a bare proxy with one upstream
//! connection per client connection) and `SOFTPROBE_BENCH_SHARDS=N` (the bare proxies on N
//! current-thread runtimes) are there to measure the stack by hand.

mod build_cost;
mod capture;
mod egress;
mod ingress;
mod memory;
mod overhead;
mod parse;
mod shared;
mod suite;
mod support;

use std::fmt::Write as _;
use std::path::PathBuf;

use support::{fmt_dur, ratio};

/// How much work each row does.
#[derive(Debug, Clone, Copy)]
struct Counts {
    overhead: usize,
    calls: usize,
    wrk_secs: u64,
    wrk_rounds: usize,
    concurrent: usize,
    capture_rounds: usize,
    parse: usize,
    sessions: usize,
    suite_cases: usize,
    /// Tests per side of row 10's generated crates.
    build_tests: usize,
}

const FULL: Counts = Counts {
    overhead: 300,
    calls: 3000,
    wrk_secs: 8,
    wrk_rounds: 2,
    concurrent: 2000,
    capture_rounds: 3,
    parse: 30,
    sessions: 1000,
    suite_cases: 1000,
    build_tests: 200,
};

const SMOKE: Counts = Counts {
    overhead: 5,
    calls: 50,
    wrk_secs: 1,
    wrk_rounds: 1,
    concurrent: 100,
    capture_rounds: 1,
    parse: 2,
    sessions: 20,
    suite_cases: 10,
    build_tests: 3,
};

/// One line of the results table.
struct Row {
    id: &'static str,
    what: String,
    ours: String,
    peer: String,
    ratio: String,
    target: &'static str,
    /// `None` when there is no target to meet (smoke runs, unmeasured rows).
    met: Option<bool>,
}

impl Row {
    fn markdown(&self) -> String {
        let verdict = match self.met {
            Some(true) => "met",
            Some(false) => "**missed**",
            None => "-",
        };
        format!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            self.id, self.what, self.ours, self.peer, self.ratio, self.target, verdict
        )
    }
}

struct Args {
    smoke: bool,
    out: Option<PathBuf>,
    only: Option<Vec<String>>,
    /// Overrides the per-side count of rows 1-3 (tests, calls), e.g. for a profile.
    count: Option<usize>,
}

fn usage() -> ! {
    eprintln!(
        "usage: softprobe-bench [--smoke] [--out FILE] [--only 1,2,...] [--count N]\n\
         \n\
         Runs the benchmark rows and prints a Markdown table of ratios to their peers.\n\
         --smoke   tiny counts, no targets judged (for CI)\n\
         --out     also write the table to FILE\n\
         --only    run only these rows (1, 1b, 2-10)\n\
         --count   tests or calls per side in rows 1-3 (to profile them)"
    );
    std::process::exit(2)
}

fn parse_args(mut argv: impl Iterator<Item = String>) -> Args {
    let mut args = Args {
        smoke: false,
        out: None,
        only: None,
        count: None,
    };
    while let Some(a) = argv.next() {
        match a.as_str() {
            "--smoke" => args.smoke = true,
            "--out" => args.out = Some(argv.next().unwrap_or_else(|| usage()).into()),
            "--only" => {
                let list = argv.next().unwrap_or_else(|| usage());
                args.only = Some(list.split(',').map(|s| s.trim().to_owned()).collect());
            }
            "--count" => {
                let n = argv.next().unwrap_or_else(|| usage());
                args.count = Some(n.parse().unwrap_or_else(|_| usage()));
            }
            "-h" | "--help" => usage(),
            other => {
                eprintln!("softprobe-bench: unknown argument {other:?}");
                usage()
            }
        }
    }
    args
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    match argv.first().map(String::as_str) {
        Some("serve-app") => ingress::serve_app(),
        Some("serve-hyper-proxy") => {
            let upstream = argv.get(1).unwrap_or_else(|| usage());
            ingress::serve_hyper_proxy(upstream)
        }
        Some("serve-affine-proxy") => {
            let upstream = argv.get(1).unwrap_or_else(|| usage());
            ingress::serve_affine_proxy(upstream)
        }
        Some("serve-ingress") => {
            let upstream = argv.get(1).unwrap_or_else(|| usage());
            ingress::serve_ingress(upstream)
        }
        Some("mem") => {
            let side = argv.get(1).unwrap_or_else(|| usage());
            let count = argv
                .get(2)
                .and_then(|c| c.parse().ok())
                .unwrap_or_else(|| usage());
            if let Err(e) = memory::child(side, count) {
                eprintln!("softprobe-bench mem: {e}");
                std::process::exit(1);
            }
            return;
        }
        _ => {}
    }
    let args = parse_args(argv.into_iter());
    support::install_tls_provider();
    if let Err(e) = run(&args) {
        eprintln!("softprobe-bench: {e}");
        std::process::exit(1);
    }
}

fn judge(smoke: bool, ok: bool) -> Option<bool> {
    (!smoke).then_some(ok)
}

fn run(args: &Args) -> Result<(), String> {
    let mut counts = if args.smoke { SMOKE } else { FULL };
    if let Some(n) = args.count {
        counts.overhead = n;
        counts.calls = n;
    }
    let wanted = |id: &str| args.only.as_ref().is_none_or(|o| o.iter().any(|x| x == id));
    let smoke = args.smoke;
    let mut rows: Vec<Row> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a tokio runtime: {e}"))?;
    let dir = tempfile::tempdir().map_err(|e| format!("cannot create a temp dir: {e}"))?;
    let price = support::price_case();

    if wanted("1") || wanted("1b") {
        let path = dir.path().join("price.case.json");
        price
            .write(&path)
            .map_err(|e| format!("cannot write the bench case: {e}"))?;
        for (id, clients, what) in [
            (
                "1",
                overhead::Clients::Default,
                "per-test overhead (p50 of a whole test)",
            ),
            (
                "1b",
                overhead::Clients::NoSystemRoots,
                "per-test overhead, clients built without the system roots",
            ),
        ] {
            if !wanted(id) {
                continue;
            }
            eprintln!(
                "row {id}: per-test overhead ({} tests per side)",
                counts.overhead
            );
            let (ours, peer) = overhead::run(&path, counts.overhead, clients);
            let r = ratio(ours.p50().as_secs_f64(), peer.p50().as_secs_f64());
            rows.push(Row {
                id,
                what: what.into(),
                ours: format!("{} (p99 {})", fmt_dur(ours.p50()), fmt_dur(ours.p99())),
                peer: format!(
                    "wiremock {} (p99 {})",
                    fmt_dur(peer.p50()),
                    fmt_dur(peer.p99())
                ),
                ratio: format!("{r:.2}×"),
                target: "≤ 0.5×",
                met: judge(smoke, r <= 0.5),
            });
        }
    }

    if wanted("2") || wanted("3") {
        eprintln!(
            "rows 2-3: serial replayed calls ({} per side)",
            counts.calls
        );
        let res = rt.block_on(egress::run(&price, counts.calls));
        let r2 = ratio(
            res.replay.p50().as_secs_f64(),
            res.hyper.p50().as_secs_f64(),
        );
        let r2_99 = ratio(
            res.replay.p99().as_secs_f64(),
            res.hyper.p99().as_secs_f64(),
        );
        let r3 = ratio(
            res.replay.p50().as_secs_f64(),
            res.wiremock.p50().as_secs_f64(),
        );
        let r3_99 = ratio(
            res.replay.p99().as_secs_f64(),
            res.wiremock.p99().as_secs_f64(),
        );
        let ours = format!(
            "p50 {} / p99 {}",
            fmt_dur(res.replay.p50()),
            fmt_dur(res.replay.p99())
        );
        rows.push(Row {
            id: "2",
            what: "replayed call through the egress proxy vs direct hyper".into(),
            ours: ours.clone(),
            peer: format!(
                "hyper p50 {} / p99 {}",
                fmt_dur(res.hyper.p50()),
                fmt_dur(res.hyper.p99())
            ),
            ratio: format!("p50 {r2:.2}× / p99 {r2_99:.2}×"),
            target: "p50 ≤ 1.15×",
            met: judge(smoke, r2 <= 1.15),
        });
        rows.push(Row {
            id: "3",
            what: "replayed call through the egress proxy vs wiremock".into(),
            ours,
            peer: format!(
                "wiremock p50 {} / p99 {}",
                fmt_dur(res.wiremock.p50()),
                fmt_dur(res.wiremock.p99())
            ),
            ratio: format!("p50 {r3:.2}× / p99 {r3_99:.2}×"),
            target: "p50 ≤ 0.9×",
            met: judge(smoke, r3 <= 0.9),
        });
        notes.push(format!(
            "rows 2-3: {} serial calls per side",
            res.replay.len()
        ));
    }

    if wanted("4") {
        if ingress::tools_present() {
            eprintln!(
                "row 4: wrk -c64, {} s x {} rounds per side",
                counts.wrk_secs, counts.wrk_rounds
            );
            let res = ingress::run(counts.wrk_secs, counts.wrk_rounds)?;
            let thr = ratio(res.ingress.rps, res.nginx.rps);
            let p99 = ratio(res.ingress.p99.as_secs_f64(), res.nginx.p99.as_secs_f64());
            let p50 = ratio(res.ingress.p50.as_secs_f64(), res.nginx.p50.as_secs_f64());
            let show = |l: &ingress::Load| {
                format!(
                    "{:.0} req/s, p50 {} / p99 {}",
                    l.rps,
                    fmt_dur(l.p50),
                    fmt_dur(l.p99)
                )
            };
            rows.push(Row {
                id: "4",
                what: "ingress proxy hop under wrk (64 connections)".into(),
                ours: show(&res.ingress),
                peer: format!("nginx {}", show(&res.nginx)),
                ratio: format!("throughput {thr:.2}×, p50 {p50:.2}×, p99 {p99:.2}×"),
                target: "throughput ≥ 1.0×, p99 ≤ 1.0×",
                met: judge(smoke, thr >= 1.0 && p99 <= 1.0),
            });
            notes.push(format!(
                "row 4: the app alone served {}; a bare hyper reverse proxy (hyper-util pooled client, no softprobe logic) served {}; non-2xx or socket errors: ingress {}, nginx {}, direct {}",
                show(&res.direct),
                show(&res.bare_hyper),
                res.ingress.errors,
                res.nginx.errors,
                res.direct.errors
            ));
        } else {
            rows.push(Row {
                id: "4",
                what: "ingress proxy hop under wrk (64 connections)".into(),
                ours: "not run".into(),
                peer: "not run".into(),
                ratio: "-".into(),
                target: "throughput ≥ 1.0×, p99 ≤ 1.0×",
                met: None,
            });
            notes.push(
                "row 4: wrk or nginx is not installed (scripts/bench.sh installs them)".into(),
            );
        }
    }

    if wanted("5") {
        eprintln!(
            "row 5: {} concurrent requests x {} rounds per side",
            counts.concurrent, counts.capture_rounds
        );
        let res = rt.block_on(capture::run(counts.concurrent, counts.capture_rounds))?;
        let thr = ratio(res.on.rps(), res.off.rps());
        let lost = res.spans_expected.saturating_sub(res.on.spans_written);
        let failed = res.on.failed + res.off.failed;
        rows.push(Row {
            id: "5",
            what: format!(
                "capture under load: {} concurrent requests through ingress and egress",
                counts.concurrent
            ),
            ours: format!(
                "capture on: {:.0} req/s, {} of {} spans written",
                res.on.rps(),
                res.on.spans_written,
                res.spans_expected
            ),
            peer: format!("capture off: {:.0} req/s", res.off.rps()),
            ratio: format!("throughput {thr:.2}×, {lost} spans lost"),
            target: "0 lost, throughput ≥ 0.8×",
            met: judge(smoke, lost == 0 && failed == 0 && thr >= 0.8),
        });
        notes.push(format!(
            "row 5: failed requests: capture on {}, capture off {}",
            res.on.failed, res.off.failed
        ));
    }

    if wanted("6") {
        let bytes = support::sized_case(1024 * 1024);
        eprintln!("row 6: parse and index of a {} byte case", bytes.len());
        let (ours, peer) = parse::run(&bytes, counts.parse);
        let r = ratio(ours.p50().as_secs_f64(), peer.p50().as_secs_f64());
        rows.push(Row {
            id: "6",
            what: format!(
                "parse and index a {:.2} MiB case",
                bytes.len() as f64 / 1048576.0
            ),
            ours: fmt_dur(ours.p50()),
            peer: format!("serde_json::Value {}", fmt_dur(peer.p50())),
            ratio: format!("{r:.2}×"),
            target: "≤ 1.5×",
            met: judge(smoke, r <= 1.5),
        });
    }

    if wanted("7") {
        eprintln!("row 7: {} sessions with a 20 KB case", counts.sessions);
        let ours = memory::measure("sessions", counts.sessions)?;
        let raw = memory::measure("raw", counts.sessions)?;
        let r = ratio(ours.peak_kib as f64, raw.peak_kib as f64);
        rows.push(Row {
            id: "7",
            what: format!(
                "memory: {} replay sessions, each with a {} byte case",
                counts.sessions, ours.case_bytes
            ),
            ours: format!("peak RSS {:.1} MiB", ours.peak_kib as f64 / 1024.0),
            peer: format!(
                "raw bytes held: peak RSS {:.1} MiB",
                raw.peak_kib as f64 / 1024.0
            ),
            ratio: format!("{r:.2}×"),
            target: "≤ 3×",
            met: judge(smoke, r <= 3.0),
        });
    }

    if wanted("8") {
        eprintln!("row 8: suite of {} cases, 16 in flight", counts.suite_cases);
        let res = rt.block_on(suite::run(counts.suite_cases))?;
        rows.push(Row {
            id: "8",
            what: format!(
                "suite throughput: {} checkout cases through ingress and egress",
                res.cases
            ),
            ours: format!(
                "{:.0} cases/s ({} passed, {} failed)",
                res.cases_per_second, res.passed, res.failed
            ),
            peer: "-".into(),
            ratio: "-".into(),
            target: "≥ 1,000 cases/s",
            met: judge(
                smoke,
                res.failed == 0 && res.passed == res.cases && res.cases_per_second >= 1000.0,
            ),
        });
        notes.push(
            "row 8: the suite runner's library API (`softprobe suite run` without the process start), the runtime's control API, both proxies and the app in this process".into(),
        );
    }

    if wanted("9") {
        match shared::redis_program() {
            Some(program) => {
                eprintln!(
                    "row 9: Redis store vs in-memory: {} concurrent requests x {} rounds, {} replayed calls per store",
                    counts.concurrent, counts.capture_rounds, counts.calls
                );
                let res = rt.block_on(shared::run(
                    &program,
                    &price,
                    counts.concurrent,
                    counts.capture_rounds,
                    counts.calls,
                ))?;
                let thr = ratio(res.redis.on.rps(), res.memory.on.rps());
                let p50 = ratio(
                    res.redis_replay.p50().as_secs_f64(),
                    res.memory_replay.p50().as_secs_f64(),
                );
                let lost = res
                    .redis
                    .spans_expected
                    .saturating_sub(res.redis.on.spans_written);
                rows.push(Row {
                    id: "9",
                    what: format!(
                        "shared session store: capture of {} concurrent requests, replayed call through the egress",
                        counts.concurrent
                    ),
                    ours: format!(
                        "Redis: {:.0} req/s ({} of {} spans written); replay p50 {} / p99 {}",
                        res.redis.on.rps(),
                        res.redis.on.spans_written,
                        res.redis.spans_expected,
                        fmt_dur(res.redis_replay.p50()),
                        fmt_dur(res.redis_replay.p99())
                    ),
                    peer: format!(
                        "in-memory: {:.0} req/s; replay p50 {} / p99 {}",
                        res.memory.on.rps(),
                        fmt_dur(res.memory_replay.p50()),
                        fmt_dur(res.memory_replay.p99())
                    ),
                    ratio: format!("throughput {thr:.2}×, replay p50 {p50:.2}×, {lost} spans lost"),
                    target: "throughput ≥ 0.7×, p50 ≤ 1.2×",
                    met: judge(smoke, thr >= 0.7 && p50 <= 1.2 && lost == 0),
                });
            }
            None => {
                rows.push(Row {
                    id: "9",
                    what: "shared session store (Redis) vs in-memory".into(),
                    ours: "not measured".into(),
                    peer: "-".into(),
                    ratio: "-".into(),
                    target: "throughput ≥ 0.7×, p50 ≤ 1.2×",
                    met: None,
                });
                notes.push(
                    "row 9: redis-server is not installed (apt-get install redis-server; scripts/bench.sh installs it)".into(),
                );
            }
        }
    }

    if wanted("10") {
        if smoke && args.only.is_none() {
            // Two clean builds of a crate each: minutes, not a smoke test.
            notes.push(
                "row 10: not run by --smoke (two clean builds); run it with --only 10".into(),
            );
        } else {
            let load_before = support::load_average();
            let root = std::env::current_dir()
                .map_err(|e| format!("no current directory: {e}"))?
                .join("target/bench/build-cost");
            eprintln!(
                "row 10: build cost, {} tests per side, in {}",
                counts.build_tests,
                root.display()
            );
            let res = build_cost::run(&root, counts.build_tests)?;
            let load_after = support::load_average();
            let (s, w) = (&res.softprobe, &res.wiremock);
            let rebuild = ratio(s.rebuild.as_secs_f64(), w.rebuild.as_secs_f64());
            let size = ratio(s.binary_bytes as f64, w.binary_bytes as f64);
            let clean = ratio(s.clean.as_secs_f64(), w.clean.as_secs_f64());
            let mib = |b: u64| format!("{:.0} MiB", b as f64 / 1048576.0);
            let secs = |d: std::time::Duration| format!("{:.1} s", d.as_secs_f64());
            for (id, what, ours, peer, r, target, limit) in [
                (
                    "10a",
                    format!(
                        "incremental rebuild of a {}-test file after a one-line edit",
                        res.tests
                    ),
                    secs(s.rebuild),
                    secs(w.rebuild),
                    rebuild,
                    "≤ 1.2×",
                    1.2,
                ),
                (
                    "10b",
                    format!("size of that debug test binary ({} tests)", res.tests),
                    mib(s.binary_bytes),
                    mib(w.binary_bytes),
                    size,
                    "≤ 1.5×",
                    1.5,
                ),
                (
                    "10c",
                    "clean build: dev-dependencies and the test file".to_owned(),
                    secs(s.clean),
                    secs(w.clean),
                    clean,
                    "≤ 1.5×",
                    1.5,
                ),
            ] {
                rows.push(Row {
                    id,
                    what,
                    ours,
                    peer: format!("wiremock {peer}"),
                    ratio: format!("{r:.2}×"),
                    target,
                    met: judge(smoke, r <= limit),
                });
            }
            rows.push(Row {
                id: "10d",
                what: "crates in softprobe-test's normal dependency tree".into(),
                ours: res.harness_crates.to_string(),
                peer: "-".into(),
                ratio: "-".into(),
                target: "-",
                met: None,
            });
            notes.push(format!(
                "row 10: softprobe-test from {}; load average {load_before} before the row, {load_after} after it; rebuild: the fastest of {} one-line edits per side, the sides taking turns",
                res.source.display(),
                build_cost::EDITS
            ));
        }
    }

    let mut table = String::from(
        "| # | what | softprobe | peer (same run) | ratio | target | verdict |\n|---|---|---|---|---|---|---|\n",
    );
    for row in &rows {
        let _ = writeln!(table, "{}", row.markdown());
    }
    if !notes.is_empty() {
        table.push('\n');
        for n in &notes {
            let _ = writeln!(table, "- {n}");
        }
    }
    print!("{table}");
    if let Some(out) = &args.out {
        std::fs::write(out, &table).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    }
    Ok(())
}
