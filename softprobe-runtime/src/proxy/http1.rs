//! The proxies' own HTTP/1.1 exchange: one client connection and the one upstream
//! connection it uses, served by the same task, without hyper's dispatcher or the pooled
//! client. The ingress serves its plain-HTTP application's requests with it, the egress its
//! proxy requests (absolute-form, [`Exchange::ABSOLUTE_FORM`]) and origin-form requests
//! outside `CONNECT` tunnels, answered locally or forwarded.
//!
//! [`serve`] reads each request head in place from the connection's read buffer
//! (`httparse`), reads the body (by `Content-Length` or chunked, answering
//! `100 Continue` first when asked), lets an [`Exchange`] answer it and writes the answer
//! back, the head and a body that is already complete in one write. The exchange forwards
//! through an [`Upstream`]: one keep-alive connection to the application, taken by the
//! answer's body while it streams and given back when the body is complete.
//!
//! What it does not serve it hands back untouched, before reading a byte of the request it
//! does not take: anything that is not an HTTP/1.1 request head (an HTTP/2 preface, TLS, a
//! malformed or oversized head), HTTP/1.0, `CONNECT` and upgrade requests (WebSocket, h2c),
//! absolute-form requests unless the exchange serves them.
//! The listener serves those with hyper, as it serves every other listener. Requests whose
//! body framing is ambiguous (`Content-Length` and `Transfer-Encoding` together, differing
//! lengths, a transfer coding other than a final `chunked`) are refused with `400`.
//!
//! Why it exists, measured (BENCHMARKS.md rows 4 and 4b): a bare hyper reverse proxy
//! reached 0.84-0.97× nginx's throughput on the bench machine and the ingress on hyper
//! 0.74-0.77×, with hyper-util's pooled client's `send_request` and pool at 9 % of the
//! proxy's CPU; an `httparse` proxy with one upstream connection per client connection
//! reached 1.08-1.41× nginx at 0.81-0.88× its CPU per request.

use std::future::Future;
use std::io::{self, Write as _};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::http::{BoxError, ProxyBody, json_error, too_large};
use crate::listener::{Handoff, OwnHttp1, Stopping};

/// The most headers a request or response head may have here; a head with more is handed
/// to hyper (requests) or refused (answers).
const MAX_HEADERS: usize = 100;
/// The largest head read here; a larger request head is handed to hyper, which answers
/// `431` beyond its own limit.
const MAX_HEAD: usize = 64 * 1024;
/// Bytes asked of the socket per read.
const READ_SIZE: usize = 16 * 1024;
/// A body over the limit whose declared length is at most this is read and dropped after
/// the `413`, so the connection stays usable and the client reads its answer; a larger one
/// closes the connection.
const DISCARD_LIMIT: u64 = 1024 * 1024;

/// What answers the requests of an HTTP/1 connection.
pub(crate) trait Exchange: Send + Sync + 'static {
    /// Whether absolute-form requests (`GET http://host/path HTTP/1.1`, a forward proxy's)
    /// are served here; otherwise they go to hyper with the other requests not served here.
    const ABSOLUTE_FORM: bool = false;

    /// An answer given before the request's body is read (a refusal: credentials missing),
    /// or `None` to read the body and ask [`Exchange::answer`]. After such an answer the
    /// connection serves another request only if the request had no body.
    fn admit(&self, _parts: &http::request::Parts) -> Option<Response<ProxyBody>> {
        None
    }

    /// The answer to one request, whose body has been read whole. Forwarding goes through
    /// `upstream`, the connection's own.
    fn answer<'a>(
        &'a self,
        request: Request<Bytes>,
        upstream: &'a Upstream,
    ) -> impl Future<Output = Response<ProxyBody>> + Send + 'a;
}

/// The limits of a served connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// The largest request body read; `413` above it.
    pub(crate) body: usize,
    /// The time a client gets to send a request head once its first byte arrived.
    pub(crate) header_read: Duration,
    /// The time allowed to open the upstream connection.
    pub(crate) connect: Duration,
}

/// The listener hook that serves plain HTTP/1.1 connections with `exchange` (see
/// [`crate::listener::OwnHttp1`]).
pub(crate) fn own_connections<E: Exchange>(exchange: Arc<E>, limits: Limits) -> OwnHttp1 {
    Arc::new(move |stream: TcpStream, stopping: Stopping| {
        let serving: Pin<Box<dyn Future<Output = Option<Handoff>> + Send>> =
            Box::pin(serve(stream, exchange.clone(), limits, stopping));
        serving
    })
}

/// Serves HTTP/1.1 requests on `stream` until the client closes, asks to close, or sends
/// something this module does not serve; that last case returns the connection (with what
/// was read of it) for hyper.
pub(crate) async fn serve<E: Exchange>(
    stream: TcpStream,
    exchange: Arc<E>,
    limits: Limits,
    stopping: Stopping,
) -> Option<Handoff> {
    let mut conn = Conn {
        stream,
        buf: BytesMut::with_capacity(READ_SIZE),
        map: HeaderMap::new(),
    };
    let upstream = Upstream::new(limits.connect);
    let mut out = Vec::with_capacity(1024);
    loop {
        let head = match conn
            .read_head(limits.header_read, &stopping, E::ABSOLUTE_FORM)
            .await
        {
            Ok(Next::Request(head)) => head,
            Ok(Next::Handoff) => {
                return Some(Handoff {
                    stream: conn.stream,
                    read: conn.buf.freeze(),
                });
            }
            Ok(Next::Refused(why)) => {
                let answer = json_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    format!("the request's body framing is ambiguous: {why}"),
                );
                // Never kept: where the next request would start is unknown.
                let _ = conn.refuse(&mut out, answer, false, false).await;
                return None;
            }
            Ok(Next::Closed) | Err(_) => return None,
        };
        let RequestHead {
            parts,
            framing,
            expect_continue,
            close,
        } = head;
        let head_only = parts.method == Method::HEAD;
        if let Some(answer) = exchange.admit(&parts) {
            // The body is not read: the connection goes on only if there is none.
            let keep = framing == Framing::Length(0) && !close && !stopping.is_set();
            conn = conn.refuse(&mut out, answer, head_only, keep).await?;
            continue;
        }
        let body = match conn.read_body(framing, expect_continue, limits.body).await {
            Ok(body) => body,
            Err(BodyError::Refused(answer, keep)) => {
                conn = conn.refuse(&mut out, answer, false, keep).await?;
                continue;
            }
            Err(BodyError::Io) => return None,
        };
        let answer = exchange
            .answer(Request::from_parts(parts, body), &upstream)
            .await;
        let close = close || stopping.is_set();
        out.clear();
        let written = write_response(
            &mut conn.stream,
            &mut out,
            &mut conn.map,
            answer,
            head_only,
            close,
        );
        match written.await {
            Ok(true) if !close => {}
            _ => return None,
        }
    }
}

/// Closes a connection whose client may still be sending (a refused body): the write side
/// first, then what still arrives is read and dropped for a moment, so the client reads
/// the answer before the close instead of a reset that could discard it.
async fn linger(mut stream: TcpStream) {
    let _ = stream.shutdown().await;
    let drain = async {
        let mut sink = vec![0u8; READ_SIZE];
        let mut left = super::http::LINGER_BYTES;
        while left > 0 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n as u64),
            }
        }
    };
    let _ = crate::listener::coarse_timeout(super::http::LINGER_TIME, drain).await;
}

/// A client connection and the bytes read from it that are not yet used.
struct Conn {
    stream: TcpStream,
    buf: BytesMut,
    /// The header map of the last answer, cleared, for the next request's headers: on a
    /// kept-alive connection one map goes round (request, upstream answer, next request)
    /// instead of two being allocated per request.
    map: HeaderMap,
}

// A head is built once per request and matched at once; boxing it would cost an
// allocation per request for nothing.
#[allow(clippy::large_enum_variant)]
enum Next {
    Request(RequestHead),
    /// The body framing is ambiguous: answered `400`, and the connection closes (where the
    /// next request would start is unknown).
    Refused(&'static str),
    Handoff,
    Closed,
}

/// A request head as this module serves it.
struct RequestHead {
    parts: http::request::Parts,
    framing: Framing,
    expect_continue: bool,
    /// The client asked to close after this request.
    close: bool,
}

/// How a message's body is delimited (RFC 9112 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked,
    /// Until the peer closes (answers only).
    Close,
}

enum BodyError {
    /// An answer instead of the request's (`413`, `400`), and whether the connection can
    /// serve another request after it.
    Refused(Response<ProxyBody>, bool),
    Io,
}

impl Conn {
    /// Writes an answer given instead of reading on (a refused admission or body, an
    /// ambiguous framing): the connection back when it serves on (`keep`); otherwise its
    /// write side closed after a linger ([`linger`]), and `None`.
    async fn refuse(
        mut self,
        out: &mut Vec<u8>,
        answer: Response<ProxyBody>,
        head_only: bool,
        keep: bool,
    ) -> Option<Self> {
        out.clear();
        let written = write_response(
            &mut self.stream,
            out,
            &mut self.map,
            answer,
            head_only,
            !keep,
        );
        match written.await {
            Ok(_) if keep => Some(self),
            Ok(_) => {
                linger(self.stream).await;
                None
            }
            Err(_) => None,
        }
    }

    async fn fill(&mut self) -> io::Result<usize> {
        self.buf.reserve(READ_SIZE);
        self.stream.read_buf(&mut self.buf).await
    }

    /// Reads the next request head: waits for its first byte as long as the client likes
    /// (until the listener stops), then `header_read` for the rest.
    async fn read_head(
        &mut self,
        header_read: Duration,
        stopping: &Stopping,
        absolute_form: bool,
    ) -> io::Result<Next> {
        if self.buf.is_empty() {
            let readable = std::future::poll_fn(|cx| {
                if stopping.is_set() {
                    return Poll::Ready(false);
                }
                self.stream.poll_read_ready(cx).map(|_| true)
            });
            if !readable.await || self.fill().await? == 0 {
                return Ok(Next::Closed);
            }
        }
        // Taken when the head turns out to need more than one read: most arrive whole.
        let mut deadline = None;
        loop {
            match parse_request(&mut self.buf, absolute_form, &mut self.map) {
                Parsed::Complete(head) => return Ok(Next::Request(head)),
                Parsed::Other => return Ok(Next::Handoff),
                Parsed::Refused(why) => return Ok(Next::Refused(why)),
                Parsed::Partial if self.buf.len() > MAX_HEAD => return Ok(Next::Handoff),
                Parsed::Partial => {}
            }
            let deadline = *deadline.get_or_insert_with(|| std::time::Instant::now() + header_read);
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match crate::listener::coarse_timeout(left, self.fill()).await {
                Some(Ok(0)) | None => return Ok(Next::Closed),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
            }
        }
    }

    async fn read_body(
        &mut self,
        framing: Framing,
        expect_continue: bool,
        limit: usize,
    ) -> Result<Bytes, BodyError> {
        let io = |_| BodyError::Io;
        match framing {
            Framing::Length(0) | Framing::Close => Ok(Bytes::new()),
            Framing::Length(len) if len > limit as u64 => {
                let answer = too_large(limit, "the request body");
                if len > DISCARD_LIMIT || expect_continue {
                    // Too much to read, or a client waiting for `100 Continue` that may or
                    // may not send its body after all: the connection closes.
                    return Err(BodyError::Refused(answer, false));
                }
                let mut left = len;
                while left > 0 {
                    if self.buf.is_empty() && self.fill().await.map_err(io)? == 0 {
                        return Err(BodyError::Io);
                    }
                    let take = left.min(self.buf.len() as u64) as usize;
                    self.buf.advance(take);
                    left -= take as u64;
                }
                Err(BodyError::Refused(answer, true))
            }
            Framing::Length(len) => {
                let len = len as usize;
                if expect_continue && self.buf.len() < len {
                    self.stream
                        .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                        .await
                        .map_err(io)?;
                }
                while self.buf.len() < len {
                    self.buf.reserve(len - self.buf.len());
                    if self.stream.read_buf(&mut self.buf).await.map_err(io)? == 0 {
                        return Err(BodyError::Io);
                    }
                }
                Ok(self.buf.split_to(len).freeze())
            }
            Framing::Chunked => {
                if expect_continue && self.buf.is_empty() {
                    self.stream
                        .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                        .await
                        .map_err(io)?;
                }
                let mut decoder = ChunkedDecoder::default();
                let mut body = BytesMut::new();
                loop {
                    match decoder.decode(&mut self.buf) {
                        Ok(Decoded::Data(data)) => {
                            if body.len() + data.len() > limit {
                                return Err(BodyError::Refused(
                                    too_large(limit, "the request body"),
                                    false,
                                ));
                            }
                            body.extend_from_slice(&data);
                        }
                        Ok(Decoded::End(_)) => return Ok(body.freeze()),
                        Ok(Decoded::NeedMore) => {
                            if self.fill().await.map_err(io)? == 0 {
                                return Err(BodyError::Io);
                            }
                        }
                        Err(why) => {
                            let answer = json_error(
                                StatusCode::BAD_REQUEST,
                                "invalid_request",
                                format!("the chunked request body is malformed: {why}"),
                            );
                            return Err(BodyError::Refused(answer, false));
                        }
                    }
                }
            }
        }
    }
}

// As `Next`: moved once per request, never stored.
#[allow(clippy::large_enum_variant)]
enum Parsed {
    /// A request head, taken off the front of the buffer.
    Complete(RequestHead),
    Partial,
    /// Not a request this module serves: hyper's, with the buffer as it was.
    Other,
    /// A request whose body framing is ambiguous, and why.
    Refused(&'static str),
}

/// Where a piece of the head lies in it: offset and length.
type Span = (usize, usize);

/// Parses a request head at the start of `buf` and, when it is one this module serves, takes
/// it off the buffer; an absolute-form target is served only when `absolute_form`.
///
/// The target and the header values are slices of the head split off the read buffer, not
/// copies: one allocation per value and one for the target fewer per request. They share
/// the buffer's allocation only until the request is answered (the recording keeps headers
/// as strings), after which the next read reuses it.
///
/// The headers go into `map` (cleared first; see [`Conn`]).
fn parse_request(buf: &mut BytesMut, absolute_form: bool, map: &mut HeaderMap) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Other,
    };
    if req.version != Some(1) {
        return Parsed::Other;
    }
    let (Some(method), Some(path)) = (req.method, req.path) else {
        return Parsed::Other;
    };
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return Parsed::Other;
    };
    let origin_form = path.starts_with('/');
    if method == Method::CONNECT || !(origin_form || absolute_form) {
        return Parsed::Other;
    }
    let start = buf.as_ptr() as usize;
    let span = |piece: &[u8]| (piece.as_ptr() as usize - start, piece.len());
    let target = span(path.as_bytes());
    let mut names = [(0, 0); MAX_HEADERS];
    let mut values = [(0, 0); MAX_HEADERS];
    let count = req.headers.len();
    for (i, h) in req.headers.iter().enumerate() {
        if h.name.eq_ignore_ascii_case("upgrade") {
            return Parsed::Other;
        }
        names[i] = span(h.name.as_bytes());
        values[i] = span(h.value);
    }
    let head = buf.split_to(len).freeze();
    match request_of(
        map,
        &head,
        method,
        origin_form,
        target,
        &names[..count],
        &values[..count],
    ) {
        Some(parsed) => parsed,
        None => {
            // Handed to hyper untouched: the head goes back in front of what follows it.
            let mut whole = BytesMut::with_capacity(head.len() + buf.len());
            whole.extend_from_slice(&head);
            whole.extend_from_slice(buf);
            *buf = whole;
            Parsed::Other
        }
    }
}

/// The request of a head [`parse_request`] split off: `None` when its target or a header
/// is not one `http` takes (hyper's then).
fn request_of(
    map: &mut HeaderMap,
    head: &Bytes,
    method: Method,
    origin_form: bool,
    target: Span,
    names: &[Span],
    values: &[Span],
) -> Option<Parsed> {
    let piece = |(at, len): Span| head.slice(at..at + len);
    let uri = http::Uri::from_maybe_shared(piece(target)).ok()?;
    if !origin_form && (uri.scheme().is_none() || uri.authority().is_none()) {
        // Authority-form (`host:port`) and asterisk-form (`*`) targets.
        return None;
    }
    // Room for what a proxy adds (`traceparent`, `tracestate`, `via`) without regrowing.
    let mut map = std::mem::take(map);
    map.clear();
    map.reserve(names.len() + 4);
    for (&(at, len), &value) in names.iter().zip(values) {
        let name = crate::headers::names::from_head(&head[at..at + len]).ok()?;
        let value = HeaderValue::from_maybe_shared(piece(value)).ok()?;
        map.append(name, value);
    }
    let framing = match request_framing(&map) {
        Ok(f) => f,
        Err(why) => return Some(Parsed::Refused(why)),
    };
    let close = connection_has(&map, "close");
    let expect_continue = map
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let mut parts = Request::new(()).into_parts().0;
    parts.method = method;
    parts.uri = uri;
    parts.version = Version::HTTP_11;
    parts.headers = map;
    Some(Parsed::Complete(RequestHead {
        parts,
        framing,
        expect_continue,
        close,
    }))
}

/// The body framing of a request (RFC 9112 §6.3), refusing the ambiguous ones that could
/// smuggle a second request past a proxy.
fn request_framing(headers: &HeaderMap) -> Result<Framing, &'static str> {
    if headers.contains_key(header::TRANSFER_ENCODING) {
        if headers.contains_key(header::CONTENT_LENGTH) {
            return Err("both Content-Length and Transfer-Encoding are present");
        }
        return if is_chunked(headers) {
            Ok(Framing::Chunked)
        } else {
            Err("Transfer-Encoding does not end with chunked")
        };
    }
    content_length(headers)
        .map(|len| Framing::Length(len.unwrap_or(0)))
        .map_err(|()| "Content-Length is not one number")
}

/// Whether the last transfer coding is `chunked` (and the only one: the proxy decodes no
/// other).
fn is_chunked(headers: &HeaderMap) -> bool {
    let codings: Vec<&[u8]> = headers
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(<[u8]>::trim_ascii)
        .collect();
    codings.len() == 1 && codings[0].eq_ignore_ascii_case(b"chunked")
}

/// The `Content-Length`: none, or one value however often it is repeated.
fn content_length(headers: &HeaderMap) -> Result<Option<u64>, ()> {
    let mut len = None;
    for v in headers.get_all(header::CONTENT_LENGTH) {
        for part in v.as_bytes().split(|b| *b == b',') {
            let part = part.trim_ascii();
            if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
                return Err(());
            }
            let n: u64 = std::str::from_utf8(part)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or(())?;
            if len.is_some_and(|l| l != n) {
                return Err(());
            }
            len = Some(n);
        }
    }
    Ok(len)
}

fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// Writes `answer`, framed by its body's known length or chunked; `head_only` (a `HEAD`
/// request) writes no body. Returns whether the whole answer was written.
///
/// The answer's header map, cleared, is left in `map` for the next request once written.
async fn write_response(
    stream: &mut TcpStream,
    out: &mut Vec<u8>,
    map: &mut HeaderMap,
    answer: Response<ProxyBody>,
    head_only: bool,
    close: bool,
) -> io::Result<bool> {
    let (parts, mut body) = answer.into_parts();
    let status = parts.status;
    let bodiless = head_only
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let exact = body.size_hint().exact();
    let chunked = !bodiless && exact.is_none();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut has_length = false;
    for (name, value) in &parts.headers {
        if name == header::TRANSFER_ENCODING || name == header::CONNECTION {
            continue;
        }
        if name == header::CONTENT_LENGTH {
            // The body's own length wins over what a header says.
            if !bodiless {
                continue;
            }
            has_length = true;
        }
        put_header(out, name.as_str(), value.as_bytes());
    }
    if !parts.headers.contains_key(header::DATE) {
        put_date(out);
    }
    if chunked {
        put_header(out, "transfer-encoding", b"chunked");
    } else if let Some(len) = exact
        && !(bodiless && (has_length || len == 0))
        && !(status.is_informational() || status == StatusCode::NO_CONTENT)
    {
        // Formatted straight into the head: no string per answer.
        out.extend_from_slice(b"content-length: ");
        let _ = write!(out, "{len}\r\n");
    }
    if close {
        put_header(out, "connection", b"close");
    }
    out.extend_from_slice(b"\r\n");
    let mut headers = parts.headers;
    headers.clear();
    *map = headers;
    if bodiless {
        stream.write_all(out).await?;
        return Ok(true);
    }
    let mut written: u64 = 0;
    let mut ended = false;
    // Whether a client that goes away while the body is awaited is noticed: until it sends
    // the next request's bytes (pipelining), which only the next read can tell from a close.
    let mut watch_client = true;
    while !ended {
        let next = if watch_client {
            tokio::select! {
                biased;
                frame = body.frame() => frame,
                gone = client_gone(stream) => {
                    if gone {
                        // Dropping the body tells its recording the client went away.
                        return Ok(false);
                    }
                    watch_client = false;
                    continue;
                }
            }
        } else {
            body.frame().await
        };
        let Some(frame) = next else {
            break;
        };
        let Ok(frame) = frame else {
            // The answer broke off: the client sees the connection close early.
            stream.write_all(out).await?;
            return Ok(false);
        };
        match frame.into_data() {
            Ok(data) => {
                written += data.len() as u64;
                if chunked {
                    if !data.is_empty() {
                        let _ = write!(out, "{:x}\r\n", data.len());
                        out.extend_from_slice(&data);
                        out.extend_from_slice(b"\r\n");
                    }
                } else if out.is_empty() && data.len() > READ_SIZE {
                    stream.write_all(&data).await?;
                    continue;
                } else {
                    out.extend_from_slice(&data);
                }
            }
            Err(frame) => {
                if let Ok(trailers) = frame.into_trailers()
                    && chunked
                {
                    out.extend_from_slice(b"0\r\n");
                    for (name, value) in &trailers {
                        put_header(out, name.as_str(), value.as_bytes());
                    }
                    out.extend_from_slice(b"\r\n");
                    ended = true;
                    continue;
                }
            }
        }
        // A body that is complete goes out with its head in one write.
        if !body.is_end_stream() {
            stream.write_all(out).await?;
            out.clear();
        }
    }
    if chunked && !ended {
        out.extend_from_slice(b"0\r\n\r\n");
    }
    stream.write_all(out).await?;
    Ok(exact.is_none_or(|len| len == written))
}

/// Waits until the client's side of the connection is readable: `true` when it closed (or
/// failed), `false` when it sent bytes (the next request).
async fn client_gone(stream: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    !matches!(stream.peek(&mut byte).await, Ok(n) if n > 0)
}

/// A `Date` header, as hyper's server adds one: formatted once a second per thread.
fn put_date(out: &mut Vec<u8>) {
    thread_local! {
        static DATE: std::cell::RefCell<(u64, String)> =
            const { std::cell::RefCell::new((u64::MAX, String::new())) };
    }
    let now = std::time::SystemTime::now();
    let second = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    DATE.with_borrow_mut(|(at, text)| {
        if *at != second {
            *at = second;
            *text = httpdate::fmt_http_date(now);
        }
        put_header(out, "date", text.as_bytes());
    });
}

fn put_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// The one upstream connection of a client connection: idle in its slot between requests,
/// owned by the answer's body while that streams.
pub(crate) struct Upstream {
    slot: Arc<Mutex<Option<UpstreamConn>>>,
    connect_timeout: Duration,
}

struct UpstreamConn {
    stream: TcpStream,
    buf: BytesMut,
    /// The request being written, kept for the next one.
    out: Vec<u8>,
    authority: http::uri::Authority,
}

/// Why an upstream exchange failed.
#[derive(Debug)]
pub(crate) enum SendError {
    /// No connection could be opened.
    Connect {
        /// The OS error, or the timeout.
        cause: String,
        /// The connect timeout passed.
        timed_out: bool,
    },
    /// The connection failed, or the answer was not HTTP/1.
    Exchange(String),
}

impl Upstream {
    pub(crate) fn new(connect_timeout: Duration) -> Self {
        Upstream {
            slot: Arc::new(Mutex::new(None)),
            connect_timeout,
        }
    }

    fn take_idle(&self, authority: &http::uri::Authority) -> Option<UpstreamConn> {
        let mut slot = self
            .slot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        slot.take().filter(|c| &c.authority == authority)
    }

    async fn connect(&self, authority: &http::uri::Authority) -> Result<UpstreamConn, SendError> {
        let addr = match authority.port_u16() {
            Some(_) => authority.as_str().to_owned(),
            None => format!("{}:80", authority.host()),
        };
        let stream = match crate::listener::coarse_timeout(
            self.connect_timeout,
            TcpStream::connect(addr.as_str()),
        )
        .await
        {
            Some(Ok(s)) => s,
            Some(Err(e)) => {
                return Err(SendError::Connect {
                    cause: format!("tcp connect error: {e}"),
                    timed_out: e.kind() == io::ErrorKind::TimedOut,
                });
            }
            None => {
                return Err(SendError::Connect {
                    cause: format!("tcp connect timed out after {:?}", self.connect_timeout),
                    timed_out: true,
                });
            }
        };
        let _ = stream.set_nodelay(true);
        Ok(UpstreamConn {
            stream,
            buf: BytesMut::with_capacity(READ_SIZE),
            out: Vec::with_capacity(512),
            authority: authority.clone(),
        })
    }

    /// Sends `request` (an absolute URI; its body whole) and returns the answer once its
    /// head has arrived; the body streams from the connection. A kept-alive connection that
    /// the application closed meanwhile is replaced once, as hyper's pool does.
    pub(crate) async fn send(
        &self,
        request: Request<Bytes>,
    ) -> Result<Response<ProxyBody>, SendError> {
        let (mut parts, body) = request.into_parts();
        let authority = parts
            .uri
            .authority()
            .cloned()
            .ok_or_else(|| SendError::Exchange(format!("{} has no authority", parts.uri)))?;
        if let Some(idle) = self.take_idle(&authority) {
            match exchange(idle, &mut parts, &authority, &body).await {
                Ok(answer) => return Ok(self.answer(answer)),
                // Nothing came back on the kept-alive connection: a fresh one gets the
                // request again.
                Err((_, true)) => {}
                Err((e, false)) => return Err(SendError::Exchange(e.to_string())),
            }
        }
        let conn = self.connect(&authority).await?;
        match exchange(conn, &mut parts, &authority, &body).await {
            Ok(answer) => Ok(self.answer(answer)),
            Err((e, _)) => Err(SendError::Exchange(e.to_string())),
        }
    }

    fn answer(&self, (parts, conn, framing, reusable): Exchanged) -> Response<ProxyBody> {
        let body = UpstreamBody {
            conn: Some(conn),
            decoder: ChunkedDecoder::default(),
            framing,
            reusable,
            slot: self.slot.clone(),
        };
        let body = if body.is_end_stream() {
            // Nothing to read: the connection goes back at once.
            let mut body = body;
            body.finish();
            super::http::empty()
        } else {
            body.boxed_unsync()
        };
        Response::from_parts(parts, body)
    }
}

type Exchanged = (http::response::Parts, UpstreamConn, Framing, bool);

/// Writes the request on `conn` (its head in the connection's own buffer, the body with it
/// when small) and reads the answer's head, whose headers go into the request's map once
/// it is written. The error says whether nothing at all came back (so the request can be
/// sent again on another connection, its headers intact).
async fn exchange(
    mut conn: UpstreamConn,
    parts: &mut http::request::Parts,
    authority: &http::uri::Authority,
    body: &Bytes,
) -> Result<Exchanged, (io::Error, bool)> {
    let head_only = parts.method == Method::HEAD;
    conn.buf.clear();
    conn.out.clear();
    request_head(&mut conn.out, parts, authority, body);
    let sent = if body.len() <= READ_SIZE {
        conn.out.extend_from_slice(body);
        conn.stream.write_all(&conn.out).await
    } else {
        match conn.stream.write_all(&conn.out).await {
            Ok(()) => conn.stream.write_all(body).await,
            Err(e) => Err(e),
        }
    };
    if let Err(e) = sent {
        return Err((e, true));
    }
    loop {
        match parse_response(&mut conn.buf, head_only, &mut parts.headers) {
            Ok(Some((parts, framing, reusable))) => {
                if parts.status.is_informational() {
                    // 100 Continue, 103 Early Hints: the final answer follows.
                    continue;
                }
                return Ok((parts, conn, framing, reusable));
            }
            Ok(None) if conn.buf.len() > MAX_HEAD => {
                return Err((io::Error::other("the answer's head is too large"), false));
            }
            Ok(None) => {}
            Err(why) => return Err((io::Error::other(why), false)),
        }
        conn.buf.reserve(READ_SIZE);
        let nothing_yet = conn.buf.is_empty();
        match conn.stream.read_buf(&mut conn.buf).await {
            Ok(0) => {
                return Err((
                    io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the connection closed before an answer",
                    ),
                    nothing_yet,
                ));
            }
            Ok(_) => {}
            Err(e) => return Err((e, nothing_yet)),
        }
    }
}

/// The request line and headers for the upstream, appended to `out`: `Host` from the URI,
/// the body's length.
fn request_head(
    out: &mut Vec<u8>,
    parts: &http::request::Parts,
    authority: &http::uri::Authority,
    body: &Bytes,
) {
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(
        parts
            .uri
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .as_bytes(),
    );
    out.extend_from_slice(b" HTTP/1.1\r\n");
    put_header(out, "host", authority.as_str().as_bytes());
    for (name, value) in &parts.headers {
        if name == header::HOST
            || name == header::CONTENT_LENGTH
            || name == header::TRANSFER_ENCODING
        {
            continue;
        }
        put_header(out, name.as_str(), value.as_bytes());
    }
    // As hyper's client: a length unless the body is empty and the method has none.
    let implicit_empty = matches!(
        parts.method,
        Method::GET | Method::HEAD | Method::DELETE | Method::OPTIONS | Method::TRACE
    );
    if !body.is_empty() || !implicit_empty {
        let _ = write!(out, "content-length: {}\r\n", body.len());
    }
    out.extend_from_slice(b"\r\n");
}

type ParsedResponse = (http::response::Parts, Framing, bool);

/// Parses an answer's head at the start of `buf` and takes it off the buffer; `None` until
/// it is complete. The header values are slices of the head, not copies (as a request's, see
/// [`parse_request`]); they go into `map`, cleared first, which is left as it was while the
/// head is incomplete.
fn parse_response(
    buf: &mut BytesMut,
    head_only: bool,
    map: &mut HeaderMap,
) -> Result<Option<ParsedResponse>, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("the answer's head is malformed: {e}")),
    };
    let status = resp
        .code
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or("the answer's status is invalid")?;
    let http10 = resp.version == Some(0);
    let start = buf.as_ptr() as usize;
    let span = |piece: &[u8]| (piece.as_ptr() as usize - start, piece.len());
    let mut names = [(0, 0); MAX_HEADERS];
    let mut values = [(0, 0); MAX_HEADERS];
    let count = resp.headers.len();
    for (i, h) in resp.headers.iter().enumerate() {
        names[i] = span(h.name.as_bytes());
        values[i] = span(h.value);
    }
    let head = buf.split_to(len).freeze();
    let mut map = std::mem::take(map);
    map.clear();
    map.reserve(count);
    for (&(at, len), &(value_at, value_len)) in names[..count].iter().zip(&values[..count]) {
        let name = HeaderName::from_bytes(&head[at..at + len]).map_err(|_| {
            format!(
                "the answer's header name {:?} is invalid",
                String::from_utf8_lossy(&head[at..at + len])
            )
        })?;
        let value = HeaderValue::from_maybe_shared(head.slice(value_at..value_at + value_len))
            .map_err(|_| format!("the answer's header {name:?} has an invalid value"))?;
        map.append(name, value);
    }
    let framing = if head_only
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        Framing::Length(0)
    } else if map.contains_key(header::TRANSFER_ENCODING) {
        if is_chunked(&map) {
            Framing::Chunked
        } else {
            Framing::Close
        }
    } else {
        match content_length(&map) {
            Ok(Some(n)) => Framing::Length(n),
            Ok(None) => Framing::Close,
            Err(()) => return Err("the answer's Content-Length is not one number".into()),
        }
    };
    let reusable = framing != Framing::Close
        && !connection_has(&map, "close")
        && (!http10 || connection_has(&map, "keep-alive"));
    let mut parts = Response::new(()).into_parts().0;
    parts.status = status;
    parts.version = Version::HTTP_11;
    parts.headers = map;
    Ok(Some((parts, framing, reusable)))
}

/// An answer's body read from the upstream connection; the connection goes back to its
/// [`Upstream`] when the body is complete and the connection can serve another request.
struct UpstreamBody {
    conn: Option<UpstreamConn>,
    decoder: ChunkedDecoder,
    framing: Framing,
    reusable: bool,
    slot: Arc<Mutex<Option<UpstreamConn>>>,
}

impl UpstreamBody {
    fn finish(&mut self) {
        self.framing = Framing::Length(0);
        if let Some(conn) = self.conn.take()
            && self.reusable
        {
            *self
                .slot
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(conn);
        }
    }

    /// Reads more into the connection's buffer; `Ok(false)` at the end of the stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        let Some(conn) = self.conn.as_mut() else {
            return Poll::Ready(Ok(false));
        };
        loop {
            ready!(conn.stream.poll_read_ready(cx))?;
            conn.buf.reserve(READ_SIZE);
            match conn.stream.try_read_buf(&mut conn.buf) {
                Ok(n) => return Poll::Ready(Ok(n > 0)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl HttpBody for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match this.framing {
                Framing::Length(0) => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Framing::Length(left) => {
                    if !conn.buf.is_empty() {
                        let take = left.min(conn.buf.len() as u64);
                        let data = conn.buf.split_to(take as usize).freeze();
                        this.framing = Framing::Length(left - take);
                        if left == take {
                            this.finish();
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    if !ready!(this.poll_fill(cx))? {
                        this.conn = None;
                        return Poll::Ready(Some(Err(
                            "the upstream closed before the whole body".into()
                        )));
                    }
                }
                Framing::Close => {
                    if !conn.buf.is_empty() {
                        let data = conn.buf.split().freeze();
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    if !ready!(this.poll_fill(cx))? {
                        this.conn = None;
                        return Poll::Ready(None);
                    }
                }
                Framing::Chunked => match this.decoder.decode(&mut conn.buf) {
                    Ok(Decoded::Data(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                    Ok(Decoded::End(trailers)) => {
                        this.finish();
                        return Poll::Ready(trailers.map(|t| Ok(Frame::trailers(t))));
                    }
                    Ok(Decoded::NeedMore) => {
                        if !ready!(this.poll_fill(cx))? {
                            this.conn = None;
                            return Poll::Ready(Some(Err(
                                "the upstream closed inside a chunked body".into(),
                            )));
                        }
                    }
                    Err(why) => {
                        this.conn = None;
                        return Poll::Ready(Some(Err(format!(
                            "the upstream's chunked body is malformed: {why}"
                        )
                        .into())));
                    }
                },
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.conn.is_none() || self.framing == Framing::Length(0)
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Length(n) => SizeHint::with_exact(n),
            _ => SizeHint::default(),
        }
    }
}

/// A chunked body decoder (RFC 9112 §7.1) over a read buffer; data comes out as slices of
/// the buffer, not copies.
#[derive(Debug, Default)]
struct ChunkedDecoder {
    state: ChunkState,
}

#[derive(Debug, Default, Clone, Copy)]
enum ChunkState {
    #[default]
    Size,
    Data(u64),
    DataEnd,
    Trailers,
    Done,
}

enum Decoded {
    Data(Bytes),
    NeedMore,
    /// The last chunk, with the trailers if there were any.
    End(Option<HeaderMap>),
}

/// The longest chunk-size line or trailer section accepted.
const MAX_CHUNK_LINE: usize = 4096;

impl ChunkedDecoder {
    fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, String> {
        loop {
            match self.state {
                ChunkState::Size => {
                    let Some(end) = find_crlf(buf) else {
                        if buf.len() > MAX_CHUNK_LINE {
                            return Err("a chunk-size line is too long".into());
                        }
                        return Ok(Decoded::NeedMore);
                    };
                    let line = &buf[..end];
                    let size = line.split(|b| *b == b';').next().unwrap_or_default();
                    let size = size.trim_ascii();
                    if size.is_empty() || size.len() > 16 || !size.iter().all(u8::is_ascii_hexdigit)
                    {
                        return Err(format!(
                            "chunk size {:?} is not a hexadecimal number",
                            String::from_utf8_lossy(size)
                        ));
                    }
                    let n = u64::from_str_radix(std::str::from_utf8(size).unwrap_or("0"), 16)
                        .map_err(|e| format!("chunk size: {e}"))?;
                    buf.advance(end + 2);
                    self.state = if n == 0 {
                        ChunkState::Trailers
                    } else {
                        ChunkState::Data(n)
                    };
                }
                ChunkState::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    let take = left.min(buf.len() as u64);
                    let data = buf.split_to(take as usize).freeze();
                    self.state = if take == left {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left - take)
                    };
                    return Ok(Decoded::Data(data));
                }
                ChunkState::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(Decoded::NeedMore);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err("a chunk does not end with CRLF".into());
                    }
                    buf.advance(2);
                    self.state = ChunkState::Size;
                }
                ChunkState::Trailers => {
                    if buf.starts_with(b"\r\n") {
                        buf.advance(2);
                        self.state = ChunkState::Done;
                        return Ok(Decoded::End(None));
                    }
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        if buf.len() > MAX_CHUNK_LINE {
                            return Err("the trailer section is too long".into());
                        }
                        return Ok(Decoded::NeedMore);
                    };
                    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                    let parsed = httparse::parse_headers(&buf[..end + 4], &mut headers)
                        .map_err(|e| format!("the trailers are malformed: {e}"))?;
                    let mut map = HeaderMap::new();
                    if let httparse::Status::Complete((_, headers)) = parsed {
                        for h in headers {
                            if let (Ok(n), Ok(v)) = (
                                HeaderName::from_bytes(h.name.as_bytes()),
                                HeaderValue::from_bytes(h.value),
                            ) {
                                map.append(n, v);
                            }
                        }
                    }
                    buf.advance(end + 4);
                    self.state = ChunkState::Done;
                    return Ok(Decoded::End(Some(map)));
                }
                ChunkState::Done => return Ok(Decoded::End(None)),
            }
        }
    }
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8], step: usize) -> Result<(Vec<u8>, Option<HeaderMap>), String> {
        let mut decoder = ChunkedDecoder::default();
        let mut buf = BytesMut::new();
        let mut fed = 0;
        let mut body = Vec::new();
        loop {
            match decoder.decode(&mut buf)? {
                Decoded::Data(d) => body.extend_from_slice(&d),
                Decoded::End(trailers) => return Ok((body, trailers)),
                Decoded::NeedMore => {
                    assert!(fed < input.len(), "the decoder wants more than the input");
                    let next = (fed + step).min(input.len());
                    buf.extend_from_slice(&input[fed..next]);
                    fed = next;
                }
            }
        }
    }

    #[test]
    fn chunked_bodies_decode_whole_or_byte_by_byte() {
        let input =
            b"4;name=v\r\nwiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nx-sum: 9\r\n\r\n";
        for step in [1, 3, input.len()] {
            let (body, trailers) = decode_all(input, step).unwrap();
            assert_eq!(body, b"wikipedia in\r\n\r\nchunks.");
            assert_eq!(trailers.unwrap()["x-sum"], "9");
        }
        let (body, trailers) = decode_all(b"0\r\n\r\n", 1).unwrap();
        assert!(body.is_empty() && trailers.is_none());
    }

    #[test]
    fn malformed_chunks_are_errors_that_say_what_was_wrong() {
        let err = decode_all(b"zz\r\nab\r\n0\r\n\r\n", 64).unwrap_err();
        assert!(err.contains("\"zz\" is not a hexadecimal number"), "{err}");
        let err = decode_all(b"2\r\nabX\r\n0\r\n\r\n", 64).unwrap_err();
        assert!(err.contains("does not end with CRLF"), "{err}");
        let err = decode_all(&[b'1'; MAX_CHUNK_LINE + 2], MAX_CHUNK_LINE + 2).unwrap_err();
        assert!(err.contains("too long"), "{err}");
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    #[test]
    fn request_framing_refuses_what_could_smuggle_a_request() {
        let framing = |pairs: &[(&str, &str)]| request_framing(&headers(pairs));
        assert_eq!(framing(&[]), Ok(Framing::Length(0)));
        assert_eq!(
            framing(&[("content-length", "12")]),
            Ok(Framing::Length(12))
        );
        assert_eq!(
            framing(&[("content-length", "12"), ("content-length", "12")]),
            Ok(Framing::Length(12))
        );
        assert_eq!(
            framing(&[("transfer-encoding", "Chunked")]),
            Ok(Framing::Chunked)
        );
        for refused in [
            &[("content-length", "12"), ("content-length", "13")][..],
            &[("content-length", "12, 13")][..],
            &[("content-length", "-1")][..],
            &[("content-length", "+5")][..],
            &[("content-length", "3"), ("transfer-encoding", "chunked")][..],
            &[("transfer-encoding", "gzip")][..],
            &[("transfer-encoding", "chunked, gzip")][..],
            &[("transfer-encoding", "gzip, chunked")][..],
        ] {
            assert!(framing(refused).is_err(), "{refused:?} was accepted");
        }
    }

    /// [`parse_request`] on `bytes` as read, and what is left in the buffer after it.
    fn parse(bytes: &[u8], absolute_form: bool) -> (Parsed, BytesMut) {
        let mut buf = BytesMut::from(bytes);
        let parsed = parse_request(&mut buf, absolute_form, &mut HeaderMap::new());
        (parsed, buf)
    }

    #[test]
    fn heads_this_module_does_not_serve_go_to_hyper_untouched() {
        for other in [
            &b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"[..],
            b"GET / HTTP/1.0\r\n\r\n",
            b"CONNECT example.com:443 HTTP/1.1\r\nhost: example.com:443\r\n\r\n",
            b"GET http://example.com/ HTTP/1.1\r\nhost: example.com\r\n\r\n",
            b"GET /chat HTTP/1.1\r\nhost: a\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n",
            b"GET / HTTP/1.1\r\nbad header\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
            // Parsed by httparse, refused by `http` once split off: put back whole.
            b"GET /a`b HTTP/1.1\r\nhost: a\r\n\r\nnext",
        ] {
            let (parsed, left) = parse(other, false);
            assert!(
                matches!(parsed, Parsed::Other),
                "{:?}",
                String::from_utf8_lossy(other)
            );
            assert_eq!(&left[..], other, "the bytes hyper gets are those read");
        }
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\nhost: a\r\n", false).0,
            Parsed::Partial
        ));
        let (Parsed::Complete(head), left) = parse(
            b"GET /a?b=1 HTTP/1.1\r\nhost: a\r\nx-many: 1\r\nx-many: 2\r\nconnection: close\r\n\r\nrest",
            false,
        ) else {
            panic!("a plain request is served here");
        };
        assert_eq!(
            &left[..],
            b"rest",
            "the head is taken off the buffer, no more"
        );
        assert_eq!(head.parts.uri, "/a?b=1");
        assert_eq!(head.parts.headers["host"], "a");
        let many: Vec<_> = head.parts.headers.get_all("x-many").iter().collect();
        assert_eq!(many, ["1", "2"]);
        assert!(head.close);
    }

    #[test]
    fn a_forward_proxy_serves_absolute_form_targets_and_hands_on_the_other_forms() {
        let (Parsed::Complete(head), _) = parse(
            b"GET http://example.com:8080/a?b=1 HTTP/1.1\r\nhost: example.com\r\n\r\n",
            true,
        ) else {
            panic!("an absolute-form request is served when asked for");
        };
        assert_eq!(head.parts.uri, "http://example.com:8080/a?b=1");
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n", true).0,
            Parsed::Complete(..)
        ));
        for other in [
            &b"CONNECT example.com:443 HTTP/1.1\r\nhost: example.com:443\r\n\r\n"[..],
            b"OPTIONS * HTTP/1.1\r\nhost: a\r\n\r\n",
            b"GET example.com:80 HTTP/1.1\r\nhost: a\r\n\r\n",
            b"GET http://example.com/ HTTP/1.0\r\n\r\n",
            b"GET http://example.com/ws HTTP/1.1\r\nhost: a\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n",
            // Parsed by httparse, refused by `http` once split off: put back whole.
            b"GET http://[::1/x HTTP/1.1\r\nhost: a\r\n\r\nnext",
        ] {
            let (parsed, left) = parse(other, true);
            assert!(
                matches!(parsed, Parsed::Other),
                "{:?}",
                String::from_utf8_lossy(other)
            );
            assert_eq!(&left[..], other);
        }
    }

    #[test]
    fn answer_heads_give_their_framing_and_whether_the_connection_stays() {
        let parse = |head: &[u8], head_only| {
            let mut buf = BytesMut::from(head);
            let (parts, framing, reusable) =
                parse_response(&mut buf, head_only, &mut HeaderMap::new())
                    .unwrap()
                    .unwrap();
            assert!(buf.is_empty(), "the head is taken off the buffer");
            (parts.status.as_u16(), framing, reusable)
        };
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", false),
            (200, Framing::Length(5), true)
        );
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", true),
            (200, Framing::Length(0), true)
        );
        assert_eq!(
            parse(b"HTTP/1.1 204 No Content\r\n\r\n", false),
            (204, Framing::Length(0), true)
        );
        assert_eq!(
            parse(
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
                false
            ),
            (200, Framing::Chunked, true)
        );
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\n\r\n", false),
            (200, Framing::Close, false)
        );
        assert_eq!(
            parse(
                b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 1\r\n\r\n",
                false
            ),
            (200, Framing::Length(1), false)
        );
        assert_eq!(
            parse(b"HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\n", false),
            (200, Framing::Length(1), false)
        );
        let mut bad = BytesMut::from(&b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n"[..]);
        assert!(parse_response(&mut bad, false, &mut HeaderMap::new()).is_err());
        let mut partial = BytesMut::from(&b"HTTP/1.1 200 OK\r\n"[..]);
        let mut map = HeaderMap::new();
        map.insert("x-kept", HeaderValue::from_static("1"));
        assert!(
            parse_response(&mut partial, false, &mut map)
                .unwrap()
                .is_none()
        );
        assert_eq!(map.len(), 1, "the map stays until the head is complete");
        assert_eq!(&partial[..], b"HTTP/1.1 200 OK\r\n", "a partial head stays");
    }

    #[test]
    fn answer_heads_keep_their_values_and_leave_the_body_in_the_buffer() {
        let mut buf = BytesMut::from(
            &b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Trace: a b\r\ncontent-length: 5\r\n\r\nhello"[..],
        );
        let mut map = HeaderMap::new();
        map.insert("x-request", HeaderValue::from_static("1"));
        let (parts, framing, _) = parse_response(&mut buf, false, &mut map).unwrap().unwrap();
        assert!(
            !parts.headers.contains_key("x-request"),
            "the map is cleared first"
        );
        assert_eq!(parts.headers.len(), 3);
        assert_eq!(framing, Framing::Length(5));
        assert_eq!(parts.headers["content-type"], "text/plain");
        assert_eq!(parts.headers["x-trace"], "a b");
        assert_eq!(&buf[..], b"hello");
    }
}
