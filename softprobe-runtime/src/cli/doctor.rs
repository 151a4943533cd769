//! `softprobe doctor`: a checklist of what has to work before a capture can: the runtime
//! answers, speaks the control API this CLI speaks, accepts the token, and (given an ingress
//! URL) the proxy forwards traffic and sees the session header. `--json` answers in the
//! original Softprobe CLI's shape (`runtimeHealthy`, `specVersion`, `checks[{name, status,
//! details}]`, exit 10 on drift), so CI jobs written for it keep working.

use clap::Args;
use serde_json::{Value, json};

use super::Ctx;
use super::output::{CliError, ExitCode, Outcome};
use super::session::close_session;
use crate::control::{SCHEMA_VERSION, SPEC_VERSION};

/// `doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// An ingress proxy URL to check (e.g. http://127.0.0.1:8082).
    #[arg(long, env = "SOFTPROBE_INGRESS_URL")]
    pub ingress_url: Option<String>,
}

/// A check's outcome, with the original CLI's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Ok,
    Fail,
    Skip,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Fail => "fail",
            Status::Skip => "skip",
        }
    }
}

struct Check {
    name: &'static str,
    status: Status,
    details: String,
}

fn check(name: &'static str, ok: bool, details: String) -> Check {
    Check {
        name,
        status: if ok { Status::Ok } else { Status::Fail },
        details,
    }
}

pub(crate) fn run(ctx: &Ctx, args: &DoctorArgs) -> Result<Outcome, CliError> {
    let client = ctx.client()?;
    let mut checks = Vec::new();
    let skip = |name, details: &str| Check {
        name,
        status: Status::Skip,
        details: details.to_owned(),
    };

    let health = client.get("/health");
    let reachable = health.is_ok();
    checks.push(check(
        "runtime-reachable",
        reachable,
        match &health {
            Ok(_) => format!("{} answers /health", client.base()),
            Err(e) => e.message.clone(),
        },
    ));
    let mut meta = Value::Null;
    if reachable {
        match client.get("/v1/meta") {
            Ok(m) => {
                meta = m;
                checks.push(check(
                    "auth",
                    true,
                    if ctx.token.is_some() {
                        "the bearer token is accepted".into()
                    } else {
                        "the runtime needs no token".into()
                    },
                ));
            }
            Err(e) => checks.push(check(
                "auth",
                false,
                match e.code.as_str() {
                    "missing_bearer_token" => {
                        "auth_required: the runtime requires a token: set SOFTPROBE_API_TOKEN"
                            .into()
                    }
                    "invalid_bearer_token" => {
                        "auth_required: the runtime rejects SOFTPROBE_API_TOKEN: check its value"
                            .into()
                    }
                    _ => e.message.clone(),
                },
            )),
        }
    }
    // `/health` carries the versions too, so drift is judged even when meta needs a token.
    let versions = if meta.is_null() {
        health.as_ref().cloned().unwrap_or(Value::Null)
    } else {
        meta.clone()
    };
    let spec = versions["specVersion"].as_str();
    let schema = versions["schemaVersion"].as_str();
    let runtime_version = versions["runtimeVersion"]
        .as_str()
        .or_else(|| versions["version"].as_str());
    if reachable {
        checks.push(check(
            "version-drift",
            spec == Some(SPEC_VERSION),
            format!(
                "runtime {} speaks {}; this CLI ({}) speaks {SPEC_VERSION}",
                runtime_version.unwrap_or("?"),
                spec.unwrap_or("no specVersion"),
                env!("CARGO_PKG_VERSION")
            ),
        ));
        checks.push(check(
            "schema-version",
            schema == Some(SCHEMA_VERSION),
            format!(
                "runtime schemas {}; this CLI expects {SCHEMA_VERSION}",
                schema.unwrap_or("unknown")
            ),
        ));
    } else {
        checks.push(skip("version-drift", "the runtime is not reachable"));
        checks.push(skip("schema-version", "the runtime is not reachable"));
    }
    checks.push(skip(
        "wasm-binary",
        "softprobe's own ingress and egress proxies need no Envoy WASM filter",
    ));
    match (reachable, &args.ingress_url) {
        (true, Some(ingress)) => checks.push(check_ingress(ctx, ingress)),
        _ => checks.push(skip(
            "header-echo",
            "give --ingress-url (or SOFTPROBE_INGRESS_URL) to send a request through the proxy",
        )),
    }

    let ok = checks.iter().all(|c| c.status != Status::Fail);
    let mut human = String::from("softprobe doctor\n");
    for c in &checks {
        let mark = match (c.status, ctx.style.color) {
            (Status::Ok, true) => "\x1b[32m✓\x1b[0m",
            (Status::Ok, false) => "✓",
            (Status::Fail, true) => "\x1b[31m✗\x1b[0m",
            (Status::Fail, false) => "✗",
            (Status::Skip, _) => "-",
        };
        human.push_str(&format!("  {mark} {}: {}\n", c.name, c.details));
    }
    human.push_str(if ok {
        "All checks passed."
    } else {
        "Some checks failed."
    });
    let fields = json!({
        "ok": ok,
        "cliVersion": env!("CARGO_PKG_VERSION"),
        "runtimeHealthy": reachable,
        "runtimeVersion": runtime_version,
        "specVersion": spec,
        "schemaVersion": schema,
        "checks": checks.iter().map(|c| json!({
            "name": c.name,
            "status": c.status.as_str(),
            "details": c.details,
        })).collect::<Vec<Value>>(),
    });
    let outcome = Outcome::ok(fields, Some(human));
    Ok(if ok {
        outcome
    } else {
        outcome.with_exit(ExitCode::DoctorFailed)
    })
}

/// Sends one request through the ingress with a fresh capture session's header and checks
/// that the runtime saw it.
fn check_ingress(ctx: &Ctx, ingress: &str) -> Check {
    let name = "header-echo";
    let run = || -> Result<String, String> {
        let client = ctx.client().map_err(|e| e.message)?;
        let created = client
            .post_json("/v1/sessions", &json!({"mode": "capture"}))
            .map_err(|e| e.message)?;
        let id = created["sessionId"].as_str().unwrap_or_default().to_owned();
        let http = reqwest::blocking::Client::builder()
            .no_proxy()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())?;
        let sent = http
            .get(format!("{}/", ingress.trim_end_matches('/')))
            .header("x-softprobe-session-id", &id)
            .header("x-softprobe-test-name", "softprobe doctor")
            .send();
        let stats = client.get(&format!("/v1/sessions/{id}/stats"));
        // The probe's capture is thrown away.
        let scratch = std::env::temp_dir().join(format!("softprobe-doctor-{id}.case.json"));
        let _ = close_session(ctx, &id, Some(&scratch));
        let _ = std::fs::remove_file(&scratch);
        let resp = sent.map_err(|e| format!("cannot reach the ingress at {ingress}: {e}"))?;
        let stats = stats.map_err(|e| e.message)?;
        let seen = stats["extractedSpans"].as_u64().unwrap_or(0);
        if seen == 0 {
            return Err(format!(
                "the ingress answered {} but the runtime recorded nothing for the session: is the proxy connected to this runtime?",
                resp.status()
            ));
        }
        Ok(format!(
            "{ingress} answered {} and the runtime recorded {seen} span(s)",
            resp.status()
        ))
    };
    match run() {
        Ok(details) => check(name, true, details),
        Err(details) => check(name, false, details),
    }
}
