//! Finding and redacting likely secrets in case files before they are committed: credentials
//! in sensitive headers, bearer tokens, JWTs, card numbers (Luhn-checked), email addresses,
//! private keys and cloud or payment API keys. Matches become `"[REDACTED]"`.
//!
//! The capture path already redacts sensitive headers and `capture_only` rules; this is the
//! safety net for files captured elsewhere or before a rule existed.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

use crate::case::{AnyValue, Case, KeyValue};

/// The replacement for every secret.
pub const REDACTED: &str = "[REDACTED]";

/// Header attributes whose whole value is a credential.
const SENSITIVE_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "x-auth-token",
];

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
    let mut kinds = Vec::new();
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
            kinds.push(pattern.kind);
            *text = replaced;
        }
    }
    kinds
}

fn scrub_any(value: &mut AnyValue, path: &str, out: &mut Vec<Finding>) {
    match value {
        AnyValue::String(s) => {
            for kind in scrub_str(s) {
                out.push(Finding {
                    json_path: path.to_owned(),
                    kind,
                });
            }
        }
        AnyValue::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                scrub_any(item, &format!("{path}.arrayValue.values[{i}]"), out);
            }
        }
        AnyValue::KvList(kvs) => scrub_attributes(kvs, &format!("{path}.kvlistValue.values"), out),
        _ => {}
    }
}

fn scrub_attributes(attrs: &mut [KeyValue], path: &str, out: &mut Vec<Finding>) {
    for (i, kv) in attrs.iter_mut().enumerate() {
        let value_path = format!("{path}[{i}].value.stringValue");
        let header = kv
            .key
            .strip_prefix("http.request.header.")
            .or_else(|| kv.key.strip_prefix("http.response.header."));
        if let Some(name) = header
            && SENSITIVE_HEADERS.contains(&name.to_ascii_lowercase().as_str())
        {
            if kv.value.as_str() != Some(REDACTED) {
                kv.value = AnyValue::String(REDACTED.to_owned());
                out.push(Finding {
                    json_path: value_path,
                    kind: SecretKind::SensitiveHeader,
                });
            }
            continue;
        }
        scrub_any(&mut kv.value, &format!("{path}[{i}].value"), out);
    }
}

fn scrub_json(value: &mut Value, path: &str, out: &mut Vec<Finding>) {
    match value {
        Value::String(s) => {
            for kind in scrub_str(s) {
                out.push(Finding {
                    json_path: path.to_owned(),
                    kind,
                });
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                scrub_json(item, &format!("{path}[{i}]"), out);
            }
        }
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                scrub_json(v, &format!("{path}.{k}"), out);
            }
        }
        _ => {}
    }
}

/// Redacts every likely secret in a case (span attributes, embedded rules and fixtures,
/// unknown top-level keys) and lists what it replaced.
pub fn scrub_case(case: &mut Case) -> Vec<Finding> {
    let mut out = Vec::new();
    for (t, trace) in case.traces.iter_mut().enumerate() {
        for (r, rs) in trace.resource_spans.iter_mut().enumerate() {
            for (s, ss) in rs.scope_spans.iter_mut().enumerate() {
                for (i, span) in ss.spans.iter_mut().enumerate() {
                    let path = format!(
                        "$.traces[{t}].resourceSpans[{r}].scopeSpans[{s}].spans[{i}].attributes"
                    );
                    scrub_attributes(&mut span.attributes, &path, &mut out);
                }
            }
        }
    }
    for (i, fixture) in case.fixtures.iter_mut().flatten().enumerate() {
        scrub_json(fixture, &format!("$.fixtures[{i}]"), &mut out);
    }
    for (key, value) in case.extra.iter_mut() {
        scrub_json(value, &format!("$.{key}"), &mut out);
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
    fn json_bodies_stay_valid_json() {
        let mut s = r#"{"card":{"number":"4000056655665556"},"email":"a@b.co"}"#.to_owned();
        let kinds = scrub_str(&mut s);
        assert_eq!(kinds, vec![SecretKind::Email, SecretKind::CardNumber]);
        let v: Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["card"]["number"], REDACTED);
        assert_eq!(v["email"], REDACTED);
    }
}
