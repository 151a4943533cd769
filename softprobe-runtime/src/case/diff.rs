//! Two cases compared hop by hop: which hops were added, removed, or changed, and for a
//! changed hop the fields that differ, named with the paths a failing replay prints
//! (`status`, `header:content-type`, `body.total`, `request.body.amount`).
//!
//! What differs on every run is left out: trace and span ids, timestamps, session ids, the
//! case id and its creation time, and volatile headers. Hops are paired by
//! `direction method host path` along the order they happened, with `similar`'s diff of the
//! two sequences, so an inserted call does not shift every later hop out of its pair. Field
//! differences inside JSON bodies come from the replay engine's own JSON diff
//! ([`field_diff`] is the one place that calls it).

use serde::Serialize;
use serde_json::Value;

use super::{Body, Direction, Exchange};

/// What happened to one hop between the two cases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// In both, with no difference outside ids and timestamps.
    Same,
    /// In both, with field differences.
    Changed,
    /// Only in the second case.
    Added,
    /// Only in the first case.
    Removed,
}

/// One field that differs in a paired hop.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldDiff {
    /// The field: `status`, `query`, `header:NAME`, `body.a.b[0]`, `request.header:NAME`,
    /// `request.body.a`.
    pub field: String,
    /// The value in the first case (`null` when absent).
    pub expected: Value,
    /// The value in the second case (`null` when absent).
    pub actual: Value,
}

/// One hop of the comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HopDiff {
    /// Same, changed, added or removed.
    pub change: Change,
    /// `inbound POST /checkout` or `outbound POST https://api.stripe.com/v1/charges`.
    pub hop: String,
    /// Index of the hop in the first case's ordered hops, when it is there.
    pub left: Option<usize>,
    /// Index of the hop in the second case's ordered hops, when it is there.
    pub right: Option<usize>,
    /// Differing fields of a changed hop.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldDiff>,
}

/// Every hop of two cases, paired.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CaseDiff {
    /// In the order they happened (removed hops where they used to be).
    pub hops: Vec<HopDiff>,
}

impl CaseDiff {
    /// True when no hop was added, removed or changed.
    pub fn is_equal(&self) -> bool {
        self.hops.iter().all(|h| h.change == Change::Same)
    }

    /// How many hops are of `change`.
    pub fn count(&self, change: Change) -> usize {
        self.hops.iter().filter(|h| h.change == change).count()
    }

    /// The comparison as text for a terminal: one line per hop that is not the same, and
    /// under a changed hop its fields as `- recorded` / `+ actual` pairs.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        for hop in self.hops.iter().filter(|h| h.change != Change::Same) {
            let mark = match hop.change {
                Change::Added => "+ added  ",
                Change::Removed => "- removed",
                _ => "~ changed",
            };
            out.push_str(&format!("{mark} {}\n", hop.hop));
            for f in &hop.fields {
                out.push_str(&format!(
                    "    {}:\n      - {}\n      + {}\n",
                    f.field,
                    show(&f.expected),
                    show(&f.actual)
                ));
            }
        }
        out.push_str(&format!(
            "{} same, {} changed, {} added, {} removed\n",
            self.count(Change::Same),
            self.count(Change::Changed),
            self.count(Change::Added),
            self.count(Change::Removed)
        ));
        out
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::Null => "(absent)".to_owned(),
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

/// The hops of a case in the order they happened: traces in the order they first appear,
/// within a trace by start time (the inbound request starts before the calls it makes).
pub fn in_order(exchanges: Vec<Exchange>) -> Vec<Exchange> {
    let mut traces = Vec::new();
    for ex in &exchanges {
        if !traces.contains(&ex.trace_id) {
            traces.push(ex.trace_id);
        }
    }
    let mut keyed: Vec<(usize, u64, usize, Exchange)> = exchanges
        .into_iter()
        .enumerate()
        .map(|(i, ex)| {
            let t = traces.iter().position(|t| *t == ex.trace_id).unwrap_or(0);
            (t, ex.start_time_unix_nano, i, ex)
        })
        .collect();
    keyed.sort_by_key(|(t, start, i, _)| (*t, *start, *i));
    keyed.into_iter().map(|(_, _, _, ex)| ex).collect()
}

/// `inbound POST /checkout`, `outbound GET https://api.example.com/x`: what a hop is called
/// in the comparison (the query is a field, not part of the name).
pub fn hop_label(ex: &Exchange) -> String {
    let target = match ex.direction {
        Direction::Inbound => ex.path.clone(),
        Direction::Outbound => {
            let mut e = ex.clone();
            e.query = None;
            e.url()
        }
    };
    format!("{} {} {target}", ex.direction, ex.method)
}

/// Compares two ordered hop lists (see [`in_order`]).
pub fn compare(left: &[Exchange], right: &[Exchange]) -> CaseDiff {
    let keys = |hops: &[Exchange]| -> Vec<String> { hops.iter().map(hop_label).collect() };
    let (lk, rk) = (keys(left), keys(right));
    let mut hops = Vec::new();
    for op in similar::capture_diff_slices(similar::Algorithm::Patience, &lk, &rk) {
        for change in op.iter_changes(&lk, &rk) {
            let (l, r) = (change.old_index(), change.new_index());
            match change.tag() {
                similar::ChangeTag::Equal => {
                    let (l, r) = (l.unwrap_or(0), r.unwrap_or(0));
                    let fields = fields(&left[l], &right[r]);
                    hops.push(HopDiff {
                        change: if fields.is_empty() {
                            Change::Same
                        } else {
                            Change::Changed
                        },
                        hop: lk[l].clone(),
                        left: Some(l),
                        right: Some(r),
                        fields,
                    });
                }
                similar::ChangeTag::Delete => hops.push(HopDiff {
                    change: Change::Removed,
                    hop: change.value().clone(),
                    left: l,
                    right: None,
                    fields: Vec::new(),
                }),
                similar::ChangeTag::Insert => hops.push(HopDiff {
                    change: Change::Added,
                    hop: change.value().clone(),
                    left: None,
                    right: r,
                    fields: Vec::new(),
                }),
            }
        }
    }
    CaseDiff { hops }
}

/// The fields that differ between two hops with the same direction, method, host and path.
pub fn fields(a: &Exchange, b: &Exchange) -> Vec<FieldDiff> {
    let mut out = Vec::new();
    let mut push = |field: String, expected: Value, actual: Value| {
        out.push(FieldDiff {
            field,
            expected,
            actual,
        })
    };
    if a.query != b.query {
        push(
            "query".into(),
            a.query.clone().into(),
            b.query.clone().into(),
        );
    }
    headers(
        "request.header:",
        &a.request_headers,
        &b.request_headers,
        &mut push,
    );
    body_fields(
        "request.body",
        a.request_body.as_ref(),
        b.request_body.as_ref(),
        &mut push,
    );
    if a.status != b.status {
        push("status".into(), a.status.into(), b.status.into());
    }
    headers(
        "header:",
        &a.response_headers,
        &b.response_headers,
        &mut push,
    );
    body_fields(
        "body",
        a.response_body.as_ref(),
        b.response_body.as_ref(),
        &mut push,
    );
    out
}

fn volatile(name: &str) -> bool {
    crate::headers::is_volatile(name) || crate::headers::is_softprobe(name)
}

fn headers(
    prefix: &str,
    a: &[(String, String)],
    b: &[(String, String)],
    push: &mut impl FnMut(String, Value, Value),
) {
    let values = |hs: &[(String, String)], name: &str| -> Vec<String> {
        hs.iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .collect()
    };
    let mut names: Vec<String> = a
        .iter()
        .chain(b)
        .map(|(n, _)| n.to_ascii_lowercase())
        .filter(|n| !volatile(n))
        .collect();
    names.sort();
    names.dedup();
    for name in names {
        let (va, vb) = (values(a, &name), values(b, &name));
        if va != vb {
            let one = |v: Vec<String>| match v.len() {
                0 => Value::Null,
                1 => Value::String(v.into_iter().next().unwrap_or_default()),
                _ => Value::from(v),
            };
            push(format!("{prefix}{name}"), one(va), one(vb));
        }
    }
}

/// A body as the comparison shows it when it is not JSON on both sides.
fn body_value(body: Option<&Body>) -> Value {
    match body {
        None => Value::Null,
        Some(Body::Text(t)) => Value::String(t.clone()),
        Some(Body::Binary(b)) => Value::String(format!(
            "({} binary bytes, sha256 {})",
            b.len(),
            sha256_hex(b)
        )),
    }
}

fn body_fields(
    prefix: &str,
    a: Option<&Body>,
    b: Option<&Body>,
    push: &mut impl FnMut(String, Value, Value),
) {
    let a = a.filter(|b| !b.is_empty());
    let b = b.filter(|b| !b.is_empty());
    let json = |body: Option<&Body>| body.and_then(|b| serde_json::from_slice(b.as_bytes()).ok());
    match (json(a), json(b)) {
        (Some(ja), Some(jb)) => {
            for f in field_diff(prefix, &ja, &jb) {
                push(f.field, f.expected, f.actual);
            }
        }
        _ => {
            if a.map(Body::as_bytes) != b.map(Body::as_bytes) {
                push(prefix.to_owned(), body_value(a), body_value(b));
            }
        }
    }
}

/// The SHA-256 of `bytes` in lowercase hex: how a binary body is shown and compared.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes))
}

/// The differing leaves of two JSON documents, with paths under `prefix` (`body.total`),
/// through the project's one JSON diff ([`crate::json::diff::diff`]).
pub fn field_diff(prefix: &str, expected: &Value, actual: &Value) -> Vec<FieldDiff> {
    crate::json::diff::diff(expected, actual, &Default::default())
        .differences
        .into_iter()
        .map(|d| FieldDiff {
            field: format!("{prefix}{}", d.field.strip_prefix('$').unwrap_or(&d.field)),
            expected: d.expected.unwrap_or(Value::Null),
            actual: d.actual.unwrap_or(Value::Null),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::{SpanId, TraceId};
    use serde_json::json;

    fn hop(direction: Direction, path: &str, status: u16, body: &str, start: u64) -> Exchange {
        Exchange {
            direction,
            service: None,
            session_id: Some(format!("sess_{start}")),
            span_type: None,
            method: "POST".into(),
            scheme: Some("http".into()),
            host: if direction == Direction::Outbound {
                "api.example.com".into()
            } else {
                String::new()
            },
            path: path.into(),
            query: None,
            request_headers: vec![("traceparent".into(), format!("00-{start}"))],
            request_body: None,
            status: Some(status),
            response_headers: vec![
                ("content-type".into(), "application/json".into()),
                ("date".into(), format!("day {start}")),
            ],
            response_body: Some(Body::Text(body.into())),
            trace_id: TraceId::parse(&format!("{start:032x}")).unwrap(),
            span_id: SpanId::parse(&format!("{start:016x}")).unwrap(),
            parent_span_id: None,
            name: "HTTP POST".into(),
            start_time_unix_nano: start,
            end_time_unix_nano: start + 5,
            extra_attributes: Vec::new(),
        }
    }

    #[test]
    fn ids_timestamps_and_volatile_headers_are_not_differences() {
        let a = vec![hop(
            Direction::Inbound,
            "/checkout",
            200,
            r#"{"total":1}"#,
            1,
        )];
        let b = vec![hop(
            Direction::Inbound,
            "/checkout",
            200,
            r#"{"total":1}"#,
            99,
        )];
        let diff = compare(&a, &b);
        assert!(diff.is_equal(), "{diff:?}");
        assert_eq!(diff.count(Change::Same), 1);
    }

    /// `connection` is volatile for responses as for requests: a server that closes the
    /// connection on one run and keeps it on the next did not change its answer.
    #[test]
    fn connection_headers_are_not_differences_in_either_direction() {
        let a = vec![hop(Direction::Inbound, "/checkout", 200, "{}", 1)];
        let mut b = a.clone();
        b[0].response_headers
            .push(("Connection".into(), "close".into()));
        b[0].request_headers
            .push(("keep-alive".into(), "timeout=5".into()));
        let diff = compare(&a, &b);
        assert!(diff.is_equal(), "{diff:?}");
        b[0].response_headers.push(("etag".into(), "\"v2\"".into()));
        assert!(!compare(&a, &b).is_equal());
    }

    #[test]
    fn changed_fields_added_and_removed_hops_are_named() {
        let a = vec![
            hop(
                Direction::Inbound,
                "/checkout",
                200,
                r#"{"total":1499,"id":"x"}"#,
                1,
            ),
            hop(Direction::Outbound, "/v1/charges", 200, "ok", 2),
            hop(Direction::Outbound, "/v1/old", 200, "", 3),
        ];
        let mut b = vec![
            hop(
                Direction::Inbound,
                "/checkout",
                201,
                r#"{"total":1549,"id":"x"}"#,
                1,
            ),
            hop(Direction::Outbound, "/v1/fraud", 200, "", 2),
            hop(Direction::Outbound, "/v1/charges", 200, "ok", 3),
        ];
        b[0].response_headers[0].1 = "text/plain".into();
        let diff = compare(&a, &b);
        assert!(!diff.is_equal());
        let changes: Vec<(Change, &str)> = diff
            .hops
            .iter()
            .map(|h| (h.change, h.hop.as_str()))
            .collect();
        assert_eq!(
            changes,
            vec![
                (Change::Changed, "inbound POST /checkout"),
                (
                    Change::Added,
                    "outbound POST http://api.example.com/v1/fraud"
                ),
                (
                    Change::Same,
                    "outbound POST http://api.example.com/v1/charges"
                ),
                (
                    Change::Removed,
                    "outbound POST http://api.example.com/v1/old"
                ),
            ]
        );
        let fields: Vec<&str> = diff.hops[0]
            .fields
            .iter()
            .map(|f| f.field.as_str())
            .collect();
        assert_eq!(fields, vec!["status", "header:content-type", "body.total"]);
        assert_eq!(diff.hops[0].fields[2].expected, json!(1499));
        assert_eq!(diff.hops[0].fields[2].actual, json!(1549));
        let text = diff.render_text();
        assert!(
            text.contains(
                "~ changed inbound POST /checkout\n    status:\n      - 200\n      + 201\n"
            ),
            "{text}"
        );
        assert!(
            text.ends_with("1 same, 1 changed, 1 added, 1 removed\n"),
            "{text}"
        );
    }

    #[test]
    fn hops_are_ordered_by_trace_then_start() {
        let mut late = hop(Direction::Outbound, "/b", 200, "", 5);
        late.trace_id = TraceId::parse(&format!("{:032x}", 1)).unwrap();
        let first = hop(Direction::Inbound, "/a", 200, "", 1);
        let second = hop(Direction::Outbound, "/c", 200, "", 7);
        let ordered = in_order(vec![second.clone(), late.clone(), first.clone()]);
        let paths: Vec<&str> = ordered.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, vec!["/c", "/a", "/b"]);
    }

    #[test]
    fn binary_bodies_are_named_by_their_sha256() {
        // FIPS 180-2's test vectors.
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
