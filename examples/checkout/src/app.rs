//! The checkout service. Its HTTP calls go through one `reqwest::Client` built from the
//! usual environment (`HTTP_PROXY`, `HTTPS_PROXY`, `NO_PROXY`, `SSL_CERT_FILE`), which is all
//! softprobe's egress proxy needs: point the proxies at it and trust its CA. Its gRPC calls
//! to the inventory service go through the same proxy (see [`crate::inventory::channel`]).
//!
//! - `POST /checkout`: reserves the item (gRPC), creates a payment (HTTPS), gets a shipping
//!   quote (HTTP) and answers with a new order id and timestamp.
//! - `GET /orders/{id}/status`: the order's shipping status as server-sent events, relayed
//!   from the carrier's tracking stream one event at a time as they arrive.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

/// Default address of the `checkout` binary (`CHECKOUT_LISTEN_ADDR`).
pub const DEFAULT_LISTEN_ADDR: &str = "127.0.0.1:8081";

/// The API key sent to the payments service when `PAYMENTS_API_KEY` is unset.
pub const DEFAULT_PAYMENTS_API_KEY: &str = "sk_test_checkout_example";

/// Where the service sends its outbound calls, and with what client.
#[derive(Debug, Clone)]
pub struct Config {
    /// The client for every outbound call.
    pub http: reqwest::Client,
    /// Base URL of the payments API, e.g. `https://localhost:8443`.
    pub payments_url: String,
    /// Base URL of the shipping service, e.g. `http://127.0.0.1:8090`.
    pub shipping_url: String,
    /// The channel to the inventory service (gRPC), from [`crate::inventory::channel`].
    pub inventory: tonic::transport::Channel,
    /// Sent as `authorization: Bearer ...` to the payments API.
    pub payments_api_key: String,
}

impl Config {
    /// Reads `PAYMENTS_URL`, `SHIPPING_URL`, `INVENTORY_URL` (all required),
    /// `PAYMENTS_API_KEY`, and builds the client with [`client_from_env`]. The inventory
    /// channel goes through `HTTP_PROXY` when it is set.
    pub fn from_env() -> Result<Config, String> {
        let required = |name: &str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("{name} is not set (the base URL of that upstream)"))
        };
        let proxy = std::env::var("HTTP_PROXY")
            .or_else(|_| std::env::var("http_proxy"))
            .ok()
            .filter(|v| !v.is_empty());
        Ok(Config {
            http: client_from_env()?,
            payments_url: required("PAYMENTS_URL")?,
            shipping_url: required("SHIPPING_URL")?,
            inventory: crate::inventory::channel(&required("INVENTORY_URL")?, proxy.as_deref())?,
            payments_api_key: std::env::var("PAYMENTS_API_KEY")
                .unwrap_or_else(|_| DEFAULT_PAYMENTS_API_KEY.to_owned()),
        })
    }
}

/// A client honouring `HTTP_PROXY`/`http_proxy`, `HTTPS_PROXY`/`https_proxy`, `NO_PROXY`
/// and `SSL_CERT_FILE` (extra trusted roots, PEM).
///
/// The proxies are set explicitly rather than left to reqwest's own discovery so that what
/// the service does is visible here, and so that `SSL_CERT_FILE` is read the same way.
pub fn client_from_env() -> Result<reqwest::Client, String> {
    let var = |upper: &str, lower: &str| {
        std::env::var(upper)
            .or_else(|_| std::env::var(lower))
            .ok()
            .filter(|v| !v.is_empty())
    };
    client(
        var("HTTP_PROXY", "http_proxy").as_deref(),
        var("HTTPS_PROXY", "https_proxy").as_deref(),
        std::env::var_os("SSL_CERT_FILE")
            .filter(|v| !v.is_empty())
            .map(std::path::PathBuf::from)
            .as_deref(),
    )
}

/// A client with the given proxies (plain HTTP and HTTPS destinations) and extra roots.
pub fn client(
    http_proxy: Option<&str>,
    https_proxy: Option<&str>,
    ca_file: Option<&std::path::Path>,
) -> Result<reqwest::Client, String> {
    crate::install_crypto_provider();
    let mut builder = reqwest::Client::builder().no_proxy();
    if let Some(url) = http_proxy {
        let proxy = reqwest::Proxy::http(url).map_err(|e| format!("HTTP_PROXY {url:?}: {e}"))?;
        builder = builder.proxy(proxy.no_proxy(reqwest::NoProxy::from_env()));
    }
    if let Some(url) = https_proxy {
        let proxy = reqwest::Proxy::https(url).map_err(|e| format!("HTTPS_PROXY {url:?}: {e}"))?;
        builder = builder.proxy(proxy.no_proxy(reqwest::NoProxy::from_env()));
    }
    if let Some(path) = ca_file {
        let pem =
            std::fs::read(path).map_err(|e| format!("SSL_CERT_FILE {}: {e}", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("SSL_CERT_FILE {}: not a PEM bundle: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!(
                "SSL_CERT_FILE {}: no certificate in the file",
                path.display()
            ));
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// The body of `POST /checkout`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Order {
    /// Minor units (cents).
    amount: i64,
    /// ISO 4217, upper case.
    currency: String,
    /// Destination zip code; 94107 when absent.
    #[serde(default)]
    zip: Option<String>,
    /// Card details, passed to the payments API as they are.
    #[serde(default)]
    card: Option<Value>,
    /// The item reserved with the inventory service; `mug` when absent.
    #[serde(default)]
    sku: Option<String>,
    /// How many of it; 1 when absent.
    #[serde(default)]
    qty: Option<u32>,
}

type Failure = (StatusCode, Json<Value>);

fn fail(status: StatusCode, message: impl Into<String>) -> Failure {
    (status, Json(json!({ "error": message.into() })))
}

fn validate(body: &[u8]) -> Result<Order, Failure> {
    let order: Order = serde_json::from_slice(body).map_err(|e| {
        fail(
            StatusCode::BAD_REQUEST,
            format!("the body must be a JSON order: {e}"),
        )
    })?;
    if !(1..=100_000_000).contains(&order.amount) {
        return Err(fail(
            StatusCode::UNPROCESSABLE_ENTITY,
            "amount must be between 1 and 100000000 (minor units)",
        ));
    }
    if order.currency.len() != 3 || !order.currency.bytes().all(|c| c.is_ascii_uppercase()) {
        return Err(fail(
            StatusCode::UNPROCESSABLE_ENTITY,
            "currency must be a three-letter ISO code in upper case, e.g. USD",
        ));
    }
    if let Some(zip) = &order.zip
        && (zip.len() != 5 || !zip.bytes().all(|c| c.is_ascii_digit()))
    {
        return Err(fail(
            StatusCode::UNPROCESSABLE_ENTITY,
            "zip must be five digits",
        ));
    }
    Ok(order)
}

/// The W3C trace context of the inbound request, to send on every outbound call as any
/// OpenTelemetry-instrumented client does. softprobe's ingress proxy puts the session in
/// `tracestate`; forwarding it is how the egress proxy knows which session a call belongs to.
fn trace_context(inbound: &HeaderMap) -> reqwest::header::HeaderMap {
    let mut out = reqwest::header::HeaderMap::new();
    for name in ["traceparent", "tracestate"] {
        if let Some(value) = inbound.get(name) {
            out.insert(name, value.clone());
        }
    }
    out
}

/// Sends one outbound request and reads its JSON answer; failures become a 502 naming the
/// upstream, so a broken capture setup is easy to tell from a bug in the service.
async fn call(upstream: &str, request: reqwest::RequestBuilder) -> Result<Value, Failure> {
    let response = request
        .send()
        .await
        .map_err(|e| fail(StatusCode::BAD_GATEWAY, format!("{upstream}: {e}")))?;
    let status = response.status();
    let body: Value = response.json().await.map_err(|e| {
        fail(
            StatusCode::BAD_GATEWAY,
            format!("{upstream}: not JSON: {e}"),
        )
    })?;
    if !status.is_success() {
        return Err(fail(
            StatusCode::BAD_GATEWAY,
            format!("{upstream} answered {status}: {body}"),
        ));
    }
    Ok(body)
}

async fn checkout(
    State(cfg): State<Arc<Config>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, Failure> {
    let order = validate(&body)?;
    let context = trace_context(&headers);

    let sku = order.sku.clone().unwrap_or_else(|| "mug".to_owned());
    let reserved = crate::inventory::reserve(
        cfg.inventory.clone(),
        &context,
        crate::inventory::ReserveRequest {
            sku: sku.clone(),
            qty: order.qty.unwrap_or(1),
        },
    )
    .await
    .map_err(|status| match status.code() {
        tonic::Code::NotFound | tonic::Code::FailedPrecondition => fail(
            StatusCode::CONFLICT,
            format!("cannot reserve {sku}: {}", status.message()),
        ),
        _ => fail(
            StatusCode::BAD_GATEWAY,
            format!("inventory: {}: {}", status.code(), status.message()),
        ),
    })?;

    let mut payment_request = json!({
        "amount": order.amount,
        "currency": order.currency.to_lowercase(),
    });
    if let Some(card) = order.card {
        payment_request["card"] = card;
    }
    let payment = call(
        "payments",
        cfg.http
            .post(format!("{}/v1/payment_intents", cfg.payments_url))
            .headers(context.clone())
            .bearer_auth(&cfg.payments_api_key)
            .json(&payment_request),
    )
    .await?;

    let zip = order.zip.as_deref().unwrap_or("94107");
    let quote = call(
        "shipping",
        cfg.http
            .get(format!("{}/shipping", cfg.shipping_url))
            .headers(context)
            .query(&[("zip", zip)]),
    )
    .await?;
    let shipping = quote["quote"].as_i64().unwrap_or(0);

    Ok(Json(json!({
        "orderId": crate::random_id("ord"),
        "reservation": reserved.reservation,
        "sku": sku,
        "left": reserved.left,
        "createdAt": humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
        "paymentId": payment["id"],
        "paymentStatus": payment["status"],
        "carrier": quote["carrier"],
        "shipping": shipping,
        "total": order.amount + shipping,
        "currency": order.currency,
    })))
}

/// `GET /orders/{id}/status`: the carrier's tracking events for the order, relayed as
/// server-sent events one by one as they arrive (never gathered first).
async fn order_status(
    State(cfg): State<Arc<Config>>,
    Path(order): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    let valid = order.len() <= 64
        && order
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !valid {
        return Err(fail(
            StatusCode::BAD_REQUEST,
            "the order id is letters, digits, '_' and '-' (at most 64)",
        ));
    }
    let upstream = cfg
        .http
        .get(format!("{}/tracking/{order}", cfg.shipping_url))
        .headers(trace_context(&headers))
        .header(header::ACCEPT, "text/event-stream")
        .send()
        .await
        .map_err(|e| fail(StatusCode::BAD_GATEWAY, format!("tracking: {e}")))?;
    if !upstream.status().is_success() {
        return Err(fail(
            StatusCode::BAD_GATEWAY,
            format!("tracking answered {}", upstream.status()),
        ));
    }
    let events = futures_util::stream::unfold(
        Relay {
            upstream: Some(upstream),
            pending: String::new(),
            order,
        },
        Relay::next,
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(events),
    )
        .into_response())
}

/// The state of one tracking relay: the carrier's stream and the part of an event read so
/// far.
struct Relay {
    upstream: Option<reqwest::Response>,
    pending: String,
    order: String,
}

impl Relay {
    /// The next event for the client, in the service's own shape, once the carrier's next
    /// event is complete; `None` when the carrier's stream ended.
    async fn next(mut self) -> Option<(Result<String, reqwest::Error>, Relay)> {
        loop {
            if let Some(end) = self.pending.find("\n\n") {
                let event: String = self.pending.drain(..end + 2).collect();
                if let Some(out) = self.relayed(&event) {
                    return Some((Ok(out), self));
                }
                continue;
            }
            let chunk = match self.upstream.as_mut()?.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => {
                    self.upstream = None;
                    return None;
                }
                Err(e) => {
                    self.upstream = None;
                    return Some((Err(e), self));
                }
            };
            self.pending.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// One carrier event as the service's `status` event; comments and events without JSON
    /// data are skipped.
    fn relayed(&self, event: &str) -> Option<String> {
        let data = event
            .lines()
            .find_map(|line| line.strip_prefix("data:"))
            .map(str::trim)?;
        let carrier: Value = serde_json::from_str(data).ok()?;
        let status = json!({
            "orderId": self.order,
            "status": carrier["status"],
            "at": carrier["at"],
        });
        Some(format!("event: status\ndata: {status}\n\n"))
    }
}

async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// The service's routes: `POST /checkout`, `GET /orders/{id}/status` and `GET /healthz`.
pub fn router(cfg: Config) -> Router {
    Router::new()
        .route("/checkout", post(checkout))
        .route("/orders/{id}/status", get(order_status))
        .route("/healthz", get(health))
        .with_state(Arc::new(cfg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_are_validated_with_a_reason() {
        let err = |body: &str| validate(body.as_bytes()).unwrap_err();
        assert_eq!(err("{").0, StatusCode::BAD_REQUEST);
        assert_eq!(
            err(r#"{"amount":0,"currency":"USD"}"#).0,
            StatusCode::UNPROCESSABLE_ENTITY
        );
        let (_, Json(body)) = err(r#"{"amount":10,"currency":"usd"}"#);
        assert!(
            body["error"].as_str().unwrap().contains("currency"),
            "{body}"
        );
        let (_, Json(body)) = err(r#"{"amount":10,"currency":"USD","zip":"9410"}"#);
        assert!(body["error"].as_str().unwrap().contains("zip"), "{body}");
        let (_, Json(body)) = err(r#"{"amount":10,"currency":"USD","coupon":"x"}"#);
        assert!(body["error"].as_str().unwrap().contains("coupon"), "{body}");
        let order = validate(br#"{"amount":1000,"currency":"USD"}"#).unwrap();
        assert_eq!((order.amount, order.zip), (1000, None));
    }

    #[test]
    fn only_the_trace_context_is_forwarded() {
        let mut inbound = HeaderMap::new();
        inbound.insert(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
                .parse()
                .unwrap(),
        );
        inbound.insert("tracestate", "sp=sess_1".parse().unwrap());
        inbound.insert("cookie", "a=b".parse().unwrap());
        let out = trace_context(&inbound);
        assert_eq!(out.len(), 2);
        assert_eq!(out["tracestate"], "sp=sess_1");
    }
}
