//! Checks a schema cannot express: whether each span is a readable HTTP hop once aliases are
//! applied, ids that decode to zeros or repeat, legacy spellings worth rewriting, the size
//! guidance, and cross-field rules (`id` vs `name`, the JSONPath subset, allowlist patterns).

use std::collections::HashMap;

use serde_json::Value;

use super::Severity;
use super::locate::{Segment, child};
use crate::case::attributes as attr;
use crate::case::{Direction, Exchange, ExchangeError, SpanId, TracesData};

/// Spans per case file above which a review is suggested.
pub(crate) const MAX_SPANS: usize = 100;
/// Attributes per span above which a review is suggested.
pub(crate) const MAX_ATTRIBUTES: usize = 128;
/// Bytes per string attribute value above which a review is suggested.
pub(crate) const MAX_STRING_BYTES: usize = 64 * 1024;
/// Bytes per trace document above which a review is suggested.
pub(crate) const MAX_TRACE_BYTES: usize = 1024 * 1024;

/// A finding before it is located in the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Issue {
    pub(crate) severity: Severity,
    pub(crate) code: &'static str,
    pub(crate) path: String,
    pub(crate) message: String,
}

impl Issue {
    pub(super) fn error(code: &'static str, path: String, message: String) -> Self {
        Issue {
            severity: Severity::Error,
            code,
            path,
            message,
        }
    }

    fn warning(code: &'static str, path: String, message: String) -> Self {
        Issue {
            severity: Severity::Warning,
            code,
            path,
            message,
        }
    }
}

/// What the span checks saw, for the document-level warnings.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) spans: usize,
    pub(crate) inbound: usize,
    pub(crate) outbound: usize,
    /// Spans that are not readable hops; their direction is unknown.
    pub(crate) unreadable: usize,
    span_ids: HashMap<SpanId, String>,
}

/// Checks one trace document found at `prefix` (`$` for a trace file, `$.traces[3]` in a
/// case). `raw` is its JSON, measured against the size guidance.
pub(crate) fn trace(
    prefix: &str,
    trace: &TracesData,
    raw: Option<&Value>,
    tally: &mut Tally,
    out: &mut Vec<Issue>,
) {
    if let Some(raw) = raw {
        let bytes = serde_json::to_vec(raw).map_or(0, |v| v.len());
        if bytes > MAX_TRACE_BYTES {
            out.push(Issue::warning(
                "large-trace",
                prefix.to_owned(),
                format!(
                    "trace document is {} KiB; the guidance is at most {} KiB, so consider splitting the scenario",
                    bytes / 1024,
                    MAX_TRACE_BYTES / 1024
                ),
            ));
        }
    }
    for (r, rs) in trace.resource_spans.iter().enumerate() {
        let service = rs.resource.as_ref().and_then(|res| {
            res.attributes
                .iter()
                .find(|kv| kv.key == attr::RESOURCE_SERVICE_NAME)
                .and_then(|kv| kv.value.as_str())
        });
        for (s, ss) in rs.scope_spans.iter().enumerate() {
            for (i, span) in ss.spans.iter().enumerate() {
                let path = format!("{prefix}.resourceSpans[{r}].scopeSpans[{s}].spans[{i}]");
                span_checks(&path, span, service, tally, out);
            }
        }
    }
}

fn span_checks(
    path: &str,
    span: &crate::case::Span,
    service: Option<&str>,
    tally: &mut Tally,
    out: &mut Vec<Issue>,
) {
    tally.spans += 1;
    if span.trace_id.is_zero() {
        out.push(Issue::error(
            "zero-id",
            format!("{path}.traceId"),
            "trace id is all zeros, which OTLP and W3C read as \"no trace\"".to_owned(),
        ));
    }
    if span.span_id.is_zero() {
        out.push(Issue::error(
            "zero-id",
            format!("{path}.spanId"),
            "span id is all zeros, which OTLP and W3C read as \"no span\"".to_owned(),
        ));
    } else if let Some(first) = tally.span_ids.get(&span.span_id) {
        out.push(Issue::warning(
            "duplicate-span-id",
            format!("{path}.spanId"),
            format!(
                "span id {} is already used by {first}; parent links become ambiguous",
                span.span_id
            ),
        ));
    } else {
        tally.span_ids.insert(span.span_id, path.to_owned());
    }

    let attrs = &span.attributes;
    let attr_path = |k: usize| format!("{path}.attributes[{k}]");
    if attrs.len() > MAX_ATTRIBUTES {
        out.push(Issue::warning(
            "too-many-attributes",
            format!("{path}.attributes"),
            format!(
                "span has {} attributes; the guidance is at most {MAX_ATTRIBUTES}",
                attrs.len()
            ),
        ));
    }
    let has = |key: &str| attrs.iter().any(|kv| kv.key == key);
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (k, kv) in attrs.iter().enumerate() {
        if let Some(first) = seen.get(kv.key.as_str()) {
            out.push(Issue::warning(
                "duplicate-attribute",
                attr_path(k),
                format!(
                    "attribute `{}` repeats {}; readers use the first value",
                    kv.key,
                    attr_path(*first)
                ),
            ));
        } else {
            seen.insert(&kv.key, k);
        }
        if let Some(s) = kv.value.as_str()
            && s.len() > MAX_STRING_BYTES
        {
            out.push(Issue::warning(
                "long-string",
                format!("{}.value", attr_path(k)),
                format!(
                    "`{}` is {} KiB; the guidance is at most {} KiB per string",
                    kv.key,
                    s.len() / 1024,
                    MAX_STRING_BYTES / 1024
                ),
            ));
        }
        let legacy = match kv.key.as_str() {
            attr::LEGACY_METHOD => Some("write `http.request.method`".to_owned()),
            attr::LEGACY_STATUS_CODE => Some("write `http.response.status_code`".to_owned()),
            attr::LEGACY_TARGET => Some("write `url.path` and `url.query`".to_owned()),
            attr::LEGACY_URL_FULL => {
                Some("write `url.scheme`, `url.host`, `url.path` and `url.query`".to_owned())
            }
            attr::PSEUDO_METHOD if !has(attr::REQUEST_METHOD) && !has(attr::LEGACY_METHOD) => Some(
                "the method is read from this pseudo-header; write `http.request.method`"
                    .to_owned(),
            ),
            attr::PSEUDO_PATH
                if !has(attr::URL_PATH)
                    && !has(attr::LEGACY_TARGET)
                    && !has(attr::LEGACY_URL_FULL) =>
            {
                Some("the path is read from this pseudo-header; write `url.path`".to_owned())
            }
            attr::PSEUDO_AUTHORITY if !has(attr::URL_HOST) && !has(attr::LEGACY_URL_FULL) => {
                Some("the host is read from this pseudo-header; write `url.host`".to_owned())
            }
            _ => None,
        };
        if let Some(advice) = legacy {
            out.push(Issue::warning(
                "legacy-attribute",
                attr_path(k),
                format!("`{}` is a legacy spelling; {advice}", kv.key),
            ));
        }
        if kv.key == attr::URL_PATH && kv.value.as_str().is_some_and(|p| p.contains('?')) {
            out.push(Issue::warning(
                "query-in-path",
                attr_path(k),
                "`url.path` holds a query string; write the part after `?` in `url.query`"
                    .to_owned(),
            ));
        }
    }

    match Exchange::from_span(span, service) {
        Ok(ex) => {
            match ex.direction {
                Direction::Inbound => tally.inbound += 1,
                Direction::Outbound => tally.outbound += 1,
            }
            if ex.host.is_empty() {
                let message = format!(
                    "{} span has no host: expected attribute `url.host` (or `url.full`, or `http.request.header.:authority`)",
                    ex.direction
                );
                out.push(match ex.direction {
                    Direction::Outbound => Issue::error("missing-host", path.to_owned(), message),
                    // The listener's host is not needed to replay an inbound request.
                    Direction::Inbound => Issue::warning("missing-host", path.to_owned(), message),
                });
            }
            // An inject span is a question: its response is what the runtime answers.
            if ex.status.is_none() && ex.span_type.as_deref() != Some("inject") {
                out.push(Issue::error(
                    "missing-status",
                    path.to_owned(),
                    "span has no response status: expected attribute `http.response.status_code` (or `http.status_code`)"
                        .to_owned(),
                ));
            }
        }
        Err(err) => {
            tally.unreadable += 1;
            let at = match &err {
                ExchangeError::BadAttribute { key, .. } => {
                    let keys: &[&str] = if key == attr::RESPONSE_STATUS_CODE {
                        &[
                            attr::RESPONSE_STATUS_CODE,
                            attr::LEGACY_STATUS_CODE,
                            attr::PSEUDO_STATUS,
                        ]
                    } else {
                        &[key.as_str()]
                    };
                    keys.iter()
                        .find_map(|key| attrs.iter().position(|kv| kv.key == *key))
                        .map(|k| format!("{}.value", attr_path(k)))
                }
                _ => None,
            };
            out.push(Issue::error(
                "http-span",
                at.unwrap_or_else(|| path.to_owned()),
                err.to_string(),
            ));
        }
    }
}

/// Document-level warnings of a case or trace file.
pub(crate) fn totals(path: &str, tally: &Tally, out: &mut Vec<Issue>) {
    if tally.spans > MAX_SPANS {
        out.push(Issue::warning(
            "too-many-spans",
            path.to_owned(),
            format!(
                "{} spans; the guidance is at most {MAX_SPANS} per case file, so consider splitting the scenario",
                tally.spans
            ),
        ));
    }
    if tally.unreadable > 0 {
        // The direction of an unreadable span is unknown: a missing leg may be a false alarm.
        return;
    }
    if tally.inbound == 0 {
        out.push(Issue::warning(
            "no-inbound",
            path.to_owned(),
            "no inbound span: the capture saw no request to the service under test".to_owned(),
        ));
    }
    if tally.outbound == 0 {
        out.push(Issue::warning(
            "no-outbound",
            path.to_owned(),
            "no outbound span: the capture saw no call made by the service (is its egress routed through the proxy?)".to_owned(),
        ));
    }
}

/// Checks rules (already schema-valid or not) found at `path` (`$.rules`, `$`).
pub(crate) fn rules(path: &str, rules: &[Value], out: &mut Vec<Issue>) {
    for (i, rule) in rules.iter().enumerate() {
        let rule_path = child(path, &Segment::Index(i));
        if let (Some(id), Some(name)) = (
            rule.get("id").and_then(Value::as_str),
            rule.get("name").and_then(Value::as_str),
        ) && id != name
        {
            out.push(Issue::error(
                "name-mismatch",
                format!("{rule_path}.name"),
                format!(
                    "`id` {id:?} and `name` {name:?} differ; `id` is another spelling of `name`"
                ),
            ));
        }
        let when = rule.get("when");
        if let Some(map) = when
            .and_then(|w| w.get("bodyJsonPath"))
            .and_then(Value::as_object)
        {
            for key in map.keys() {
                if let Err(problem) = check_json_path(key) {
                    out.push(Issue::error(
                        "json-path",
                        child(
                            &format!("{rule_path}.when.bodyJsonPath"),
                            &Segment::Key(key.clone()),
                        ),
                        format!("JSONPath {key:?} {problem}"),
                    ));
                }
            }
        }
        if let Some(paths) = rule
            .pointer("/then/captureOnly/redactJsonPaths")
            .and_then(Value::as_array)
        {
            for (j, p) in paths.iter().enumerate() {
                if let Some(p) = p.as_str()
                    && let Err(problem) = check_json_path(p)
                {
                    out.push(Issue::error(
                        "json-path",
                        format!("{rule_path}.then.captureOnly.redactJsonPaths[{j}]"),
                        format!("JSONPath {p:?} {problem}"),
                    ));
                }
            }
        }
    }
}

/// Checks a policy document's own fields, then its rules.
pub(crate) fn policy(value: &Value, out: &mut Vec<Issue>) {
    if let Some(list) = value.get("externalAllowlist").and_then(Value::as_array) {
        for (i, entry) in list.iter().enumerate() {
            let Some(entry) = entry.as_str() else {
                continue;
            };
            let rest = entry.strip_prefix("*.").unwrap_or(entry);
            if rest.contains('*') || rest.is_empty() {
                out.push(Issue::error(
                    "allowlist-pattern",
                    format!("$.externalAllowlist[{i}]"),
                    format!(
                        "{entry:?} is not a host or a `*.suffix` pattern; `*` may only open the pattern"
                    ),
                ));
            }
        }
    }
    if let Some(list) = value.get("rules").and_then(Value::as_array) {
        rules("$.rules", list, out);
    }
}

/// The JSONPath subset the rules engine implements: `$`, then `.name`, `['name']` or
/// `[index]` steps.
pub(crate) fn check_json_path(path: &str) -> Result<(), String> {
    let Some(mut rest) = path.strip_prefix('$') else {
        return Err("must start with `$`".to_owned());
    };
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("['") {
            let mut escaped = false;
            let mut end = None;
            for (i, c) in r.char_indices() {
                match c {
                    '\\' if !escaped => escaped = true,
                    '\'' if !escaped => {
                        end = Some(i);
                        break;
                    }
                    _ => escaped = false,
                }
            }
            let end = end.ok_or("has an unterminated `['` step")?;
            rest = r[end + 1..]
                .strip_prefix(']')
                .ok_or("has a `['name'` step without its closing `]`")?;
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']').ok_or("has an unterminated `[` step")?;
            if r[..end].is_empty() || !r[..end].bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!(
                    "uses `[{}]`; only `[index]` and `['name']` steps are supported",
                    &r[..end]
                ));
            }
            rest = &r[end + 1..];
        } else if let Some(r) = rest.strip_prefix('.') {
            if r.starts_with('.') {
                return Err("uses `..`; recursive descent is not supported".to_owned());
            }
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let name = &r[..end];
            if name.is_empty() || name == "*" {
                return Err(format!(
                    "has an empty or wildcard step `.{name}`; only `.name` steps are supported"
                ));
            }
            rest = &r[end..];
        } else {
            return Err(format!(
                "has an unexpected {:?} after a step",
                rest.chars().next().unwrap_or(' ')
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_path_subset() {
        for ok in [
            "$",
            "$.card.number",
            "$['x-y'][0].z",
            "$.items[12]",
            r"$['it\'s']",
        ] {
            assert_eq!(check_json_path(ok), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("card.number", "must start"),
            ("$..x", "recursive"),
            ("$.a[*]", "only `[index]`"),
            ("$.a.", "empty"),
            ("$['a", "unterminated"),
            ("$['a'", "closing"),
            ("$a", "unexpected"),
        ] {
            let err = check_json_path(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
