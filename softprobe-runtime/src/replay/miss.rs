//! Strict misses: where one is decided ([`strict_miss`]: an outbound hop no rule or recording
//! answered, to a host the policy blocks), the answer it gets ([`STRICT_MISS_STATUS`] with
//! [`STRICT_MISS_HEADER`], [`MissReport::to_response`]) and its report: the request nothing
//! answered and the nearest captured outbound exchanges with the fields that differ, as the
//! 599 JSON body and as text for people. Every proxy, the OTLP handler, the OpenAPI document
//! and the harness use these.
//!
//! Built only on a miss, so it may scan every captured hop; the hit path never comes here.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::index::CaseIndex;
use crate::case::{Body, Direction, SpanId};
use crate::json::{DiffOptions, Difference};
use crate::policy::{DefaultOnMiss, ExternalHttp, Policy};
use crate::request::host::normalize_host;
use crate::request::{Request, Response};

/// Status of the strict-miss answer.
pub const STRICT_MISS_STATUS: u16 = 599;
/// Header marking the strict-miss answer (value `1`).
pub const STRICT_MISS_HEADER: &str = "x-softprobe-strict-miss";

/// The report of a strict miss, when `req` (which no rule or recording answered) gets one:
/// an outbound hop to a host `policy` blocks. `None` means the hop goes upstream.
pub(super) fn strict_miss(
    policy: &Policy,
    req: &Request,
    case: Option<&CaseIndex>,
) -> Option<MissReport> {
    if req.direction != Direction::Outbound || !policy.blocks(&req.host) {
        return None;
    }
    let why = if policy.external_http == ExternalHttp::Strict {
        "external HTTP is strict"
    } else {
        debug_assert_eq!(policy.default_on_miss, DefaultOnMiss::Error);
        "defaultOnMiss is error"
    };
    let message = format!(
        "no rule or recorded exchange answers {} {} and {why}",
        req.method.to_ascii_uppercase(),
        req.url()
    );
    Some(MissReport::build(req, case, message))
}

/// How many nearest candidates a report lists.
pub const MAX_CANDIDATES: usize = 3;
/// How many differing JSON paths one body comparison lists.
const MAX_BODY_PATHS: usize = 10;
/// Longest text shown for a non-JSON body.
const MAX_TEXT: usize = 200;

/// Why a hop got the strict-miss answer, and what it came close to. It serializes to the 599
/// body ([`MissReport::to_json`]) and reads back from it ([`MissReport::from_json`]), so a
/// miss answered by a remote runtime reads exactly as one decided in process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MissReport {
    /// Always `{"code": "strict_miss", "message": ...}` on the wire.
    #[serde(rename = "error", with = "error_member")]
    /// One sentence for the `error.message` field.
    pub message: String,
    /// The request that missed.
    pub request: MissRequest,
    /// Up to [`MAX_CANDIDATES`] captured outbound exchanges, nearest first.
    pub candidates: Vec<MissCandidate>,
    /// The loaded case's id, when a case is loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case_id: Option<String>,
    /// The loaded case's file (or source name), when a case is loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case_source: Option<String>,
}

/// The message travels as `error: {code, message}`, as every error body of the API.
mod error_member {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct ErrorMember<'a> {
        code: std::borrow::Cow<'a, str>,
        message: std::borrow::Cow<'a, str>,
    }

    pub(super) fn serialize<S: Serializer>(message: &str, s: S) -> Result<S::Ok, S::Error> {
        ErrorMember {
            code: "strict_miss".into(),
            message: message.into(),
        }
        .serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        Ok(ErrorMember::deserialize(d)?.message.into_owned())
    }
}

/// The request side of a miss.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MissRequest {
    /// Method.
    pub method: String,
    /// Full URL.
    pub url: String,
    /// Lowercase hex SHA-256 of the body, when there is a body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_sha256: Option<String>,
    /// Body length in bytes (0 without a body).
    pub body_bytes: usize,
}

/// A captured exchange close to the missed request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MissCandidate {
    /// Recorded method.
    pub method: String,
    /// Recorded URL.
    pub url: String,
    /// Span id of the recorded hop.
    pub span_id: SpanId,
    /// JSON path of the span in the case file.
    #[serde(default)]
    pub json_path: String,
    /// What differs; `expected` is the recording, `actual` the request.
    pub differences: Vec<Difference>,
}

impl MissReport {
    pub(crate) fn build(req: &Request, index: Option<&CaseIndex>, message: String) -> Self {
        let body = req.body.as_ref().filter(|b| !b.is_empty());
        let request = MissRequest {
            method: req.method.to_ascii_uppercase(),
            url: req.url(),
            body_sha256: body.map(|b| crate::case::diff::sha256_hex(b.as_bytes())),
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

    /// The 599 response body of `contract.md`: this report and the session id.
    pub fn to_json(&self, session_id: &str) -> Value {
        let mut body = serde_json::to_value(self).unwrap_or(Value::Null);
        body["sessionId"] = json!(session_id);
        body
    }

    /// Reads a 599 body back: the report and the session id it names.
    pub fn from_json(body: &Value) -> Result<(Self, String), serde_json::Error> {
        let report = Self::deserialize(body)?;
        let session = body["sessionId"].as_str().unwrap_or_default().to_owned();
        Ok((report, session))
    }

    /// The report of a strict-miss answer (status 599 with the strict-miss header and a
    /// report body); `None` for any other response.
    pub fn from_response(response: &Response) -> Option<Self> {
        let marked = response.status == STRICT_MISS_STATUS
            && response
                .headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case(STRICT_MISS_HEADER));
        if !marked {
            return None;
        }
        let body: Value = serde_json::from_slice(response.body.as_ref()?.as_bytes()).ok()?;
        Self::from_json(&body).ok().map(|(report, _)| report)
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
                            Difference::show(d.expected.as_ref()),
                            Difference::show(d.actual.as_ref())
                        );
                    }
                }
            }
        }
        out
    }
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
    let mut diff = |field: &str,
                    expected: Option<Value>,
                    actual: Option<Value>,
                    weight: u32,
                    diffs: &mut Vec<Difference>| {
        score += weight;
        diffs.push(Difference::new(field, expected, actual));
    };
    if !ex.method.eq_ignore_ascii_case(&req.method) {
        diff(
            "method",
            Some(json!(ex.method)),
            Some(json!(req.method)),
            8,
            &mut diffs,
        );
    }
    if normalize_host(&ex.host) != normalize_host(&req.host) {
        diff(
            "host",
            Some(json!(ex.host)),
            Some(json!(req.host)),
            8,
            &mut diffs,
        );
    }
    if ex.path != req.path {
        diff(
            "path",
            Some(json!(ex.path)),
            Some(json!(req.path)),
            6,
            &mut diffs,
        );
    }
    let (eq, aq) = (
        ex.query.as_deref().filter(|q| !q.is_empty()),
        req.query.as_deref().filter(|q| !q.is_empty()),
    );
    if eq != aq {
        diff(
            "query",
            eq.map(|q| json!(q)),
            aq.map(|q| json!(q)),
            3,
            &mut diffs,
        );
    }
    for (name, value) in &ex.request_headers {
        let lower = name.to_ascii_lowercase();
        if crate::headers::is_volatile(&lower)
            || crate::headers::is_softprobe(&lower)
            || lower.starts_with(':')
            || value == crate::rules::REDACTED
        {
            continue;
        }
        let actual = req.header(name);
        if actual != Some(value.as_str()) {
            diff(
                &format!("header {lower}"),
                Some(json!(value)),
                actual.map(|a| json!(a)),
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
            diffs.push(Difference::new(
                format!("body {field}"),
                Some(json!(what)),
                None,
            ));
        }
        return (score, diffs);
    }
    match (index.body_json(i), req_json) {
        (Some(e), Some(a)) if recorded.is_some() && actual.is_some() => {
            let found = crate::json::diff(e, a, &DiffOptions::default()).differences;
            let total = found.len();
            for mut d in found.into_iter().take(MAX_BODY_PATHS) {
                d.field = format!("body {}", d.field);
                diffs.push(d);
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

fn body_value(body: Option<&Body>) -> Option<Value> {
    Some(match body {
        None => return None,
        Some(Body::Text(s)) if s.chars().count() <= MAX_TEXT => json!(s),
        Some(Body::Text(s)) => {
            let cut: String = s.chars().take(MAX_TEXT).collect();
            json!(format!("{cut}… ({} bytes)", s.len()))
        }
        Some(Body::Binary(b)) => json!(format!("<{} bytes of binary data>", b.len())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_and_binary_bodies_are_summarised() {
        let long = Body::Text("x".repeat(300));
        let shown = body_value(Some(&long)).unwrap();
        assert!(
            shown.as_str().unwrap().ends_with("… (300 bytes)"),
            "{shown}"
        );
        assert_eq!(
            body_value(Some(&Body::Binary(vec![0, 159]))),
            Some(json!("<2 bytes of binary data>"))
        );
    }
}
