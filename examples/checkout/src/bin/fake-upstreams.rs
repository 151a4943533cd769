//! `fake-upstreams`: the payments API (HTTPS), shipping service (HTTP) and inventory service
//! (gRPC) the checkout
//! service is captured against. The payments CA is generated at start and written where
//! `--ca-out` says, for the egress proxy (or the service itself) to trust.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use checkout::upstreams::FakeUpstreams;
use clap::Parser;

/// Flags, each with an environment variable.
#[derive(Debug, Parser)]
#[command(
    name = "fake-upstreams",
    about = "Fake payments (HTTPS), shipping (HTTP) and inventory (gRPC) upstreams"
)]
struct Flags {
    /// Address of the payments API (HTTPS).
    #[arg(long, env = "PAYMENTS_LISTEN_ADDR", default_value = "127.0.0.1:8443")]
    payments: SocketAddr,
    /// Address of the shipping service (HTTP).
    #[arg(long, env = "SHIPPING_LISTEN_ADDR", default_value = "127.0.0.1:8090")]
    shipping: SocketAddr,
    /// Address of the inventory service (gRPC over h2c).
    #[arg(long, env = "INVENTORY_LISTEN_ADDR", default_value = "127.0.0.1:50051")]
    inventory: SocketAddr,
    /// Where to write the PEM certificate of the CA that signs the payments certificate.
    #[arg(
        long,
        env = "PAYMENTS_CA_OUT",
        default_value = "target/softprobe-stack/payments-ca.pem"
    )]
    ca_out: PathBuf,
}

#[tokio::main]
async fn main() -> ExitCode {
    let flags = Flags::parse();
    checkout::install_crypto_provider();
    let upstreams =
        match FakeUpstreams::start(flags.payments, flags.shipping, flags.inventory).await {
            Ok(upstreams) => upstreams,
            Err(err) => {
                eprintln!("fake-upstreams: {err}");
                return ExitCode::FAILURE;
            }
        };
    if let Err(err) = upstreams.write_ca(&flags.ca_out) {
        eprintln!("fake-upstreams: --ca-out: {err}");
        return ExitCode::FAILURE;
    }
    println!(
        "payments  {}  (CA: {})",
        upstreams.payments_url(),
        flags.ca_out.display()
    );
    println!("shipping  {}", upstreams.shipping_url());
    println!("inventory {}", upstreams.inventory_url());
    let signal = checkout::shutdown_signal().await;
    eprintln!("fake-upstreams: {signal}, stopping");
    upstreams.stop().await;
    ExitCode::SUCCESS
}
