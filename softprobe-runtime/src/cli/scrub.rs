//! `softprobe scrub FILE...`: redact likely secrets in case files in place (atomic rewrite),
//! or with `--check` only report them and exit 1, so CI can refuse a leaky case. `--rules`
//! adds a project's own patterns, body fields and headers to the built-in ones.

use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use super::output::{CliError, ExitCode, Outcome};
use crate::case::CaseError;
use crate::scrub::{ScrubMode, ScrubRules, scrub_file};

/// `scrub`.
#[derive(Debug, Args)]
pub struct ScrubArgs {
    /// Case files to scrub.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Report likely secrets without changing the files; exit 1 when any is found.
    #[arg(long)]
    pub check: bool,
    /// A scrub rules file (YAML or JSON: named regex patterns, body JSONPaths, header names)
    /// applied on top of the built-in patterns. Repeatable.
    #[arg(long = "rules", value_name = "FILE")]
    pub rules: Vec<PathBuf>,
}

pub(crate) fn run(args: &ScrubArgs) -> Result<Outcome, CliError> {
    let mut rules = ScrubRules::default();
    for file in &args.rules {
        let bytes = super::read_file(file)?;
        let parsed = ScrubRules::parse(&bytes, &file.display().to_string()).map_err(|e| {
            CliError::invalid(format!("invalid scrub rules: {e}"))
                .with_field("file", json!(file.display().to_string()))
                .with_field("line", json!(e.line))
                .with_field("jsonPath", json!(e.json_path))
        })?;
        rules.extend(parsed);
    }
    let mut report = Vec::new();
    let mut human = String::new();
    let mut total = 0;
    for file in &args.files {
        let source = file.display().to_string();
        let mode = if args.check {
            ScrubMode::Check
        } else {
            ScrubMode::Rewrite
        };
        let stream = super::read_case_stream(file)?;
        let findings = scrub_file(&stream, file, &rules, mode).map_err(|e| match e {
            CaseError::Parse { .. } | CaseError::Exchange { .. } => {
                CliError::invalid(e.to_string())
            }
            e => CliError::new(ExitCode::Failure, "write_failed", e.to_string()),
        })?;
        drop(stream);
        total += findings.len();
        for f in &findings {
            human.push_str(&format!("{source}: {}: {}\n", f.json_path, f.describe()));
        }
        crate::allocator::release_after(std::fs::metadata(file).map_or(0, |m| m.len()));
        report.push(json!({
            "file": source,
            "findings": findings.iter().map(|f| json!({"jsonPath": f.json_path, "kind": f.kind.as_str(), "rule": f.rule})).collect::<Vec<_>>(),
        }));
    }
    human.push_str(&match (args.check, total) {
        (_, 0) => "No likely secrets found.".to_owned(),
        (true, n) => format!(
            "{n} likely secret(s) found; run `softprobe scrub` without --check to redact them."
        ),
        (false, n) => format!("Redacted {n} likely secret(s)."),
    });
    let outcome = Outcome::ok(
        json!({"files": report, "findings": total, "rewritten": !args.check && total > 0}),
        Some(human),
    );
    Ok(if args.check && total > 0 {
        outcome.with_exit(ExitCode::Failure)
    } else {
        outcome
    })
}
