//! [`Exchange`]: the typed view of one HTTP hop, and its conversions to and from an OTLP
//! span. Reading understands every spelling in `spec/protocol/case-format.md`; writing
//! emits only the canonical one.

use std::fmt;

use base64::Engine as _;

use super::attributes as attr;
use super::ids::{SpanId, TraceId};
use super::otlp::{AnyValue, KeyValue, Span, attribute_map, span_kind};

/// Which leg of the service under test a hop is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// A request the service received (span kind SERVER).
    Inbound,
    /// A call the service made (span kind CLIENT).
    Outbound,
}

impl Direction {
    /// `inbound` or `outbound`, as in `sp.traffic.direction`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }

    /// Parses `inbound`/`outbound`, any case.
    pub fn parse(s: &str) -> Option<Self> {
        if s.eq_ignore_ascii_case("inbound") {
            Some(Direction::Inbound)
        } else if s.eq_ignore_ascii_case("outbound") {
            Some(Direction::Outbound)
        } else {
            None
        }
    }

    /// The OTLP span kind of this direction.
    pub fn span_kind(self) -> i32 {
        match self {
            Direction::Inbound => span_kind::SERVER,
            Direction::Outbound => span_kind::CLIENT,
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request or response body.
#[derive(Clone, PartialEq, Eq)]
pub enum Body {
    /// UTF-8 text, stored as is.
    Text(String),
    /// Anything else, stored as base64 with a marker attribute so the bytes come back exactly.
    Binary(Vec<u8>),
}

impl Body {
    /// Text when the bytes are UTF-8, binary otherwise.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        match String::from_utf8(bytes) {
            Ok(s) => Body::Text(s),
            Err(e) => Body::Binary(e.into_bytes()),
        }
    }

    /// The exact bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Body::Text(s) => s.as_bytes(),
            Body::Binary(b) => b,
        }
    }

    /// The text, when the body is text.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Body::Text(s) => Some(s),
            Body::Binary(_) => None,
        }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// True for a zero-length body.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Body::Text(s) => f.debug_tuple("Text").field(s).finish(),
            Body::Binary(b) => write!(f, "Binary({} bytes)", b.len()),
        }
    }
}

/// One HTTP hop: the request, the response, and where it sits in its trace.
#[derive(Debug, Clone, PartialEq)]
pub struct Exchange {
    /// Inbound (to the service under test) or outbound (from it).
    pub direction: Direction,
    /// Logical service name (`sp.service.name`, else the resource's `service.name`).
    pub service: Option<String>,
    /// Session that captured the hop.
    pub session_id: Option<String>,
    /// `extract` in case files, `inject` on inject requests.
    pub span_type: Option<String>,
    /// Uppercase HTTP method.
    pub method: String,
    /// `http` or `https`, when known.
    pub scheme: Option<String>,
    /// Host, with the port when not the scheme's default; may be empty for inbound hops.
    pub host: String,
    /// Path, starting with `/`, without the query.
    pub path: String,
    /// Query string without `?`.
    pub query: Option<String>,
    /// Request headers, lowercase names, in recorded order (pseudo-headers excluded).
    pub request_headers: Vec<(String, String)>,
    /// Request body, when there was one.
    pub request_body: Option<Body>,
    /// Response status, when the hop got an answer.
    pub status: Option<u16>,
    /// Response headers, lowercase names, in recorded order.
    pub response_headers: Vec<(String, String)>,
    /// Response body, when there was one.
    pub response_body: Option<Body>,
    /// Trace the hop belongs to.
    pub trace_id: TraceId,
    /// The hop's own span id.
    pub span_id: SpanId,
    /// Parent span (for an outbound hop, normally the inbound span of the same trace).
    pub parent_span_id: Option<SpanId>,
    /// Span name, e.g. `HTTP POST`.
    pub name: String,
    /// Start, nanoseconds since the Unix epoch.
    pub start_time_unix_nano: u64,
    /// End, nanoseconds since the Unix epoch.
    pub end_time_unix_nano: u64,
    /// Attributes the view does not model, kept verbatim in their order.
    pub extra_attributes: Vec<KeyValue>,
}

/// Why a span is not a readable HTTP hop.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExchangeError {
    /// No method under any accepted spelling.
    #[error(
        "span has no HTTP method: expected attribute `http.request.method` (or `http.method`, or `http.request.header.:method`)"
    )]
    MissingMethod,
    /// No path under any accepted spelling.
    #[error(
        "span has no request path: expected attribute `url.path` (or `http.target`, `url.full`, or `http.request.header.:path`)"
    )]
    MissingPath,
    /// Neither `sp.traffic.direction` nor a server/client span kind.
    #[error(
        "span has no direction: expected `sp.traffic.direction` = \"inbound\" or \"outbound\", or span kind 2 (server) or 3 (client)"
    )]
    MissingDirection,
    /// An attribute is present with an unusable value.
    #[error("attribute `{key}` {problem}")]
    BadAttribute {
        /// The attribute.
        key: String,
        /// What is wrong with it.
        problem: String,
    },
}

impl Exchange {
    /// The URL of the request: `scheme://host/path?query`, or just `/path?query` when the
    /// host is unknown.
    pub fn url(&self) -> String {
        hop_url(
            self.scheme.as_deref(),
            &self.host,
            &self.path,
            self.query.as_deref(),
        )
    }

    /// The first request header with this (case-insensitive) name.
    pub fn request_header(&self, name: &str) -> Option<&str> {
        crate::headers::find(&self.request_headers, name)
    }

    /// The first response header with this (case-insensitive) name.
    pub fn response_header(&self, name: &str) -> Option<&str> {
        crate::headers::find(&self.response_headers, name)
    }

    /// Reads a span. `resource_service` is the `service.name` of the span's resource.
    pub fn from_span(span: &Span, resource_service: Option<&str>) -> Result<Self, ExchangeError> {
        let attrs = attribute_map(&span.attributes);
        let get_str = |key: &str| attrs.get(key).and_then(|v| v.as_str());

        let direction = match get_str(attr::TRAFFIC_DIRECTION).and_then(Direction::parse) {
            Some(d) => d,
            None => match span.kind {
                span_kind::SERVER => Direction::Inbound,
                span_kind::CLIENT => Direction::Outbound,
                _ => return Err(ExchangeError::MissingDirection),
            },
        };

        // url.full, when present, fills whatever the split attributes leave out.
        let full = get_str(attr::LEGACY_URL_FULL).map(split_url);

        let method = get_str(attr::REQUEST_METHOD)
            .or_else(|| get_str(attr::LEGACY_METHOD))
            .or_else(|| get_str(attr::PSEUDO_METHOD))
            .filter(|m| !m.is_empty())
            .ok_or(ExchangeError::MissingMethod)?
            .to_ascii_uppercase();

        let target = get_str(attr::URL_PATH)
            .or_else(|| get_str(attr::LEGACY_TARGET))
            .map(str::to_owned)
            .or_else(|| full.as_ref().map(|f| f.path_and_query.clone()))
            .or_else(|| get_str(attr::PSEUDO_PATH).map(str::to_owned))
            .filter(|p| !p.is_empty())
            .ok_or(ExchangeError::MissingPath)?;
        // The original proxy writes the query inside url.path; url.query wins when both exist.
        let (path, mut query) = match target.split_once('?') {
            Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
            None => (target, None),
        };
        if let Some(q) = get_str(attr::URL_QUERY) {
            query = Some(q.to_owned());
        }
        let path = if path.starts_with('/') {
            path
        } else {
            format!("/{path}")
        };

        let host = get_str(attr::URL_HOST)
            .map(str::to_owned)
            .or_else(|| full.as_ref().map(|f| f.host.clone()))
            .or_else(|| get_str(attr::PSEUDO_AUTHORITY).map(str::to_owned))
            .unwrap_or_default();
        let scheme = get_str(attr::URL_SCHEME)
            .map(str::to_owned)
            .or_else(|| full.as_ref().and_then(|f| f.scheme.clone()))
            .or_else(|| get_str(attr::PSEUDO_SCHEME).map(str::to_owned));

        let status = match attrs
            .get(attr::RESPONSE_STATUS_CODE)
            .or_else(|| attrs.get(attr::LEGACY_STATUS_CODE))
            .or_else(|| attrs.get(attr::PSEUDO_STATUS))
        {
            None => None,
            Some(v) => {
                let code = v.as_i64().ok_or_else(|| ExchangeError::BadAttribute {
                    key: attr::RESPONSE_STATUS_CODE.into(),
                    problem: "is not an integer".into(),
                })?;
                Some(
                    u16::try_from(code)
                        .ok()
                        .filter(|c| (100..=999).contains(c))
                        .ok_or_else(|| ExchangeError::BadAttribute {
                            key: attr::RESPONSE_STATUS_CODE.into(),
                            problem: format!("{code} is not an HTTP status (100-999)"),
                        })?,
                )
            }
        };

        let mut request_headers = Vec::new();
        let mut response_headers = Vec::new();
        let mut extra_attributes = Vec::new();
        for kv in &span.attributes {
            if let Some(name) = kv.key.strip_prefix(attr::REQUEST_HEADER_PREFIX) {
                if !name.starts_with(':') {
                    request_headers.push((name.to_ascii_lowercase(), header_value(kv)?));
                }
            } else if let Some(name) = kv.key.strip_prefix(attr::RESPONSE_HEADER_PREFIX) {
                if !name.starts_with(':') {
                    response_headers.push((name.to_ascii_lowercase(), header_value(kv)?));
                }
            } else if !attr::is_modelled(&kv.key) {
                extra_attributes.push(kv.clone());
            }
        }

        let request_body = read_body(
            attrs.get(attr::REQUEST_BODY).copied(),
            get_str(attr::REQUEST_BODY_ENCODING),
            crate::headers::find(&request_headers, "content-type"),
            attr::REQUEST_BODY,
        )?;
        let response_body = read_body(
            attrs.get(attr::RESPONSE_BODY).copied(),
            get_str(attr::RESPONSE_BODY_ENCODING),
            crate::headers::find(&response_headers, "content-type"),
            attr::RESPONSE_BODY,
        )?;

        Ok(Exchange {
            direction,
            service: get_str(attr::SERVICE_NAME)
                .or(resource_service)
                .map(str::to_owned),
            session_id: get_str(attr::SESSION_ID).map(str::to_owned),
            span_type: get_str(attr::SPAN_TYPE).map(str::to_owned),
            method,
            scheme,
            host,
            path,
            query,
            request_headers,
            request_body,
            status,
            response_headers,
            response_body,
            trace_id: span.trace_id,
            span_id: span.span_id,
            parent_span_id: span.parent_span_id,
            name: span.name.clone(),
            start_time_unix_nano: span.start_time_unix_nano,
            end_time_unix_nano: span.end_time_unix_nano,
            extra_attributes,
        })
    }

    /// Writes the hop as a span with the canonical vocabulary.
    pub fn to_span(&self) -> Span {
        let mut a = Vec::with_capacity(
            12 + self.request_headers.len()
                + self.response_headers.len()
                + self.extra_attributes.len(),
        );
        if let Some(s) = &self.session_id {
            a.push(KeyValue::string(attr::SESSION_ID, s));
        }
        a.push(KeyValue::string(
            attr::TRAFFIC_DIRECTION,
            self.direction.as_str(),
        ));
        a.push(KeyValue::string(
            attr::SPAN_TYPE,
            self.span_type.as_deref().unwrap_or("extract"),
        ));
        if let Some(s) = &self.service {
            a.push(KeyValue::string(attr::SERVICE_NAME, s));
        }
        a.push(KeyValue::string(attr::REQUEST_METHOD, &self.method));
        if let Some(s) = &self.scheme {
            a.push(KeyValue::string(attr::URL_SCHEME, s));
        }
        a.push(KeyValue::string(attr::URL_HOST, &self.host));
        a.push(KeyValue::string(attr::URL_PATH, &self.path));
        if let Some(q) = &self.query {
            a.push(KeyValue::string(attr::URL_QUERY, q));
        }
        for (name, value) in &self.request_headers {
            a.push(KeyValue::string(
                format!("{}{name}", attr::REQUEST_HEADER_PREFIX),
                value,
            ));
        }
        write_body(
            &mut a,
            self.request_body.as_ref(),
            attr::REQUEST_BODY,
            attr::REQUEST_BODY_ENCODING,
        );
        if let Some(status) = self.status {
            a.push(KeyValue::int(attr::RESPONSE_STATUS_CODE, i64::from(status)));
        }
        for (name, value) in &self.response_headers {
            a.push(KeyValue::string(
                format!("{}{name}", attr::RESPONSE_HEADER_PREFIX),
                value,
            ));
        }
        write_body(
            &mut a,
            self.response_body.as_ref(),
            attr::RESPONSE_BODY,
            attr::RESPONSE_BODY_ENCODING,
        );
        a.extend(self.extra_attributes.iter().cloned());

        Span {
            trace_id: self.trace_id,
            span_id: self.span_id,
            parent_span_id: self.parent_span_id,
            name: if self.name.is_empty() {
                format!("HTTP {}", self.method)
            } else {
                self.name.clone()
            },
            kind: self.direction.span_kind(),
            start_time_unix_nano: self.start_time_unix_nano,
            end_time_unix_nano: self.end_time_unix_nano,
            attributes: a,
            ..Span::default()
        }
    }
}

/// `scheme://host/path?query` (`http` when the scheme is unknown), or just `/path?query`
/// when the host is unknown; [`Exchange::url`] and [`crate::request::Request::url`].
pub(crate) fn hop_url(scheme: Option<&str>, host: &str, path: &str, query: Option<&str>) -> String {
    let mut out = String::new();
    if !host.is_empty() {
        out.push_str(scheme.unwrap_or("http"));
        out.push_str("://");
        out.push_str(host);
    }
    out.push_str(path);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

fn header_value(kv: &KeyValue) -> Result<String, ExchangeError> {
    match &kv.value {
        AnyValue::String(s) => Ok(s.clone()),
        AnyValue::Int(i) => Ok(i.to_string()),
        AnyValue::Bool(b) => Ok(b.to_string()),
        AnyValue::Double(d) => Ok(d.to_string()),
        // OTel semantic conventions allow a header as an array of strings.
        AnyValue::Array(items) => Ok(items
            .iter()
            .filter_map(AnyValue::as_str)
            .collect::<Vec<_>>()
            .join(", ")),
        _ => Err(ExchangeError::BadAttribute {
            key: kv.key.clone(),
            problem: "must be a string".into(),
        }),
    }
}

fn is_textual(content_type: &str) -> bool {
    let ct = content_type.to_ascii_lowercase();
    ct.starts_with("text/")
        || ct.contains("json")
        || ct.contains("xml")
        || ct.contains("x-www-form-urlencoded")
        || ct.contains("javascript")
        || ct.contains("graphql")
}

fn read_body(
    value: Option<&AnyValue>,
    encoding: Option<&str>,
    content_type: Option<&str>,
    key: &str,
) -> Result<Option<Body>, ExchangeError> {
    let b64 = &base64::engine::general_purpose::STANDARD;
    let Some(value) = value else {
        return Ok(None);
    };
    match value {
        AnyValue::Bytes(b) => Ok(Some(Body::Binary(b.clone()))),
        AnyValue::String(s) => {
            if encoding.is_some_and(|e| e.eq_ignore_ascii_case(attr::BASE64)) {
                let bytes = b64
                    .decode(s.as_bytes())
                    .map_err(|e| ExchangeError::BadAttribute {
                        key: key.into(),
                        problem: format!("is marked base64 but does not decode: {e}"),
                    })?;
                return Ok(Some(Body::Binary(bytes)));
            }
            // The original proxy base64-encodes non-textual bodies without a marker.
            if let Some(ct) = content_type.filter(|ct| !is_textual(ct))
                && !s.is_empty()
                && !ct.is_empty()
                && let Ok(bytes) = b64.decode(s.as_bytes())
            {
                return Ok(Some(Body::Binary(bytes)));
            }
            Ok(Some(Body::Text(s.clone())))
        }
        AnyValue::Empty => Ok(None),
        _ => Err(ExchangeError::BadAttribute {
            key: key.into(),
            problem: "must be a stringValue or bytesValue".into(),
        }),
    }
}

fn write_body(out: &mut Vec<KeyValue>, body: Option<&Body>, key: &str, marker: &str) {
    match body {
        None => {}
        Some(Body::Text(s)) => out.push(KeyValue::string(key, s)),
        Some(Body::Binary(b)) => {
            out.push(KeyValue::string(
                key,
                base64::engine::general_purpose::STANDARD.encode(b),
            ));
            out.push(KeyValue::string(marker, attr::BASE64));
        }
    }
}

struct SplitUrl {
    scheme: Option<String>,
    host: String,
    path_and_query: String,
}

fn split_url(full: &str) -> SplitUrl {
    let (scheme, rest) = match full.split_once("://") {
        Some((s, r)) => (Some(s.to_ascii_lowercase()), r),
        None => (None, full),
    };
    if scheme.is_none() && full.starts_with('/') {
        return SplitUrl {
            scheme,
            host: String::new(),
            path_and_query: full.to_owned(),
        };
    }
    let cut = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(cut);
    // Drop userinfo; it never belongs in a recorded host.
    let host = authority.rsplit('@').next().unwrap_or(authority);
    let tail = tail.split('#').next().unwrap_or("");
    let path_and_query = if tail.is_empty() {
        "/".to_owned()
    } else if tail.starts_with('?') {
        format!("/{tail}")
    } else {
        tail.to_owned()
    };
    SplitUrl {
        scheme,
        host: host.to_owned(),
        path_and_query,
    }
}

impl Exchange {
    /// A hop with only its direction, method, host and path: no headers, bodies, status or
    /// timing, and zero trace and span ids. What code that builds a hop field by field (and
    /// tests) starts from.
    pub fn new(
        direction: Direction,
        method: impl Into<String>,
        host: impl Into<String>,
        path: impl Into<String>,
    ) -> Self {
        Exchange {
            direction,
            service: None,
            session_id: None,
            span_type: None,
            method: method.into(),
            scheme: None,
            host: host.into(),
            path: path.into(),
            query: None,
            request_headers: Vec::new(),
            request_body: None,
            status: None,
            response_headers: Vec::new(),
            response_body: None,
            trace_id: TraceId([0; 16]),
            span_id: SpanId([0; 8]),
            parent_span_id: None,
            name: String::new(),
            start_time_unix_nano: 0,
            end_time_unix_nano: 0,
            extra_attributes: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(attrs: Vec<KeyValue>, kind: i32) -> Span {
        Span {
            trace_id: TraceId([1; 16]),
            span_id: SpanId([2; 8]),
            kind,
            attributes: attrs,
            ..Span::default()
        }
    }

    #[test]
    fn legacy_aliases_and_url_full_are_understood() {
        let s = span(
            vec![
                KeyValue::string("sp.traffic.direction", "outbound"),
                KeyValue::string("http.method", "post"),
                KeyValue::string(
                    "url.full",
                    "https://api.stripe.com/v1/payment_intents?expand=x",
                ),
                KeyValue::string("http.status_code", "200"),
            ],
            0,
        );
        let ex = Exchange::from_span(&s, None).unwrap();
        assert_eq!(ex.method, "POST");
        assert_eq!(ex.scheme.as_deref(), Some("https"));
        assert_eq!(ex.host, "api.stripe.com");
        assert_eq!(ex.path, "/v1/payment_intents");
        assert_eq!(ex.query.as_deref(), Some("expand=x"));
        assert_eq!(ex.status, Some(200));
        assert_eq!(
            ex.url(),
            "https://api.stripe.com/v1/payment_intents?expand=x"
        );
    }

    #[test]
    fn pseudo_header_fallbacks_as_the_original_proxy_sends_them() {
        let s = span(
            vec![
                KeyValue::string("http.request.header.:method", "GET"),
                KeyValue::string("http.request.header.:path", "/shipping?zip=1"),
                KeyValue::string("http.request.header.:authority", "fragment"),
                KeyValue::string("http.request.header.accept", "*/*"),
            ],
            span_kind::CLIENT,
        );
        let ex = Exchange::from_span(&s, Some("checkout")).unwrap();
        assert_eq!(ex.direction, Direction::Outbound);
        assert_eq!((ex.method.as_str(), ex.path.as_str()), ("GET", "/shipping"));
        assert_eq!(ex.query.as_deref(), Some("zip=1"));
        assert_eq!(ex.host, "fragment");
        assert_eq!(ex.service.as_deref(), Some("checkout"));
        assert_eq!(ex.request_headers, vec![("accept".into(), "*/*".into())]);
    }

    #[test]
    fn binary_bodies_round_trip_byte_exact() {
        let bytes: Vec<u8> = (0..=255).collect();
        let ex = Exchange {
            direction: Direction::Outbound,
            service: None,
            session_id: None,
            span_type: None,
            method: "GET".into(),
            scheme: Some("http".into()),
            host: "cdn".into(),
            path: "/logo.png".into(),
            query: None,
            request_headers: vec![],
            request_body: None,
            status: Some(200),
            response_headers: vec![("content-type".into(), "image/png".into())],
            response_body: Some(Body::from_bytes(bytes.clone())),
            trace_id: TraceId([1; 16]),
            span_id: SpanId([2; 8]),
            parent_span_id: None,
            name: "HTTP GET".into(),
            start_time_unix_nano: 1,
            end_time_unix_nano: 2,
            extra_attributes: vec![KeyValue::string("custom.thing", "kept")],
        };
        let back = Exchange::from_span(&ex.to_span(), None).unwrap();
        assert_eq!(back.response_body.unwrap().as_bytes(), &bytes[..]);
        assert_eq!(back.extra_attributes, ex.extra_attributes);
    }

    #[test]
    fn missing_method_is_named() {
        let s = span(vec![KeyValue::string("url.path", "/x")], span_kind::SERVER);
        let err = Exchange::from_span(&s, None).unwrap_err();
        assert!(err.to_string().contains("http.request.method"), "{err}");
    }
}
