//! Fake upstreams that make a capture realistic: a payments API over HTTPS whose certificate
//! comes from a CA generated at start (clients must be told to trust it, as with any private
//! CA), and an HTTP shipping service. Both take a little time to answer and hand out ids
//! that change on every call, so a replayed answer is visibly the recorded one.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::Query;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use softprobe_runtime::proxy::CertificateAuthority;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The running fake upstreams; [`FakeUpstreams::stop`] (or dropping them) stops both.
#[derive(Debug)]
pub struct FakeUpstreams {
    payments: SocketAddr,
    shipping: SocketAddr,
    ca_pem: String,
    tasks: Vec<JoinHandle<()>>,
}

impl FakeUpstreams {
    /// Starts payments (HTTPS) and shipping (HTTP) on the given addresses; port 0 picks a
    /// free port. The payments certificate comes from a CA generated now.
    pub async fn start(
        payments: SocketAddr,
        shipping: SocketAddr,
    ) -> Result<FakeUpstreams, String> {
        // The payments certificate is for `localhost`, the name its URL uses.
        let ca = CertificateAuthority::generate()
            .map_err(|e| format!("cannot generate the payments CA: {e}"))?;
        let tls = ca
            .server_config("localhost")
            .map_err(|e| format!("cannot issue the payments certificate: {e}"))?;
        Self::serve(payments, shipping, tls, ca.cert_pem().to_owned()).await
    }

    /// Like [`FakeUpstreams::start`], with a given `localhost` certificate and key (PEM) and
    /// the CA that signed it: for tests whose proxy was told to trust that CA beforehand.
    pub async fn start_with_certificate(
        payments: SocketAddr,
        shipping: SocketAddr,
        cert_pem: &str,
        key_pem: &str,
        ca_pem: &str,
    ) -> Result<FakeUpstreams, String> {
        use rustls::pki_types::pem::PemObject as _;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("the payments certificate is not PEM: {e}"))?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| format!("the payments key is not PEM: {e}"))?;
        let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("the payments certificate and key: {e}"))?;
        Self::serve(payments, shipping, Arc::new(tls), ca_pem.to_owned()).await
    }

    async fn serve(
        payments: SocketAddr,
        shipping: SocketAddr,
        tls: Arc<rustls::ServerConfig>,
        ca_pem: String,
    ) -> Result<FakeUpstreams, String> {
        let payments_listener = TcpListener::bind(payments)
            .await
            .map_err(|e| format!("payments cannot listen on {payments}: {e}"))?;
        let shipping_listener = TcpListener::bind(shipping)
            .await
            .map_err(|e| format!("shipping cannot listen on {shipping}: {e}"))?;
        let payments = payments_listener.local_addr().map_err(|e| e.to_string())?;
        let shipping = shipping_listener.local_addr().map_err(|e| e.to_string())?;
        let payments_app = Router::new().route("/v1/payment_intents", post(create_payment));
        let shipping_app = Router::new().route("/shipping", get(quote));
        let tasks = vec![
            tokio::spawn(serve_tls(payments_listener, tls, payments_app)),
            tokio::spawn(async move {
                let _ = axum::serve(shipping_listener, shipping_app).await;
            }),
        ];
        Ok(FakeUpstreams {
            payments,
            shipping,
            ca_pem,
            tasks,
        })
    }

    /// Base URL of the payments API, `https://localhost:PORT`.
    pub fn payments_url(&self) -> String {
        payments_url(self.payments.port())
    }

    /// Base URL of the shipping service, `http://127.0.0.1:PORT`.
    pub fn shipping_url(&self) -> String {
        shipping_url(self.shipping.port())
    }

    /// The PEM certificate of the CA that signed the payments certificate.
    pub fn ca_cert_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Writes [`FakeUpstreams::ca_cert_pem`] to `path`, creating its directory.
    pub fn write_ca(&self, path: &std::path::Path) -> Result<(), String> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        std::fs::write(path, &self.ca_pem)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    }

    /// Stops both upstreams and waits until their ports are free; connections in flight
    /// are cut. (Dropping them stops them too, but without waiting.)
    pub async fn stop(mut self) {
        for task in std::mem::take(&mut self.tasks) {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for FakeUpstreams {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The payments URL for a port, as the fake upstreams and their clients spell it.
pub fn payments_url(port: u16) -> String {
    format!("https://localhost:{port}")
}

/// The shipping URL for a port.
pub fn shipping_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// Real services are not instant; a few tens of milliseconds make the recorded latency show.
async fn latency() {
    let mut byte = [0u8; 1];
    let _ = getrandom::fill(&mut byte);
    tokio::time::sleep(Duration::from_millis(20 + u64::from(byte[0] % 40))).await;
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

async fn create_payment(headers: HeaderMap, body: Bytes) -> (StatusCode, Json<Value>) {
    latency().await;
    let authorized = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer sk_"));
    if !authorized {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": {"message": "a Bearer sk_... API key is required"}})),
        );
    }
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let Some(amount) = request["amount"].as_i64() else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": {"message": "amount is required"}})),
        );
    };
    (
        StatusCode::OK,
        Json(json!({
            "id": crate::random_id("pi"),
            "object": "payment_intent",
            "amount": amount,
            "currency": request["currency"],
            "status": "succeeded",
            "created": unix_now(),
        })),
    )
}

#[derive(Debug, Deserialize)]
struct QuoteQuery {
    zip: String,
}

async fn quote(Query(query): Query<QuoteQuery>) -> Json<Value> {
    latency().await;
    // Distant zones cost more; the first digit of a US zip code is its zone.
    let zone = query
        .zip
        .bytes()
        .next()
        .map_or(0, |b| i64::from(b.saturating_sub(b'0')));
    Json(json!({
        "quoteId": crate::random_id("q"),
        "zip": query.zip,
        "carrier": "ups",
        "quote": 499 + 10 * (9 - zone.min(9)),
    }))
}

async fn serve_tls(listener: TcpListener, tls: Arc<rustls::ServerConfig>, app: Router) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
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
            let service = hyper_util::service::TowerToHyperService::new(app);
            let _ =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
        });
    }
}
