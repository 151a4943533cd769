//! A replay passes only when the test ran the recorded scenario and everything it asked for
//! took effect: a recorded inbound request the test never sent fails it (unless it says
//! `partial`), with the embedded runtime and with a standalone one alike; a hook closure that
//! never ran or came too late fails it; a failing replay whose service bypassed the egress
//! proxy lists the recorded calls that never reached it.

use std::process::Command;

use softprobe::{InboundRequest, MockResponse, OutboundCall, Session};
use softprobe_e2e::{RECORDED_PORTS, Variant, checkout_app, post_checkout};

const CASE: &str = "cases/checkout-happy-path.case.json";
const VOLATILE: [&str; 2] = [".body.orderId", ".body.createdAt"];

async fn serve_with(sp: &Session, http: reqwest::Client) -> String {
    sp.serve(checkout_app(http, RECORDED_PORTS, Variant::Recorded))
        .await
}

async fn checkout(sp: &Session, base: &str) -> reqwest::StatusCode {
    post_checkout(&sp.client(), base).await.status()
}

fn replay(name: &str) -> softprobe::Run {
    softprobe::Run::new(CASE)
        .redact(VOLATILE)
        .name(format!("scenario_runs::{name}"))
}

const SENDS_NOTHING: &str = "a_test_that_sends_nothing_fails_naming_the_request_it_never_sent";

#[test]
fn a_test_that_sends_nothing_fails_naming_the_request_it_never_sent() {
    let report = replay(SENDS_NOTHING)
        .run(|_sp: Session| async move {})
        .expect_err("a test that sends nothing must not pass");
    let report = report.report();
    assert!(
        report.contains(
            "the test never sent the recorded inbound request POST /checkout (hop 3 of 3 in the case, trace "
        ),
        "{report}"
    );
    assert!(report.contains("`partial`"), "{report}");
    // The unsent request explains the calls it would have made: no list of them.
    assert!(
        !report.contains("never reached softprobe's egress"),
        "{report}"
    );

    // The same test against a standalone runtime, in a process of its own (the runtime is
    // chosen once per process): it must fail there the same way.
    if std::env::var_os("SOFTPROBE_RUNTIME_URL").is_none() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let server = rt.block_on(async {
            let _ = rustls::crypto::ring::default_provider().install_default();
            softprobe_runtime::Server::builder()
                .listen("127.0.0.1:0".parse().unwrap())
                .start()
                .await
                .unwrap()
        });
        let out = Command::new(std::env::current_exe().unwrap())
            .args([SENDS_NOTHING, "--exact", "--nocapture"])
            .env("SOFTPROBE_RUNTIME_URL", server.uri())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "against {}: {stdout}\n{stderr}",
            server.uri()
        );
        let metrics = rt.block_on(async {
            reqwest::Client::builder()
                .no_proxy()
                .build()
                .unwrap()
                .get(format!("{}/metrics", server.uri()))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        });
        assert!(
            metrics.contains("softprobe_sessions_created_total 1"),
            "the child used the standalone runtime: {metrics}"
        );
        rt.block_on(server.shutdown());
    }
}

#[test]
fn a_test_that_says_partial_may_leave_recorded_requests_unsent() {
    replay("a_test_that_says_partial_may_leave_recorded_requests_unsent")
        .partial(true)
        .run(|_sp: Session| async move {})
        .expect("partial: the recorded POST /checkout need not be sent");
}

#[test]
fn a_replay_that_runs_the_scenario_passes() {
    replay("a_replay_that_runs_the_scenario_passes")
        .run(|sp: Session| async move {
            let base = serve_with(&sp, sp.http_client()).await;
            assert_eq!(checkout(&sp, &base).await, 200);
        })
        .expect("the recorded scenario, run as recorded");
}

#[test]
fn on_request_in_a_test_that_sends_its_own_requests_fails_as_never_run() {
    let report = replay("on_request_in_a_test_that_sends_its_own_requests_fails_as_never_run")
        .run(|sp: Session| async move {
            sp.on_request(|req: &mut InboundRequest| req.set_header("x-tenant", "acme"));
            let base = serve_with(&sp, sp.http_client()).await;
            assert_eq!(checkout(&sp, &base).await, 200);
        })
        .expect_err("a closure that never ran must not pass silently");
    assert!(
        report
            .report()
            .contains("on_request: 1 closure(s) never ran"),
        "{report}"
    );
}

#[test]
fn assert_body_with_no_answer_to_check_fails_as_never_run() {
    let report = replay("assert_body_with_no_answer_to_check_fails_as_never_run")
        .partial(true)
        .run(|sp: Session| async move {
            sp.assert_body(|_, _| Err("never called".into()));
        })
        .expect_err("a check that never ran must not pass silently");
    assert!(
        report
            .report()
            .contains("assert_body: 1 closure(s) never ran"),
        "{report}"
    );
}

#[test]
fn on_mock_response_registered_after_the_calls_fails_as_too_late() {
    let report = replay("on_mock_response_registered_after_the_calls_fails_as_too_late")
        .run(|sp: Session| async move {
            let base = serve_with(&sp, sp.http_client()).await;
            assert_eq!(checkout(&sp, &base).await, 200);
            sp.on_mock_response(|_: &OutboundCall, resp: &mut MockResponse| {
                resp.status = 500;
            });
        })
        .expect_err("a closure registered after the calls rewrote nothing");
    assert!(
        report.report().contains(
            "on_mock_response: a closure was registered after the session had already answered 2 outbound call(s)"
        ),
        "{report}"
    );
}

#[test]
fn a_failed_replay_of_a_service_that_bypasses_the_proxy_lists_the_calls() {
    let report = replay("a_failed_replay_of_a_service_that_bypasses_the_proxy_lists_the_calls")
        .run(|sp: Session| async move {
            // The service's own client, not the session's: its calls go nowhere near the proxy.
            let direct = reqwest::Client::builder().no_proxy().build().unwrap();
            let base = serve_with(&sp, direct).await;
            let _ = checkout(&sp, &base).await;
        })
        .expect_err("the upstreams are gone: the answer drifts");
    let report = report.report();
    assert!(
        report.contains(
            "2 of the outbound calls the case recorded never reached softprobe's egress proxy in this run (no outbound call reached it at all):"
        ),
        "{report}"
    );
    assert!(
        report.contains("POST https://localhost:47443/v1/payment_intents (hop "),
        "{report}"
    );
    assert!(report.contains("sp.http_client()"), "{report}");
}

const QUIET_CAPTURE: &str = "a_capture_whose_service_calls_nothing_through_the_proxy_says_so";

#[test]
fn a_capture_whose_service_calls_nothing_through_the_proxy_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let case = dir.path().join("quiet.case.json");
    softprobe::Run::new(&case)
        .mode(softprobe::Mode::Capture)
        .name(format!("scenario_runs::{QUIET_CAPTURE}"))
        .run(|sp: Session| async move {
            let app = axum::Router::new().route("/ping", axum::routing::get(|| async { "pong" }));
            let base = sp.serve(app).await;
            let resp = sp
                .client()
                .get(format!("{base}/ping"))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.text().await.unwrap(), "pong");
        })
        .expect("a capture with no outbound call is still a capture");
    assert!(case.exists());
    // The summary goes to the test's output: read it from a run of this test in a process
    // of its own.
    if std::env::var_os("SOFTPROBE_SCENARIO_CHILD").is_none() {
        let out = Command::new(std::env::current_exe().unwrap())
            .args([QUIET_CAPTURE, "--exact", "--nocapture"])
            .env("SOFTPROBE_SCENARIO_CHILD", "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}");
        assert!(
            stdout.contains("softprobe: captured 1 hop(s) into"),
            "{stdout}"
        );
        assert!(
            stdout.contains(
                "softprobe: note: no outbound call of the service reached the egress proxy, so the case records none"
            ),
            "{stdout}"
        );
    }
}
