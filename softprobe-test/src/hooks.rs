//! Hook closures on a [`Session`](crate::Session): the Rust twins of a suite's executable
//! hooks. [`InboundRequest`] is what `on_request` rewrites before a recorded request is sent
//! again, [`OutboundCall`] and [`MockResponse`] are what `on_mock_response` sees and rewrites
//! before the egress proxy answers the service, and [`ResponseBody`] is what `assert_body`
//! compares.

use std::sync::Arc;

use serde_json::Value;
use softprobe_runtime::case::{Body, Exchange};
use softprobe_runtime::replay::{Request, Response};

/// A recorded inbound request about to be sent to the service again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundRequest {
    /// `GET`, `POST`...
    pub method: String,
    /// The path with its query, e.g. `/checkout?dry=1`.
    pub path: String,
    /// Headers in order.
    pub headers: Vec<(String, String)>,
    /// The body bytes.
    pub body: Vec<u8>,
}

/// An outbound call of the service that the session answers from a mock or the case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundCall {
    /// `GET`, `POST`...
    pub method: String,
    /// `http` or `https`.
    pub scheme: String,
    /// `host` or `host:port`.
    pub host: String,
    /// The path, without the query.
    pub path: String,
    /// The query, without `?`.
    pub query: Option<String>,
    /// Headers in order.
    pub headers: Vec<(String, String)>,
    /// The body bytes.
    pub body: Vec<u8>,
}

/// The answer the egress proxy is about to give an outbound call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockResponse {
    /// Status code.
    pub status: u16,
    /// Headers in order.
    pub headers: Vec<(String, String)>,
    /// The body bytes.
    pub body: Vec<u8>,
}

/// A response body as `assert_body` sees it: the bytes, with JSON and text views.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseBody {
    bytes: Vec<u8>,
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn set_header(headers: &mut Vec<(String, String)>, name: &str, value: &str) {
    headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
    headers.push((name.to_ascii_lowercase(), value.to_owned()));
}

/// A recorded body as the hooks see it: its bytes, empty when there is none.
fn bytes_of(body: Option<&Body>) -> Vec<u8> {
    body.map(|b| b.as_bytes().to_vec()).unwrap_or_default()
}

/// Bytes a hook wrote back as a recorded body: none when empty.
fn body_from(bytes: Vec<u8>) -> Option<Body> {
    (!bytes.is_empty()).then(|| Body::from_bytes(bytes))
}

fn json(body: &[u8]) -> Option<Value> {
    serde_json::from_slice(body).ok()
}

/// Shared by the three message types: header lookups and JSON bodies.
macro_rules! message_methods {
    ($ty:ty) => {
        impl $ty {
            /// The first header with this name (any case).
            pub fn header(&self, name: &str) -> Option<&str> {
                header(&self.headers, name)
            }

            /// Replaces every header with this name by one with `value`.
            pub fn set_header(&mut self, name: &str, value: &str) {
                set_header(&mut self.headers, name, value);
            }

            /// Removes every header with this name.
            pub fn remove_header(&mut self, name: &str) {
                self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
            }

            /// The body as JSON, when it is JSON.
            pub fn json(&self) -> Option<Value> {
                json(&self.body)
            }

            /// Replaces the body with `value` serialised (and drops a stale
            /// `content-length`).
            pub fn set_json(&mut self, value: &Value) {
                self.body = value.to_string().into_bytes();
                self.remove_header("content-length");
            }
        }
    };
}

message_methods!(InboundRequest);
message_methods!(OutboundCall);
message_methods!(MockResponse);

impl OutboundCall {
    /// `scheme://host/path?query`.
    pub fn url(&self) -> String {
        let mut url = format!("{}://{}{}", self.scheme, self.host, self.path);
        if let Some(q) = self.query.as_deref().filter(|q| !q.is_empty()) {
            url.push('?');
            url.push_str(q);
        }
        url
    }

    pub(crate) fn from_request(r: &Request) -> Self {
        OutboundCall {
            method: r.method.clone(),
            scheme: r.scheme.clone().unwrap_or_else(|| "http".into()),
            host: r.host.clone(),
            path: r.path.clone(),
            query: r.query.clone(),
            headers: r.headers.clone(),
            body: bytes_of(r.body.as_ref()),
        }
    }
}

impl MockResponse {
    pub(crate) fn from_response(r: &Response) -> Self {
        MockResponse {
            status: r.status,
            headers: r.headers.clone(),
            body: bytes_of(r.body.as_ref()),
        }
    }

    /// Writes the rewritten answer back.
    pub(crate) fn apply(self, r: &mut Response) {
        r.status = self.status;
        r.headers = self.headers;
        r.body = body_from(self.body);
    }
}

impl InboundRequest {
    pub(crate) fn from_exchange(ex: &Exchange) -> Self {
        let path = match ex.query.as_deref().filter(|q| !q.is_empty()) {
            Some(q) => format!("{}?{q}", ex.path),
            None => ex.path.clone(),
        };
        InboundRequest {
            method: ex.method.clone(),
            path,
            headers: ex.request_headers.clone(),
            body: bytes_of(ex.request_body.as_ref()),
        }
    }

    /// Writes the rewritten request into a copy of the recorded hop.
    pub(crate) fn apply(self, ex: &mut Exchange) {
        ex.method = self.method;
        match self.path.split_once('?') {
            Some((p, q)) => {
                ex.path = p.to_owned();
                ex.query = Some(q.to_owned());
            }
            None => {
                ex.path = self.path;
                ex.query = None;
            }
        }
        ex.request_headers = self.headers;
        ex.request_body = body_from(self.body);
    }
}

impl ResponseBody {
    pub(crate) fn new(bytes: Vec<u8>) -> Self {
        ResponseBody { bytes }
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The body as UTF-8 text, when it is.
    pub fn text(&self) -> Option<&str> {
        std::str::from_utf8(&self.bytes).ok()
    }

    /// The body as JSON, when it is JSON.
    pub fn json(&self) -> Option<Value> {
        json(&self.bytes)
    }
}

/// `on_request` closures.
pub(crate) type RequestHook = Arc<dyn Fn(&mut InboundRequest) + Send + Sync>;
/// `on_mock_response` closures.
pub(crate) type MockHook = Arc<dyn Fn(&OutboundCall, &mut MockResponse) + Send + Sync>;
/// `assert_body` closures: `(recorded, actual)`.
pub(crate) type BodyCheck =
    Arc<dyn Fn(&ResponseBody, &ResponseBody) -> Result<(), String> + Send + Sync>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbound_requests_round_trip_through_a_hop() {
        let bytes = include_bytes!("../../tests/cases/checkout/happy-path.case.json");
        let case = softprobe_runtime::case::Case::from_slice_named(bytes, "happy-path").unwrap();
        let mut ex = case.exchanges_named("happy-path").unwrap().remove(0);
        ex.path = "/a".into();
        ex.query = Some("x=1".into());
        let mut r = InboundRequest::from_exchange(&ex);
        assert_eq!(r.path, "/a?x=1");
        r.path = "/b".into();
        r.set_json(&serde_json::json!({"n": 1}));
        r.set_header("X-Test", "1");
        r.apply(&mut ex);
        assert_eq!((ex.path.as_str(), ex.query.as_deref()), ("/b", None));
        assert_eq!(ex.request_body.unwrap().as_bytes(), br#"{"n":1}"#);
        assert_eq!(ex.request_headers.last().unwrap().0, "x-test");
    }

    #[test]
    fn mock_responses_rewrite_status_headers_and_body() {
        let mut resp = Response {
            status: 200,
            headers: vec![("Content-Length".into(), "2".into())],
            body: Some(Body::from_bytes(b"{}".to_vec())),
        };
        let mut m = MockResponse::from_response(&resp);
        assert_eq!(m.json(), Some(serde_json::json!({})));
        m.set_json(&serde_json::json!({"quote": 1}));
        m.status = 201;
        m.apply(&mut resp);
        assert_eq!(resp.status, 201);
        assert!(resp.headers.is_empty());
        assert_eq!(resp.body.unwrap().as_bytes(), br#"{"quote":1}"#);
    }
}
