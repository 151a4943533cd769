//! How commands answer: a readable text for people, or with `--json` exactly one JSON object
//! on stdout carrying the command's fields plus `status` and `exitCode`.

use std::io::IsTerminal as _;

use serde_json::{Map, Value, json};

/// The process exit codes, part of the CLI's contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// Success.
    Ok = 0,
    /// The command ran and failed.
    Failure = 1,
    /// Bad command line.
    Usage = 2,
    /// The runtime could not be reached.
    Unreachable = 3,
    /// The session does not exist.
    UnknownSession = 4,
    /// A file or request body is invalid.
    InvalidInput = 5,
    /// `doctor` found a problem.
    DoctorFailed = 10,
    /// `suite run` had failing cases.
    SuiteFailures = 20,
}

/// A failed command: what to print and how to exit.
#[derive(Debug)]
pub struct CliError {
    /// Exit code.
    pub exit: ExitCode,
    /// Machine-readable code, e.g. `unknown_session`.
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
    /// Fields to include in `--json` output anyway (for example validation findings).
    pub fields: Map<String, Value>,
}

impl CliError {
    /// An error with no extra fields.
    pub fn new(exit: ExitCode, code: impl Into<String>, message: impl Into<String>) -> Self {
        CliError {
            exit,
            code: code.into(),
            message: message.into(),
            fields: Map::new(),
        }
    }

    /// Invalid input (exit 5).
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ExitCode::InvalidInput, "invalid_input", message)
    }

    /// Adds a field to the JSON output.
    pub fn with_field(mut self, key: &str, value: Value) -> Self {
        self.fields.insert(key.to_owned(), value);
        self
    }
}

/// What a successful (or partly failed) command produced.
pub struct Outcome {
    /// Fields of the JSON object.
    pub fields: Map<String, Value>,
    /// Text for people (`None`: print the fields as JSON).
    pub human: Option<String>,
    /// Exit code (a command may finish with a failure code and still report fields).
    pub exit: ExitCode,
    /// An exit code passed through from a child process (`capture run`), overriding `exit`.
    pub raw_exit: Option<u8>,
}

impl Outcome {
    /// A successful outcome.
    pub fn ok(fields: Value, human: impl Into<Option<String>>) -> Self {
        Outcome {
            fields: match fields {
                Value::Object(m) => m,
                other => {
                    let mut m = Map::new();
                    m.insert("result".into(), other);
                    m
                }
            },
            human: human.into(),
            exit: ExitCode::Ok,
            raw_exit: None,
        }
    }

    /// The same outcome exiting with a child's code (0 is success, anything else a failure).
    pub fn with_raw_exit(mut self, code: u8) -> Self {
        if code != 0 {
            self.exit = ExitCode::Failure;
            self.raw_exit = Some(code);
        }
        self
    }

    /// The same outcome with another exit code.
    pub fn with_exit(mut self, exit: ExitCode) -> Self {
        self.exit = exit;
        self
    }
}

/// Global presentation flags.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    /// `--json`.
    pub json: bool,
    /// `--quiet`: no human output on success.
    pub quiet: bool,
    /// Colours on (`--color`, `--no-color`, `NO_COLOR`, `CLICOLOR_FORCE`, a terminal).
    pub color: bool,
    /// `--verbose`: errors also show their machine code.
    pub verbose: bool,
}

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorChoice {
    /// Colours when stdout is a terminal, unless `NO_COLOR` is set or `CLICOLOR_FORCE` asks.
    #[default]
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

impl ColorChoice {
    /// Whether to colour, given the environment and whether stdout is a terminal.
    pub fn resolve(self, env: &dyn Fn(&str) -> Option<String>, terminal: bool) -> bool {
        let set = |k: &str| env(k).is_some_and(|v| !v.is_empty());
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto if set("NO_COLOR") => false,
            ColorChoice::Auto
                if set("CLICOLOR_FORCE") && env("CLICOLOR_FORCE").as_deref() != Some("0") =>
            {
                true
            }
            ColorChoice::Auto => terminal,
        }
    }
}

impl Style {
    /// From the global flags and the environment.
    pub fn detect(json: bool, quiet: bool, verbose: bool, color: ColorChoice) -> Self {
        let color = color.resolve(&|k| std::env::var(k).ok(), std::io::stdout().is_terminal());
        Style {
            json,
            quiet,
            color,
            verbose,
        }
    }
}

fn status_word(exit: ExitCode) -> &'static str {
    match exit {
        ExitCode::Ok => "ok",
        _ => "error",
    }
}

/// Writes one line on stdout. A reader that went away (`softprobe ... | head -1`) is not an
/// error: the rest of the output is dropped quietly instead of panicking as `println!` does.
fn out_line(text: &str) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{text}").and_then(|()| stdout.flush());
}

/// [`out_line`] for stderr.
fn err_line(text: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// Prints the result of a command and returns the process exit code.
pub fn emit(style: Style, result: Result<Outcome, CliError>) -> u8 {
    match result {
        Ok(outcome) => {
            let code = outcome.raw_exit.unwrap_or(outcome.exit as u8);
            if style.json {
                let mut fields = outcome.fields;
                fields.insert("status".into(), json!(status_word(outcome.exit)));
                fields.insert("exitCode".into(), json!(code));
                out_line(&Value::Object(fields).to_string());
            } else if !style.quiet || outcome.exit != ExitCode::Ok {
                match outcome.human {
                    Some(text) => {
                        if !text.is_empty() {
                            out_line(text.trim_end_matches('\n'));
                        }
                    }
                    None => out_line(&Value::Object(outcome.fields).to_string()),
                }
            }
            code
        }
        Err(err) => {
            if style.json {
                let mut fields = err.fields;
                fields.insert("status".into(), json!("error"));
                fields.insert("exitCode".into(), json!(err.exit as i32));
                fields.insert(
                    "error".into(),
                    json!({"code": err.code, "message": err.message}),
                );
                out_line(&Value::Object(fields).to_string());
            } else {
                let prefix = if style.color {
                    "\x1b[31merror\x1b[0m"
                } else {
                    "error"
                };
                err_line(&format!("{prefix}: {}", err.message));
                if style.verbose {
                    err_line(&format!("  code: {} (exit {})", err.code, err.exit as u8));
                }
            }
            err.exit as u8
        }
    }
}

/// Creates the missing parent directories of a file the CLI is about to write (`--out`,
/// `--junit`, `--report`, `--summary`).
pub(crate) fn create_parent(path: &std::path::Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::create_dir_all(dir),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod color_tests {
    use super::ColorChoice;

    #[test]
    fn flags_beat_the_environment_and_no_color_beats_force() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let none = env(&[]);
        assert!(ColorChoice::Auto.resolve(&none, true));
        assert!(!ColorChoice::Auto.resolve(&none, false));
        assert!(!ColorChoice::Auto.resolve(&env(&[("NO_COLOR", "1")]), true));
        assert!(ColorChoice::Auto.resolve(&env(&[("CLICOLOR_FORCE", "1")]), false));
        assert!(!ColorChoice::Auto.resolve(&env(&[("CLICOLOR_FORCE", "0")]), false));
        let both = env(&[("NO_COLOR", "1"), ("CLICOLOR_FORCE", "1")]);
        assert!(!ColorChoice::Auto.resolve(&both, true));
        assert!(ColorChoice::Always.resolve(&env(&[("NO_COLOR", "1")]), false));
        assert!(!ColorChoice::Never.resolve(&env(&[("CLICOLOR_FORCE", "1")]), true));
    }
}
