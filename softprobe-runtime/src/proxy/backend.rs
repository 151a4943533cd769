//! The proxy's only view of the runtime: [`ProxyBackend`] decides hops and records them.
//!
//! [`RemoteBackend`] talks to a runtime over its OTLP API (`/v1/inject`, `/v1/traces`), the
//! same wire the original Envoy filter uses, so it also works with the original runtime.
//! [`NoSessionsBackend`] is a plain relay with no runtime at all.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::case::Direction;
use crate::case::attributes as attr;
use crate::case::otlp::{AnyValue, KeyValue, Resource, ResourceSpans, ScopeSpans, Span};
use crate::case::{Body, Exchange, TracesData};
use crate::replay::{Decision, Layer, Origin, Request, Response};
use crate::session::{HopPlan, Session, SessionStore};

use super::http::collect_limited;

/// The future every backend method returns.
pub type BackendFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, BackendError>> + Send + 'a>>;

/// Why the backend could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// The runtime has no such session.
    #[error("unknown session {session_id:?}")]
    UnknownSession {
        /// The id asked for.
        session_id: String,
    },
    /// The runtime could not be reached or timed out.
    #[error("runtime at {url} unreachable: {message}")]
    Unreachable {
        /// Where the runtime was expected.
        url: String,
        /// The cause.
        message: String,
    },
    /// The runtime answered something this proxy does not understand.
    #[error("runtime at {url} answered unexpectedly: {message}")]
    Protocol {
        /// The endpoint.
        url: String,
        /// What was wrong.
        message: String,
    },
}

/// What the proxies ask of the runtime. Implementations are shared as
/// `Arc<dyn ProxyBackend>` between every connection of both proxies.
pub trait ProxyBackend: Send + Sync + 'static {
    /// What to do with a hop of a session: the session's decision, as `POST /v1/inject`
    /// answers it (the same operation as [`SessionStore::inject`]).
    fn inject<'a>(
        &'a self,
        session_id: &'a str,
        request: &'a Request,
    ) -> BackendFuture<'a, Decision>;
    /// Stores a finished hop for a session (the runtime keeps it only for capture sessions).
    fn record<'a>(&'a self, session_id: &'a str, exchange: Exchange) -> BackendFuture<'a, ()>;
    /// Whether the session is open.
    fn session_exists<'a>(&'a self, session_id: &'a str) -> BackendFuture<'a, bool>;
    /// Called when a hop of the session is finished, before its recording is built: a
    /// backend that would only count the hop (the in-process store keeps the hops of
    /// capture sessions and counts the others') counts it here and returns `true`, and the
    /// proxy then neither buffers the answer for a recording nor calls
    /// [`record`](Self::record). The default keeps every hop.
    fn count_instead_of_recording(&self, session_id: &str) -> bool {
        let _ = session_id;
        false
    }
    /// What the session needs of a hop going `direction` to `host`, asked before the hop's
    /// request is built (see [`HopPlan`]). The default answers [`HopPlan::Decide`]: every
    /// hop is decided with its request through [`inject`](Self::inject), as a runtime
    /// behind an API (`POST /v1/inject`) needs.
    fn plan(
        &self,
        session_id: &str,
        direction: Direction,
        host: &str,
    ) -> Result<HopPlan, BackendError> {
        let _ = (session_id, direction, host);
        Ok(HopPlan::Decide)
    }
    /// [`inject`](Self::inject) in a session this backend's [`plan`](Self::plan) found
    /// ([`HopPlan::DecideIn`]). The default decides in the session alone.
    fn decide_in(&self, session: &Session, request: &Request) -> Decision {
        session.inject(request)
    }
    /// [`count_instead_of_recording`](Self::count_instead_of_recording) in a session this
    /// backend's [`plan`](Self::plan) found ([`HopPlan::DecideIn`], [`HopPlan::Forward`]).
    /// The default counts in the session alone.
    fn count_in(&self, session: &Session) -> bool {
        session.count_instead_of_recording()
    }
    /// Reports a replay that went wrong after its answer started (a WebSocket client
    /// message that differs from the recording): the runtime counts it with the strict misses
    /// and keeps `report` for `state` and test reports. The default only logs it; the OTLP API
    /// has no call for it, so a remote runtime learns of it from the proxy's log.
    fn report_miss(&self, session_id: &str, report: serde_json::Value) {
        tracing::warn!(session_id, %report, "replay drift");
    }
}

/// A backend with no runtime: no session exists, every hop is forwarded, nothing is
/// recorded. Useful to run the proxies as plain (TLS-intercepting) relays.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSessionsBackend;

impl ProxyBackend for NoSessionsBackend {
    fn inject<'a>(&'a self, session_id: &'a str, _: &'a Request) -> BackendFuture<'a, Decision> {
        Box::pin(async move {
            Err(BackendError::UnknownSession {
                session_id: session_id.to_owned(),
            })
        })
    }

    fn record<'a>(&'a self, session_id: &'a str, _: Exchange) -> BackendFuture<'a, ()> {
        Box::pin(async move {
            Err(BackendError::UnknownSession {
                session_id: session_id.to_owned(),
            })
        })
    }

    fn session_exists<'a>(&'a self, _: &'a str) -> BackendFuture<'a, bool> {
        Box::pin(async { Ok(false) })
    }
}

/// The runtime's session store in the same process: the proxies call it directly, no HTTP
/// in between.
#[derive(Debug, Clone)]
pub struct StoreBackend {
    store: Arc<dyn SessionStore>,
}

impl StoreBackend {
    /// A backend over `store` (e.g. [`crate::RunningServer::store`]).
    pub fn new(store: Arc<dyn SessionStore>) -> Self {
        StoreBackend { store }
    }
}

fn store_error(err: crate::Error) -> BackendError {
    match err {
        crate::Error::UnknownSession { session_id } => BackendError::UnknownSession { session_id },
        crate::Error::StoreUnavailable { url, message } => {
            BackendError::Unreachable { url, message }
        }
        other => BackendError::Protocol {
            url: "in-process store".into(),
            message: other.to_string(),
        },
    }
}

impl ProxyBackend for StoreBackend {
    fn inject<'a>(
        &'a self,
        session_id: &'a str,
        request: &'a Request,
    ) -> BackendFuture<'a, Decision> {
        Box::pin(async move { self.store.inject(session_id, request).map_err(store_error) })
    }

    fn record<'a>(&'a self, session_id: &'a str, exchange: Exchange) -> BackendFuture<'a, ()> {
        Box::pin(async move {
            self.store
                .record(session_id, exchange)
                .map(|_| ())
                .map_err(store_error)
        })
    }

    fn session_exists<'a>(&'a self, session_id: &'a str) -> BackendFuture<'a, bool> {
        Box::pin(async move { Ok(self.store.get(session_id).is_some()) })
    }

    fn count_instead_of_recording(&self, session_id: &str) -> bool {
        self.store
            .count_instead_of_recording(session_id)
            .unwrap_or(false)
    }

    fn plan(
        &self,
        session_id: &str,
        direction: Direction,
        host: &str,
    ) -> Result<HopPlan, BackendError> {
        self.store
            .plan_hop(session_id, direction, host)
            .map_err(store_error)
    }

    fn decide_in(&self, session: &Session, request: &Request) -> Decision {
        self.store.decide_in(session, request)
    }

    fn count_in(&self, session: &Session) -> bool {
        self.store.count_in(session)
    }

    fn report_miss(&self, session_id: &str, report: serde_json::Value) {
        match self.store.get(session_id) {
            Some(session) => session.report_miss(report),
            None => tracing::warn!(session_id, %report, "replay drift of a closed session"),
        }
    }
}

/// The original proxy's timeout for runtime calls.
const REMOTE_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest runtime answer read.
const REMOTE_BODY_LIMIT: usize = 64 * 1024 * 1024;

type RemoteClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A runtime reached over HTTP (`--runtime-url`): decisions through `POST /v1/inject`,
/// records through `POST /v1/traces`, both OTLP JSON.
#[derive(Clone)]
pub struct RemoteBackend {
    base: String,
    token: Option<String>,
    service: Option<String>,
    client: RemoteClient,
}

impl std::fmt::Debug for RemoteBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteBackend")
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| "[REDACTED]"))
            .finish_non_exhaustive()
    }
}

impl RemoteBackend {
    /// A backend for the runtime at `runtime_url` (e.g. `http://127.0.0.1:8080`), sending
    /// `Authorization: Bearer <token>` when a token is given.
    pub fn new(runtime_url: &str, token: Option<String>) -> Result<Self, BackendError> {
        let base = runtime_url.trim_end_matches('/').to_owned();
        let uri: Uri = base.parse().map_err(|e| BackendError::Protocol {
            url: base.clone(),
            message: format!("not a valid runtime URL: {e}"),
        })?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.authority().is_none() {
            return Err(BackendError::Protocol {
                url: base,
                message: "the runtime URL must be http:// or https:// with a host".into(),
            });
        }
        let tls = super::tls::upstream_client_config(&[]).map_err(|e| BackendError::Protocol {
            url: base.clone(),
            message: e.to_string(),
        })?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(REMOTE_TIMEOUT));
        http.set_nodelay(true);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(RemoteBackend {
            base,
            token,
            service: None,
            client,
        })
    }

    /// Names the service in the `service.name` resource attribute of every span sent.
    pub fn with_service(mut self, service: impl Into<String>) -> Self {
        self.service = Some(service.into());
        self
    }

    async fn post(
        &self,
        path: &str,
        body: Vec<u8>,
    ) -> Result<(StatusCode, http::HeaderMap, Bytes), BackendError> {
        let url = format!("{}{path}", self.base);
        let unreachable = |message: String| BackendError::Unreachable {
            url: url.clone(),
            message,
        };
        let mut req = http::Request::builder()
            .method(Method::POST)
            .uri(&url)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json");
        if let Some(token) = &self.token {
            let value = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| unreachable("the API token is not a valid header value".into()))?;
            req = req.header(header::AUTHORIZATION, value);
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| unreachable(e.to_string()))?;
        let resp = tokio::time::timeout(REMOTE_TIMEOUT, self.client.request(req))
            .await
            .map_err(|_| unreachable(format!("no answer within {REMOTE_TIMEOUT:?}")))?
            .map_err(|e| unreachable(error_chain(&e)))?;
        let (parts, body) = resp.into_parts();
        let bytes = tokio::time::timeout(REMOTE_TIMEOUT, collect_limited(body, REMOTE_BODY_LIMIT))
            .await
            .map_err(|_| unreachable(format!("body not received within {REMOTE_TIMEOUT:?}")))?
            .map_err(|e| unreachable(format!("cannot read the answer: {e:?}")))?;
        Ok((parts.status, parts.headers, bytes))
    }

    fn traces(&self, span: Span) -> TracesData {
        TracesData {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: self
                        .service
                        .iter()
                        .map(|s| KeyValue::string(attr::RESOURCE_SERVICE_NAME, s))
                        .collect(),
                    dropped_attributes_count: None,
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(serde_json::json!({
                        "name": "softprobe-proxy",
                        "version": env!("CARGO_PKG_VERSION"),
                    })),
                    spans: vec![span],
                    schema_url: None,
                }],
                schema_url: None,
            }],
        }
    }
}

/// Writes the error and its causes on one line: connection errors hide the useful part in
/// their sources.
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// The inject span for a request, in the vocabulary both runtimes read: canonical attributes
/// plus the original proxy's pseudo-headers and `url.path` with the query.
pub fn inject_span(session_id: &str, request: &Request) -> Span {
    let mut a = Vec::with_capacity(16 + request.headers.len());
    a.push(KeyValue::string(attr::SPAN_TYPE, "inject"));
    a.push(KeyValue::string(attr::SESSION_ID, session_id));
    a.push(KeyValue::string(
        attr::TRAFFIC_DIRECTION,
        request.direction.as_str(),
    ));
    if let Some(s) = &request.service {
        a.push(KeyValue::string(attr::SERVICE_NAME, s));
    }
    let scheme = request.scheme.as_deref().unwrap_or("http");
    let target = match &request.query {
        Some(q) => format!("{}?{q}", request.path),
        None => request.path.clone(),
    };
    a.push(KeyValue::string(attr::REQUEST_METHOD, &request.method));
    a.push(KeyValue::string(attr::URL_SCHEME, scheme));
    a.push(KeyValue::string(attr::URL_HOST, &request.host));
    a.push(KeyValue::string(attr::URL_PATH, &target));
    if let Some(q) = &request.query {
        a.push(KeyValue::string(attr::URL_QUERY, q));
    }
    if !request.host.is_empty() {
        a.push(KeyValue::string(
            attr::LEGACY_URL_FULL,
            format!("{scheme}://{}{target}", request.host),
        ));
    }
    a.push(KeyValue::string(attr::PSEUDO_METHOD, &request.method));
    a.push(KeyValue::string(attr::PSEUDO_PATH, &target));
    a.push(KeyValue::string(attr::PSEUDO_AUTHORITY, &request.host));
    a.push(KeyValue::string(attr::PSEUDO_SCHEME, scheme));
    for (name, value) in &request.headers {
        a.push(KeyValue::string(
            format!("{}{name}", attr::REQUEST_HEADER_PREFIX),
            value,
        ));
    }
    match &request.body {
        None => {}
        Some(Body::Text(s)) => a.push(KeyValue::string(attr::REQUEST_BODY, s)),
        Some(Body::Binary(b)) => {
            a.push(KeyValue::string(
                attr::REQUEST_BODY,
                base64::engine::general_purpose::STANDARD.encode(b),
            ));
            a.push(KeyValue::string(attr::REQUEST_BODY_ENCODING, attr::BASE64));
        }
    }
    Span {
        trace_id: crate::case::TraceId::random(),
        span_id: crate::case::SpanId::random(),
        name: format!("HTTP {}", request.method),
        kind: request.direction.span_kind(),
        attributes: a,
        ..Span::default()
    }
}

/// Reads the answer span of a `/v1/inject` hit: status, headers and body attributes.
pub fn response_from_span(span: &Span) -> Result<Response, String> {
    let mut status = 200u16;
    let mut headers = Vec::new();
    let mut body: Option<&str> = None;
    let mut base64_marked = false;
    for kv in &span.attributes {
        match kv.key.as_str() {
            attr::RESPONSE_STATUS_CODE | attr::LEGACY_STATUS_CODE => {
                let code = kv
                    .value
                    .as_i64()
                    .ok_or_else(|| format!("`{}` is not an integer", kv.key))?;
                status = u16::try_from(code)
                    .ok()
                    .filter(|c| (100..=999).contains(c))
                    .ok_or_else(|| format!("`{}` = {code} is not an HTTP status", kv.key))?;
            }
            attr::RESPONSE_BODY => body = kv.value.as_str(),
            attr::RESPONSE_BODY_ENCODING => {
                base64_marked = kv.value.as_str() == Some(attr::BASE64);
            }
            key => {
                if let Some(name) = key.strip_prefix(attr::RESPONSE_HEADER_PREFIX)
                    && !name.starts_with(':')
                    && let AnyValue::String(v) = &kv.value
                {
                    headers.push((name.to_ascii_lowercase(), v.clone()));
                }
            }
        }
    }
    let b64 = &base64::engine::general_purpose::STANDARD;
    let body = match body {
        None => None,
        Some(s) if base64_marked => Some(Body::Binary(b64.decode(s).map_err(|e| {
            format!(
                "`{}` is marked base64 but does not decode: {e}",
                attr::RESPONSE_BODY
            )
        })?)),
        Some(s) => Some(Body::Text(s.to_owned())),
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn origin_remote() -> Origin {
    Origin::Rule {
        layer: Layer::Session,
        name: Some("runtime answer".to_owned()),
    }
}

impl ProxyBackend for RemoteBackend {
    fn inject<'a>(
        &'a self,
        session_id: &'a str,
        request: &'a Request,
    ) -> BackendFuture<'a, Decision> {
        Box::pin(async move {
            let doc = self.traces(inject_span(session_id, request));
            let body = serde_json::to_vec(&doc).unwrap_or_default();
            let (status, headers, bytes) = match self.post("/v1/inject", body).await {
                Ok(answer) => answer,
                // The original proxy sends traffic upstream when the runtime is down.
                Err(err) => {
                    tracing::warn!(%err, "inject failed; forwarding upstream");
                    return Ok(Decision::Passthrough { origin: None });
                }
            };
            let url = format!("{}/v1/inject", self.base);
            match status {
                StatusCode::OK => {
                    let doc: TracesData = crate::case::validate::locate::from_json(&bytes)
                        .map_err(|e| BackendError::Protocol {
                            url: url.clone(),
                            message: format!("200 body is not OTLP JSON TracesData: {e}"),
                        })?;
                    let span = doc
                        .resource_spans
                        .iter()
                        .flat_map(|rs| &rs.scope_spans)
                        .flat_map(|ss| &ss.spans)
                        .next()
                        .ok_or_else(|| BackendError::Protocol {
                            url: url.clone(),
                            message: "200 body has no span".into(),
                        })?;
                    let response =
                        response_from_span(span).map_err(|message| BackendError::Protocol {
                            url: url.clone(),
                            message,
                        })?;
                    Ok(Decision::Respond {
                        response,
                        latency: None,
                        origin: origin_remote(),
                        injected_error: false,
                    })
                }
                StatusCode::NOT_FOUND => {
                    if is_unknown_session(&bytes) {
                        return Err(BackendError::UnknownSession {
                            session_id: session_id.to_owned(),
                        });
                    }
                    Ok(Decision::Passthrough { origin: None })
                }
                // Any other status is the answer the runtime wants the caller to see (this is
                // how a strict miss travels).
                other => Ok(Decision::Respond {
                    response: Response {
                        status: other.as_u16(),
                        headers: super::http::header_pairs(&headers)
                            .into_iter()
                            .filter(|(k, _)| k != "content-length" && k != "transfer-encoding")
                            .collect(),
                        body: (!bytes.is_empty()).then(|| Body::from_bytes(bytes.to_vec())),
                    },
                    latency: None,
                    origin: origin_remote(),
                    injected_error: other.as_u16() >= 500,
                }),
            }
        })
    }

    fn record<'a>(&'a self, session_id: &'a str, mut exchange: Exchange) -> BackendFuture<'a, ()> {
        Box::pin(async move {
            if exchange.session_id.is_none() {
                exchange.session_id = Some(session_id.to_owned());
            }
            if exchange.service.is_none() {
                exchange.service.clone_from(&self.service);
            }
            let doc = self.traces(exchange.to_span());
            let body = serde_json::to_vec(&doc).unwrap_or_default();
            let (status, _, bytes) = self.post("/v1/traces", body).await?;
            if status.is_success() {
                return Ok(());
            }
            if status == StatusCode::NOT_FOUND && is_unknown_session(&bytes) {
                return Err(BackendError::UnknownSession {
                    session_id: session_id.to_owned(),
                });
            }
            Err(BackendError::Protocol {
                url: format!("{}/v1/traces", self.base),
                message: format!("status {status}: {}", String::from_utf8_lossy(&bytes)),
            })
        })
    }

    fn session_exists<'a>(&'a self, session_id: &'a str) -> BackendFuture<'a, bool> {
        Box::pin(async move {
            let url = format!("{}/v1/sessions/{session_id}/stats", self.base);
            let unreachable = |message: String| BackendError::Unreachable {
                url: url.clone(),
                message,
            };
            let mut req = http::Request::builder().method(Method::GET).uri(&url);
            if let Some(token) = &self.token {
                req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
            }
            let req = req
                .body(Full::new(Bytes::new()))
                .map_err(|e| unreachable(e.to_string()))?;
            let resp = tokio::time::timeout(REMOTE_TIMEOUT, self.client.request(req))
                .await
                .map_err(|_| unreachable(format!("no answer within {REMOTE_TIMEOUT:?}")))?
                .map_err(|e| unreachable(error_chain(&e)))?;
            let status = resp.status();
            let _ = resp.into_body().collect().await;
            match status {
                s if s.is_success() => Ok(true),
                StatusCode::NOT_FOUND => Ok(false),
                other => Err(BackendError::Protocol {
                    url,
                    message: format!("status {other}"),
                }),
            }
        })
    }
}

fn is_unknown_session(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/error/code")
                .and_then(|c| c.as_str())
                .map(|c| c == "unknown_session")
        })
        .unwrap_or(false)
}

/// Shared handle to a backend.
pub type SharedBackend = Arc<dyn ProxyBackend>;

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> Request {
        Request {
            direction: Direction::Outbound,
            service: Some("checkout".into()),
            method: "POST".into(),
            scheme: Some("https".into()),
            host: "api.example.test:8443".into(),
            path: "/v1/pay".into(),
            query: Some("x=1".into()),
            headers: vec![("content-type".into(), "application/json".into())],
            body: Some(Body::Text("{\"a\":1}".into())),
            trace_tags: vec![],
        }
    }

    #[test]
    fn inject_span_reads_back_as_the_same_request() {
        let span = inject_span("sess_1", &request());
        let ex = Exchange::from_span(&span, None).unwrap();
        assert_eq!(ex.method, "POST");
        assert_eq!(ex.host, "api.example.test:8443");
        assert_eq!(ex.path, "/v1/pay");
        assert_eq!(ex.query.as_deref(), Some("x=1"));
        assert_eq!(ex.session_id.as_deref(), Some("sess_1"));
        assert_eq!(ex.direction, Direction::Outbound);
        assert_eq!(
            ex.request_headers,
            vec![("content-type".to_owned(), "application/json".to_owned())]
        );
        // What the original runtime reads: the pseudo-headers and url.path with the query.
        let get = |k: &str| {
            span.attributes
                .iter()
                .find(|kv| kv.key == k)
                .and_then(|kv| kv.value.as_str())
        };
        assert_eq!(get("http.request.header.:method"), Some("POST"));
        assert_eq!(get("http.request.header.:path"), Some("/v1/pay?x=1"));
        assert_eq!(get("url.path"), Some("/v1/pay?x=1"));
        assert_eq!(
            get("http.request.header.:authority"),
            Some("api.example.test:8443")
        );
    }

    #[test]
    fn answer_span_becomes_a_response() {
        let span = Span {
            attributes: vec![
                KeyValue::int("http.response.status_code", 201),
                KeyValue::string("http.response.header.content-type", "image/png"),
                KeyValue::string("http.response.header.:status", "201"),
                KeyValue::string("http.response.body", "AAEC"),
                KeyValue::string("sp.http.response.body.encoding", "base64"),
            ],
            ..Span::default()
        };
        let r = response_from_span(&span).unwrap();
        assert_eq!(r.status, 201);
        assert_eq!(
            r.headers,
            vec![("content-type".to_owned(), "image/png".to_owned())]
        );
        assert_eq!(r.body.unwrap().as_bytes(), &[0, 1, 2]);
        let bad = Span {
            attributes: vec![KeyValue::int("http.response.status_code", 7)],
            ..Span::default()
        };
        assert!(
            response_from_span(&bad)
                .unwrap_err()
                .contains("7 is not an HTTP status")
        );
    }

    #[test]
    fn remote_url_must_be_http() {
        let err = RemoteBackend::new("ftp://x", None).unwrap_err();
        assert!(err.to_string().contains("http:// or https://"), "{err}");
        assert!(RemoteBackend::new("http://127.0.0.1:8080/", None).is_ok());
    }
}
