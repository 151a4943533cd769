//! `softprobe-runtime`: the session store, JSON control API and proxy OTLP API on one port.
//!
//! Flags mirror the environment (`SOFTPROBE_LISTEN_ADDR`, `SOFTPROBE_CAPTURE_CASE_PATH`,
//! `SOFTPROBE_API_TOKEN`, `SOFTPROBE_LOG`); the work is [`softprobe_runtime::Server`].
//! SIGINT/SIGTERM flush open capture sessions to their case files, then exit 0.

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use softprobe_runtime::Server;
use softprobe_runtime::control::DEFAULT_BODY_LIMIT;

/// Every flag of the binary, in one place.
#[derive(Debug, Parser)]
#[command(
    name = "softprobe-runtime",
    version,
    about = "softprobe runtime: sessions, control API, proxy OTLP API"
)]
struct Flags {
    /// Address of the control API and OTLP API.
    #[arg(long, env = "SOFTPROBE_LISTEN_ADDR", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,

    /// Where `close` writes capture sessions without `?out=`; `{sessionId}`, `{ts}`, `{mode}`
    /// are replaced [default: e2e/captured.case.json].
    #[arg(long, env = "SOFTPROBE_CAPTURE_CASE_PATH")]
    capture_case_path: Option<String>,

    /// Bearer token every /v1/ route requires (prefer the environment variable: flags show
    /// up in process listings).
    #[arg(long, env = "SOFTPROBE_API_TOKEN", hide_env_values = true)]
    api_token: Option<String>,

    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `softprobe_runtime=debug`.
    #[arg(long, env = "SOFTPROBE_LOG", default_value = "info")]
    log: String,

    /// Request body limit in bytes.
    #[arg(long, default_value_t = DEFAULT_BODY_LIMIT)]
    body_limit: usize,
}

fn main() -> ExitCode {
    let flags = Flags::parse();
    let filter = match tracing_subscriber::EnvFilter::try_new(&flags.log) {
        Ok(filter) => filter,
        Err(err) => {
            eprintln!(
                "softprobe-runtime: invalid --log / SOFTPROBE_LOG filter {:?}: {err}",
                flags.log
            );
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("softprobe-runtime: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(flags))
}

async fn run(flags: Flags) -> ExitCode {
    let server = match Server::builder()
        .listen(flags.listen)
        .token(flags.api_token)
        .capture_path(flags.capture_case_path)
        .body_limit(flags.body_limit)
        .start()
        .await
    {
        Ok(server) => server,
        Err(err) => {
            eprintln!("softprobe-runtime: {err}");
            return ExitCode::FAILURE;
        }
    };

    let signal = wait_for_signal().await;
    tracing::info!("received {signal}: flushing capture sessions and stopping");
    let mut failed = false;
    for flushed in server.flush_captures() {
        match &flushed.result {
            Ok(()) => tracing::info!(
                sessionId = %flushed.session_id,
                path = %flushed.path.display(),
                "wrote capture"
            ),
            Err(err) => {
                failed = true;
                tracing::error!(sessionId = %flushed.session_id, "{err}");
            }
        }
    }
    server.shutdown().await;
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(unix)]
async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(err) => {
            tracing::warn!("cannot listen for SIGTERM: {err}");
            let _ = tokio::signal::ctrl_c().await;
            return "SIGINT";
        }
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = tokio::signal::ctrl_c() => "SIGINT",
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() -> &'static str {
    let _ = tokio::signal::ctrl_c().await;
    "Ctrl-C"
}
