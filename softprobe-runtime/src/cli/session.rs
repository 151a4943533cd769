//! `softprobe session ...`: thin wrappers over the control API that print what the capture
//! guide shows.

use std::path::PathBuf;

use clap::Args;
use serde_json::{Value, json};

use super::output::{CliError, Outcome};
use super::{Ctx, PolicyCommand, RulesCommand, SessionCommand, read_file};

/// `session start`.
#[derive(Debug, Args)]
pub struct StartArgs {
    /// capture, replay or generate.
    #[arg(long, value_parser = ["capture", "replay", "generate"], default_value = "replay")]
    pub mode: String,
    /// Print `export SOFTPROBE_SESSION_ID=...` for `eval`.
    #[arg(long, conflicts_with = "json")]
    pub shell: bool,
    /// A policy file to apply right away.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// A case file to load right away.
    #[arg(long)]
    pub case: Option<PathBuf>,
    /// A rules file to apply right away.
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// Accepted for symmetry with the global flag (`session start --mode capture --json`).
    #[arg(long, hide = true)]
    pub json: bool,
}

impl StartArgs {
    /// A session of `mode` started with this policy, case and rules files, as the commands
    /// that start their own session (`capture run`, `replay run`) do.
    pub(crate) fn new(
        mode: &str,
        policy: Option<PathBuf>,
        case: Option<PathBuf>,
        rules: Option<PathBuf>,
    ) -> Self {
        StartArgs {
            mode: mode.to_owned(),
            shell: false,
            policy,
            case,
            rules,
            json: false,
        }
    }
}

/// `session close`.
#[derive(Debug, Args)]
pub struct CloseArgs {
    /// The session id.
    #[arg(long, env = "SOFTPROBE_SESSION_ID")]
    pub session: String,
    /// Where a capture session writes its case (default: the runtime's configured path).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `session load-case`.
#[derive(Debug, Args)]
pub struct LoadCaseArgs {
    /// The session id.
    #[arg(long, env = "SOFTPROBE_SESSION_ID")]
    pub session: String,
    /// The case file.
    #[arg(long, short)]
    pub file: PathBuf,
}

/// `session rules apply`.
#[derive(Debug, Args)]
pub struct RulesApplyArgs {
    /// The session id.
    #[arg(long, env = "SOFTPROBE_SESSION_ID")]
    pub session: String,
    /// The rules file, YAML or JSON.
    #[arg(long, short)]
    pub file: PathBuf,
}

/// `session policy set`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("policy-source").required(true).args(["strict", "allow", "file"])))]
pub struct PolicySetArgs {
    /// The session id.
    #[arg(long, env = "SOFTPROBE_SESSION_ID")]
    pub session: String,
    /// Strict: outbound calls nothing answers fail with 599.
    #[arg(long)]
    pub strict: bool,
    /// Allow: outbound calls nothing answers go to the real upstream.
    #[arg(long)]
    pub allow: bool,
    /// A policy file (JSON or YAML).
    #[arg(long, short)]
    pub file: Option<PathBuf>,
}

pub(crate) fn run(ctx: &Ctx, cmd: SessionCommand) -> Result<Outcome, CliError> {
    match cmd {
        SessionCommand::Start(args) => start(ctx, &args),
        SessionCommand::Close(args) => close(ctx, &args),
        SessionCommand::Stats(s) => stats(ctx, &s.session),
        SessionCommand::List => list(ctx),
        SessionCommand::LoadCase(args) => {
            let client = ctx.client()?;
            let body = read_file(&args.file)?;
            let resp = client.post_bytes(
                &format!("/v1/sessions/{}/load-case", args.session),
                "application/json",
                body,
            )?;
            let human = format!(
                "Loaded case {} into {} (revision {})",
                resp["caseId"].as_str().unwrap_or("?"),
                args.session,
                resp["sessionRevision"]
            );
            Ok(Outcome::ok(resp, Some(human)))
        }
        SessionCommand::Rules(RulesCommand::Apply(args)) => {
            let resp = apply_rules(ctx, &args.session, &args.file)?;
            let human = format!(
                "Applied {} rule(s) to {} (revision {})",
                resp["rules"], args.session, resp["sessionRevision"]
            );
            Ok(Outcome::ok(resp, Some(human)))
        }
        SessionCommand::Policy(PolicyCommand::Set(args)) => {
            let client = ctx.client()?;
            let path = format!("/v1/sessions/{}/policy", args.session);
            let resp = match (&args.file, args.strict) {
                (Some(file), _) => {
                    let bytes = read_file(file)?;
                    client.post_bytes(&path, content_type_of(file, &bytes), bytes)?
                }
                (None, true) => client.post_json(&path, &json!({"externalHttp": "strict"}))?,
                (None, false) => client.post_json(&path, &json!({"externalHttp": "allow"}))?,
            };
            let human = format!(
                "Policy set on {} (revision {})",
                args.session, resp["sessionRevision"]
            );
            Ok(Outcome::ok(resp, Some(human)))
        }
    }
}

/// YAML files go as YAML; the runtime reads both.
pub(crate) fn content_type_of(path: &std::path::Path, bytes: &[u8]) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let looks_json = bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{' || *b == b'[');
    if ext == "yaml" || ext == "yml" || (!looks_json && ext != "json") {
        "application/yaml"
    } else {
        "application/json"
    }
}

pub(crate) fn apply_rules(
    ctx: &Ctx,
    session: &str,
    file: &std::path::Path,
) -> Result<Value, CliError> {
    let client = ctx.client()?;
    let bytes = read_file(file)?;
    client.post_bytes(
        &format!("/v1/sessions/{session}/rules"),
        content_type_of(file, &bytes),
        bytes,
    )
}

pub(crate) fn start_session(ctx: &Ctx, args: &StartArgs) -> Result<Value, CliError> {
    let client = ctx.client()?;
    let mut resp = client.post_json("/v1/sessions", &json!({"mode": args.mode}))?;
    let id = resp["sessionId"]
        .as_str()
        .ok_or_else(|| {
            CliError::invalid(format!("the runtime answered without a sessionId: {resp}"))
        })?
        .to_owned();
    let mut revision = resp["sessionRevision"].clone();
    if let Some(policy) = &args.policy {
        let bytes = read_file(policy)?;
        let r = client.post_bytes(
            &format!("/v1/sessions/{id}/policy"),
            content_type_of(policy, &bytes),
            bytes,
        )?;
        revision = r["sessionRevision"].clone();
    }
    if let Some(case) = &args.case {
        let r = client.post_bytes(
            &format!("/v1/sessions/{id}/load-case"),
            "application/json",
            read_file(case)?,
        )?;
        revision = r["sessionRevision"].clone();
    }
    if let Some(rules) = &args.rules {
        let r = apply_rules(ctx, &id, rules)?;
        revision = r["sessionRevision"].clone();
    }
    resp["sessionRevision"] = revision;
    Ok(resp)
}

fn start(ctx: &Ctx, args: &StartArgs) -> Result<Outcome, CliError> {
    let resp = start_session(ctx, args)?;
    let id = resp["sessionId"].as_str().unwrap_or_default().to_owned();
    let human = if args.shell {
        format!("export SOFTPROBE_SESSION_ID={}", shell_quote(&id))
    } else if args.json {
        // `session start --json` is the guide's spelling of the global flag.
        resp.to_string()
    } else {
        format!("Session {id} started (mode {})", args.mode)
    };
    Ok(Outcome::ok(resp, Some(human)))
}

fn shell_quote(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

pub(crate) fn close_session(
    ctx: &Ctx,
    session: &str,
    out: Option<&std::path::Path>,
) -> Result<Value, CliError> {
    let client = ctx.client()?;
    let mut path = format!("/v1/sessions/{session}/close");
    if let Some(out) = out {
        // Relative paths are relative to where the user runs the command, not the runtime.
        let abs = std::path::absolute(out).unwrap_or_else(|_| out.to_owned());
        path.push_str("?out=");
        path.push_str(&percent_encode(&abs.to_string_lossy()));
    }
    client.post_json(&path, &json!({}))
}

fn close(ctx: &Ctx, args: &CloseArgs) -> Result<Outcome, CliError> {
    let resp = close_session(ctx, &args.session, args.out.as_deref())?;
    // The guide prints the runtime's answer as JSON, with the path as the user gave it.
    let case_path = match (&args.out, &resp["casePath"]) {
        (Some(out), Value::String(_)) => json!(out.display().to_string()),
        (_, other) => other.clone(),
    };
    let human = json!({"closed": true, "casePath": case_path}).to_string();
    let mut fields = resp;
    fields["casePath"] = case_path;
    Ok(Outcome::ok(fields, Some(human)))
}

fn stats(ctx: &Ctx, session: &str) -> Result<Outcome, CliError> {
    let client = ctx.client()?;
    let resp = client.get(&format!("/v1/sessions/{session}/stats"))?;
    let human = format!(
        "Session {session}\n  extracted spans: {}\n  injected spans:  {}\n  strict misses:   {}",
        resp["extractedSpans"], resp["injectedSpans"], resp["strictMisses"]
    );
    Ok(Outcome::ok(resp, Some(human)))
}

fn list(ctx: &Ctx) -> Result<Outcome, CliError> {
    let client = ctx.client()?;
    let resp = client.get("/v1/sessions")?;
    let mut human = String::new();
    let sessions = resp["sessions"].as_array().cloned().unwrap_or_default();
    if sessions.is_empty() {
        human.push_str("No open sessions");
    }
    for s in sessions {
        human.push_str(&format!(
            "{}  {}  revision {}\n",
            s["sessionId"].as_str().unwrap_or("?"),
            s["mode"].as_str().unwrap_or("?"),
            s["sessionRevision"]
        ));
    }
    Ok(Outcome::ok(resp, Some(human)))
}

/// Percent-encodes a query value; unreserved characters and `/` stay readable.
pub(crate) fn percent_encode(s: &str) -> String {
    const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~')
        .remove(b'/');
    percent_encoding::utf8_percent_encode(s, QUERY_VALUE).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_and_encoding() {
        assert_eq!(shell_quote("sess_AbC-12"), "sess_AbC-12");
        assert_eq!(shell_quote("a b'c"), "'a b'\\''c'");
        assert_eq!(percent_encode("/tmp/a b&c.json"), "/tmp/a%20b%26c.json");
        assert_eq!(
            content_type_of(std::path::Path::new("r.yaml"), b"version: 1"),
            "application/yaml"
        );
        assert_eq!(
            content_type_of(std::path::Path::new("r.json"), b" {}"),
            "application/json"
        );
    }
}
