//! What the ingress and egress proxies are both configured with, set once for both:
//! [`ProxyBuilder`] carries the shared [`ProxySettings`] and the setters for them, and a
//! kind ([`IngressOptions`], [`EgressOptions`]) with what only one proxy has.
//! [`super::IngressBuilder`] and [`super::EgressBuilder`] are its two instances.

use std::net::SocketAddr;
use std::time::Duration;

use std::sync::Arc;

use tokio::net::TcpListener;

use super::backend::SharedBackend;
use super::forward::{Core, Settings};
use super::{DEFAULT_LISTEN, ProxyError, bind};

/// The settings both proxies share: where they listen, whom they ask, on how many threads,
/// and how each hop is handled (timeouts, body limit, sessions, redaction, trusted roots).
pub struct ProxySettings {
    pub(crate) listen: SocketAddr,
    pub(crate) backend: Option<SharedBackend>,
    pub(crate) threads: usize,
    pub(crate) hops: Settings,
}

impl Default for ProxySettings {
    fn default() -> Self {
        ProxySettings {
            listen: DEFAULT_LISTEN,
            backend: None,
            threads: 0,
            hops: Settings::default(),
        }
    }
}

impl std::fmt::Debug for ProxySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxySettings")
            .field("listen", &self.listen)
            .field("threads", &self.threads)
            .field("body_limit", &self.hops.body_limit)
            .field("require_session", &self.hops.require_session)
            .field("service", &self.hops.service)
            .finish_non_exhaustive()
    }
}

/// Configures and starts a proxy: the shared settings here, the kind's own on
/// [`super::IngressBuilder`] and [`super::EgressBuilder`].
#[must_use = "a builder does nothing until `start` is awaited"]
pub struct ProxyBuilder<K> {
    pub(crate) settings: ProxySettings,
    pub(crate) kind: K,
}

impl<K: std::fmt::Debug> std::fmt::Debug for ProxyBuilder<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyBuilder")
            .field("settings", &self.settings)
            .field("kind", &self.kind)
            .finish()
    }
}

impl ProxySettings {
    /// What a proxy starts from: its hop handling over the backend (none given: one without
    /// sessions), its bound listener, how many threads of its own serve connections, and
    /// the header read timeout.
    pub(crate) async fn open(
        self,
    ) -> Result<(Arc<Core>, TcpListener, usize, Duration), ProxyError> {
        let backend = self
            .backend
            .unwrap_or_else(|| Arc::new(super::NoSessionsBackend));
        let header_read_timeout = self.hops.header_read_timeout;
        let core = Core::new(backend, self.hops)?;
        let listener = bind(self.listen).await?;
        Ok((core, listener, self.threads, header_read_timeout))
    }
}

impl<K> ProxyBuilder<K> {
    pub(crate) fn with_kind(kind: K) -> Self {
        ProxyBuilder {
            settings: ProxySettings::default(),
            kind,
        }
    }

    /// Where to listen (default `127.0.0.1:0`).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.settings.listen = addr;
        self
    }

    /// The runtime the proxy asks (default: [`super::NoSessionsBackend`]).
    pub fn backend(mut self, backend: SharedBackend) -> Self {
        self.settings.backend = Some(backend);
        self
    }

    /// An extra root certificate trusted for upstream HTTPS, besides the webpki roots and
    /// `SOFTPROBE_UPSTREAM_CA_FILE`.
    pub fn upstream_root(mut self, cert: rustls::pki_types::CertificateDer<'static>) -> Self {
        self.settings.hops.extra_roots.push(cert);
        self
    }

    /// Time a client gets to send a whole request head before its connection is closed
    /// (default 10 s), so slow clients cannot pin connections.
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.settings.hops.header_read_timeout = timeout;
        self
    }

    /// Largest request body accepted, and largest response body recorded (default 16 MiB).
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.settings.hops.body_limit = bytes;
        self
    }

    /// Time allowed for an upstream to start answering (default 30 s).
    pub fn upstream_timeout(mut self, timeout: Duration) -> Self {
        self.settings.hops.upstream_timeout = timeout;
        self
    }

    /// Time allowed to connect to an upstream (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.settings.hops.connect_timeout = timeout;
        self
    }

    /// Refuse (403) requests without an open session instead of relaying them: with it,
    /// the proxy is never an open relay.
    pub fn require_session(mut self, yes: bool) -> Self {
        self.settings.hops.require_session = yes;
        self
    }

    /// The service name recorded on hops and matched by `when.service`.
    pub fn service(mut self, name: impl Into<String>) -> Self {
        self.settings.hops.service = Some(name.into());
        self
    }

    /// Header names stored as `[REDACTED]` (default: authorization, cookie, set-cookie,
    /// proxy-authorization, x-api-key).
    pub fn redact_headers(mut self, names: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.settings.hops.redact_headers = names.into_iter().map(Into::into).collect();
        self
    }

    /// Serve connections on `n` threads of the proxy's own, each running a single-threaded
    /// tokio runtime with its own upstream connection pool, instead of on the runtime that
    /// calls `start` (`0`, the default). A connection, its tunnels and its upstream calls
    /// then stay on one thread: the fastest set-up under many concurrent connections; the
    /// standalone runtime's ingress uses one thread per core.
    pub fn threads(mut self, n: usize) -> Self {
        self.settings.threads = n;
        self
    }
}
