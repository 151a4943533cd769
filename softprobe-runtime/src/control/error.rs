//! The control API's error answer: `{"error": {"code": CODE, "message": "..."}}` with the
//! status and code contract.md fixes. Every handler and extractor rejection ends here, so no
//! route ever answers a plain-text error.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::Error;

/// An error answer of the control API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 `invalid_request`; the message names the field or JSON path.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// 401 `missing_bearer_token`.
    pub fn missing_token() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "missing_bearer_token",
            "this runtime requires `Authorization: Bearer <token>` on /v1/ routes",
        )
    }

    /// 403 `invalid_bearer_token`.
    pub fn invalid_token() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "invalid_bearer_token",
            "the Authorization header does not carry the runtime's bearer token",
        )
    }

    /// 404 `unknown_session`.
    pub fn unknown_session(session_id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "unknown_session",
            format!("unknown session `{session_id}` (never created, or already closed)"),
        )
    }

    /// 404 `not_found` for a route that does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 405 `method_not_allowed`.
    pub fn method_not_allowed(method: &str, path: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{method} is not allowed on {path}"),
        )
    }

    /// 413 `payload_too_large`.
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request body exceeds the limit of {limit} bytes"),
        )
    }

    /// 415 `unsupported_media_type`.
    pub fn unsupported_media_type(found: &str, expected: &str) -> Self {
        let mut message = format!("content-type `{found}` is not accepted here; send {expected}");
        if found.starts_with("application/x-www-form-urlencoded") {
            // What `curl -d` sends unless told otherwise.
            message.push_str(" (with curl: -H 'content-type: application/json')");
        }
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            message,
        )
    }

    /// 421 `host_not_allowed`: the `Host` header names neither this runtime's loopback
    /// address nor a name given with `--public-host` (a DNS-rebinding page, or a client
    /// that needs the flag). `add_with` names the flag that adds host names.
    pub fn host_not_allowed(host: &str, add_with: &str) -> Self {
        Self::new(
            StatusCode::MISDIRECTED_REQUEST,
            "host_not_allowed",
            format!(
                "Host `{host}` is not a name of this runtime: it answers to localhost and \
                 loopback addresses; add other names with {add_with}"
            ),
        )
    }

    /// 403 `origin_not_allowed`: a browser request from another site. `allow_with` names
    /// the flag that allows origins.
    pub fn origin_not_allowed(origin: &str, allow_with: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "origin_not_allowed",
            format!(
                "Origin `{origin}` may not call this runtime: only its own origin may; allow \
                 a web page's origin with {allow_with}"
            ),
        )
    }

    /// 415 `unsupported_media_type` for a content-type browsers send cross-site unasked.
    pub fn simple_content_type(found: &str) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "content-type `{found}` is refused on requests that change state (any web page \
                 can send it cross-site); send content-type: application/json (an empty body \
                 is fine){}",
                if found.starts_with("application/x-www-form-urlencoded") {
                    " (with curl: -H 'content-type: application/json')"
                } else {
                    ""
                }
            ),
        )
    }

    /// 415 `unsupported_media_type` for a body sent without a content-type.
    pub fn missing_content_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "a request that changes state and carries a body must say what it is: send \
             content-type: application/json",
        )
    }

    /// 500 `internal_error`.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", message)
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The error code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        match &err {
            Error::UnknownSession { session_id } => ApiError::unknown_session(session_id),
            _ => {
                let status =
                    StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                ApiError::new(status, err.code(), err.to_string())
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(code = self.code, "{}", self.message);
        } else {
            tracing::debug!(code = self.code, status = %self.status, "{}", self.message);
        }
        let body = json!({"error": {"code": self.code, "message": self.message}});
        (self.status, Json(body)).into_response()
    }
}
