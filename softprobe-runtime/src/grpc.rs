//! gRPC calls as hops. A request with an `application/grpc` content type is a call of
//! `package.Service/Method` (its path); the proxies forward it over HTTP/2 (h2c to a plain
//! upstream) with its trailers, and a capture records it with the OpenTelemetry `rpc.*`
//! attributes, the messages without their 5-byte gRPC framing, and the trailers. Replay frames
//! the recorded message again and sends the recorded trailers.
//!
//! Unary calls (one message each way) are recorded and replayed. A streaming call (any other
//! number of messages: server-, client- or bidirectional streaming) is recorded with its
//! framed bodies, which hold the ordered message sequence of each direction, their message
//! counts and `sp.grpc.streaming`. Replay matches the client's messages (the whole request
//! stream, read to its end) against the recording and sends the recorded messages back in
//! order with the recorded trailers; a recording it cannot play is answered at once with
//! `UNIMPLEMENTED` and a message saying why, never a hang. `spec/protocol/case-format.md` ("gRPC hops") is the contract.

use crate::case::{Body, Exchange, KeyValue};

/// `grpc` on every gRPC hop (OpenTelemetry `rpc.system`).
pub const RPC_SYSTEM: &str = "rpc.system";
/// `package.Service` (OpenTelemetry `rpc.service`).
pub const RPC_SERVICE: &str = "rpc.service";
/// `Method` (OpenTelemetry `rpc.method`).
pub const RPC_METHOD: &str = "rpc.method";
/// The call's `grpc-status`, an integer (OpenTelemetry `rpc.grpc.status_code`).
pub const GRPC_STATUS: &str = "rpc.grpc.status_code";
/// The call's `grpc-message`, when it had one.
pub const GRPC_MESSAGE: &str = "sp.grpc.message";
/// `true` on a call that was not one message each way; its bodies keep their framing.
pub const STREAMING: &str = "sp.grpc.streaming";
/// On a streaming call: how many messages the client sent, in the order the framed request
/// body holds them.
pub const REQUEST_MESSAGES: &str = "sp.grpc.request.messages";
/// On a streaming call: how many messages the server sent.
pub const RESPONSE_MESSAGES: &str = "sp.grpc.response.messages";
/// Prefix of one attribute per response trailer, lowercase name appended.
pub const RESPONSE_TRAILER_PREFIX: &str = "http.response.trailer.";

/// Prefix of the answer headers by which a decided gRPC answer carries its trailers from the
/// replay (in process or over the OTLP API) to the proxy, which sends them as trailers.
pub(crate) const TRAILER_HEADER_PREFIX: &str = "x-softprobe-trailer-";

/// True for the content types of gRPC over HTTP/2 (`application/grpc`, `application/grpc+proto`
/// ...), not gRPC-Web.
pub fn is_grpc(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|ct| {
        let ct = ct.trim().to_ascii_lowercase();
        ct == "application/grpc"
            || ct.starts_with("application/grpc+")
            || ct.starts_with("application/grpc;")
    })
}

/// The messages of a gRPC body: each is a flag byte, a 4-byte big-endian length and the bytes.
pub fn unframe(mut bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        if bytes.len() < 5 {
            return Err(format!(
                "{} stray bytes after the last message",
                bytes.len()
            ));
        }
        if bytes[0] != 0 {
            return Err("a message is compressed (grpc-encoding); it is kept framed".into());
        }
        let len = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
        let rest = &bytes[5..];
        if rest.len() < len {
            return Err(format!(
                "a message announces {len} bytes but {} follow",
                rest.len()
            ));
        }
        out.push(rest[..len].to_vec());
        bytes = &rest[len..];
    }
    Ok(out)
}

/// Frames one uncompressed message.
pub fn frame(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 5);
    out.push(0);
    out.extend_from_slice(
        &u32::try_from(message.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    out.extend_from_slice(message);
    out
}

/// `package.Service` and `Method` of a call's path `/package.Service/Method`.
pub fn split_path(path: &str) -> Option<(&str, &str)> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    (!service.is_empty() && !method.is_empty() && !method.contains('/'))
        .then_some((service, method))
}

/// The name of a gRPC status code (`OK`, `NOT_FOUND`...).
pub fn status_name(code: i64) -> &'static str {
    match code {
        0 => "OK",
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        6 => "ALREADY_EXISTS",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        11 => "OUT_OF_RANGE",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        16 => "UNAUTHENTICATED",
        _ => "UNKNOWN_STATUS",
    }
}

/// The request side of a call as a recording keeps it: the unframed message when there is
/// exactly one, and the `rpc.*` attributes. A body of another shape is returned as it came,
/// marked streaming.
pub(crate) fn request_for_record(path: &str, bytes: &[u8]) -> (Option<Body>, Vec<KeyValue>) {
    let mut attrs = vec![KeyValue::string(RPC_SYSTEM, "grpc")];
    if let Some((service, method)) = split_path(path) {
        attrs.push(KeyValue::string(RPC_SERVICE, service));
        attrs.push(KeyValue::string(RPC_METHOD, method));
    }
    let body = match unframe(bytes) {
        Ok(mut messages) if messages.len() == 1 => Body::Binary(messages.remove(0)),
        unframed => {
            attrs.push(streaming_flag());
            if let Ok(messages) = unframed {
                attrs.push(message_count(REQUEST_MESSAGES, messages.len()));
            }
            Body::Binary(bytes.to_vec())
        }
    };
    ((!bytes.is_empty()).then_some(body), attrs)
}

/// The response side: `bytes` unframed when they hold at most one message and the request was
/// not already streaming, the status, message and trailers as attributes.
pub(crate) fn response_for_record(
    bytes: &[u8],
    headers: &[(String, String)],
    trailers: &[(String, String)],
    request_streaming: bool,
    extra: &mut Vec<KeyValue>,
) -> Option<Body> {
    let find = |name: &str| {
        trailers
            .iter()
            .chain(headers)
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if let Some(code) = find("grpc-status").and_then(|s| s.trim().parse::<i64>().ok()) {
        extra.push(KeyValue::int(GRPC_STATUS, code));
    }
    if let Some(message) = find("grpc-message") {
        let decoded = percent_encoding::percent_decode_str(message).decode_utf8_lossy();
        extra.push(KeyValue::string(GRPC_MESSAGE, decoded));
    }
    for (name, value) in trailers {
        extra.push(KeyValue::string(
            format!("{RESPONSE_TRAILER_PREFIX}{name}"),
            value,
        ));
    }
    match unframe(bytes) {
        Ok(mut messages) if messages.len() == 1 && !request_streaming => {
            Some(Body::Binary(messages.remove(0)))
        }
        Ok(messages) if messages.is_empty() && !request_streaming => None,
        unframed => {
            if !request_streaming {
                extra.push(streaming_flag());
            }
            if let Ok(messages) = &unframed {
                extra.push(message_count(RESPONSE_MESSAGES, messages.len()));
            }
            (!bytes.is_empty()).then(|| Body::Binary(bytes.to_vec()))
        }
    }
}

fn message_count(key: &str, n: usize) -> KeyValue {
    KeyValue::int(key, i64::try_from(n).unwrap_or(i64::MAX))
}

fn streaming_flag() -> KeyValue {
    KeyValue {
        key: STREAMING.to_owned(),
        value: crate::case::AnyValue::Bool(true),
    }
}

/// True when recorded attributes mark the call as streaming.
pub(crate) fn is_streaming(attrs: &[KeyValue]) -> bool {
    attrs
        .iter()
        .any(|kv| kv.key == STREAMING && matches!(kv.value, crate::case::AnyValue::Bool(true)))
}

fn attribute<'a>(ex: &'a Exchange, key: &str) -> Option<&'a crate::case::AnyValue> {
    ex.extra_attributes
        .iter()
        .find(|kv| kv.key == key)
        .map(|kv| &kv.value)
}

/// Whether a recorded hop is a gRPC call.
pub fn is_grpc_hop(ex: &Exchange) -> bool {
    attribute(ex, RPC_SYSTEM).and_then(|v| v.as_str()) == Some("grpc")
}

/// `package.Service/Method` of a gRPC hop.
pub fn call_name(ex: &Exchange) -> String {
    match (
        attribute(ex, RPC_SERVICE).and_then(|v| v.as_str()),
        attribute(ex, RPC_METHOD).and_then(|v| v.as_str()),
    ) {
        (Some(s), Some(m)) => format!("{s}/{m}"),
        _ => ex.path.trim_start_matches('/').to_owned(),
    }
}

/// The recorded status of a gRPC hop.
pub fn status_of(ex: &Exchange) -> Option<i64> {
    attribute(ex, GRPC_STATUS).and_then(|v| v.as_i64())
}

/// Turns a recorded gRPC hop's answer into one the proxy can send: the message framed again,
/// the trailers carried in [`TRAILER_HEADER_PREFIX`] headers. A streaming call's answer was
/// recorded framed, as the ordered message sequence: it is sent as it is, messages in their
/// recorded order, then the recorded trailers. One whose recording is not a readable message
/// sequence is answered with `UNIMPLEMENTED`, saying why, never left hanging.
pub(crate) fn prepare_replay(ex: &Exchange, response: &mut crate::replay::Response) {
    let mut trailers: Vec<(String, String)> = ex
        .extra_attributes
        .iter()
        .filter_map(|kv| {
            let name = kv.key.strip_prefix(RESPONSE_TRAILER_PREFIX)?;
            Some((name.to_owned(), kv.value.as_str()?.to_owned()))
        })
        .collect();
    let streaming =
        attribute(ex, STREAMING).is_some_and(|v| matches!(v, crate::case::AnyValue::Bool(true)));
    let unreadable = streaming
        .then(|| unframe(response.body.as_ref().map_or(&[][..], Body::as_bytes)).err())
        .flatten();
    if let Some(why) = unreadable {
        response.status = 200;
        response.body = None;
        response
            .headers
            .retain(|(k, _)| k.eq_ignore_ascii_case("content-type"));
        trailers = vec![
            ("grpc-status".to_owned(), "12".to_owned()),
            (
                "grpc-message".to_owned(),
                percent_encoding::utf8_percent_encode(
                    &format!(
                        "softprobe cannot replay the streaming call {}: its recorded answer is \
                         not a message sequence ({why}); capture it again or answer it with a \
                         rule",
                        call_name(ex)
                    ),
                    percent_encoding::NON_ALPHANUMERIC,
                )
                .to_string(),
            ),
        ];
    } else if !streaming && let Some(body) = response.body.take() {
        response.body = Some(Body::Binary(frame(body.as_bytes())));
    }
    if trailers.is_empty() && !response.headers.iter().any(|(k, _)| k == "grpc-status") {
        // A recording without trailers (older capture, hand-written) still ends the call.
        let code = status_of(ex).unwrap_or(0);
        trailers.push(("grpc-status".to_owned(), code.to_string()));
    }
    for (name, value) in trailers {
        response
            .headers
            .push((format!("{TRAILER_HEADER_PREFIX}{name}"), value));
    }
}

/// A recorded or sent gRPC body as JSON for comparison, read with the protobuf wire format
/// alone (no schema): an object per message keyed by field number, `{"1": "mug", "2": 1}`.
/// A streaming call's framed body becomes the array of its messages, in order. `None` when
/// the bytes are not protobuf messages.
///
/// Without the schema a length-delimited field is read as text when it is printable UTF-8, else
/// as a nested message when it parses as one, else as `base64:...`; numbers are shown as the
/// unsigned values on the wire. That is enough to say which field of which message changed.
pub(crate) fn readable(bytes: &[u8], framed: bool) -> Option<serde_json::Value> {
    if framed {
        let messages = unframe(bytes).ok()?;
        return messages
            .iter()
            .map(|m| message_json(m, 0))
            .collect::<Option<Vec<_>>>()
            .map(serde_json::Value::Array);
    }
    message_json(bytes, 0)
}

/// Nested messages deeper than this are shown as bytes.
const MAX_DEPTH: usize = 16;

fn message_json(mut bytes: &[u8], depth: usize) -> Option<serde_json::Value> {
    use serde_json::{Map, Value};
    fn varint(bytes: &mut &[u8]) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = bytes.split_first()?;
            *bytes = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }
    fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (bytes.get(..n)?, bytes.get(n..)?);
        *bytes = rest;
        Some(head)
    }
    let mut fields: Map<String, Value> = Map::new();
    while !bytes.is_empty() {
        let key = varint(&mut bytes)?;
        let number = key >> 3;
        if number == 0 {
            return None;
        }
        let value = match key & 7 {
            0 => Value::from(varint(&mut bytes)?),
            1 => Value::from(u64::from_le_bytes(take(&mut bytes, 8)?.try_into().ok()?)),
            5 => Value::from(u32::from_le_bytes(take(&mut bytes, 4)?.try_into().ok()?)),
            2 => {
                let len = usize::try_from(varint(&mut bytes)?).ok()?;
                let inner = take(&mut bytes, len)?;
                match std::str::from_utf8(inner) {
                    Ok(text) if !text.chars().any(|c| c.is_control() && !c.is_whitespace()) => {
                        Value::from(text)
                    }
                    _ => (depth < MAX_DEPTH)
                        .then(|| message_json(inner, depth + 1))
                        .flatten()
                        .filter(|v| v.as_object().is_some_and(|o| !o.is_empty()))
                        .unwrap_or_else(|| {
                            use base64::Engine as _;
                            Value::from(format!(
                                "base64:{}",
                                base64::engine::general_purpose::STANDARD.encode(inner)
                            ))
                        }),
                }
            }
            _ => return None,
        };
        // A repeated field: its values in order.
        match fields.get_mut(&number.to_string()) {
            Some(Value::Array(values)) => values.push(value),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, value]);
            }
            None => {
                fields.insert(number.to_string(), value);
            }
        }
    }
    Some(Value::Object(fields))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn streaming_hop(response: &[u8]) -> Exchange {
        let (_, mut attrs) = request_for_record("/shop.Inventory/Watch", &frame(b"x"));
        let body = response_for_record(
            response,
            &[],
            &[("grpc-status".into(), "0".into())],
            false,
            &mut attrs,
        );
        Exchange {
            direction: crate::case::Direction::Outbound,
            service: None,
            session_id: None,
            span_type: None,
            method: "POST".into(),
            scheme: Some("http".into()),
            host: "inventory:50051".into(),
            path: "/shop.Inventory/Watch".into(),
            query: None,
            request_headers: vec![],
            request_body: Some(Body::Binary(b"x".to_vec())),
            status: Some(200),
            response_headers: vec![("content-type".into(), "application/grpc".into())],
            response_body: body,
            trace_id: crate::case::TraceId([1; 16]),
            span_id: crate::case::SpanId([1; 8]),
            parent_span_id: None,
            name: String::new(),
            start_time_unix_nano: 0,
            end_time_unix_nano: 0,
            extra_attributes: attrs,
        }
    }

    fn replayed(ex: &Exchange) -> crate::replay::Response {
        let mut response = crate::replay::Response {
            status: 200,
            headers: ex.response_headers.clone(),
            body: ex.response_body.clone(),
        };
        prepare_replay(ex, &mut response);
        response
    }

    #[test]
    fn a_streamed_answer_replays_its_messages_in_order_or_says_why_not() {
        let sequence = [frame(b"first"), frame(b"second")].concat();
        let hop = streaming_hop(&sequence);
        assert!(is_streaming(&hop.extra_attributes));
        let count = |key: &str| {
            hop.extra_attributes
                .iter()
                .find(|kv| kv.key == key)
                .and_then(|kv| kv.value.as_i64())
        };
        assert_eq!(count(RESPONSE_MESSAGES), Some(2));
        let answer = replayed(&hop);
        assert_eq!(
            answer.body.as_ref().map(Body::as_bytes),
            Some(&sequence[..])
        );
        assert!(
            answer
                .headers
                .contains(&(format!("{TRAILER_HEADER_PREFIX}grpc-status"), "0".into())),
            "{:?}",
            answer.headers
        );

        // A recorded answer cut short is no message sequence: UNIMPLEMENTED, with the reason.
        let mut broken = hop.clone();
        broken.response_body = Some(Body::Binary(sequence[..sequence.len() - 2].to_vec()));
        let answer = replayed(&broken);
        assert_eq!(answer.body, None);
        let trailer = |name: &str| {
            answer
                .headers
                .iter()
                .find(|(k, _)| k == &format!("{TRAILER_HEADER_PREFIX}{name}"))
                .map(|(_, v)| percent_encoding::percent_decode_str(v).decode_utf8_lossy())
        };
        assert_eq!(trailer("grpc-status").as_deref(), Some("12"));
        assert_eq!(
            trailer("grpc-message").as_deref(),
            Some(
                "softprobe cannot replay the streaming call shop.Inventory/Watch: its recorded \
                 answer is not a message sequence (a message announces 6 bytes but 4 follow); \
                 capture it again or answer it with a rule"
            )
        );
    }

    // The test messages are encoded with prost, a dependency of the `server` feature.
    #[cfg(feature = "server")]
    #[test]
    fn messages_read_without_their_schema() {
        #[derive(Clone, PartialEq, prost::Message)]
        struct Item {
            #[prost(string, tag = "1")]
            sku: String,
            #[prost(uint32, tag = "2")]
            qty: u32,
        }
        #[derive(Clone, PartialEq, prost::Message)]
        struct Order {
            #[prost(message, repeated, tag = "1")]
            items: Vec<Item>,
            #[prost(fixed64, tag = "3")]
            at: u64,
            #[prost(bytes = "vec", tag = "4")]
            raw: Vec<u8>,
        }
        let item = |sku: &str, qty| Item {
            sku: sku.into(),
            qty,
        };
        let order = Order {
            items: vec![item("mug", 1), item("tee", 2)],
            at: 7,
            raw: vec![0, 0xff],
        };
        let bytes = prost::Message::encode_to_vec(&order);
        assert_eq!(
            readable(&bytes, false).unwrap(),
            serde_json::json!({
                "1": [{"1": "mug", "2": 1}, {"1": "tee", "2": 2}],
                "3": 7,
                "4": "base64:AP8=",
            })
        );
        let one = prost::Message::encode_to_vec(&item("mug", 1));
        let framed = [frame(&one), frame(&one)].concat();
        assert_eq!(
            readable(&framed, true).unwrap(),
            serde_json::json!([{"1": "mug", "2": 1}, {"1": "mug", "2": 1}])
        );
        // Not protobuf: a truncated field, a field number 0.
        assert_eq!(readable(&[0x0a, 0x05, b'a'], false), None);
        assert_eq!(readable(&[0x00, 0x01], false), None);
    }

    #[test]
    fn frames_round_trip_and_bad_frames_are_named() {
        let framed = [frame(b"abc"), frame(b"")].concat();
        assert_eq!(unframe(&framed).unwrap(), vec![b"abc".to_vec(), vec![]]);
        assert_eq!(
            unframe(&[0, 0, 0, 0, 9, 1]).unwrap_err(),
            "a message announces 9 bytes but 1 follow"
        );
        assert!(
            unframe(&[1, 0, 0, 0, 0])
                .unwrap_err()
                .contains("compressed")
        );
        assert_eq!(
            unframe(&[0, 0]).unwrap_err(),
            "2 stray bytes after the last message"
        );
    }

    #[test]
    fn paths_content_types_and_statuses() {
        assert_eq!(
            split_path("/shop.Inventory/Reserve"),
            Some(("shop.Inventory", "Reserve"))
        );
        assert_eq!(split_path("/health"), None);
        assert!(is_grpc(Some("application/grpc")));
        assert!(is_grpc(Some("application/grpc+proto")));
        assert!(!is_grpc(Some("application/grpc-web")));
        assert!(!is_grpc(Some("application/json")));
        assert_eq!(status_name(0), "OK");
        assert_eq!(status_name(5), "NOT_FOUND");
    }
}
