//! `#[softprobe::case]` as a user writes it: the committed cases in `tests/cases/` were
//! recorded with `SOFTPROBE_MODE=capture cargo test -p softprobe-e2e --test checkout_cases`
//! against the fake upstreams; every other run replays them with nothing listening.

use serde_json::json;
use softprobe::{Mode, Session};
use softprobe_e2e::{Upstreams, Variant, checkout_app, post_checkout};

/// Fixed loopback ports, so a replay asks for exactly the URLs the capture recorded. Only a
/// capture binds them.
const PAYMENTS_PORT: u16 = 47443;
const SHIPPING_PORT: u16 = 47080;

async fn upstreams(sp: &Session) -> Option<Upstreams> {
    match sp.mode() {
        Mode::Capture => Some(Upstreams::start(PAYMENTS_PORT, SHIPPING_PORT).await),
        _ => None,
    }
}

async fn serve(sp: &Session, variant: Variant) -> String {
    sp.serve(checkout_app(
        sp.http_client(),
        (PAYMENTS_PORT, SHIPPING_PORT),
        variant,
    ))
    .await
}

#[softprobe::case(
    "cases/checkout-happy-path.case.json",
    redact(".body.orderId", ".body.createdAt")
)]
async fn checkout_happy_path(sp: Session) {
    let _upstreams = upstreams(&sp).await;
    let base = serve(&sp, Variant::Recorded).await;
    let resp = post_checkout(&sp.client(), &base).await;
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["total"], 1499, "{body}");
    assert!(
        body["paymentId"].as_str().unwrap().starts_with("pi_"),
        "{body}"
    );
}

// Looks at the case without running it: `partial` says the unsent request is on purpose.
#[softprobe::case("cases/checkout-happy-path.case.json", mode = "replay", partial)]
fn the_loaded_case_is_there_to_look_at(sp: Session) -> Result<(), softprobe::Error> {
    let payment = sp.case().find("POST", "/v1/payment_intents")?;
    assert_eq!(payment.status, Some(200));
    assert_eq!(payment.request_header("authorization"), Some("[REDACTED]"));
    assert!(sp.case().find("GET", "/nowhere").is_err());
    assert_eq!(sp.case().inbound().len(), 1);
    Ok(())
}

#[softprobe::case(
    "cases/checkout-happy-path.case.json",
    mode = "replay",
    redact(".body.orderId", ".body.createdAt")
)]
#[should_panic(expected = "body $.total:\n      - recorded: 1499\n      + actual:   1549")]
async fn a_changed_response_fails_with_a_field_diff(sp: Session) {
    let base = serve(&sp, Variant::ExtraFee).await;
    let _ = post_checkout(&sp.client(), &base).await;
}

#[softprobe::case(
    "cases/checkout-happy-path.case.json",
    mode = "replay",
    redact(".body.orderId", ".body.createdAt")
)]
#[should_panic(expected = "/shipping?zip=10001")]
async fn a_call_never_captured_is_reported_with_the_nearest_recording(sp: Session) {
    let base = serve(&sp, Variant::OtherZip).await;
    let resp = post_checkout(&sp.client(), &base).await;
    // The service turned the strict miss into its own 502; the harness still fails the test.
    assert_eq!(resp.status(), 502);
}

#[softprobe::case("cases/checkout-happy-path.case.json", mode = "replay")]
async fn a_mock_rule_overrides_the_recording(sp: Session) {
    sp.mock(json!({
        "id": "declined",
        "priority": 10,
        "when": {"direction": "outbound", "method": "POST", "path": "/v1/payment_intents"},
        "then": {"action": "mock", "response": {"status": 402, "body": {"error": {"code": "card_declined"}}}}
    }))
    .unwrap();
    let base = serve(&sp, Variant::Recorded).await;
    let resp = post_checkout(&sp.client(), &base).await;
    assert_eq!(resp.status(), 502);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "payments answered 402 Payment Required");
}

#[softprobe::case(
    "cases/checkout-happy-path.case.json",
    mode = "replay",
    redact(".body.orderId", ".body.createdAt")
)]
async fn the_response_matches_its_insta_snapshot(sp: Session) {
    let base = serve(&sp, Variant::Recorded).await;
    let resp = post_checkout(&sp.client(), &base).await;
    softprobe::assert_response!(sp, "checkout_happy_path", resp);
}

/// The rules a generate-mode test answers the checkout's two upstream calls with.
fn answer_upstreams(sp: &Session) {
    sp.mock(json!({
        "id": "payment",
        "when": {"direction": "outbound", "method": "POST", "path": "/v1/payment_intents"},
        "then": {"action": "mock", "response": {"status": 200, "body": {"id": "pi_rule", "status": "succeeded"}}}
    }))
    .unwrap();
    sp.mock(json!({
        "id": "quote",
        "when": {"direction": "outbound", "method": "GET", "path": "/shipping"},
        "then": {"action": "mock", "response": {"status": 200, "body": {"carrier": "ups", "quote": 499}}}
    }))
    .unwrap();
}

// Generate mode: the test's rules answer every outbound call; the case path only names the
// session (no file is read: this one does not exist).
#[softprobe::case("cases/checkout-from-rules.case.json", mode = "generate")]
async fn generate_answers_from_the_rules_only(sp: Session) {
    assert_eq!(sp.mode(), Mode::Generate);
    answer_upstreams(&sp);
    let base = serve(&sp, Variant::Recorded).await;
    let resp = post_checkout(&sp.client(), &base).await;
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["paymentId"], "pi_rule", "{body}");
    assert_eq!(body["total"], 1499, "{body}");
}

#[softprobe::case("cases/checkout-from-rules.case.json", mode = "generate")]
#[should_panic(expected = "left: Number(1549)")]
async fn generate_fails_when_the_service_changed(sp: Session) {
    answer_upstreams(&sp);
    let base = serve(&sp, Variant::ExtraFee).await;
    let body: serde_json::Value = post_checkout(&sp.client(), &base)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["total"], 1499, "{body}");
}

#[test]
fn generate_fails_on_a_call_no_rule_answers_and_writes_no_case() {
    let dir = tempfile::tempdir().unwrap();
    let case = dir.path().join("from-rules.case.json");
    let failure = softprobe::Run::new(&case)
        .mode(Mode::Generate)
        .name("checkout_cases::generate_fails_on_a_call_no_rule_answers")
        .run(|sp: Session| async move {
            sp.mock(json!({
                "id": "payment",
                "when": {"direction": "outbound", "method": "POST", "path": "/v1/payment_intents"},
                "then": {"action": "mock", "response": {"status": 200, "body": {"id": "pi_rule"}}}
            }))
            .unwrap();
            let base = serve(&sp, Variant::Recorded).await;
            let resp = post_checkout(&sp.client(), &base).await;
            assert_eq!(resp.status(), 502, "the shipping call has no rule");
        })
        .expect_err("a call no rule answers fails a generate-mode test");
    let report = failure.report();
    assert!(
        report.contains(
            "does not replay the test's rules (generate mode: no case file is read or written)"
        ),
        "{report}"
    );
    assert!(report.contains("/shipping?zip=94107"), "{report}");
    assert!(
        !report.contains("record the case again"),
        "generate mode has no case to record again: {report}"
    );
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "generate mode wrote {left:?}");
}
