//! Redaction: how a value becomes `"[REDACTED]"`. This module owns the replacement
//! ([`REDACTED`]), replacing the values of named headers ([`headers`]), applying JSONPaths
//! and path patterns to JSON bodies ([`json_text`], [`json_value`], [`json_patterns`]) and
//! the walk over a hop's headers and bodies ([`exchange`]).
//!
//! What to redact is decided elsewhere, by each policy's owner:
//!
//! - capture: `capture_only` rules ([`crate::rules::Redaction`]) plus the default sensitive
//!   headers ([`crate::headers::SENSITIVE`]), applied before a captured hop is stored;
//! - `softprobe scrub` ([`crate::scrub`]): secrets found by pattern in case files, sensitive
//!   headers and a rules file's headers and body fields;
//! - the test harness: the `redact(...)` paths of a case test, blanked in snapshots.
//!
//! Every operation is idempotent: a value already redacted is left as it is and is not
//! counted, so redacting twice reports nothing the second time, and a body in which nothing
//! changed keeps its bytes (it is re-serialised only when a field was replaced).

use serde_json::Value;

use crate::case::{Body, Exchange};
use crate::json::path::{JsonPath, PathPattern};

/// What a redacted value is replaced with.
pub const REDACTED: &str = "[REDACTED]";

/// True when `value` is the replacement.
pub fn is_redacted(value: &str) -> bool {
    value == REDACTED
}

/// Replaces one value; false when it already was the replacement.
pub fn value(value: &mut String) -> bool {
    if is_redacted(value) {
        return false;
    }
    REDACTED.clone_into(value);
    true
}

/// Redacts the values of the headers named in `names` (any case); returns how many values
/// changed.
pub fn headers<S: AsRef<str>>(headers: &mut [(String, String)], names: &[S]) -> usize {
    let mut changed = 0;
    for (name, v) in headers.iter_mut() {
        if names.iter().any(|n| n.as_ref().eq_ignore_ascii_case(name)) && value(v) {
            changed += 1;
        }
    }
    changed
}

/// Redacts what each path selects in a parsed JSON document (whatever it holds, `null`
/// included); returns the paths that changed something.
pub fn json_value<'p>(doc: &mut Value, paths: &'p [JsonPath]) -> Vec<&'p JsonPath> {
    let mut changed = Vec::new();
    for path in paths {
        if let Some(node) = path.select_mut(doc)
            && node.as_str() != Some(REDACTED)
        {
            *node = Value::String(REDACTED.to_owned());
            changed.push(path);
        }
    }
    changed
}

/// [`json_value`] on a JSON text, rewritten only when something changed. A text that is not
/// JSON is left as it is.
pub fn json_text<'p>(text: &mut String, paths: &'p [JsonPath]) -> Vec<&'p JsonPath> {
    if paths.is_empty() {
        return Vec::new();
    }
    let Ok(mut doc) = serde_json::from_str::<Value>(text) else {
        return Vec::new();
    };
    let changed = json_value(&mut doc, paths);
    if !changed.is_empty() {
        *text = doc.to_string();
    }
    changed
}

/// Redacts every value the patterns name, wildcards (`[*]`) included.
pub fn json_patterns(doc: &mut Value, patterns: &[PathPattern]) {
    let redacted = Value::String(REDACTED.to_owned());
    for pattern in patterns {
        pattern.replace_in(doc, &redacted);
    }
}

/// Redacts a hop: the named headers of its request and response, and the paths in its JSON
/// request and response bodies. Returns how many values changed.
pub fn exchange<S: AsRef<str>>(exchange: &mut Exchange, names: &[S], paths: &[JsonPath]) -> usize {
    let mut changed = headers(&mut exchange.request_headers, names)
        + headers(&mut exchange.response_headers, names);
    for b in [&mut exchange.request_body, &mut exchange.response_body] {
        if let Some(Body::Text(text)) = b {
            changed += json_text(text, paths).len();
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(list: &[&str]) -> Vec<JsonPath> {
        list.iter().map(|p| JsonPath::parse(p).unwrap()).collect()
    }

    #[test]
    fn named_headers_are_replaced_in_any_case_once() {
        let mut h = vec![
            ("Authorization".to_owned(), "Bearer x".to_owned()),
            ("accept".to_owned(), "*/*".to_owned()),
            ("X-Key".to_owned(), REDACTED.to_owned()),
        ];
        assert_eq!(headers(&mut h, &["authorization", "x-key"]), 1);
        assert_eq!(h[0].1, REDACTED);
        assert_eq!(h[1].1, "*/*");
        assert_eq!(headers(&mut h, &["AUTHORIZATION"]), 0);
    }

    #[test]
    fn json_paths_replace_any_value_and_keep_untouched_bytes() {
        let p = paths(&["$.card.number", "$.note", "$.missing"]);
        let mut text = r#"{"card":{"number":4242},"note":null, "ok":true}"#.to_owned();
        let changed = json_text(&mut text, &p);
        assert_eq!(
            changed.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
            ["$.card.number", "$.note"]
        );
        let doc: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            doc,
            serde_json::json!({"card": {"number": REDACTED}, "note": REDACTED, "ok": true})
        );

        // Nothing left to change: the text keeps its bytes.
        let mut again = r#"{ "card" : {"number":"[REDACTED]"}, "note":"[REDACTED]" }"#.to_owned();
        let before = again.clone();
        assert!(json_text(&mut again, &p).is_empty());
        assert_eq!(again, before);
        let mut not_json = "card.number=4242".to_owned();
        assert!(json_text(&mut not_json, &p).is_empty());
        assert_eq!(not_json, "card.number=4242");
    }

    #[test]
    fn patterns_reach_every_element() {
        let mut doc = serde_json::json!({"items": [{"at": 1, "sku": "a"}, {"at": 2, "sku": "b"}]});
        json_patterns(
            &mut doc,
            &[PathPattern::parse_body(".body.items[].at").unwrap()],
        );
        assert_eq!(
            doc,
            serde_json::json!({"items": [{"at": REDACTED, "sku": "a"}, {"at": REDACTED, "sku": "b"}]})
        );
    }
}
