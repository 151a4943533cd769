//! Outbound request drift, end to end: a payments client records one charge, then a changed
//! service sends another amount, and the replay fails naming the field and both values — the
//! same text with the embedded runtime and with a standalone `softprobe-runtime` behind
//! `SOFTPROBE_RUNTIME_URL`. Generated ids and clocks in the request replay again and again;
//! the near misses (an id that is no longer a UUID, a timestamp turned into a number) drift.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};
use softprobe::{Mode, Run, Session};
use softprobe_e2e::binaries::RuntimeProcess;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// What the payments client sends this time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Charge {
    /// As recorded: the amount asked for, a fresh UUID key, the current RFC 3339 time.
    Recorded,
    /// Twice the amount.
    DoubleAmount,
    /// A fixed key that is no UUID.
    KeyNotUuid,
    /// The time as Unix seconds instead of RFC 3339.
    TimeAsNumber,
    /// No call to payments at all, the same answer.
    Skips,
}

#[derive(Clone)]
struct Pay {
    http: reqwest::Client,
    payments: String,
    charge: Charge,
}

fn uuid_v4() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the OS random source works");
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// `POST /pay {"amount": n}`: creates a payment intent and answers its status.
async fn pay(State(p): State<Pay>, Json(order): Json<Value>) -> Json<Value> {
    if p.charge == Charge::Skips {
        return Json(json!({"status": "succeeded"}));
    }
    let factor = if p.charge == Charge::DoubleAmount {
        2
    } else {
        1
    };
    let key = match p.charge {
        Charge::KeyNotUuid => "retry-1".to_owned(),
        _ => uuid_v4(),
    };
    let now = SystemTime::now();
    let at = match p.charge {
        Charge::TimeAsNumber => json!(now.duration_since(UNIX_EPOCH).unwrap().as_secs()),
        _ => json!(humantime::format_rfc3339_millis(now).to_string()),
    };
    let body = json!({
        "amount": order["amount"].as_i64().unwrap_or(0) * factor,
        "currency": "usd",
        "idempotencyKey": key,
        "requestedAt": at,
    });
    let answer: Value = match p
        .http
        .post(format!("{}/v1/payment_intents", p.payments))
        .json(&body)
        .send()
        .await
    {
        Ok(resp) => resp.json().await.unwrap_or(Value::Null),
        Err(e) => json!({"error": e.to_string()}),
    };
    Json(json!({"status": answer["status"]}))
}

async fn checkout(sp: Session, payments: String, charge: Charge) {
    let app = Router::new().route("/pay", post(pay)).with_state(Pay {
        http: sp.http_client(),
        payments,
        charge,
    });
    let base = sp.serve(app).await;
    let resp = sp
        .client()
        .post(format!("{base}/pay"))
        .json(&json!({"amount": 1000}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

/// A recorded case and the payments URL it recorded.
struct Scenario {
    case: PathBuf,
    payments: String,
    _dir: Option<tempfile::TempDir>,
    _upstream: Option<(tokio::runtime::Runtime, MockServer)>,
}

impl Scenario {
    /// Records one charge against a local payments API.
    fn capture() -> Scenario {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let server = rt.block_on(async {
            let server = MockServer::start().await;
            Mock::given(method("POST"))
                .and(path("/v1/payment_intents"))
                .respond_with(
                    ResponseTemplate::new(200)
                        .set_body_json(json!({"id": "pi_1", "status": "succeeded"})),
                )
                .mount(&server)
                .await;
            server
        });
        let dir = tempfile::tempdir().unwrap();
        let case = dir.path().join("pay.case.json");
        let payments = server.uri();
        let url = payments.clone();
        Run::new(&case)
            .mode(Mode::Capture)
            .name("request_drift::capture")
            .run(move |sp: Session| checkout(sp, url, Charge::Recorded))
            .expect("the capture runs");
        Scenario {
            case,
            payments,
            _dir: Some(dir),
            _upstream: Some((rt, server)),
        }
    }

    /// The case the parity test recorded, when this process is its child; else a new one.
    fn from_env_or_capture() -> Scenario {
        match (std::env::var("DRIFT_CASE"), std::env::var("DRIFT_PAYMENTS")) {
            (Ok(case), Ok(payments)) => Scenario {
                case: PathBuf::from(case),
                payments,
                _dir: None,
                _upstream: None,
            },
            _ => Scenario::capture(),
        }
    }

    fn run(&self) -> Run {
        Run::new(&self.case)
            .mode(Mode::Replay)
            .name("request_drift::replay")
    }

    fn replay(&self, run: Run, charge: Charge) -> Result<(), softprobe::Failure> {
        let payments = self.payments.clone();
        run.run(move |sp: Session| checkout(sp, payments, charge))
    }

    fn intents(&self) -> String {
        format!("{}/v1/payment_intents", self.payments)
    }
}

#[test]
fn a_doubled_amount_fails_naming_the_field_and_both_values() {
    let s = Scenario::from_env_or_capture();
    let drift = s
        .replay(s.run(), Charge::DoubleAmount)
        .expect_err("a doubled charge must fail the replay")
        .to_string();
    let line = format!(
        "1. outbound POST {} (hop 1 of 1): $.amount: recorded 1000, sent 2000\n",
        s.intents()
    );
    assert!(drift.contains(&line), "{drift}");
    assert!(
        !drift.contains("2. "),
        "only the amount differs; the key and the time are volatile:\n{drift}"
    );
    let skipped = s
        .replay(s.run().strict(true), Charge::Skips)
        .expect_err("strict fails a recorded call the service skipped")
        .to_string();
    let line = format!(
        "1. strict: outbound POST {} (hop 1 of 1) was recorded but never called",
        s.intents()
    );
    assert!(skipped.contains(&line), "{skipped}");
    if let Ok(out) = std::env::var("DRIFT_OUT") {
        std::fs::write(out, format!("{drift}\n----\n{skipped}")).unwrap();
    }
}

/// Runs the test above in a child process of this test binary and returns what it wrote.
fn child_report(s: &Scenario, runtime_url: Option<&str>, out: &Path) -> String {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "a_doubled_amount_fails_naming_the_field_and_both_values",
        "--test-threads=1",
    ])
    .env("DRIFT_CASE", &s.case)
    .env("DRIFT_PAYMENTS", &s.payments)
    .env("DRIFT_OUT", out)
    .env_remove("SOFTPROBE_RUNTIME_URL")
    .env_remove("SOFTPROBE_API_TOKEN")
    .env_remove("SOFTPROBE_MODE");
    if let Some(url) = runtime_url {
        cmd.env("SOFTPROBE_RUNTIME_URL", url);
    }
    let run = cmd.output().expect("the test binary runs");
    assert!(
        run.status.success(),
        "the child run ({}) failed:\n{}\n{}",
        runtime_url.unwrap_or("embedded"),
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    std::fs::read_to_string(out).expect("the child wrote its report")
}

/// Session ids differ from run to run; nothing else may.
fn without_ids(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("sess_") {
        out.push_str(&rest[..i]);
        out.push_str("sess_*");
        rest = rest[i + 5..].trim_start_matches(|c: char| c.is_ascii_alphanumeric());
    }
    out.push_str(rest);
    out
}

#[test]
fn the_verdict_reads_the_same_with_the_embedded_and_a_standalone_runtime() {
    let s = Scenario::capture();
    let runtime = RuntimeProcess::start();
    let dir = tempfile::tempdir().unwrap();
    let embedded = child_report(&s, None, &dir.path().join("embedded.txt"));
    let remote = child_report(&s, Some(&runtime.url), &dir.path().join("remote.txt"));
    assert!(
        embedded.contains("$.amount: recorded 1000, sent 2000"),
        "{embedded}"
    );
    assert_eq!(without_ids(&embedded), without_ids(&remote));
}

#[test]
fn generated_ids_and_clocks_replay_again_and_again_and_near_misses_drift() {
    let s = Scenario::capture();
    for _ in 0..3 {
        s.replay(s.run(), Charge::Recorded)
            .expect("a fresh UUID and timestamp compare by shape");
    }

    let key = s
        .replay(s.run(), Charge::KeyNotUuid)
        .expect_err("a key that is no longer a UUID drifts")
        .to_string();
    assert!(
        key.contains("$.idempotencyKey: recorded \"") && key.contains(", sent \"retry-1\""),
        "{key}"
    );
    let time = s
        .replay(s.run(), Charge::TimeAsNumber)
        .expect_err("a timestamp turned into a number drifts")
        .to_string();
    assert!(time.contains("$.requestedAt: recorded \""), "{time}");
    assert!(time.contains(", sent 1"), "{time}");

    // Opting a field out of shape comparison: its fresh UUID now differs.
    let exact = s
        .replay(s.run().exact([".body.idempotencyKey"]), Charge::Recorded)
        .expect_err("an exact field compares by value")
        .to_string();
    assert!(exact.contains("$.idempotencyKey: recorded \""), "{exact}");

    // One list of volatile fields covers the outbound request too.
    s.replay(s.run().redact([".body.idempotencyKey"]), Charge::KeyNotUuid)
        .expect("a redacted request field is never compared");
}

#[test]
fn a_policy_can_make_request_drift_a_warning() {
    let s = Scenario::capture();
    let payments = s.payments.clone();
    s.run()
        .run(move |sp: Session| async move {
            sp.policy(json!({"externalHttp": "strict", "requestDrift": "warn"}))
                .unwrap();
            checkout(sp, payments, Charge::DoubleAmount).await;
        })
        .expect("under requestDrift: warn the drift is shown, not failed");
}
