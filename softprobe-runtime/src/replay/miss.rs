//! The strict-miss report: the request nothing answered, and the nearest captured outbound
//! exchanges with the fields that differ, as the 599 JSON body and as text for people.
//!
//! Built only on a miss, so it may scan every captured hop; the hit path never comes here.

use std::fmt::Write as _;

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use super::index::CaseIndex;
use super::request::{Request, Response};
use crate::case::{Body, SpanId};
use crate::rules::jsonpath::push_member;
use crate::rules::matcher::{json_eq, normalize_host};

/// Status of the strict-miss answer.
pub const STRICT_MISS_STATUS: u16 = 599;
/// Header marking the strict-miss answer (value `1`).
pub const STRICT_MISS_HEADER: &str = "x-softprobe-strict-miss";

/// How many nearest candidates a report lists.
pub const MAX_CANDIDATES: usize = 3;
/// How many differing JSON paths one body comparison lists.
const MAX_BODY_PATHS: usize = 10;
/// Longest text shown for a non-JSON body.
const MAX_TEXT: usize = 200;

/// Request headers whose values change on every run, so they never make a candidate differ.
const VOLATILE_HEADERS: &[&str] = &[
    "accept-encoding",
    "baggage",
    "connection",
    "content-length",
    "date",
    "host",
    "traceparent",
    "tracestate",
    "user-agent",
    "x-request-id",
];

/// Why a hop got the strict-miss answer, and what it came close to.
#[derive(Debug, Clone, PartialEq)]
pub struct MissReport {
    /// One sentence for the `error.message` field.
    pub message: String,
    /// The request that missed.
    pub request: MissRequest,
    /// Up to [`MAX_CANDIDATES`] captured outbound exchanges, nearest first.
    pub candidates: Vec<MissCandidate>,
    /// The loaded case's id, when a case is loaded.
    pub case_id: Option<String>,
    /// The loaded case's file (or source name), when a case is loaded.
    pub case_source: Option<String>,
}

/// The request side of a miss.
#[derive(Debug, Clone, PartialEq)]
pub struct MissRequest {
    /// Method.
    pub method: String,
    /// Full URL.
    pub url: String,
    /// Lowercase hex SHA-256 of the body, when there is a body.
    pub body_sha256: Option<String>,
    /// Body length in bytes (0 without a body).
    pub body_bytes: usize,
}

/// A captured exchange close to the missed request.
#[derive(Debug, Clone, PartialEq)]
pub struct MissCandidate {
    /// Recorded method.
    pub method: String,
    /// Recorded URL.
    pub url: String,
    /// Span id of the recorded hop.
    pub span_id: SpanId,
    /// JSON path of the span in the case file.
    pub json_path: String,
    /// What differs; `expected` is the recording, `actual` the request.
    pub differences: Vec<Difference>,
}

/// One differing field.
#[derive(Debug, Clone, PartialEq)]
pub struct Difference {
    /// `method`, `host`, `path`, `query`, `header <name>`, `body`, or `body <JSONPath>`.
    pub field: String,
    /// The recorded value (`null` when the recording has none).
    pub expected: Value,
    /// The request's value (`null` when the request has none).
    pub actual: Value,
}

impl MissReport {
    pub(crate) fn build(req: &Request, index: Option<&CaseIndex>, message: String) -> Self {
        let body = req.body.as_ref().filter(|b| !b.is_empty());
        let request = MissRequest {
            method: req.method.to_ascii_uppercase(),
            url: req.url(),
            body_sha256: body.map(|b| hex(&Sha256::digest(b.as_bytes()))),
            body_bytes: body.map_or(0, Body::len),
        };
        let mut candidates = Vec::new();
        if let Some(index) = index {
            let req_json = req
                .body
                .as_ref()
                .and_then(|b| serde_json::from_slice::<Value>(b.as_bytes()).ok());
            let mut scored: Vec<(u32, usize, Vec<Difference>)> = index
                .outbound_all
                .iter()
                .map(|&i| {
                    let (score, diffs) = compare(index, i, req, req_json.as_ref());
                    (score, i, diffs)
                })
                .collect();
            // Stable: equal distances keep recorded order.
            scored.sort_by_key(|(score, i, _)| (*score, *i));
            candidates = scored
                .into_iter()
                .take(MAX_CANDIDATES)
                .map(|(_, i, differences)| {
                    let ex = &index.exchanges[i];
                    MissCandidate {
                        method: ex.method.clone(),
                        url: ex.url(),
                        span_id: ex.span_id,
                        json_path: index.json_paths[i].clone(),
                        differences,
                    }
                })
                .collect();
        }
        MissReport {
            message,
            request,
            candidates,
            case_id: index.map(|i| i.case.case_id.clone()),
            case_source: index.map(|i| i.source_name.clone()),
        }
    }

    /// The 599 response body of `contract.md`.
    pub fn to_json(&self, session_id: &str) -> Value {
        let mut request = json!({"method": self.request.method, "url": self.request.url});
        if let Some(sha) = &self.request.body_sha256 {
            request["bodySha256"] = json!(sha);
        }
        request["bodyBytes"] = json!(self.request.body_bytes);
        json!({
            "error": {"code": "strict_miss", "message": self.message},
            "sessionId": session_id,
            "request": request,
            "candidates": self.candidates.iter().map(|c| json!({
                "method": c.method,
                "url": c.url,
                "spanId": c.span_id.to_string(),
                "differences": c.differences.iter().map(|d| json!({
                    "field": d.field, "expected": d.expected, "actual": d.actual,
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })
    }

    /// The complete strict-miss answer: status 599, `x-softprobe-strict-miss: 1`, and
    /// [`MissReport::to_json`] as a JSON body.
    pub fn to_response(&self, session_id: &str) -> Response {
        Response {
            status: STRICT_MISS_STATUS,
            headers: vec![
                ("content-type".to_owned(), "application/json".to_owned()),
                (STRICT_MISS_HEADER.to_owned(), "1".to_owned()),
            ],
            body: Some(Body::Text(self.to_json(session_id).to_string())),
        }
    }

    /// A field-by-field account for test output and logs.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let _ = write!(
            out,
            "{}\n  request: {} {}",
            self.message, self.request.method, self.request.url
        );
        if let Some(sha) = &self.request.body_sha256 {
            let _ = write!(
                out,
                " (body {} bytes, sha256 {sha})",
                self.request.body_bytes
            );
        }
        out.push('\n');
        match (&self.case_source, self.candidates.is_empty()) {
            (None, _) => out.push_str("  no case is loaded, so there is nothing to compare with\n"),
            (Some(src), true) => {
                let _ = writeln!(out, "  the case {src} has no recorded outbound exchanges");
            }
            (Some(src), false) => {
                let _ = writeln!(out, "  nearest recorded exchanges in {src}:");
                for (n, c) in self.candidates.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "  {}. {} {}  (span {}, {})",
                        n + 1,
                        c.method,
                        c.url,
                        c.span_id,
                        c.json_path
                    );
                    if c.differences.is_empty() {
                        out.push_str("       same request line; it was not selected\n");
                    }
                    for d in &c.differences {
                        let _ = writeln!(
                            out,
                            "       {}: expected {}, actual {}",
                            d.field,
                            show(&d.expected),
                            show(&d.actual)
                        );
                    }
                }
            }
        }
        out
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::Null => "(none)".to_owned(),
        other => other.to_string(),
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Distance of recorded hop `i` from `req` (lower is nearer) and the differing fields.
fn compare(
    index: &CaseIndex,
    i: usize,
    req: &Request,
    req_json: Option<&Value>,
) -> (u32, Vec<Difference>) {
    let ex = &index.exchanges[i];
    let mut diffs = Vec::new();
    let mut score = 0;
    let mut diff =
        |field: &str, expected: Value, actual: Value, weight: u32, diffs: &mut Vec<Difference>| {
            score += weight;
            diffs.push(Difference {
                field: field.to_owned(),
                expected,
                actual,
            });
        };
    if !ex.method.eq_ignore_ascii_case(&req.method) {
        diff("method", json!(ex.method), json!(req.method), 8, &mut diffs);
    }
    if normalize_host(&ex.host) != normalize_host(&req.host) {
        diff("host", json!(ex.host), json!(req.host), 8, &mut diffs);
    }
    if ex.path != req.path {
        diff("path", json!(ex.path), json!(req.path), 6, &mut diffs);
    }
    let (eq, aq) = (
        ex.query.as_deref().filter(|q| !q.is_empty()),
        req.query.as_deref().filter(|q| !q.is_empty()),
    );
    if eq != aq {
        diff("query", json!(eq), json!(aq), 3, &mut diffs);
    }
    for (name, value) in &ex.request_headers {
        let lower = name.to_ascii_lowercase();
        if VOLATILE_HEADERS.contains(&lower.as_str())
            || lower.starts_with("x-softprobe-")
            || lower.starts_with(':')
            || value == crate::rules::REDACTED
        {
            continue;
        }
        let actual = req.header(name);
        if actual != Some(value.as_str()) {
            diff(
                &format!("header {lower}"),
                json!(value),
                json!(actual),
                1,
                &mut diffs,
            );
        }
    }
    let recorded = ex.request_body.as_ref().filter(|b| !b.is_empty());
    let actual = req.body.as_ref().filter(|b| !b.is_empty());
    if let Some(expected) = crate::multipart::recorded_parts(ex) {
        // Multipart bodies differ in their random boundary on every upload: compare parts.
        let live = crate::multipart::live_parts(&req.headers, actual.map(Body::as_bytes))
            .unwrap_or_default();
        let lines = crate::multipart::differences(&expected, &live);
        score += 4 * u32::from(!lines.is_empty());
        for line in lines.into_iter().take(MAX_BODY_PATHS) {
            let (field, what) = line.split_once(": ").unwrap_or(("body", line.as_str()));
            diffs.push(Difference {
                field: format!("body {field}"),
                expected: json!(what),
                actual: Value::Null,
            });
        }
        return (score, diffs);
    }
    match (index.body_json(i), req_json) {
        (Some(e), Some(a)) if recorded.is_some() && actual.is_some() => {
            let mut paths = Vec::new();
            json_diff("$".to_owned(), e, a, &mut paths);
            let total = paths.len();
            for (path, e, a) in paths.into_iter().take(MAX_BODY_PATHS) {
                diffs.push(Difference {
                    field: format!("body {path}"),
                    expected: e,
                    actual: a,
                });
            }
            score += 4 * u32::from(total > 0);
        }
        _ => {
            let (e, a) = (
                recorded.map_or(&[][..], |b| b.as_bytes()),
                actual.map_or(&[][..], |b| b.as_bytes()),
            );
            if e != a {
                diff(
                    "body",
                    body_value(recorded),
                    body_value(actual),
                    4,
                    &mut diffs,
                );
            }
        }
    }
    (score, diffs)
}

fn body_value(body: Option<&Body>) -> Value {
    match body {
        None => Value::Null,
        Some(Body::Text(s)) if s.chars().count() <= MAX_TEXT => json!(s),
        Some(Body::Text(s)) => {
            let cut: String = s.chars().take(MAX_TEXT).collect();
            json!(format!("{cut}… ({} bytes)", s.len()))
        }
        Some(Body::Binary(b)) => json!(format!("<{} bytes of binary data>", b.len())),
    }
}

/// Collects (JSONPath, expected, actual) for every differing leaf; a missing member is `null`
/// on that side.
fn json_diff(path: String, e: &Value, a: &Value, out: &mut Vec<(String, Value, Value)>) {
    match (e, a) {
        (Value::Object(eo), Value::Object(ao)) => {
            for (k, ev) in eo {
                let mut p = path.clone();
                push_member(&mut p, k);
                match ao.get(k) {
                    Some(av) => json_diff(p, ev, av, out),
                    None => out.push((p, ev.clone(), Value::Null)),
                }
            }
            for (k, av) in ao {
                if !eo.contains_key(k) {
                    let mut p = path.clone();
                    push_member(&mut p, k);
                    out.push((p, Value::Null, av.clone()));
                }
            }
        }
        (Value::Array(ea), Value::Array(aa)) if ea.len() == aa.len() => {
            for (n, (ev, av)) in ea.iter().zip(aa).enumerate() {
                json_diff(format!("{path}[{n}]"), ev, av, out);
            }
        }
        _ => {
            if !json_eq(e, a) {
                out.push((path, e.clone(), a.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_diff_lists_leaf_paths() {
        let e = json!({"amount": 1000, "card": {"brand": "visa"}, "items": [1, 2], "gone": true});
        let a =
            json!({"amount": 1000.0, "card": {"brand": "amex"}, "items": [1, 3], "new name": 1});
        let mut out = Vec::new();
        json_diff("$".into(), &e, &a, &mut out);
        let paths: Vec<&str> = out.iter().map(|(p, _, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            vec!["$.card.brand", "$.gone", "$.items[1]", "$['new name']"]
        );
        assert_eq!(out[0].1, json!("visa"));
        assert_eq!(out[0].2, json!("amex"));
        assert_eq!(out[1].2, Value::Null);
    }

    #[test]
    fn long_and_binary_bodies_are_summarised() {
        let long = Body::Text("x".repeat(300));
        let shown = body_value(Some(&long));
        assert!(
            shown.as_str().unwrap().ends_with("… (300 bytes)"),
            "{shown}"
        );
        assert_eq!(
            body_value(Some(&Body::Binary(vec![0, 159]))),
            json!("<2 bytes of binary data>")
        );
        assert_eq!(hex(&[0, 255, 16]), "00ff10");
    }
}
