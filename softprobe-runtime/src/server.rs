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
//!   default a fresh [`InMemoryStore`].
//!
//! [`ServerBuilder::start`] returns once the port accepts connections. Dropping the
//! [`RunningServer`] stops accepting too; [`RunningServer::shutdown`] also waits for
//! in-flight requests. [`RunningServer::flush_captures`] writes every open capture session
//! to its case file, which the binary does on SIGINT/SIGTERM before it exits.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::Mode;
use crate::capture;
use crate::control::{self, AppState, DEFAULT_BODY_LIMIT};
use crate::error::{Error, Result};
use crate::session::{InMemoryStore, SessionStore};

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
    token: Option<String>,
    capture_path: Option<String>,
    body_limit: usize,
    store: Option<Arc<dyn SessionStore>>,
}

impl Default for ServerBuilder {
    fn default() -> Self {
        ServerBuilder {
            listen: DEFAULT_LISTEN_ADDR,
            token: None,
            capture_path: None,
            body_limit: DEFAULT_BODY_LIMIT,
            store: None,
        }
    }
}

impl ServerBuilder {
    /// The address to listen on (`127.0.0.1:0` picks a free port).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// The bearer token `/v1/*` routes require; `None` (or empty) disables auth.
    pub fn token(mut self, token: Option<String>) -> Self {
        self.token = token;
        self
    }

    /// The capture path template used when `close` gives no `?out=`.
    pub fn capture_path(mut self, template: Option<String>) -> Self {
        self.capture_path = template;
        self
    }

    /// The request body limit in bytes.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// The session store to serve (shared with an in-process proxy, for example).
    pub fn store(mut self, store: Arc<dyn SessionStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// The handler state this builder describes, for driving [`control::app`] without a
    /// socket.
    pub fn build_state(self) -> AppState {
        AppState::with_config(
            self.store.unwrap_or_else(InMemoryStore::shared),
            self.token,
            self.capture_path,
            self.body_limit,
        )
    }

    /// Binds the address and starts serving; returns once the port accepts connections.
    pub async fn start(self) -> Result<RunningServer> {
        let listen = self.listen;
        let state = self.build_state();
        let listener = tokio::net::TcpListener::bind(listen)
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
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    // Either an explicit shutdown or the handle being dropped stops accepting.
                    let _ = stop_rx.await;
                })
                .await;
            if let Err(err) = served {
                tracing::error!("runtime server stopped: {err}");
            }
        });
        tracing::info!("softprobe-runtime listening on http://{addr}");
        if !addr.ip().is_loopback() && state.token().is_none() {
            tracing::warn!(
                "listening on {addr} without a token: anyone who can reach this address can \
                 drive sessions; set SOFTPROBE_API_TOKEN"
            );
        }
        Ok(RunningServer {
            addr,
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

    /// The base URI, e.g. `http://127.0.0.1:8080`.
    pub fn uri(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The session store this server serves.
    pub fn store(&self) -> Arc<dyn SessionStore> {
        Arc::clone(self.state.store())
    }

    /// The handler state (to publish the proxy CA, for example).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Writes every open capture session to its case file (the configured template, else
    /// the default path) and removes the ones written. Used on SIGINT/SIGTERM.
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

/// [`RunningServer::flush_captures`] for any state.
pub fn flush_captures(state: &AppState) -> Vec<FlushedCapture> {
    let store = state.store();
    let mut flushed: Vec<FlushedCapture> = Vec::new();
    for session in store.list() {
        if session.mode() != Mode::Capture {
            continue;
        }
        let path = capture::resolve_path(
            None,
            state.capture_path(),
            session.id(),
            &session.mode().to_string(),
            SystemTime::now(),
        );
        if let Some(earlier) = flushed.iter().find(|f| f.path == path) {
            tracing::warn!(
                "capture of session {} replaces the one of session {} at {}: put {{sessionId}} \
                 in SOFTPROBE_CAPTURE_CASE_PATH to keep both",
                session.id(),
                earlier.session_id,
                path.display()
            );
        }
        let result = store.close(session.id(), Some(&path)).map(|_| ());
        flushed.push(FlushedCapture {
            session_id: session.id().to_owned(),
            path,
            result,
        });
    }
    flushed
}
