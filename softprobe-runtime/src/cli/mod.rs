//! The `softprobe` command line: every command of the capture guide and the case-file page,
//! for people (tables, short sentences) and for machines (`--json`, stable exit codes).
//!
//! The binary in `src/bin/softprobe.rs` only calls [`main`]; each command lives in its own
//! module and talks to a runtime through one small blocking client of the control API.

mod capture;
mod cases;
mod client;
mod diff;
mod doctor;
mod export;
mod generate;
mod inspect;
pub mod logging;
pub mod output;
mod paths;
mod replay;
mod review;
mod scrub;
mod session;
mod suite;
mod validate;
mod view;

use std::path::PathBuf;

use clap::{Args, CommandFactory as _, Parser, Subcommand, ValueEnum};

use client::ControlClient;
pub use output::{CliError, ColorChoice, ExitCode, Outcome, Style};

/// Record/replay HTTP testing: sessions, case files, captures.
#[derive(Debug, Parser)]
#[command(
    name = "softprobe",
    version,
    about,
    propagate_version = true,
    disable_version_flag = true
)]
pub struct Cli {
    /// Print the version (also `softprobe version`).
    #[arg(short = 'v', short_alias = 'V', long, action = clap::ArgAction::Version, global = true)]
    pub version: Option<bool>,
    /// Control API of the runtime.
    #[arg(
        long,
        global = true,
        env = "SOFTPROBE_RUNTIME_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub runtime_url: String,
    /// Bearer token for the runtime.
    #[arg(
        long,
        global = true,
        env = "SOFTPROBE_API_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// Print one JSON object on stdout (with `status` and `exitCode`).
    #[arg(long, global = true)]
    pub json: bool,
    /// Print nothing on success.
    #[arg(long, short, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print more detail.
    #[arg(long, global = true)]
    pub verbose: bool,
    /// When to colour: auto (a terminal, unless NO_COLOR; CLICOLOR_FORCE forces), always,
    /// never.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    /// The same as `--color never`.
    #[arg(long, global = true)]
    pub no_color: bool,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start, configure, inspect and close sessions on a runtime.
    #[command(subcommand)]
    Session(SessionCommand),
    /// Pretty-print a case file or a live session.
    #[command(subcommand)]
    Inspect(InspectCommand),
    /// Check case, trace, rules or policy files against the schema and the semantic rules.
    Validate(validate::ValidateArgs),
    /// Redact likely secrets from case files in place (or only report them with --check).
    Scrub(scrub::ScrubArgs),
    /// Export case files to other tools.
    #[command(subcommand)]
    Export(ExportCommand),
    /// One-shot capture: start a session, run a driver, close, write the case.
    #[command(subcommand)]
    Capture(CaptureCommand),
    /// One-shot replay: load a case into a strict session, run a driver, report misses.
    #[command(subcommand)]
    Replay(ReplayCommand),
    /// Generate files with a language model (OpenAI-compatible chat completions).
    #[command(subcommand)]
    Generate(GenerateCommand),
    /// Check that the runtime (and optionally the proxy) is reachable and healthy.
    Doctor(doctor::DoctorArgs),
    /// Run, validate and compare suites of cases.
    #[command(subcommand)]
    Suite(suite::SuiteCommand),
    /// Look at a case in the browser: its hops on a time axis, each hop's detail, and its
    /// drift against `<case>.new`.
    View(view::ViewArgs),
    /// Accept, reject or skip the `.new` evidence of failing replays, one case at a time.
    Review(review::ReviewArgs),
    /// Compare two cases hop by hop (exit 0 when they hold the same hops, 1 when not).
    Diff(diff::DiffArgs),
    /// Case files kept by the runtime.
    #[command(subcommand)]
    Cases(cases::CasesCommand),
    /// Print the CLI's version and the control API it speaks.
    Version,
    /// Print a shell completion script.
    Completion {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// `softprobe session ...`
#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// Create a session and print its id.
    Start(session::StartArgs),
    /// Close a session; a capture session writes its case file.
    Close(session::CloseArgs),
    /// Span counters of a session.
    Stats(SessionRef),
    /// List open sessions.
    List,
    /// Load a case file into a session (replay answers come from it).
    LoadCase(session::LoadCaseArgs),
    /// Session rules.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Session policy.
    #[command(subcommand)]
    Policy(PolicyCommand),
}

/// `softprobe session rules ...`
#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Replace the session's rules with a rules file (YAML or JSON).
    Apply(session::RulesApplyArgs),
}

/// `softprobe session policy ...`
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Set the session's policy.
    Set(session::PolicySetArgs),
}

/// `softprobe inspect ...`
#[derive(Debug, Subcommand)]
pub enum InspectCommand {
    /// The hops of case files as tables.
    Case {
        /// The case files, or globs of them (`'cases/*.case.json'`).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Show every URL whole (the table cuts long ones to their origin and drops query
        /// strings; `--json` always has them whole).
        #[arg(long)]
        wide: bool,
    },
    /// The state of a live session.
    Session(SessionRef),
}

/// `softprobe export ...`
#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Send the traces of case files to an OTLP/HTTP collector.
    Otlp(export::OtlpArgs),
}

/// `softprobe generate ...`
#[derive(Debug, Subcommand)]
pub enum GenerateCommand {
    /// Ask a model for a case described in words, validate it (feeding the findings back
    /// until it is valid), and write it.
    Case(generate::CaseArgs),
}

/// `softprobe capture ...`
#[derive(Debug, Subcommand)]
pub enum CaptureCommand {
    /// Start a capture session, run the driver with SOFTPROBE_SESSION_ID set, close, write.
    Run(capture::RunArgs),
}

/// `softprobe replay ...`
#[derive(Debug, Subcommand)]
pub enum ReplayCommand {
    /// Start a replay session with a case, run the driver with SOFTPROBE_SESSION_ID set,
    /// report what was answered and every miss.
    Run(replay::RunArgs),
}

/// A session named on the command line or by `SOFTPROBE_SESSION_ID`.
#[derive(Debug, Args)]
pub struct SessionRef {
    /// The session id.
    #[arg(long, env = "SOFTPROBE_SESSION_ID")]
    pub session: String,
}

/// Body formats for OTLP.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OtlpEncoding {
    /// OTLP JSON.
    Json,
    /// OTLP protobuf.
    Protobuf,
}

/// Shared context of one invocation.
pub(crate) struct Ctx {
    pub(crate) runtime_url: String,
    pub(crate) token: Option<String>,
    pub(crate) style: Style,
}

impl Ctx {
    pub(crate) fn client(&self) -> Result<ControlClient, CliError> {
        ControlClient::new(&self.runtime_url, self.token.clone())
    }
}

/// Runs the CLI on the process arguments and returns the exit code.
pub fn main() -> std::process::ExitCode {
    // One TLS provider for every client of the process (ring keeps the build light).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // clap prints help and version on stdout with success, usage errors on stderr.
            let _ = err.print();
            return std::process::ExitCode::from(if err.use_stderr() {
                ExitCode::Usage as u8
            } else {
                0
            });
        }
    };
    std::process::ExitCode::from(run(cli))
}

/// Runs one parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> u8 {
    let color = if cli.no_color {
        ColorChoice::Never
    } else {
        cli.color
    };
    let style = Style::detect(cli.json, cli.quiet, cli.verbose, color);
    let ctx = Ctx {
        runtime_url: cli.runtime_url,
        token: cli.token,
        style,
    };
    let result = match cli.command {
        Command::Session(cmd) => session::run(&ctx, cmd),
        Command::Inspect(InspectCommand::Case { files, wide }) => inspect::cases(&files, wide),
        Command::Inspect(InspectCommand::Session(s)) => inspect::session(&ctx, &s.session),
        Command::Validate(args) => validate::run(&args),
        Command::Scrub(args) => scrub::run(&args),
        Command::Export(ExportCommand::Otlp(args)) => export::otlp(&args),
        Command::Capture(CaptureCommand::Run(args)) => capture::run(&ctx, &args),
        Command::Replay(ReplayCommand::Run(args)) => replay::run(&ctx, &args),
        Command::Generate(GenerateCommand::Case(args)) => generate::case(&args),
        Command::Doctor(args) => doctor::run(&ctx, &args),
        Command::Suite(cmd) => suite::run(&ctx, cmd),
        Command::View(args) => return view::run(&ctx, &args),
        Command::Review(args) if args.view => return review::view(&ctx, &args),
        Command::Review(args) => review::run(&ctx, &args),
        Command::Diff(args) => diff::run(&args),
        Command::Cases(cmd) => cases::run(&ctx, cmd),
        Command::Version => Ok(Outcome::ok(
            serde_json::json!({
                "cliVersion": env!("CARGO_PKG_VERSION"),
                "specVersion": crate::control::SPEC_VERSION,
            }),
            Some(format!(
                "softprobe {} (control API {})",
                env!("CARGO_PKG_VERSION"),
                crate::control::SPEC_VERSION
            )),
        )),
        Command::Completion { shell } => {
            let mut cmd = Cli::command();
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut cmd, "softprobe", &mut buf);
            Ok(Outcome::ok(
                serde_json::json!({"shell": shell.to_string(), "script": String::from_utf8_lossy(&buf)}),
                Some(String::from_utf8_lossy(&buf).into_owned()),
            ))
        }
    };
    output::emit(style, result)
}

/// Reads a case file for a command that goes through it one trace document at a time
/// ([`crate::case::CaseStream`]): the bytes and one parsed trace document are held, never
/// the whole parsed case.
pub(crate) fn read_case_stream(
    path: &std::path::Path,
) -> Result<crate::case::CaseStream, CliError> {
    let bytes = read_file(path)?;
    Ok(crate::case::CaseStream::from_bytes(
        bytes,
        path.display().to_string(),
    ))
}

pub(crate) fn read_file(path: &std::path::Path) -> Result<Vec<u8>, CliError> {
    if crate::case::location::url_scheme(&path.to_string_lossy()).is_some() {
        return crate::case::location::read_bytes(path)
            .map_err(|e| CliError::invalid(e.to_string()));
    }
    std::fs::read(path)
        .map_err(|e| CliError::invalid(format!("cannot read {}: {e}", path.display())))
}
