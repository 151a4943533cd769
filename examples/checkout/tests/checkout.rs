//! The checkout service under `#[softprobe::case]`. Each test drives the service once; the
//! outbound calls it makes are captured into `cases/*.case.json` the first time and answered
//! from there ever after, with the upstreams not even running.
//!
//! Record again (the upstreams start, real calls are made, the case files are rewritten):
//! `SOFTPROBE_MODE=capture cargo test -p checkout-example`. Everything else replays.

use checkout::app::{Config, DEFAULT_PAYMENTS_API_KEY, router};
use checkout::upstreams::{FakeUpstreams, payments_url, shipping_url};
use serde_json::{Value, json};
use softprobe::{Mode, Session};

/// Fixed ports: a replay must ask for exactly the URLs the capture recorded. Only a capture
/// listens on them.
const PAYMENTS_PORT: u16 = 47543;
const SHIPPING_PORT: u16 = 47180;

/// The workspace's test TLS material (`tests/tls/`): `.cargo/config.toml` points
/// `SOFTPROBE_UPSTREAM_CA_FILE` at its CA, so the harness's egress proxy trusts the payments
/// upstream from the first test on.
const TLS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/tls");

/// The fake upstreams of one capture, holding the fixed ports until stopped.
struct Upstreams {
    running: FakeUpstreams,
    _ports: tokio::sync::MutexGuard<'static, ()>,
}

impl Upstreams {
    /// Frees the ports for the next capture.
    async fn stop(this: Option<Upstreams>) {
        if let Some(upstreams) = this {
            upstreams.running.stop().await;
        }
    }
}

/// Tests run in parallel; captures take turns on the fixed ports.
static PORTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The fake upstreams, in capture mode only.
async fn upstreams(sp: &Session) -> Option<Upstreams> {
    if sp.mode() != Mode::Capture {
        return None;
    }
    let ports = PORTS.lock().await;
    let read = |name: &str| {
        std::fs::read_to_string(format!("{TLS}/{name}"))
            .unwrap_or_else(|e| panic!("{TLS}/{name}: {e}"))
    };
    let running = FakeUpstreams::start_with_certificate(
        ([127, 0, 0, 1], PAYMENTS_PORT).into(),
        ([127, 0, 0, 1], SHIPPING_PORT).into(),
        &read("localhost.pem"),
        &read("localhost.key"),
        &read("upstream-ca.pem"),
    )
    .await
    .expect("the fake upstreams start");
    Some(Upstreams {
        running,
        _ports: ports,
    })
}

/// Serves the service with the session's client (egress proxy, proxy CA) and returns its URL.
async fn serve(sp: &Session) -> String {
    sp.serve(router(Config {
        http: sp.http_client(),
        payments_url: payments_url(PAYMENTS_PORT),
        shipping_url: shipping_url(SHIPPING_PORT),
        payments_api_key: DEFAULT_PAYMENTS_API_KEY.to_owned(),
    }))
    .await
}

async fn post(sp: &Session, base: &str, order: Value) -> (u16, Value) {
    let response = sp
        .client()
        .post(format!("{base}/checkout"))
        .json(&order)
        .send()
        .await
        .expect("the service answers");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON answer"))
}

// The order id and timestamp are new on every call: they are left out of the comparison.
#[softprobe::case(
    "cases/checkout-happy-path.case.json",
    redact(".body.orderId", ".body.createdAt")
)]
async fn checkout_happy_path(sp: Session) {
    let upstreams = upstreams(&sp).await;
    let base = serve(&sp).await;
    let (status, body) = post(&sp, &base, json!({"amount": 1000, "currency": "USD"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total"], 1499, "{body}");
    assert_eq!(body["carrier"], "ups", "{body}");
    assert!(
        body["paymentId"].as_str().unwrap().starts_with("pi_"),
        "{body}"
    );
    Upstreams::stop(upstreams).await;
}

#[softprobe::case(
    "cases/checkout-east-coast.case.json",
    redact(".body.orderId", ".body.createdAt")
)]
async fn shipping_east_costs_more(sp: Session) {
    let upstreams = upstreams(&sp).await;
    let base = serve(&sp).await;
    let order = json!({"amount": 1000, "currency": "USD", "zip": "10001"});
    let (status, body) = post(&sp, &base, order).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["shipping"], 579, "{body}");
    assert_eq!(body["total"], 1579, "{body}");
    Upstreams::stop(upstreams).await;
}

// An invalid order never reaches the upstreams; strict mode proves it: any outbound call
// would be a miss and fail the test.
#[softprobe::case("cases/checkout-invalid-currency.case.json", strict)]
async fn an_invalid_currency_is_refused_before_any_call(sp: Session) {
    let base = serve(&sp).await;
    let (status, body) = post(&sp, &base, json!({"amount": 1000, "currency": "usd"})).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("currency"),
        "{body}"
    );
}

// A committed case is data too: what was recorded, and what was kept out of it. The test
// reads the case without running it, and `partial` says so.
#[softprobe::case("cases/checkout-happy-path.case.json", mode = "replay", partial)]
fn the_case_holds_both_calls_without_the_api_key(sp: Session) -> Result<(), softprobe::Error> {
    let payment = sp.case().find("POST", "/v1/payment_intents")?;
    assert_eq!(payment.status, Some(200));
    assert_eq!(payment.request_header("authorization"), Some("[REDACTED]"));
    let quote = sp.case().find("GET", "/shipping")?;
    assert_eq!(quote.status, Some(200));
    assert_eq!(sp.case().inbound().len(), 1);
    assert_eq!(sp.case().outbound().len(), 2);
    Ok(())
}
