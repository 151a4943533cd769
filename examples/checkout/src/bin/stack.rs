//! `stack`: the whole reference stack of the capture guide in one process: the softprobe
//! runtime and control API (8080), the checkout app (8081) behind the ingress proxy (8082),
//! the egress proxy (8084) its outbound calls go through (HTTP, HTTPS and gRPC), and the fake
//! upstreams (payments, shipping, inventory). Ctrl-C or
//! SIGTERM stops everything and flushes open capture sessions to their case files.
//!
//! Every address is a flag, and port 0 picks a free one: the last line on stdout is
//! `ready {json}` with the addresses in use, for scripts and tests to read.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use checkout::app::{Config, DEFAULT_PAYMENTS_API_KEY, router};
use checkout::upstreams::{FakeUpstreams, inventory_url, payments_url, shipping_url};
use clap::Parser;
use serde_json::json;
use softprobe_runtime::proxy::ProxyConfig;
use softprobe_runtime::{Runtime, Server};

/// Where each piece listens, and where files go.
#[derive(Debug, Parser)]
#[command(
    name = "stack",
    about = "The softprobe reference stack with the checkout example"
)]
struct Flags {
    /// Runtime: control API and OTLP API.
    #[arg(long, default_value = "127.0.0.1:8080")]
    runtime: SocketAddr,
    /// The checkout app (reach it through the ingress, not here, when capturing).
    #[arg(long, default_value = "127.0.0.1:8081")]
    app: SocketAddr,
    /// Ingress proxy, in front of the app.
    #[arg(long, default_value = "127.0.0.1:8082")]
    ingress: SocketAddr,
    /// Egress proxy, the app's HTTP_PROXY and HTTPS_PROXY.
    #[arg(long, default_value = "127.0.0.1:8084")]
    egress: SocketAddr,
    /// Fake payments API (HTTPS).
    #[arg(long, default_value = "127.0.0.1:8443")]
    payments: SocketAddr,
    /// Fake shipping service (HTTP).
    #[arg(long, default_value = "127.0.0.1:8090")]
    shipping: SocketAddr,
    /// Fake inventory service (gRPC over h2c).
    #[arg(long, default_value = "127.0.0.1:50051")]
    inventory: SocketAddr,
    /// Do not start the fake upstreams: replay sessions answer from their case, with nothing
    /// listening on --payments, --shipping and --inventory (which must then name the captured
    /// ports).
    #[arg(long)]
    no_upstreams: bool,
    /// Where `close` writes a capture without `--out` (`{sessionId}`, `{ts}`, `{mode}` are
    /// replaced) [default: e2e/captured.case.json].
    #[arg(long, env = "SOFTPROBE_CAPTURE_CASE_PATH")]
    capture_case_path: Option<String>,
    /// Log filter for the runtime and proxies (tracing EnvFilter syntax), to stderr.
    #[arg(long, env = "SOFTPROBE_LOG", default_value = "info")]
    log: String,
    /// Directory for the CA certificates (the proxy's, trusted by the app; the payments
    /// one, trusted by the egress proxy).
    #[arg(long, default_value = "target/softprobe-stack")]
    dir: PathBuf,
}

#[tokio::main]
async fn main() -> ExitCode {
    let flags = Flags::parse();
    match tracing_subscriber::EnvFilter::try_new(&flags.log) {
        Ok(filter) => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        Err(err) => {
            eprintln!("stack: --log / SOFTPROBE_LOG {:?}: {err}", flags.log);
            return ExitCode::from(2);
        }
    }
    checkout::install_crypto_provider();
    match run(flags).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("stack: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(flags: Flags) -> Result<(), String> {
    if flags.no_upstreams
        && [flags.payments, flags.shipping, flags.inventory]
            .iter()
            .any(|a| a.port() == 0)
    {
        return Err(
            "--no-upstreams needs the --payments, --shipping and --inventory ports the case \
                    was captured with (not 0)"
                .into(),
        );
    }
    std::fs::create_dir_all(&flags.dir)
        .map_err(|e| format!("--dir {}: {e}", flags.dir.display()))?;

    let upstreams = if flags.no_upstreams {
        None
    } else {
        let upstreams =
            FakeUpstreams::start(flags.payments, flags.shipping, flags.inventory).await?;
        upstreams.write_ca(&flags.dir.join("payments-ca.pem"))?;
        Some(upstreams)
    };
    let (payments, shipping, inventory) = match &upstreams {
        Some(u) => (u.payments_url(), u.shipping_url(), u.inventory_url()),
        None => (
            payments_url(flags.payments.port()),
            shipping_url(flags.shipping.port()),
            inventory_url(flags.inventory.port()),
        ),
    };

    // The app's port is bound first so that the ingress can point at it; the app starts
    // serving once the egress proxy it calls through is up.
    let app_listener = tokio::net::TcpListener::bind(flags.app)
        .await
        .map_err(|e| format!("checkout app on {}: {e}", flags.app))?;
    let app_addr = app_listener.local_addr().map_err(|e| e.to_string())?;

    // The egress proxy terminates the app's TLS with its own CA (written to --dir), and must
    // itself trust the payments CA to reach the real (here: fake) upstream.
    let proxy_ca_path = flags.dir.join("proxy-ca.pem");
    let egress_upstream_roots = match &upstreams {
        Some(upstreams) => softprobe_runtime::proxy::tls::parse_certs(
            upstreams.ca_cert_pem().as_bytes(),
            "the payments CA",
        )
        .map_err(|e| e.to_string())?,
        None => Vec::new(),
    };
    let runtime = Runtime::builder()
        .server(
            Server::builder()
                .listen(flags.runtime)
                .capture_path(flags.capture_case_path.clone()),
        )
        .proxies(ProxyConfig {
            ingress_listen: Some(flags.ingress),
            ingress_upstream: Some(format!("http://{app_addr}")),
            // The ingress serves on this process's tokio runtime, as the app does.
            ingress_threads: Some(0),
            egress_listen: Some(flags.egress),
            egress_upstream_roots,
            ca_out: Some(proxy_ca_path.clone()),
            ..ProxyConfig::default()
        })
        .start()
        .await
        .map_err(|e| e.to_string())?;
    let (Some(runtime_uri), Some(ingress_uri), Some(egress_uri)) =
        (runtime.uri(), runtime.ingress_uri(), runtime.egress_uri())
    else {
        return Err("the runtime started without its server or proxies".into());
    };

    // The app is configured exactly as the `checkout` binary would be with
    // HTTP_PROXY=HTTPS_PROXY=<egress> and SSL_CERT_FILE=<proxy CA>.
    let http = checkout::app::client(Some(&egress_uri), Some(&egress_uri), Some(&proxy_ca_path))?;
    let inventory_channel = checkout::inventory::channel(&inventory, Some(&egress_uri))?;
    let (stop_app, app_stopped) = tokio::sync::oneshot::channel::<()>();
    let app = tokio::spawn(
        axum::serve(
            app_listener,
            router(Config {
                http,
                payments_url: payments.clone(),
                shipping_url: shipping.clone(),
                inventory: inventory_channel,
                payments_api_key: DEFAULT_PAYMENTS_API_KEY.to_owned(),
            }),
        )
        .with_graceful_shutdown(async {
            let _ = app_stopped.await;
        })
        .into_future(),
    );

    let ready = json!({
        "runtime": runtime_uri,
        "app": format!("http://{app_addr}"),
        "ingress": ingress_uri,
        "egress": egress_uri,
        "payments": payments,
        "shipping": shipping,
        "inventory": inventory,
        "upstreams": upstreams.is_some(),
        "proxyCa": proxy_ca_path,
    });
    print_banner(&ready, &proxy_ca_path, upstreams.is_some());
    println!("ready {ready}");

    let signal = checkout::shutdown_signal().await;
    eprintln!("stack: {signal}, stopping");
    // The proxies drain first, so every exchange in flight is recorded before the flush.
    let flushed = runtime.shutdown().await;
    let _ = stop_app.send(());
    let _ = app.await;
    if let Some(upstreams) = upstreams {
        upstreams.stop().await;
    }
    let mut failed = Vec::new();
    for flushed in flushed {
        match flushed.result {
            Ok(()) => eprintln!(
                "stack: wrote the capture of open session {} to {}",
                flushed.session_id,
                flushed.path.display()
            ),
            Err(err) => failed.push(format!("session {}: {err}", flushed.session_id)),
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join("; "))
    }
}

fn print_banner(ready: &serde_json::Value, proxy_ca: &Path, upstreams: bool) {
    let s = |key: &str| ready[key].as_str().unwrap_or_default().to_owned();
    let (runtime, ingress) = (s("runtime"), s("ingress"));
    println!("softprobe reference stack");
    println!("  runtime + control API   {runtime}");
    println!(
        "  ingress proxy           {ingress}  ->  checkout app {}",
        s("app")
    );
    println!(
        "  egress proxy            {}  (the app's HTTP_PROXY/HTTPS_PROXY)",
        s("egress")
    );
    if upstreams {
        println!("  fake payments (HTTPS)   {}", s("payments"));
        println!("  fake shipping (HTTP)    {}", s("shipping"));
        println!("  fake inventory (gRPC)   {}", s("inventory"));
    } else {
        println!("  upstreams               stopped: replay sessions only");
    }
    println!("  proxy CA                {}", proxy_ca.display());
    println!();
    println!("Capture a case (Ctrl-C stops the stack):");
    println!(
        "  SESSION_ID=$(curl -s -X POST {runtime}/v1/sessions -H 'Content-Type: application/json' -d '{{\"mode\":\"capture\"}}' | jq -r .sessionId)"
    );
    println!(
        "  curl -s -H \"x-softprobe-session-id: $SESSION_ID\" {ingress}/checkout -H 'content-type: application/json' -d '{{\"amount\": 1000, \"currency\": \"USD\"}}'"
    );
    println!("  curl -s {runtime}/v1/sessions/$SESSION_ID/stats | jq");
    println!("  curl -s -X POST {runtime}/v1/sessions/$SESSION_ID/close");
    println!(
        "  cargo run -p softprobe-runtime --bin softprobe -- inspect case e2e/captured.case.json"
    );
}
