//! What the JSON Schema engine finds in a case that the case model lets through, for builds
//! without the engine (the `schema` feature off, as the test harness builds by default): a
//! format version other than 1.x, a `createdAt` that is not RFC 3339, and keys the trace
//! schema does not know where a case's traces are read (document, `resourceSpans`,
//! `scopeSpans`, span). The known keys are read from the embedded `trace.schema.json`, so the
//! schema stays their one owner.

use serde_json::Value;

use super::SchemaKind;
use super::locate::{Segment, child};
use super::semantic::Issue;

/// The findings for a case document `value`.
pub(super) fn case(value: &Value, out: &mut Vec<Issue>) {
    if let Some(version) = value.get("version").and_then(Value::as_str)
        && !is_format_1(version)
    {
        out.push(Issue::error(
            "pattern",
            "$.version".to_owned(),
            format!("unsupported case format version {version:?}; this format is 1.x (\"1.0.0\")"),
        ));
    }
    if let Some(created) = value.get("createdAt").and_then(Value::as_str)
        && time::OffsetDateTime::parse(created, &time::format_description::well_known::Rfc3339)
            .is_err()
    {
        out.push(Issue::error(
            "format",
            "$.createdAt".to_owned(),
            format!("{created:?} is not an RFC 3339 date-time such as \"2026-04-20T10:30:22Z\""),
        ));
    }
    let Some(traces) = value.get("traces").and_then(Value::as_array) else {
        return;
    };
    let schema = SchemaKind::Trace.schema();
    let defs = &schema["$defs"];
    for (t, trace) in traces.iter().enumerate() {
        let path = child("$.traces", &Segment::Index(t));
        unknown_keys(&path, trace, schema, out);
        for (r, resource) in each(trace, "resourceSpans") {
            let path = child(&child(&path, &key("resourceSpans")), &Segment::Index(r));
            unknown_keys(&path, resource, &defs["resourceSpans"], out);
            for (s, scope) in each(resource, "scopeSpans") {
                let path = child(&child(&path, &key("scopeSpans")), &Segment::Index(s));
                unknown_keys(&path, scope, &defs["scopeSpans"], out);
                for (n, span) in each(scope, "spans") {
                    let path = child(&child(&path, &key("spans")), &Segment::Index(n));
                    unknown_keys(&path, span, &defs["span"], out);
                }
            }
        }
    }
}

/// `1.MINOR.PATCH`, with an optional pre-release and build suffix, as the schema's pattern.
fn is_format_1(version: &str) -> bool {
    let core = version.split(['-', '+']).next().unwrap_or_default();
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts[0] == "1"
        && parts[1..]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

fn key(name: &str) -> Segment {
    Segment::Key(name.to_owned())
}

fn each<'v>(value: &'v Value, name: &str) -> impl Iterator<Item = (usize, &'v Value)> {
    value
        .get(name)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
}

/// A finding for each key of `value` that `schema` (an object schema with
/// `additionalProperties: false`) does not list.
fn unknown_keys(path: &str, value: &Value, schema: &Value, out: &mut Vec<Issue>) {
    let (Some(object), Some(known)) = (
        value.as_object(),
        schema.get("properties").and_then(Value::as_object),
    ) else {
        return;
    };
    if schema.get("additionalProperties") != Some(&Value::Bool(false)) {
        return;
    }
    for name in object.keys().filter(|k| !known.contains_key(*k)) {
        let expected: Vec<&str> = known.keys().map(String::as_str).collect();
        out.push(Issue::error(
            "unknown-field",
            child(path, &key(name)),
            format!(
                "unknown field `{name}`; expected one of: {}",
                expected.join(", ")
            ),
        ));
    }
}
