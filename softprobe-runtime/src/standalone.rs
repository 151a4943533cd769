//! The whole runtime in one value: the control/OTLP [`Server`], the ingress and egress
//! proxies in front of its session store, the CA the egress signs intercepted hosts with, and
//! the flush of open capture sessions on the way down.
//!
//! The `softprobe-runtime` binary is this type behind its flags; the checkout example's
//! `stack` and the tests that want a runtime with proxies in their own process start it the
//! same way:
//!
//! ```no_run
//! # async fn demo() -> Result<(), softprobe_runtime::RuntimeError> {
//! use softprobe_runtime::proxy::ProxyConfig;
//! use softprobe_runtime::{Runtime, Server};
//!
//! let runtime = Runtime::builder()
//!     .server(Server::builder().listen("127.0.0.1:0".parse().unwrap()))
//!     .proxies(ProxyConfig {
//!         ingress_upstream: Some("http://127.0.0.1:8081".into()),
//!         ingress_listen: Some("127.0.0.1:0".parse().unwrap()),
//!         egress_listen: Some("127.0.0.1:0".parse().unwrap()),
//!         ..ProxyConfig::default()
//!     })
//!     .start()
//!     .await?;
//! println!("control API {:?}, ingress {:?}", runtime.uri(), runtime.ingress_uri());
//! for flushed in runtime.shutdown().await {
//!     println!("wrote {} to {}", flushed.session_id, flushed.path.display());
//! }
//! # Ok(()) }
//! ```
//!
//! With [`RuntimeBuilder::remote_runtime`] only the proxies run, asking a runtime elsewhere
//! over its OTLP API.

use std::sync::Arc;
use std::time::Duration;

use crate::proxy::backend::SharedBackend;
use crate::proxy::{ProxyConfig, RemoteBackend, RunningProxies, StoreBackend};
use crate::server::{
    FlushedCapture, RunningServer, Server, ServerBuilder, SharedSettings, shared_setters,
};
use crate::session::SessionLimits;

/// Why a [`Runtime`] did not start. The binary exits with [`RuntimeError::exit_code`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// The settings contradict each other or are unsafe; nothing was started.
    #[error("{0}")]
    Settings(String),
    /// A part (store, server, proxy) failed to start; what had started is stopped.
    #[error("{0}")]
    Start(String),
}

impl RuntimeError {
    /// `2` for wrong settings (a usage error), `1` for a failure to start.
    pub fn exit_code(&self) -> u8 {
        match self {
            RuntimeError::Settings(_) => 2,
            RuntimeError::Start(_) => 1,
        }
    }
}

/// The runtime: control API, session store, proxies. Start one with [`Runtime::builder`].
#[derive(Debug)]
pub struct Runtime;

impl Runtime {
    /// A builder with the [`Server::builder`] defaults, an in-memory store and no proxies.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder {
            server: Server::builder(),
            store_url: None,
            proxies: ProxyConfig::default(),
            remote_runtime: None,
            shared: SharedSettings::default(),
        }
    }
}

/// Configures and starts a [`Runtime`]. The settings the server, the proxies and the store
/// share (token, remote binds, header timeout, limits, idle timeout) are set here once and
/// applied to each; the server's own ones go on the [`ServerBuilder`] given to
/// [`RuntimeBuilder::server`].
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `start` is awaited"]
pub struct RuntimeBuilder {
    server: ServerBuilder,
    store_url: Option<String>,
    proxies: ProxyConfig,
    remote_runtime: Option<String>,
    shared: SharedSettings,
}

impl RuntimeBuilder {
    /// The control API server's own settings (listen address, capture path and root, body
    /// limit, hosts, origins, TLS). The shared settings of this builder override the same
    /// ones set there.
    pub fn server(mut self, server: ServerBuilder) -> Self {
        self.server = server;
        self
    }

    /// Where sessions live: `None` or `memory` for this process, a Redis URL
    /// (feature `redis-store`) to share them between replicas.
    pub fn store_url(mut self, url: Option<String>) -> Self {
        self.store_url = url.filter(|u| u != "memory");
        self
    }

    /// Which proxies run and how (none by default).
    pub fn proxies(mut self, config: ProxyConfig) -> Self {
        self.proxies = config;
        self
    }

    /// Run only the proxies, in front of the runtime at this URL (its `/v1/inject` and
    /// `/v1/traces`); no server and no store start here.
    pub fn remote_runtime(mut self, url: Option<String>) -> Self {
        self.remote_runtime = url;
        self
    }

    shared_setters!(shared);

    /// Checks the settings, connects the store, starts the server and then the proxies over
    /// its store, and publishes the egress CA on `GET /v1/proxy/ca.pem`. Returns once every
    /// listener accepts connections.
    pub async fn start(self) -> Result<RunningRuntime, RuntimeError> {
        let shared = self.shared;
        if shared.allow_remote && shared.token.is_none() && !shared.insecure_no_token {
            return Err(RuntimeError::Settings(
                "--allow-remote without a token: anyone who can reach this runtime could drive \
                 sessions and write captures; set SOFTPROBE_API_TOKEN, or pass \
                 --insecure-no-token (SOFTPROBE_INSECURE_NO_TOKEN=true) to run unprotected on \
                 purpose"
                    .into(),
            ));
        }
        let mut proxies = self.proxies.clone();
        proxies.header_read_timeout = Some(shared.header_read_timeout);
        proxies.allow_remote = shared.allow_remote;
        proxies.token = shared.token.clone();
        if let Some(url) = &self.remote_runtime {
            return start_proxies_only(url, shared.token, proxies).await;
        }
        proxies
            .check_listen()
            .map_err(|e| RuntimeError::Start(e.to_string()))?;
        let (limits, idle_timeout) = (shared.limits, shared.idle_timeout);
        let mut server = self.server;
        server.shared = shared;
        if let Some(template) = server.capture_path_template()
            && let Err(err) = crate::case::location::check_writable(template)
        {
            return Err(RuntimeError::Start(format!(
                "--capture-case-path / SOFTPROBE_CAPTURE_CASE_PATH: {err}"
            )));
        }
        if let Some(url) = self.store_url {
            server = server.store(connect_store(url, limits, idle_timeout).await?);
        }
        let server = server
            .start()
            .await
            .map_err(|e| RuntimeError::Start(e.to_string()))?;
        let backend: SharedBackend = Arc::new(StoreBackend::new(server.store()));
        let proxies = proxies
            .start(backend)
            .await
            .map_err(|e| RuntimeError::Start(e.to_string()))?;
        if let Some(pem) = proxies.ca_cert_pem() {
            server.state().set_proxy_ca_pem(pem);
        }
        Ok(RunningRuntime {
            server: Some(server),
            proxies,
        })
    }
}

#[cfg(feature = "redis-store")]
async fn connect_store(
    url: String,
    limits: SessionLimits,
    idle: Option<Duration>,
) -> Result<Arc<dyn crate::session::SessionStore>, RuntimeError> {
    let connected = tokio::task::spawn_blocking(move || {
        crate::session::RedisStore::connect(&url, limits, idle)
    })
    .await;
    match connected {
        Ok(Ok(store)) => {
            tracing::info!("sessions are shared through {}", store.url());
            Ok(Arc::new(store))
        }
        Ok(Err(err)) => Err(RuntimeError::Start(format!(
            "--store / SOFTPROBE_STORE_URL: {err}"
        ))),
        Err(err) => Err(RuntimeError::Start(format!(
            "connecting to the session store failed: {err}"
        ))),
    }
}

#[cfg(not(feature = "redis-store"))]
async fn connect_store(
    url: String,
    _limits: SessionLimits,
    _idle: Option<Duration>,
) -> Result<Arc<dyn crate::session::SessionStore>, RuntimeError> {
    drop(url);
    Err(RuntimeError::Settings(
        "--store / SOFTPROBE_STORE_URL: a shared store needs a build with the `redis-store` \
         feature"
            .into(),
    ))
}

/// [`RuntimeBuilder::remote_runtime`]: the proxies alone, in front of a runtime elsewhere.
async fn start_proxies_only(
    url: &str,
    token: Option<String>,
    config: ProxyConfig,
) -> Result<RunningRuntime, RuntimeError> {
    if !config.is_enabled() {
        return Err(RuntimeError::Settings(
            "--runtime-url runs only the proxies; give --ingress-upstream and/or --egress-listen"
                .into(),
        ));
    }
    let mut backend = RemoteBackend::new(url, token)
        .map_err(|err| RuntimeError::Settings(format!("--runtime-url: {err}")))?;
    if let Some(service) = &config.service {
        backend = backend.with_service(service.clone());
    }
    let proxies = config
        .start(Arc::new(backend))
        .await
        .map_err(|e| RuntimeError::Start(e.to_string()))?;
    Ok(RunningRuntime {
        server: None,
        proxies,
    })
}

/// A started [`Runtime`]. Dropping it stops every listener without flushing captures;
/// [`RunningRuntime::shutdown`] flushes them first.
#[derive(Debug)]
#[must_use = "dropping the handle stops the runtime"]
pub struct RunningRuntime {
    server: Option<RunningServer>,
    proxies: RunningProxies,
}

impl RunningRuntime {
    /// The control API server (`None` when only the proxies run).
    pub fn server(&self) -> Option<&RunningServer> {
        self.server.as_ref()
    }

    /// The control API's base URI (`None` when only the proxies run).
    pub fn uri(&self) -> Option<String> {
        self.server.as_ref().map(RunningServer::uri)
    }

    /// The running proxies.
    pub fn proxies(&self) -> &RunningProxies {
        &self.proxies
    }

    /// `http://<addr>` of the ingress proxy, when it runs.
    pub fn ingress_uri(&self) -> Option<String> {
        self.proxies.ingress.as_ref().map(|p| p.uri())
    }

    /// `http://<addr>` of the egress proxy, when it runs.
    pub fn egress_uri(&self) -> Option<String> {
        self.proxies.egress.as_ref().map(|p| p.uri())
    }

    /// The egress CA certificate, PEM, when the egress runs.
    pub fn ca_cert_pem(&self) -> Option<&str> {
        self.proxies.ca_cert_pem()
    }

    /// Stops the proxies (letting open connections finish), writes every open capture
    /// session that captured something to its case file (see
    /// [`RunningServer::flush_captures`]), then stops the server. Returns what was written
    /// and what failed, for the caller to report.
    pub async fn shutdown(self) -> Vec<FlushedCapture> {
        self.proxies.shutdown().await;
        let Some(server) = self.server else {
            return Vec::new();
        };
        let flushed = server.flush_captures();
        server.shutdown().await;
        flushed
    }
}

/// Waits for SIGTERM or SIGINT (Ctrl-C elsewhere) and names the one received.
#[cfg(feature = "cli")]
pub async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(err) => {
                tracing::warn!("cannot listen for SIGTERM: {err}");
                let _ = tokio::signal::ctrl_c().await;
                return "SIGINT";
            }
        };
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = tokio::signal::ctrl_c() => "SIGINT",
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}
