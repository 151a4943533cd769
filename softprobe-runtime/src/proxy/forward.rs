//! The part both proxies share once a request is understood: ask the backend, answer
//! locally or forward upstream (HTTP/1.1 or HTTP/2, pooled), and record the hop.
//!
//! Ingress and egress differ only in how they find the session, the target and the trace
//! ids; they describe the request as a [`Hop`] and hand it to [`Core::handle`].
//!
//! A hop of a session first asks the backend what the session needs of it
//! ([`ProxyBackend::plan`](super::backend::ProxyBackend::plan), one store lookup): a hop
//! nothing in the session can answer and that the session does not keep is forwarded
//! without building its decision [`Request`], which is most of a hop's allocations (its
//! headers as owned pairs); the others are decided in the session that lookup found.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Waker};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{self, HeaderMap};
use http::{Method, Response, StatusCode, Uri, Version};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::case::{Body, Direction, Exchange, KeyValue, SpanId, TraceId};
use crate::replay::{Decision, Request, Response as DecidedResponse};
use crate::session::{HopPlan, Session};

use super::backend::{BackendError, SharedBackend, error_chain};
use super::http::{
    HopText, ProxyBody, Recorded, RecordingBody, empty, full, header_map, json_error,
    remove_hop_by_hop,
};
use super::tls::TlsError;

/// Attribute saying why a request body is not in the recording.
const OMITTED_REQUEST_BODY: &str = "sp.http.request.body.omitted";

/// Default time a client gets to send a whole request head, on every listener.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Default time allowed to open a connection to an upstream.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time allowed for an upstream to start answering.
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) type UpstreamClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Builds the pooled upstream client: plain HTTP, or HTTPS with HTTP/2 or HTTP/1.1 by ALPN.
pub(crate) fn upstream_client(
    tls: rustls::ClientConfig,
    connect_timeout: Duration,
) -> UpstreamClient {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_all_versions()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new()).build(connector)
}

/// The client for gRPC calls to plain-HTTP upstreams: HTTP/2 with prior knowledge (h2c).
pub(crate) fn h2c_client(tls: rustls::ClientConfig, connect_timeout: Duration) -> UpstreamClient {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http2()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build(connector)
}

/// Settings shared by both proxies' builders.
#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) body_limit: usize,
    pub(crate) connect_timeout: Duration,
    pub(crate) upstream_timeout: Duration,
    pub(crate) require_session: bool,
    pub(crate) service: Option<String>,
    pub(crate) redact_headers: Vec<String>,
    pub(crate) extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
    pub(crate) header_read_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            body_limit: super::http::DEFAULT_BODY_LIMIT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            upstream_timeout: DEFAULT_UPSTREAM_TIMEOUT,
            require_session: false,
            service: None,
            redact_headers: crate::headers::SENSITIVE
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            extra_roots: Vec::new(),
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
        }
    }
}

/// What a proxy needs to handle hops: the backend, the upstream client, the settings.
pub(crate) struct Core {
    pub(crate) backend: SharedBackend,
    pub(crate) client: UpstreamClient,
    /// HTTP/2 only, for gRPC calls to plain-HTTP upstreams (h2c with prior knowledge).
    pub(crate) h2c: UpstreamClient,
    pub(crate) settings: Settings,
    /// This proxy's `Via` pseudonym: unique per instance, so a request that comes back to
    /// the proxy that sent it is recognised (a loop) while chained proxies are not.
    via: String,
    /// The `Via` entry this proxy appends, built once.
    via_value: http::HeaderValue,
    /// The upstream TLS set-up, kept for the clients of [`Core::with_own_client`].
    tls: rustls::ClientConfig,
}

impl Core {
    pub(crate) fn new(backend: SharedBackend, settings: Settings) -> Result<Arc<Self>, TlsError> {
        let tls = super::tls::upstream_client_config(&settings.extra_roots)?;
        let client = upstream_client(tls.clone(), settings.connect_timeout);
        let h2c = h2c_client(tls.clone(), settings.connect_timeout);
        let via = format!("softprobe-{}", &SpanId::random().to_string()[..8]);
        let via_value = http::HeaderValue::from_str(&format!("1.1 {via}"))
            .expect("a pseudonym of hex digits is a valid header value");
        Ok(Arc::new(Core {
            backend,
            client,
            h2c,
            settings,
            via,
            via_value,
            tls,
        }))
    }

    /// The same proxy (backend, settings, `Via` pseudonym, so loops through any of its
    /// threads are still caught) with a connection pool of its own, for a thread that
    /// serves connections by itself.
    pub(crate) fn with_own_client(&self) -> Arc<Self> {
        Arc::new(Core {
            backend: self.backend.clone(),
            client: upstream_client(self.tls.clone(), self.settings.connect_timeout),
            h2c: h2c_client(self.tls.clone(), self.settings.connect_timeout),
            settings: self.settings.clone(),
            via: self.via.clone(),
            via_value: self.via_value.clone(),
            tls: self.tls.clone(),
        })
    }
}

/// One request as a proxy understood it.
pub(crate) struct Hop {
    pub(crate) direction: Direction,
    pub(crate) session_id: Option<HopText>,
    pub(crate) method: Method,
    /// `http` or `https`.
    pub(crate) scheme: &'static str,
    /// Host as recorded and matched: lowercase, default port dropped.
    pub(crate) host: HopText,
    /// Path and query as recorded and matched (the request's, before any upstream prefix):
    /// a slice of the request head, copied only into a decision request.
    pub(crate) target: http::uri::PathAndQuery,
    /// Headers to forward (hop-by-hop and session headers already gone).
    pub(crate) headers: HeaderMap,
    pub(crate) trace_tags: Vec<(String, String)>,
    pub(crate) body: Bytes,
    /// Where to forward, absolute.
    pub(crate) upstream: Uri,
    pub(crate) trace_id: TraceId,
    pub(crate) span_id: SpanId,
    pub(crate) parent_span_id: Option<SpanId>,
    pub(crate) started: SystemTime,
    /// Set by [`Hop::decision_request`]: how the request body's content coding was handled
    /// (see [`crate::content_coding::decode_for_record`]).
    pub(crate) request_body_note: Vec<KeyValue>,
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl Hop {
    /// A gRPC call (`application/grpc` content type).
    pub(crate) fn is_grpc(&self) -> bool {
        crate::grpc::is_grpc(
            self.headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
        )
    }

    /// The request the backend decides on. The parts only a decision and a recording read
    /// (scheme, host, path, query, trace tags) move into it; the hop keeps what forwarding
    /// needs.
    ///
    /// A compressed body is decided on (and recorded) decoded, without its
    /// `Content-Encoding`; the hop itself keeps the bytes and header it is forwarded with.
    pub(crate) fn decision_request(&mut self, service: Option<&str>, limit: usize) -> Request {
        let mut headers = super::http::header_pairs(&self.headers);
        let body = if self.is_grpc() {
            let (body, notes) = crate::grpc::request_for_record(self.target.path(), &self.body);
            self.request_body_note = notes;
            body
        } else if self.headers.contains_key(header::CONTENT_ENCODING) && !self.body.is_empty() {
            let (plain, note) = crate::content_coding::decode_for_record(
                crate::content_coding::Side::Request,
                &mut headers,
                self.body.to_vec(),
                limit,
            );
            self.request_body_note.extend(note);
            Some(Body::from_bytes(plain))
        } else {
            body_of(&self.body)
        };
        if let Some(parts) = crate::multipart::parts_attribute(
            self.headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            body.as_ref().map_or(&[][..], Body::as_bytes),
        ) {
            if parts
                .value
                .as_str()
                .is_some_and(|p| p.contains("\"sha256\""))
            {
                self.request_body_note.push(KeyValue::string(
                    OMITTED_REQUEST_BODY,
                    format!(
                        "multipart parts over {} bytes are kept as SHA-256 digests in {}",
                        crate::multipart::INLINE_PART_LIMIT,
                        crate::multipart::REQUEST_PARTS
                    ),
                ));
            }
            self.request_body_note.push(parts);
        }
        Request {
            direction: self.direction,
            service: service.map(str::to_owned),
            method: self.method.as_str().to_owned(),
            scheme: Some(self.scheme.to_owned()),
            host: self.host.as_str().to_owned(),
            path: self.target.path().to_owned(),
            query: self.target.query().map(str::to_owned),
            headers,
            body,
            trace_tags: std::mem::take(&mut self.trace_tags),
        }
    }
}

fn body_of(bytes: &Bytes) -> Option<Body> {
    (!bytes.is_empty()).then(|| Body::from_bytes(bytes.to_vec()))
}

fn pairs_for_record(headers: &HeaderMap, redact: &[String]) -> Vec<(String, String)> {
    recorded_pairs(super::http::header_pairs(headers), redact)
}

/// Lowercase header pairs as a recording keeps them: without the session and correlation
/// headers, sensitive values redacted.
pub(super) fn recorded_pairs(
    mut pairs: Vec<(String, String)>,
    redact: &[String],
) -> Vec<(String, String)> {
    pairs.retain(|(k, _)| !crate::headers::is_not_recorded(k));
    crate::redact::headers(&mut pairs, redact);
    pairs
}

/// The finished parts of a hop's answer that a recording needs.
pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: Option<Body>,
    pub(super) extra: Vec<KeyValue>,
}

impl Answer {
    /// An answer whose body is stored decoded when its `Content-Encoding` allows.
    fn decoded(
        status: u16,
        mut headers: Vec<(String, String)>,
        body: Option<Vec<u8>>,
        mut extra: Vec<KeyValue>,
        limit: usize,
    ) -> Self {
        let body = body.map(|bytes| {
            let (plain, note) = crate::content_coding::decode_for_record(
                crate::content_coding::Side::Response,
                &mut headers,
                bytes,
                limit,
            );
            extra.extend(note);
            Body::from_bytes(plain)
        });
        Answer {
            status,
            headers,
            body,
            extra,
        }
    }
}

/// How a hop goes upstream.
#[derive(Clone, Copy)]
pub(crate) enum Transport<'a> {
    /// Through the proxy's pooled client (HTTP/1.1, or HTTP/2 by ALPN or for gRPC).
    Pooled,
    /// Through the client connection's own upstream connection ([`super::http1`]); gRPC
    /// calls still take the pooled HTTP/2 client.
    Own(&'a super::http1::Upstream),
}

impl Core {
    /// Decides, answers or forwards, and records one hop, with its log line.
    pub(crate) async fn handle(self: &Arc<Self>, hop: Hop) -> Response<ProxyBody> {
        self.handle_on(hop, Transport::Pooled).await
    }

    /// [`Core::handle`], forwarding through `transport`.
    pub(crate) async fn handle_on(
        self: &Arc<Self>,
        hop: Hop,
        transport: Transport<'_>,
    ) -> Response<ProxyBody> {
        // The line's URL and copies are built only when someone reads hop lines.
        let line = crate::hop_log::enabled().then(|| {
            let url = format!("{}://{}{}", hop.scheme, hop.host, hop.target);
            crate::hop_log::HopLine::start(
                hop.session_id.as_ref().map(HopText::as_str),
                hop.direction,
                hop.method.as_str(),
                url,
            )
        });
        let mut decision = "passthrough";
        let response = self.answer(hop, &mut decision, transport).await;
        if let Some(line) = line {
            line.finish(decision, response.status().as_u16());
        }
        response
    }

    async fn answer(
        self: &Arc<Self>,
        mut hop: Hop,
        decision: &mut &'static str,
        transport: Transport<'_>,
    ) -> Response<ProxyBody> {
        if let Some(mode) = hop.headers.get(&crate::headers::names::MODE) {
            // A per-request mode would silently do nothing: the session's mode is fixed when
            // it is created, so the header is refused rather than ignored.
            *decision = "refused";
            return json_error(
                StatusCode::BAD_REQUEST,
                "mode_override_unsupported",
                format!(
                    "{}: {:?} is not applied per request: a session's mode is set when it is \
                     created (POST /v1/sessions {{\"mode\": ...}}); drop the header, or start a \
                     session in the mode you want",
                    super::http::MODE_HEADER,
                    String::from_utf8_lossy(mode.as_bytes())
                ),
            );
        }
        if self.is_loop(&hop.headers) {
            *decision = "refused";
            return json_error(
                StatusCode::LOOP_DETECTED,
                "loop_detected",
                format!(
                    "{} {}: the request came back to the proxy that forwarded it; point the \
                     upstream somewhere else",
                    hop.method, hop.upstream
                ),
            );
        }
        let Some(session) = hop.session_id.take() else {
            if self.settings.require_session {
                *decision = "refused";
                return refuse_without_session(&hop);
            }
            return self.forward(hop, Keep::Nothing, decision, transport).await;
        };
        let session_id = session.as_str();
        // One lookup says what the session needs of the hop; a hop it cannot answer and
        // does not keep is forwarded without its decision request.
        let found = match self
            .backend
            .plan(session_id, hop.direction, hop.host.as_str())
        {
            Ok(HopPlan::Forward(session)) => {
                return self
                    .forward(hop, Keep::Count(session), decision, transport)
                    .await;
            }
            Ok(HopPlan::DecideIn(session)) => Some(session),
            Ok(HopPlan::Decide) => None,
            Err(BackendError::UnknownSession { .. }) => {
                return self
                    .unknown_session(hop, session_id, decision, transport)
                    .await;
            }
            // The decision below meets the same trouble and says what to do about it.
            Err(_) => None,
        };
        let request =
            hop.decision_request(self.settings.service.as_deref(), self.settings.body_limit);
        let decided = match &found {
            Some(session) => Ok(self.backend.decide_in(session, &request)),
            None => self.backend.inject(session_id, &request).await,
        };
        let decided = match decided {
            Ok(d) => d,
            Err(BackendError::UnknownSession { .. }) => {
                return self
                    .unknown_session(hop, session_id, decision, transport)
                    .await;
            }
            Err(err) => {
                tracing::warn!(%err, session_id, "backend decision failed; forwarding upstream");
                let keep = Keep::Record {
                    session_id: session_id.to_owned(),
                    request,
                    found,
                };
                return self.forward(hop, keep, decision, transport).await;
            }
        };
        if !matches!(decided, Decision::Passthrough { .. }) {
            *decision = crate::hop_log::decision_word(&decided);
        }
        match decided {
            Decision::Respond {
                response, latency, ..
            } => {
                if let Some(latency) = latency {
                    tokio::time::sleep(latency).await;
                }
                tracing::debug!(
                    session_id,
                    method = %hop.method,
                    host = %request.host,
                    path = %request.path,
                    status = response.status,
                    "answered locally"
                );
                let reply = local_response(&response);
                if self.counts_instead_of_recording(session_id, found.as_deref()) {
                    return reply;
                }
                let answer = Answer::decoded(
                    response.status,
                    recorded_pairs(response.headers, &self.settings.redact_headers),
                    response.body.map(|b| match b {
                        Body::Text(s) => s.into_bytes(),
                        Body::Binary(b) => b,
                    }),
                    Vec::new(),
                    self.settings.body_limit,
                );
                self.record(&hop, request, session_id, answer);
                reply
            }
            Decision::StrictMiss(report) => {
                tracing::info!(
                    session_id,
                    method = %hop.method,
                    host = %request.host,
                    path = %request.path,
                    "strict miss"
                );
                if hop.is_grpc() {
                    return grpc_miss(&report.message, &request.path);
                }
                local_response(&report.to_response(session_id))
            }
            Decision::Passthrough { .. } => {
                let keep = Keep::Record {
                    session_id: session_id.to_owned(),
                    request,
                    found,
                };
                self.forward(hop, keep, decision, transport).await
            }
        }
    }

    /// A hop naming a session the backend does not have: refused when the proxy requires
    /// a session, else relayed without recording.
    async fn unknown_session(
        self: &Arc<Self>,
        hop: Hop,
        session_id: &str,
        decision: &mut &'static str,
        transport: Transport<'_>,
    ) -> Response<ProxyBody> {
        if self.settings.require_session {
            *decision = "refused";
            return json_error(
                StatusCode::FORBIDDEN,
                "unknown_session",
                format!(
                    "session {session_id:?} is not open on the runtime; this proxy relays only \
                     traffic of open sessions"
                ),
            );
        }
        tracing::debug!(session_id, "unknown session; relaying without recording");
        self.forward(hop, Keep::Nothing, decision, transport).await
    }

    /// Counts a finished hop of a session that does not keep hops and returns `true`;
    /// `false` when the session records it. `found` is the session when the hop's plan
    /// found it, which saves a lookup.
    fn counts_instead_of_recording(&self, session_id: &str, found: Option<&Session>) -> bool {
        match found {
            Some(session) => self.backend.count_in(session),
            None => self.backend.count_instead_of_recording(session_id),
        }
    }

    pub(super) fn is_loop(&self, headers: &HeaderMap) -> bool {
        headers
            .get_all(header::VIA)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|entry| entry.split_whitespace().nth(1) == Some(self.via.as_str()))
    }

    /// Hands a finished hop to the backend. An in-process backend stores it on the first
    /// poll, so it is done here, on the connection's task: a task per hop would wake another
    /// worker thread for a few hundred nanoseconds of work. A backend that has to wait (a
    /// remote runtime) finishes on a task of its own.
    pub(super) fn record(
        self: &Arc<Self>,
        hop: &Hop,
        request: Request,
        session_id: &str,
        answer: Answer,
    ) {
        // A hop finishing after the runtime is gone is not recorded: nobody is left to
        // store it, and the backend's futures may need the runtime.
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let exchange = self.exchange(hop, request, session_id, answer);
        let core = Arc::clone(self);
        let session_id = session_id.to_owned();
        let mut recording = Box::pin(async move {
            if let Err(err) = core.backend.record(&session_id, exchange).await {
                tracing::warn!(%err, session_id, "recording a hop failed");
            }
        });
        // Futures keep the waker of their latest poll, so one still pending here is woken
        // through the task it moves to.
        if recording
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
            .is_pending()
        {
            handle.spawn(recording);
        }
    }

    fn exchange(&self, hop: &Hop, request: Request, session_id: &str, answer: Answer) -> Exchange {
        // The decision request already holds the hop's parts as owned values: move them.
        Exchange {
            direction: hop.direction,
            service: request.service,
            session_id: Some(session_id.to_owned()),
            span_type: Some("extract".to_owned()),
            method: request.method,
            scheme: request.scheme,
            host: request.host,
            path: request.path,
            query: request.query,
            request_headers: recorded_pairs(request.headers, &self.settings.redact_headers),
            // A multipart body with large parts is kept as its parts' digests only.
            request_body: request.body.filter(|_| {
                !hop.request_body_note
                    .iter()
                    .any(|kv| kv.key == OMITTED_REQUEST_BODY)
            }),
            status: Some(answer.status),
            response_headers: answer.headers,
            response_body: answer.body.filter(|b| !b.is_empty()),
            trace_id: hop.trace_id,
            span_id: hop.span_id,
            parent_span_id: hop.parent_span_id,
            name: format!("HTTP {}", hop.method),
            start_time_unix_nano: nanos(hop.started),
            end_time_unix_nano: nanos(SystemTime::now()),
            extra_attributes: hop
                .request_body_note
                .iter()
                .cloned()
                .chain(answer.extra)
                .collect(),
        }
    }

    /// Sends the hop upstream and streams the answer back; once the answer has started, the
    /// hop is counted for its session or (with its decision request) recorded once the body
    /// has been passed on.
    async fn forward(
        self: &Arc<Self>,
        mut hop: Hop,
        keep: Keep,
        decision: &mut &'static str,
        transport: Transport<'_>,
    ) -> Response<ProxyBody> {
        let is_grpc = hop.is_grpc();
        let grpc = is_grpc && hop.upstream.scheme_str() == Some("http");
        let mut builder = http::Request::builder()
            .method(hop.method.clone())
            .uri(hop.upstream.clone())
            .version(if grpc {
                Version::HTTP_2
            } else {
                Version::HTTP_11
            });
        if let Some(headers) = builder.headers_mut() {
            // A recording takes the request headers from the decision request, so the hop's
            // own map moves into the upstream request.
            *headers = std::mem::take(&mut hop.headers);
            // The client writes Host (HTTP/1.1) or :authority (HTTP/2) from the URI.
            headers.remove(header::HOST);
            // The body is already buffered, so the upstream never needs to ask for it.
            headers.remove(header::EXPECT);
            headers.remove(header::CONTENT_LENGTH);
            // RFC 9110 §7.6.3: a proxy adds itself to Via.
            headers.append(header::VIA, self.via_value.clone());
            if is_grpc {
                // gRPC servers expect it; it was removed with the hop-by-hop headers.
                headers.insert(header::TE, http::HeaderValue::from_static("trailers"));
            }
        }
        let client = if grpc { &self.h2c } else { &self.client };
        let sent = async {
            match transport {
                Transport::Own(upstream) if !grpc => upstream
                    .send(hop_request(builder, hop.body.clone())?)
                    .await
                    .map_err(|e| match e {
                        super::http1::SendError::Connect { cause, timed_out } => {
                            Failure::Connect { cause, timed_out }
                        }
                        super::http1::SendError::Exchange(cause) => Failure::Exchange(cause),
                    }),
                _ => match client
                    .request(hop_request(builder, Full::new(hop.body.clone()))?)
                    .await
                {
                    Ok(resp) => Ok(resp.map(|b| b.map_err(Into::into).boxed_unsync())),
                    Err(err) => {
                        let cause = error_chain(&err);
                        Err(if err.is_connect() {
                            let timed_out =
                                cause.contains("timed out") || cause.contains("timeout");
                            Failure::Connect { cause, timed_out }
                        } else {
                            Failure::Exchange(cause)
                        })
                    }
                },
            }
        };
        let resp = match crate::listener::coarse_timeout(self.settings.upstream_timeout, sent).await
        {
            None => {
                return json_error(
                    StatusCode::GATEWAY_TIMEOUT,
                    "upstream_timeout",
                    format!(
                        "upstream {} did not answer within {:?}",
                        upstream_name(&hop.upstream),
                        self.settings.upstream_timeout
                    ),
                );
            }
            Some(Err(Failure::Build(e))) => {
                return json_error(
                    StatusCode::BAD_GATEWAY,
                    "upstream_error",
                    format!("cannot build the request for {}: {e}", hop.upstream),
                );
            }
            Some(Err(failure)) => {
                let target = upstream_name(&hop.upstream);
                let (status, what, cause) = match failure {
                    Failure::Connect {
                        cause,
                        timed_out: true,
                    } => (StatusCode::GATEWAY_TIMEOUT, "upstream_timeout", cause),
                    Failure::Connect { cause, .. } => {
                        (StatusCode::BAD_GATEWAY, "upstream_unreachable", cause)
                    }
                    Failure::Exchange(cause) | Failure::Build(cause) => {
                        (StatusCode::BAD_GATEWAY, "upstream_error", cause)
                    }
                };
                tracing::debug!(upstream = %target, cause, "upstream failed");
                return json_error(status, what, format!("upstream {target}: {cause}"));
            }
            Some(Ok(resp)) => resp,
        };
        let (mut parts, body) = resp.into_parts();
        tracing::debug!(
            session_id = keep.session_id().unwrap_or("-"),
            method = %hop.method,
            upstream = %hop.upstream,
            status = parts.status.as_u16(),
            "forwarded"
        );
        remove_hop_by_hop(&mut parts.headers);
        let session = match keep {
            Keep::Nothing => None,
            Keep::Count(session) => {
                self.backend.count_in(&session);
                None
            }
            Keep::Record {
                session_id,
                request,
                found,
            } => (!self.counts_instead_of_recording(&session_id, found.as_deref()))
                .then_some((session_id, request)),
        };
        if session.is_some() {
            *decision = "captured";
        }
        let Some((session_id, request)) = session else {
            // Nothing to record: the answer streams through untouched.
            return Response::from_parts(parts, body);
        };
        let status = parts.status.as_u16();
        let response_headers = pairs_for_record(&parts.headers, &self.settings.redact_headers);
        let streamed = crate::streaming::is_stream(&parts.headers);
        let limit = self.settings.body_limit;
        let core = Arc::clone(self);
        let recording = RecordingBody::new(body, limit, move |recorded: Recorded| {
            let mut extra = Vec::new();
            if recorded.truncated {
                extra.push(KeyValue::string(
                    "sp.http.response.body.omitted",
                    format!("larger than the proxy's recording limit of {limit} bytes"),
                ));
            }
            if !recorded.complete {
                extra.push(KeyValue::string(
                    "sp.http.response.body.incomplete",
                    "the stream ended early",
                ));
            }
            if streamed && !is_grpc {
                extra.extend(crate::streaming::chunks_attribute(&recorded.chunks));
            }
            let answer = if is_grpc {
                let body = crate::grpc::response_for_record(
                    recorded.body.as_deref().unwrap_or_default(),
                    &response_headers,
                    &recorded.trailers,
                    crate::grpc::is_streaming(&hop.request_body_note),
                    &mut extra,
                );
                Answer {
                    status,
                    headers: response_headers,
                    body,
                    extra,
                }
            } else {
                Answer::decoded(
                    status,
                    response_headers,
                    recorded.body.map(Vec::from),
                    extra,
                    limit,
                )
            };
            core.record(&hop, request, &session_id, answer);
        });
        Response::from_parts(parts, recording.boxed_unsync())
    }
}

/// What a forwarded hop leaves for its session once the answer has started.
#[expect(
    clippy::large_enum_variant,
    reason = "moved once into `forward`, never stored: a box would cost every recorded hop an \
              allocation"
)]
enum Keep {
    /// No session: nothing.
    Nothing,
    /// A hop the session only counts ([`HopPlan::Forward`]): no decision request was built.
    Count(Arc<Session>),
    /// A decided hop: counted, or recorded with its decision request. `found` is the
    /// session when the hop's plan found it.
    Record {
        session_id: String,
        request: Request,
        found: Option<Arc<Session>>,
    },
}

impl Keep {
    fn session_id(&self) -> Option<&str> {
        match self {
            Keep::Nothing => None,
            Keep::Count(session) => Some(session.id()),
            Keep::Record { session_id, .. } => Some(session_id),
        }
    }
}

/// Why a hop could not be sent upstream.
enum Failure {
    /// The request could not be built.
    Build(String),
    /// No connection could be opened (`timed_out`: within the connect timeout).
    Connect { cause: String, timed_out: bool },
    /// The exchange failed once connected.
    Exchange(String),
}

/// The upstream request whose head `builder` holds, with the hop's buffered body.
fn hop_request<B>(builder: http::request::Builder, body: B) -> Result<http::Request<B>, Failure> {
    builder
        .body(body)
        .map_err(|e| Failure::Build(e.to_string()))
}

pub(super) fn upstream_name(uri: &Uri) -> String {
    match (uri.scheme_str(), uri.authority()) {
        (Some(s), Some(a)) => format!("{s}://{a}"),
        _ => uri.to_string(),
    }
}

pub(super) fn refuse_without_session(hop: &Hop) -> Response<ProxyBody> {
    json_error(
        StatusCode::FORBIDDEN,
        "session_required",
        format!(
            "{} {}{}: no session (send x-softprobe-session-id, a tracestate sp= member, or \
             proxy credentials naming the session); this proxy refuses traffic without one",
            hop.method,
            hop.host,
            hop.target.path()
        ),
    )
}

/// The local answer of a rule or a replayed hop.
pub(super) fn local_response(decided: &DecidedResponse) -> Response<ProxyBody> {
    let mut headers = header_map(&decided.headers);
    // The body is known, so its length is too; anything the rule said about framing is
    // dropped rather than trusted.
    headers.remove(header::CONTENT_LENGTH);
    headers.remove(header::TRANSFER_ENCODING);
    remove_hop_by_hop(&mut headers);
    let trailers = take_trailers(&mut headers);
    let timing = headers
        .remove(crate::streaming::TIMING_HEADER)
        .and_then(|v| crate::streaming::parse_chunks(v.to_str().ok()?).ok());
    let body = match (&decided.body, timing) {
        (Some(b), Some(chunks)) => {
            crate::streaming::PacedBody::new(Bytes::copy_from_slice(b.as_bytes()), chunks)
                .boxed_unsync()
        }
        (Some(b), None) => full(Bytes::copy_from_slice(b.as_bytes())),
        (None, _) => empty(),
    };
    let body = match trailers {
        Some(trailers) => body
            .with_trailers(async move { Some(Ok(trailers)) })
            .boxed_unsync(),
        None => body,
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::from_u16(decided.status).unwrap_or(StatusCode::OK);
    *resp.headers_mut() = headers;
    resp
}

/// The trailers a decided answer carries in `x-softprobe-trailer-*` headers, taken out.
fn take_trailers(headers: &mut HeaderMap) -> Option<HeaderMap> {
    let names: Vec<http::HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().starts_with(crate::grpc::TRAILER_HEADER_PREFIX))
        .cloned()
        .collect();
    if names.is_empty() {
        return None;
    }
    let mut trailers = HeaderMap::new();
    for name in names {
        let values: Vec<http::HeaderValue> = headers.get_all(&name).iter().cloned().collect();
        headers.remove(&name);
        let Ok(trailer) = http::HeaderName::from_bytes(
            &name.as_str().as_bytes()[crate::grpc::TRAILER_HEADER_PREFIX.len()..],
        ) else {
            continue;
        };
        for v in values {
            trailers.append(trailer.clone(), v);
        }
    }
    Some(trailers)
}

/// The answer to a gRPC call nothing answers in a strict session: a gRPC error a client
/// reports as `NOT_FOUND`, naming the call, rather than an HTTP status it cannot read.
fn grpc_miss(message: &str, path: &str) -> Response<ProxyBody> {
    let call = path.trim_start_matches('/');
    let text = format!("softprobe strict miss for {call}: {message}");
    let mut resp = Response::new(empty());
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/grpc"),
    );
    headers.insert(
        crate::replay::STRICT_MISS_HEADER,
        http::HeaderValue::from_static("1"),
    );
    headers.insert("grpc-status", http::HeaderValue::from_static("5"));
    let encoded = percent_encoding::utf8_percent_encode(&text, percent_encoding::NON_ALPHANUMERIC)
        .to_string();
    if let Ok(v) = http::HeaderValue::from_str(&encoded) {
        headers.insert("grpc-message", v);
    }
    resp
}

/// Answers a request body the hyper path could not collect: used by both proxies before they
/// build a hop. Over the cap, what is left of an HTTP/1 body (`rest`) is read and dropped
/// first ([`super::http::discard_rest`]), so a client still sending reads the 413 instead of a
/// reset connection; an HTTP/2 stream is reset on its own when its body is dropped.
pub(crate) async fn body_error<B>(
    err: super::http::CollectError,
    limit: usize,
    rest: B,
    version: http::Version,
) -> Response<ProxyBody>
where
    B: hyper::body::Body<Data = Bytes>,
{
    match err {
        super::http::CollectError::TooLarge { .. } => {
            if version < http::Version::HTTP_2 {
                super::http::discard_rest(rest).await;
            }
            super::http::too_large(limit, "the request body")
        }
        super::http::CollectError::Read(e) => json_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("cannot read the request body: {e}"),
        ),
    }
}

/// The trace tags rules match: the tracestate members other than the session ones, the
/// `baggage` entries, and the test name and case id headers.
pub(crate) fn trace_tags(
    state: &super::trace_context::TraceState,
    headers: &HeaderMap,
) -> Vec<(String, String)> {
    let mut tags: Vec<(String, String)> = state
        .foreign_members()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    tags.extend(super::trace_context::parse_baggage(
        headers
            .get_all(&crate::headers::names::BAGGAGE)
            .iter()
            .filter_map(|v| v.to_str().ok()),
    ));
    for (header, tag) in [
        (&crate::headers::names::TEST_NAME, "softprobe.test_name"),
        (&crate::headers::names::CASE_ID, "softprobe.case_id"),
    ] {
        if let Some(v) = headers.get(header).and_then(|v| v.to_str().ok()) {
            tags.push((tag.to_owned(), v.to_owned()));
        }
    }
    tags
}

/// Every `tracestate` header line of a request, parsed as one list.
pub(crate) fn trace_state(headers: &HeaderMap) -> super::trace_context::TraceState {
    super::trace_context::TraceState::parse(
        headers
            .get_all(&crate::headers::names::TRACESTATE)
            .iter()
            .filter_map(|v| v.to_str().ok()),
    )
}

/// The request's valid `traceparent`, when it has exactly one.
pub(crate) fn trace_parent(headers: &HeaderMap) -> Option<super::trace_context::TraceParent> {
    let mut values = headers.get_all(&crate::headers::names::TRACEPARENT).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return None;
    }
    super::trace_context::TraceParent::parse(first.to_str().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn recordings_redact_and_drop_correlation_headers() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("authorization", "Bearer x"),
            ("x-api-key", "k"),
            (
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
            ("tracestate", "sp=sess_a"),
            ("x-softprobe-session-id", "sess_a"),
            ("accept", "*/*"),
        ] {
            h.append(k, HeaderValue::from_static(v));
        }
        let redact = vec!["Authorization".to_owned(), "x-api-key".to_owned()];
        assert_eq!(
            pairs_for_record(&h, &redact),
            vec![
                ("authorization".to_owned(), "[REDACTED]".to_owned()),
                ("x-api-key".to_owned(), "[REDACTED]".to_owned()),
                ("accept".to_owned(), "*/*".to_owned()),
            ]
        );
    }

    #[test]
    fn trace_tags_gather_tracestate_baggage_and_test_headers() {
        let mut h = HeaderMap::new();
        h.append(
            "tracestate",
            HeaderValue::from_static("sp=sess_a,tenant=blue"),
        );
        h.append("baggage", HeaderValue::from_static("user=alice"));
        h.append(
            "x-softprobe-test-name",
            HeaderValue::from_static("checkout"),
        );
        h.append("x-softprobe-case-id", HeaderValue::from_static("case-1"));
        let tags = trace_tags(&trace_state(&h), &h);
        let tags: Vec<(&str, &str)> = tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            tags,
            vec![
                ("tenant", "blue"),
                ("user", "alice"),
                ("softprobe.test_name", "checkout"),
                ("softprobe.case_id", "case-1"),
            ]
        );
    }

    #[test]
    fn two_traceparent_headers_are_no_traceparent() {
        let mut h = HeaderMap::new();
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        h.append("traceparent", HeaderValue::from_static(tp));
        assert!(trace_parent(&h).is_some());
        h.append("traceparent", HeaderValue::from_static(tp));
        assert!(trace_parent(&h).is_none());
    }
}
