//! The checkout service under `#[softprobe::case]`. Each test drives the service once; the
//! outbound calls it makes (HTTPS, HTTP, gRPC, a server-sent event stream) are captured into
//! `cases/*.case.json` the first time and answered from there ever after, with the upstreams
//! not even running.
//!
//! Record again (the upstreams start, real calls are made, the case files are rewritten):
//! `SOFTPROBE_MODE=capture cargo test -p checkout-example`. Everything else replays.

use checkout::app::{Config, DEFAULT_PAYMENTS_API_KEY, router};
use checkout::inventory::{RESERVE, ReserveRequest};
use checkout::upstreams::{FakeUpstreams, inventory_url, payments_url, shipping_url};
use serde_json::{Value, json};
use softprobe::{Mode, Session};
use softprobe_runtime::case::{AnyValue, Body};

/// Fixed ports: a replay must ask for exactly the URLs the capture recorded. Only a capture
/// listens on them.
const PAYMENTS_PORT: u16 = 47543;
const SHIPPING_PORT: u16 = 47180;
const INVENTORY_PORT: u16 = 47551;

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
        ([127, 0, 0, 1], INVENTORY_PORT).into(),
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

/// Serves the service with the session's client (egress proxy, proxy CA) and its gRPC
/// channel through the same proxy, and returns its URL.
async fn serve(sp: &Session) -> String {
    let inventory =
        checkout::inventory::channel(&inventory_url(INVENTORY_PORT), Some(&sp.egress_proxy_url()))
            .expect("the inventory channel");
    sp.serve(router(Config {
        http: sp.http_client(),
        payments_url: payments_url(PAYMENTS_PORT),
        shipping_url: shipping_url(SHIPPING_PORT),
        inventory,
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
    // The reservation came from the inventory service over gRPC.
    assert!(
        body["reservation"].as_str().unwrap().starts_with("res_"),
        "{body}"
    );
    assert_eq!(body["left"], 11, "{body}");
    Upstreams::stop(upstreams).await;
}

// The inventory refuses an unknown item with a gRPC status (NOT_FOUND in the trailers); the
// replay answers with the recorded status and message, and the service turns it into a 409.
#[softprobe::case("cases/checkout-unknown-sku.case.json")]
async fn an_unknown_item_is_refused_by_the_inventory(sp: Session) {
    let upstreams = upstreams(&sp).await;
    let base = serve(&sp).await;
    let order = json!({"amount": 1000, "currency": "USD", "sku": "teapot"});
    let (status, body) = post(&sp, &base, order).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        body["error"], "cannot reserve teapot: no such sku: teapot",
        "{body}"
    );
    Upstreams::stop(upstreams).await;
}

// The service must send the inventory what it sent when the case was recorded: asking for two
// mugs instead of one is request drift on the gRPC call, and the test fails naming the call
// and the changed field of the message (field 2, `qty`: the wire format numbers fields).
#[softprobe::case(
    "cases/checkout-happy-path.case.json",
    mode = "replay",
    redact(".body.orderId", ".body.createdAt")
)]
#[should_panic(
    expected = "POST http://127.0.0.1:47551/shop.Inventory/Reserve (hop 1 of 3): $['2']: recorded 1, sent 2"
)]
async fn a_changed_inventory_request_fails_with_a_diff(sp: Session) {
    let base = serve(&sp).await;
    let _ = post(
        &sp,
        &base,
        json!({"amount": 1000, "currency": "USD", "qty": 2}),
    )
    .await;
}

/// Reads a server-sent event stream to its end: the `data` of each event, in order.
async fn events(response: reqwest::Response) -> Vec<Value> {
    let text = response.text().await.expect("the stream reads to its end");
    text.split("\n\n")
        .filter_map(|event| event.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(|data| serde_json::from_str(data).expect("JSON event data"))
        .collect()
}

// The order status is a stream: the carrier's tracking events, relayed one by one. Captured
// as the whole stream with its chunk timings; replayed from the case with nothing listening.
#[softprobe::case("cases/order-status.case.json")]
async fn the_order_status_streams_the_carrier_events(sp: Session) {
    let upstreams = upstreams(&sp).await;
    let base = serve(&sp).await;
    let response = sp
        .client()
        .get(format!("{base}/orders/ord_example/status"))
        .send()
        .await
        .expect("the service answers");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/event-stream",
        "{:?}",
        response.headers()
    );
    let events = events(response).await;
    let statuses: Vec<&str> = events
        .iter()
        .map(|e| e["status"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(statuses, ["label_created", "picked_up", "in_transit"]);
    assert!(events.iter().all(|e| e["orderId"] == "ord_example"));
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
fn the_case_holds_every_call_without_the_api_key(sp: Session) -> Result<(), softprobe::Error> {
    let payment = sp.case().find("POST", "/v1/payment_intents")?;
    assert_eq!(payment.status, Some(200));
    assert_eq!(payment.request_header("authorization"), Some("[REDACTED]"));
    let quote = sp.case().find("GET", "/shipping")?;
    assert_eq!(quote.status, Some(200));
    // The gRPC call: its service and method, and the request message without its framing,
    // which decodes with the service's own prost type.
    let reserve = sp.case().find("POST", RESERVE)?;
    let attribute = |key: &str| {
        reserve
            .extra_attributes
            .iter()
            .find(|kv| kv.key == key)
            .map(|kv| kv.value.clone())
    };
    assert_eq!(
        attribute("rpc.service"),
        Some(AnyValue::String("shop.Inventory".into()))
    );
    assert_eq!(attribute("rpc.grpc.status_code"), Some(AnyValue::Int(0)));
    let Some(Body::Binary(message)) = &reserve.request_body else {
        panic!("the request message is stored as bytes: {reserve:?}");
    };
    let asked = <ReserveRequest as prost::Message>::decode(&message[..]).unwrap();
    assert_eq!((asked.sku.as_str(), asked.qty), ("mug", 1));
    assert_eq!(sp.case().inbound().len(), 1);
    assert_eq!(sp.case().outbound().len(), 3);
    Ok(())
}
