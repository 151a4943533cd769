//! The egress proxy: one listener that is an HTTP forward proxy (absolute-form requests and
//! `CONNECT`, whose TLS is terminated with the proxy's CA so the inner requests are seen) and
//! a reverse proxy to a default upstream for origin-form requests. It finds the session of
//! each outbound call, strips it, and asks the runtime what to do.
//!
//! Plain HTTP/1.1 requests outside a tunnel are served by the proxies' own HTTP/1 exchange
//! ([`super::http1`]); `CONNECT` and what is inside its tunnels, HTTP/2, HTTP/1.0 and upgrades
//! by hyper. Both paths build the hop with one function ([`hop_of`]) and check the proxy
//! credentials with one ([`Shared::unauthorized`]).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::SystemTime;

use base64::Engine as _;
use bytes::Bytes;
use http::header::{self, HeaderMap};
use http::uri::Authority;
use http::{Method, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::sync::watch;

use super::forward::{Core, Hop, Transport, trace_parent, trace_state, trace_tags};
use super::http::{
    HopText, ProxyBody, collect_limited, empty, json_error, remove_hop_by_hop_and_session,
    session_from_headers,
};
use super::http1::Upstream;
use super::ingress::{Base, parse_base};
use super::settings::ProxyBuilder;
use super::tls::CertificateAuthority;
use super::{Handler, HandlerFuture, ProxyError, RunningProxy, serve_sharded_with, serve_with};
use crate::case::{Direction, SpanId, TraceId};
use crate::listener::OwnHttp1;
use crate::request::host::without_default_port;

/// The egress proxy. Start one with [`EgressProxy::builder`].
#[derive(Debug)]
pub struct EgressProxy;

impl EgressProxy {
    /// A builder listening on `127.0.0.1:0` by default, with a freshly generated CA unless
    /// [`EgressBuilder::ca`] gives one.
    pub fn builder() -> EgressBuilder {
        ProxyBuilder::with_kind(EgressOptions {
            upstream: None,
            ca: None,
            bound_session: None,
            token: None,
        })
    }
}

/// Configures and starts an [`EgressProxy`]: the shared settings of [`ProxyBuilder`] and
/// the egress's own (CA, default upstream, bound session, proxy token).
pub type EgressBuilder = ProxyBuilder<EgressOptions>;

/// What only the egress is configured with (see the [`EgressBuilder`] methods).
pub struct EgressOptions {
    upstream: Option<String>,
    ca: Option<Arc<CertificateAuthority>>,
    bound_session: Option<String>,
    token: Option<String>,
}

impl std::fmt::Debug for EgressOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EgressOptions")
            .field("upstream", &self.upstream)
            .field("bound_session", &self.bound_session)
            .finish_non_exhaustive()
    }
}

impl EgressBuilder {
    /// Default upstream for origin-form requests (the proxy used as a reverse proxy).
    pub fn upstream(mut self, uri: impl Into<String>) -> Self {
        self.kind.upstream = Some(uri.into());
        self
    }

    /// The CA that signs the certificates presented inside `CONNECT` tunnels.
    pub fn ca(mut self, ca: CertificateAuthority) -> Self {
        self.kind.ca = Some(Arc::new(ca));
        self
    }

    /// A CA shared with other components (e.g. the control API serving `ca.pem`).
    pub fn shared_ca(mut self, ca: Arc<CertificateAuthority>) -> Self {
        self.kind.ca = Some(ca);
        self
    }

    /// The session used when a request names none (see [`RunningEgress::bind_session`]).
    pub fn bind_session(mut self, session_id: impl Into<String>) -> Self {
        self.kind.bound_session = Some(session_id.into());
        self
    }

    /// Requires proxy credentials carrying this token as their password on every request
    /// (`Proxy-Authorization: Basic`, i.e. `HTTP_PROXY=http://<sessionId>:<token>@host:port`,
    /// or `http://:<token>@host:port` without a session); others get 407. The runtime
    /// binary sets its API token here, so a neighbour on the network can neither record
    /// into nor replay from someone's session, nor relay through the proxy.
    pub fn proxy_token(mut self, token: Option<String>) -> Self {
        self.kind.token = token.filter(|t| !t.is_empty());
        self
    }

    /// Binds and starts serving; returns once the port accepts connections.
    pub async fn start(self) -> Result<RunningEgress, ProxyError> {
        let EgressOptions {
            upstream,
            ca,
            bound_session,
            token,
        } = self.kind;
        let upstream = upstream.as_deref().map(parse_base).transpose()?;
        let ca = match ca {
            Some(ca) => ca,
            None => Arc::new(CertificateAuthority::generate()?),
        };
        let (core, listener, threads, header_read_timeout) = self.settings.open().await?;
        let (stop, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            core,
            upstream,
            token,
            ca: ca.clone(),
            bound: Arc::new(RwLock::new(bound_session)),
            stop: stop.subscribe(),
        });
        let handler_for = |shared: Arc<Shared>| -> Handler {
            Arc::new(move |req| {
                let shared = shared.clone();
                Box::pin(async move { handle(&shared, None, req).await })
            })
        };
        // Plain HTTP/1.1 requests get the egress's own HTTP/1 exchange; `CONNECT` tunnels,
        // HTTP/2, upgrades and whatever that exchange hands back, hyper.
        let proxy = if threads == 0 {
            serve_with(
                listener,
                handler_for(shared.clone()),
                Some(own_http1(shared.clone())),
                stop,
                header_read_timeout,
            )?
        } else {
            let main = shared.clone();
            let make_handler = move || {
                let shared = main.with_own_client();
                (handler_for(shared.clone()), Some(own_http1(shared)))
            };
            serve_sharded_with(
                listener,
                "egress",
                threads,
                make_handler,
                stop,
                header_read_timeout,
            )?
        };
        tracing::info!(addr = %proxy.addr(), "egress proxy listening");
        Ok(RunningEgress { proxy, shared })
    }
}

struct Shared {
    core: Arc<Core>,
    upstream: Option<Base>,
    /// [`EgressBuilder::proxy_token`].
    token: Option<String>,
    ca: Arc<CertificateAuthority>,
    /// Shared by every thread of the proxy: [`RunningEgress::bind_session`] sets it once.
    bound: Arc<RwLock<Option<String>>>,
    stop: watch::Receiver<bool>,
}

impl Shared {
    /// The same proxy with an upstream pool of its own, for one of its threads.
    fn with_own_client(&self) -> Arc<Shared> {
        Arc::new(Shared {
            core: self.core.with_own_client(),
            upstream: self.upstream.clone(),
            token: self.token.clone(),
            ca: self.ca.clone(),
            bound: self.bound.clone(),
            stop: self.stop.clone(),
        })
    }

    fn bound_session(&self) -> Option<String> {
        self.bound.read().map(|b| b.clone()).unwrap_or(None)
    }

    /// The `407` for a request (outside a tunnel) without the proxy credentials this proxy
    /// requires ([`EgressBuilder::proxy_token`]).
    fn unauthorized(&self, headers: &HeaderMap) -> Option<http::Response<ProxyBody>> {
        let token = self.token.as_deref()?;
        (!proxy_auth_ok(headers, token)).then(proxy_auth_required)
    }
}

/// The egress's own HTTP/1 exchange (see [`super::http1`]) for the connections of one
/// thread.
fn own_http1(shared: Arc<Shared>) -> OwnHttp1 {
    let limits = super::http1_limits(&shared.core.settings);
    super::http1::own_connections(Arc::new(Egress { shared }), limits)
}

/// What answers the requests of the egress's own HTTP/1 connections: proxy requests
/// (absolute-form) and origin-form requests to the default upstream, outside any tunnel.
struct Egress {
    shared: Arc<Shared>,
}

impl super::http1::Exchange for Egress {
    const ABSOLUTE_FORM: bool = true;

    fn admit(&self, parts: &http::request::Parts) -> Option<http::Response<ProxyBody>> {
        self.shared.unauthorized(&parts.headers)
    }

    async fn answer(
        &self,
        request: http::Request<Bytes>,
        upstream: &Upstream,
    ) -> http::Response<ProxyBody> {
        let started = SystemTime::now();
        let (parts, body) = request.into_parts();
        let (hop, _) = match hop_of(&self.shared, None, parts, started) {
            Ok(hop) => hop,
            Err(answer) => return *answer,
        };
        let hop = Hop { body, ..hop };
        // The connection's own upstream connection speaks plain HTTP only.
        let transport = if hop.upstream.scheme_str() == Some("http") {
            Transport::Own(upstream)
        } else {
            Transport::Pooled
        };
        self.shared.core.handle_on(hop, transport).await
    }
}

/// A running egress proxy.
#[must_use = "dropping a RunningEgress stops it"]
pub struct RunningEgress {
    proxy: RunningProxy,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RunningEgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningEgress")
            .field("addr", &self.proxy.addr())
            .finish_non_exhaustive()
    }
}

impl RunningEgress {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.proxy.addr()
    }

    /// `http://<addr>`: the value for `HTTP_PROXY` / `HTTPS_PROXY`.
    pub fn uri(&self) -> String {
        self.proxy.uri()
    }

    /// The proxy URL carrying a session as its user name: `http://<sessionId>@<addr>`, and
    /// the token as its password when the proxy requires one.
    pub fn uri_for_session(&self, session_id: &str) -> String {
        match &self.shared.token {
            Some(token) => format!("http://{session_id}:{token}@{}", self.proxy.addr()),
            None => format!("http://{session_id}@{}", self.proxy.addr()),
        }
    }

    /// The CA clients must trust for HTTPS through this proxy.
    pub fn ca(&self) -> &Arc<CertificateAuthority> {
        &self.shared.ca
    }

    /// The CA certificate, PEM.
    pub fn ca_cert_pem(&self) -> &str {
        self.shared.ca.cert_pem()
    }

    /// Sets (or clears) the session used for requests that name none.
    pub fn bind_session(&self, session_id: Option<String>) {
        if let Ok(mut bound) = self.shared.bound.write() {
            *bound = session_id;
        }
    }

    /// Stops accepting, lets open connections finish, and returns when they have.
    pub async fn shutdown(self) {
        self.proxy.shutdown().await;
    }
}

/// What a `CONNECT` established for the requests inside its tunnel: TLS (the usual case)
/// or plain HTTP, told apart by the tunnel's first byte.
#[derive(Clone)]
struct Tunnel {
    scheme: &'static str,
    authority: Authority,
    session: Option<String>,
}

/// Whether `Proxy-Authorization: Basic` carries `token` as its password (compared in
/// constant time).
fn proxy_auth_ok(headers: &HeaderMap, token: &str) -> bool {
    use subtle::ConstantTimeEq as _;
    let mut room = Decoded::default();
    let Some(decoded) = basic_credentials(headers, &mut room) else {
        return false;
    };
    let password = match decoded.iter().position(|b| *b == b':') {
        Some(colon) => &decoded[colon + 1..],
        None => return false,
    };
    bool::from(password.ct_eq(token.as_bytes()))
}

/// Room for decoded proxy credentials: a session id and a token fit on the stack, so a
/// hop's credentials are read without an allocation; longer ones go to the heap.
struct Decoded {
    inline: [u8; 192],
    heap: Vec<u8>,
}

impl Default for Decoded {
    fn default() -> Self {
        Decoded {
            inline: [0; 192],
            heap: Vec::new(),
        }
    }
}

/// The decoded `user:password` of `Proxy-Authorization: Basic` (RFC 7617), in `room`;
/// `None` without the header, for another scheme or for bad base64.
fn basic_credentials<'a>(headers: &HeaderMap, room: &'a mut Decoded) -> Option<&'a [u8]> {
    let value = headers
        .get(header::PROXY_AUTHORIZATION)?
        .as_bytes()
        .trim_ascii();
    let space = value.iter().position(|b| *b == b' ')?;
    let (scheme, creds) = (&value[..space], value[space + 1..].trim_ascii());
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return None;
    }
    let engine = base64::engine::general_purpose::STANDARD;
    match engine.decode_slice(creds, &mut room.inline) {
        Ok(len) => Some(&room.inline[..len]),
        Err(base64::DecodeSliceError::OutputSliceTooSmall) => {
            room.heap = engine.decode(creds).ok()?;
            Some(&room.heap)
        }
        Err(base64::DecodeSliceError::DecodeError(_)) => None,
    }
}

/// The 407 answer to a request without the proxy credentials.
fn proxy_auth_required() -> http::Response<ProxyBody> {
    let mut resp = json_error(
        StatusCode::PROXY_AUTHENTICATION_REQUIRED,
        "proxy_auth_required",
        "this egress proxy requires credentials: use it as \
         http://<sessionId>:<SOFTPROBE_API_TOKEN>@host:port (HTTP_PROXY / HTTPS_PROXY), or \
         http://:<token>@host:port without a session",
    );
    resp.headers_mut().insert(
        header::PROXY_AUTHENTICATE,
        http::HeaderValue::from_static("Basic realm=\"softprobe\""),
    );
    resp
}

/// The session named by `Proxy-Authorization: Basic` (the user name is the session id).
fn session_from_proxy_auth(headers: &HeaderMap) -> Option<String> {
    let mut room = Decoded::default();
    let decoded = basic_credentials(headers, &mut room)?;
    let user = decoded.split(|b| *b == b':').next().unwrap_or_default();
    let user = std::str::from_utf8(user).ok()?;
    (!user.is_empty()).then(|| user.to_owned())
}

fn handle(
    shared: &Arc<Shared>,
    tunnel: Option<Tunnel>,
    req: http::Request<Incoming>,
) -> HandlerFuture {
    let shared = shared.clone();
    Box::pin(async move {
        // Requests inside a tunnel were authorized with its CONNECT.
        if tunnel.is_none()
            && let Some(refused) = shared.unauthorized(req.headers())
        {
            return refused;
        }
        if req.method() == Method::CONNECT {
            if tunnel.is_some() {
                return json_error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    "CONNECT inside a CONNECT tunnel is not supported",
                );
            }
            return connect(&shared, req);
        }
        outbound(&shared, tunnel, req).await
    })
}

fn connect(shared: &Arc<Shared>, req: http::Request<Incoming>) -> http::Response<ProxyBody> {
    let Some(authority) = req.uri().authority().cloned() else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!(
                "CONNECT target {:?} is not host:port",
                req.uri().to_string()
            ),
        );
    };
    let session =
        session_from_proxy_auth(req.headers()).or_else(|| session_from_headers(req.headers()));
    // Generate the leaf now so a bad host name fails the CONNECT itself, not the handshake.
    let server_config = match shared.ca.server_config(authority.host()) {
        Ok(cfg) => cfg,
        Err(err) => {
            return json_error(
                StatusCode::BAD_GATEWAY,
                "tls_error",
                format!("cannot intercept {authority}: {err}"),
            );
        }
    };
    let shared = shared.clone();
    tokio::spawn(async move {
        let upgraded = match hyper::upgrade::on(req).await {
            Ok(u) => u,
            Err(err) => {
                tracing::debug!(%err, %authority, "CONNECT upgrade failed");
                return;
            }
        };
        // A TLS ClientHello starts with the handshake record type; anything else is plain
        // HTTP inside the tunnel.
        let mut io = Prefixed::new(TokioIo::new(upgraded));
        let is_tls = match io.peek_byte().await {
            Ok(Some(byte)) => byte == 0x16,
            Ok(None) => return,
            Err(err) => {
                tracing::debug!(%err, %authority, "tunnel closed before its first byte");
                return;
            }
        };
        let tunnel = Tunnel {
            scheme: if is_tls { "https" } else { "http" },
            authority: authority.clone(),
            session,
        };
        let svc_shared = shared.clone();
        let svc = service_fn(move |req| {
            let fut = handle(&svc_shared, Some(tunnel.clone()), req);
            async move { Ok::<_, std::convert::Infallible>(fut.await) }
        });
        let mut stop = shared.stop.clone();
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(crate::listener::CoarseTimer)
            .header_read_timeout(shared.core.settings.header_read_timeout);
        let io: Box<dyn TunnelIo> = if is_tls {
            let acceptor = tokio_rustls::TlsAcceptor::from(server_config);
            match acceptor.accept(io).await {
                Ok(tls) => Box::new(tls),
                Err(err) => {
                    tracing::debug!(%err, %authority, "TLS handshake inside CONNECT failed");
                    return;
                }
            }
        } else {
            Box::new(io)
        };
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), svc);
        let result = tokio::select! {
            res = conn => res,
            _ = stop.changed() => Ok(()),
        };
        if let Err(err) = result {
            tracing::debug!(%err, %authority, "tunnel connection ended");
        }
    });
    http::Response::new(empty())
}

/// The hyper path: requests inside `CONNECT` tunnels, HTTP/2, upgrades, and whatever the
/// own HTTP/1 exchange hands back.
async fn outbound(
    shared: &Arc<Shared>,
    tunnel: Option<Tunnel>,
    req: http::Request<Incoming>,
) -> http::Response<ProxyBody> {
    let started = SystemTime::now();
    let (parts, mut body) = req.into_parts();
    let version = parts.version;
    let (hop, websocket) = match hop_of(shared, tunnel.as_ref(), parts, started) {
        Ok(hop) => hop,
        Err(answer) => return *answer,
    };
    let limit = shared.core.settings.body_limit;
    let body = match collect_limited(&mut body, limit).await {
        Ok(b) => b,
        Err(e) => return super::forward::body_error(e, limit, body, version).await,
    };
    let hop = Hop { body, ..hop };
    match websocket {
        Some(client) => shared.core.handle_websocket(hop, client).await,
        None => shared.core.handle(hop).await,
    }
}

/// The outbound hop of a request head (its body still empty): where it goes (the tunnel's
/// target, the absolute-form URI or the default upstream), its session (trace state, session
/// header, proxy credentials, the tunnel's, the bound one), its trace context. Also the
/// pending upgrade of a WebSocket request. An answer instead when the request cannot be
/// forwarded (boxed: the rare path stays off the hot path's stack).
fn hop_of(
    shared: &Shared,
    tunnel: Option<&Tunnel>,
    mut parts: http::request::Parts,
    started: SystemTime,
) -> Result<(Hop, Option<hyper::upgrade::OnUpgrade>), Box<http::Response<ProxyBody>>> {
    fn path_and_query(uri: &http::Uri) -> &str {
        uri.path_and_query().map_or("/", |pq| pq.as_str())
    }
    // Where the request goes: the tunnel's target, the absolute-form URI, or the default
    // upstream, as the recorded scheme and host and the upstream URI. A tunnel's target and
    // an absolute-form URI come parsed: the upstream URI is put together from those parts,
    // or is the request's own URI, with no string formatted and parsed again.
    let cannot_forward = |uri: &http::Uri, e: &dyn std::fmt::Display| {
        Box::new(json_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("cannot forward {:?}: {e}", path_and_query(uri)),
        ))
    };
    let (scheme, host, upstream_uri) = if let Some(t) = tunnel {
        let scheme = if t.scheme == "https" {
            http::uri::Scheme::HTTPS
        } else {
            http::uri::Scheme::HTTP
        };
        let host = without_default_port(t.authority.as_str(), t.scheme);
        match upstream_of(scheme, t.authority.clone(), parts.uri.path_and_query()) {
            Ok(uri) => (t.scheme, host, uri),
            Err(e) => return Err(cannot_forward(&parts.uri, &e)),
        }
    } else if let (Some(scheme), Some(authority)) = (parts.uri.scheme(), parts.uri.authority())
        // HTTP/2 requests always carry their authority; to a listener with a default
        // upstream they are origin requests, not proxy requests (h2 proxying uses CONNECT).
        && !(parts.version == http::Version::HTTP_2 && shared.upstream.is_some())
    {
        let name = match scheme.as_str() {
            "http" => "http",
            "https" => "https",
            other => {
                return Err(Box::new(json_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    format!("unsupported scheme {other:?} in {}", parts.uri),
                )));
            }
        };
        let host = without_default_port(authority.as_str(), name);
        if parts.uri.path_and_query().is_some() {
            (name, host, std::mem::take(&mut parts.uri))
        } else {
            match upstream_of(scheme.clone(), authority.clone(), None) {
                Ok(uri) => (name, host, uri),
                Err(e) => return Err(cannot_forward(&parts.uri, &e)),
            }
        }
    } else if let Some(up) = &shared.upstream {
        // `parse_base` takes only these two.
        let name = if up.scheme == "https" {
            "https"
        } else {
            "http"
        };
        let host = without_default_port(&up.authority, name);
        match up.join_parsed(parts.uri.path_and_query()) {
            Ok(uri) => (name, host, uri),
            Err(e) => return Err(cannot_forward(&parts.uri, &e)),
        }
    } else {
        return Err(Box::new(json_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!(
                "{} {}: origin-form request but this egress proxy has no default upstream; use \
                 it as HTTP_PROXY (absolute-form or CONNECT) or start it with an upstream",
                parts.method,
                path_and_query(&parts.uri)
            ),
        )));
    };

    let state = trace_state(&parts.headers);
    let session_id = state
        .session_id()
        .map(str::to_owned)
        .or_else(|| session_from_headers(&parts.headers))
        .or_else(|| session_from_proxy_auth(&parts.headers))
        .or_else(|| tunnel.and_then(|t| t.session.clone()))
        .or_else(|| shared.bound_session());
    let tags = trace_tags(&state, &parts.headers);
    let (trace_id, parent_span_id) = match trace_parent(&parts.headers) {
        Some(tp) => (tp.trace_id, Some(tp.parent_id)),
        None => (TraceId::random(), None),
    };
    let websocket = super::websocket::is_upgrade(&parts.headers)
        .then(|| parts.extensions.remove::<hyper::upgrade::OnUpgrade>())
        .flatten();
    remove_hop_by_hop_and_session(&mut parts.headers);

    // Recorded and matched host: the target's, whatever Host header the client sent.
    let hop = Hop {
        direction: Direction::Outbound,
        session_id: session_id.map(HopText::Owned),
        method: parts.method,
        scheme,
        host: HopText::Owned(host),
        target: upstream_uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/")),
        headers: parts.headers,
        trace_tags: tags,
        body: Bytes::new(),
        upstream: upstream_uri,
        trace_id,
        span_id: SpanId::random(),
        parent_span_id,
        started,
        request_body_note: Vec::new(),
    };
    Ok((hop, websocket))
}

/// The URI of a request's path and query (`/` without one) at `scheme://authority`.
fn upstream_of(
    scheme: http::uri::Scheme,
    authority: Authority,
    path_and_query: Option<&http::uri::PathAndQuery>,
) -> Result<http::Uri, http::uri::InvalidUriParts> {
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(scheme);
    parts.authority = Some(authority);
    parts.path_and_query = Some(
        path_and_query
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/")),
    );
    http::Uri::from_parts(parts)
}

/// The byte stream inside a `CONNECT` tunnel, TLS-terminated or plain. Both are served as
/// this one type, so hyper's HTTP/1 and HTTP/2 server code is compiled once for the tunnel
/// rather than once per stream type; the dynamic call per read or write is nothing next to
/// the TLS record or socket call behind it.
trait TunnelIo: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> TunnelIo for T {}

/// A stream that can look at its first byte and then replay it to the next reader.
struct Prefixed<T> {
    inner: T,
    first: Option<u8>,
}

impl<T: AsyncRead + AsyncWrite + Unpin> Prefixed<T> {
    fn new(inner: T) -> Self {
        Prefixed { inner, first: None }
    }

    async fn peek_byte(&mut self) -> std::io::Result<Option<u8>> {
        let mut byte = [0u8; 1];
        let n = self.inner.read(&mut byte).await?;
        if n == 0 {
            return Ok(None);
        }
        self.first = Some(byte[0]);
        Ok(Some(byte[0]))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Prefixed<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() > 0
            && let Some(byte) = this.first.take()
        {
            buf.put_slice(&[byte]);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Prefixed<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_credentials_name_the_session() {
        let mut h = HeaderMap::new();
        let creds = base64::engine::general_purpose::STANDARD.encode("sess_abc:");
        h.insert(
            header::PROXY_AUTHORIZATION,
            format!("Basic {creds}").parse().unwrap(),
        );
        assert_eq!(session_from_proxy_auth(&h).as_deref(), Some("sess_abc"));
        let creds = base64::engine::general_purpose::STANDARD.encode("sess_x");
        h.insert(
            header::PROXY_AUTHORIZATION,
            format!("basic {creds}").parse().unwrap(),
        );
        assert_eq!(session_from_proxy_auth(&h).as_deref(), Some("sess_x"));
        h.insert(header::PROXY_AUTHORIZATION, "Bearer zzz".parse().unwrap());
        assert_eq!(session_from_proxy_auth(&h), None);
        h.insert(header::PROXY_AUTHORIZATION, "Basic !!!".parse().unwrap());
        assert_eq!(session_from_proxy_auth(&h), None);
    }

    #[test]
    fn credentials_longer_than_the_stack_room_are_read_whole() {
        let session = format!("sess_{}", "a".repeat(150));
        let token = "t".repeat(120);
        let mut h = HeaderMap::new();
        let creds = base64::engine::general_purpose::STANDARD.encode(format!("{session}:{token}"));
        h.insert(
            header::PROXY_AUTHORIZATION,
            format!("Basic  {creds} ").parse().unwrap(),
        );
        assert_eq!(session_from_proxy_auth(&h), Some(session));
        assert!(proxy_auth_ok(&h, &token));
        assert!(!proxy_auth_ok(&h, &token[1..]));
    }

    #[test]
    fn the_proxy_token_is_the_password_and_nothing_else() {
        let mut h = HeaderMap::new();
        assert!(!proxy_auth_ok(&h, "tok"), "no credentials");
        let with = |pair: &str| {
            let creds = base64::engine::general_purpose::STANDARD.encode(pair);
            format!("Basic {creds}")
                .parse::<http::HeaderValue>()
                .unwrap()
        };
        h.insert(header::PROXY_AUTHORIZATION, with("sess_a:tok"));
        assert!(proxy_auth_ok(&h, "tok"));
        assert!(!proxy_auth_ok(&h, "to"));
        h.insert(header::PROXY_AUTHORIZATION, with(":tok"));
        assert!(proxy_auth_ok(&h, "tok"));
        assert_eq!(
            session_from_proxy_auth(&h),
            None,
            "an empty user names no session"
        );
        h.insert(header::PROXY_AUTHORIZATION, with("tok"));
        assert!(
            !proxy_auth_ok(&h, "tok"),
            "a user name alone is no password"
        );
        h.insert(header::PROXY_AUTHORIZATION, with("sess_a:tok:more"));
        assert!(!proxy_auth_ok(&h, "tok"));
    }
}
