//! `softprobe doctor`: a checklist of what has to work before a capture can: the runtime
//! answers, speaks our spec version, accepts the token, and (given an ingress URL) the proxy
//! forwards traffic and sees the session header.

use clap::Args;
use serde_json::{Value, json};

use super::Ctx;
use super::output::{CliError, ExitCode, Outcome};
use super::session::close_session;

/// The case format and spec version this CLI speaks.
const SPEC_VERSION: &str = "1.0.0";

/// `doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// An ingress proxy URL to check (e.g. http://127.0.0.1:8082).
    #[arg(long, env = "SOFTPROBE_INGRESS_URL")]
    pub ingress_url: Option<String>,
}

struct Check {
    name: &'static str,
    ok: bool,
    detail: String,
}

pub(crate) fn run(ctx: &Ctx, args: &DoctorArgs) -> Result<Outcome, CliError> {
    let client = ctx.client()?;
    let mut checks = Vec::new();

    let health = client.get("/health");
    let reachable = health.is_ok();
    checks.push(Check {
        name: "runtime reachable",
        ok: reachable,
        detail: match &health {
            Ok(_) => format!("{} answers /health", client.base()),
            Err(e) => e.message.clone(),
        },
    });

    if reachable {
        match client.get("/v1/meta") {
            Ok(meta) => {
                let spec = meta["specVersion"].as_str().unwrap_or("?");
                let ours = env!("CARGO_PKG_VERSION");
                let version = meta["version"].as_str().unwrap_or("?");
                checks.push(Check {
                    name: "spec version",
                    ok: spec.split('.').next() == SPEC_VERSION.split('.').next(),
                    detail: format!(
                        "runtime {version} speaks spec {spec}; this CLI ({ours}) speaks {SPEC_VERSION}"
                    ),
                });
                checks.push(Check {
                    name: "token accepted",
                    ok: true,
                    detail: if ctx.token.is_some() {
                        "the bearer token is accepted".into()
                    } else {
                        "the runtime needs no token".into()
                    },
                });
            }
            Err(e) => checks.push(Check {
                name: "token accepted",
                ok: false,
                detail: match e.code.as_str() {
                    "missing_bearer_token" => {
                        "the runtime requires a token: set SOFTPROBE_API_TOKEN".into()
                    }
                    "invalid_bearer_token" => {
                        "the runtime rejects SOFTPROBE_API_TOKEN: check its value".into()
                    }
                    _ => e.message.clone(),
                },
            }),
        }
    }

    if let (true, Some(ingress)) = (reachable, &args.ingress_url) {
        checks.push(check_ingress(ctx, ingress));
    }

    let ok = checks.iter().all(|c| c.ok);
    let mut human = String::from("softprobe doctor\n");
    for c in &checks {
        let mark = match (c.ok, ctx.style.color) {
            (true, true) => "\x1b[32m✓\x1b[0m",
            (true, false) => "✓",
            (false, true) => "\x1b[31m✗\x1b[0m",
            (false, false) => "✗",
        };
        human.push_str(&format!("  {mark} {}: {}\n", c.name, c.detail));
    }
    human.push_str(if ok {
        "All checks passed."
    } else {
        "Some checks failed."
    });
    let fields = json!({
        "ok": ok,
        "checks": checks.iter().map(|c| json!({"name": c.name, "ok": c.ok, "detail": c.detail})).collect::<Vec<Value>>(),
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
    let name = "proxy forwards the session header";
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
        Ok(detail) => Check {
            name,
            ok: true,
            detail,
        },
        Err(detail) => Check {
            name,
            ok: false,
            detail,
        },
    }
}
