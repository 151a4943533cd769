//! `softprobe suite run` end to end: the `softprobe-runtime` binary with its ingress and
//! egress proxies, a small axum checkout app behind them calling a shipping service through
//! the egress proxy, generated case files, and the `softprobe` CLI running the suite.
//!
//! `SOFTPROBE_SUITE_CASES=1000 cargo test -p softprobe-runtime --test suite_run -- --nocapture
//! two_hundred` replays more cases and prints the throughput (the benchmark's figure).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../fixtures/cases/checkout.case.json"
);

struct Binary(Child);

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_addr() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

#[derive(Clone)]
struct AppState {
    http: reqwest::Client,
    /// When non-zero, orders whose amount is a multiple of it are declined (the "changed
    /// application" of the drift test).
    decline_multiple: Arc<AtomicU64>,
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
}

async fn wait_up(url: &str) {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if client.get(url).send().await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url} never answered");
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
        let app = Router::new()
            .route("/checkout", post(checkout))
            .with_state(AppState {
                http,
                decline_multiple: decline_multiple.clone(),
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let app_addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let child = Command::new(env!("CARGO_BIN_EXE_softprobe-runtime"))
            .args(["--listen", &control])
            .args(["--ingress-listen", &ingress])
            .args(["--ingress-upstream", &format!("http://{app_addr}")])
            .args(["--egress-listen", &egress])
            .env("SOFTPROBE_LOG", "warn")
            .env_remove("SOFTPROBE_API_TOKEN")
            .env_remove("SOFTPROBE_RUNTIME_URL")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
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
        }
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
        "<testsuites name=\"checkout\" tests=\"{n}\" failures=\"0\""
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
