//! `softprobe-bench`: softprobe against the tools a Rust team would otherwise use, each row a
//! ratio to a peer measured in the same run on the same machine. `--smoke` runs every row
//! with tiny counts and no targets (CI); `scripts/bench.sh` runs the full set in release.
//!
//! Every row is listed once, in [`ROWS`]. Internal subcommands (`serve-app`, `serve-ingress`,
//! `serve-hyper-proxy`, `mem`, `serve-capture`, `scrub-case`) are the child processes of rows
//! 4, 7 and 10; `serve-affine-proxy` (a bare proxy with one upstream
//! connection per client connection) and `SOFTPROBE_BENCH_SHARDS=N` (the bare proxies on N
//! current-thread runtimes) are there to measure the stack by hand.

mod build_cost;
mod capture;
mod egress;
mod ingress;
mod large_capture;
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
    /// Seconds of wrk filling the capture of row 10.
    capture_secs: u64,
    /// Tests per side of row 11's generated crates.
    build_tests: usize,
}

const FULL: Counts = Counts {
    overhead: 300,
    calls: 3000,
    wrk_secs: 5,
    wrk_rounds: 3,
    concurrent: 2000,
    capture_rounds: 3,
    parse: 30,
    sessions: 1000,
    suite_cases: 1000,
    capture_secs: 4,
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
    capture_secs: 1,
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
         --only    run only these rows (1, 1b, 2-4, 4b, 5-10, 10b, 10c, 11)\n\
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
        Some("serve-collector") => large_capture::serve_collector(),
        Some("serve-capture") => {
            let upstream = argv.get(1).unwrap_or_else(|| usage());
            large_capture::serve_capture(upstream)
        }
        Some("scrub-case") => {
            let how = argv.get(1).unwrap_or_else(|| usage());
            let path = argv.get(2).unwrap_or_else(|| usage());
            // `export` builds the CLI's HTTP client.
            support::install_tls_provider();
            if let Err(e) = large_capture::scrub_case(how, path, argv.get(3).map(String::as_str)) {
                eprintln!("softprobe-bench scrub-case: {e}");
                std::process::exit(1);
            }
            return;
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

/// What every row measures with, and the table it adds to.
struct Ctx<'a> {
    args: &'a Args,
    counts: Counts,
    smoke: bool,
    rt: tokio::runtime::Runtime,
    dir: tempfile::TempDir,
    price: softprobe_runtime::case::Case,
    rows: Vec<Row>,
    notes: Vec<String>,
}

impl Ctx<'_> {
    /// Whether `--only` asks for this row (every row without `--only`).
    fn wanted(&self, id: &str) -> bool {
        self.args
            .only
            .as_ref()
            .is_none_or(|o| o.iter().any(|x| x == id))
    }
}

/// Measures one group of rows, adding them (and their notes) to the table.
type Measure = fn(&mut Ctx<'_>) -> Result<(), String>;

/// Every row of the table, in the order it prints: the row ids a function produces (what
/// `--only` names) and that function. A new row is one entry here and its function.
const ROWS: &[(&[&str], Measure)] = &[
    (&["1", "1b"], rows_overhead),
    (&["2", "3"], rows_egress),
    (&["4", "4b"], row_ingress),
    (&["5"], row_capture),
    (&["6"], row_parse),
    (&["7"], row_memory),
    (&["8"], row_suite),
    (&["9"], row_shared_store),
    (&["10", "10b", "10c"], rows_large_capture),
    (&["11", "11b", "11c", "11d"], rows_build_cost),
];

fn run(args: &Args) -> Result<(), String> {
    let mut counts = if args.smoke { SMOKE } else { FULL };
    if let Some(n) = args.count {
        counts.overhead = n;
        counts.calls = n;
    }
    if let Some(only) = &args.only
        && let Some(unknown) = only
            .iter()
            .find(|id| !ROWS.iter().any(|(ids, _)| ids.contains(&id.as_str())))
    {
        return Err(format!(
            "--only {unknown:?}: no such row (rows: {})",
            ROWS.iter()
                .flat_map(|(ids, _)| ids.iter().copied())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let mut ctx = Ctx {
        args,
        counts,
        smoke: args.smoke,
        rt: tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start a tokio runtime: {e}"))?,
        dir: tempfile::tempdir().map_err(|e| format!("cannot create a temp dir: {e}"))?,
        price: support::price_case(),
        rows: Vec::new(),
        notes: Vec::new(),
    };

    for (ids, measure) in ROWS {
        if ids.iter().any(|id| ctx.wanted(id)) {
            measure(&mut ctx)?;
        }
    }

    let mut table = String::from(
        "| # | what | softprobe | peer (same run) | ratio | target | verdict |\n|---|---|---|---|---|---|---|\n",
    );
    for row in &ctx.rows {
        let _ = writeln!(table, "{}", row.markdown());
    }
    if !ctx.notes.is_empty() {
        table.push('\n');
        for n in &ctx.notes {
            let _ = writeln!(table, "- {n}");
        }
    }
    print!("{table}");
    if let Some(out) = &args.out {
        std::fs::write(out, &table).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    }
    Ok(())
}

fn rows_overhead(ctx: &mut Ctx<'_>) -> Result<(), String> {
    let path = ctx.dir.path().join("price.case.json");
    ctx.price
        .write(&path)
        .map_err(|e| format!("cannot write the bench case: {e}"))?;
    // The harness takes a case file it has read before from memory once the file has
    // settled: its last change at least two seconds before the read, so that the file's
    // times stand for its bytes (git's rule for "racily clean" files). Until then it reads
    // and compares the bytes on every test. A suite's checked-in cases settled long ago;
    // the file written just above would keep every test of a short run on the slow path,
    // so the rows start once it has settled.
    std::thread::sleep(std::time::Duration::from_millis(2_500));
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
        if !ctx.wanted(id) {
            continue;
        }
        eprintln!(
            "row {id}: per-test overhead ({} tests per side)",
            ctx.counts.overhead
        );
        let (ours, peer) = overhead::run(&path, ctx.counts.overhead, clients);
        let r = ratio(ours.p50().as_secs_f64(), peer.p50().as_secs_f64());
        ctx.rows.push(Row {
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
            met: judge(ctx.smoke, r <= 0.5),
        });
    }
    Ok(())
}

fn rows_egress(ctx: &mut Ctx<'_>) -> Result<(), String> {
    eprintln!(
        "rows 2-3: serial replayed calls ({} per side)",
        ctx.counts.calls
    );
    let res = ctx.rt.block_on(egress::run(&ctx.price, ctx.counts.calls));
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
    ctx.rows.push(Row {
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
        met: judge(ctx.smoke, r2 <= 1.15),
    });
    ctx.rows.push(Row {
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
        met: judge(ctx.smoke, r3 <= 0.9),
    });
    ctx.notes.push(format!(
        "rows 2-3: {} serial calls per side",
        res.replay.len()
    ));
    Ok(())
}

fn row_ingress(ctx: &mut Ctx<'_>) -> Result<(), String> {
    if ingress::tools_present() {
        eprintln!(
            "rows 4, 4b: wrk -c64, {} s x {} rounds per side",
            ctx.counts.wrk_secs, ctx.counts.wrk_rounds
        );
        let res = ingress::run(ctx.counts.wrk_secs, ctx.counts.wrk_rounds)?;
        let show = |l: &ingress::Load| {
            format!(
                "{:.0} req/s, p50 {} / p99 {}",
                l.rps,
                fmt_dur(l.p50),
                fmt_dur(l.p99)
            )
        };
        let compare = |ours: &ingress::Load, peer: &ingress::Load| {
            let thr = ratio(ours.rps, peer.rps);
            let p50 = ratio(ours.p50.as_secs_f64(), peer.p50.as_secs_f64());
            let p99 = ratio(ours.p99.as_secs_f64(), peer.p99.as_secs_f64());
            (
                format!("throughput {thr:.2}×, p50 {p50:.2}×, p99 {p99:.2}×"),
                thr >= 1.0 && p99 <= 1.0,
            )
        };
        for (id, what, ours, peer) in [
            (
                "4",
                "ingress proxy hop under wrk (64 connections), with a session header",
                &res.ingress,
                &res.nginx,
            ),
            (
                "4b",
                "ingress proxy hop under wrk (64 connections), no session header",
                &res.ingress_plain,
                &res.nginx_plain,
            ),
        ] {
            let (o, p) = (ours.median(), peer.median());
            let (ratio, met) = compare(&o, &p);
            ctx.rows.push(Row {
                id,
                what: what.into(),
                ours: show(&o),
                peer: format!("nginx {}", show(&p)),
                ratio,
                target: "throughput ≥ 1.0×, p99 ≤ 1.0×",
                met: judge(ctx.smoke, met),
            });
        }
        let (lo, hi) = res.ingress.load_range();
        ctx.notes.push(format!(
            "rows 4, 4b: medians of {} wrk runs of {} s per side, nginx and ours in turn; \
             load average {lo:.1}-{hi:.1} at the end of our runs. Same rounds: the app \
             alone {}; bare hyper proxies on one current-thread runtime per CPU \
             (`SO_REUSEPORT` listeners, no softprobe logic): hyper-util pooled client {}, \
             one upstream connection per client connection on its task {}; non-2xx or \
             socket errors: ingress {}, nginx {}",
            ctx.counts.wrk_rounds,
            ctx.counts.wrk_secs,
            show(&res.direct.median()),
            show(&res.bare_hyper.median()),
            show(&res.bare_affine.median()),
            res.ingress.median().errors + res.ingress_plain.median().errors,
            res.nginx.median().errors + res.nginx_plain.median().errors,
        ));
        for (name, with, without) in &res.variants {
            let (w, n) = (with.median(), without.median());
            ctx.notes.push(format!(
                "rows 4, 4b: variant {name}: with the header {} ({}), without {} ({})",
                show(&w),
                compare(&w, &res.nginx.median()).0,
                show(&n),
                compare(&n, &res.nginx_plain.median()).0,
            ));
        }
    } else {
        ctx.rows.push(Row {
            id: "4, 4b",
            what: "ingress proxy hop under wrk (64 connections)".into(),
            ours: "not run".into(),
            peer: "not run".into(),
            ratio: "-".into(),
            target: "throughput ≥ 1.0×, p99 ≤ 1.0×",
            met: None,
        });
        ctx.notes.push(
            "rows 4, 4b: wrk or nginx is not installed (scripts/bench.sh installs them)".into(),
        );
    }
    Ok(())
}

fn row_capture(ctx: &mut Ctx<'_>) -> Result<(), String> {
    eprintln!(
        "row 5: {} concurrent requests x {} rounds per side",
        ctx.counts.concurrent, ctx.counts.capture_rounds
    );
    let res = ctx.rt.block_on(capture::run(
        ctx.counts.concurrent,
        ctx.counts.capture_rounds,
    ))?;
    let thr = ratio(res.on.rps(), res.off.rps());
    let lost = res.spans_expected.saturating_sub(res.on.spans_written);
    let failed = res.on.failed + res.off.failed;
    ctx.rows.push(Row {
        id: "5",
        what: format!(
            "capture under load: {} concurrent requests through ingress and egress",
            ctx.counts.concurrent
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
        met: judge(ctx.smoke, lost == 0 && failed == 0 && thr >= 0.8),
    });
    ctx.notes.push(format!(
        "row 5: failed requests: capture on {}, capture off {}",
        res.on.failed, res.off.failed
    ));
    Ok(())
}

fn row_parse(ctx: &mut Ctx<'_>) -> Result<(), String> {
    let bytes = support::sized_case(1024 * 1024);
    eprintln!("row 6: parse and index of a {} byte case", bytes.len());
    let (ours, peer) = parse::run(&bytes, ctx.counts.parse);
    let r = ratio(ours.p50().as_secs_f64(), peer.p50().as_secs_f64());
    ctx.rows.push(Row {
        id: "6",
        what: format!(
            "parse and index a {:.2} MiB case",
            bytes.len() as f64 / 1048576.0
        ),
        ours: fmt_dur(ours.p50()),
        peer: format!("serde_json::Value {}", fmt_dur(peer.p50())),
        ratio: format!("{r:.2}×"),
        target: "≤ 1.5×",
        met: judge(ctx.smoke, r <= 1.5),
    });
    Ok(())
}

fn row_memory(ctx: &mut Ctx<'_>) -> Result<(), String> {
    eprintln!("row 7: {} sessions with a 20 KB case", ctx.counts.sessions);
    let ours = memory::measure("sessions", ctx.counts.sessions)?;
    let raw = memory::measure("raw", ctx.counts.sessions)?;
    let r = ratio(ours.peak_kib as f64, raw.peak_kib as f64);
    ctx.rows.push(Row {
        id: "7",
        what: format!(
            "memory: {} replay sessions, each with a {} byte case",
            ctx.counts.sessions, ours.case_bytes
        ),
        ours: format!("peak RSS {:.1} MiB", ours.peak_kib as f64 / 1024.0),
        peer: format!(
            "raw bytes held: peak RSS {:.1} MiB",
            raw.peak_kib as f64 / 1024.0
        ),
        ratio: format!("{r:.2}×"),
        target: "≤ 3×",
        met: judge(ctx.smoke, r <= 3.0),
    });
    Ok(())
}

fn row_suite(ctx: &mut Ctx<'_>) -> Result<(), String> {
    eprintln!(
        "row 8: suite of {} cases, 16 in flight",
        ctx.counts.suite_cases
    );
    let res = ctx.rt.block_on(suite::run(ctx.counts.suite_cases))?;
    ctx.rows.push(Row {
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
            ctx.smoke,
            res.failed == 0 && res.passed == res.cases && res.cases_per_second >= 1000.0,
        ),
    });
    ctx.notes.push(
        "row 8: the suite runner's library API (`softprobe suite run` without the process start), the runtime's control API, both proxies and the app in this process".into(),
    );
    Ok(())
}

fn row_shared_store(ctx: &mut Ctx<'_>) -> Result<(), String> {
    match shared::redis_program() {
        Some(program) => {
            eprintln!(
                "row 9: Redis store vs in-memory: {} concurrent requests x {} rounds, {} replayed calls per store",
                ctx.counts.concurrent, ctx.counts.capture_rounds, ctx.counts.calls
            );
            let res = ctx.rt.block_on(shared::run(
                &program,
                &ctx.price,
                ctx.counts.concurrent,
                ctx.counts.capture_rounds,
                ctx.counts.calls,
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
            ctx.rows.push(Row {
                id: "9",
                what: format!(
                    "shared session store: capture of {} concurrent requests, replayed call through the egress",
                    ctx.counts.concurrent
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
                met: judge(ctx.smoke, thr >= 0.7 && p50 <= 1.2 && lost == 0),
            });
        }
        None => {
            ctx.rows.push(Row {
                id: "9",
                what: "shared session store (Redis) vs in-memory".into(),
                ours: "not measured".into(),
                peer: "-".into(),
                ratio: "-".into(),
                target: "throughput ≥ 0.7×, p50 ≤ 1.2×",
                met: None,
            });
            ctx.notes.push(
                "row 9: redis-server is not installed (apt-get install redis-server; scripts/bench.sh installs it)".into(),
            );
        }
    }
    Ok(())
}

fn rows_large_capture(ctx: &mut Ctx<'_>) -> Result<(), String> {
    let what = "large-capture close: a capture session filled by wrk through the ingress";
    let target = "peak ≤ 1.5×, after ≤ 1.0× the RSS before; ≤ 1 s per 100 MB";
    if !ingress::tools_present() {
        ctx.rows.push(Row {
            id: "10",
            what: what.into(),
            ours: "not run".into(),
            peer: "not run".into(),
            ratio: "-".into(),
            target,
            met: None,
        });
        ctx.notes
            .push("row 10: wrk is not installed (scripts/bench.sh installs it)".into());
        return Ok(());
    }
    eprintln!(
        "rows 10-10c: {} s of wrk into a capture session, then its close, scrubs and an export of the case",
        ctx.counts.capture_secs
    );
    let (close, scrub) = large_capture::run(ctx.counts.capture_secs)?;
    let mib = |kib: u64| kib as f64 / 1024.0;
    let mb = |bytes: u64| bytes as f64 / 1e6;
    let judged = |s: &large_capture::Step| {
        s.peak_ratio() <= 1.5 && s.after_ratio() <= 1.0 && s.secs_per_100mb() <= 1.0
    };
    let ratios = |s: &large_capture::Step| {
        format!(
            "peak {:.2}×, after {:.2}×, {:.2} s per 100 MB",
            s.peak_ratio(),
            s.after_ratio(),
            s.secs_per_100mb()
        )
    };
    ctx.rows.push(Row {
        id: "10",
        what: format!("{what} ({} hops), closed into a case", close.hops),
        ours: format!(
            "{:.1} MB written in {}; RSS peak {:.1} MiB, after {:.1} MiB",
            mb(close.bytes),
            fmt_dur(close.took),
            mib(close.peak_kib),
            mib(close.after_kib)
        ),
        peer: format!("RSS before the close {:.1} MiB", mib(close.before_kib)),
        ratio: ratios(&close),
        target,
        met: judge(ctx.smoke, judged(&close)),
    });
    let (parsed, streamed, export) = (scrub.parsed, scrub.streamed, scrub.export);
    // The peer of rows 10b and 10c: a process holding the parsed case, what the commands
    // needed before they went through a case one trace document at a time.
    let held = parsed.before_kib.max(1) as f64;
    let lean = |s: &large_capture::Step| {
        format!(
            "peak {:.2}× the RSS holding the parsed case, {:.2} s per 100 MB",
            s.peak_kib as f64 / held,
            s.secs_per_100mb()
        )
    };
    let lean_met =
        |s: &large_capture::Step| s.peak_kib as f64 / held <= 1.5 && s.secs_per_100mb() <= 1.0;
    ctx.rows.push(Row {
        id: "10b",
        what: format!(
            "`softprobe scrub` of that case, one trace document at a time (read, scrub, rewrite; {} spans, {} findings)",
            parsed.hops, streamed.hops
        ),
        ours: format!(
            "{:.1} MB in {}; RSS peak {:.1} MiB",
            mb(streamed.bytes),
            fmt_dur(streamed.took),
            mib(streamed.peak_kib),
        ),
        peer: format!(
            "the whole case parsed, scrubbed, written: {} ({:.2} s per 100 MB), RSS holding the parsed case {:.1} MiB, peak {:.1} MiB",
            fmt_dur(parsed.took),
            parsed.secs_per_100mb(),
            mib(parsed.before_kib),
            mib(parsed.peak_kib)
        ),
        ratio: lean(&streamed),
        target: "peak ≤ 1.5× the RSS holding the parsed case; ≤ 1 s per 100 MB",
        met: judge(ctx.smoke, lean_met(&streamed)),
    });
    ctx.rows.push(Row {
        id: "10c",
        what: "`softprobe export otlp` of that case to a collector on loopback (OTLP/JSON, consecutive trace documents batched up to 4 MiB per POST; the collector reads every body)".into(),
        ours: format!(
            "{:.1} MB in {}; RSS peak {:.1} MiB",
            mb(export.bytes),
            fmt_dur(export.took),
            mib(export.peak_kib),
        ),
        peer: format!("RSS holding the parsed case {:.1} MiB", mib(parsed.before_kib)),
        ratio: lean(&export),
        target: "peak ≤ 1.5× the RSS holding the parsed case; ≤ 1 s per 100 MB",
        met: judge(ctx.smoke, lean_met(&export)),
    });
    ctx.notes.push(
        "rows 10-10c: each figure is the process's own `/proc/self/status` (`VmRSS`; `VmHWM` reset through `clear_refs` just before the step); the capture runs in a child process (`serve-capture`) as the standalone runtime holds it (in-memory store, ingress on one thread per CPU), each scrub and the export in another (`scrub-case`; a scrub rule matching every hop's URL makes every span change, so the file is rewritten; the collector, `serve-collector`, reads each request body whole and answers 200)".into(),
    );
    Ok(())
}

fn rows_build_cost(ctx: &mut Ctx<'_>) -> Result<(), String> {
    if ctx.smoke && ctx.args.only.is_none() {
        // Two clean builds of a crate each: minutes, not a smoke test.
        ctx.notes
            .push("row 11: not run by --smoke (two clean builds); run it with --only 11".into());
    } else {
        let load_before = support::load_average();
        let root = std::env::current_dir()
            .map_err(|e| format!("no current directory: {e}"))?
            .join("target/bench/build-cost");
        eprintln!(
            "row 11: build cost, {} tests per side, in {}",
            ctx.counts.build_tests,
            root.display()
        );
        let res = build_cost::run(&root, ctx.counts.build_tests)?;
        let load_after = support::load_average();
        let (s, w) = (&res.softprobe, &res.wiremock);
        let rebuild = ratio(s.rebuild.as_secs_f64(), w.rebuild.as_secs_f64());
        let size = ratio(s.binary_bytes as f64, w.binary_bytes as f64);
        let clean = ratio(s.clean.as_secs_f64(), w.clean.as_secs_f64());
        let mib = |b: u64| format!("{:.0} MiB", b as f64 / 1048576.0);
        let secs = |d: std::time::Duration| format!("{:.1} s", d.as_secs_f64());
        for (id, what, ours, peer, r, target, limit) in [
            (
                "11",
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
                "11b",
                format!("size of that debug test binary ({} tests)", res.tests),
                mib(s.binary_bytes),
                mib(w.binary_bytes),
                size,
                "≤ 1.5×",
                1.5,
            ),
            (
                "11c",
                "clean build: dev-dependencies and the test file".to_owned(),
                secs(s.clean),
                secs(w.clean),
                clean,
                "≤ 1.5×",
                1.5,
            ),
        ] {
            ctx.rows.push(Row {
                id,
                what,
                ours,
                peer: format!("wiremock {peer}"),
                ratio: format!("{r:.2}×"),
                target,
                met: judge(ctx.smoke, r <= limit),
            });
        }
        ctx.rows.push(Row {
            id: "11d",
            what: "crates in softprobe-test's normal dependency tree".into(),
            ours: res.harness_crates.to_string(),
            peer: "-".into(),
            ratio: "-".into(),
            target: "-",
            met: None,
        });
        ctx.notes.push(format!(
            "row 11: softprobe-test from {}; load average {load_before} before the row, {load_after} after it; rebuild: the fastest of {} one-line edits per side, the sides taking turns",
            res.source.display(),
            build_cost::EDITS
        ));
    }
    Ok(())
}
