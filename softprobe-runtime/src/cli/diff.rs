//! `softprobe diff A B`: two case files compared hop by hop ([`crate::case::diff`]): hops
//! added, removed and changed with their field paths; ids, trace and span ids and timestamps
//! never count. Exit 0 when the cases hold the same hops, 1 when they differ.

use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use super::output::{CliError, ExitCode, Outcome};
use crate::case::diff;
use crate::view::read_hops;

/// `diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The first case (the recorded one).
    pub a: PathBuf,
    /// The second case (the new one).
    pub b: PathBuf,
}

pub(crate) fn run(args: &DiffArgs) -> Result<Outcome, CliError> {
    let (_, left) = read_hops(&args.a).map_err(|e| CliError::invalid(e.to_string()))?;
    let (_, right) = read_hops(&args.b).map_err(|e| CliError::invalid(e.to_string()))?;
    let d = diff::compare(&left, &right);
    let equal = d.is_equal();
    let human = if equal {
        format!(
            "{} and {} hold the same {} hop(s)",
            args.a.display(),
            args.b.display(),
            d.hops.len()
        )
    } else {
        format!(
            "--- {}\n+++ {}\n{}",
            args.a.display(),
            args.b.display(),
            d.render_text()
        )
    };
    let outcome = Outcome::ok(
        json!({
            "a": args.a.display().to_string(),
            "b": args.b.display().to_string(),
            "equal": equal,
            "hops": d.hops,
        }),
        Some(human),
    );
    Ok(if equal {
        outcome
    } else {
        outcome.with_exit(ExitCode::Failure)
    })
}
