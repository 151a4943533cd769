//! `softprobe replay run`: the replay twin of `capture run`. Start a replay session with a
//! case loaded (strict unless `--allow-external`), run the driver with `SOFTPROBE_SESSION_ID`
//! set, then report what the session answered and its verdict (strict misses, outbound
//! requests that drifted from their recording); exit 1 when the verdict fails, else with the
//! driver's code.

use std::path::PathBuf;

use clap::Args;
use serde_json::{Value, json};

use super::capture::{DriverArgs, start_driven};
use super::output::{CliError, ExitCode, Outcome};
use super::session::{StartArgs, close_session};
use super::{Ctx, read_file};
use crate::verdict::{SessionFindings, Verdict};

/// `replay run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The case file to answer from.
    #[arg(long)]
    pub case: PathBuf,
    /// The command that drives traffic, and for how long.
    #[command(flatten)]
    pub drive: DriverArgs,
    /// Rules (YAML or JSON) applied on top of the case.
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// Let calls the case cannot answer reach the network instead of failing with 599.
    #[arg(long)]
    pub allow_external: bool,
}

pub(crate) fn run(ctx: &Ctx, args: &RunArgs) -> Result<Outcome, CliError> {
    // Read the case first: a bad path fails before a session exists.
    read_file(&args.case)?;
    let policy = if args.allow_external {
        None
    } else {
        let file = tempfile::Builder::new()
            .prefix("softprobe-policy-")
            .suffix(".json")
            .tempfile()
            .map_err(|e| CliError::new(ExitCode::Failure, "io_error", e.to_string()))?;
        std::fs::write(file.path(), br#"{"externalHttp": "strict"}"#)
            .map_err(|e| CliError::new(ExitCode::Failure, "io_error", e.to_string()))?;
        Some(file)
    };
    let start = StartArgs::new(
        "replay",
        policy.as_ref().map(|f| f.path().to_owned()),
        Some(args.case.clone()),
        args.rules.clone(),
    );
    let (session, driver) = start_driven(ctx, &start, &args.drive, "replaying")?;
    let state = ctx
        .client()?
        .get(&format!("/v1/sessions/{session}/state"))
        .unwrap_or(Value::Null);
    close_session(ctx, &session, None)?;
    let (code, timed_out) = driver?;

    let misses = state["strictMisses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let stats = &state["stats"];
    let found = SessionFindings::from_state(&state)
        .map_err(|e| CliError::new(ExitCode::Failure, "runtime_error", e))?;
    let mut verdict = Verdict::new("replay run", args.case.display().to_string());
    verdict.add_session(found, false);
    let mut human = format!(
        "Replayed {} against session {session}: {} answered from the case or rules, {} strict miss(es), {} drifted request(s)\n",
        args.case.display(),
        stats["injectedSpans"],
        stats["strictMisses"],
        stats["requestDrift"]
    );
    if !verdict.passed()
        || !verdict.warnings.is_empty()
        || (ctx.style.verbose && !verdict.volatile.is_empty())
    {
        if ctx.style.verbose {
            human.push_str(&format!("{verdict:#}"));
        } else {
            human.push_str(&verdict.to_string());
        }
    }
    if timed_out {
        human.push_str("driver stopped by --timeout\n");
    }
    if code != 0 {
        human.push_str(&format!("driver exited with code {code}\n"));
    }
    let outcome = Outcome::ok(
        json!({
            "sessionId": session,
            "case": args.case.display().to_string(),
            "driverExitCode": code,
            "timedOut": timed_out,
            "stats": stats,
            "strictMisses": misses,
            "requestDrift": state["requestDrift"],
            "passed": verdict.passed(),
        }),
        Some(human),
    );
    Ok(if !verdict.passed() {
        outcome.with_exit(ExitCode::Failure)
    } else {
        outcome.with_raw_exit(u8::try_from(code).unwrap_or(1))
    })
}
