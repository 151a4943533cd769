//! A service in a process of its own that builds its HTTP client the way most services do:
//! from the environment (`HTTPS_PROXY` / `HTTP_PROXY` for the proxy, `SSL_CERT_FILE` for the
//! roots it trusts), with no line of code about either. The end-to-end tests start it with
//! `sp.command(...)` (tests/tests/service_clients.rs).
//!
//! `GET /order` fetches a shipping quote over HTTP (`SHIPPING_URL`), creates a payment of
//! `AMOUNT` over HTTPS (`PAYMENTS_URL`) and answers what both said. It prints
//! `listening on http://127.0.0.1:PORT` once it accepts connections.

use axum::Json;
use axum::extract::State;
use axum::routing::get;
use serde_json::{Value, json};

#[derive(Clone)]
struct Service {
    http: reqwest::Client,
    shipping: String,
    payments: String,
    amount: String,
}

async fn order(State(s): State<Service>) -> Json<Value> {
    let quote: Value = match s
        .http
        .get(format!("{}/shipping?zip=94107", s.shipping))
        .send()
        .await
    {
        Ok(resp) => resp.json().await.unwrap_or(Value::Null),
        Err(e) => json!({"error": format!("{e:?}")}),
    };
    let payment: Value = match s
        .http
        .post(format!("{}/v1/payment_intents", s.payments))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("amount={}&currency=usd", s.amount))
        .send()
        .await
    {
        Ok(resp) => resp.json().await.unwrap_or(Value::Null),
        Err(e) => json!({"error": format!("{e:?}")}),
    };
    Json(json!({"shipping": quote["quote"], "payment": payment["status"]}))
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("env_client_service: {name} is not set"))
}

#[tokio::main]
async fn main() {
    // reqwest is built without a TLS provider of its own in this workspace.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // snippet: env-service
    // reqwest 0.13 reads HTTPS_PROXY / HTTP_PROXY, and its platform verifier the roots in
    // SSL_CERT_FILE: the client is built as in production.
    let http = reqwest::Client::new();
    // end snippet
    let service = Service {
        http,
        shipping: var("SHIPPING_URL"),
        payments: var("PAYMENTS_URL"),
        amount: var("AMOUNT"),
    };
    let app = axum::Router::new()
        .route("/order", get(order))
        .with_state(service);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("binding 127.0.0.1:0");
    println!(
        "listening on http://{}",
        listener.local_addr().expect("a bound address")
    );
    axum::serve(listener, app).await.expect("serving");
}
