//! The ingress and egress proxies: hyper servers that sit in front of the service under test
//! (ingress) and between it and the services it calls (egress), asking the runtime what to do
//! with every hop ([`ProxyBackend`]) and recording what happened.
//!
//! - The **ingress** is a reverse proxy to one application. It reads the session from
//!   `x-softprobe-session-id`, writes `traceparent` (the inbound span as parent) and
//!   `tracestate: sp=<sessionId>,...`, and records the inbound hop.
//! - The **egress** is an HTTP forward proxy (absolute-form requests, and `CONNECT` whose TLS
//!   it terminates with its [`CertificateAuthority`]) and a reverse proxy to a default
//!   upstream. It finds the session in `tracestate`, the session header, the proxy
//!   credentials or the listener's bound session, strips it, and answers locally (rules,
//!   replay, strict misses) or forwards and records.
//!
//! Both serve plain HTTP/1.1 requests with their own exchange (`proxy::http1`: one upstream
//! connection per client connection, no pool): the ingress those to a plain-HTTP
//! application, the egress proxy requests (absolute-form) and origin-form requests outside
//! any tunnel. HTTP/2, upgrades, `CONNECT` tunnels and HTTPS applications go through hyper.
//!
//! Request bodies are buffered (rules match on them) up to a cap, `413` above it; responses
//! are streamed and recorded up to the same cap. Upstream failures answer `502`/`504` with a
//! JSON body naming the upstream. `spec/protocol/session-headers.md` is the wire contract.
//!
//! Backends: [`StoreBackend`] for a runtime in the same process, [`RemoteBackend`] for one
//! reached over its OTLP API (ours or the original), [`NoSessionsBackend`] for a plain relay.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use softprobe_runtime::proxy::{CertificateAuthority, EgressProxy, IngressProxy, RemoteBackend};
//!
//! let backend = Arc::new(RemoteBackend::new("http://127.0.0.1:8080", None)?);
//! let ingress = IngressProxy::builder()
//!     .upstream("http://127.0.0.1:8081")
//!     .backend(backend.clone())
//!     .start()
//!     .await?;
//! let egress = EgressProxy::builder()
//!     .ca(CertificateAuthority::generate()?)
//!     .backend(backend)
//!     .start()
//!     .await?;
//! println!("ingress {} egress {}", ingress.uri(), egress.uri());
//! # Ok(()) }
//! ```

pub mod backend;
mod config;
mod egress;
mod forward;
pub mod http;
mod http1;
mod ingress;
mod settings;
pub mod tls;
pub mod trace_context;
pub mod websocket;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use backend::{
    BackendError, BackendFuture, NoSessionsBackend, ProxyBackend, RemoteBackend, StoreBackend,
};
pub use config::{DEFAULT_EGRESS_LISTEN, DEFAULT_INGRESS_LISTEN, ProxyConfig, RunningProxies};
pub use egress::{EgressBuilder, EgressOptions, EgressProxy, RunningEgress};
pub use forward::{DEFAULT_CONNECT_TIMEOUT, DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_UPSTREAM_TIMEOUT};
pub use ingress::{IngressBuilder, IngressOptions, IngressProxy};
pub use settings::{ProxyBuilder, ProxySettings};
pub use tls::{CertificateAuthority, TlsError};

use self::http::ProxyBody;

/// Why a proxy could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A setting is missing or wrong.
    #[error("{0}")]
    Config(String),
    /// TLS set-up failed.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The backend could not be created.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// The default listen address: loopback, any free port. Proxies never bind a public
/// interface unless told to.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

type HandlerFuture = Pin<Box<dyn Future<Output = ::http::Response<ProxyBody>> + Send>>;
type Handler = Arc<dyn Fn(::http::Request<Incoming>) -> HandlerFuture + Send + Sync>;

/// A proxy that is accepting connections. Dropping it stops accepting; [`shutdown`]
/// also waits for open connections to finish (up to five seconds).
///
/// [`shutdown`]: RunningProxy::shutdown
#[must_use = "dropping a RunningProxy stops it"]
#[derive(Debug)]
pub struct RunningProxy {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl RunningProxy {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`.
    pub fn uri(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, lets open connections finish, and returns when they have.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RunningProxy {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ProxyError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ProxyError::Bind { addr, source })
}

/// Serves `handler` on `listener` until `stop` fires, with `http1` serving the plain HTTP/1
/// connections it takes (see [`crate::listener::OwnHttp1`]). The listener is already bound,
/// so the port accepts connections before this returns.
fn serve_with(
    listener: TcpListener,
    handler: Handler,
    http1: Option<crate::listener::OwnHttp1>,
    stop: watch::Sender<bool>,
    header_read_timeout: Duration,
) -> Result<RunningProxy, ProxyError> {
    let addr = bound_addr(&listener)?;
    let task = tokio::spawn(crate::listener::accept_loop_with(
        listener,
        service_of(handler),
        http1,
        header_read_timeout,
        stopped(&stop),
        "proxy",
    ));
    Ok(RunningProxy {
        addr,
        stop,
        task: Some(task),
    })
}

/// Like [`serve_with`], with the connections served by `threads` threads of their own (see
/// [`crate::listener::Shards`]), named `<role>:<port>/<n>`; each builds its handler, and the
/// [`crate::listener::OwnHttp1`] tried before it, with `make_handler`.
fn serve_sharded_with(
    listener: TcpListener,
    role: &str,
    threads: usize,
    make_handler: impl Fn() -> (Handler, Option<crate::listener::OwnHttp1>) + Send + Sync + 'static,
    stop: watch::Sender<bool>,
    header_read_timeout: Duration,
) -> Result<RunningProxy, ProxyError> {
    let addr = bound_addr(&listener)?;
    let shards = crate::listener::Shards::start(
        threads,
        &format!("{role}:{}", addr.port()),
        move || {
            let (handler, http1) = make_handler();
            (service_of(handler), http1)
        },
        header_read_timeout,
        "proxy",
    )
    .map_err(|e| ProxyError::Config(format!("cannot start the proxy's threads: {e}")))?;
    let task = tokio::spawn(crate::listener::accept_into_shards(
        listener,
        shards,
        stopped(&stop),
        "proxy",
    ));
    Ok(RunningProxy {
        addr,
        stop,
        task: Some(task),
    })
}

fn bound_addr(listener: &TcpListener) -> Result<SocketAddr, ProxyError> {
    listener.local_addr().map_err(|source| ProxyError::Bind {
        addr: DEFAULT_LISTEN,
        source,
    })
}

/// The limits of the own HTTP/1 exchange's connections, from a proxy's settings (here, above
/// both `forward` and `http1`, which each use the other's types in one direction only).
fn http1_limits(settings: &forward::Settings) -> http1::Limits {
    http1::Limits {
        body: settings.body_limit,
        header_read: settings.header_read_timeout,
        connect: settings.connect_timeout,
    }
}

/// A proxy handler as the hyper service a listener serves.
fn service_of(handler: Handler) -> impl crate::listener::HttpService<Body = ProxyBody> {
    service_fn(move |req| {
        let fut = handler(req);
        async move { Ok::<_, Infallible>(fut.await) }
    })
}

/// Completes when `stop` is sent (or dropped).
fn stopped(stop: &watch::Sender<bool>) -> impl Future<Output = ()> + Send + 'static {
    let mut stopped = stop.subscribe();
    async move {
        let _ = stopped.changed().await;
    }
}
