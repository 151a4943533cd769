//! The attribute vocabulary of case-file spans (`spec/protocol/case-format.md`): the names
//! written, and the legacy spellings still read.

/// Session that captured the span.
pub const SESSION_ID: &str = "sp.session.id";
/// `inbound` or `outbound`.
pub const TRAFFIC_DIRECTION: &str = "sp.traffic.direction";
/// `extract` (case files, `/v1/traces`) or `inject` (`/v1/inject` requests).
pub const SPAN_TYPE: &str = "sp.span.type";
/// Logical service name; also read from the resource's `service.name`.
pub const SERVICE_NAME: &str = "sp.service.name";
/// Resource attribute naming the service.
pub const RESOURCE_SERVICE_NAME: &str = "service.name";

/// HTTP method.
pub const REQUEST_METHOD: &str = "http.request.method";
/// `http` or `https`.
pub const URL_SCHEME: &str = "url.scheme";
/// Host, with the port when it is not the scheme's default.
pub const URL_HOST: &str = "url.host";
/// Path, starting with `/`, without the query string.
pub const URL_PATH: &str = "url.path";
/// Query string without the leading `?`.
pub const URL_QUERY: &str = "url.query";
/// Prefix of one attribute per request header, lowercase name appended.
pub const REQUEST_HEADER_PREFIX: &str = "http.request.header.";
/// Request body (UTF-8, or base64 when [`REQUEST_BODY_ENCODING`] says so).
pub const REQUEST_BODY: &str = "http.request.body";
/// Marks a base64 request body: value `base64`.
pub const REQUEST_BODY_ENCODING: &str = "sp.http.request.body.encoding";
/// Response status code.
pub const RESPONSE_STATUS_CODE: &str = "http.response.status_code";
/// Prefix of one attribute per response header, lowercase name appended.
pub const RESPONSE_HEADER_PREFIX: &str = "http.response.header.";
/// Response body (UTF-8, or base64 when [`RESPONSE_BODY_ENCODING`] says so).
pub const RESPONSE_BODY: &str = "http.response.body";
/// Marks a base64 response body: value `base64`.
pub const RESPONSE_BODY_ENCODING: &str = "sp.http.response.body.encoding";

/// Legacy spelling of [`REQUEST_METHOD`].
pub const LEGACY_METHOD: &str = "http.method";
/// Legacy spelling of [`RESPONSE_STATUS_CODE`].
pub const LEGACY_STATUS_CODE: &str = "http.status_code";
/// Legacy spelling of [`URL_PATH`] (path and query).
pub const LEGACY_TARGET: &str = "http.target";
/// Full URL; read to fill scheme, host, path and query when those are missing.
pub const LEGACY_URL_FULL: &str = "url.full";
/// Pseudo-header fallback for the method (sent by the original proxy).
pub const PSEUDO_METHOD: &str = "http.request.header.:method";
/// Pseudo-header fallback for the path (sent by the original proxy).
pub const PSEUDO_PATH: &str = "http.request.header.:path";
/// Pseudo-header fallback for the host.
pub const PSEUDO_AUTHORITY: &str = "http.request.header.:authority";
/// Pseudo-header fallback for the scheme.
pub const PSEUDO_SCHEME: &str = "http.request.header.:scheme";
/// Pseudo-header fallback for the response status.
pub const PSEUDO_STATUS: &str = "http.response.header.:status";

/// The value of the body encoding markers for binary bodies.
pub const BASE64: &str = "base64";

/// Every attribute that [`super::Exchange`] models; anything else is kept verbatim in
/// [`super::Exchange::extra_attributes`].
pub(crate) fn is_modelled(key: &str) -> bool {
    matches!(
        key,
        SESSION_ID
            | TRAFFIC_DIRECTION
            | SPAN_TYPE
            | SERVICE_NAME
            | REQUEST_METHOD
            | URL_SCHEME
            | URL_HOST
            | URL_PATH
            | URL_QUERY
            | REQUEST_BODY
            | REQUEST_BODY_ENCODING
            | RESPONSE_STATUS_CODE
            | RESPONSE_BODY
            | RESPONSE_BODY_ENCODING
            | LEGACY_METHOD
            | LEGACY_STATUS_CODE
            | LEGACY_TARGET
            | LEGACY_URL_FULL
    ) || key.starts_with(REQUEST_HEADER_PREFIX)
        || key.starts_with(RESPONSE_HEADER_PREFIX)
}
