//! `softprobe cases get ID [--out FILE]`: the case file a capture session wrote, fetched from
//! the runtime (`GET /v1/captures/{sessionId}`), for machines that cannot read its disk.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::Ctx;
use super::output::{CliError, ExitCode, Outcome, create_parent};

/// `softprobe cases ...`
#[derive(Debug, Subcommand)]
pub enum CasesCommand {
    /// Fetch the case a closed capture session wrote; print it, or write it with --out.
    Get(GetArgs),
}

/// `cases get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// The capture session's id.
    pub session: String,
    /// Write the case here (missing directories are created) instead of printing it.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub(crate) fn run(ctx: &Ctx, cmd: CasesCommand) -> Result<Outcome, CliError> {
    let CasesCommand::Get(args) = cmd;
    let id = &args.session;
    let text = ctx.client()?.get_text(&format!("/v1/captures/{id}"))?;
    let case: Value = serde_json::from_str(&text).map_err(|e| {
        CliError::new(
            ExitCode::Failure,
            "invalid_response",
            format!("the runtime's capture of {id} is not JSON: {e}"),
        )
    })?;
    match &args.out {
        Some(path) => {
            create_parent(path)
                .and_then(|()| std::fs::write(path, text.as_bytes()))
                .map_err(|e| {
                    CliError::new(
                        ExitCode::Failure,
                        "write_failed",
                        format!("cannot write {}: {e}", path.display()),
                    )
                })?;
            let shown = path.display().to_string();
            Ok(Outcome::ok(
                json!({"sessionId": id, "casePath": shown}),
                Some(format!("wrote {shown}")),
            ))
        }
        None => Ok(Outcome::ok(
            json!({"sessionId": id, "case": case}),
            Some(text),
        )),
    }
}
