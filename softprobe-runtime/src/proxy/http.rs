//! HTTP plumbing shared by both proxies: hop-by-hop header removal (RFC 9110 §7.6.1), body
//! buffering with a cap, the JSON error answers, and the body that records a streamed
//! response while passing it on.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};

/// Boxed error of the proxy's bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body type of every response the proxies write.
pub type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

/// Default cap on a body the proxy buffers (request bodies always, response bodies for
/// recording): 16 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 16 * 1024 * 1024;

pub use crate::headers::{CASE_ID_HEADER, MODE_HEADER, SESSION_HEADERS, TEST_NAME_HEADER};

/// Removes the hop-by-hop headers: those listed in `Connection`, and the fixed set
/// ([`crate::headers::HOP_BY_HOP`] and every `proxy-*`).
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    remove_where(headers, crate::headers::is_hop_by_hop);
}

/// Removes every spelling of the session header.
pub fn remove_session_headers(headers: &mut HeaderMap) {
    for name in &crate::headers::names::SESSION {
        headers.remove(name);
    }
}

/// [`remove_hop_by_hop`] and [`remove_session_headers`] in one scan of the names: what the
/// egress takes off an outbound request before it leaves.
pub fn remove_hop_by_hop_and_session(headers: &mut HeaderMap) {
    remove_where(headers, |name| {
        crate::headers::is_hop_by_hop(name) || crate::headers::is_session(name)
    });
}

/// Removes the names `Connection` lists, then every name `drop` selects. `HeaderMap` has no
/// `retain`: each match is removed and the scan starts again, which for a head's few names
/// costs less than collecting them (a list allocates on every hop, as the credentials of a
/// proxied request are always there to remove).
fn remove_where(headers: &mut HeaderMap, drop: impl Fn(&str) -> bool) {
    // Clients rarely send `Connection` with names in it; those may take a list.
    if headers.contains_key(header::CONNECTION) {
        let listed: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
            .collect();
        for name in listed {
            headers.remove(name);
        }
    }
    while let Some(name) = headers.keys().find(|k| drop(k.as_str())).cloned() {
        headers.remove(name);
    }
}

/// The session id named by one of the session headers.
pub fn session_from_headers(headers: &HeaderMap) -> Option<String> {
    session_text(headers).map(|id| id.as_str().to_owned())
}

/// [`session_from_headers`] without a copy when the header's value needs no trimming.
pub(crate) fn session_text(headers: &HeaderMap) -> Option<HopText> {
    crate::headers::names::SESSION
        .iter()
        .find_map(|name| headers.get(name).and_then(HopText::trimmed))
}

/// Text of a hop (its host, its session id) as the request's header carried it when it
/// needs no change: the header value's bytes are shared, not copied per request.
#[derive(Debug, Clone)]
pub(crate) enum HopText {
    /// A header value used as it is (checked to be text when taken).
    Header(http::HeaderValue),
    /// Text that had to change, or came from elsewhere.
    Owned(String),
}

impl HopText {
    /// The host of a `Host` header value for `scheme`, lowercase and without the scheme's
    /// default port; `None` when the value is not text.
    pub(crate) fn host(value: &http::HeaderValue, scheme: &str) -> Option<Self> {
        let text = value.to_str().ok()?;
        let normalized = crate::request::host::without_default_port_if_needed(text, scheme);
        Some(match normalized {
            None => HopText::Header(value.clone()),
            Some(host) => HopText::Owned(host),
        })
    }

    /// A header value without surrounding spaces; `None` when it is not text or empty.
    pub(crate) fn trimmed(value: &http::HeaderValue) -> Option<Self> {
        let text = value.to_str().ok()?;
        let trimmed = text.trim();
        if trimmed.is_empty() {
            None
        } else if trimmed.len() == text.len() {
            Some(HopText::Header(value.clone()))
        } else {
            Some(HopText::Owned(trimmed.to_owned()))
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        match self {
            // Checked when taken.
            HopText::Header(v) => v.to_str().unwrap_or_default(),
            HopText::Owned(s) => s,
        }
    }
}

impl std::fmt::Display for HopText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

pub use crate::headers::pairs as header_pairs;

/// Builds a header map from pairs, skipping any pair that is not a valid header.
pub fn header_map(pairs: &[(String, String)]) -> HeaderMap {
    let mut map = HeaderMap::with_capacity(pairs.len());
    for (k, v) in pairs {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            map.append(name, value);
        }
    }
    map
}

/// A body that is fully known.
pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An empty body.
pub fn empty() -> ProxyBody {
    full(Bytes::new())
}

/// A JSON error answer: `{"error": {"code", "message"}}`.
pub fn json_error(
    status: StatusCode,
    code: &str,
    message: impl Into<String>,
) -> Response<ProxyBody> {
    let body = serde_json::json!({"error": {"code": code, "message": message.into()}});
    json_response(status, &body)
}

/// A JSON answer.
pub fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<ProxyBody> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut resp = Response::new(full(bytes));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// Why a body could not be buffered.
#[derive(Debug)]
pub enum CollectError {
    /// The body is longer than the cap.
    TooLarge {
        /// The cap, in bytes.
        limit: usize,
    },
    /// Reading failed (the peer went away, a protocol error).
    Read(BoxError),
}

/// Reads a whole body, failing as soon as it exceeds `limit` bytes (and before reading at
/// all when its declared length already does).
pub async fn collect_limited<B>(body: B, limit: usize) -> Result<Bytes, CollectError>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    if body.size_hint().lower() > limit as u64 {
        return Err(CollectError::TooLarge { limit });
    }
    // Most requests (GET, HEAD) have no body: nothing to read or allocate.
    if body.is_end_stream() {
        return Ok(Bytes::new());
    }
    let mut body = std::pin::pin!(body);
    let mut buf = Collected::default();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| CollectError::Read(e.into()))?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Err(CollectError::TooLarge { limit });
            }
            buf.push(data);
        }
    }
    Ok(buf.freeze())
}

/// How much of a refused body is read and dropped at most after its `413` is decided, by
/// [`discard_rest`] and by the proxies' own HTTP/1 exchange before it closes such a
/// connection: a client still sending when the connection closes has it reset under it, and
/// the kernel then discards the answer it already received.
pub(crate) const LINGER_BYTES: u64 = 64 << 20;
/// How long a refused body is read and dropped at most (see [`LINGER_BYTES`]).
pub(crate) const LINGER_TIME: std::time::Duration = std::time::Duration::from_secs(2);

/// Reads and drops what is left of a body that was refused (413) before its answer is sent,
/// within [`LINGER_BYTES`] and [`LINGER_TIME`], so the client reads the answer instead of a
/// broken connection. Past either bound the connection is closed as before.
pub(crate) async fn discard_rest<B>(body: B)
where
    B: HttpBody<Data = Bytes>,
{
    let drain = async {
        let mut body = std::pin::pin!(body);
        let mut read = 0u64;
        while read < LINGER_BYTES {
            match body.frame().await {
                Some(Ok(frame)) => {
                    read += frame.data_ref().map_or(0, |d| d.len() as u64);
                }
                _ => break,
            }
        }
    };
    let _ = crate::listener::coarse_timeout(LINGER_TIME, drain).await;
}

/// Bytes gathered from a body's frames. A body of one frame (the usual case for small
/// bodies) is kept as that frame's `Bytes`, so it is never copied; more frames are joined.
#[derive(Debug, Default)]
enum Collected {
    #[default]
    Empty,
    One(Bytes),
    Many(BytesMut),
}

impl Collected {
    fn len(&self) -> usize {
        match self {
            Collected::Empty => 0,
            Collected::One(b) => b.len(),
            Collected::Many(b) => b.len(),
        }
    }

    fn push(&mut self, data: Bytes) {
        if data.is_empty() {
            return;
        }
        *self = match std::mem::take(self) {
            Collected::Empty => Collected::One(data),
            Collected::One(first) => {
                let mut joined = BytesMut::with_capacity(first.len() + data.len());
                joined.extend_from_slice(&first);
                joined.extend_from_slice(&data);
                Collected::Many(joined)
            }
            Collected::Many(mut joined) => {
                joined.extend_from_slice(&data);
                Collected::Many(joined)
            }
        };
    }

    fn freeze(self) -> Bytes {
        match self {
            Collected::Empty => Bytes::new(),
            Collected::One(b) => b,
            Collected::Many(b) => b.freeze(),
        }
    }
}

/// The 413 answer for a body over the cap.
pub fn too_large(limit: usize, what: &str) -> Response<ProxyBody> {
    json_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("{what} is larger than the proxy's limit of {limit} bytes"),
    )
}

/// What a [`RecordingBody`] saw once the stream ended (or was abandoned).
#[derive(Debug)]
pub struct Recorded {
    /// The bytes, when they fit under the cap.
    pub body: Option<Bytes>,
    /// True when the body exceeded the cap (and so `body` is `None`).
    pub truncated: bool,
    /// True when the stream ended normally.
    pub complete: bool,
    /// The trailers, when the stream ended with some (gRPC's `grpc-status`), as lowercase
    /// pairs.
    pub trailers: Vec<(String, String)>,
    /// Each data frame as it arrived: the body length once it was in, and when, counted
    /// from the response head (empty when the body was truncated).
    pub chunks: Vec<(usize, std::time::Duration)>,
}

type OnDone = Box<dyn FnOnce(Recorded) + Send>;

/// A body that passes frames through untouched while keeping a copy (up to a cap) and hands
/// the copy to a callback when the stream ends or the body is dropped.
///
/// The copy is complete when the inner body says it has reached its end: after its last
/// frame (a sized body whose bytes have all arrived reports so at once, and hyper then drops
/// it without polling again), on `None`, or at drop when nothing was left to read. It is
/// incomplete when the inner body fails (an upstream reset, fewer bytes than its
/// content-length) or is dropped before its end (the client went away).
pub struct RecordingBody<B> {
    inner: B,
    buf: Collected,
    limit: usize,
    truncated: bool,
    /// The inner body said it has no more frames (checked after each frame).
    ended: bool,
    on_done: Option<OnDone>,
    started: std::time::Instant,
    chunks: Vec<(usize, std::time::Duration)>,
    trailers: Vec<(String, String)>,
}

impl<B: HttpBody> RecordingBody<B> {
    /// Wraps `inner`; `on_done` runs exactly once.
    pub fn new(inner: B, limit: usize, on_done: impl FnOnce(Recorded) + Send + 'static) -> Self {
        RecordingBody {
            ended: inner.is_end_stream(),
            inner,
            buf: Collected::default(),
            limit,
            truncated: false,
            on_done: Some(Box::new(on_done)),
            started: std::time::Instant::now(),
            chunks: Vec::new(),
            trailers: Vec::new(),
        }
    }
}

impl<B> RecordingBody<B> {
    fn finish(&mut self, complete: bool) {
        if let Some(done) = self.on_done.take() {
            let body = (!self.truncated).then(|| std::mem::take(&mut self.buf).freeze());
            done(Recorded {
                body,
                truncated: self.truncated,
                complete,
                chunks: std::mem::take(&mut self.chunks),
                trailers: std::mem::take(&mut self.trailers),
            });
        }
    }
}

impl<B> Drop for RecordingBody<B> {
    fn drop(&mut self) {
        self.finish(self.ended);
    }
}

impl<B> HttpBody for RecordingBody<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                this.finish(true);
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                this.finish(false);
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    this.trailers = header_pairs(trailers);
                }
                if let Some(data) = frame.data_ref()
                    && !this.truncated
                {
                    if this.buf.len() + data.len() > this.limit {
                        this.truncated = true;
                        this.buf = Collected::default();
                        this.chunks = Vec::new();
                    } else {
                        if !data.is_empty() {
                            this.chunks
                                .push((this.buf.len() + data.len(), this.started.elapsed()));
                        }
                        // A clone of `Bytes` shares the frame, it does not copy it.
                        this.buf.push(data.clone());
                    }
                }
                if this.inner.is_end_stream() {
                    this.ended = true;
                    this.finish(true);
                }
                Poll::Ready(Some(Ok(frame)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_the_ones_connection_lists_are_removed() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("connection", "keep-alive, x-private"),
            ("keep-alive", "timeout=5"),
            ("x-private", "1"),
            ("te", "trailers"),
            ("trailer", "x-sum"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("proxy-authorization", "Basic eA=="),
            ("proxy-connection", "keep-alive"),
            ("proxy-foo", "1"),
            ("content-type", "text/plain"),
            ("x-kept", "yes"),
        ] {
            h.append(k, HeaderValue::from_static(v));
        }
        remove_hop_by_hop(&mut h);
        let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, vec!["content-type", "x-kept"]);
    }

    #[test]
    fn hop_by_hop_and_session_headers_go_in_one_scan_and_the_rest_stays() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("connection", "keep-alive, x-private"),
            ("keep-alive", "timeout=5"),
            ("x-private", "1"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("proxy-authorization", "Basic eA=="),
            ("proxy-connection", "keep-alive"),
            ("x-softprobe-session-id", "sess_a"),
            ("x-sp-session-id", "sess_b"),
            ("sp_session_id", "sess_c"),
            ("x-session-id", "sess_d"),
            ("accept", "application/json"),
            ("x-kept", "one"),
            ("x-kept", "two"),
        ] {
            h.append(k, HeaderValue::from_static(v));
        }
        remove_hop_by_hop_and_session(&mut h);
        let mut left: Vec<(&str, &str)> = h
            .iter()
            .map(|(k, v)| (k.as_str(), v.to_str().unwrap()))
            .collect();
        left.sort_unstable();
        assert_eq!(
            left,
            vec![
                ("accept", "application/json"),
                ("x-kept", "one"),
                ("x-kept", "two")
            ]
        );
    }

    #[test]
    fn session_header_aliases_are_read_in_order_and_all_removed() {
        let mut h = HeaderMap::new();
        h.insert("x-session-id", HeaderValue::from_static("sess_alias"));
        assert_eq!(session_from_headers(&h).as_deref(), Some("sess_alias"));
        h.insert(
            "x-softprobe-session-id",
            HeaderValue::from_static("sess_main"),
        );
        h.insert("sp_session_id", HeaderValue::from_static("sess_other"));
        assert_eq!(session_from_headers(&h).as_deref(), Some("sess_main"));
        remove_session_headers(&mut h);
        assert!(h.is_empty());
        assert_eq!(session_from_headers(&h), None);
    }

    #[tokio::test]
    async fn collect_limited_stops_at_the_cap() {
        let ok = collect_limited(Full::new(Bytes::from_static(b"12345")), 5)
            .await
            .unwrap();
        assert_eq!(&ok[..], b"12345");
        let err = collect_limited(Full::new(Bytes::from_static(b"123456")), 5)
            .await
            .unwrap_err();
        assert!(matches!(err, CollectError::TooLarge { limit: 5 }));
    }

    /// A body of the given data frames, served one per poll.
    struct Frames(std::collections::VecDeque<Bytes>);

    impl Frames {
        fn new(parts: &[&'static str]) -> Self {
            Frames(
                parts
                    .iter()
                    .map(|p| Bytes::from_static(p.as_bytes()))
                    .collect(),
            )
        }
    }

    impl HttpBody for Frames {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Poll::Ready(self.get_mut().0.pop_front().map(|b| Ok(Frame::data(b))))
        }
    }

    #[tokio::test]
    async fn collect_limited_joins_frames_and_reads_empty_bodies() {
        let parts = ["ab", "", "cde", "f"];
        let whole = collect_limited(Frames::new(&parts), 6).await.unwrap();
        assert_eq!(&whole[..], b"abcdef");
        assert!(matches!(
            collect_limited(Frames::new(&parts), 5).await,
            Err(CollectError::TooLarge { limit: 5 })
        ));
        let one = collect_limited(Frames::new(&["only"]), 4).await.unwrap();
        assert_eq!(&one[..], b"only");
        let empty = collect_limited(http_body_util::Empty::<Bytes>::new(), 0)
            .await
            .unwrap();
        assert!(empty.is_empty());
    }

    #[tokio::test]
    async fn recording_body_keeps_every_frame_of_a_streamed_answer() {
        let (tx, rx) = std::sync::mpsc::channel();
        let body = RecordingBody::new(Frames::new(&["he", "l", "lo"]), 10, move |r| {
            tx.send(r).unwrap();
        });
        let out = body.collect().await.unwrap().to_bytes();
        assert_eq!(&out[..], b"hello");
        let rec = rx.recv().unwrap();
        assert!(rec.complete && !rec.truncated);
        assert_eq!(rec.body.as_deref(), Some(&b"hello"[..]));
    }

    #[tokio::test]
    async fn recording_body_passes_bytes_through_and_reports_them() {
        let (tx, rx) = std::sync::mpsc::channel();
        let body = RecordingBody::new(Full::new(Bytes::from_static(b"hello")), 10, move |r| {
            tx.send(r).unwrap();
        });
        let out = body.collect().await.unwrap().to_bytes();
        assert_eq!(&out[..], b"hello");
        let rec = rx.recv().unwrap();
        assert!(rec.complete && !rec.truncated);
        assert_eq!(rec.body.as_deref(), Some(&b"hello"[..]));

        let (tx, rx) = std::sync::mpsc::channel();
        let body = RecordingBody::new(Full::new(Bytes::from_static(b"hello")), 3, move |r| {
            tx.send(r).unwrap();
        });
        let out = body.collect().await.unwrap().to_bytes();
        assert_eq!(&out[..], b"hello", "the client still gets every byte");
        let rec = rx.recv().unwrap();
        assert!(rec.truncated && rec.body.is_none());
    }

    #[tokio::test]
    async fn a_sized_body_dropped_after_its_last_frame_is_complete() {
        let (tx, rx) = std::sync::mpsc::channel();
        let mut body = RecordingBody::new(Full::new(Bytes::from_static(b"hello")), 10, move |r| {
            tx.send(r).unwrap();
        });
        // What hyper does: one frame, then `is_end_stream` says done, then drop.
        let frame = body.frame().await.unwrap().unwrap();
        assert_eq!(frame.data_ref().map(|b| &b[..]), Some(&b"hello"[..]));
        assert!(body.is_end_stream());
        drop(body);
        let rec = rx.recv().unwrap();
        assert!(rec.complete, "every byte arrived");
        assert_eq!(rec.body.as_deref(), Some(&b"hello"[..]));

        let (tx, rx) = std::sync::mpsc::channel();
        let body = RecordingBody::new(http_body_util::Empty::<Bytes>::new(), 10, move |r| {
            tx.send(r).unwrap();
        });
        drop(body);
        assert!(
            rx.recv().unwrap().complete,
            "an empty body is never cut short"
        );
    }

    #[tokio::test]
    async fn a_body_dropped_before_its_end_is_incomplete() {
        let (tx, rx) = std::sync::mpsc::channel();
        let mut body = RecordingBody::new(Frames::new(&["he", "llo"]), 10, move |r| {
            tx.send(r).unwrap();
        });
        let _first = body.frame().await.unwrap().unwrap();
        drop(body);
        let rec = rx.recv().unwrap();
        assert!(!rec.complete, "the reader went away after the first frame");
    }
}
