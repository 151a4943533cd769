//! The request a decision is made about, and the response a decision answers with.
//!
//! The proxy builds a [`Request`] from the wire, the server from an inject span
//! ([`Request::from_exchange`]); both end up here in one shape. Rules, the policy and the
//! replay engine all read it, so it sits below them, with the host forms they compare
//! ([`host`]).
//!
//! # One HTTP hop, four types
//!
//! A hop is seen at four moments, each with the type that fits it; they are different
//! things (a wire request not yet read, a decision input, a recorded pair, a hook's view),
//! so they stay apart, and each converts in one place:
//!
//! | type | what it is | built in | becomes |
//! | --- | --- | --- | --- |
//! | `proxy::forward::Hop` (crate-private) | a request as a proxy parsed it off the wire: session, trace context, headers still to forward, where to forward | `proxy::forward` | a [`Request`] (`Hop::decision_request`), then, with the answer, an [`Exchange`] (`Forwarder::exchange`) |
//! | [`Request`] | what replay decides about: direction, method, host, path, query, headers, body | here, from a `Hop` or from an inject span ([`Request::from_exchange`]) | the input of [`Engine`](crate::replay::Engine) and of the session's inject |
//! | [`Exchange`] | one recorded request and response, as a case file holds it | `case`, from OTLP spans ([`Exchange::from_span`]), and by the proxies when they record | a [`Request`] ([`Request::from_exchange`]); OTLP spans when written |
//! | `softprobe::InboundRequest` / `softprobe::OutboundCall` | what a test's hook sees and may rewrite: a recorded inbound request about to be sent again, an outbound call about to be answered | `softprobe-test`'s `hooks` module, from an [`Exchange`] and a [`Request`] | applied back to the request the harness sends, or read only |

pub mod host;

use std::cell::OnceCell;

use serde_json::Value;

use crate::case::{Body, Direction, Exchange};

/// One hop to decide about.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Inbound (to the service under test) or outbound (from it).
    pub direction: Direction,
    /// Logical service name of the hop, when known.
    pub service: Option<String>,
    /// HTTP method (compared case-insensitively).
    pub method: String,
    /// `http` or `https`, when known.
    pub scheme: Option<String>,
    /// Host, possibly with a port.
    pub host: String,
    /// Path, starting with `/`, without the query.
    pub path: String,
    /// Query string without `?`.
    pub query: Option<String>,
    /// Request headers, lowercase names.
    pub headers: Vec<(String, String)>,
    /// Request body, when there is one.
    pub body: Option<Body>,
    /// Trace tags: `tracestate` members other than `sp`, `baggage` entries, and
    /// `softprobe.test_name` / `softprobe.case_id` (see [`trace_tags_from_headers`]).
    pub trace_tags: Vec<(String, String)>,
}

impl Request {
    /// The request side of a hop, with its trace tags read from its headers.
    pub fn from_exchange(ex: &Exchange) -> Self {
        Request {
            direction: ex.direction,
            service: ex.service.clone(),
            method: ex.method.clone(),
            scheme: ex.scheme.clone(),
            host: ex.host.clone(),
            path: ex.path.clone(),
            query: ex.query.clone(),
            trace_tags: trace_tags_from_headers(&ex.request_headers),
            headers: ex.request_headers.clone(),
            body: ex.request_body.clone(),
        }
    }

    /// The first header with this (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        crate::headers::find(&self.headers, name)
    }

    /// `scheme://host/path?query`, or `/path?query` when the host is unknown; an empty query
    /// adds no `?`.
    pub fn url(&self) -> String {
        let query = self.query.as_deref().filter(|q| !q.is_empty());
        crate::case::hop_url(self.scheme.as_deref(), &self.host, &self.path, query)
    }
}

/// What a decision answers with.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers, lowercase names, in order.
    pub headers: Vec<(String, String)>,
    /// Body, when there is one.
    pub body: Option<Body>,
}

/// The `tracestate` member that carries the session (ours, then the original proxy's).
const SESSION_MEMBERS: &[&str] = &["sp", "x-softprobe-session-id"];

/// Reads trace tags from request headers: every `tracestate` member except the session ones,
/// every `baggage` entry (values percent-decoded, properties dropped), and
/// `softprobe.test_name` / `softprobe.case_id` from `x-softprobe-test-name` /
/// `x-softprobe-case-id`.
pub fn trace_tags_from_headers(headers: &[(String, String)]) -> Vec<(String, String)> {
    let mut tags = Vec::new();
    for (name, value) in headers {
        if name.eq_ignore_ascii_case("tracestate") {
            for member in value.split(',') {
                if let Some((k, v)) = member.trim().split_once('=')
                    && !k.is_empty()
                    && !SESSION_MEMBERS.contains(&k)
                {
                    tags.push((k.to_owned(), v.to_owned()));
                }
            }
        } else if name.eq_ignore_ascii_case("baggage") {
            for entry in value.split(',') {
                let kv = entry.split(';').next().unwrap_or("");
                if let Some((k, v)) = kv.split_once('=') {
                    let k = k.trim();
                    if !k.is_empty() {
                        tags.push((percent_decode(k), percent_decode(v.trim())));
                    }
                }
            }
        } else if name.eq_ignore_ascii_case("x-softprobe-test-name") {
            tags.push(("softprobe.test_name".to_owned(), value.clone()));
        } else if name.eq_ignore_ascii_case("x-softprobe-case-id") {
            tags.push(("softprobe.case_id".to_owned(), value.clone()));
        }
    }
    tags
}

/// `%XX` escapes decoded; invalid escapes stay as written, invalid UTF-8 becomes U+FFFD.
fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// The request body parsed as JSON once, on first use, shared by every rule and candidate.
#[derive(Default)]
pub(crate) struct BodyJson(OnceCell<Option<Value>>);

impl BodyJson {
    pub(crate) fn get(&self, req: &Request) -> Option<&Value> {
        self.0
            .get_or_init(|| {
                req.body
                    .as_ref()
                    .and_then(|b| serde_json::from_slice(b.as_bytes()).ok())
            })
            .as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_defaults_the_scheme_and_drops_an_empty_query() {
        let mut req = Request {
            direction: Direction::Outbound,
            service: None,
            method: "GET".into(),
            scheme: None,
            host: "api.example.test:8443".into(),
            path: "/v1/pay".into(),
            query: Some(String::new()),
            headers: Vec::new(),
            body: None,
            trace_tags: Vec::new(),
        };
        assert_eq!(req.url(), "http://api.example.test:8443/v1/pay");
        req.scheme = Some("https".into());
        req.query = Some("a=1".into());
        assert_eq!(req.url(), "https://api.example.test:8443/v1/pay?a=1");
        req.host.clear();
        assert_eq!(req.url(), "/v1/pay?a=1");
    }

    #[test]
    fn trace_tags_come_from_tracestate_baggage_and_softprobe_headers() {
        let headers = vec![
            (
                "tracestate".to_owned(),
                "sp=sess_x, tenant=acme,x-softprobe-session-id=s".to_owned(),
            ),
            (
                "baggage".to_owned(),
                "user=al%20ice;prop=1, plan=gold".to_owned(),
            ),
            ("x-softprobe-test-name".to_owned(), "checkout".to_owned()),
            ("X-Softprobe-Case-Id".to_owned(), "c1".to_owned()),
            ("accept".to_owned(), "*/*".to_owned()),
        ];
        let tags = trace_tags_from_headers(&headers);
        let expected: Vec<(String, String)> = [
            ("tenant", "acme"),
            ("user", "al ice"),
            ("plan", "gold"),
            ("softprobe.test_name", "checkout"),
            ("softprobe.case_id", "c1"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(tags, expected);
    }

    #[test]
    fn percent_decoding_leaves_broken_escapes_alone() {
        assert_eq!(percent_decode("a%2Cb"), "a,b");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
