//! `softprobe validate case|trace|rules|policy FILE...`: JSON Schema and semantic checks, each
//! finding with its file, line, column and JSON path; exit 5 when any file is invalid.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use serde_json::json;

use super::output::{CliError, ExitCode, Outcome};
use crate::case::validate::{self, Report, Severity};

/// What kind of document the files are.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Kind {
    /// A case file.
    Case,
    /// One OTLP trace document.
    Trace,
    /// A rules document (JSON or YAML).
    Rules,
    /// A policy document (JSON or YAML).
    Policy,
    /// A suite file (`*.suite.yaml`); `${VAR}` references are checked against the
    /// environment.
    Suite,
}

/// `validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The kind of document.
    #[arg(value_enum)]
    pub kind: Kind,
    /// The files, or globs of them (`'cases/*.case.json'`).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

pub(crate) fn run(args: &ValidateArgs) -> Result<Outcome, CliError> {
    let mut human = String::new();
    let mut files = Vec::new();
    let mut invalid = 0;
    for file in &super::paths::expand(&args.files)? {
        let source = file.display().to_string();
        let bytes = super::read_file(file)?;
        let report: Report = match args.kind {
            Kind::Case => validate::validate_case(&bytes, &source),
            Kind::Trace => validate::validate_trace(&bytes, &source),
            Kind::Rules => validate::validate_rules(&bytes, &source),
            Kind::Policy => validate::validate_policy(&bytes, &source),
            Kind::Suite => suite_report(file, &source),
        };
        if !report.is_valid() {
            invalid += 1;
        }
        let text = report.to_string();
        if !text.trim().is_empty() {
            human.push_str(text.trim_end());
            human.push('\n');
        }
        let errors = report.errors().count();
        let warnings = report.warnings().count();
        human.push_str(&format!(
            "{source}: {} ({errors} error(s), {warnings} warning(s))\n",
            if report.is_valid() {
                "valid"
            } else {
                "invalid"
            }
        ));
        files.push(json!({
            "file": source,
            "valid": report.is_valid(),
            "findings": report.findings.iter().map(|f| json!({
                "severity": match f.severity { Severity::Error => "error", Severity::Warning => "warning" },
                "code": f.code,
                "jsonPath": f.json_path,
                "line": f.line,
                "column": f.column,
                "message": f.message,
            })).collect::<Vec<_>>(),
        }));
    }
    let fields = json!({"valid": invalid == 0, "files": files});
    if invalid > 0 {
        return Err(CliError::new(
            ExitCode::InvalidInput,
            "invalid_input",
            format!("{}{invalid} of {} file(s) invalid", human, args.files.len()),
        )
        .with_field("valid", json!(false))
        .with_field("files", fields["files"].clone()));
    }
    Ok(Outcome::ok(fields, Some(human)))
}

/// A suite file's problems as a report: the suite reader stops at the first one.
fn suite_report(file: &std::path::Path, source: &str) -> Report {
    let env = std::env::vars().collect();
    let findings = match crate::suite::load(file, &env) {
        Ok(_) => Vec::new(),
        Err(err) => vec![validate::Finding {
            severity: Severity::Error,
            code: "suite",
            json_path: "$".to_owned(),
            line: err.line().unwrap_or(1),
            column: 1,
            message: err.to_string(),
        }],
    };
    Report {
        source_name: source.to_owned(),
        findings,
    }
}
