//! `softprobe capture run`: the guide's steps 1–3 in one command. Start a capture session,
//! run the driver with `SOFTPROBE_SESSION_ID` set, close the session, write the case, print
//! the inspect table, and exit with the driver's code.

use std::io::IsTerminal as _;
use std::os::fd::AsFd as _;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::json;

use super::output::{CliError, ExitCode, Outcome};
use super::session::{StartArgs, close_session, start_session};
use super::{Ctx, inspect};
use crate::case::Case;

/// `capture run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The command that drives traffic, and for how long.
    #[command(flatten)]
    pub drive: DriverArgs,
    /// Where to write the case file.
    #[arg(long)]
    pub out: PathBuf,
    /// Redaction rules (YAML or JSON) applied before any traffic.
    #[arg(long)]
    pub redact_file: Option<PathBuf>,
}

/// The driver of `capture run` and `replay run`: the command whose traffic the session sees.
#[derive(Debug, Args)]
pub struct DriverArgs {
    /// The command that drives traffic (run with `sh -c`).
    #[arg(long)]
    pub driver: String,
    /// The ingress URL the driver should send traffic to (given to it as SOFTPROBE_TARGET).
    #[arg(long)]
    pub target: Option<String>,
    /// Stop the driver after this many seconds (the session is still closed, and a capture
    /// written).
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
}

pub(crate) fn run(ctx: &Ctx, args: &RunArgs) -> Result<Outcome, CliError> {
    let start = StartArgs::new("capture", None, None, args.redact_file.clone());
    let (session, driver) = start_driven(ctx, &start, &args.drive, "capturing into")?;
    // Close even when the driver failed: what it captured so far is worth keeping.
    let closed = close_session(ctx, &session, Some(&args.out))?;
    let (code, timed_out) = driver?;

    let bytes = std::fs::read(&args.out).map_err(|e| {
        CliError::new(
            ExitCode::Failure,
            "case_not_written",
            format!(
                "the runtime closed session {session} but {} cannot be read: {e} (is the runtime on another machine? then the case is on its disk at {})",
                args.out.display(),
                closed["casePath"]
            ),
        )
    })?;
    let source = args.out.display().to_string();
    let case =
        Case::from_slice_named(&bytes, &source).map_err(|e| CliError::invalid(e.to_string()))?;
    let rows = inspect::rows(&inspect::ordered_exchanges(&case, &source)?);
    let mut human = inspect::summary(&case, &rows, false);
    if timed_out {
        human.push_str(&format!(
            "\ndriver stopped after {}s (--timeout)",
            args.drive.timeout.unwrap_or(0)
        ));
    }
    if code != 0 {
        human.push_str(&format!("\ndriver exited with code {code}"));
    }
    let outcome = Outcome::ok(
        json!({
            "sessionId": session,
            "casePath": source,
            "driverExitCode": code,
            "timedOut": timed_out,
            "traces": case.traces.len(),
            "spans": rows.len(),
            "rows": rows,
        }),
        Some(human),
    );
    // The process exits with the driver's own code, as the guide promises.
    Ok(outcome.with_raw_exit(u8::try_from(code).unwrap_or(1)))
}

/// Starts a session and runs the driver against it; returns the session id and what
/// [`run_driver`] returned, for the caller to close the session whatever the driver did.
pub(crate) fn start_driven(
    ctx: &Ctx,
    start: &StartArgs,
    drive: &DriverArgs,
    verb: &str,
) -> Result<(String, DriverExit), CliError> {
    let started = start_session(ctx, start)?;
    let session = started["sessionId"].as_str().unwrap_or_default().to_owned();
    let driven = run_driver(ctx, drive, &session, verb);
    Ok((session, driven))
}

/// How a driver ended: its exit code and whether its timeout stopped it.
pub(crate) type DriverExit = Result<(i32, bool), CliError>;

/// Runs a driver command with the session in its environment.
fn run_driver(ctx: &Ctx, drive: &DriverArgs, session: &str, verb: &str) -> DriverExit {
    let driver = drive.driver.as_str();
    let timeout = drive.timeout.map(Duration::from_secs);
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg(driver)
        .env("SOFTPROBE_SESSION_ID", session)
        .env("SOFTPROBE_RUNTIME_URL", &ctx.runtime_url)
        .stdin(Stdio::null());
    if let Some(t) = &drive.target {
        cmd.env("SOFTPROBE_TARGET", t);
    }
    // With --json, stdout carries exactly one JSON object: the driver's output goes to stderr.
    if ctx.style.json {
        cmd.stdout(Stdio::from(
            std::io::stderr()
                .as_fd()
                .try_clone_to_owned()
                .map_err(|e| CliError::new(ExitCode::Failure, "driver_failed", e.to_string()))?,
        ));
    }
    let mut child = cmd.spawn().map_err(|e| {
        CliError::new(
            ExitCode::Failure,
            "driver_failed",
            format!("cannot start the driver `{driver}`: {e}"),
        )
    })?;
    let spinner = (std::io::stderr().is_terminal() && !ctx.style.quiet).then(|| {
        let pb = indicatif::ProgressBar::new_spinner();
        pb.set_message(format!("{verb} {session}: {driver}"));
        pb.enable_steady_tick(Duration::from_millis(120));
        pb
    });
    let deadline = timeout.map(|t| Instant::now() + t);
    let result = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok((status.code().unwrap_or(1), false)),
            Ok(None) => {}
            Err(e) => {
                break Err(CliError::new(
                    ExitCode::Failure,
                    "driver_failed",
                    e.to_string(),
                ));
            }
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = child.kill();
            let _ = child.wait();
            break Ok((124, true));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    if let Some(pb) = spinner {
        pb.finish_and_clear();
    }
    result
}
