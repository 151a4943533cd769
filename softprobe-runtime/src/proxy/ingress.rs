//! The ingress proxy: a reverse proxy in front of one application. It finds the session in
//! the request's headers, stamps the flow with W3C trace context carrying `sp=<sessionId>`,
//! and records the inbound hop.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::header;
use http::{Method, StatusCode, Uri};
use hyper::body::Incoming;

use super::forward::Transport;
use super::forward::{Core, Hop, trace_parent, trace_state, trace_tags};
use super::http::{
    HopText, ProxyBody, collect_limited, json_error, remove_hop_by_hop, session_text,
};
use super::http1::Upstream;
use super::settings::ProxyBuilder;
use super::trace_context::TraceParent;
use super::{Handler, ProxyError, RunningProxy, serve_sharded_with, serve_with};
use crate::case::{Direction, SpanId, TraceId};
use crate::listener::OwnHttp1;
use crate::request::host::without_default_port;

/// The ingress proxy. Start one with [`IngressProxy::builder`].
#[derive(Debug)]
pub struct IngressProxy;

impl IngressProxy {
    /// A builder listening on `127.0.0.1:0` by default.
    pub fn builder() -> IngressBuilder {
        ProxyBuilder::with_kind(IngressOptions { upstream: None })
    }
}

/// Configures and starts an [`IngressProxy`]: the shared settings of [`ProxyBuilder`] and
/// the application's URL.
pub type IngressBuilder = ProxyBuilder<IngressOptions>;

/// What only the ingress is configured with (see [`IngressBuilder::upstream`]).
#[derive(Debug)]
pub struct IngressOptions {
    upstream: Option<String>,
}

impl IngressBuilder {
    /// The application behind the proxy, e.g. `http://127.0.0.1:8081` (required). A path
    /// in it is a prefix for every forwarded path.
    pub fn upstream(mut self, uri: impl Into<String>) -> Self {
        self.kind.upstream = Some(uri.into());
        self
    }

    /// Binds and starts serving; returns once the port accepts connections.
    pub async fn start(self) -> Result<RunningProxy, ProxyError> {
        let upstream = self
            .kind
            .upstream
            .ok_or_else(|| ProxyError::Config("the ingress proxy needs an upstream URL".into()))?;
        let upstream = parse_base(&upstream)?;
        let (core, listener, threads, header_read_timeout) = self.settings.open().await?;
        let (stop, _) = tokio::sync::watch::channel(false);
        let upstream = Arc::new(upstream);
        // Plain-HTTP applications get the ingress's own HTTP/1 exchange; HTTPS ones, and
        // whatever that exchange hands back, hyper.
        let own = upstream.scheme == "http";
        let upstream_for_http1 = upstream.clone();
        let handler_for = move |core: Arc<Core>| -> Handler {
            let upstream = upstream.clone();
            Arc::new(move |req| {
                let core = core.clone();
                let upstream = upstream.clone();
                Box::pin(async move { handle(&core, &upstream, req).await })
            })
        };
        let http1_for = move |core: &Arc<Core>| -> Option<OwnHttp1> {
            own.then(|| own_http1(core.clone(), upstream_for_http1.clone()))
        };
        let running = if threads == 0 {
            let http1 = http1_for(&core);
            serve_with(
                listener,
                handler_for(core),
                http1,
                stop,
                header_read_timeout,
            )?
        } else {
            let make_handler = move || {
                let core = core.with_own_client();
                (handler_for(core.clone()), http1_for(&core))
            };
            serve_sharded_with(
                listener,
                "ingress",
                threads,
                make_handler,
                stop,
                header_read_timeout,
            )?
        };
        tracing::info!(addr = %running.addr(), "ingress proxy listening");
        Ok(running)
    }
}

/// An upstream base: scheme, authority and a path prefix without its trailing slash.
#[derive(Debug, Clone)]
pub(crate) struct Base {
    pub(crate) scheme: String,
    pub(crate) authority: String,
    pub(crate) prefix: String,
    /// The scheme and authority parsed once, when the base came from [`parse_base`].
    pub(crate) parsed: Option<(http::uri::Scheme, http::uri::Authority)>,
}

impl Base {
    /// Like [`Base::join`] for a request's own path and query: without a path prefix the
    /// parsed parts are put together, with no formatting and parsing per request.
    pub(crate) fn join_parsed(
        &self,
        path_and_query: Option<&http::uri::PathAndQuery>,
    ) -> Result<Uri, http::Error> {
        match (&self.parsed, path_and_query) {
            (Some((scheme, authority)), Some(pq)) if self.prefix.is_empty() => {
                let mut parts = http::uri::Parts::default();
                parts.scheme = Some(scheme.clone());
                parts.authority = Some(authority.clone());
                parts.path_and_query = Some(pq.clone());
                Ok(Uri::from_parts(parts)?)
            }
            _ => self.join(path_and_query.map_or("/", |pq| pq.as_str())),
        }
    }

    pub(crate) fn join(&self, path_and_query: &str) -> Result<Uri, http::Error> {
        Ok(format!(
            "{}://{}{}{}",
            self.scheme, self.authority, self.prefix, path_and_query
        )
        .parse::<Uri>()?)
    }
}

pub(crate) fn parse_base(url: &str) -> Result<Base, ProxyError> {
    let bad = |why: &str| ProxyError::Config(format!("upstream {url:?}: {why}"));
    let uri: Uri = url.parse().map_err(|e| bad(&format!("not a URL ({e})")))?;
    let scheme = match uri.scheme_str() {
        Some(s @ ("http" | "https")) => s.to_owned(),
        _ => return Err(bad("must start with http:// or https://")),
    };
    let authority = uri
        .authority()
        .ok_or_else(|| bad("has no host"))?
        .as_str()
        .to_owned();
    if authority.contains('@') {
        return Err(bad("must not contain credentials"));
    }
    let prefix = uri.path().trim_end_matches('/').to_owned();
    let parsed = uri.scheme().cloned().zip(uri.authority().cloned());
    Ok(Base {
        scheme,
        authority,
        prefix,
        parsed,
    })
}

/// The ingress's own HTTP/1 exchange (see [`super::http1`]) for the connections of one
/// thread.
fn own_http1(core: Arc<Core>, upstream: Arc<Base>) -> OwnHttp1 {
    let limits = super::http1_limits(&core.settings);
    super::http1::own_connections(Arc::new(Ingress { core, upstream }), limits)
}

/// What answers the requests of the ingress's own HTTP/1 connections.
struct Ingress {
    core: Arc<Core>,
    upstream: Arc<Base>,
}

impl super::http1::Exchange for Ingress {
    async fn answer(
        &self,
        request: http::Request<Bytes>,
        upstream: &Upstream,
    ) -> http::Response<ProxyBody> {
        let started = SystemTime::now();
        let (parts, body) = request.into_parts();
        match hop_of(&self.upstream, parts, started) {
            Ok((hop, _)) => {
                let hop = Hop { body, ..hop };
                self.core.handle_on(hop, Transport::Own(upstream)).await
            }
            Err(answer) => *answer,
        }
    }
}

/// The hyper path: every connection the own HTTP/1 exchange does not serve (HTTP/2,
/// upgrades, HTTPS applications).
async fn handle(
    core: &Arc<Core>,
    upstream: &Base,
    req: http::Request<Incoming>,
) -> http::Response<ProxyBody> {
    let started = SystemTime::now();
    let (parts, mut body) = req.into_parts();
    let version = parts.version;
    let (hop, websocket) = match hop_of(upstream, parts, started) {
        Ok(hop) => hop,
        Err(answer) => return *answer,
    };
    let limit = core.settings.body_limit;
    let body = match collect_limited(&mut body, limit).await {
        Ok(b) => b,
        Err(e) => return super::forward::body_error(e, limit, body, version).await,
    };
    let hop = Hop { body, ..hop };
    match websocket {
        Some(client) => core.handle_websocket(hop, client).await,
        None => core.handle(hop).await,
    }
}

/// The inbound hop of a request head (its body still empty): the session from the headers,
/// the trace context the application gets, the upstream URL. Also the pending upgrade of a
/// WebSocket request. An answer instead when the request cannot be forwarded (boxed: the
/// rare path stays off the hot path's stack).
fn hop_of(
    upstream: &Base,
    mut parts: http::request::Parts,
    started: SystemTime,
) -> Result<(Hop, Option<hyper::upgrade::OnUpgrade>), Box<http::Response<ProxyBody>>> {
    if parts.method == Method::CONNECT {
        return Err(Box::new(json_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "the ingress proxy is a reverse proxy; send CONNECT to the egress proxy",
        )));
    }
    let state = trace_state(&parts.headers);
    let session_id = session_text(&parts.headers)
        .or_else(|| state.session_id().map(|id| HopText::Owned(id.to_owned())));
    let tags = trace_tags(&state, &parts.headers);
    let incoming = trace_parent(&parts.headers);
    let (trace_id, parent_span_id, flags) = match incoming {
        Some(tp) => (tp.trace_id, Some(tp.parent_id), tp.flags),
        // A new trace, sampled.
        None => (TraceId::random(), None, 0x01),
    };
    let span_id = SpanId::random();
    let host = match parts.headers.get(header::HOST) {
        Some(h) => HopText::host(h, "http"),
        None => None,
    }
    .unwrap_or_else(|| {
        HopText::Owned(
            parts
                .uri
                .authority()
                .map_or_else(String::new, |a| without_default_port(a.as_str(), "http")),
        )
    });

    let websocket = super::websocket::is_upgrade(&parts.headers)
        .then(|| parts.extensions.remove::<hyper::upgrade::OnUpgrade>())
        .flatten();
    remove_hop_by_hop(&mut parts.headers);
    // The application's own calls become children of the inbound span.
    let forwarded = TraceParent {
        trace_id,
        parent_id: span_id,
        flags,
    };
    parts.headers.insert(
        crate::headers::names::TRACEPARENT.clone(),
        forwarded.header_value(),
    );
    let tracestate = state.header_value(session_id.as_ref().map(HopText::as_str));
    match tracestate {
        Some(v) => {
            parts
                .headers
                .insert(crate::headers::names::TRACESTATE.clone(), v);
        }
        None => {
            parts.headers.remove(&crate::headers::names::TRACESTATE);
        }
    }

    let upstream_uri = match upstream.join_parsed(parts.uri.path_and_query()) {
        Ok(u) => u,
        Err(e) => {
            let path_and_query = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
            return Err(Box::new(json_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("cannot forward {path_and_query:?}: {e}"),
            )));
        }
    };
    let hop = Hop {
        direction: Direction::Inbound,
        session_id,
        method: parts.method,
        scheme: "http",
        host,
        target: parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/")),
        headers: parts.headers,
        trace_tags: tags,
        body: Bytes::new(),
        upstream: upstream_uri,
        trace_id,
        span_id,
        parent_span_id,
        started,
        request_body_note: Vec::new(),
    };
    Ok((hop, websocket))
}
