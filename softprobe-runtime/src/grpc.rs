//! gRPC calls as hops. A request with an `application/grpc` content type is a call of
//! `package.Service/Method` (its path); the proxies forward it over HTTP/2 (h2c to a plain
//! upstream) with its trailers, and a capture records it with the OpenTelemetry `rpc.*`
//! attributes, the messages without their 5-byte gRPC framing, and the trailers. Replay frames
//! the recorded message again and sends the recorded trailers.
//!
//! Unary calls (one message each way) are recorded and replayed. A streaming call (any other
//! number of messages) is passed through and recorded with its framed bodies as they came and
//! `sp.grpc.streaming`; a replay answers it at once with `UNIMPLEMENTED` and a message saying
//! so, never a hang. `spec/protocol/case-format.md` ("gRPC hops") is the contract.

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
        _ => {
            attrs.push(streaming_flag());
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
        Ok(messages) if messages.is_empty() => None,
        _ => {
            if !request_streaming {
                extra.push(streaming_flag());
            }
            Some(Body::Binary(bytes.to_vec()))
        }
    }
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
/// the trailers carried in [`TRAILER_HEADER_PREFIX`] headers. A streaming call is answered
/// with `UNIMPLEMENTED`, saying why.
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
    if streaming {
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
                        "softprobe cannot replay the streaming call {} yet; capture it as a \
                         unary call or answer it with a rule",
                        call_name(ex)
                    ),
                    percent_encoding::NON_ALPHANUMERIC,
                )
                .to_string(),
            ),
        ];
    } else if let Some(body) = response.body.take() {
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

#[cfg(test)]
mod tests {
    use super::*;

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
