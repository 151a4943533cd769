//! Fake upstreams that make a capture realistic: a payments API over HTTPS whose certificate
//! comes from a CA generated at start (clients must be told to trust it, as with any private
//! CA), an HTTP shipping service that also streams a parcel's tracking events (server-sent
//! events, a little apart), and a gRPC inventory service (h2c). All take a little time to
//! answer and hand out ids that change on every call, so a replayed answer is visibly the
//! recorded one.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use softprobe_runtime::proxy::CertificateAuthority;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic_prost::ProstCodec;

use crate::inventory::{ReserveReply, ReserveRequest};

/// The running fake upstreams; [`FakeUpstreams::stop`] (or dropping them) stops them all.
#[derive(Debug)]
pub struct FakeUpstreams {
    payments: SocketAddr,
    shipping: SocketAddr,
    inventory: SocketAddr,
    ca_pem: String,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl FakeUpstreams {
    /// Starts payments (HTTPS), shipping (HTTP) and inventory (gRPC over h2c) on the given
    /// addresses; port 0 picks a free port. The payments certificate comes from a CA
    /// generated now.
    pub async fn start(
        payments: SocketAddr,
        shipping: SocketAddr,
        inventory: SocketAddr,
    ) -> Result<FakeUpstreams, String> {
        // The payments certificate is for `localhost`, the name its URL uses.
        let ca = CertificateAuthority::generate()
            .map_err(|e| format!("cannot generate the payments CA: {e}"))?;
        let tls = ca
            .server_config("localhost")
            .map_err(|e| format!("cannot issue the payments certificate: {e}"))?;
        Self::serve(
            [payments, shipping, inventory],
            tls,
            ca.cert_pem().to_owned(),
        )
        .await
    }

    /// Like [`FakeUpstreams::start`], with a given `localhost` certificate and key (PEM) and
    /// the CA that signed it: for tests whose proxy was told to trust that CA beforehand.
    pub async fn start_with_certificate(
        payments: SocketAddr,
        shipping: SocketAddr,
        inventory: SocketAddr,
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
        Self::serve(
            [payments, shipping, inventory],
            Arc::new(tls),
            ca_pem.to_owned(),
        )
        .await
    }

    async fn serve(
        [payments, shipping, inventory]: [SocketAddr; 3],
        tls: Arc<rustls::ServerConfig>,
        ca_pem: String,
    ) -> Result<FakeUpstreams, String> {
        let bind = |name: &'static str, addr: SocketAddr| async move {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|e| format!("{name} cannot listen on {addr}: {e}"))?;
            let bound = listener.local_addr().map_err(|e| e.to_string())?;
            Ok::<_, String>((listener, bound))
        };
        let (payments_listener, payments) = bind("payments", payments).await?;
        let (shipping_listener, shipping) = bind("shipping", shipping).await?;
        let (inventory_listener, inventory) = bind("inventory", inventory).await?;
        let payments_app = Router::new().route("/v1/payment_intents", post(create_payment));
        let shipping_app = Router::new()
            .route("/shipping", get(quote))
            .route("/tracking/{order}", get(tracking));
        let inventory_app = Router::new().route(crate::inventory::RESERVE, post(reserve));
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let tls = Wire::Tls(tokio_rustls::TlsAcceptor::from(tls));
        let tasks = vec![
            tokio::spawn(serve(payments_listener, payments_app, tls, stopped.clone())),
            tokio::spawn(serve(
                shipping_listener,
                shipping_app,
                Wire::Plain,
                stopped.clone(),
            )),
            tokio::spawn(serve(inventory_listener, inventory_app, Wire::H2c, stopped)),
        ];
        Ok(FakeUpstreams {
            stop,
            payments,
            shipping,
            inventory,
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

    /// Base URL of the inventory service, `http://127.0.0.1:PORT` (gRPC over h2c).
    pub fn inventory_url(&self) -> String {
        inventory_url(self.inventory.port())
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

    /// Stops the upstreams and waits until their ports are free and their connections
    /// closed; calls in flight are cut. (Dropping them stops them too, but without waiting.)
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        for task in std::mem::take(&mut self.tasks) {
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

/// The inventory URL for a port.
pub fn inventory_url(port: u16) -> String {
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

/// What the carrier reports for a parcel, in order, a little apart.
const TRACKING: [&str; 3] = ["label_created", "picked_up", "in_transit"];

/// Gap between two tracking events.
const TRACKING_GAP: Duration = Duration::from_millis(150);

/// `GET /tracking/{order}`: the parcel's events as server-sent events, each sent when it
/// happens (here: [`TRACKING_GAP`] apart), then the stream ends.
async fn tracking(Path(order): Path<String>) -> Response {
    latency().await;
    let events = futures_util::stream::unfold(0usize, move |i| {
        let order = order.clone();
        async move {
            let status = TRACKING.get(i)?;
            if i > 0 {
                tokio::time::sleep(TRACKING_GAP).await;
            }
            let data = json!({
                "order": order,
                "status": status,
                "at": humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
                "scan": crate::random_id("scan"),
            });
            let event = format!("event: tracking\ndata: {data}\n\n");
            Some((Ok::<_, std::convert::Infallible>(event), i + 1))
        }
    });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(events),
    )
        .into_response()
}

/// Stock of the fake inventory.
const STOCK: [(&str, u32); 2] = [("mug", 12), ("tee", 3)];

/// The `Reserve` call as a tonic service.
#[derive(Debug, Clone, Copy)]
struct ReserveService;

impl tonic::server::UnaryService<ReserveRequest> for ReserveService {
    type Response = ReserveReply;
    type Future = std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<tonic::Response<ReserveReply>, tonic::Status>>
                + Send,
        >,
    >;

    fn call(&mut self, request: tonic::Request<ReserveRequest>) -> Self::Future {
        Box::pin(async move {
            latency().await;
            let asked = request.into_inner();
            let Some((_, stock)) = STOCK.iter().find(|(sku, _)| *sku == asked.sku) else {
                return Err(tonic::Status::not_found(format!(
                    "no such sku: {}",
                    asked.sku
                )));
            };
            if asked.qty == 0 || asked.qty > *stock {
                return Err(tonic::Status::failed_precondition(format!(
                    "{} in stock for {}, {} asked",
                    stock, asked.sku, asked.qty
                )));
            }
            Ok(tonic::Response::new(ReserveReply {
                reservation: crate::random_id("res"),
                left: stock - asked.qty,
            }))
        })
    }
}

/// `POST /shop.Inventory/Reserve`, answered by tonic's server machinery.
async fn reserve(request: axum::extract::Request) -> Response {
    tonic::server::Grpc::new(ProstCodec::<ReserveReply, ReserveRequest>::default())
        .unary(ReserveService, request)
        .await
        .map(Body::new)
}

/// How one fake upstream speaks.
#[derive(Clone)]
enum Wire {
    /// HTTP/1.1 or HTTP/2 over plain TCP.
    Plain,
    /// HTTP/2 with prior knowledge only (h2c), as gRPC servers do.
    H2c,
    /// HTTPS with this certificate.
    Tls(tokio_rustls::TlsAcceptor),
}

/// Serves `app` on `listener` until `stop` turns true, then closes every open connection
/// before returning: a client's pooled connection never outlives the upstream it reached
/// (the next capture may start a new upstream on the same port at once).
async fn serve(
    listener: TcpListener,
    app: Router,
    wire: Wire,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
            _ = stop.wait_for(|stop| *stop) => break,
        };
        let (app, wire) = (app.clone(), wire.clone());
        connections.spawn(async move {
            let service = hyper_util::service::TowerToHyperService::new(app);
            let mut builder =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            match wire {
                Wire::Plain => {
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = builder.serve_connection(io, service).await;
                }
                Wire::H2c => {
                    builder = builder.http2_only();
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = builder.serve_connection(io, service).await;
                }
                Wire::Tls(acceptor) => {
                    let Ok(tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let io = hyper_util::rt::TokioIo::new(tls);
                    let _ = builder.serve_connection(io, service).await;
                }
            }
        });
        // Forget the connections that ended.
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    connections.shutdown().await;
}
