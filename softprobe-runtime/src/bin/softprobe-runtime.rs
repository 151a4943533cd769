//! `softprobe-runtime`: the session store, JSON control API and proxy OTLP API on one port.
//!
//! Flags mirror the environment (`SOFTPROBE_LISTEN_ADDR`, `SOFTPROBE_CAPTURE_CASE_PATH`,
//! `SOFTPROBE_API_TOKEN`, `SOFTPROBE_LOG`, the limits `SOFTPROBE_MAX_*`,
//! `SOFTPROBE_IDLE_TIMEOUT`, `SOFTPROBE_HEADER_READ_TIMEOUT`); the work is
//! [`softprobe_runtime::Runtime`].
//! SIGINT/SIGTERM flush open capture sessions that captured something to their case files
//! (never over another session's capture), then exit 0.

use std::net::SocketAddr;
use std::process::ExitCode;

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use softprobe_runtime::cli::logging::LogFormat;
use softprobe_runtime::control::DEFAULT_BODY_LIMIT;
use softprobe_runtime::proxy::ProxyConfig;
use softprobe_runtime::session::SessionLimits;
use softprobe_runtime::standalone::shutdown_signal;
use softprobe_runtime::{Runtime, RuntimeBuilder, Server};

/// Every flag of the binary, in one place.
#[derive(Debug, Parser)]
#[command(
    name = "softprobe-runtime",
    version,
    about = "softprobe runtime: sessions, control API, proxy OTLP API"
)]
struct Flags {
    /// Address of the control API and OTLP API.
    #[arg(long, env = "SOFTPROBE_LISTEN_ADDR", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,

    /// Where `close` writes capture sessions without `?out=`; `{sessionId}`, `{ts}`, `{mode}`
    /// are replaced [default: e2e/captured.case.json].
    #[arg(long, env = "SOFTPROBE_CAPTURE_CASE_PATH")]
    capture_case_path: Option<String>,

    /// Where sessions live: `memory` (this process only) or a Redis URL
    /// (`redis://host:6379/0`, `rediss://` for TLS, `redis://:password@host`) shared by
    /// every replica pointed at it.
    #[arg(
        long,
        env = "SOFTPROBE_STORE_URL",
        default_value = "memory",
        hide_env_values = true
    )]
    store: String,

    /// Bearer token every /v1/ route requires (prefer the environment variable: flags show
    /// up in process listings).
    #[arg(long, env = "SOFTPROBE_API_TOKEN", hide_env_values = true)]
    api_token: Option<String>,

    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `softprobe_runtime=debug`.
    /// (`RUST_LOG` when neither is set; `info` when nothing is.)
    #[arg(long, env = "SOFTPROBE_LOG")]
    log: Option<String>,
    /// Log lines as text or one JSON object per line.
    #[arg(long, env = "SOFTPROBE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,

    /// Request body limit in bytes (413 above it).
    #[arg(long, env = "SOFTPROBE_BODY_LIMIT", default_value_t = DEFAULT_BODY_LIMIT)]
    body_limit: usize,

    /// Most sessions open at once; creating one more answers 429 (0: no limit).
    #[arg(long, env = "SOFTPROBE_MAX_SESSIONS", default_value_t = SessionLimits::DEFAULT_MAX_SESSIONS)]
    max_sessions: usize,

    /// Most spans one capture session holds; more answer 413 and the spans already held
    /// are kept (0: no limit).
    #[arg(
        long,
        env = "SOFTPROBE_MAX_SPANS_PER_SESSION",
        default_value_t = SessionLimits::DEFAULT_MAX_SPANS_PER_SESSION
    )]
    max_spans_per_session: usize,

    /// Close sessions nobody touched for this long, e.g. `30m` (a capture session is
    /// written to its case path first); `0` never expires them.
    #[arg(long, env = "SOFTPROBE_IDLE_TIMEOUT", default_value = "0", value_parser = parse_duration)]
    idle_timeout: Duration,

    /// Time a client gets to send a whole request head on every listener (control API,
    /// ingress, egress) before its connection is closed, e.g. `10s`.
    #[arg(
        long,
        env = "SOFTPROBE_HEADER_READ_TIMEOUT",
        default_value = "10s",
        value_parser = parse_duration
    )]
    header_read_timeout: Duration,

    /// Allow listening on non-loopback addresses (control API and proxies); refused
    /// otherwise. Set a token too.
    #[arg(long, env = "SOFTPROBE_ALLOW_REMOTE")]
    allow_remote: bool,

    /// With --allow-remote, run without a token: anyone who can reach the address can drive
    /// sessions and write captures. Refused otherwise.
    #[arg(long, env = "SOFTPROBE_INSECURE_NO_TOKEN")]
    insecure_no_token: bool,

    /// A host name clients use to reach the runtime (behind a load balancer, from other
    /// containers); requests with any other `Host` than localhost, a loopback address or
    /// the bound address get 421. Repeat or separate with commas.
    #[arg(
        long = "public-host",
        env = "SOFTPROBE_PUBLIC_HOSTS",
        value_delimiter = ','
    )]
    public_hosts: Vec<String>,

    /// A browser origin (`https://ui.example`) allowed to call the runtime, with CORS
    /// headers; other origins get 403. Repeat or separate with commas.
    #[arg(
        long = "allow-origin",
        env = "SOFTPROBE_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    allowed_origins: Vec<String>,

    /// Directory captures must be written under (`?out=` and the capture path)
    /// [default: the capture path's directory, else the working directory].
    #[arg(long, env = "SOFTPROBE_CAPTURE_ROOT")]
    capture_root: Option<PathBuf>,

    /// Let `?out=` and the capture path write anywhere this process's user can write,
    /// outside the capture root too.
    #[arg(long, env = "SOFTPROBE_ALLOW_CAPTURE_OUTSIDE_ROOT")]
    allow_capture_outside_root: bool,

    /// Serve the control API over HTTPS with this PEM certificate chain (with --tls-key).
    #[arg(long, env = "SOFTPROBE_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert.
    #[arg(long, env = "SOFTPROBE_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,

    #[command(flatten)]
    proxy: ProxyFlags,
}

/// `10s`, `1m30s`, `500ms`; a bare number is seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(text)
        .map_err(|err| format!("{err} (expected a duration such as 10s, 5m or 500ms)"))
}

fn main() -> ExitCode {
    let flags = Flags::parse();
    if let Err(message) =
        softprobe_runtime::cli::logging::init(flags.log.as_deref(), flags.log_format)
    {
        eprintln!("softprobe-runtime: {message}");
        return ExitCode::from(2);
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("softprobe-runtime: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(flags.runtime()))
}

/// Runs until SIGINT/SIGTERM, then flushes open captures and stops.
async fn run(builder: RuntimeBuilder) -> ExitCode {
    let runtime = match builder.start().await {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("softprobe-runtime: {err}");
            return ExitCode::from(err.exit_code());
        }
    };
    let signal = shutdown_signal().await;
    if runtime.server().is_none() {
        tracing::info!("received {signal}: stopping the proxies");
        runtime.shutdown().await;
        return ExitCode::SUCCESS;
    }
    tracing::info!("received {signal}: flushing capture sessions and stopping");
    let mut failed = false;
    for flushed in runtime.shutdown().await {
        match &flushed.result {
            Ok(()) => tracing::info!(
                sessionId = %flushed.session_id,
                path = %flushed.path.display(),
                "wrote capture"
            ),
            Err(err) => {
                failed = true;
                tracing::error!(sessionId = %flushed.session_id, "{err}");
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

impl Flags {
    /// The runtime these flags describe.
    fn runtime(self) -> RuntimeBuilder {
        let limits = SessionLimits {
            max_sessions: Some(self.max_sessions).filter(|n| *n > 0),
            max_spans_per_session: Some(self.max_spans_per_session).filter(|n| *n > 0),
        };
        let server = Server::builder()
            .listen(self.listen)
            .capture_path(self.capture_case_path)
            .body_limit(self.body_limit)
            .public_hosts(self.public_hosts)
            .allowed_origins(self.allowed_origins)
            .capture_root(self.capture_root)
            .allow_capture_outside_root(self.allow_capture_outside_root)
            .tls(self.tls_cert.zip(self.tls_key));
        Runtime::builder()
            .server(server)
            .store_url(Some(self.store))
            .proxies(self.proxy.config())
            .remote_runtime(self.proxy.runtime_url)
            .token(self.api_token)
            .allow_remote(self.allow_remote)
            .insecure_no_token(self.insecure_no_token)
            .header_read_timeout(self.header_read_timeout)
            .limits(limits)
            .idle_timeout(Some(self.idle_timeout))
    }
}

/// The proxy flags: the ingress runs with `--ingress-upstream`, the egress with
/// `--egress-listen` or `--egress-upstream`.
#[derive(Debug, clap::Args)]
struct ProxyFlags {
    /// Ingress proxy address [default: 127.0.0.1:8082 when --ingress-upstream is given].
    #[arg(long, env = "SOFTPROBE_INGRESS_LISTEN_ADDR")]
    ingress_listen: Option<SocketAddr>,
    /// The application behind the ingress proxy, e.g. http://127.0.0.1:8081.
    #[arg(long, env = "SOFTPROBE_INGRESS_UPSTREAM")]
    ingress_upstream: Option<String>,
    /// Egress proxy address (HTTP_PROXY / HTTPS_PROXY for the application), e.g.
    /// 127.0.0.1:8084.
    #[arg(long, env = "SOFTPROBE_EGRESS_LISTEN_ADDR")]
    egress_listen: Option<SocketAddr>,
    /// Default upstream for origin-form requests to the egress proxy.
    #[arg(long, env = "SOFTPROBE_EGRESS_UPSTREAM")]
    egress_upstream: Option<String>,
    /// PEM certificate of the CA that signs intercepted HTTPS hosts (with --ca-key;
    /// otherwise a CA is generated for this run).
    #[arg(long, env = "SOFTPROBE_CA_CERT")]
    ca_cert: Option<PathBuf>,
    /// PEM private key of that CA.
    #[arg(long, env = "SOFTPROBE_CA_KEY")]
    ca_key: Option<PathBuf>,
    /// Write the CA certificate here for clients to trust (also served on
    /// GET /v1/proxy/ca.pem).
    #[arg(long, env = "SOFTPROBE_CA_OUT")]
    ca_out: Option<PathBuf>,
    /// Refuse proxy traffic without an open session (403) instead of relaying it.
    #[arg(long, env = "SOFTPROBE_REQUIRE_SESSION")]
    require_session: bool,
    /// Service name recorded on proxied hops.
    #[arg(long, env = "SOFTPROBE_SERVICE_NAME")]
    service_name: Option<String>,
    /// Threads serving the ingress proxy's connections, each with its own event loop and
    /// upstream pool [default: one per CPU]; 0 serves them on the runtime's shared workers.
    #[arg(long, env = "SOFTPROBE_INGRESS_THREADS")]
    ingress_threads: Option<usize>,
    /// Run only the proxies, asking the runtime at this URL (its /v1/inject and /v1/traces).
    #[arg(long, env = "SOFTPROBE_RUNTIME_URL")]
    runtime_url: Option<String>,
}

impl ProxyFlags {
    fn config(&self) -> ProxyConfig {
        ProxyConfig {
            ingress_listen: self.ingress_listen,
            ingress_upstream: self.ingress_upstream.clone(),
            egress_listen: self.egress_listen,
            egress_upstream: self.egress_upstream.clone(),
            ca_cert: self.ca_cert.clone(),
            ca_key: self.ca_key.clone(),
            ca_out: self.ca_out.clone(),
            require_session: self.require_session,
            service: self.service_name.clone(),
            ingress_threads: self.ingress_threads,
            ..ProxyConfig::default()
        }
    }
}
