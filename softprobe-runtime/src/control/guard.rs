//! Who may talk to the runtime from a browser: the `Host`, `Origin` and `content-type`
//! checks applied to every route of [`super::app`] (control API, OTLP API, and any page
//! served later), before auth and before any handler runs.
//!
//! The attacks they stop: a web page on a DNS-rebinding name that resolves to 127.0.0.1 (its
//! requests carry `Host: evil.example`), a page on another site posting to the runtime
//! (its requests carry `Origin: https://evil.example`), and a "simple" cross-site request
//! that needs no preflight (`text/plain`, form and multipart bodies). The rules:
//!
//! 1. `Host` must name this runtime: `localhost`, a loopback address, the address the
//!    runtime is bound to (any address when bound to `0.0.0.0`/`::`), or a name given with
//!    `--public-host`. Otherwise `421 host_not_allowed`.
//! 2. A request with an `Origin` must come from the runtime's own origin (same host and
//!    port as `Host`) or from an origin given with `--allow-origin`. Otherwise
//!    `403 origin_not_allowed`. CORS headers are sent only for the origins so given.
//! 3. A state-changing request (any method but GET, HEAD and OPTIONS) must not use a
//!    content-type a browser may send cross-site without a preflight (`text/plain`,
//!    `application/x-www-form-urlencoded`, `multipart/form-data`), nor carry a body with no
//!    content-type at all: `415 unsupported_media_type`. A request with neither body nor
//!    content-type (`curl -X POST .../close`) is accepted when it carries no `Origin`:
//!    browsers add `Origin` to every such request, so only non-browser clients reach it.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{Request, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST, ORIGIN, TRANSFER_ENCODING};
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;

/// The flag (and variable) that adds host names the runtime answers to.
pub const PUBLIC_HOST_FLAG: &str = "--public-host (SOFTPROBE_PUBLIC_HOSTS)";
/// The flag (and variable) that allows browser origins.
pub const ALLOW_ORIGIN_FLAG: &str = "--allow-origin (SOFTPROBE_ALLOWED_ORIGINS)";

/// Which `Host` names and browser origins the runtime accepts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Access {
    /// Names (without port, compared case-insensitively) accepted in `Host` besides
    /// loopback names and the bound address: the names clients behind a load balancer or in
    /// other containers use.
    pub public_hosts: Vec<String>,
    /// Browser origins (`scheme://host[:port]`) allowed to call the runtime cross-origin;
    /// only these get CORS headers.
    pub allowed_origins: Vec<String>,
    /// The address the runtime is bound to: its IP is accepted in `Host` (every IP when it
    /// is unspecified, `0.0.0.0` or `::`).
    pub bound: Option<SocketAddr>,
}

impl Access {
    /// Whether `host` (a `Host` value, port optional) names this runtime.
    pub fn host_allowed(&self, host: &str) -> bool {
        let name = host_name(host);
        if name.is_empty() {
            return false;
        }
        if let Ok(ip) = name.parse::<IpAddr>() {
            return is_loopback(ip)
                || self
                    .bound
                    .is_some_and(|b| b.ip().is_unspecified() || b.ip() == ip);
        }
        let name = name.trim_end_matches('.');
        name.eq_ignore_ascii_case("localhost")
            || self.public_hosts.iter().any(|h| {
                host_name(h)
                    .trim_end_matches('.')
                    .eq_ignore_ascii_case(name)
            })
    }

    /// Whether `origin` was allowed explicitly (and so gets CORS headers).
    pub fn origin_listed(&self, origin: &str) -> bool {
        let origin = origin.trim_end_matches('/');
        self.allowed_origins
            .iter()
            .any(|o| o.trim_end_matches('/').eq_ignore_ascii_case(origin))
    }
}

/// The host part of a `Host` value or a `host[:port]` entry, brackets removed from IPv6.
fn host_name(host: &str) -> &str {
    let host = host.trim();
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    match host.rsplit_once(':') {
        // A bare IPv6 address has several colons and no port.
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => host,
    }
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// The authority (`host[:port]`) the request was sent to: the HTTP/2 `:authority` or the
/// `Host` header.
fn request_host(req: &Request) -> Option<String> {
    if let Some(authority) = req.uri().authority() {
        return Some(authority.as_str().to_owned());
    }
    req.headers()
        .get(HOST)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// Whether `origin` is the runtime's own origin: same host and port as the request's.
fn same_origin(origin: &str, host: Option<&str>) -> bool {
    let Some(host) = host else { return false };
    let Some((_, authority)) = origin.split_once("://") else {
        return false;
    };
    let authority = authority.trim_end_matches('/');
    // `Origin` omits the default port; `Host` may or may not.
    let strip_default = |a: &str| -> String {
        let a = a.to_ascii_lowercase();
        a.strip_suffix(":80")
            .or_else(|| a.strip_suffix(":443"))
            .map(str::to_owned)
            .unwrap_or(a)
    };
    strip_default(authority) == strip_default(host)
}

/// A content-type a browser may send cross-site without asking first (the CORS-safelisted
/// request content-types of the Fetch standard).
fn is_simple_content_type(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    matches!(
        essence.as_str(),
        "text/plain" | "application/x-www-form-urlencoded" | "multipart/form-data"
    )
}

fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(TRANSFER_ENCODING)
        || headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0")
}

/// Checks `req` against the rules of this module; `Err` is the answer to send.
pub(crate) fn check(access: &Access, req: &Request) -> Result<(), ApiError> {
    let host = request_host(req);
    if let Some(host) = host.as_deref()
        && !access.host_allowed(host)
    {
        return Err(ApiError::host_not_allowed(host, PUBLIC_HOST_FLAG));
    }
    let headers = req.headers();
    let origin = headers
        .get(ORIGIN)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    if let Some(origin) = origin.as_deref()
        && !access.origin_listed(origin)
        && !same_origin(origin, host.as_deref())
    {
        return Err(ApiError::origin_not_allowed(origin, ALLOW_ORIGIN_FLAG));
    }
    let changes_state = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if changes_state {
        match headers.get(CONTENT_TYPE) {
            Some(ct) => {
                let ct = String::from_utf8_lossy(ct.as_bytes());
                if is_simple_content_type(&ct) {
                    return Err(ApiError::simple_content_type(&ct));
                }
            }
            // A bodiless request without a content-type reaches here from a browser only
            // with an allowed `Origin` (checked above): every browser sends one on it.
            None if has_body(headers) => return Err(ApiError::missing_content_type()),
            None => {}
        }
    }
    Ok(())
}

/// The middleware form of [`check`].
pub(crate) async fn require_local(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    if let Err(err) = check(state.access(), &req) {
        tracing::warn!(
            method = %req.method(),
            path = req.uri().path(),
            code = err.code(),
            "refused: {}",
            err.message()
        );
        return err.into_response();
    }
    next.run(req).await
}

/// The CORS layer for the origins given with `--allow-origin`, if any: no origin given,
/// no CORS headers at all.
pub(crate) fn cors(access: &Access) -> Option<tower_http::cors::CorsLayer> {
    use axum::http::{HeaderName, HeaderValue};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let origins: Vec<HeaderValue> = access
        .allowed_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok())
        .collect();
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([
                CONTENT_TYPE,
                axum::http::header::AUTHORIZATION,
                HeaderName::from_static("x-softprobe-session-id"),
            ]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    fn access() -> Access {
        Access {
            public_hosts: vec!["runtime.internal".into()],
            allowed_origins: vec!["https://ui.example".into()],
            bound: Some("127.0.0.1:8080".parse().unwrap()),
        }
    }

    fn req(method: &str, headers: &[(&str, &str)]) -> Request {
        let mut builder = Request::builder().method(method).uri("/v1/sessions");
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        builder.body(Body::empty()).unwrap()
    }

    fn code(method: &str, headers: &[(&str, &str)]) -> Option<&'static str> {
        check(&access(), &req(method, headers))
            .err()
            .map(|e| e.code())
    }

    #[test]
    fn hosts_are_loopback_the_bound_address_or_public_names() {
        let a = access();
        for ok in [
            "localhost",
            "localhost:8080",
            "LOCALHOST.",
            "127.0.0.1:8080",
            "127.1.2.3",
            "[::1]:8080",
            "::1",
            "runtime.internal:9000",
        ] {
            assert!(a.host_allowed(ok), "{ok}");
        }
        for bad in [
            "attacker.example",
            "attacker.example:8080",
            "localhost.attacker.example",
            "10.0.0.1:8080",
            "",
        ] {
            assert!(!a.host_allowed(bad), "{bad}");
        }
        let any = Access {
            bound: Some("0.0.0.0:8080".parse().unwrap()),
            ..Access::default()
        };
        assert!(any.host_allowed("10.0.0.1:8080"));
        assert!(!any.host_allowed("runtime.internal"));
    }

    #[test]
    fn foreign_origins_and_simple_content_types_are_refused() {
        assert_eq!(
            code("POST", &[("host", "attacker.example:8080")]),
            Some("host_not_allowed")
        );
        assert_eq!(
            code(
                "POST",
                &[
                    ("host", "127.0.0.1:8080"),
                    ("origin", "https://evil.example")
                ]
            ),
            Some("origin_not_allowed")
        );
        assert_eq!(
            code("POST", &[("host", "127.0.0.1:8080"), ("origin", "null")]),
            Some("origin_not_allowed")
        );
        assert_eq!(
            code(
                "POST",
                &[("host", "127.0.0.1:8080"), ("content-type", "text/plain")]
            ),
            Some("unsupported_media_type")
        );
        assert_eq!(
            code(
                "POST",
                &[("host", "127.0.0.1:8080"), ("content-length", "2")]
            ),
            Some("unsupported_media_type")
        );
        // What legitimate clients send.
        assert_eq!(code("POST", &[("host", "127.0.0.1:8080")]), None);
        assert_eq!(
            code(
                "POST",
                &[
                    ("host", "127.0.0.1:8080"),
                    ("content-type", "application/x-protobuf"),
                    ("content-length", "10")
                ]
            ),
            None
        );
        assert_eq!(
            code(
                "POST",
                &[
                    ("host", "127.0.0.1:8080"),
                    ("origin", "http://127.0.0.1:8080"),
                    ("content-type", "application/json")
                ]
            ),
            None
        );
        assert_eq!(
            code(
                "POST",
                &[
                    ("host", "localhost:8080"),
                    ("origin", "https://ui.example"),
                    ("content-type", "application/json")
                ]
            ),
            None
        );
        assert_eq!(
            code(
                "GET",
                &[
                    ("host", "127.0.0.1:8080"),
                    ("origin", "https://evil.example")
                ]
            ),
            Some("origin_not_allowed")
        );
        assert_eq!(
            code(
                "GET",
                &[("host", "127.0.0.1:8080"), ("content-type", "text/plain")]
            ),
            None
        );
    }
}
