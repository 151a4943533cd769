//! `checkout`: the example service on its own, configured by the environment:
//! `CHECKOUT_LISTEN_ADDR` (default 127.0.0.1:8081), `PAYMENTS_URL`, `SHIPPING_URL`,
//! `INVENTORY_URL`, `PAYMENTS_API_KEY`, and for its outbound calls `HTTP_PROXY`,
//! `HTTPS_PROXY`, `NO_PROXY`, `SSL_CERT_FILE` (the gRPC channel uses `HTTP_PROXY` only).

use std::process::ExitCode;

use checkout::app::{Config, DEFAULT_LISTEN_ADDR, router};

#[tokio::main]
async fn main() -> ExitCode {
    let listen =
        std::env::var("CHECKOUT_LISTEN_ADDR").unwrap_or_else(|_| DEFAULT_LISTEN_ADDR.into());
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("checkout: {err}");
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(&listen).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("checkout: cannot listen on CHECKOUT_LISTEN_ADDR={listen}: {err}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "checkout: listening on http://{listen} (payments {}, shipping {})",
        config.payments_url, config.shipping_url
    );
    let served = axum::serve(listener, router(config))
        .with_graceful_shutdown(async {
            let signal = checkout::shutdown_signal().await;
            eprintln!("checkout: {signal}, stopping");
        })
        .await;
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("checkout: {err}");
            ExitCode::FAILURE
        }
    }
}
