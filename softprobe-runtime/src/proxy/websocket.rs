//! WebSocket upgrades through both proxies. A hop that asks for `Upgrade: websocket` is
//! decided like any other; then:
//!
//! - **passed through**: the upgrade goes upstream, the `101` comes back, and the frames are
//!   relayed both ways. A session that keeps hops gets the hop recorded with status 101 and,
//!   as its response body, the message transcript (direction, text or binary, order, time
//!   since the upgrade); without one the bytes are copied untouched;
//! - **replayed**: a decided `101` whose body is a transcript is answered locally: the
//!   handshake is completed here, the recorded server messages are sent in order as the
//!   client's recorded messages arrive, and a client message that differs from the
//!   recording is reported to the session as a miss and ends the socket with close code
//!   1008 and the difference as the reason;
//! - **any other decision** (a rule's answer, a strict miss) is sent as a plain response,
//!   which a WebSocket client reports as a failed handshake.
//!
//! `spec/protocol/case-format.md` ("WebSocket hops") is the contract of the transcript.
//!
//! The relay and the replay (tokio-tungstenite) are the `websocket` feature; the standalone
//! runtime has it, the test harness turns it on with its own `websocket` feature. Without it
//! an upgrade is answered `501 Not Implemented` with the error code `feature_not_built`, naming
//! the feature, so a test that needs it says what to turn on.

use std::sync::Arc;

use http::header::{self, HeaderMap};
use http::{Response, StatusCode};
use hyper::upgrade::OnUpgrade;
use serde::{Deserialize, Serialize};

use super::forward::{Core, Hop};
use super::http::{ProxyBody, json_error};

#[cfg(feature = "websocket")]
use {
    super::backend::BackendError,
    super::forward::{Answer, local_response, recorded_pairs, upstream_name},
    super::http::{empty, remove_hop_by_hop},
    crate::case::{Body, KeyValue},
    crate::replay::{Decision, Request},
    base64::Engine as _,
    bytes::Bytes,
    futures_util::{SinkExt, StreamExt},
    http::Version,
    http::header::HeaderValue,
    http_body_util::{BodyExt, Full},
    hyper::upgrade::Upgraded,
    hyper_util::rt::TokioIo,
    std::sync::Mutex,
    std::time::{Duration, Instant},
    tokio_tungstenite::WebSocketStream,
    tokio_tungstenite::tungstenite::Message,
    tokio_tungstenite::tungstenite::protocol::Role,
    tokio_tungstenite::tungstenite::protocol::frame::CloseFrame,
    tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode,
};

/// Attribute naming the protocol a hop carried when it is not plain HTTP: `websocket`.
pub const PROTOCOL: &str = "sp.protocol";
/// The value of [`PROTOCOL`] for a WebSocket hop.
pub const WEBSOCKET: &str = "websocket";

/// True when a request asks to become a WebSocket (`Upgrade: websocket`, any case).
pub(crate) fn is_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::UPGRADE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case("websocket"))
}

/// One message of a recorded WebSocket conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WsMessage {
    /// `client` (sent by the service's side that opened the socket) or `server`.
    pub from: String,
    /// `text` or `binary`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The text, or base64 of the bytes for a binary message.
    pub data: String,
    /// Milliseconds since the upgrade.
    pub at_ms: u64,
}

/// The response body of a WebSocket hop: the messages in the order they crossed the proxy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transcript {
    /// The messages, in order.
    pub messages: Vec<WsMessage>,
}

#[cfg(feature = "websocket")]
impl WsMessage {
    fn of(from: &str, msg: &Message, at: Duration) -> Option<Self> {
        let (kind, data) = match msg {
            Message::Text(t) => ("text", t.as_str().to_owned()),
            Message::Binary(b) => (
                "binary",
                base64::engine::general_purpose::STANDARD.encode(b),
            ),
            _ => return None,
        };
        Some(WsMessage {
            from: from.to_owned(),
            kind: kind.to_owned(),
            data,
            at_ms: u64::try_from(at.as_millis()).unwrap_or(u64::MAX),
        })
    }

    fn to_message(&self) -> Message {
        if self.kind == "binary" {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(&self.data)
                .unwrap_or_else(|_| self.data.as_bytes().to_vec());
            Message::Binary(bytes.into())
        } else {
            Message::Text(self.data.clone().into())
        }
    }

    /// Whether `other` says the same: equal type and data, JSON texts compared as JSON.
    fn same_as(&self, other: &WsMessage) -> bool {
        if self.kind != other.kind {
            return false;
        }
        if self.data == other.data {
            return true;
        }
        if self.kind == "text"
            && let (Ok(a), Ok(b)) = (
                serde_json::from_str::<serde_json::Value>(&self.data),
                serde_json::from_str::<serde_json::Value>(&other.data),
            )
        {
            return a == b;
        }
        false
    }

    fn describe(&self) -> String {
        format!("{} {:?}", self.kind, self.data)
    }
}

/// Whether this build relays and replays WebSockets (the `websocket` feature).
pub const BUILT: bool = cfg!(feature = "websocket");

/// The message of an upgrade refused by a build without the `websocket` feature.
pub const NOT_BUILT: &str = "WebSocket upgrades need the `websocket` feature: this runtime was \
    built without it (add `features = [\"websocket\"]` to the softprobe dependency, or use \
    the standalone runtime)";

#[cfg(not(feature = "websocket"))]
impl Core {
    /// Answers an upgrade `501 Not Implemented`, naming the `websocket` feature.
    pub(crate) async fn handle_websocket(
        self: &Arc<Self>,
        hop: Hop,
        _client: OnUpgrade,
    ) -> Response<ProxyBody> {
        json_error(
            StatusCode::NOT_IMPLEMENTED,
            "feature_not_built",
            format!("{} {}: {NOT_BUILT}", hop.method, hop.upstream),
        )
    }
}

#[cfg(feature = "websocket")]
impl Core {
    /// Handles a hop that asks for a WebSocket upgrade; `client` completes when the client's
    /// connection has been handed over after the `101`.
    pub(crate) async fn handle_websocket(
        self: &Arc<Self>,
        mut hop: Hop,
        client: OnUpgrade,
    ) -> Response<ProxyBody> {
        if self.is_loop(&hop.headers) {
            return json_error(
                StatusCode::LOOP_DETECTED,
                "loop_detected",
                format!(
                    "{} {}: the request came back to this proxy",
                    hop.method, hop.upstream
                ),
            );
        }
        let Some(session_id) = hop.session_id.as_ref().map(|s| s.as_str().to_owned()) else {
            if self.settings.require_session {
                return super::forward::refuse_without_session(&hop);
            }
            return self.pass_websocket(hop, client, None).await;
        };
        let request =
            hop.decision_request(self.settings.service.as_deref(), self.settings.body_limit);
        match self.backend.inject(&session_id, &request).await {
            Ok(Decision::Respond { response, .. }) if response.status == 101 => {
                let transcript = response
                    .body
                    .as_ref()
                    .and_then(|b| serde_json::from_slice::<Transcript>(b.as_bytes()).ok());
                let Some(transcript) = transcript else {
                    return json_error(
                        StatusCode::BAD_GATEWAY,
                        "invalid_recording",
                        format!(
                            "GET {}: the recorded 101 answer has no WebSocket transcript as its \
                             body; capture the hop again",
                            request.url()
                        ),
                    );
                };
                self.replay_websocket(
                    &hop,
                    &request,
                    &session_id,
                    &response.headers,
                    transcript,
                    client,
                )
            }
            Ok(Decision::Respond { response, .. }) => local_response(&response),
            Ok(Decision::StrictMiss(report)) => local_response(&report.to_response(&session_id)),
            Ok(Decision::Passthrough { .. }) => {
                let keep = !self.backend.count_instead_of_recording(&session_id);
                self.pass_websocket(hop, client, keep.then_some((session_id, request)))
                    .await
            }
            Err(BackendError::UnknownSession { .. }) if self.settings.require_session => {
                json_error(
                    StatusCode::FORBIDDEN,
                    "unknown_session",
                    format!("session {session_id:?} is not open on the runtime"),
                )
            }
            Err(_) => self.pass_websocket(hop, client, None).await,
        }
    }

    /// Sends the upgrade upstream and relays the socket, recording it for `session`.
    async fn pass_websocket(
        self: &Arc<Self>,
        mut hop: Hop,
        client: OnUpgrade,
        session: Option<(String, Request)>,
    ) -> Response<ProxyBody> {
        let mut headers = std::mem::take(&mut hop.headers);
        headers.remove(header::HOST);
        headers.remove(header::CONTENT_LENGTH);
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        if session.is_some() {
            // The relay reads the messages, so no extension may change their framing.
            headers.remove(header::SEC_WEBSOCKET_EXTENSIONS);
        }
        let mut builder = http::Request::builder()
            .method(hop.method.clone())
            .uri(hop.upstream.clone())
            .version(Version::HTTP_11);
        if let Some(h) = builder.headers_mut() {
            *h = headers;
        }
        let Ok(req) = builder.body(Full::new(Bytes::new())) else {
            return json_error(
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                format!("cannot build the upgrade request for {}", hop.upstream),
            );
        };
        let target = upstream_name(&hop.upstream);
        let mut resp =
            match tokio::time::timeout(self.settings.upstream_timeout, self.client.request(req))
                .await
            {
                Err(_) => {
                    return json_error(
                        StatusCode::GATEWAY_TIMEOUT,
                        "upstream_timeout",
                        format!("upstream {target} did not answer the WebSocket upgrade"),
                    );
                }
                Ok(Err(err)) => {
                    return json_error(
                        StatusCode::BAD_GATEWAY,
                        "upstream_unreachable",
                        format!("upstream {target}: {}", super::backend::error_chain(&err)),
                    );
                }
                Ok(Ok(resp)) => resp,
            };
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            // Refused: the answer goes back as it is.
            let (mut parts, body) = resp.into_parts();
            remove_hop_by_hop(&mut parts.headers);
            return Response::from_parts(parts, body.map_err(Into::into).boxed_unsync());
        }
        let upstream = hyper::upgrade::on(&mut resp);
        let mut answer_headers = resp.headers().clone();
        remove_hop_by_hop(&mut answer_headers);
        let recorded_headers = super::http::header_pairs(&answer_headers);
        answer_headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        answer_headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        let core = Arc::clone(self);
        tokio::spawn(async move {
            let (client, upstream) = match tokio::try_join!(client, upstream) {
                Ok(both) => both,
                Err(err) => {
                    tracing::debug!(%err, "WebSocket upgrade did not complete");
                    return;
                }
            };
            match session {
                None => {
                    let _ = tokio::io::copy_bidirectional(
                        &mut TokioIo::new(client),
                        &mut TokioIo::new(upstream),
                    )
                    .await;
                }
                Some((session_id, request)) => {
                    let transcript = relay(client, upstream).await;
                    let answer = Answer {
                        status: 101,
                        headers: recorded_pairs(recorded_headers, &core.settings.redact_headers),
                        body: Some(Body::Text(
                            serde_json::to_string(&transcript).unwrap_or_default(),
                        )),
                        extra: vec![KeyValue::string(PROTOCOL, WEBSOCKET)],
                    };
                    core.record(&hop, request, &session_id, answer);
                }
            }
        });
        let mut reply = Response::new(empty());
        *reply.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        *reply.headers_mut() = answer_headers;
        reply
    }

    /// Completes the handshake locally and plays `transcript` to the client.
    fn replay_websocket(
        self: &Arc<Self>,
        hop: &Hop,
        request: &Request,
        session_id: &str,
        recorded_headers: &[(String, String)],
        transcript: Transcript,
        client: OnUpgrade,
    ) -> Response<ProxyBody> {
        let Some(key) = hop.headers.get(header::SEC_WEBSOCKET_KEY) else {
            return json_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "a WebSocket upgrade needs a Sec-WebSocket-Key header",
            );
        };
        let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
        let mut reply = Response::new(empty());
        *reply.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = reply.headers_mut();
        for (name, value) in recorded_headers {
            if name.eq_ignore_ascii_case("sec-websocket-protocol")
                && let Ok(v) = HeaderValue::from_str(value)
            {
                headers.insert(header::SEC_WEBSOCKET_PROTOCOL, v);
            }
        }
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        if let Ok(v) = HeaderValue::from_str(&accept) {
            headers.insert(header::SEC_WEBSOCKET_ACCEPT, v);
        }
        let core = Arc::clone(self);
        let session_id = session_id.to_owned();
        let what = format!("{} {}", request.method, request.url());
        let idle = self.settings.upstream_timeout;
        tokio::spawn(async move {
            let Ok(client) = client.await else {
                return;
            };
            if let Err(drift) = play(client, transcript, idle).await {
                let message = format!("WebSocket {what}: {drift}");
                tracing::info!(session_id, "{message}");
                core.backend.report_miss(
                    &session_id,
                    serde_json::json!({
                        "error": {"code": "websocket_drift", "message": message},
                        "sessionId": session_id,
                        "request": {"method": "GET", "url": what.split_once(' ').map_or("", |(_, u)| u)},
                        "candidates": [],
                    }),
                );
            }
        });
        reply
    }
}

#[cfg(feature = "websocket")]
/// Relays messages both ways until both directions are closed; returns what crossed.
async fn relay(client: Upgraded, upstream: Upgraded) -> Transcript {
    let client = WebSocketStream::from_raw_socket(TokioIo::new(client), Role::Server, None).await;
    let upstream =
        WebSocketStream::from_raw_socket(TokioIo::new(upstream), Role::Client, None).await;
    let (mut client_tx, mut client_rx) = client.split();
    let (mut upstream_tx, mut upstream_rx) = upstream.split();
    let started = Instant::now();
    let log = Mutex::new(Vec::new());
    let pump = |from: &'static str| {
        let log = &log;
        move |msg: &Message| {
            if let Some(m) = WsMessage::of(from, msg, started.elapsed()) {
                log.lock().unwrap_or_else(|p| p.into_inner()).push(m);
            }
        }
    };
    let note_client = pump("client");
    let note_server = pump("server");
    let to_upstream = async {
        while let Some(Ok(msg)) = client_rx.next().await {
            if matches!(msg, Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) {
                continue;
            }
            note_client(&msg);
            let close = msg.is_close();
            if upstream_tx.send(msg).await.is_err() || close {
                break;
            }
        }
        let _ = upstream_tx.close().await;
    };
    let to_client = async {
        while let Some(Ok(msg)) = upstream_rx.next().await {
            if matches!(msg, Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) {
                continue;
            }
            note_server(&msg);
            let close = msg.is_close();
            if client_tx.send(msg).await.is_err() || close {
                break;
            }
        }
        let _ = client_tx.close().await;
    };
    tokio::join!(to_upstream, to_client);
    Transcript {
        messages: log.into_inner().unwrap_or_else(|p| p.into_inner()),
    }
}

#[cfg(feature = "websocket")]
/// Plays a transcript to a client: server messages are sent, client messages awaited and
/// compared. The first difference ends the socket (close code 1008, the difference as the
/// reason) and is returned.
async fn play(client: Upgraded, transcript: Transcript, idle: Duration) -> Result<(), String> {
    let mut ws = WebSocketStream::from_raw_socket(TokioIo::new(client), Role::Server, None).await;
    let started = Instant::now();
    let mut expected_index = 0usize;
    for recorded in &transcript.messages {
        if recorded.from == "server" {
            if ws.send(recorded.to_message()).await.is_err() {
                return Ok(());
            }
            continue;
        }
        expected_index += 1;
        let actual = loop {
            match tokio::time::timeout(idle, ws.next()).await {
                Err(_) => {
                    let why = format!(
                        "client message {expected_index} ({}) did not arrive within {idle:?}",
                        recorded.describe()
                    );
                    return Err(close_with(&mut ws, CloseCode::Policy, why).await);
                }
                Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => {
                    return Err(format!(
                        "the client closed the socket before sending recorded message \
                         {expected_index} ({})",
                        recorded.describe()
                    ));
                }
                Ok(Some(Ok(msg))) => {
                    if let Some(m) = WsMessage::of("client", &msg, started.elapsed()) {
                        break m;
                    }
                }
            }
        };
        if !recorded.same_as(&actual) {
            let why = format!(
                "client message {expected_index} differs from the recording: expected {}, got {}",
                recorded.describe(),
                actual.describe()
            );
            return Err(close_with(&mut ws, CloseCode::Policy, why).await);
        }
    }
    // The recording is played out: wait for the client to close, refusing anything new.
    loop {
        match tokio::time::timeout(idle, ws.next()).await {
            Err(_) | Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => {
                let _ = ws.close(None).await;
                return Ok(());
            }
            Ok(Some(Ok(msg))) => {
                if let Some(m) = WsMessage::of("client", &msg, started.elapsed()) {
                    let why = format!(
                        "client message {} is not in the recording: {}",
                        expected_index + 1,
                        m.describe()
                    );
                    return Err(close_with(&mut ws, CloseCode::Policy, why).await);
                }
            }
        }
    }
}

#[cfg(feature = "websocket")]
/// Closes with `code` and `why` as the reason (cut to the 123 bytes a close frame allows);
/// returns `why` whole.
async fn close_with(
    ws: &mut WebSocketStream<TokioIo<Upgraded>>,
    code: CloseCode,
    why: String,
) -> String {
    let mut reason = why.clone();
    if reason.len() > 123 {
        let mut cut = 120;
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason.truncate(cut);
        reason.push_str("...");
    }
    let _ = ws
        .close(Some(CloseFrame {
            code,
            reason: reason.into(),
        }))
        .await;
    why
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::HeaderValue;

    #[cfg(feature = "websocket")]
    fn text(from: &str, data: &str) -> WsMessage {
        WsMessage {
            from: from.into(),
            kind: "text".into(),
            data: data.into(),
            at_ms: 0,
        }
    }

    #[test]
    #[cfg(feature = "websocket")]
    fn messages_compare_json_as_json_and_types_strictly() {
        assert!(text("client", r#"{"a":1,"b":2}"#).same_as(&text("client", r#"{"b":2, "a":1}"#)));
        assert!(!text("client", r#"{"a":1}"#).same_as(&text("client", r#"{"a":2}"#)));
        let mut bin = text("client", "aGk=");
        bin.kind = "binary".into();
        assert!(!bin.same_as(&text("client", "aGk=")));
    }

    #[test]
    fn upgrade_is_read_from_any_spelling() {
        let mut h = HeaderMap::new();
        h.insert(header::UPGRADE, HeaderValue::from_static("WebSocket"));
        assert!(is_upgrade(&h));
        h.insert(header::UPGRADE, HeaderValue::from_static("h2c"));
        assert!(!is_upgrade(&h));
    }
}
