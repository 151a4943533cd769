//! The verdict at the end of a case test: what a replay got wrong (calls the case could not
//! answer, responses that drifted from the recording, recordings never used under `strict`),
//! written for a person, with the evidence kept next to the case as `<case>.<test>.new`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;
use softprobe_runtime::case::{Body, Direction, Exchange};
use softprobe_runtime::json::{DiffOptions, Difference, PathPattern, diff};
use softprobe_runtime::redact::REDACTED;
use softprobe_runtime::verdict::Finding;

/// Response headers compared by default, besides status and body: the ones that change what
/// a client does with the answer and do not change from run to run. `set-cookie` values are
/// redacted before anything is stored, so only how many cookies are set is compared.
pub(crate) const COMPARED_HEADERS: &[&str] = &[
    "content-type",
    "content-encoding",
    "content-language",
    "content-disposition",
    "location",
    "cache-control",
    "www-authenticate",
    "set-cookie",
];

/// Why `name` cannot be added to the compared headers, if it cannot.
pub(crate) fn check_compared_header(name: &str) -> Result<(), String> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    {
        return Err(format!("{name:?} is not a header name"));
    }
    if softprobe_runtime::headers::is_volatile(name) {
        return Err(format!(
            "the header {name:?} changes on every run (or belongs to the connection) and is never compared"
        ));
    }
    Ok(())
}

/// The headers one comparison looks at: the defaults, then the test's own, minus redacted ones.
pub(crate) fn compared_headers(extra: &[String], redactions: &Redactions) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for name in COMPARED_HEADERS
        .iter()
        .map(|h| (*h).to_owned())
        .chain(extra.iter().map(|h| h.to_ascii_lowercase()))
    {
        if !out.contains(&name)
            && !redactions.headers.contains(&name)
            && !softprobe_runtime::headers::is_volatile(&name)
        {
            out.push(name);
        }
    }
    out
}

/// Every value of a header, in order.
fn header_values<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

/// The drift of one header, if any. A value stored as `[REDACTED]` on either side is compared
/// by presence (and count) only.
fn header_drift(name: &str, recorded: &Exchange, actual: &Exchange) -> Option<Difference> {
    let e = header_values(&recorded.response_headers, name);
    let a = header_values(&actual.response_headers, name);
    let show = |v: &[&str]| match v {
        [] => "(missing)".to_owned(),
        [one] => (*one).to_owned(),
        many => many.join(" | "),
    };
    let redacted = e.iter().chain(&a).any(|v| *v == REDACTED);
    let differs = if redacted { e.len() != a.len() } else { e != a };
    let side = |v: &[&str]| {
        Some(Value::String(if redacted {
            format!("{} value(s)", v.len())
        } else {
            show(v)
        }))
    };
    differs.then(|| Difference::new(format!("header:{name}"), side(&e), side(&a)))
}

/// Redactions from `#[softprobe::case(redact(...))]`: body paths (`.body.id`,
/// `.body.items[].createdAt`) and headers (`header:date`). Query selectors (`query:ts`) only
/// concern the outbound requests, which the runtime compares.
#[derive(Debug, Clone, Default)]
pub(crate) struct Redactions {
    body_paths: Vec<PathPattern>,
    headers: Vec<String>,
}

impl Redactions {
    pub(crate) fn parse(selectors: &[&str]) -> Self {
        let mut out = Redactions::default();
        for s in selectors {
            if let Some(h) = s.strip_prefix("header:") {
                out.headers.push(h.trim().to_ascii_lowercase());
            } else if s.starts_with('.')
                && let Ok(p) = PathPattern::parse_body(s)
            {
                out.body_paths.push(p);
            }
        }
        out
    }

    fn blank(&self, doc: &mut Value) {
        softprobe_runtime::redact::json_patterns(doc, &self.body_paths);
    }
}

fn json_of(body: Option<&Body>) -> Option<Value> {
    let text = body?.as_text()?;
    serde_json::from_str(text).ok()
}

/// Compares one answer of the service with its recording: status, the compared headers
/// (`extra_headers` on top of the defaults) and the body.
pub(crate) fn compare(
    recorded: &Exchange,
    actual: &Exchange,
    redactions: &Redactions,
    extra_headers: &[String],
) -> Vec<Difference> {
    let mut out = Vec::new();
    if recorded.status != actual.status {
        out.push(Difference::new(
            "status",
            Some(Value::String(fmt_status(recorded.status))),
            Some(Value::String(fmt_status(actual.status))),
        ));
    }
    for name in compared_headers(extra_headers, redactions) {
        out.extend(header_drift(&name, recorded, actual));
    }
    match (
        json_of(recorded.response_body.as_ref()),
        json_of(actual.response_body.as_ref()),
    ) {
        (Some(e), Some(a)) => {
            let options = DiffOptions {
                ignore: &redactions.body_paths,
                ..DiffOptions::default()
            };
            out.extend(diff(&e, &a, &options).differences.into_iter().map(|mut d| {
                d.field = format!("body {}", d.field);
                d
            }));
        }
        _ => {
            let e = recorded
                .response_body
                .as_ref()
                .map(Body::as_bytes)
                .unwrap_or_default();
            let a = actual
                .response_body
                .as_ref()
                .map(Body::as_bytes)
                .unwrap_or_default();
            if e != a {
                out.push(Difference::new(
                    "body",
                    Some(Value::String(preview(recorded.response_body.as_ref()))),
                    Some(Value::String(preview(actual.response_body.as_ref()))),
                ));
            }
        }
    }
    out
}

fn fmt_status(s: Option<u16>) -> String {
    s.map(|s| s.to_string()).unwrap_or_else(|| "(none)".into())
}

fn preview(body: Option<&Body>) -> String {
    match body {
        None => "(empty)".into(),
        Some(Body::Text(t)) if t.chars().count() > 300 => {
            format!(
                "{}… ({} bytes)",
                t.chars().take(300).collect::<String>(),
                t.len()
            )
        }
        Some(Body::Text(t)) => t.clone(),
        Some(Body::Binary(b)) => format!("({} binary bytes)", b.len()),
    }
}

fn same_request(a: &Exchange, b: &Exchange) -> bool {
    a.method.eq_ignore_ascii_case(&b.method) && a.path == b.path && a.query == b.query
}

/// What went wrong with the inbound side: each request the test sent, matched in order to the
/// recorded request with the same method, path and query.
pub(crate) fn inbound_failures(
    recorded: &[Exchange],
    observed: &[Exchange],
    redactions: &Redactions,
    extra_headers: &[String],
) -> Vec<Finding> {
    let mut used = vec![false; recorded.len()];
    let mut out = Vec::new();
    for actual in observed
        .iter()
        .filter(|e| e.direction == Direction::Inbound)
    {
        let found = recorded.iter().enumerate().find(|(i, r)| {
            !used[*i] && r.direction == Direction::Inbound && same_request(r, actual)
        });
        let Some((i, rec)) = found else {
            out.push(Finding::InboundUnknown {
                method: actual.method.clone(),
                target: target(actual),
                recorded: recorded
                    .iter()
                    .filter(|r| r.direction == Direction::Inbound)
                    .map(|r| format!("{} {}", r.method, target(r)))
                    .collect(),
            });
            continue;
        };
        used[i] = true;
        let differences = compare(rec, actual, redactions, extra_headers);
        if !differences.is_empty() {
            out.push(Finding::InboundDrift {
                method: actual.method.clone(),
                target: target(actual),
                differences,
            });
        }
    }
    out
}

fn target(e: &Exchange) -> String {
    match &e.query {
        Some(q) => format!("{}?{q}", e.path),
        None => e.path.clone(),
    }
}

/// Where a test's evidence for a case goes: `<case>.<test>.new`, the test's path with `::`
/// as `__` and anything but letters, digits, `-` and `_` as `_`, so two tests sharing a case
/// keep their own and `softprobe review` finds the case again (the part before `.<test>.new`).
pub(crate) fn evidence_path(case_path: &Path, test_name: &str) -> PathBuf {
    let test: String = test_name
        .replace("::", "__")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut name = case_path.as_os_str().to_owned();
    name.push(format!(".{test}.new"));
    PathBuf::from(name)
}

/// Writes what the test actually exchanged beside the case ([`evidence_path`]), as the
/// case a capture session of those exchanges would close into.
pub(crate) fn write_evidence(
    case_path: &Path,
    test_name: &str,
    case_id: &str,
    observed: &[Exchange],
) -> Option<String> {
    evidence_written(case_path, test_name);
    let path = evidence_path(case_path, test_name);
    softprobe_runtime::capture::build_case(case_id, observed, std::time::SystemTime::now())
        .write(&path)
        .ok()?;
    Some(path.display().to_string())
}

/// Deletes the test's evidence for a case once the test passes or records the case again:
/// it no longer says anything true.
pub(crate) fn remove_evidence(case_path: &Path, test_name: &str) {
    let mut absent = evidence_absent();
    if absent
        .get(case_path)
        .is_some_and(|tests| tests.contains(test_name))
    {
        return;
    }
    let removed = std::fs::remove_file(evidence_path(case_path, test_name));
    if removed.is_ok() || removed.is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound) {
        if absent.len() >= EVIDENCE_ABSENT_MAX {
            absent.clear();
        }
        absent
            .entry(case_path.to_owned())
            .or_default()
            .insert(test_name.to_owned());
    }
}

/// How many case files [`evidence_absent`] remembers.
const EVIDENCE_ABSENT_MAX: usize = 1024;

/// Case files and tests whose evidence this process removed or found absent, and has not
/// written since: a test that passes again and again in one process (a benchmark, a test
/// run in a loop) removes its evidence once, not once per run, and does not even name the
/// file again (naming it was most of the cost). Evidence is written by the test itself, so
/// only [`write_evidence`] in this process makes one appear again.
type AbsentEvidence = std::collections::HashMap<PathBuf, std::collections::HashSet<String>>;

fn evidence_absent() -> std::sync::MutexGuard<'static, AbsentEvidence> {
    static ABSENT: std::sync::OnceLock<std::sync::Mutex<AbsentEvidence>> =
        std::sync::OnceLock::new();
    ABSENT
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Forgets that the test's evidence for the case is absent, as it is about to be written.
fn evidence_written(case_path: &Path, test_name: &str) {
    if let Some(tests) = evidence_absent().get_mut(case_path) {
        tests.remove(test_name);
    }
}

/// Sends a recorded inbound request to the service again (through the session's ingress).
/// The answer is judged at the end of the test, so a transport error is only reported here.
pub(crate) async fn resend(client: &reqwest::Client, base: &str, ex: &Exchange) {
    let url = format!("{}{}", base.trim_end_matches('/'), target(ex));
    let method = reqwest::Method::from_bytes(ex.method.as_bytes()).unwrap_or(reqwest::Method::GET);
    let mut req = client.request(method, &url);
    for (name, value) in &ex.request_headers {
        if softprobe_runtime::headers::is_not_resent(name) || value == REDACTED {
            continue;
        }
        req = req.header(name.as_str(), value.as_str());
    }
    if let Some(body) = &ex.request_body {
        req = req.body(body.as_bytes().to_vec());
    }
    match req.send().await {
        Ok(resp) => {
            // Read the answer so the ingress records it whole.
            let _ = resp.bytes().await;
        }
        Err(e) => eprintln!("softprobe: resending {} {url}: {e}", ex.method),
    }
}

/// The text `assert_response!` snapshots: status, the compared headers present (set-cookie
/// as cookie names only, since the values change), and the body (pretty JSON with the
/// redacted paths replaced, text as is, or the size and SHA-256 of a binary body).
pub(crate) fn snapshot_text(
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
    redact: &[String],
    extra_headers: &[String],
) -> String {
    let redactions = Redactions::parse(&redact.iter().map(String::as_str).collect::<Vec<_>>());
    let mut out = format!("status: {status}\n");
    for name in compared_headers(extra_headers, &redactions) {
        for v in header_values(headers, &name) {
            let v = if name == "set-cookie" {
                v.split_once('=').map_or(v, |(n, _)| n).trim()
            } else {
                v
            };
            let _ = writeln!(out, "{name}: {v}");
        }
    }
    out.push('\n');
    match serde_json::from_slice::<Value>(body) {
        Ok(mut json) => {
            redactions.blank(&mut json);
            out.push_str(&serde_json::to_string_pretty(&json).unwrap_or_default());
        }
        Err(_) => match std::str::from_utf8(body) {
            Ok(text) => out.push_str(text),
            Err(_) => {
                let hex = softprobe_runtime::case::diff::sha256_hex(body);
                out.push_str(&format!("({} binary bytes, sha256 {hex})", body.len()));
            }
        },
    }
    out.push('\n');
    out
}

/// A snapshot a capture run writes when its test passes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PendingSnapshot {
    pub(crate) path: PathBuf,
    source: String,
    expression: String,
    text: String,
}

impl PendingSnapshot {
    /// Names the file as insta would for a named file snapshot at `site`, under the insta
    /// settings bound on this thread (snapshot path, module prefix, suffix), so the file a
    /// capture writes is the one a replay's `assert_snapshot!` reads.
    pub(crate) fn new(site: crate::__private::SnapshotSite<'_>, text: &str) -> Self {
        let settings = insta::Settings::clone_current();
        let file = Path::new(site.file);
        let mut name = String::new();
        if settings.prepend_module_to_snapshot() {
            name.push_str(&site.module_path.replace("::", "__"));
            name.push_str("__");
        }
        name.push_str(&site.name.replace(['/', '\\'], "__"));
        if let Some(suffix) = settings.snapshot_suffix() {
            name.push('@');
            name.push_str(suffix);
        }
        name.push_str(".snap");
        let path = site
            .workspace
            .join(file.parent().unwrap_or(Path::new("")))
            .join(settings.snapshot_path())
            .join(name);
        let source = file
            .strip_prefix(site.workspace)
            .unwrap_or(file)
            .to_string_lossy()
            .replace('\\', "/");
        PendingSnapshot {
            path,
            source,
            expression: site.expression.to_owned(),
            text: text.trim_end().replace("\r\n", "\n"),
        }
    }

    /// The file in insta's format: a YAML header, then the text.
    fn contents(&self) -> String {
        // A JSON string is a valid YAML scalar whatever it holds; plain text reads better.
        let scalar = |s: &str, also: &str| {
            if s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-./".contains(c) || also.contains(c))
            {
                s.to_owned()
            } else {
                Value::String(s.to_owned()).to_string()
            }
        };
        format!(
            "---\nsource: {}\nexpression: {}\n---\n{}\n",
            scalar(&self.source, ""),
            scalar(&self.expression, "!(),\" &"),
            self.text
        )
    }
}

/// Queues a capture run's snapshot among the ones its session already queued. Two
/// different answers under one snapshot name in one test could never both replay, so that
/// is an error naming the file.
pub(crate) fn queue_snapshot(
    queued: &mut Vec<PendingSnapshot>,
    snap: PendingSnapshot,
) -> Result<(), String> {
    if let Some(earlier) = queued.iter().find(|p| p.path == snap.path) {
        if earlier.text == snap.text {
            return Ok(());
        }
        return Err(format!(
            "softprobe: two different responses were asserted under one snapshot name ({}) in this test; give each assert_response! its own name",
            snap.path.display()
        ));
    }
    queued.push(snap);
    Ok(())
}

/// Writes a snapshot atomically, so a parallel `cargo insta` or test never reads half a file.
pub(crate) fn write_snapshot(snap: &PendingSnapshot) -> Result<(), String> {
    if let Some(dir) = snap.path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    softprobe_runtime::case::write_atomic(&snap.path, snap.contents().as_bytes())
        .map_err(|e| e.to_string())?;
    // A pending `.snap.new` from an earlier failed replay is stale now.
    let _ = std::fs::remove_file(snap.path.with_extension("snap.new"));
    Ok(())
}

/// One line per hop, in the order they happened, for the capture summary.
pub(crate) fn summary(observed: &[Exchange]) -> String {
    let mut hops: Vec<&Exchange> = observed.iter().collect();
    hops.sort_by_key(|e| e.start_time_unix_nano);
    hops.iter()
        .map(|e| {
            format!(
                "  {:<8} {:<6} {:>3}  {}",
                e.direction.as_str(),
                e.method,
                fmt_status(e.status),
                match e.direction {
                    Direction::Inbound => target(e),
                    Direction::Outbound => e.url(),
                }
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use softprobe_runtime::case::{SpanId, TraceId};

    #[test]
    fn evidence_is_removed_again_after_this_process_wrote_it() {
        let dir = tempfile::tempdir().unwrap();
        let case = dir.path().join("evidence.case.json");
        let test = "evidence::removed_again";
        let path = evidence_path(&case, test);
        std::fs::write(&path, "{}").unwrap();
        remove_evidence(&case, test);
        assert!(!path.exists(), "a passing test removes its old evidence");
        remove_evidence(&case, test);
        let written = write_evidence(&case, test, "evidence", &[hop(200, "{}")]);
        assert_eq!(
            written.as_deref(),
            Some(path.display().to_string().as_str())
        );
        assert!(path.exists(), "a failing run writes its evidence");
        remove_evidence(&case, test);
        assert!(
            !path.exists(),
            "evidence this process wrote after removing it once is removed again"
        );
    }

    fn hop(status: u16, body: &str) -> Exchange {
        Exchange {
            status: Some(status),
            response_headers: vec![("content-type".into(), "application/json".into())],
            response_body: Some(Body::Text(body.into())),
            trace_id: TraceId([1; 16]),
            span_id: SpanId([1; 8]),
            ..Exchange::new(Direction::Inbound, "POST", "", "/checkout")
        }
    }

    #[test]
    fn redacted_paths_are_ignored_and_real_drift_is_named() {
        let r = Redactions::parse(&[".body.id", ".body.items[].at", "header:date"]);
        let rec = hop(200, r#"{"id":"a","total":10,"items":[{"at":1,"sku":"x"}]}"#);
        let same = hop(200, r#"{"id":"b","total":10,"items":[{"at":2,"sku":"x"}]}"#);
        assert!(compare(&rec, &same, &r, &[]).is_empty());
        let drifted = hop(201, r#"{"id":"b","total":12,"items":[{"at":2,"sku":"y"}]}"#);
        let fields: Vec<String> = compare(&rec, &drifted, &r, &[])
            .into_iter()
            .map(|d| d.field)
            .collect();
        assert_eq!(
            fields,
            vec!["status", "body $.items[0].sku", "body $.total"]
        );
    }

    #[test]
    fn default_and_added_headers_are_compared_volatile_ones_never() {
        let mut rec = hop(200, "{}");
        rec.response_headers.extend([
            ("location".into(), "/orders/1".into()),
            ("x-total-count".into(), "3".into()),
            ("date".into(), "Mon, 01 Jan 2024 00:00:00 GMT".into()),
            ("set-cookie".into(), "[REDACTED]".into()),
        ]);
        let mut act = hop(200, "{}");
        act.response_headers.extend([
            ("location".into(), "/orders/2".into()),
            ("x-total-count".into(), "4".into()),
            ("date".into(), "Tue, 02 Jan 2024 00:00:00 GMT".into()),
        ]);
        let none = Redactions::default();
        let drift = compare(&rec, &act, &none, &[]);
        let fields: Vec<&str> = drift.iter().map(|d| d.field.as_str()).collect();
        assert_eq!(fields, ["header:location", "header:set-cookie"]);
        assert_eq!(
            (drift[0].expected.clone(), drift[0].actual.clone()),
            (Some("/orders/1".into()), Some("/orders/2".into()))
        );
        assert_eq!(drift[1].expected, Some("1 value(s)".into()));
        let drift = compare(&rec, &act, &none, &["X-Total-Count".into()]);
        assert!(drift.iter().any(|d| d.field == "header:x-total-count"
            && d.expected == Some("3".into())
            && d.actual == Some("4".into())));
        let redacted = Redactions::parse(&["header:location", "header:set-cookie"]);
        assert!(compare(&rec, &act, &redacted, &[]).is_empty());
        assert!(check_compared_header("date").is_err());
        assert!(check_compared_header("x total").is_err());
        assert!(check_compared_header("x-total-count").is_ok());
    }

    #[test]
    fn snapshots_show_compared_headers_and_cookie_names_only() {
        let headers = vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            ("set-cookie".to_owned(), "sid=abc123; HttpOnly".to_owned()),
            ("x-total-count".to_owned(), "3".to_owned()),
            ("date".to_owned(), "today".to_owned()),
        ];
        let text = snapshot_text(200, &headers, br#"{"a":1}"#, &[], &["x-total-count".into()]);
        assert_eq!(
            text,
            "status: 200\ncontent-type: application/json\nset-cookie: sid\nx-total-count: 3\n\n{\n  \"a\": 1\n}\n"
        );
    }

    #[test]
    fn pending_snapshots_are_named_like_insta_and_kept_per_session() {
        let site = crate::__private::SnapshotSite {
            workspace: Path::new("/ws"),
            module_path: "checkout::tests",
            file: "tests/checkout.rs",
            name: "a/b",
            expression: "assert_response!(sp, \"a/b\", resp)",
        };
        let snap = PendingSnapshot::new(site, "status: 200\r\n\n");
        assert_eq!(
            snap.path,
            Path::new("/ws/tests/snapshots/checkout__tests__a__b.snap")
        );
        assert_eq!(
            snap.contents(),
            "---\nsource: tests/checkout.rs\nexpression: assert_response!(sp, \"a/b\", resp)\n---\nstatus: 200\n"
        );
        let mut queued = Vec::new();
        queue_snapshot(&mut queued, snap.clone()).unwrap();
        queue_snapshot(&mut queued, snap.clone()).unwrap();
        let other = PendingSnapshot::new(site, "status: 500");
        assert!(
            queue_snapshot(&mut queued, other)
                .unwrap_err()
                .contains("own name")
        );
        assert_eq!(queued, vec![snap]);
    }

    #[test]
    fn inbound_requests_pair_in_order_and_unknown_ones_are_named() {
        let rec = vec![hop(200, r#"{"n":1}"#), hop(200, r#"{"n":2}"#)];
        let obs = vec![hop(200, r#"{"n":1}"#), hop(200, r#"{"n":3}"#)];
        let failures = inbound_failures(&rec, &obs, &Redactions::default(), &[]);
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert!(
            failures[0].to_string().contains("body $.n"),
            "{}",
            failures[0]
        );
        let mut other = hop(200, "{}");
        other.path = "/refund".into();
        let failures = inbound_failures(&rec, &[other], &Redactions::default(), &[]);
        assert!(
            failures[0].to_string().contains("recorded no such request"),
            "{failures:?}"
        );
    }
}
