//! `softprobe view CASE`: the case page ([`crate::view`]) for one case file on a loopback
//! port, with the drift against `<case>.new` (or `--against`) when there is one. It runs until
//! interrupted; every load reads the files again, so a reviewed `.new` shows at once.

use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use super::Ctx;
use super::output::{self, CliError, ExitCode};
use crate::view::{CaseSource, case_router, random_key};

/// `view`.
#[derive(Debug, Args)]
pub struct ViewArgs {
    /// The case file.
    pub case: PathBuf,
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Open the page in the default browser.
    #[arg(long)]
    pub open: bool,
    /// Compare with this case instead of `<case>.new`.
    #[arg(long, value_name = "OTHER")]
    pub against: Option<PathBuf>,
}

pub(crate) fn run(ctx: &Ctx, args: &ViewArgs) -> u8 {
    let source = CaseSource {
        case: args.case.clone(),
        against: args.against.clone(),
        key: random_key(),
    };
    serve(ctx, vec![source], args.port, args.open)
}

/// Serves the page of every source on one loopback port until Ctrl-C; prints one URL per
/// source first (one JSON object with `--json`). Returns the exit code.
pub(crate) fn serve(ctx: &Ctx, sources: Vec<CaseSource>, port: u16, open: bool) -> u8 {
    for s in &sources {
        // Refuse to serve a page that could only show an error.
        if let Err(e) = s.data() {
            return output::emit(ctx.style, Err(CliError::invalid(e.to_string())));
        }
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return output::emit(
                ctx.style,
                Err(CliError::new(
                    ExitCode::Failure,
                    "io",
                    format!("cannot start: {e}"),
                )),
            );
        }
    };
    runtime.block_on(async move {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                return output::emit(
                    ctx.style,
                    Err(CliError::new(
                        ExitCode::Failure,
                        "bind_failed",
                        format!("cannot listen on {addr}: {e}"),
                    )),
                );
            }
        };
        let bound = listener.local_addr().unwrap_or(addr);
        let mut router = axum::Router::new();
        let mut pages = Vec::new();
        for s in sources {
            let url = format!("http://{bound}{}", s.base());
            pages.push(json!({"case": s.case.display().to_string(), "url": url}));
            router = router.merge(case_router(s));
        }
        announce(ctx, &pages);
        if open {
            for p in &pages {
                open_browser(p["url"].as_str().unwrap_or_default());
            }
        }
        let stop = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        match axum::serve(listener, router)
            .with_graceful_shutdown(stop)
            .await
        {
            Ok(()) => ExitCode::Ok as u8,
            Err(e) => output::emit(
                ctx.style,
                Err(CliError::new(ExitCode::Failure, "io", e.to_string())),
            ),
        }
    })
}

fn announce(ctx: &Ctx, pages: &[serde_json::Value]) {
    let mut out = std::io::stdout().lock();
    if ctx.style.json {
        let _ = writeln!(
            out,
            "{}",
            json!({"pages": pages, "status": "ok", "exitCode": 0})
        );
    } else {
        for p in pages {
            let _ = writeln!(
                out,
                "{}  {}",
                p["url"].as_str().unwrap_or_default(),
                p["case"].as_str().unwrap_or_default()
            );
        }
        let _ = writeln!(out, "Serving on loopback until Ctrl-C.");
    }
    let _ = out.flush();
}

fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    let spawned = if cfg!(windows) {
        std::process::Command::new("cmd")
            .args(["/C", "start", "", url])
            .spawn()
    } else {
        std::process::Command::new(opener).arg(url).spawn()
    };
    if let Err(e) = spawned {
        eprintln!("softprobe: could not open a browser ({e}); open {url} yourself");
    }
}
