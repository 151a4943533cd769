//! Streamed answers (server-sent events, chunked transfers, long polls): the proxies pass
//! them on frame by frame as they arrive, and a capture records the whole body plus when
//! each chunk arrived, so that a replay can play them back at once (the default) or with
//! the recorded timing when the hop or the session's policy (`streamTiming`) asks for it.
//!
//! The proxies' [`crate::proxy::http::RecordingBody`] measures the chunks; this module owns
//! the attribute that stores them, the option that asks for them on replay, and the body
//! that plays them back. `spec/protocol/case-format.md` ("Streamed bodies") is the contract.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body as HttpBody, Frame};

use crate::case::{Exchange, KeyValue};

/// Attribute holding a streamed answer's chunk timings: `end@ms` entries separated by
/// commas, `end` the body length in bytes once the chunk was in and `ms` the milliseconds
/// since the response head (`"17@0,34@1002"`).
pub const RESPONSE_CHUNKS: &str = "sp.http.response.body.chunks";
/// Attribute on a recorded hop asking replay to play its chunks with the recorded timing:
/// value `recorded`. Without it (or with `immediate`) the whole body is sent at once.
pub const REPLAY_TIMING: &str = "sp.replay.stream_timing";
/// The value of [`REPLAY_TIMING`] asking for the recorded timing.
pub const TIMING_RECORDED: &str = "recorded";

/// Header by which a decided answer carries its chunk timings from the replay (in-process or
/// over the OTLP API) to the proxy that plays it; the proxy removes it before answering.
pub(crate) const TIMING_HEADER: &str = "x-softprobe-stream-timing";

/// True when a response head describes a stream worth timing: no `content-length` (chunked
/// or close-delimited), or an event-stream / NDJSON content type, and no content coding
/// (chunk offsets would not match the decoded body).
pub fn is_stream(headers: &HeaderMap) -> bool {
    if headers.contains_key(http::header::CONTENT_ENCODING) {
        return false;
    }
    let streaming_type = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            let ct = ct.to_ascii_lowercase();
            ct.starts_with("text/event-stream") || ct.starts_with("application/x-ndjson")
        });
    streaming_type || !headers.contains_key(http::header::CONTENT_LENGTH)
}

/// The [`RESPONSE_CHUNKS`] attribute for chunks as a recording body measured them, or
/// `None` when the body came in one piece.
pub fn chunks_attribute(chunks: &[(usize, Duration)]) -> Option<KeyValue> {
    (chunks.len() > 1).then(|| KeyValue::string(RESPONSE_CHUNKS, format_chunks(chunks)))
}

/// `end@ms,...`.
pub fn format_chunks(chunks: &[(usize, Duration)]) -> String {
    chunks
        .iter()
        .map(|(end, at)| format!("{end}@{}", at.as_millis()))
        .collect::<Vec<_>>()
        .join(",")
}

/// Reads `end@ms,...`: ends must not decrease, nor times.
pub fn parse_chunks(value: &str) -> Result<Vec<(usize, Duration)>, String> {
    let mut out: Vec<(usize, Duration)> = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (end, ms) = entry
            .split_once('@')
            .ok_or_else(|| format!("chunk {entry:?} is not `end@ms`"))?;
        let end: usize = end
            .parse()
            .map_err(|_| format!("chunk {entry:?}: {end:?} is not a byte offset"))?;
        let ms: u64 = ms
            .trim_end_matches("ms")
            .parse()
            .map_err(|_| format!("chunk {entry:?}: {ms:?} is not a number of milliseconds"))?;
        let at = Duration::from_millis(ms);
        if let Some((prev_end, prev_at)) = out.last()
            && (end < *prev_end || at < *prev_at)
        {
            return Err(format!(
                "chunk {entry:?} goes back from {prev_end}@{}",
                prev_at.as_millis()
            ));
        }
        out.push((end, at));
    }
    Ok(out)
}

/// The chunk timings replay should play for hop `ex`: its recorded chunks when it asks for
/// [`TIMING_RECORDED`] or the session's policy says `streamTiming: recorded`.
pub(crate) fn replay_timing(ex: &Exchange, policy: crate::policy::StreamTiming) -> Option<&str> {
    let attr = |key: &str| {
        ex.extra_attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_str())
    };
    let asked = policy == crate::policy::StreamTiming::Recorded
        || attr(REPLAY_TIMING) == Some(TIMING_RECORDED);
    if !asked {
        return None;
    }
    attr(RESPONSE_CHUNKS)
}

/// A body that sends `bytes` in the recorded chunks, each at its recorded time after the
/// first poll. Bytes past the last recorded end follow at once.
pub(crate) struct PacedBody {
    bytes: Bytes,
    sent: usize,
    chunks: std::vec::IntoIter<(usize, Duration)>,
    start: Option<tokio::time::Instant>,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    next: Option<usize>,
}

impl PacedBody {
    pub(crate) fn new(bytes: Bytes, chunks: Vec<(usize, Duration)>) -> Self {
        PacedBody {
            bytes,
            sent: 0,
            chunks: chunks.into_iter(),
            start: None,
            sleep: None,
            next: None,
        }
    }
}

impl HttpBody for PacedBody {
    type Data = Bytes;
    type Error = crate::proxy::http::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let start = *this.start.get_or_insert_with(tokio::time::Instant::now);
        loop {
            if this.sent >= this.bytes.len() {
                return Poll::Ready(None);
            }
            if let Some(sleep) = this.sleep.as_mut() {
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.sleep = None;
                let end = this
                    .next
                    .take()
                    .unwrap_or(this.bytes.len())
                    .clamp(this.sent, this.bytes.len());
                let frame = this.bytes.slice(this.sent..end);
                this.sent = end;
                if !frame.is_empty() {
                    return Poll::Ready(Some(Ok(Frame::data(frame))));
                }
                continue;
            }
            let (end, at) = this
                .chunks
                .next()
                .unwrap_or((this.bytes.len(), Duration::ZERO));
            this.next = Some(end);
            this.sleep = Some(Box::pin(tokio::time::sleep_until(start + at)));
        }
    }

    fn is_end_stream(&self) -> bool {
        self.sent >= self.bytes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[test]
    fn chunk_timings_round_trip_and_bad_ones_are_named() {
        let chunks = vec![
            (17, Duration::from_millis(0)),
            (34, Duration::from_millis(1002)),
        ];
        assert_eq!(format_chunks(&chunks), "17@0,34@1002");
        assert_eq!(parse_chunks("17@0, 34@1002").unwrap(), chunks);
        assert_eq!(
            parse_chunks("17@5,3@9").unwrap_err(),
            "chunk \"3@9\" goes back from 17@5"
        );
        assert!(parse_chunks("17").unwrap_err().contains("is not `end@ms`"));
        assert!(chunks_attribute(&chunks[..1]).is_none());
    }

    #[test]
    fn streams_are_told_from_sized_answers() {
        let mut h = HeaderMap::new();
        assert!(is_stream(&h), "no length: chunked or close-delimited");
        h.insert("content-length", "10".parse().unwrap());
        assert!(!is_stream(&h));
        h.insert("content-type", "text/event-stream".parse().unwrap());
        assert!(is_stream(&h));
        h.insert("content-encoding", "gzip".parse().unwrap());
        assert!(!is_stream(&h));
    }

    #[tokio::test]
    async fn a_paced_body_sends_each_chunk_at_its_time() {
        let body = PacedBody::new(
            Bytes::from_static(b"data: 1\n\ndata: 2\n\ntail"),
            vec![(9, Duration::ZERO), (18, Duration::from_millis(40))],
        );
        let start = tokio::time::Instant::now();
        let mut body = std::pin::pin!(body);
        let mut frames = Vec::new();
        while let Some(frame) = body.frame().await {
            let data = frame.unwrap().into_data().unwrap();
            frames.push((data, start.elapsed()));
        }
        let got: Vec<&[u8]> = frames.iter().map(|(d, _)| &d[..]).collect();
        assert_eq!(got, vec![&b"data: 1\n\n"[..], b"data: 2\n\n", b"tail"]);
        // A timer never fires early: the second chunk waited for its recorded time.
        assert!(frames[1].1 >= Duration::from_millis(40), "{frames:?}");
    }
}
