//! Finding and redacting likely secrets in case files before they are committed: credentials
//! in sensitive headers, bearer tokens, JWTs, card numbers (Luhn-checked), email addresses,
//! private keys and cloud or payment API keys. Matches become `"[REDACTED]"`.
//!
//! The capture path already redacts sensitive headers and `capture_only` rules; this is the
//! safety net for files captured elsewhere or before a rule existed. [`ScrubRules`] add a
//! project's own patterns, body fields and headers on top.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

use crate::case::attributes::{REQUEST_BODY, RESPONSE_BODY};
use crate::case::{AnyValue, Case, KeyValue};

mod rules;

pub use rules::{CustomPattern, ScrubRules, ScrubRulesError};

/// The replacement for every secret: the capture path's own.
pub use crate::redact::REDACTED;

/// What kind of secret a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum SecretKind {
    /// A credential header (`authorization`, `cookie`, ...).
    SensitiveHeader,
    /// `Bearer <token>`.
    BearerToken,
    /// A JSON Web Token.
    JsonWebToken,
    /// A payment card number that passes the Luhn check.
    CardNumber,
    /// An email address.
    Email,
    /// A PEM private key.
    PrivateKey,
    /// An AWS access key id.
    CloudKey,
    /// A secret API key such as `sk_live_...`.
    ApiKey,
    /// A match of a pattern from a scrub rules file (its name is in [`Finding::rule`]).
    CustomPattern,
    /// A JSON body field named by a scrub rules file.
    BodyField,
}

impl SecretKind {
    /// A short name for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            SecretKind::SensitiveHeader => "sensitive header",
            SecretKind::BearerToken => "bearer token",
            SecretKind::JsonWebToken => "JSON web token",
            SecretKind::CardNumber => "card number",
            SecretKind::Email => "email address",
            SecretKind::PrivateKey => "private key",
            SecretKind::CloudKey => "cloud access key",
            SecretKind::ApiKey => "API key",
            SecretKind::CustomPattern => "custom pattern",
            SecretKind::BodyField => "body field",
        }
    }
}

/// One likely secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// JSON path of the string that holds it.
    pub json_path: String,
    /// What it looks like.
    pub kind: SecretKind,
    /// For a finding of a scrub rules file: the pattern's name, the JSONPath or the header.
    pub rule: Option<String>,
}

impl Finding {
    /// `card number`, `custom pattern "ticket"`, `body field "$.phone"`.
    pub fn describe(&self) -> String {
        match &self.rule {
            Some(rule) => format!("{} {rule:?}", self.kind.as_str()),
            None => self.kind.as_str().to_owned(),
        }
    }
}

struct Pattern {
    kind: SecretKind,
    regex: Regex,
}

static PATTERNS: LazyLock<Vec<Pattern>> = LazyLock::new(|| {
    let p = |kind, re: &str| Pattern {
        kind,
        regex: Regex::new(re).expect("built-in secret pattern compiles"),
    };
    vec![
        p(
            SecretKind::PrivateKey,
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
        ),
        p(
            SecretKind::JsonWebToken,
            r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}",
        ),
        p(
            SecretKind::BearerToken,
            r"(?i)\bbearer\s+[A-Za-z0-9\-._~+/]{8,}=*",
        ),
        p(SecretKind::CloudKey, r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
        p(
            SecretKind::ApiKey,
            r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{10,}\b",
        ),
        p(
            SecretKind::Email,
            r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b",
        ),
        p(SecretKind::CardNumber, r"\b\d(?:[ -]?\d){12,18}\b"),
    ]
});

fn luhn(candidate: &str) -> bool {
    let digits: Vec<u32> = candidate.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(13..=19).contains(&digits.len()) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                *d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Redacts secrets inside one string; returns the kinds found (empty: unchanged).
pub fn scrub_str(text: &mut String) -> Vec<SecretKind> {
    scrub_str_with(text, &ScrubRules::default())
        .into_iter()
        .map(|(kind, _)| kind)
        .collect()
}

/// [`scrub_str`] with a rules file's patterns tried first; custom findings carry the
/// pattern's name.
pub fn scrub_str_with(text: &mut String, rules: &ScrubRules) -> Vec<(SecretKind, Option<String>)> {
    let mut kinds = Vec::new();
    for pattern in &rules.patterns {
        let mut found = false;
        let replaced = pattern
            .regex
            .replace_all(text, |caps: &regex::Captures<'_>| {
                let m = &caps[0];
                // A replacement the pattern matches again is already scrubbed.
                if m == pattern.replacement {
                    return m.to_owned();
                }
                found = true;
                pattern.replacement.clone()
            })
            .into_owned();
        if found {
            kinds.push((SecretKind::CustomPattern, Some(pattern.name.clone())));
            *text = replaced;
        }
    }
    for pattern in PATTERNS.iter() {
        if !pattern.regex.is_match(text) {
            continue;
        }
        let mut found = false;
        let replaced = pattern
            .regex
            .replace_all(text, |caps: &regex::Captures<'_>| {
                let m = &caps[0];
                if pattern.kind == SecretKind::CardNumber && !luhn(m) {
                    return m.to_owned();
                }
                found = true;
                REDACTED.to_owned()
            })
            .into_owned();
        if found {
            kinds.push((pattern.kind, None));
            *text = replaced;
        }
    }
    kinds
}

/// Applies the rules' JSONPaths to a JSON body; the body is rewritten only when a field
/// changed, so an already scrubbed file stays byte for byte the same.
fn scrub_body(text: &mut String, path: &str, rules: &ScrubRules, out: &mut Vec<Finding>) {
    for jp in crate::redact::json_text(text, &rules.json_paths) {
        out.push(Finding {
            json_path: path.to_owned(),
            kind: SecretKind::BodyField,
            rule: Some(jp.as_str().to_owned()),
        });
    }
}

fn scrub_any(value: &mut AnyValue, path: &str, rules: &ScrubRules, out: &mut Vec<Finding>) {
    match value {
        AnyValue::String(s) => {
            for (kind, rule) in scrub_str_with(s, rules) {
                out.push(Finding {
                    json_path: path.to_owned(),
                    kind,
                    rule,
                });
            }
        }
        AnyValue::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                scrub_any(item, &format!("{path}.arrayValue.values[{i}]"), rules, out);
            }
        }
        AnyValue::KvList(kvs) => {
            scrub_attributes(kvs, &format!("{path}.kvlistValue.values"), rules, out)
        }
        _ => {}
    }
}

fn scrub_attributes(
    attrs: &mut [KeyValue],
    path: &str,
    rules: &ScrubRules,
    out: &mut Vec<Finding>,
) {
    for (i, kv) in attrs.iter_mut().enumerate() {
        let value_path = format!("{path}[{i}].value.stringValue");
        let header = kv
            .key
            .strip_prefix("http.request.header.")
            .or_else(|| kv.key.strip_prefix("http.response.header."))
            .map(str::to_ascii_lowercase);
        if let Some(name) = header {
            let user = rules.headers.contains(&name);
            if user || crate::headers::is_sensitive(&name) {
                if kv
                    .value
                    .as_str()
                    .is_none_or(|v| !crate::redact::is_redacted(v))
                {
                    kv.value = AnyValue::String(REDACTED.to_owned());
                    out.push(Finding {
                        json_path: value_path,
                        kind: SecretKind::SensitiveHeader,
                        rule: user.then_some(name),
                    });
                }
                continue;
            }
        }
        if (kv.key == REQUEST_BODY || kv.key == RESPONSE_BODY)
            && let AnyValue::String(body) = &mut kv.value
        {
            scrub_body(body, &value_path, rules, out);
        }
        scrub_any(&mut kv.value, &format!("{path}[{i}].value"), rules, out);
    }
}

fn scrub_json(value: &mut Value, path: &str, rules: &ScrubRules, out: &mut Vec<Finding>) {
    match value {
        Value::String(s) => {
            for (kind, rule) in scrub_str_with(s, rules) {
                out.push(Finding {
                    json_path: path.to_owned(),
                    kind,
                    rule,
                });
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                scrub_json(item, &format!("{path}[{i}]"), rules, out);
            }
        }
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                scrub_json(v, &crate::json::path::child_key(path, k), rules, out);
            }
        }
        _ => {}
    }
}

/// Redacts every likely secret in a case (span attributes, embedded rules and fixtures,
/// unknown top-level keys) and lists what it replaced.
pub fn scrub_case(case: &mut Case) -> Vec<Finding> {
    scrub_case_with(case, &ScrubRules::default())
}

/// [`scrub_case`] with a rules file's patterns, body fields and headers on top of the
/// built-in ones.
pub fn scrub_case_with(case: &mut Case, rules: &ScrubRules) -> Vec<Finding> {
    let mut out = Vec::new();
    for (t, trace) in case.traces.iter_mut().enumerate() {
        for (r, rs) in trace.resource_spans.iter_mut().enumerate() {
            for (s, ss) in rs.scope_spans.iter_mut().enumerate() {
                for (i, span) in ss.spans.iter_mut().enumerate() {
                    let path = format!(
                        "$.traces[{t}].resourceSpans[{r}].scopeSpans[{s}].spans[{i}].attributes"
                    );
                    scrub_attributes(&mut span.attributes, &path, rules, &mut out);
                }
            }
        }
    }
    for (i, fixture) in case.fixtures.iter_mut().flatten().enumerate() {
        scrub_json(fixture, &format!("$.fixtures[{i}]"), rules, &mut out);
    }
    for (key, value) in case.extra.iter_mut() {
        scrub_json(
            value,
            &crate::json::path::child_key("$", key),
            rules,
            &mut out,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_each_kind_and_leaves_ordinary_text() {
        let cases = [
            (
                "Authorization: Bearer abcdEFGH1234.xyz",
                SecretKind::BearerToken,
            ),
            ("card 4242 4242 4242 4242 ok", SecretKind::CardNumber),
            ("mail jane.doe@example.com now", SecretKind::Email),
            ("key AKIAIOSFODNN7EXAMPLE", SecretKind::CloudKey),
            ("sk_live_51Habcdefghijklmn", SecretKind::ApiKey),
            (
                "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----",
                SecretKind::PrivateKey,
            ),
        ];
        for (text, kind) in cases {
            let mut s = text.to_owned();
            assert_eq!(scrub_str(&mut s), vec![kind], "{text}");
            assert!(s.contains(REDACTED), "{s}");
        }
        // Not a card: fails the Luhn check. Not an email: no domain.
        let mut s = "order 1234567890123 for user@localhost".to_owned();
        assert!(scrub_str(&mut s).is_empty(), "{s}");
    }

    #[test]
    fn listed_body_fields_are_redacted_whatever_they_hold_and_once() {
        let rules = ScrubRules::parse(
            br#"{"version": 1, "jsonPaths": ["$.phone", "$.ssn", "$.pin"]}"#,
            "r.json",
        )
        .unwrap();
        let mut body = r#"{"phone":null,"ssn":123,"pin":"[REDACTED]","ok":true}"#.to_owned();
        let mut found = Vec::new();
        scrub_body(&mut body, "$.b", &rules, &mut found);
        // A null field is redacted too, as the capture path always did: its presence alone
        // can say something about the person.
        let rules_hit: Vec<_> = found.iter().map(|f| f.describe()).collect();
        assert_eq!(
            rules_hit,
            [r#"body field "$.phone""#, r#"body field "$.ssn""#]
        );
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"phone": REDACTED, "ssn": REDACTED, "pin": REDACTED, "ok": true})
        );
        let before = body.clone();
        found.clear();
        scrub_body(&mut body, "$.b", &rules, &mut found);
        assert!(found.is_empty(), "{found:?}");
        assert_eq!(body, before);
    }

    #[test]
    fn json_bodies_stay_valid_json() {
        let mut s = r#"{"card":{"number":"4000056655665556"},"email":"a@b.co"}"#.to_owned();
        let kinds = scrub_str(&mut s);
        assert_eq!(kinds, vec![SecretKind::Email, SecretKind::CardNumber]);
        let v: Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["card"]["number"], REDACTED);
        assert_eq!(v["email"], REDACTED);
    }
}
