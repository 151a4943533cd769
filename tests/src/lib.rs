//! What the end-to-end tests share: a small checkout service of the kind softprobe is for
//! (it validates a request, creates a payment over HTTPS, fetches a shipping quote over HTTP,
//! and answers with a generated id and timestamp), and fake upstreams to capture it against.

pub mod binaries;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// How the checkout service behaves; the variants let tests change it and watch the replay
/// fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Variant {
    /// The behaviour the committed cases recorded.
    #[default]
    Recorded,
    /// Adds a fee to the total: the inbound response drifts.
    ExtraFee,
    /// Asks shipping for another zip code: an outbound call the case never saw.
    OtherZip,
}

/// Where the checkout service sends its calls, and with what client.
#[derive(Debug, Clone)]
pub struct Config {
    /// The client for outbound calls (in tests, `sp.http_client()`).
    pub http: reqwest::Client,
    /// Base URL of the payments API (HTTPS).
    pub payments_url: String,
    /// Base URL of the shipping service (HTTP).
    pub shipping_url: String,
    /// Behaviour switch for tests.
    pub variant: Variant,
}

#[derive(Debug, Deserialize)]
struct CheckoutRequest {
    amount: i64,
    currency: String,
    #[serde(default)]
    zip: Option<String>,
}

fn error(status: StatusCode, message: impl Into<String>) -> (StatusCode, Json<Value>) {
    (status, Json(json!({"error": message.into()})))
}

fn random_id(prefix: &str) -> String {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}_{hex}")
}

/// The W3C trace context of the inbound request, forwarded on every outbound call as an
/// OpenTelemetry-instrumented client would (the session rides in `tracestate`).
fn trace_context(headers: &HeaderMap) -> reqwest::header::HeaderMap {
    let mut out = reqwest::header::HeaderMap::new();
    for name in ["traceparent", "tracestate"] {
        if let Some(value) = headers.get(name)
            && let Ok(value) = reqwest::header::HeaderValue::from_bytes(value.as_bytes())
        {
            out.insert(name, value);
        }
    }
    out
}

async fn checkout(
    State(cfg): State<Arc<Config>>,
    headers: HeaderMap,
    Json(req): Json<CheckoutRequest>,
) -> Result<Json<Value>, (StatusCode, Json<Value>)> {
    let context = trace_context(&headers);
    if req.amount <= 0 {
        return Err(error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "amount must be positive",
        ));
    }
    if req.currency.len() != 3 || !req.currency.chars().all(|c| c.is_ascii_uppercase()) {
        return Err(error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "currency must be a three-letter ISO code",
        ));
    }
    let payment = cfg
        .http
        .post(format!("{}/v1/payment_intents", cfg.payments_url))
        .headers(context.clone())
        .bearer_auth("sk_test_4eC39HqLyjWDarjtT1zdp7dc")
        .form(&[
            ("amount", req.amount.to_string()),
            ("currency", req.currency.to_lowercase()),
        ])
        .send()
        .await
        .map_err(|e| error(StatusCode::BAD_GATEWAY, format!("payments: {e}")))?;
    if !payment.status().is_success() {
        return Err(error(
            StatusCode::BAD_GATEWAY,
            format!("payments answered {}", payment.status()),
        ));
    }
    let payment: Value = payment
        .json()
        .await
        .map_err(|e| error(StatusCode::BAD_GATEWAY, format!("payments: {e}")))?;
    let zip = match cfg.variant {
        Variant::OtherZip => "10001".to_owned(),
        _ => req.zip.unwrap_or_else(|| "94107".to_owned()),
    };
    let quote = cfg
        .http
        .get(format!("{}/shipping", cfg.shipping_url))
        .headers(context)
        .query(&[("zip", zip.as_str())])
        .send()
        .await
        .map_err(|e| error(StatusCode::BAD_GATEWAY, format!("shipping: {e}")))?;
    if !quote.status().is_success() {
        return Err(error(
            StatusCode::BAD_GATEWAY,
            format!("shipping answered {}", quote.status()),
        ));
    }
    let quote: Value = quote
        .json()
        .await
        .map_err(|e| error(StatusCode::BAD_GATEWAY, format!("shipping: {e}")))?;
    let shipping = quote["quote"].as_i64().unwrap_or(0);
    let fee = if cfg.variant == Variant::ExtraFee {
        50
    } else {
        0
    };
    Ok(Json(json!({
        "orderId": random_id("ord"),
        "createdAt": humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
        "paymentId": payment["id"],
        "paymentStatus": payment["status"],
        "carrier": quote["carrier"],
        "shipping": shipping,
        "total": req.amount + shipping + fee,
    })))
}

/// Asks inventory three times (a polling client) and answers what it saw, in order.
async fn stock(
    State(cfg): State<Arc<Config>>,
    Path(sku): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, (StatusCode, Json<Value>)> {
    let context = trace_context(&headers);
    let mut seen = Vec::new();
    for _ in 0..3 {
        let body: Value = cfg
            .http
            .get(format!("{}/stock/{sku}", cfg.shipping_url))
            .headers(context.clone())
            .send()
            .await
            .map_err(|e| error(StatusCode::BAD_GATEWAY, format!("inventory: {e}")))?
            .json()
            .await
            .map_err(|e| error(StatusCode::BAD_GATEWAY, format!("inventory: {e}")))?;
        seen.push(body["available"].clone());
    }
    Ok(Json(json!({"sku": sku, "polls": seen})))
}

/// The checkout service's routes.
pub fn router(cfg: Config) -> Router {
    Router::new()
        .route("/checkout", post(checkout))
        .route("/stock/{sku}", get(stock))
        .with_state(Arc::new(cfg))
}

/// The fake upstreams of one test: payments over HTTPS (ids change on every call) and
/// shipping plus inventory over HTTP (wiremock). Dropped at the end of the test.
pub struct Upstreams {
    /// Base URL of payments (`https://localhost:PORT`).
    pub payments_url: String,
    /// Base URL of shipping and inventory (`http://127.0.0.1:PORT`).
    pub shipping_url: String,
    _shipping: MockServer,
    payments: tokio::task::JoinHandle<()>,
}

impl Drop for Upstreams {
    fn drop(&mut self) {
        self.payments.abort();
    }
}

/// The upstream ports (payments, shipping) most committed cases were recorded with.
pub const RECORDED_PORTS: (u16, u16) = (47443, 47080);

/// The checkout service calling the upstreams on `ports` (payments, shipping) through `http`
/// (in a test, the session's client, which goes through its egress).
pub fn checkout_app(http: reqwest::Client, ports: (u16, u16), variant: Variant) -> Router {
    let (payments_url, shipping_url) = urls(ports.0, ports.1);
    router(Config {
        http,
        payments_url,
        shipping_url,
        variant,
    })
}

/// Posts the seed guide's checkout order (`{"amount": 1000, "currency": "USD"}`) to
/// `{base}/checkout` with `client`.
pub async fn post_checkout(client: &reqwest::Client, base: &str) -> reqwest::Response {
    client
        .post(format!("{base}/checkout"))
        .json(&json!({"amount": 1000, "currency": "USD"}))
        .send()
        .await
        .expect("the checkout service answers")
}

mod ports;
pub use ports::free_port;

/// The URLs a test's service is configured with: fixed per test, so a replay (with nothing
/// listening) asks for exactly what the capture recorded.
pub fn urls(payments_port: u16, shipping_port: u16) -> (String, String) {
    (
        format!("https://localhost:{payments_port}"),
        format!("http://127.0.0.1:{shipping_port}"),
    )
}

impl Upstreams {
    /// Starts both upstreams on the given loopback ports.
    pub async fn start(payments_port: u16, shipping_port: u16) -> Upstreams {
        let (payments_url, shipping_url) = urls(payments_port, shipping_port);
        let listener = std::net::TcpListener::bind(("127.0.0.1", shipping_port))
            .unwrap_or_else(|e| panic!("shipping upstream on port {shipping_port}: {e}"));
        let shipping = MockServer::builder().listener(listener).start().await;
        Mock::given(method("GET"))
            .and(path("/shipping"))
            .and(query_param("zip", "94107"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({"quote": 499, "carrier": "ups"})),
            )
            .mount(&shipping)
            .await;
        // Three answers, one each, in this order (a lower priority number answers first).
        for (priority, available) in [(1u8, 12), (2, 7), (3, 0)] {
            Mock::given(method("GET"))
                .and(path("/stock/sku-1"))
                .respond_with(
                    ResponseTemplate::new(200).set_body_json(json!({"available": available})),
                )
                .up_to_n_times(1)
                .with_priority(priority)
                .mount(&shipping)
                .await;
        }
        let payments = serve_payments(payments_port).await;
        Upstreams {
            payments_url,
            shipping_url,
            _shipping: shipping,
            payments,
        }
    }
}

async fn create_payment(body: String) -> (StatusCode, Json<Value>) {
    let amount = body
        .split('&')
        .find_map(|kv| kv.strip_prefix("amount="))
        .and_then(|v| v.parse::<i64>().ok());
    match amount {
        Some(amount) => (
            StatusCode::OK,
            Json(
                json!({"id": random_id("pi"), "object": "payment_intent", "amount": amount, "status": "succeeded"}),
            ),
        ),
        None => (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": {"message": "amount is required"}})),
        ),
    }
}

async fn serve_payments(port: u16) -> tokio::task::JoinHandle<()> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tls");
    let certs = CertificateDer::pem_file_iter(dir.join("localhost.pem"))
        .expect("tests/tls/localhost.pem")
        .collect::<Result<Vec<_>, _>>()
        .expect("a PEM certificate");
    let key =
        PrivateKeyDer::from_pem_file(dir.join("localhost.key")).expect("tests/tls/localhost.key");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("the test certificate and key match");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .unwrap_or_else(|e| panic!("payments upstream on port {port}: {e}"));
    let app = Router::new().route("/v1/payment_intents", post(create_payment));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            let app = app.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let svc = hyper_util::service::TowerToHyperService::new(app);
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                .await;
            });
        }
    })
}
