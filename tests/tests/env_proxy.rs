//! Services that build their own HTTP client from `HTTP_PROXY`, tested in process under plain
//! `cargo test` threads: each test's calls land in its own case, round after round, when the
//! tests hold `sp.proxy_env()`; without it, calls that cannot be told apart are refused with
//! the ways out, and a lone test (as under nextest) gets its calls.
//!
//! The process environment must name the egress proxy before any thread starts (the harness
//! never writes it), so this test (`harness = false`) runs itself again as a child process
//! with `HTTP_PROXY` and `SOFTPROBE_EGRESS_ADDR` set, and the child runs the test functions on
//! two threads, as libtest does.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Barrier};

use axum::Router;
use axum::extract::{Query, State};
use axum::routing::get;
use serde_json::{Value, json};
use softprobe::{Mode, Session};
use softprobe_e2e::free_port;

const ROLE: &str = "SOFTPROBE_ENV_PROXY_TEST_ROLE";
const CASES: &str = "SOFTPROBE_ENV_PROXY_TEST_CASES";
const UPSTREAM: &str = "SOFTPROBE_ENV_PROXY_TEST_UPSTREAM";

/// The service under test: on every request it builds a client the way most services do,
/// from the environment (`HTTP_PROXY`), and calls its upstream.
fn service(upstream: String) -> Router {
    async fn work(
        State(upstream): State<String>,
        Query(q): Query<std::collections::HashMap<String, String>>,
    ) -> axum::Json<Value> {
        let test = q.get("test").cloned().unwrap_or_default();
        let client = reqwest::Client::builder().build().unwrap();
        let answer = client
            .get(format!("{upstream}/quote?test={test}"))
            .send()
            .await;
        let (status, body) = match answer {
            Ok(resp) => (
                resp.status().as_u16(),
                resp.json::<Value>().await.unwrap_or(Value::Null),
            ),
            Err(e) => (0, json!(e.to_string())),
        };
        axum::Json(json!({"test": test, "upstreamStatus": status, "upstream": body}))
    }
    Router::new().route("/work", get(work)).with_state(upstream)
}

/// The real upstream of a capture: answers with the test name it was asked for.
fn start_upstream(port: u16, rt: &tokio::runtime::Runtime) {
    let app = Router::new().route(
        "/quote",
        get(
            |Query(q): Query<std::collections::HashMap<String, String>>| async move {
                axum::Json(json!({"quote": 42, "for": q.get("test")}))
            },
        ),
    );
    let listener = rt
        .block_on(tokio::net::TcpListener::bind(("127.0.0.1", port)))
        .unwrap();
    rt.spawn(async move { axum::serve(listener, app).await });
}

/// One test function: serves the service, calls it once as test `name`, checks it got its
/// own answer.
fn one_test(
    name: &str,
    mode: Mode,
    guard: bool,
    together: Option<Arc<Barrier>>,
) -> Result<(), String> {
    let dir = PathBuf::from(std::env::var(CASES).unwrap());
    let upstream = std::env::var(UPSTREAM).unwrap();
    let name = name.to_owned();
    softprobe::Run::new(dir.join(format!("{name}.case.json")))
        .mode(mode)
        .name(format!("env_proxy::{name}"))
        .run(move |sp: Session| async move {
            if let Some(b) = together {
                // Both sessions are open before either test goes on.
                b.wait();
            }
            let _env = guard.then(|| sp.proxy_env());
            if let Some(env) = &_env {
                assert_eq!(std::env::var("HTTP_PROXY").ok(), Some(env.proxy_url()));
            }
            let base = sp.serve(service(upstream)).await;
            let body: Value = sp
                .client()
                .get(format!("{base}/work?test={name}"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if body["upstreamStatus"] != 200 || body["upstream"]["for"] != name.as_str() {
                return Err(format!("{name} did not get its own answer: {body}"));
            }
            Ok(())
        })
        .map_err(|f| f.to_string())
}

/// The child: the two tests on two threads, or one alone.
fn child(role: &str) {
    let mode = match std::env::var("SOFTPROBE_MODE").as_deref() {
        Ok("capture") => Mode::Capture,
        _ => Mode::Replay,
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    if mode == Mode::Capture {
        let port: u16 = std::env::var(UPSTREAM)
            .unwrap()
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        start_upstream(port, &rt);
    }
    let results: Vec<(String, Result<(), String>)> = match role {
        "alone" => vec![("alone".into(), one_test("alone", mode, false, None))],
        _ => {
            let guard = role == "guarded";
            let together = Arc::new(Barrier::new(2));
            let threads: Vec<_> = ["alpha", "beta"]
                .into_iter()
                .map(|name| {
                    let together = together.clone();
                    std::thread::spawn(move || {
                        let result = std::panic::catch_unwind(|| {
                            one_test(name, mode, guard, Some(together))
                        })
                        .unwrap_or_else(|p| {
                            Err(p
                                .downcast_ref::<String>()
                                .cloned()
                                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                                .unwrap_or_default())
                        });
                        (name.to_owned(), result)
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        }
    };
    for (name, result) in &results {
        match result {
            Ok(()) => println!("RESULT {name}: ok"),
            Err(e) => println!("RESULT {name}: failed\n{e}\nEND {name}"),
        }
    }
}

struct Round {
    stdout: String,
    stderr: String,
}

fn run_child(role: &str, mode: &str, cases: &Path, egress: u16, upstream: u16) -> Round {
    let out = Command::new(std::env::current_exe().unwrap())
        .env(ROLE, role)
        .env(CASES, cases)
        .env(UPSTREAM, format!("http://127.0.0.1:{upstream}"))
        .env("SOFTPROBE_MODE", mode)
        .env("SOFTPROBE_EGRESS_ADDR", format!("127.0.0.1:{egress}"))
        .env("HTTP_PROXY", format!("http://127.0.0.1:{egress}"))
        .env("HTTPS_PROXY", format!("http://127.0.0.1:{egress}"))
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .env_remove("SOFTPROBE_RUNTIME_URL")
        .output()
        .unwrap();
    assert!(out.status.success(), "the child crashed: {out:?}");
    Round {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn outbound_for(case: &Path) -> Vec<String> {
    let case = softprobe_runtime::case::Case::read(case).unwrap();
    case.exchanges()
        .unwrap()
        .iter()
        .filter(|e| e.direction == softprobe_runtime::case::Direction::Outbound)
        .map(|e| e.url())
        .collect()
}

fn parent() {
    let cases = tempfile::tempdir().unwrap();
    let upstream = free_port();
    for round in 1..=3 {
        let egress = free_port();
        let captured = run_child("guarded", "capture", cases.path(), egress, upstream);
        for name in ["alpha", "beta"] {
            assert!(
                captured.stdout.contains(&format!("RESULT {name}: ok")),
                "round {round}, capture of {name}:\n{}\n{}",
                captured.stdout,
                captured.stderr
            );
            let calls = outbound_for(&cases.path().join(format!("{name}.case.json")));
            assert_eq!(
                calls,
                vec![format!("http://127.0.0.1:{upstream}/quote?test={name}")],
                "round {round}: the case of {name} holds its own call and only it"
            );
        }
        assert!(
            !captured.stdout.contains("no outbound call"),
            "{}",
            captured.stdout
        );
        let egress = free_port();
        let replayed = run_child("guarded", "replay", cases.path(), egress, upstream);
        for name in ["alpha", "beta"] {
            assert!(
                replayed.stdout.contains(&format!("RESULT {name}: ok")),
                "round {round}, replay of {name}:\n{}\n{}",
                replayed.stdout,
                replayed.stderr
            );
        }
        println!("round {round}: both tests captured and replayed their own calls");
    }

    // Without the guard, two open tests cannot be told apart: each is refused with the ways
    // out, and neither capture is written.
    let refused_dir = tempfile::tempdir().unwrap();
    let refused = run_child(
        "unguarded",
        "capture",
        refused_dir.path(),
        free_port(),
        upstream,
    );
    for name in ["alpha", "beta"] {
        let start = refused
            .stdout
            .find(&format!("RESULT {name}: failed"))
            .unwrap_or_else(|| panic!("{name} was not refused:\n{}", refused.stdout));
        let text = &refused.stdout[start..];
        for way_out in [
            "sp.proxy_env()",
            "sp.http_client()",
            "cargo nextest run",
            "sp.command(...)",
            "without naming a session",
        ] {
            assert!(text.contains(way_out), "{name}: no {way_out:?} in:\n{text}");
        }
        assert!(
            !refused_dir
                .path()
                .join(format!("{name}.case.json"))
                .exists(),
            "a refused capture of {name} was written"
        );
    }
    println!("unguarded: both tests refused with the ways out");

    // One test alone in its process (as under nextest) gets its calls without the guard.
    let alone = run_child("alone", "capture", cases.path(), free_port(), upstream);
    assert!(
        alone.stdout.contains("RESULT alone: ok"),
        "{}\n{}",
        alone.stdout,
        alone.stderr
    );
    assert_eq!(
        outbound_for(&cases.path().join("alone.case.json")),
        vec![format!("http://127.0.0.1:{upstream}/quote?test=alone")]
    );
    println!("alone: the only open test got its call");
}

/// Speaks enough of libtest's command line for `cargo test -- FILTER` and nextest: `--list`
/// names the one test, a filter that does not match it runs nothing, and the closing line is
/// libtest's.
fn main() {
    if let Ok(role) = std::env::var(ROLE) {
        child(&role);
        return;
    }
    const NAME: &str = "env_proxy";
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        if !args.iter().any(|a| a == "--ignored") {
            println!("{NAME}: test");
        }
        return;
    }
    let exact = args.iter().any(|a| a == "--exact");
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let selected = filters.is_empty()
        || filters.iter().any(|f| {
            if exact {
                f.as_str() == NAME
            } else {
                NAME.contains(f.as_str())
            }
        });
    if !selected {
        println!(
            "\nrunning 0 tests\n\ntest result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 1 filtered out\n"
        );
        return;
    }
    println!("\nrunning 1 test");
    parent();
    println!(
        "test {NAME} ... ok\n\ntest result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out\n"
    );
}
