//! Starting, configuring and stopping the runtime server.
//!
//! The server is one axum router ([`crate::control::app`]) holding the JSON control API and
//! the proxy OTLP API, on one port (by default `127.0.0.1:8080`), over one session store.
//! The `softprobe-runtime` binary, the test harness and the in-process proxy all start it
//! the same way:
//!
//! ```no_run
//! # async fn run() -> softprobe_runtime::Result<()> {
//! use softprobe_runtime::server::Server;
//!
//! let server = Server::builder()
//!     .listen("127.0.0.1:0".parse().unwrap()) // any free port; the default is 8080
//!     .token(Some("s3cret".to_owned()))          // require `Authorization: Bearer s3cret`
//!     .capture_path(Some("cases/{sessionId}.case.json".to_owned()))
//!     .start()
//!     .await?;
//! println!("control API at {}", server.uri());   // e.g. http://127.0.0.1:41234
//!
//! // Sessions can also be driven without HTTP, through the same store:
//! let store = server.store();
//! # let _ = store;
//!
//! server.shutdown().await; // stop accepting, finish in-flight requests
//! # Ok(()) }
//! ```
//!
//! Settings:
//! - [`ServerBuilder::listen`]: the socket address; loopback by default. Binding a
//!   non-loopback address exposes session control to the network: set a token then.
//! - [`ServerBuilder::token`]: bearer token for every `/v1/*` route (`/health` and
//!   `/metrics` stay open). Compared in constant time.
//! - [`ServerBuilder::capture_path`]: where `close` writes capture sessions when the call
//!   gives no `?out=`; `{sessionId}`, `{ts}` and `{mode}` are replaced. Default
//!   `e2e/captured.case.json`.
//! - [`ServerBuilder::body_limit`]: request body cap (413 above it), 16 MiB by default.
//! - [`ServerBuilder::store`]: share a store with other components (the proxy); by
//!   default a fresh [`InMemoryStore`] with [`ServerBuilder::limits`].
//! - [`ServerBuilder::limits`]: most open sessions (429 `too_many_sessions` above it) and
//!   most captured spans per session (413 `span_limit_exceeded`); see
//!   [`SessionLimits`](crate::session::SessionLimits).
//! - [`ServerBuilder::idle_timeout`]: a session nobody touched for this long is closed; a
//!   capture session is first written to its case path, like on SIGTERM. Off by default.
//! - [`ServerBuilder::header_read_timeout`]: a connection that has not sent a whole request
//!   head in this time is closed, so slow clients cannot pin connections (10 s).
//! - [`ServerBuilder::allow_remote`]: binding a non-loopback address is refused unless set,
//!   and then refused without a token unless [`ServerBuilder::insecure_no_token`] says so.
//! - [`ServerBuilder::public_hosts`], [`ServerBuilder::allowed_origins`]: the `Host` names
//!   and browser origins accepted besides loopback ones ([`crate::control::guard`]).
//! - [`ServerBuilder::capture_root`], [`ServerBuilder::allow_capture_outside_root`]: where
//!   captures may be written ([`crate::capture::CaptureRoot`]).
//! - [`ServerBuilder::tls`]: serve HTTPS with this certificate chain and key (PEM files).
//!
//! [`ServerBuilder::start`] returns once the port accepts connections. Dropping the
//! [`RunningServer`] stops accepting too; [`RunningServer::shutdown`] also waits for
//! in-flight requests. [`RunningServer::flush_captures`] writes every open capture session
//! to its case file, which the binary does on SIGINT/SIGTERM before it exits.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Router;
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::Mode;
use crate::capture::CaptureRoot;
use crate::control::{self, Access, AppState, DEFAULT_BODY_LIMIT};
use crate::error::{Error, Result};
use crate::session::{InMemoryStore, Session, SessionStore};

mod shared;
pub(crate) use shared::{SharedSettings, shared_setters};

pub use crate::proxy::DEFAULT_HEADER_READ_TIMEOUT;

/// The default listen address of the control API.
pub const DEFAULT_LISTEN_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);

/// Entry point: [`Server::builder`].
#[derive(Debug)]
pub struct Server;

impl Server {
    /// A builder with the defaults (127.0.0.1:8080, no token, default capture path, 16 MiB
    /// body limit, a fresh in-memory store).
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }
}

/// Configures and starts a server.
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `start` is awaited"]
pub struct ServerBuilder {
    listen: SocketAddr,
    pub(crate) shared: SharedSettings,
    capture_path: Option<String>,
    body_limit: usize,
    store: Option<Arc<dyn SessionStore>>,
    public_hosts: Vec<String>,
    allowed_origins: Vec<String>,
    capture_root: Option<PathBuf>,
    capture_anywhere: bool,
    tls: Option<(PathBuf, PathBuf)>,
}

impl Default for ServerBuilder {
    fn default() -> Self {
        ServerBuilder {
            listen: DEFAULT_LISTEN_ADDR,
            shared: SharedSettings::default(),
            capture_path: None,
            body_limit: DEFAULT_BODY_LIMIT,
            store: None,
            public_hosts: Vec::new(),
            allowed_origins: Vec::new(),
            capture_root: None,
            capture_anywhere: false,
            tls: None,
        }
    }
}

impl ServerBuilder {
    /// The address to listen on (`127.0.0.1:0` picks a free port).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    shared_setters!(shared);

    /// The capture path template used when `close` gives no `?out=`.
    pub fn capture_path(mut self, template: Option<String>) -> Self {
        self.capture_path = template;
        self
    }

    /// The capture path template set with [`Self::capture_path`].
    pub fn capture_path_template(&self) -> Option<&str> {
        self.capture_path.as_deref()
    }

    /// The request body limit in bytes.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// The session store to serve (shared with an in-process proxy, for example). A given
    /// store enforces its own limits ([`InMemoryStore::with_limits`]); [`Self::limits`]
    /// applies only to the store the builder makes.
    pub fn store(mut self, store: Arc<dyn SessionStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Host names (as clients behind a load balancer or in other containers write them in
    /// `Host`) accepted besides `localhost`, loopback addresses and the bound address.
    pub fn public_hosts(mut self, names: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.public_hosts = names.into_iter().map(Into::into).collect();
        self
    }

    /// Browser origins (`https://ui.example:8443`) allowed to call the runtime; they get
    /// CORS headers. None by default: no CORS headers at all.
    pub fn allowed_origins(mut self, origins: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.allowed_origins = origins.into_iter().map(Into::into).collect();
        self
    }

    /// The directory captures must be written under (default: the directory of the
    /// capture path template, else the working directory).
    pub fn capture_root(mut self, dir: Option<PathBuf>) -> Self {
        self.capture_root = dir;
        self
    }

    /// Lets `?out=` and the capture path template write anywhere the runtime's user can
    /// write, outside the capture root too. Off by default.
    pub fn allow_capture_outside_root(mut self, yes: bool) -> Self {
        self.capture_anywhere = yes;
        self
    }

    /// Serves HTTPS with the certificate chain and private key in these PEM files.
    pub fn tls(mut self, cert_and_key: Option<(PathBuf, PathBuf)>) -> Self {
        self.tls = cert_and_key;
        self
    }

    fn root(&self) -> Result<CaptureRoot> {
        if self.capture_anywhere {
            return Ok(CaptureRoot::Anywhere);
        }
        CaptureRoot::for_config(self.capture_root.as_deref(), self.capture_path.as_deref())
    }

    /// The handler state this builder describes, for driving [`control::app`] without a
    /// socket.
    pub fn build_state(self) -> AppState {
        let root = self
            .root()
            .unwrap_or_else(|_| CaptureRoot::Under(PathBuf::from("/")));
        self.state_with_root(root)
    }

    fn state_with_root(self, root: CaptureRoot) -> AppState {
        let limits = self.shared.limits;
        let access = Access {
            public_hosts: self.public_hosts,
            allowed_origins: self.allowed_origins,
            bound: Some(self.listen),
        };
        AppState::with_security(
            self.store
                .unwrap_or_else(|| Arc::new(InMemoryStore::with_limits(limits))),
            self.shared.token,
            self.capture_path,
            self.body_limit,
            access,
            root,
        )
    }

    /// Binds the address and starts serving; returns once the port accepts connections.
    pub async fn start(self) -> Result<RunningServer> {
        let listen = self.listen;
        if !listen.ip().is_loopback() {
            if !self.shared.allow_remote {
                return Err(Error::RemoteBindRefused { addr: listen });
            }
            if self.shared.token.is_none() && !self.shared.insecure_no_token {
                return Err(Error::RemoteWithoutToken { addr: listen });
            }
            tracing::warn!(
                "listening on {listen}, which is not a loopback address: every machine that \
                 can reach it can reach the control API"
            );
        }
        let root = self.root()?;
        check_template(&root, self.capture_path.as_deref())?;
        let tls = match &self.tls {
            Some((cert, key)) => Some(load_tls(cert, key)?),
            None => None,
        };
        let idle_timeout = self.shared.idle_timeout;
        let header_read_timeout = self.shared.header_read_timeout;
        let state = self.state_with_root(root);
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| Error::Bind {
                addr: listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| Error::Io {
            context: format!("reading the bound address of {listen}"),
            source,
        })?;
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let router = control::app(state.clone());
        let expiry = idle_timeout.map(|idle| tokio::spawn(expire_loop(state.clone(), idle)));
        let scheme = if tls.is_some() { "https" } else { "http" };
        let task = tokio::spawn(async move {
            serve_router(listener, router, header_read_timeout, tls, stop_rx).await;
            if let Some(expiry) = expiry {
                expiry.abort();
            }
        });
        tracing::info!("softprobe-runtime listening on {scheme}://{addr}");
        if !addr.ip().is_loopback() && state.token().is_none() {
            tracing::warn!(
                "listening on {addr} without a token: anyone who can reach this address can \
                 drive sessions; set SOFTPROBE_API_TOKEN"
            );
        }
        Ok(RunningServer {
            addr,
            scheme,
            state,
            stop: Some(stop_tx),
            task: Some(task),
        })
    }
}

/// A server that is accepting connections.
#[derive(Debug)]
#[must_use = "dropping the handle stops the server"]
pub struct RunningServer {
    addr: SocketAddr,
    scheme: &'static str,
    state: AppState,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// The result of flushing one capture session to disk.
#[derive(Debug)]
pub struct FlushedCapture {
    /// The session.
    pub session_id: String,
    /// Where it was (or should have been) written.
    pub path: PathBuf,
    /// Whether the write worked.
    pub result: Result<()>,
}

impl RunningServer {
    /// The bound address (with the real port when `:0` was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URI, e.g. `http://127.0.0.1:8080` (`https://` with [`ServerBuilder::tls`]).
    pub fn uri(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// The session store this server serves.
    pub fn store(&self) -> Arc<dyn SessionStore> {
        Arc::clone(self.state.store())
    }

    /// The handler state (to publish the proxy CA, for example).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Writes every open capture session that captured something to its case file (the
    /// configured template, else the default path, a session-suffixed name when another
    /// session of this process wrote that file) and removes the ones written; sessions
    /// that captured nothing are removed without a file. Used on SIGINT/SIGTERM. Does
    /// nothing over a shared store ([`SessionStore::is_process_local`]), whose sessions
    /// live on.
    pub fn flush_captures(&self) -> Vec<FlushedCapture> {
        flush_captures(&self.state)
    }

    /// Stops accepting and waits for in-flight requests to finish.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Serves `router` on `listener` until `stop` fires (or its sender is dropped).
async fn serve_router(
    listener: TcpListener,
    router: Router,
    header_read_timeout: Duration,
    tls: Option<Arc<rustls::ServerConfig>>,
    stop: oneshot::Receiver<()>,
) {
    let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let mut router = router.clone();
        async move {
            // The router is always ready; its errors are answers already.
            Ok::<_, Infallible>(match tower::Service::call(&mut router, req).await {
                Ok(resp) => resp,
                Err(never) => match never {},
            })
        }
    });
    let stop = async move {
        let _ = stop.await;
    };
    match tls {
        Some(tls) => {
            crate::listener::accept_loop_tls(
                listener,
                tls,
                svc,
                header_read_timeout,
                stop,
                "control",
            )
            .await;
        }
        None => {
            crate::listener::accept_loop(listener, svc, header_read_timeout, stop, "control").await;
        }
    }
}

/// Refuses, at start, a capture path template that resolves outside the capture root.
fn check_template(root: &CaptureRoot, template: Option<&str>) -> Result<()> {
    let Some(template) = template.filter(|t| !t.trim().is_empty()) else {
        return Ok(());
    };
    let sample = crate::capture::resolve_path(
        None,
        Some(template),
        "sess_placeholder",
        "capture",
        SystemTime::now(),
    );
    root.confine(&sample).map(|_| ())
}

/// The TLS configuration of the control API from PEM files: the certificate chain (leaf
/// first) and its private key.
fn load_tls(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let tls_err = |message: String| Error::Tls { message };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<std::result::Result<_, _>>())
        .map_err(|e| {
            tls_err(format!(
                "cannot read certificates from {}: {e}",
                cert.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(tls_err(format!(
            "{} holds no PEM certificate",
            cert.display()
        )));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        tls_err(format!(
            "cannot read a private key from {}: {e}",
            key.display()
        ))
    })?;
    let mut config = rustls::ServerConfig::builder_with_provider(crate::proxy::tls::provider())
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key_der))
        .map_err(|e| {
            tls_err(format!(
                "{} and {} do not make a usable certificate: {e}",
                cert.display(),
                key.display()
            ))
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Every `idle / 4` (between 50 ms and 5 s), closes the sessions idle for `idle`.
async fn expire_loop(state: AppState, idle: Duration) {
    let tick = (idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let state = state.clone();
        // Capture writes are file I/O.
        let expired = tokio::task::spawn_blocking(move || expire_idle(&state, idle)).await;
        let Ok(expired) = expired else { continue };
        for flushed in expired {
            match &flushed.result {
                Ok(()) => tracing::info!(
                    sessionId = %flushed.session_id,
                    path = %flushed.path.display(),
                    "idle capture session expired: wrote its case"
                ),
                Err(err) => tracing::error!(
                    sessionId = %flushed.session_id,
                    "idle capture session kept open: {err}"
                ),
            }
        }
    }
}

/// Closes every session untouched for at least `idle`: capture sessions are written to
/// their case path first (and kept open, their idle clock restarted, when that fails).
/// Returns the capture writes it tried.
pub fn expire_idle(state: &AppState, idle: Duration) -> Vec<FlushedCapture> {
    let store = state.store();
    let mut flushed = Vec::new();
    for session in store.list() {
        if store.idle_for(&session) < idle {
            continue;
        }
        if session.mode() != Mode::Capture {
            store.remove(session.id());
            tracing::info!(sessionId = %session.id(), "idle session expired");
            continue;
        }
        let Some(result) = write_open_capture(state, &session) else {
            continue;
        };
        if result.result.is_err() {
            // Retry after another idle period rather than on every tick.
            session.touch();
        }
        flushed.push(result);
    }
    flushed
}

/// Closes an open capture session into its default case path (the configured template,
/// else the default), confined to the capture root and never over another session's
/// capture. A session that captured no hop is closed without writing anything (`None`),
/// so a shutdown cannot replace a real capture with an empty one.
fn write_open_capture(state: &AppState, session: &Session) -> Option<FlushedCapture> {
    let store = state.store();
    // A shared store keeps the hops in the store, not in this process's view of the session.
    if store.is_process_local() && session.captured_len() == 0 {
        store.remove(session.id());
        tracing::info!(
            sessionId = %session.id(),
            "capture session captured no hop: closed it without writing a case"
        );
        return None;
    }
    let (path, result) = match state.capture_target(None, session) {
        Ok(target) => {
            let result = store.close(session.id(), Some(&target.file)).map(|_| ());
            (target.file, result)
        }
        Err(err) => (PathBuf::new(), Err(err)),
    };
    Some(FlushedCapture {
        session_id: session.id().to_owned(),
        path,
        result,
    })
}

/// [`RunningServer::flush_captures`] for any state. Sessions that captured nothing are
/// closed without a file (and logged); two sessions whose path is the same file both keep
/// their capture ([`crate::capture::WrittenCaptures`]).
pub fn flush_captures(state: &AppState) -> Vec<FlushedCapture> {
    // A shared store's sessions outlive this process: another replica closes them.
    if !state.store().is_process_local() {
        return Vec::new();
    }
    state
        .store()
        .list()
        .iter()
        .filter(|session| session.mode() == Mode::Capture)
        .filter_map(|session| write_open_capture(state, session))
        .collect()
}
