//! `softprobe suite run|validate|diff`: a YAML suite of captured cases run as one regression
//! sweep against an application's ingress proxy, with JUnit, HTML and JSON reports; exit 5 for
//! an invalid suite (naming the file and line), 20 when any case failed.

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::json;

use super::Ctx;
use super::output::{CliError, ExitCode, Outcome};
use crate::suite::{self, RunOptions, SuiteError};

/// `softprobe suite ...`
#[derive(Debug, Subcommand)]
pub enum SuiteCommand {
    /// Run every case of a suite through the application and check the responses.
    Run(RunArgs),
    /// Check suite files (syntax, keys, variables, globs) without running them.
    Validate(ValidateArgs),
    /// Hops added or removed between two sets of case files.
    Diff(DiffArgs),
}

/// `suite run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The suite file (`*.suite.yaml`).
    pub suite: PathBuf,
    /// The application's ingress proxy, e.g. http://127.0.0.1:8082 (`$APP_URL` too; a suite's
    /// `request.url` wins).
    #[arg(long, env = "SOFTPROBE_APP_URL")]
    pub app_url: Option<String>,
    /// Cases in flight at once.
    #[arg(long, default_value_t = 8)]
    pub parallel: usize,
    /// Write JUnit XML here.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Write the HTML report here.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Write the JSON summary here (`--json` prints it instead).
    #[arg(long)]
    pub summary: Option<PathBuf>,
    /// Run only cases whose name or path contains this text.
    #[arg(long)]
    pub filter: Option<String>,
    /// Start no new case after the first failure.
    #[arg(long)]
    pub fail_fast: bool,
    /// A JavaScript/TypeScript hook module (`.js`, `.mjs`, `.ts`; repeatable; all load into
    /// one Node process), or a directory where executable hooks are looked up first.
    #[arg(long)]
    pub hooks: Vec<PathBuf>,
    /// Refuse unknown keys in the suite instead of warning about them.
    #[arg(long)]
    pub strict_suite: bool,
    /// How long a hook may run, e.g. 10s or 500ms.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub hook_timeout: Duration,
    /// KEY=VALUE files for `${VAR}` expansion (later files win; the environment comes last).
    #[arg(long)]
    pub env_file: Vec<PathBuf>,
}

/// `suite validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The suite files.
    #[arg(required = true)]
    pub suites: Vec<PathBuf>,
    /// KEY=VALUE files for `${VAR}` expansion.
    #[arg(long)]
    pub env_file: Vec<PathBuf>,
    /// Refuse unknown keys instead of warning about them.
    #[arg(long)]
    pub strict_suite: bool,
}

/// `suite diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// Glob of the baseline case files.
    #[arg(long)]
    pub baseline: String,
    /// Glob of the current case files.
    #[arg(long)]
    pub current: String,
}

pub(crate) fn run(ctx: &Ctx, cmd: SuiteCommand) -> Result<Outcome, CliError> {
    match cmd {
        SuiteCommand::Run(args) => run_suite(ctx, &args),
        SuiteCommand::Validate(args) => validate(&args),
        SuiteCommand::Diff(args) => diff(&args),
    }
}

fn env(files: &[PathBuf]) -> Result<BTreeMap<String, String>, CliError> {
    let mut env = BTreeMap::new();
    for f in files {
        env.extend(suite::read_env_file(f).map_err(invalid)?);
    }
    Ok(env)
}

fn invalid(e: SuiteError) -> CliError {
    let mut err = CliError::invalid(e.to_string());
    if let SuiteError::Invalid { path, line, .. } = &e {
        err = err
            .with_field("file", json!(path.display().to_string()))
            .with_field("line", json!(line));
    }
    err
}

/// Prints the keys the reader ignored, one line each, on stderr (never on `--json`'s stdout).
fn warn(loaded: &suite::Suite) {
    for w in &loaded.warnings {
        eprintln!("warning: {w}");
    }
}

fn run_suite(ctx: &Ctx, args: &RunArgs) -> Result<Outcome, CliError> {
    let env = env(&args.env_file)?;
    let loaded = suite::load_with(&args.suite, &env, args.strict_suite).map_err(invalid)?;
    warn(&loaded);
    let app_url = args
        .app_url
        .clone()
        .or_else(|| std::env::var("APP_URL").ok())
        .filter(|u| !u.is_empty())
        .unwrap_or_default();
    let mut opts = RunOptions::new(ctx.runtime_url.clone(), app_url);
    opts.token = ctx.token.clone();
    opts.parallel = args.parallel.max(1);
    opts.filter = args.filter.clone();
    opts.fail_fast = args.fail_fast;
    for h in &args.hooks {
        if h.is_dir() {
            opts.hooks_dir = Some(h.clone());
        } else if suite::node::is_module(h) {
            opts.hook_modules.push(h.clone());
        } else {
            return Err(CliError::invalid(format!(
                "--hooks {}: not a directory nor a .js, .mjs, .cjs, .ts or .mts module",
                h.display()
            )));
        }
    }
    opts.hook_timeout = args.hook_timeout;
    // A bar only for people watching a terminal; logs and `--json` stay clean.
    let bar = (!ctx.style.json && !ctx.style.quiet && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new(loaded.cases.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} cases {per_sec} {elapsed} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    if let Some(bar) = &bar {
        let bar = bar.clone();
        let failed = std::sync::atomic::AtomicUsize::new(0);
        opts.on_case = Some(std::sync::Arc::new(move |r: &suite::CaseResult| {
            if r.status == suite::CaseStatus::Failed {
                let n = failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                bar.set_message(format!("{n} failed"));
            }
            bar.inc(1);
        }));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::new(ExitCode::Failure, "internal_error", e.to_string()))?;
    let report = rt.block_on(suite::run(&loaded, &opts)).map_err(|e| match e {
        SuiteError::Runtime { .. } => CliError::new(
            ExitCode::Unreachable,
            "runtime_unreachable",
            format!(
                "{e}; start it with `softprobe-runtime` or point --runtime-url / SOFTPROBE_RUNTIME_URL at it"
            ),
        ),
        SuiteError::Hooks(message) => CliError::invalid(format!("hooks: {message}")),
        other => invalid(other),
    })?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let write = |path: &PathBuf, text: String| {
        super::output::create_parent(path)
            .and_then(|()| std::fs::write(path, text))
            .map_err(|e| {
                CliError::new(
                    ExitCode::Failure,
                    "write_failed",
                    format!("cannot write {}: {e}", path.display()),
                )
            })
    };
    if let Some(p) = &args.junit {
        write(p, report.junit())?;
    }
    if let Some(p) = &args.report {
        write(p, report.html())?;
    }
    let summary = report.to_json();
    if let Some(p) = &args.summary {
        write(
            p,
            serde_json::to_string_pretty(&summary).unwrap_or_default() + "\n",
        )?;
    }
    let exit = if report.ok() {
        ExitCode::Ok
    } else {
        ExitCode::SuiteFailures
    };
    Ok(Outcome::ok(summary, Some(report.summary_text())).with_exit(exit))
}

fn validate(args: &ValidateArgs) -> Result<Outcome, CliError> {
    let env = env(&args.env_file)?;
    let mut human = String::new();
    let mut files = Vec::new();
    for path in &args.suites {
        let loaded = suite::load_with(path, &env, args.strict_suite).map_err(invalid)?;
        warn(&loaded);
        human.push_str(&format!(
            "{}: valid ({} case(s))\n",
            path.display(),
            loaded.cases.len()
        ));
        files.push(
            json!({"file": path.display().to_string(), "valid": true, "cases": loaded.cases.len()}),
        );
    }
    Ok(Outcome::ok(
        json!({"valid": true, "files": files}),
        Some(human),
    ))
}

fn diff(args: &DiffArgs) -> Result<Outcome, CliError> {
    let d = suite::diff::compare(&args.baseline, &args.current).map_err(CliError::invalid)?;
    let mut human = String::new();
    for c in &d.removed_cases {
        human.push_str(&format!("- case {c}\n"));
    }
    for c in &d.added_cases {
        human.push_str(&format!("+ case {c}\n"));
    }
    for c in &d.changed {
        human.push_str(&format!("~ {}\n", c.case));
        for h in &c.removed {
            human.push_str(&format!("    - {h}\n"));
        }
        for h in &c.added {
            human.push_str(&format!("    + {h}\n"));
        }
    }
    if d.is_empty() {
        human.push_str("no hops added or removed\n");
    }
    let fields = serde_json::to_value(&d).unwrap_or_default();
    let exit = if d.is_empty() {
        ExitCode::Ok
    } else {
        ExitCode::Failure
    };
    Ok(Outcome::ok(fields, Some(human)).with_exit(exit))
}
