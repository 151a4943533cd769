//! The case page: a sequence of hops on a common time axis, each hop's detail, and the drift
//! between a case and its `.new` evidence. `softprobe view` serves it for one case file
//! ([`case_router`]); the runtime serves the same page at `/ui` for its live sessions
//! (`control::ui`).
//!
//! The page (HTML, CSS, JS in `view/page.*`, compiled into the binary, nothing fetched from
//! elsewhere) draws only what it fetches from its own origin as JSON: that JSON is built here
//! from the typed [`Exchange`]s, so the browser never parses OTLP.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::case::diff::{self, CaseDiff};
use crate::case::{Body, Case, CaseError, Direction, Exchange};
use crate::rules::REDACTED;

const PAGE_HTML: &str = include_str!("page.html");
const PAGE_CSS: &str = include_str!("page.css");
const PAGE_JS: &str = include_str!("page.js");

/// The page's HTML with its asset links under `base` (`/` plus a key for `softprobe view`,
/// `/ui/` for the runtime) and what it shows first (`case` or `live`).
pub fn page_html(base: &str, mode: &str) -> String {
    PAGE_HTML
        .replace("{{base}}", base)
        .replace("{{mode}}", mode)
}

/// An asset answer with the page's security headers: nothing but its own origin may be
/// loaded or framed, and nothing is cached (the case may change under the page).
pub fn asset(content_type: &'static str, body: impl Into<axum::body::Body>) -> Response {
    let mut resp = (StatusCode::OK, body.into()).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

/// The page's stylesheet.
pub fn css() -> Response {
    asset("text/css; charset=utf-8", PAGE_CSS)
}

/// The page's script.
pub fn js() -> Response {
    asset("text/javascript; charset=utf-8", PAGE_JS)
}

/// A JSON answer with the page's headers.
pub fn json_response(value: &Value) -> Response {
    asset("application/json", value.to_string())
}

/// What kind of traffic a hop is, as the page labels it.
fn kind(ex: &Exchange) -> &'static str {
    let header = |hs: &[(String, String)], name: &str| {
        crate::headers::find(hs, name)
            .map(str::to_ascii_lowercase)
            .unwrap_or_default()
    };
    let req_type = header(&ex.request_headers, "content-type");
    let resp_type = header(&ex.response_headers, "content-type");
    if req_type.starts_with("application/grpc") || resp_type.starts_with("application/grpc") {
        "grpc"
    } else if header(&ex.request_headers, "upgrade") == "websocket" || ex.status == Some(101) {
        "websocket"
    } else if resp_type.starts_with("text/event-stream")
        || resp_type.starts_with("application/x-ndjson")
    {
        "stream"
    } else {
        "http"
    }
}

fn contains_redacted(v: &Value) -> bool {
    match v {
        Value::String(s) => s == REDACTED,
        Value::Array(a) => a.iter().any(contains_redacted),
        Value::Object(o) => o.values().any(contains_redacted),
        _ => false,
    }
}

/// A body as the page shows it: parsed JSON, text, or the size and digest of binary bytes.
fn body_json(body: Option<&Body>) -> Value {
    match body {
        None => Value::Null,
        Some(Body::Binary(b)) => json!({
            "kind": "binary", "bytes": b.len(), "sha256": diff::sha256_hex(b),
        }),
        Some(Body::Text(t)) => match serde_json::from_str::<Value>(t) {
            Ok(v) if !t.trim().is_empty() => json!({
                "kind": "json", "bytes": t.len(), "redacted": contains_redacted(&v), "json": v,
            }),
            _ => json!({
                "kind": "text", "bytes": t.len(), "redacted": t.contains(REDACTED), "text": t,
            }),
        },
    }
}

fn headers_json(headers: &[(String, String)]) -> Value {
    headers
        .iter()
        .map(|(n, v)| json!({"name": n, "value": v, "redacted": v == REDACTED}))
        .collect()
}

/// One hop for the page; times in milliseconds from `t0`.
pub fn hop_json(index: usize, ex: &Exchange, t0: u64) -> Value {
    let ms = |ns: u64| ns as f64 / 1e6;
    let target = match ex.direction {
        Direction::Inbound => {
            let mut t = ex.path.clone();
            if let Some(q) = &ex.query {
                t.push('?');
                t.push_str(q);
            }
            t
        }
        Direction::Outbound => ex.url(),
    };
    json!({
        "index": index,
        "label": diff::hop_label(ex),
        "direction": ex.direction.as_str(),
        "kind": kind(ex),
        "service": ex.service,
        "method": ex.method,
        "host": ex.host,
        "path": ex.path,
        "query": ex.query,
        "url": target,
        "status": ex.status,
        "name": ex.name,
        "startMs": ms(ex.start_time_unix_nano.saturating_sub(t0)),
        "durationMs": ms(ex.end_time_unix_nano.saturating_sub(ex.start_time_unix_nano)),
        "traceId": ex.trace_id.to_string(),
        "spanId": ex.span_id.to_string(),
        "parentSpanId": ex.parent_span_id.map(|s| s.to_string()),
        "sessionId": ex.session_id,
        "request": {
            "headers": headers_json(&ex.request_headers),
            "body": body_json(ex.request_body.as_ref()),
        },
        "response": {
            "headers": headers_json(&ex.response_headers),
            "body": body_json(ex.response_body.as_ref()),
        },
    })
}

/// Hops for the page, on one time axis starting at the earliest hop.
pub fn hops_json(hops: &[Exchange]) -> Value {
    let t0 = hops
        .iter()
        .map(|e| e.start_time_unix_nano)
        .min()
        .unwrap_or(0);
    hops.iter()
        .enumerate()
        .map(|(i, e)| hop_json(i, e, t0))
        .collect()
}

/// The ordered hops of a case read from `path`.
pub fn read_hops(path: &Path) -> Result<(Case, Vec<Exchange>), CaseError> {
    let case = Case::read(path)?;
    let hops = diff::in_order(case.exchanges_named(&path.display().to_string())?);
    Ok((case, hops))
}

/// The page data of a case, with the drift against `against` when given.
pub fn case_json(path: &Path, against: Option<&Path>) -> Result<Value, CaseError> {
    let (case, hops) = read_hops(path)?;
    let drift = match against {
        None => Value::Null,
        Some(other) => {
            let (_, new_hops) = read_hops(other)?;
            drift_json(other, &hops, &new_hops)
        }
    };
    Ok(json!({
        "title": path.file_name().map(|n| n.to_string_lossy().into_owned()),
        "source": path.display().to_string(),
        "caseId": case.case_id,
        "createdAt": case.created_at,
        "hops": hops_json(&hops),
        "drift": drift,
    }))
}

fn drift_json(other: &Path, hops: &[Exchange], new_hops: &[Exchange]) -> Value {
    let d: CaseDiff = diff::compare(hops, new_hops);
    json!({
        "against": other.display().to_string(),
        "equal": d.is_equal(),
        "hops": d.hops,
        "newHops": hops_json(new_hops),
    })
}

/// The evidence a failing replay left beside `case` (`<case>.new`, or the first
/// `<case>.<test>.new` by name), if any.
pub fn evidence_for(case: &Path) -> Option<PathBuf> {
    let name = case.file_name()?.to_string_lossy().into_owned();
    let plain = case.with_file_name(format!("{name}.new"));
    if plain.is_file() {
        return Some(plain);
    }
    let dir = case.parent().filter(|d| !d.as_os_str().is_empty());
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir.unwrap_or(Path::new(".")))
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().is_some_and(|n| {
                let n = n.to_string_lossy();
                n.starts_with(&format!("{name}.")) && n.ends_with(".new")
            })
        })
        .collect();
    found.sort();
    found.into_iter().next()
}

/// What `softprobe view` serves: one case, the file to compare it with, and the secret path
/// segment that keeps other local users' pages and processes out.
#[derive(Debug, Clone)]
pub struct CaseSource {
    /// The case file.
    pub case: PathBuf,
    /// `--against`, or `None` to look for `<case>.new` on each load.
    pub against: Option<PathBuf>,
    /// The first path segment every route sits under.
    pub key: String,
}

impl CaseSource {
    /// The page's path on the server (`/<key>/`).
    pub fn base(&self) -> String {
        format!("/{}/", self.key)
    }

    /// The page data, read from disk now (so a reviewed `.new` shows at the next load).
    pub fn data(&self) -> Result<Value, CaseError> {
        let against = self.against.clone().or_else(|| evidence_for(&self.case));
        case_json(&self.case, against.as_deref())
    }
}

/// The router of `softprobe view`: the page, its assets, and `case.json`, all under the
/// source's secret base path; anything else is 404.
pub fn case_router(source: CaseSource) -> Router {
    let base = source.base();
    Router::new()
        .route(&base, get(case_page))
        .route(&format!("{base}view.css"), get(|| async { css() }))
        .route(&format!("{base}view.js"), get(|| async { js() }))
        .route(&format!("{base}case.json"), get(case_data))
        .with_state(Arc::new(source))
}

async fn case_page(State(source): State<Arc<CaseSource>>) -> Response {
    asset(
        "text/html; charset=utf-8",
        page_html(&source.base(), "case"),
    )
}

async fn case_data(State(source): State<Arc<CaseSource>>) -> Response {
    match source.data() {
        Ok(v) => json_response(&v),
        Err(e) => {
            let mut r = json_response(&json!({"error": e.to_string()}));
            *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            r
        }
    }
}

/// A random key for [`CaseSource::key`]: 128 bits, URL-safe.
pub fn random_key() -> String {
    let mut bytes = [0u8; 16];
    // Without OS randomness the page would be guessable; fall back to a time-derived key
    // only so the viewer still starts, since it binds loopback anyway.
    if getrandom::fill(&mut bytes).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        bytes = t.to_le_bytes();
    }
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_case_becomes_page_data_with_times_bodies_and_ids() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures/cases/checkout-captured.case.json");
        let data = case_json(&path, None).unwrap();
        let hops = data["hops"].as_array().unwrap();
        assert_eq!(hops.len(), 3);
        assert_eq!(hops[0]["direction"], "inbound");
        assert_eq!(hops[0]["startMs"], 0.0);
        assert!(hops[1]["startMs"].as_f64().unwrap() > 0.0);
        assert!(hops.iter().all(|h| h["durationMs"].as_f64().unwrap() > 0.0));
        assert_eq!(hops[0]["response"]["body"]["kind"], "json");
        assert_eq!(hops[0]["traceId"].as_str().unwrap().len(), 32);
        assert_eq!(data["drift"], Value::Null);
    }

    #[test]
    fn bodies_are_json_text_or_digest_and_redaction_is_marked() {
        let j = body_json(Some(&Body::Text(r#"{"card":"[REDACTED]"}"#.into())));
        assert_eq!(
            (j["kind"].as_str(), j["redacted"].as_bool()),
            (Some("json"), Some(true))
        );
        let t = body_json(Some(&Body::Text("plain".into())));
        assert_eq!(
            (t["kind"].as_str(), t["redacted"].as_bool()),
            (Some("text"), Some(false))
        );
        let b = body_json(Some(&Body::Binary(vec![0, 159, 146, 150])));
        assert_eq!(b["kind"], "binary");
        assert_eq!(b["bytes"], 4);
        assert_eq!(b["sha256"].as_str().unwrap().len(), 64);
    }

    #[test]
    fn the_page_links_only_its_own_assets() {
        let html = page_html("/k/", "case");
        assert!(html.contains(r#"src="/k/view.js""#), "{html}");
        assert!(!html.contains("http://") && !html.contains("https://"));
        assert!(!PAGE_JS.contains("http://") && !PAGE_JS.contains("https://"));
    }
}
