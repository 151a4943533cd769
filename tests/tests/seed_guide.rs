//! The capture guide (`../shared/seeds/000_*`, "Capture your first session"), step by step,
//! against real processes: the reference stack binary of `examples/checkout` on free ports,
//! the `softprobe` CLI, `curl` and `jq`, run through `sh` exactly as a reader types them.
//! Then the captured case is replayed by a fresh stack whose upstreams are not running.
//!
//! The binaries belong to other packages, so they are not `CARGO_BIN_EXE_*` here. They are
//! found next to this test's own executable (which honours `CARGO_TARGET_DIR` and the
//! profile). `cargo test --workspace` has just built them; when one is missing (this test
//! run alone on a fresh target dir) it is built with `cargo build` of those binaries only.
//! A binary older than any source file of those two packages is rebuilt the same way, so a
//! stale build is never what gets tested.
//! Building unconditionally would be simpler but compiles a second feature set of the
//! TLS stack, since a two-package build unifies features differently from the workspace.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

/// `target/<profile>`, the directory holding this test's binaries and the ones it runs.
fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        softprobe_e2e::binaries::built_binaries(
            &[
                ("checkout-example", "stack"),
                ("softprobe-runtime", "softprobe"),
            ],
            &["softprobe-runtime/src", "examples/checkout/src"],
        )
    })
}

/// A stack process, stopped with SIGTERM (as Ctrl-C would) when dropped.
struct Stack {
    child: Child,
    ready: Value,
}

impl Stack {
    fn start(dir: &Path, args: &[&str]) -> Stack {
        let mut child = Command::new(bin_dir().join("stack"))
            .args(["--runtime", "127.0.0.1:0", "--app", "127.0.0.1:0"])
            .args(["--ingress", "127.0.0.1:0", "--egress", "127.0.0.1:0"])
            .args(args)
            .current_dir(dir)
            .env_remove("SOFTPROBE_CAPTURE_CASE_PATH")
            .stdout(Stdio::piped())
            .spawn()
            .expect("the stack binary starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        // Reads the banner up to the `ready` line, then keeps draining so the stack never
        // blocks on a full pipe.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(json) = line.strip_prefix("ready ")
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(json.to_owned());
                }
            }
        });
        let ready = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(json) => serde_json::from_str(&json).expect("the ready line is JSON"),
            Err(_) => {
                let _ = child.kill();
                panic!("the stack printed no ready line: {:?}", child.wait());
            }
        };
        Stack { child, ready }
    }

    fn url(&self, key: &str) -> String {
        self.ready[key]
            .as_str()
            .unwrap_or_else(|| panic!("no {key} in {}", self.ready))
            .to_owned()
    }

    fn port(&self, key: &str) -> u16 {
        let url = self.url(key);
        url.rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("{url}"))
    }

    /// Sends SIGTERM and waits for a clean exit.
    fn stop(mut self) {
        terminate(&mut self.child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait on the stack") {
                assert!(status.success(), "the stack stopped with {status}");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the stack ignored SIGTERM for 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn terminate(child: &mut Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -TERM {}", child.id());
}

/// Output of one guide command run by `sh` in `dir`, with the `softprobe` binary on `PATH`.
struct Shell {
    stdout: String,
    stderr: String,
    success: bool,
}

fn sh(dir: &Path, env: &[(&str, &str)], script: &str) -> Shell {
    let path = std::env::join_paths(std::iter::once(bin_dir().to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .expect("PATH joins");
    let out = Command::new("sh")
        .args(["-ec", script])
        .current_dir(dir)
        .env("PATH", path)
        .env_remove("SOFTPROBE_SESSION_ID")
        .env_remove("SOFTPROBE_RUNTIME_URL")
        .envs(env.iter().copied())
        .output()
        .expect("sh runs");
    Shell {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        success: out.status.success(),
    }
}

/// Runs a step that must succeed and returns its stdout.
fn step(dir: &Path, env: &[(&str, &str)], script: &str) -> String {
    let out = sh(dir, env, script);
    assert!(
        out.success,
        "this step failed:\n{script}\nstdout:\n{}\nstderr:\n{}",
        out.stdout, out.stderr
    );
    out.stdout
}

fn json(text: &str) -> Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

/// The session's counters once its hops have all been recorded (the outbound ones finish
/// streaming a moment after the inbound response is back).
fn stats_once_settled(dir: &Path, env: &[(&str, &str)], spans: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stats = json(&step(
            dir,
            env,
            r#"curl -s "$RUNTIME/v1/sessions/$SESSION_ID/stats" | jq"#,
        ));
        if stats["extractedSpans"].as_u64() >= Some(spans) || Instant::now() > deadline {
            return stats;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

const ORDER: &str = r#"{"amount": 1000, "currency": "USD"}"#;

#[test]
fn the_capture_guide_works_as_written_and_its_case_replays_offline() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let stack = Stack::start(
        dir,
        &[
            "--payments",
            "127.0.0.1:0",
            "--shipping",
            "127.0.0.1:0",
            "--inventory",
            "127.0.0.1:0",
        ],
    );
    let runtime = stack.url("runtime");
    let ingress = stack.url("ingress");
    let base = [
        ("RUNTIME", runtime.as_str()),
        ("INGRESS", ingress.as_str()),
        ("SOFTPROBE_RUNTIME_URL", runtime.as_str()),
        ("ORDER", ORDER),
    ];

    // 1. Start a capture session: the CLI, its --shell form, and raw curl.
    let started = json(&step(
        dir,
        &base,
        "softprobe session start --mode capture --json",
    ));
    let session_id = started["sessionId"].as_str().expect("sessionId").to_owned();
    assert!(session_id.starts_with("sess_"), "{started}");
    assert!(started["sessionRevision"].is_u64(), "{started}");
    let shell = step(
        dir,
        &base,
        r#"eval "$(softprobe session start --mode capture --shell)"
           echo "Session: $SOFTPROBE_SESSION_ID"
           softprobe session close --out shell.case.json >&2"#,
    );
    assert!(shell.starts_with("Session: sess_"), "{shell}");
    let curl_id = step(
        dir,
        &base,
        r#"SESSION_ID=$(curl -s -X POST "$RUNTIME/v1/sessions" \
             -H 'Content-Type: application/json' \
             -d '{"mode":"capture"}' | jq -r .sessionId)
           echo "$SESSION_ID""#,
    )
    .trim()
    .to_owned();
    assert!(
        curl_id.starts_with("sess_") && curl_id != session_id,
        "{curl_id}"
    );

    // 2. Drive traffic through the ingress proxy with the session header.
    let env: Vec<(&str, &str)> = base
        .iter()
        .copied()
        .chain([("SESSION_ID", session_id.as_str())])
        .collect();
    let drive = r#"curl -s -f -H "x-softprobe-session-id: $SESSION_ID" \
                     "$INGRESS/checkout" \
                     -d "$ORDER" \
                     -H 'content-type: application/json'"#;
    let captured = json(&step(dir, &env, drive));
    assert_eq!(captured["total"], 1499, "{captured}");
    assert_eq!(captured["paymentStatus"], "succeeded", "{captured}");
    let payment_id = captured["paymentId"]
        .as_str()
        .expect("paymentId")
        .to_owned();
    assert!(payment_id.starts_with("pi_"), "{captured}");

    // The stats show the inbound hop and the three outbound ones (inventory over gRPC,
    // payments over HTTPS, shipping over HTTP).
    let stats = stats_once_settled(dir, &env, 4);
    assert_eq!(stats["extractedSpans"], 4, "{stats}");
    // A session that got no traffic stays at 0: the guide's hint that the header is lost.
    let quiet: Vec<(&str, &str)> = base
        .iter()
        .copied()
        .chain([("SESSION_ID", curl_id.as_str())])
        .collect();
    let idle = json(&step(
        dir,
        &quiet,
        r#"curl -s "$RUNTIME/v1/sessions/$SESSION_ID/stats""#,
    ));
    assert_eq!(idle["extractedSpans"], 0, "{idle}");

    // 3. Close: the CLI with --out, and raw curl to the runtime's default path.
    let closed = step(
        dir,
        &env,
        "softprobe session close --session $SESSION_ID --out cases/checkout.case.json",
    );
    assert!(closed.contains("cases/checkout.case.json"), "{closed}");
    let drive_again = step(dir, &quiet, drive);
    assert!(drive_again.contains("\"total\":1499"), "{drive_again}");
    stats_once_settled(dir, &quiet, 4);
    let closed = json(&step(
        dir,
        &quiet,
        r#"curl -s -X POST "$RUNTIME/v1/sessions/$SESSION_ID/close""#,
    ));
    assert_eq!(closed["closed"], true, "{closed}");
    assert_eq!(closed["casePath"], "e2e/captured.case.json", "{closed}");

    // 4. Inspect: the guide's jq line, then the checks of its table.
    let summary = step(
        dir,
        &base,
        "jq '.caseId, (.traces | length), (.traces[0].resourceSpans[0].scopeSpans[0].spans | length)' \
           e2e/captured.case.json",
    );
    let lines: Vec<&str> = summary.lines().collect();
    assert_eq!(lines.len(), 3, "{summary}");
    assert!(lines[0].starts_with('"'), "caseId is a string: {summary}");
    assert!(lines[1].parse::<u32>().unwrap() >= 1, "{summary}");
    let all_spans = step(
        dir,
        &base,
        r#"jq -r '[.traces[].resourceSpans[].scopeSpans[].spans[]]
                  | map(.traceId | test("^[0-9a-f]{32}$")) | "\(length) \(all)"' \
             cases/checkout.case.json"#,
    );
    assert_eq!(
        all_spans.trim(),
        "4 true",
        "four spans, every traceId 32 hex"
    );
    let table = step(
        dir,
        &base,
        "softprobe inspect case cases/checkout.case.json",
    );
    for needle in [
        "inbound",
        "outbound",
        "POST",
        "GET",
        "/checkout",
        // The guide's table cuts the long payments URL to its origin.
        "https://",
        "/…",
        "/shipping",
        "200",
        // The inventory call, as gRPC.
        "grpc",
        "shop.Inventory/Reserve",
        "OK",
    ] {
        assert!(
            table.contains(needle),
            "no {needle:?} in the inspect table:\n{table}"
        );
    }
    step(
        dir,
        &base,
        "softprobe validate case cases/checkout.case.json e2e/captured.case.json",
    );
    let secrets = step(
        dir,
        &base,
        "grep -c sk_test_ cases/checkout.case.json || true",
    );
    assert_eq!(secrets.trim(), "0", "the payments API key was stored");

    // Redaction rules applied before capture keep a card number out of the file.
    std::fs::create_dir_all(dir.join("rules")).unwrap();
    std::fs::write(
        dir.join("rules/redact.yaml"),
        r#"version: 1
rules:
  - id: strip-auth
    priority: 100
    when: { direction: outbound }
    then:
      action: capture_only
      captureOnly:
        redactHeaders: [authorization, cookie, x-api-key]
        redactJsonPaths:
          - "$.card.number"
          - "$.user.ssn"
  - id: strip-card-inbound
    priority: 100
    when: { direction: inbound }
    then:
      action: capture_only
      captureOnly:
        redactJsonPaths: ["$.card.number"]
"#,
    )
    .unwrap();
    step(
        dir,
        &base,
        r#"softprobe session start --mode capture --json > session.json
           SESSION_ID=$(jq -r .sessionId session.json)
           softprobe session rules apply --session $SESSION_ID \
             --file rules/redact.yaml
           curl -s -f -H "x-softprobe-session-id: $SESSION_ID" "$INGRESS/checkout" \
             -H 'content-type: application/json' \
             -d '{"amount": 1000, "currency": "USD", "card": {"number": "4242424242424242", "cvc": "123"}}'
           sleep 1
           softprobe session close --session $SESSION_ID --out cases/redacted.case.json"#,
    );
    let redacted = std::fs::read_to_string(dir.join("cases/redacted.case.json")).unwrap();
    assert!(
        !redacted.contains("4242424242424242"),
        "the card number was captured"
    );
    assert!(redacted.contains("[REDACTED]"), "nothing was redacted");
    let table = step(
        dir,
        &base,
        "softprobe inspect case cases/redacted.case.json",
    );
    assert!(
        table.contains("https://") && table.contains("/…"),
        "{table}"
    );

    // One-shot capture: the driver gets SOFTPROBE_SESSION_ID and SOFTPROBE_TARGET.
    let one_shot = sh(
        dir,
        &base,
        r#"softprobe capture run \
             --driver 'curl -s -f -H "x-softprobe-session-id: $SOFTPROBE_SESSION_ID" "$SOFTPROBE_TARGET/checkout" -H "content-type: application/json" -d "{\"amount\": 2500, \"currency\": \"EUR\"}"' \
             --target "$INGRESS" \
             --out cases/checkout-happy-path.case.json"#,
    );
    assert!(
        one_shot.success,
        "capture run failed:\n{}\n{}",
        one_shot.stdout, one_shot.stderr
    );
    let table = step(
        dir,
        &base,
        "softprobe inspect case cases/checkout-happy-path.case.json",
    );
    assert!(
        table.contains("/checkout") && table.contains("/shipping"),
        "{table}"
    );

    // The order status stream (server-sent events relayed from the carrier) through the
    // ingress, in a capture of its own.
    let captured_events = step(
        dir,
        &base,
        r#"SESSION_ID=$(softprobe session start --mode capture --json | jq -r .sessionId)
           curl -s -f -N -H "x-softprobe-session-id: $SESSION_ID" "$INGRESS/orders/ord_guide/status"
           sleep 1
           softprobe session close --session $SESSION_ID --out cases/status.case.json >&2"#,
    );
    assert_eq!(
        captured_events.matches("event: status").count(),
        3,
        "{captured_events}"
    );

    // Ctrl-C (here SIGTERM) stops the stack cleanly, upstreams included.
    let (payments_port, shipping_port, inventory_port) = (
        stack.port("payments"),
        stack.port("shipping"),
        stack.port("inventory"),
    );
    stack.stop();
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", payments_port)).is_err(),
        "payments still listens after the stack stopped"
    );

    // Replay: a new stack with no upstreams; the case answers for them.
    let (payments, shipping, inventory) = (
        format!("127.0.0.1:{payments_port}"),
        format!("127.0.0.1:{shipping_port}"),
        format!("127.0.0.1:{inventory_port}"),
    );
    let replay = Stack::start(
        dir,
        &[
            "--no-upstreams",
            "--payments",
            &payments,
            "--shipping",
            &shipping,
            "--inventory",
            &inventory,
        ],
    );
    let (runtime, ingress) = (replay.url("runtime"), replay.url("ingress"));
    let base = [
        ("INGRESS", ingress.as_str()),
        ("SOFTPROBE_RUNTIME_URL", runtime.as_str()),
        ("ORDER", ORDER),
    ];
    let replayed = json(&step(
        dir,
        &base,
        &format!(
            r#"SESSION_ID=$(softprobe session start --mode replay --json | jq -r .sessionId)
               softprobe session load-case --session $SESSION_ID --file cases/checkout.case.json >&2
               {drive}"#
        ),
    ));
    assert_eq!(replayed["paymentId"], payment_id.as_str(), "{replayed}");
    for field in ["total", "shipping", "carrier", "paymentStatus", "currency"] {
        assert_eq!(
            replayed[field], captured[field],
            "{field}: {replayed} vs {captured}"
        );
    }
    assert_ne!(
        replayed["orderId"], captured["orderId"],
        "the app makes a new order id"
    );
    assert_eq!(replayed["reservation"], captured["reservation"]);
    // The stream replays too, event for event, with no carrier running.
    let replayed_events = step(
        dir,
        &base,
        r#"SESSION_ID=$(softprobe session start --mode replay --json | jq -r .sessionId)
           softprobe session load-case --session $SESSION_ID --file cases/status.case.json >&2
           curl -s -f -N -H "x-softprobe-session-id: $SESSION_ID" "$INGRESS/orders/ord_guide/status""#,
    );
    assert_eq!(replayed_events, captured_events);
    replay.stop();
}

/// The guide's step 1 shows three ways to start a session, so a reader following it leaves
/// several capture sessions open; one gets the traffic and is closed with raw curl into the
/// default `e2e/captured.case.json`. Ctrl-C on the stack then closes the others: the ones
/// that captured nothing write nothing, so the real capture is still there afterwards.
#[test]
fn ctrl_c_on_the_stack_with_sessions_left_open_keeps_the_real_capture() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let mut stack = Stack::start(
        dir,
        &[
            "--payments",
            "127.0.0.1:0",
            "--shipping",
            "127.0.0.1:0",
            "--inventory",
            "127.0.0.1:0",
        ],
    );
    let runtime = stack.url("runtime");
    let ingress = stack.url("ingress");
    let base = [
        ("RUNTIME", runtime.as_str()),
        ("INGRESS", ingress.as_str()),
        ("SOFTPROBE_RUNTIME_URL", runtime.as_str()),
        ("ORDER", ORDER),
    ];
    step(dir, &base, "softprobe session start --mode capture --json");
    step(
        dir,
        &base,
        r#"eval "$(softprobe session start --mode capture --shell)""#,
    );
    let session = step(
        dir,
        &base,
        r#"curl -s -X POST "$RUNTIME/v1/sessions" -H 'Content-Type: application/json' \
             -d '{"mode":"capture"}' | jq -r .sessionId"#,
    )
    .trim()
    .to_owned();
    let env: Vec<(&str, &str)> = base
        .iter()
        .copied()
        .chain([("SESSION_ID", session.as_str())])
        .collect();
    step(
        dir,
        &env,
        r#"curl -s -f -H "x-softprobe-session-id: $SESSION_ID" "$INGRESS/checkout" \
             -d "$ORDER" -H 'content-type: application/json'"#,
    );
    stats_once_settled(dir, &env, 4);
    step(
        dir,
        &env,
        r#"curl -s -X POST "$RUNTIME/v1/sessions/$SESSION_ID/close""#,
    );
    let spans =
        r#"jq '[.traces[].resourceSpans[].scopeSpans[].spans[]] | length' e2e/captured.case.json"#;
    assert_eq!(step(dir, &base, spans).trim(), "4");

    // Ctrl-C.
    let status = Command::new("kill")
        .args(["-INT", &stack.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(exit) = stack.child.try_wait().expect("wait on the stack") {
            break exit;
        }
        assert!(Instant::now() < deadline, "the stack ignored SIGINT");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "the stack stopped with {exit}");
    assert_eq!(
        step(dir, &base, spans).trim(),
        "4",
        "Ctrl-C replaced the capture with the sessions left open"
    );
    let written = step(dir, &base, "ls e2e");
    assert_eq!(written.trim(), "captured.case.json", "{written}");
}
