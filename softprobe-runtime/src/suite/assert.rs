//! What a case's response must satisfy: the status, header regexes and the body compared
//! with the captured one (`json-subset`, `exact`, `string`, `ignore`), each failure carrying a
//! diff a person reads in seconds.

use std::fmt::Write as _;

use serde_json::Value;

use super::model::{BodyMode, StatusSpec};
use super::report::Failure;
use crate::json::{DiffOptions, Difference, PathPattern, diff};

/// One HTTP response (or the captured one).
#[derive(Debug, Clone, Default)]
pub struct Message {
    /// Status code.
    pub status: u16,
    /// Headers in order, names lowercase.
    pub headers: Vec<(String, String)>,
    /// The body bytes.
    pub body: Vec<u8>,
}

impl Message {
    /// The body as hooks and reports see it: JSON when it parses, text when UTF-8, else
    /// `{"base64": ...}`.
    pub fn body_value(&self) -> Value {
        body_value(&self.body)
    }

    /// `{status, headers, body}` for hooks and reports.
    pub fn to_json(&self) -> Value {
        let mut headers = serde_json::Map::new();
        for (k, v) in &self.headers {
            headers.insert(k.clone(), Value::String(v.clone()));
        }
        serde_json::json!({"status": self.status, "headers": headers, "body": self.body_value()})
    }
}

/// JSON when it parses, text when UTF-8, else `{"base64": ...}`.
pub fn body_value(bytes: &[u8]) -> Value {
    use base64::Engine as _;
    if bytes.is_empty() {
        return Value::String(String::new());
    }
    if let Ok(v) = serde_json::from_slice::<Value>(bytes) {
        return v;
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => Value::String(s.to_owned()),
        Err(_) => serde_json::json!({
            "base64": base64::engine::general_purpose::STANDARD.encode(bytes)
        }),
    }
}

/// Checks the status: against the spec when given, else against the captured status.
pub fn check_status(spec: Option<&StatusSpec>, captured: u16, actual: u16) -> Option<Failure> {
    let (ok, wanted) = match spec {
        Some(spec) => {
            // The spec was checked when the suite was read.
            let ranges = spec.ranges().unwrap_or_default();
            let ok = ranges.iter().any(|(a, b)| (*a..=*b).contains(&actual));
            let wanted = ranges
                .iter()
                .map(|(a, b)| {
                    if a == b {
                        a.to_string()
                    } else {
                        format!("{a}-{b}")
                    }
                })
                .collect::<Vec<_>>()
                .join(" or ");
            (ok, wanted)
        }
        None => (captured == actual, captured.to_string()),
    };
    (!ok).then(|| Failure {
        kind: "status".into(),
        message: format!("status {actual}, expected {wanted}"),
        diff: Some(format!("- status: {wanted}\n+ status: {actual}\n")),
    })
}

/// Checks that every named header is present and matches its regex.
pub fn check_headers(
    include: &[(String, regex::Regex)],
    actual: &[(String, String)],
) -> Vec<Failure> {
    let mut out = Vec::new();
    for (name, re) in include {
        let value = actual
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str());
        match value {
            None => out.push(Failure {
                kind: "headers".into(),
                message: format!("header {name} is missing (expected to match /{re}/)"),
                diff: Some(format!("- {name}: /{re}/\n+ (absent)\n")),
            }),
            Some(v) if !re.is_match(v) => out.push(Failure {
                kind: "headers".into(),
                message: format!("header {name}: {v:?} does not match /{re}/"),
                diff: Some(format!("- {name}: /{re}/\n+ {name}: {v}\n")),
            }),
            Some(_) => {}
        }
    }
    out
}

/// Compares the actual body with the captured one.
pub fn check_body(
    mode: BodyMode,
    ignore: &[String],
    expected: &[u8],
    actual: &[u8],
) -> Option<Failure> {
    let json = |b: &[u8]| serde_json::from_slice::<Value>(b).ok();
    let diff = match mode {
        BodyMode::Ignore => return None,
        BodyMode::String => {
            if expected == actual {
                return None;
            }
            text_diff(expected, actual)
        }
        BodyMode::Exact | BodyMode::JsonSubset => match (json(expected), json(actual)) {
            (Some(e), Some(a)) => {
                // The suite was validated when read, so every ignore path parses.
                let ignore: Vec<PathPattern> = ignore
                    .iter()
                    .filter_map(|p| PathPattern::parse(p).ok())
                    .collect();
                let options = DiffOptions {
                    subset: mode == BodyMode::JsonSubset,
                    ignore: &ignore,
                    volatile: None,
                };
                let found = diff(&e, &a, &options);
                if found.is_empty() {
                    return None;
                }
                let mut out = String::new();
                for d in &found.differences {
                    let _ = writeln!(
                        out,
                        "- {}: {}\n+ {}: {}",
                        d.field,
                        Difference::show(d.expected.as_ref()),
                        d.field,
                        Difference::show(d.actual.as_ref())
                    );
                }
                out
            }
            (Some(_), None) if mode == BodyMode::JsonSubset => {
                format!("- (a JSON body)\n+ {}\n", String::from_utf8_lossy(actual))
            }
            _ => {
                if expected == actual {
                    return None;
                }
                text_diff(expected, actual)
            }
        },
    };
    let count = diff.lines().filter(|l| l.starts_with('+')).count().max(1);
    Some(Failure {
        kind: "body".into(),
        message: format!(
            "body differs from the captured one ({}, {count} difference(s))",
            mode.as_str()
        ),
        diff: Some(diff),
    })
}

/// A line diff of two texts (`  ` same, `- ` only in the expected, `+ ` only in the actual),
/// aligned by [`similar`] so that one inserted line is one `+` line. When only one side ends
/// with a newline, its last line says so, since that alone can be the difference.
pub fn text_diff(expected: &[u8], actual: &[u8]) -> String {
    let e = String::from_utf8_lossy(expected);
    let a = String::from_utf8_lossy(actual);
    let mut out = String::new();
    let mut changed = false;
    let one_ends_open = e.ends_with('\n') != a.ends_with('\n');
    for change in similar::TextDiff::from_lines(e.as_ref(), a.as_ref()).iter_all_changes() {
        let sign = match change.tag() {
            similar::ChangeTag::Equal => ' ',
            similar::ChangeTag::Delete => '-',
            similar::ChangeTag::Insert => '+',
        };
        changed |= sign != ' ';
        let line = change.value();
        let line = line.strip_suffix('\n').unwrap_or(line);
        let end = if one_ends_open && change.missing_newline() {
            " (no newline at end)"
        } else {
            ""
        };
        let _ = writeln!(out, "{sign} {line}{end}");
    }
    if !changed {
        // Only bytes that are not UTF-8 differ; as text both read the same.
        out = "- (the captured bytes)\n+ (other bytes that read the same as text)\n".to_owned();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subset_allows_extra_keys_and_reports_changed_ones() {
        let e = br#"{"a":1,"b":{"c":"x"},"l":[1,2]}"#;
        let a = br#"{"a":1.0,"b":{"c":"y","d":2},"l":[1,2],"z":true}"#;
        let f = check_body(BodyMode::JsonSubset, &[], e, a).unwrap();
        assert_eq!(f.diff.unwrap(), "- $.b.c: \"x\"\n+ $.b.c: \"y\"\n");
        assert!(check_body(BodyMode::JsonSubset, &["$.b.c".into()], e, a).is_none());
        let f = check_body(BodyMode::Exact, &["$.b.c".into()], e, a).unwrap();
        assert!(f.diff.as_deref().unwrap().contains("+ $.z: true"), "{f:?}");
    }

    #[test]
    fn string_and_ignore_modes() {
        assert!(check_body(BodyMode::String, &[], b"a\nb", b"a\nb").is_none());
        let f = check_body(BodyMode::String, &[], b"a\nb", b"a\nc").unwrap();
        assert_eq!(f.diff.unwrap(), "  a\n- b\n+ c\n");
        assert!(check_body(BodyMode::Ignore, &[], b"a", b"b").is_none());
    }

    #[test]
    fn an_inserted_line_is_one_difference_and_a_changed_line_still_fails() {
        let captured = b"one\ntwo\nthree\nfour\n";
        let inserted = b"one\nnew\ntwo\nthree\nfour\n";
        let f = check_body(BodyMode::String, &[], captured, inserted).unwrap();
        assert_eq!(
            f.diff.as_deref(),
            Some("  one\n+ new\n  two\n  three\n  four\n")
        );
        assert_eq!(
            f.message,
            "body differs from the captured one (string, 1 difference(s))"
        );

        let changed = b"one\ntwo\nTHREE\nfour\n";
        let f = check_body(BodyMode::String, &[], captured, changed).unwrap();
        assert_eq!(
            f.diff.as_deref(),
            Some("  one\n  two\n- three\n+ THREE\n  four\n")
        );
        assert!(f.message.contains("1 difference(s)"), "{}", f.message);
    }

    #[test]
    fn a_missing_final_newline_is_named() {
        let f = check_body(BodyMode::String, &[], b"a\nb\n", b"a\nb").unwrap();
        assert_eq!(
            f.diff.as_deref(),
            Some("  a\n- b\n+ b (no newline at end)\n")
        );
    }

    #[test]
    fn status_and_headers() {
        assert!(check_status(None, 200, 200).is_none());
        assert!(check_status(None, 200, 201).is_some());
        let spec = StatusSpec::Range("2xx".into());
        assert!(check_status(Some(&spec), 500, 204).is_none());
        let f = check_status(Some(&StatusSpec::List(vec![200, 201])), 200, 404).unwrap();
        assert_eq!(f.message, "status 404, expected 200 or 201");
        let inc = vec![(
            "content-type".to_owned(),
            regex::Regex::new("^application/json").unwrap(),
        )];
        let ok = [("Content-Type".to_owned(), "application/json".to_owned())];
        assert!(check_headers(&inc, &ok).is_empty());
        assert_eq!(check_headers(&inc, &[]).len(), 1);
    }
}
