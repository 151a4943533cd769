//! `softprobe suite run` end to end: the `softprobe-runtime` binary with its ingress and
//! egress proxies, a small axum checkout app behind them calling a shipping service through
//! the egress proxy, generated case files, and the `softprobe` CLI running the suite.
//!
//! `SOFTPROBE_SUITE_CASES=1000 cargo test -p softprobe-runtime --test suite_run -- --nocapture
//! two_hundred` replays more cases and prints the throughput (the benchmark's figure).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};
use support::{Binary, free_addr, runtime_command, wait_up};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../fixtures/cases/checkout.case.json"
);

#[derive(Clone)]
struct AppState {
    http: reqwest::Client,
    /// When non-zero, orders whose amount is a multiple of it are declined (the "changed
    /// application" of the drift test).
    decline_multiple: Arc<AtomicU64>,
    /// When non-zero, the quote request carries `{"amount": amount * factor}` as a JSON body
    /// (the "changed request" of the request-drift test).
    quote_factor: Arc<AtomicU64>,
}

/// The small app: `POST /checkout` asks `http://fragment/shipping` for a quote through the
/// egress proxy, carrying the trace context the ingress proxy gave it, and answers the order.
async fn checkout(
    State(st): State<AppState>,
    headers: HeaderMap,
    Json(order): Json<Value>,
) -> (axum::http::StatusCode, Json<Value>) {
    let mut req = st.http.get("http://fragment/shipping?zip=94107");
    for name in ["traceparent", "tracestate"] {
        if let Some(v) = headers.get(name) {
            req = req.header(name, v.as_bytes());
        }
    }
    let factor = st.quote_factor.load(Ordering::Relaxed);
    if factor != 0 {
        let amount = order["amount"].as_u64().unwrap_or(0) * factor;
        req = req.json(&json!({"amount": amount}));
    }
    let shipping = match req.send().await {
        Ok(r) if r.status().is_success() => r.json::<Value>().await.unwrap_or(Value::Null),
        Ok(r) => {
            let status = r.status().as_u16();
            let body = r.text().await.unwrap_or_default();
            return (
                axum::http::StatusCode::BAD_GATEWAY,
                Json(json!({"error": format!("shipping answered {status}: {body}")})),
            );
        }
        Err(e) => {
            return (
                axum::http::StatusCode::BAD_GATEWAY,
                Json(json!({"error": e.to_string()})),
            );
        }
    };
    let amount = order["amount"].as_u64().unwrap_or(0);
    let m = st.decline_multiple.load(Ordering::Relaxed);
    let status = if m != 0 && amount % m == 0 {
        "declined"
    } else {
        "paid"
    };
    (
        axum::http::StatusCode::OK,
        Json(json!({
            "orderId": format!("ord_{amount}"),
            "status": status,
            "amount": amount,
            "currency": order["currency"],
            "shipping": shipping,
        })),
    )
}

struct Stack {
    _runtime: Binary,
    runtime_url: String,
    ingress_url: String,
    decline_multiple: Arc<AtomicU64>,
    quote_factor: Arc<AtomicU64>,
}

impl Stack {
    async fn start() -> Stack {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (control, ingress, egress) = (free_addr(), free_addr(), free_addr());
        let http = reqwest::Client::builder()
            .proxy(reqwest::Proxy::http(format!("http://{egress}")).unwrap())
            .pool_max_idle_per_host(64)
            .build()
            .unwrap();
        let decline_multiple = Arc::new(AtomicU64::new(0));
        let quote_factor = Arc::new(AtomicU64::new(0));
        let app = Router::new()
            .route("/checkout", post(checkout))
            .with_state(AppState {
                http,
                decline_multiple: decline_multiple.clone(),
                quote_factor: quote_factor.clone(),
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let app_addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let child = runtime_command()
            .args(["--listen", &control])
            .args(["--ingress-listen", &ingress])
            .args(["--ingress-upstream", &format!("http://{app_addr}")])
            .args(["--egress-listen", &egress])
            .spawn()
            .expect("the runtime binary starts");
        let runtime = Binary(child);
        let runtime_url = format!("http://{control}");
        wait_up(&format!("{runtime_url}/health")).await;
        wait_up(&format!("http://{ingress}/")).await;
        Stack {
            _runtime: runtime,
            runtime_url,
            ingress_url: format!("http://{ingress}"),
            decline_multiple,
            quote_factor,
        }
    }

    /// Runs `softprobe replay run` of `case`, whose driver posts one order through the
    /// ingress; returns the exit code and stdout.
    async fn replay_run(&self, case: &Path, amount: u64) -> (i32, String) {
        let driver = format!(
            "curl -s -f -X POST -H \"x-softprobe-session-id: $SOFTPROBE_SESSION_ID\" \
             -H 'content-type: application/json' \
             -d '{{\"amount\": {amount}, \"currency\": \"USD\"}}' \"$SOFTPROBE_TARGET/checkout\" >/dev/null"
        );
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_softprobe"))
            .args([
                "--runtime-url",
                &self.runtime_url,
                "replay",
                "run",
                "--case",
            ])
            .arg(case)
            .args(["--target", &self.ingress_url, "--driver", &driver])
            .env_remove("SOFTPROBE_API_TOKEN")
            .env("NO_COLOR", "1")
            .output()
            .await
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    }

    /// Runs `softprobe suite run` with `extra` arguments; returns the exit code, the parsed
    /// `--json` summary and stderr.
    async fn run_suite(&self, suite: &Path, extra: &[&str]) -> (i32, Value, String) {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_softprobe"))
            .args(["--runtime-url", &self.runtime_url, "--json", "suite", "run"])
            .arg(suite)
            .args(["--app-url", &self.ingress_url])
            .args(extra)
            .env_remove("SOFTPROBE_API_TOKEN")
            .output()
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let summary = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}): {stdout}"));
        (
            out.status.code().unwrap_or(-1),
            summary,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

fn set_attr(span: &mut Value, key: &str, value: Value) {
    let attrs = span["attributes"].as_array_mut().unwrap();
    let slot = attrs
        .iter_mut()
        .find(|a| a["key"] == key)
        .unwrap_or_else(|| panic!("the fixture span has {key}"));
    slot["value"] = value;
}

fn attr<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    span["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| &a["value"])
}

/// Writes `n` variants of the checkout fixture: order `i` is for `100 + i` in one of three
/// currencies, with its own shipping quote, and the captured answer the app gives for it.
fn write_cases(dir: &Path, n: usize) -> PathBuf {
    let cases = dir.join("cases");
    std::fs::create_dir_all(&cases).unwrap();
    let fixture: Value = serde_json::from_slice(&std::fs::read(FIXTURE).unwrap()).unwrap();
    for i in 0..n {
        let mut case = fixture.clone();
        let amount = 100 + i as u64;
        let currency = ["USD", "EUR", "GBP"][i % 3];
        let shipping = json!({
            "carrier": "UPS",
            "service": if i % 2 == 0 { "ground" } else { "express" },
            "amount": 500 + (i as u64 % 400),
            "currency": currency,
            "estimatedDays": 1 + i % 5,
        });
        case["caseId"] = json!(format!("checkout-{i:04}"));
        let spans = case["traces"][0]["resourceSpans"][0]["scopeSpans"][0]["spans"]
            .as_array_mut()
            .unwrap();
        for span in spans.iter_mut() {
            let direction = attr(span, "sp.traffic.direction").unwrap()["stringValue"].clone();
            let host = attr(span, "url.host").unwrap()["stringValue"].clone();
            if direction == "inbound" {
                let req = json!({"amount": amount, "currency": currency});
                let resp = json!({
                    "orderId": format!("ord_{amount}"),
                    "status": "paid",
                    "amount": amount,
                    "currency": currency,
                    "shipping": shipping,
                });
                set_attr(
                    span,
                    "http.request.body",
                    json!({"stringValue": req.to_string()}),
                );
                set_attr(
                    span,
                    "http.response.body",
                    json!({"stringValue": resp.to_string()}),
                );
            } else if host == "fragment" {
                set_attr(
                    span,
                    "http.response.body",
                    json!({"stringValue": shipping.to_string()}),
                );
            }
        }
        std::fs::write(
            cases.join(format!("checkout-{i:04}.case.json")),
            serde_json::to_vec_pretty(&case).unwrap(),
        )
        .unwrap();
    }
    cases
}

/// Cases whose recorded quote request carries `{"amount": amount}` as its JSON body.
fn write_quoted_cases(dir: &Path, n: usize) -> PathBuf {
    let cases = write_cases(dir, n);
    for i in 0..n {
        let path = cases.join(format!("checkout-{i:04}.case.json"));
        let mut case: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let spans = case["traces"][0]["resourceSpans"][0]["scopeSpans"][0]["spans"]
            .as_array_mut()
            .unwrap();
        for span in spans.iter_mut() {
            if attr(span, "url.host").unwrap()["stringValue"] == "fragment" {
                let attrs = span["attributes"].as_array_mut().unwrap();
                attrs.push(json!({"key": "http.request.header.content-type",
                                  "value": {"stringValue": "application/json"}}));
                attrs.push(json!({"key": "http.request.body",
                                  "value": {"stringValue": json!({"amount": 100 + i}).to_string()}}));
            }
        }
        std::fs::write(&path, serde_json::to_vec_pretty(&case).unwrap()).unwrap();
    }
    cases
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_outbound_request_fails_replay_run_and_suite_run() {
    let stack = Stack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cases = write_quoted_cases(dir.path(), 3);
    let case = cases.join("checkout-0000.case.json");
    stack.quote_factor.store(1, Ordering::Relaxed);
    let (code, out) = stack.replay_run(&case, 100).await;
    assert_eq!(code, 0, "the recorded request replays:\n{out}");
    assert!(out.contains("0 drifted request(s)"), "{out}");

    // The app now asks for a quote on twice the amount: the recorded answer is still served,
    // and the verdict names the call, the field and both values.
    stack.quote_factor.store(2, Ordering::Relaxed);
    let (code, out) = stack.replay_run(&case, 100).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(
            "1. outbound GET http://fragment/shipping?zip=94107 (hop 2 of 2): $.amount: recorded 100, sent 200"
        ),
        "{out}"
    );

    let suite = dir.path().join("quotes.suite.yaml");
    std::fs::write(
        &suite,
        "name: quotes\n\
         cases: cases/*.case.json\n\
         defaults:\n  \
           request: { source: case.ingress }\n  \
           assertions: { status: 200, body: { mode: json-subset } }\n  \
           policy: { externalHttp: strict }\n",
    )
    .unwrap();
    let (code, summary, stderr) = stack.run_suite(&suite, &["--parallel", "2"]).await;
    assert_eq!(code, 20, "{summary:#}\n{stderr}");
    assert_eq!(summary["failed"], 3, "{summary:#}");
    let failure = &summary["cases"][1]["failures"][0];
    assert_eq!(failure["kind"], "request-drift", "{summary:#}");
    assert_eq!(
        failure["message"],
        "outbound GET http://fragment/shipping?zip=94107 (hop 2 of 2): $.amount: recorded 101, sent 202"
    );

    stack.quote_factor.store(1, Ordering::Relaxed);
    let (code, summary, stderr) = stack.run_suite(&suite, &["--parallel", "2"]).await;
    assert_eq!(code, 0, "{summary:#}\n{stderr}");
    assert_eq!(summary["passed"], 3);
}

fn names_with(summary: &Value, status: &str) -> Vec<String> {
    summary["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == status)
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_cases_pass_and_a_changed_response_fails_exactly_its_cases() {
    let n: usize = std::env::var("SOFTPROBE_SUITE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let stack = Stack::start().await;
    let dir = tempfile::tempdir().unwrap();
    write_cases(dir.path(), n);
    let suite = dir.path().join("checkout.suite.yaml");
    std::fs::write(
        &suite,
        "name: checkout\n\
         cases: ${CASES_DIR:-cases}/*.case.json\n\
         defaults:\n  \
           request: { source: case.ingress }\n  \
           assertions:\n    \
             status: 200\n    \
             headers:\n      \
               include: { content-type: '^application/json' }\n    \
             body: { mode: json-subset }\n  \
           policy: { externalHttp: strict }\n",
    )
    .unwrap();
    let (junit, html) = (dir.path().join("junit.xml"), dir.path().join("report.html"));
    let (j, h) = (junit.to_str().unwrap(), html.to_str().unwrap());

    let started = Instant::now();
    let (code, summary, stderr) = stack
        .run_suite(&suite, &["--parallel", "16", "--junit", j, "--report", h])
        .await;
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(code, 0, "{summary:#}\n{stderr}");
    assert_eq!(summary["passed"], n, "{summary:#}");
    assert_eq!(summary["failed"], 0);
    println!(
        "suite of {n} cases: {:.0} cases/s in the runner, {:.0} cases/s including process start ({secs:.2} s)",
        summary["casesPerSecond"].as_f64().unwrap(),
        n as f64 / secs
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert_eq!(xml.matches("<testcase ").count(), n);
    assert!(xml.contains(&format!(
        "<testsuites name=\"checkout\" tests=\"{n}\" skipped=\"0\" failures=\"0\""
    )));

    // The app now declines every order that is a multiple of 50: cases 0, 50, 100, 150.
    stack.decline_multiple.store(50, Ordering::Relaxed);
    let (code, summary, stderr) = stack
        .run_suite(&suite, &["--parallel", "16", "--junit", j, "--report", h])
        .await;
    assert_eq!(code, 20, "{summary:#}\n{stderr}");
    let expected: Vec<String> = (0..n)
        .filter(|i| (100 + i) % 50 == 0)
        .map(|i| format!("checkout-{i:04}"))
        .collect();
    assert_eq!(names_with(&summary, "failed"), expected);
    assert_eq!(summary["passed"], n - expected.len());
    let failed = &summary["cases"][0];
    assert_eq!(failed["failures"][0]["kind"], "body", "{failed:#}");
    assert_eq!(
        failed["failures"][0]["diff"],
        "- $.status: \"paid\"\n+ $.status: \"declined\"\n"
    );

    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains(&format!("failures=\"{}\"", expected.len())));
    assert!(
        xml.contains("<testcase name=\"checkout-0050\"")
            && xml.contains(
                "- $.status: &quot;paid&quot;\n+ $.status: &quot;declined&quot;\n</failure>"
            ),
        "{xml}"
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<details class=\"case failed\" open>"));
    assert!(page.contains("<span class=\"del\">- $.status: &quot;paid&quot;</span>"));
    assert!(page.contains("<span class=\"add\">+ $.status: &quot;declined&quot;</span>"));
    assert_eq!(
        page.matches("class=\"case failed\"").count(),
        expected.len()
    );

    // --filter and --fail-fast narrow the run.
    let (code, summary, _) = stack
        .run_suite(
            &suite,
            &["--filter", "checkout-005", "--parallel", "1", "--fail-fast"],
        )
        .await;
    assert_eq!(code, 20);
    assert_eq!(summary["total"], 10, "{summary:#}");
    assert_eq!(names_with(&summary, "failed"), ["checkout-0050"]);
    assert_eq!(summary["skipped"], 9);
}

fn script(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, body).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shell_and_python_hooks_rewrite_a_mock_and_add_an_assertion() {
    let stack = Stack::start().await;
    let dir = tempfile::tempdir().unwrap();
    write_cases(dir.path(), 5);
    let hooks = dir.path().join("hooks");
    std::fs::create_dir(&hooks).unwrap();
    // The shell hook answers the captured quote with FedEx instead of UPS; the request it
    // receives already has the `response` member it must answer with.
    script(
        &hooks.join("fedex.sh"),
        "#!/bin/sh\nsed 's/\"carrier\":\"UPS\"/\"carrier\":\"FedEx\"/'\n",
    );
    script(&hooks.join("same.sh"), "#!/bin/sh\ncat\n");
    script(
        &hooks.join("garbage.sh"),
        "#!/bin/sh\necho 'carrier: FedEx'\n",
    );
    script(
        &hooks.join("carrier.py"),
        "#!/usr/bin/env python3\n\
         import json, sys\n\
         req = json.load(sys.stdin)\n\
         assert req['kind'] == 'assert_body', req\n\
         carrier = req['actual']['body']['shipping']['carrier']\n\
         if carrier == 'FedEx':\n    print(json.dumps({'pass': True}))\n\
         else:\n    print(json.dumps({'pass': False, 'message': 'carrier is %s, expected FedEx' % carrier,\n                      'diff': '- $.shipping.carrier: \"FedEx\"\\n+ $.shipping.carrier: \"%s\"\\n' % carrier}))\n",
    );
    script(
        &hooks.join("bigger_order.py"),
        "#!/usr/bin/env python3\n\
         import json, sys\n\
         req = json.load(sys.stdin)\n\
         body = json.loads(req['request']['body'])\n\
         body['amount'] = 150\n\
         print(json.dumps({'request': {'body': json.dumps(body)}}))\n",
    );
    let suite = dir.path().join("hooks.suite.yaml");
    std::fs::write(
        &suite,
        r#"name: hooks
cases:
  - cases/checkout-0000.case.json
  - cases/checkout-0001.case.json
  - path: cases/checkout-0002.case.json
    name: no-rewrite
    overrides:
      mocks:
        - name: shipping
          match: { direction: outbound, host: fragment, path: /shipping }
          hook: same.sh
  - path: cases/checkout-0003.case.json
    name: bad-hook
    overrides:
      mocks:
        - name: shipping
          match: { direction: outbound, host: fragment, path: /shipping }
          hook: garbage.sh
  - path: cases/checkout-0004.case.json
    name: rewritten-request
    overrides:
      request:
        hook: bigger_order.py
defaults:
  mocks:
    - name: shipping
      match: { direction: outbound, host: fragment, path: /shipping }
      source: case
      hook: fedex.sh
  assertions:
    body:
      mode: json-subset
      ignore: ["$.shipping.carrier"]
      hook: carrier.py
"#,
    )
    .unwrap();
    let junit = dir.path().join("junit.xml");
    let (code, summary, stderr) = stack
        .run_suite(
            &suite,
            &[
                "--hooks",
                hooks.to_str().unwrap(),
                "--junit",
                junit.to_str().unwrap(),
            ],
        )
        .await;
    assert_eq!(code, 20, "{summary:#}\n{stderr}");
    assert_eq!(
        names_with(&summary, "passed"),
        ["checkout-0000", "checkout-0001"],
        "{summary:#}"
    );
    let cases = summary["cases"].as_array().unwrap();
    let no_rewrite = &cases[2]["failures"];
    assert_eq!(no_rewrite.as_array().unwrap().len(), 1, "{no_rewrite:#}");
    assert_eq!(no_rewrite[0]["kind"], "assert_body");
    assert!(
        no_rewrite[0]["message"]
            .as_str()
            .unwrap()
            .ends_with("carrier.py: carrier is UPS, expected FedEx"),
        "{no_rewrite:#}"
    );
    let bad = &cases[3]["failures"][0];
    assert_eq!(bad["kind"], "hook");
    let message = bad["message"].as_str().unwrap();
    assert!(
        message.contains("garbage.sh printed bad JSON") && message.contains("carrier: FedEx"),
        "{message}"
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains("+ $.shipping.carrier: &quot;UPS&quot;"),
        "{xml}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fixture_suite_passes_with_replayed_and_inline_mocks() {
    let stack = Stack::start().await;
    let suite =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/suites/checkout.suite.yaml");
    let (code, summary, stderr) = stack.run_suite(&suite, &[]).await;
    assert_eq!(code, 0, "{summary:#}\n{stderr}");
    assert_eq!(
        names_with(&summary, "passed"),
        ["checkout", "checkout-slow-shipping"]
    );
    // The override replaced the default shipping mock (same name) with one that waits 50 ms.
    let slow = summary["cases"][1]["durationMs"].as_f64().unwrap();
    assert!(slow >= 50.0, "{summary:#}");
}

/// The checkout fixture without its inbound hop, as the original's example cases are: the
/// request comes entirely from the suite.
fn write_outbound_only_case(dir: &Path) -> PathBuf {
    let mut case: Value = serde_json::from_slice(&std::fs::read(FIXTURE).unwrap()).unwrap();
    let spans = case["traces"][0]["resourceSpans"][0]["scopeSpans"][0]["spans"]
        .as_array_mut()
        .unwrap();
    spans.retain(|s| attr(s, "sp.traffic.direction").unwrap()["stringValue"] != "inbound");
    let cases = dir.join("cases");
    std::fs::create_dir_all(&cases).unwrap();
    let path = cases.join("outbound-only.case.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&case).unwrap()).unwrap();
    path
}

/// TypeScript and JavaScript hooks written to the original's calling convention.
fn write_js_hooks(dir: &Path) -> (PathBuf, PathBuf) {
    let hooks = dir.join("hooks");
    std::fs::create_dir_all(&hooks).unwrap();
    let ts = hooks.join("checks.ts");
    std::fs::write(
        &ts,
        r#"interface Issue { path: string; message: string }
type Env = Record<string, string>;
interface Resp { status: number; headers: Record<string, string>; body: any }

// Body assertion: the order answers with the carrier and amount the env names.
export function orderMatchesEnv({ actual, env }: { actual: any; env: Env }): Issue[] {
  const issues: Issue[] = [];
  if (actual?.shipping?.carrier !== env.CARRIER) {
    issues.push({ path: "$.shipping.carrier", message: `expected ${env.CARRIER}, got ${actual?.shipping?.carrier}` });
  }
  if (actual?.amount !== Number(env.AMOUNT)) {
    issues.push({ path: "$.amount", message: `expected ${env.AMOUNT}, got ${actual?.amount}` });
  }
  return issues;
}

// Mock-response rewrite: the captured shipping quote, with the carrier the env names.
export async function rewriteCarrier(
  { capturedResponse, mockName, env }: { capturedResponse: Resp; mockName: string; env: Env },
): Promise<Partial<Resp>> {
  if (mockName !== "shipping") throw new Error(`unexpected mock ${mockName}`);
  return { body: { ...capturedResponse.body, carrier: env.CARRIER } };
}
"#,
    )
    .unwrap();
    let js = hooks.join("request.mjs");
    std::fs::write(
        &js,
        r#"// Request transform: the amount comes from the suite's env.
export function orderFromEnv({ request, env }) {
  const body = typeof request.body === "string" ? JSON.parse(request.body) : request.body;
  return { body: JSON.stringify({ ...body, amount: Number(env.AMOUNT) }) };
}
export function mentions503({ actual }) {
  return String(actual?.error ?? "").includes("503") ? [] : ["the error does not mention shipping's 503"];
}
export function carrierIsUps({ actual }) {
  return actual?.shipping?.carrier === "UPS" ? [] : [{ path: "$.shipping.carrier", message: `expected UPS, got ${actual?.shipping?.carrier}` }];
}
export function explode() { throw new Error("boom"); }
export function garbage() { return 42; }
export function slow() { return new Promise(() => {}); }
"#,
    )
    .unwrap();
    (ts, js)
}

/// `NODE_PATH` holding the `typescript` package that strips types on Node 20
/// (`npm ci --prefix tests`, which `.ci/run` does).
fn node_path() -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/node_modules");
    assert!(
        dir.join("typescript").is_dir(),
        "{} has no typescript package: run `npm ci --prefix tests` (Node and npm: `apt-get install nodejs npm`)",
        dir.display()
    );
    dir.display().to_string()
}

async fn softprobe_with_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_softprobe"));
    cmd.args(args).env_remove("SOFTPROBE_API_TOKEN");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().await.unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_original_suite_with_typescript_and_javascript_hooks_runs_unchanged() {
    let stack = Stack::start().await;
    let dir = tempfile::tempdir().unwrap();
    write_outbound_only_case(dir.path());
    let (ts, js) = write_js_hooks(dir.path());
    let suite = dir.path().join("original.suite.yaml");
    std::fs::write(
        &suite,
        format!(
            r#"name: original-checkout
version: 1
env:
  CARRIER: FedEx
  AMOUNT: "1500"
hooks: [hooks/checks.ts, hooks/request.mjs]
retries: 3
request:
  url: ${{ORIGINAL_INGRESS_URL:-{ingress}}}/checkout
  method: POST
  path: /checkout
  headers: {{ content-type: application/json }}
  body: '{{"amount": 1000, "currency": "USD"}}'
  transform: orderFromEnv
mocks:
  - name: shipping
    match: {{ direction: outbound, method: GET, path: /shipping }}
    hook: rewriteCarrier
assertions:
  status: {{ min: 200, max: 299 }}
  headers:
    include: {{ Content-Type: json }}
  body:
    custom: orderMatchesEnv
cases:
  - path: cases/outbound-only.case.json
    name: fedex
  - path: cases/outbound-only.case.json
    name: shipping-down
    overrides:
      mocks:
        - name: shipping
          match: {{ direction: outbound, method: GET, path: /shipping }}
          response: {{ status: 503, body: {{ error: down }} }}
      assertions:
        status: 502
        body: {{ custom: mentions503 }}
  - path: cases/outbound-only.case.json
    name: wants-ups
    overrides:
      assertions:
        body: {{ custom: carrierIsUps }}
  - path: cases/outbound-only.case.json
    name: throws
    overrides:
      assertions:
        body: {{ custom: explode }}
  - path: cases/outbound-only.case.json
    name: garbage
    overrides:
      assertions:
        body: {{ custom: garbage }}
  - path: cases/outbound-only.case.json
    name: slow
    overrides:
      assertions:
        body: {{ custom: slow }}
  - path: cases/outbound-only.case.json
    name: later
    skip: true
"#,
            ingress = stack.ingress_url
        ),
    )
    .unwrap();
    let np = node_path();
    let (code, stdout, stderr) = softprobe_with_env(
        &[
            "--runtime-url",
            &stack.runtime_url,
            "--json",
            "suite",
            "run",
            suite.to_str().unwrap(),
            "--hooks",
            ts.to_str().unwrap(),
            "--hooks",
            js.to_str().unwrap(),
            "--hook-timeout",
            "2s",
        ],
        &[("NODE_PATH", np.as_str())],
    )
    .await;
    let summary: Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
    assert_eq!(code, 20, "{summary:#}\n{stderr}");
    assert!(
        stderr.contains(&format!(
            "warning: {}:7: unknown key $.retries ignored",
            suite.display()
        )),
        "{stderr}"
    );
    assert_eq!(
        names_with(&summary, "passed"),
        ["fedex", "shipping-down"],
        "{summary:#}"
    );
    assert_eq!(names_with(&summary, "skipped"), ["later"]);
    let failure = |name: &str| {
        let case = summary["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap();
        let f = &case["failures"];
        assert_eq!(f.as_array().unwrap().len(), 1, "{name}: {f:#}");
        (
            f[0]["kind"].as_str().unwrap().to_owned(),
            f[0]["message"].as_str().unwrap().to_owned(),
        )
    };
    let js_shown = js.display().to_string();
    let (kind, message) = failure("wants-ups");
    assert_eq!(kind, "assert_body");
    assert_eq!(
        message,
        format!("carrierIsUps ({js_shown}): $.shipping.carrier: expected UPS, got FedEx")
    );
    let (kind, message) = failure("throws");
    assert_eq!(kind, "hook");
    assert!(
        message.starts_with(&format!("hook explode ({js_shown}) threw: Error: boom")),
        "{message}"
    );
    let (_, message) = failure("garbage");
    assert_eq!(
        message,
        format!(
            "hook garbage ({js_shown}): returned 42, expected a list of issues ([] when the check passes)"
        )
    );
    let (_, message) = failure("slow");
    assert_eq!(
        message,
        format!("hook slow ({js_shown}) timed out after 2000 ms")
    );

    // The suite's `hooks` list loads the same modules without --hooks.
    let (code, stdout, stderr) = softprobe_with_env(
        &[
            "--runtime-url",
            &stack.runtime_url,
            "--json",
            "suite",
            "run",
            suite.to_str().unwrap(),
            "--filter",
            "fedex",
        ],
        &[("NODE_PATH", np.as_str())],
    )
    .await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");

    // Without the mock rewrite the captured carrier (UPS) comes back, and the custom
    // TypeScript check fails, naming the field.
    let changed = std::fs::read_to_string(&suite)
        .unwrap()
        .replace("    hook: rewriteCarrier\n", "    source: case\n");
    let other = dir.path().join("changed.suite.yaml");
    std::fs::write(&other, changed).unwrap();
    let (code, stdout, _) = softprobe_with_env(
        &[
            "--runtime-url",
            &stack.runtime_url,
            "--json",
            "suite",
            "run",
            other.to_str().unwrap(),
            "--filter",
            "fedex",
        ],
        &[("NODE_PATH", np.as_str())],
    )
    .await;
    assert_eq!(code, 20, "{stdout}");
    let out: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        out["cases"][0]["failures"][0]["message"],
        format!(
            "orderMatchesEnv ({}): $.shipping.carrier: expected FedEx, got UPS",
            ts.display()
        ),
        "{out:#}"
    );

    // --strict-suite refuses the unknown key, naming the line.
    let (code, _, stderr) = softprobe_with_env(
        &[
            "suite",
            "validate",
            "--strict-suite",
            suite.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    assert_eq!(code, 5);
    assert!(
        stderr.contains(":7: $.retries: unknown field `retries`"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hook_modules_without_node_or_a_type_stripper_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    write_outbound_only_case(dir.path());
    let (ts, js) = write_js_hooks(dir.path());
    let suite = dir.path().join("s.suite.yaml");
    std::fs::write(&suite, "name: s\ncases: cases/*.case.json\n").unwrap();
    let run = |hook: PathBuf, env: Vec<(&'static str, String)>| {
        let suite = suite.clone();
        async move {
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            softprobe_with_env(
                &[
                    "--runtime-url",
                    "http://127.0.0.1:9",
                    "suite",
                    "run",
                    suite.to_str().unwrap(),
                    "--hooks",
                    hook.to_str().unwrap(),
                ],
                &env,
            )
            .await
        }
    };
    let (code, _, stderr) = run(
        js.clone(),
        vec![("SOFTPROBE_NODE", "/nonexistent/node".into())],
    )
    .await;
    assert_eq!(code, 5, "{stderr}");
    assert!(
        stderr.contains("JavaScript/TypeScript hooks need Node.js, and /nonexistent/node was not found: install Node 20 or later"),
        "{stderr}"
    );
    // Node 20 cannot strip types itself: without the typescript package a .ts hook is refused
    // with what to install (on a Node that strips types, it loads).
    let (code, _, stderr) = run(ts, vec![("NODE_PATH", String::new())]).await;
    let strips = Command::new("node")
        .args(["-p", "Boolean(process.features.typescript)"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "true")
        .unwrap_or(false);
    if strips {
        assert_eq!(code, 3, "{stderr}");
    } else {
        assert_eq!(code, 5, "{stderr}");
        assert!(
            stderr.contains(
                "need the \"typescript\" npm package: run `npm install --save-dev typescript`"
            ),
            "{stderr}"
        );
    }
}
