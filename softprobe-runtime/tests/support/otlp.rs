//! OTLP JSON built by hand for the tests that post traces: attributes, one span per HTTP
//! hop, `TracesData`, and a small case file.

use serde_json::{Value, json};

/// The trace id every built span carries.
pub const TRACE_ID: &str = "5b8efff798038103d269b633813fc60c";

/// An OTLP JSON attribute.
pub fn attr(key: &str, value: &str) -> Value {
    json!({"key": key, "value": {"stringValue": value}})
}

/// A recorded response: status, headers, body.
pub type Recorded<'a> = (i64, Vec<(&'a str, &'a str)>, &'a str);

/// An OTLP JSON span for one HTTP hop.
pub struct Hop<'a> {
    pub session: &'a str,
    pub span_type: &'a str,
    pub direction: &'a str,
    pub method: &'a str,
    pub host: &'a str,
    pub path: &'a str,
    pub span_id: &'a str,
    pub request_headers: Vec<(&'a str, &'a str)>,
    pub request_body: Option<&'a str>,
    pub response: Option<Recorded<'a>>,
}

impl<'a> Hop<'a> {
    pub fn outbound(session: &'a str, method: &'a str, host: &'a str, path: &'a str) -> Self {
        Hop {
            session,
            span_type: "extract",
            direction: "outbound",
            method,
            host,
            path,
            span_id: "eee19b7ec3c1b174",
            request_headers: Vec::new(),
            request_body: None,
            response: None,
        }
    }

    pub fn span(&self) -> Value {
        let mut attrs = vec![
            attr("sp.session.id", self.session),
            attr("sp.span.type", self.span_type),
            attr("sp.traffic.direction", self.direction),
            attr("http.request.method", self.method),
            attr("url.host", self.host),
            attr("url.path", self.path),
        ];
        for (name, value) in &self.request_headers {
            attrs.push(attr(&format!("http.request.header.{name}"), value));
        }
        if let Some(body) = self.request_body {
            attrs.push(attr("http.request.body", body));
        }
        if let Some((status, headers, body)) = &self.response {
            attrs.push(json!({"key": "http.response.status_code", "value": {"intValue": status.to_string()}}));
            for (name, value) in headers {
                attrs.push(attr(&format!("http.response.header.{name}"), value));
            }
            attrs.push(attr("http.response.body", body));
        }
        json!({
            "traceId": TRACE_ID,
            "spanId": self.span_id,
            "name": format!("HTTP {}", self.method),
            "kind": if self.direction == "inbound" { 2 } else { 3 },
            "startTimeUnixNano": "1713616200000000000",
            "endTimeUnixNano": "1713616200035000000",
            "attributes": attrs,
        })
    }
}

/// OTLP JSON `TracesData` holding the given spans under one service.
pub fn traces(spans: Vec<Value>) -> Value {
    json!({"resourceSpans": [{
        "resource": {"attributes": [attr("service.name", "checkout")]},
        "scopeSpans": [{"spans": spans}]
    }]})
}

/// A case with one inbound hop and one outbound call to the payment API.
pub fn sample_case() -> Value {
    let inbound = Hop {
        direction: "inbound",
        span_id: "eee19b7ec3c1b173",
        response: Some((
            200,
            vec![("content-type", "application/json")],
            r#"{"ok":true}"#,
        )),
        ..Hop::outbound("sess_recorded", "POST", "app.local", "/checkout")
    };
    let outbound = Hop {
        request_headers: vec![("content-type", "application/json")],
        request_body: Some(r#"{"amount":1000}"#),
        response: Some((
            201,
            vec![("content-type", "application/json")],
            r#"{"id":"pi_1","status":"succeeded"}"#,
        )),
        ..Hop::outbound(
            "sess_recorded",
            "POST",
            "api.stripe.com",
            "/v1/payment_intents",
        )
    };
    json!({
        "version": "1.0.0",
        "caseId": "checkout-happy-path",
        "createdAt": "2026-04-20T10:00:00Z",
        "traces": [traces(vec![inbound.span(), outbound.span()])],
    })
}
