//! The checkout example: a small axum service of the kind softprobe is made for, the fake
//! upstreams it is captured against, and the pieces of the reference stack that runs it all
//! on the ports of the capture guide.
//!
//! - [`app`]: `POST /checkout` validates an order, reserves the item with a gRPC inventory
//!   service, creates a payment over HTTPS, asks an HTTP shipping service for a quote and
//!   answers with a fresh order id and timestamp; `GET /orders/{id}/status` relays the
//!   carrier's tracking events as server-sent events.
//! - [`inventory`]: the inventory service's gRPC messages and the tonic client call.
//! - [`upstreams`]: the payments API (HTTPS, signed by a CA generated at start), the
//!   shipping service (HTTP, with a streaming tracking endpoint) and the inventory service
//!   (gRPC over h2c), all slow and answering with ids that change every call, as real
//!   services do.

pub mod app;
pub mod inventory;
pub mod upstreams;

/// Installs ring as the process-wide rustls provider; the workspace builds reqwest and rustls
/// without a default one, so every binary and test calls this before its first TLS client.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A random lowercase hex id with a prefix, e.g. `ord_3f9a0c1d2e4b5a69`.
pub fn random_id(prefix: &str) -> String {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the operating system's random source is available");
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}_{hex}")
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM, naming the signal, so every binary of the example
/// stops the same clean way.
pub async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            return tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = tokio::signal::ctrl_c() => "SIGINT",
            };
        }
    }
    let _ = tokio::signal::ctrl_c().await;
    "SIGINT"
}
