//! The proxy OTLP API: `POST /v1/inject` (may this hop be answered locally?) and
//! `POST /v1/traces` (record these hops), in OTLP JSON or protobuf.
//!
//! [`convert`] maps the protobuf messages to the case model; [`WireFormat`], [`decode`] and
//! [`encode`] pick and apply the payload format; the private `handlers` module holds the two
//! axum handlers, which call the same store operations
//! ([`crate::session::SessionStore::inject`] and [`crate::session::SessionStore::record`])
//! that an in-process proxy calls directly.

pub mod convert;
pub(crate) mod handlers;

use prost::Message as _;

use crate::case::TracesData;
use crate::error::{Error, Result};

/// `content-type` of OTLP protobuf payloads.
pub const PROTOBUF_CONTENT_TYPE: &str = "application/x-protobuf";
/// `content-type` of OTLP JSON payloads.
pub const JSON_CONTENT_TYPE: &str = "application/json";

/// How an OTLP payload is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireFormat {
    /// OTLP JSON (ids as hex or base64, `intValue` as number or string).
    Json,
    /// OTLP protobuf.
    Protobuf,
}

impl WireFormat {
    /// The format named by a media type (parameters ignored), if it is one of ours.
    pub fn from_media_type(media_type: &str) -> Option<Self> {
        let essence = media_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "application/x-protobuf"
            | "application/protobuf"
            | "application/vnd.google.protobuf" => Some(WireFormat::Protobuf),
            "application/json" => Some(WireFormat::Json),
            e if e.starts_with("application/") && e.ends_with("+json") => Some(WireFormat::Json),
            _ => None,
        }
    }

    /// The format of a request body: JSON when no `content-type` is given.
    pub fn of_request(content_type: Option<&str>) -> Option<Self> {
        match content_type {
            None => Some(WireFormat::Json),
            Some(ct) if ct.trim().is_empty() => Some(WireFormat::Json),
            Some(ct) => Self::from_media_type(ct),
        }
    }

    /// The format to answer in: the first of our formats the `accept` header lists, else
    /// the request's own format.
    pub fn for_response(accept: Option<&str>, request: WireFormat) -> Self {
        accept
            .into_iter()
            .flat_map(|a| a.split(','))
            .find_map(Self::from_media_type)
            .unwrap_or(request)
    }

    /// The `content-type` to send for this format.
    pub fn content_type(self) -> &'static str {
        match self {
            WireFormat::Json => JSON_CONTENT_TYPE,
            WireFormat::Protobuf => PROTOBUF_CONTENT_TYPE,
        }
    }
}

/// Decodes an OTLP `TracesData` (or `ExportTraceServiceRequest`, the same shape) payload.
/// Errors name the JSON path (and line/column) or the protobuf decoding problem.
pub fn decode(bytes: &[u8], format: WireFormat) -> Result<TracesData> {
    match format {
        WireFormat::Json => crate::case::validate::locate::from_json(bytes).map_err(|mut err| {
            // A truncated document has no place to name but the document.
            if err.category == serde_json::error::Category::Eof {
                err.json_path = "$".to_owned();
            }
            Error::invalid(format!("OTLP JSON {err}"))
        }),
        WireFormat::Protobuf => {
            let data = opentelemetry_proto::tonic::trace::v1::TracesData::decode(bytes)
                .map_err(|e| Error::invalid(format!("OTLP protobuf: {e}")))?;
            convert::traces_from_proto(data)
        }
    }
}

/// Encodes `TracesData` in the given format.
pub fn encode(data: &TracesData, format: WireFormat) -> Vec<u8> {
    match format {
        // Plain data always serializes.
        WireFormat::Json => serde_json::to_vec(data).expect("TracesData serializes to JSON"),
        WireFormat::Protobuf => convert::traces_to_proto(data).encode_to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_follow_accept_then_content_type() {
        assert_eq!(WireFormat::of_request(None), Some(WireFormat::Json));
        assert_eq!(
            WireFormat::of_request(Some("application/x-protobuf")),
            Some(WireFormat::Protobuf)
        );
        assert_eq!(
            WireFormat::of_request(Some("application/json; charset=utf-8")),
            Some(WireFormat::Json)
        );
        assert_eq!(WireFormat::of_request(Some("text/plain")), None);
        assert_eq!(
            WireFormat::for_response(Some("application/json"), WireFormat::Protobuf),
            WireFormat::Json
        );
        assert_eq!(
            WireFormat::for_response(Some("*/*"), WireFormat::Protobuf),
            WireFormat::Protobuf
        );
        assert_eq!(
            WireFormat::for_response(None, WireFormat::Json),
            WireFormat::Json
        );
    }

    #[test]
    fn json_errors_name_the_path() {
        let err = decode(
            br#"{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": 5}]}]}]}"#,
            WireFormat::Json,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("OTLP JSON $.resourceSpans[0].scopeSpans[0].spans[0].traceId: "),
            "{err}"
        );
        assert!(err.ends_with("(line 1, column 59)"), "{err}");
    }

    #[test]
    fn protobuf_garbage_is_an_invalid_request() {
        let err = decode(b"\xff\xff\xff", WireFormat::Protobuf).unwrap_err();
        assert_eq!(err.code(), "invalid_request");
        assert!(err.to_string().starts_with("OTLP protobuf: "), "{err}");
    }
}
