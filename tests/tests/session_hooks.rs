//! Hook closures on `Session`: `on_mock_response` rewrites what the egress proxy answers the
//! service, `assert_body` adds a body check whose message becomes the failure, and
//! `on_request` rewrites each recorded request `#[softprobe::cases]` sends again.

use serde_json::{Value, json};
use softprobe::{InboundRequest, MockResponse, OutboundCall, Session};
use softprobe_e2e::{RECORDED_PORTS, Variant, checkout_app, post_checkout};

async fn serve(sp: &Session) -> String {
    sp.serve(checkout_app(
        sp.http_client(),
        RECORDED_PORTS,
        Variant::Recorded,
    ))
    .await
}

async fn checkout(sp: &Session, base: &str) -> Value {
    let resp = post_checkout(&sp.client(), base).await;
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

#[softprobe::case("cases/checkout-happy-path.case.json", mode = "replay")]
async fn a_rewritten_mock_changes_the_answer(sp: Session) {
    sp.on_mock_response(|call: &OutboundCall, resp: &mut MockResponse| {
        if call.path == "/shipping" {
            let mut quote = resp.json().unwrap();
            quote["quote"] = json!(999);
            resp.set_json(&quote);
        }
        if call.path == "/v1/payment_intents" {
            let mut payment = resp.json().unwrap();
            payment["status"] = json!("requires_action");
            resp.set_json(&payment);
        }
    });
    let base = serve(&sp).await;
    let body = checkout(&sp, &base).await;
    // The recording says 499 and succeeded; the service passes on what the hook served.
    assert_eq!(body["shipping"], 999, "{body}");
    assert_eq!(body["total"], 1999, "{body}");
    assert_eq!(body["paymentStatus"], "requires_action", "{body}");
}

#[test]
fn a_failing_body_check_is_the_failure() {
    let verdict = softprobe::Run::new("cases/checkout-happy-path.case.json")
        .redact([".body.orderId", ".body.createdAt"])
        .name("session_hooks::a_failing_body_check_is_the_failure")
        .run(|sp: Session| async move {
            sp.assert_body(|recorded, actual| {
                let (r, a) = (recorded.json().unwrap(), actual.json().unwrap());
                if a["total"] == r["total"] && a["carrier"] == "dhl" {
                    Ok(())
                } else {
                    Err(format!("carrier {} is not dhl", a["carrier"]))
                }
            });
            let base = serve(&sp).await;
            checkout(&sp, &base).await;
        });
    let report = verdict.unwrap_err().to_string();
    assert!(
        report.contains("assert_body: POST /checkout: carrier \"ups\" is not dhl"),
        "{report}"
    );
}

#[test]
fn a_passing_body_check_keeps_the_test_green() {
    softprobe::Run::new("cases/checkout-happy-path.case.json")
        .redact([".body.orderId", ".body.createdAt"])
        .name("session_hooks::a_passing_body_check_keeps_the_test_green")
        .run(|sp: Session| async move {
            sp.assert_body(|recorded, actual| {
                let total = |b: &softprobe::ResponseBody| b.json().map(|v| v["total"].clone());
                match (total(recorded), total(actual)) {
                    (Some(r), Some(a)) if r == a => Ok(()),
                    (r, a) => Err(format!("total {a:?}, recorded {r:?}")),
                }
            });
            let base = serve(&sp).await;
            checkout(&sp, &base).await;
        })
        .unwrap();
}

// The rewritten request asks for a lowercase currency, which the service refuses: the replay
// then fails on the status, which shows the rewritten request is the one that was sent.
#[softprobe::cases(
    "cases/checkout/*.case.json",
    redact(".body.orderId", ".body.createdAt")
)]
#[should_panic(expected = "status:\n      - recorded: 200\n      + actual:   422")]
async fn rewritten_requests(sp: Session) -> String {
    sp.on_request(|req: &mut InboundRequest| {
        let mut body = req.json().unwrap();
        body["currency"] = json!("usd");
        req.set_json(&body);
    });
    serve(&sp).await
}
