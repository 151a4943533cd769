//! Finding and redacting likely secrets in case files before they are committed: credentials
//! in sensitive headers, bearer tokens, JWTs, card numbers (Luhn-checked), email addresses,
//! private keys and cloud or payment API keys. Matches become `"[REDACTED]"`.
//!
//! The capture path already redacts sensitive headers and `capture_only` rules; this is the
//! safety net for files captured elsewhere or before a rule existed. [`ScrubRules`] add a
//! project's own patterns, body fields and headers on top.

use std::cell::RefCell;
use std::path::Path;
use std::sync::LazyLock;

use regex::{Regex, RegexSet};
use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::case::attributes::{REQUEST_BODY, RESPONSE_BODY};
use crate::case::{
    AnyValue, Case, CaseError, CaseStream, KeyValue, StreamError, TracesData, write_atomic_when,
    write_canonical,
};

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

/// Every built-in pattern in one set, to rule out in one pass a string none of them matches.
static BUILT_IN: LazyLock<RegexSet> = LazyLock::new(|| {
    RegexSet::new(PATTERNS.iter().map(|p| p.regex.as_str()))
        .expect("built-in secret patterns compile")
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
            });
        if found {
            kinds.push((SecretKind::CustomPattern, Some(pattern.name.clone())));
            *text = replaced.into_owned();
        }
    }
    // Most strings hold no secret: one pass of all the built-in patterns together rules
    // them out, where asking each pattern would go through the string once per pattern.
    if !BUILT_IN.is_match(text) {
        return kinds;
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
            });
        if found {
            kinds.push((pattern.kind, None));
            *text = replaced.into_owned();
        }
    }
    kinds
}

/// The JSON path of the value being scrubbed, built only when there is a finding to report:
/// formatting one for every attribute of every span was a good share of a large scrub.
type PathOf<'a> = &'a dyn Fn() -> String;

/// Applies the rules' JSONPaths to a JSON body; the body is rewritten only when a field
/// changed, so an already scrubbed file stays byte for byte the same.
fn scrub_body(text: &mut String, path: PathOf<'_>, rules: &ScrubRules, out: &mut Vec<Finding>) {
    for jp in crate::redact::json_text(text, &rules.json_paths) {
        out.push(Finding {
            json_path: path(),
            kind: SecretKind::BodyField,
            rule: Some(jp.as_str().to_owned()),
        });
    }
}

fn scrub_any(value: &mut AnyValue, path: PathOf<'_>, rules: &ScrubRules, out: &mut Vec<Finding>) {
    match value {
        AnyValue::String(s) => {
            for (kind, rule) in scrub_str_with(s, rules) {
                out.push(Finding {
                    json_path: path(),
                    kind,
                    rule,
                });
            }
        }
        AnyValue::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                let item_path = || format!("{}.arrayValue.values[{i}]", path());
                scrub_any(item, &item_path, rules, out);
            }
        }
        AnyValue::KvList(kvs) => {
            let list_path = || format!("{}.kvlistValue.values", path());
            scrub_attributes(kvs, &list_path, rules, out)
        }
        _ => {}
    }
}

fn scrub_attributes(
    attrs: &mut [KeyValue],
    path: PathOf<'_>,
    rules: &ScrubRules,
    out: &mut Vec<Finding>,
) {
    for (i, kv) in attrs.iter_mut().enumerate() {
        let value_path = || format!("{}[{i}].value.stringValue", path());
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
                        json_path: value_path(),
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
        scrub_any(
            &mut kv.value,
            &|| format!("{}[{i}].value", path()),
            rules,
            out,
        );
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
        scrub_trace(trace, t, rules, &mut out);
    }
    scrub_beside_traces(case, rules, &mut out);
    out
}

/// Redacts the spans of `traces[t]`.
fn scrub_trace(trace: &mut TracesData, t: usize, rules: &ScrubRules, out: &mut Vec<Finding>) {
    for (r, rs) in trace.resource_spans.iter_mut().enumerate() {
        for (s, ss) in rs.scope_spans.iter_mut().enumerate() {
            for (i, span) in ss.spans.iter_mut().enumerate() {
                let path = || {
                    format!(
                        "$.traces[{t}].resourceSpans[{r}].scopeSpans[{s}].spans[{i}].attributes"
                    )
                };
                scrub_attributes(&mut span.attributes, &path, rules, out);
            }
        }
    }
}

/// Redacts what a case holds besides its traces: embedded fixtures and unknown top-level
/// keys.
fn scrub_beside_traces(case: &mut Case, rules: &ScrubRules, out: &mut Vec<Finding>) {
    for (i, fixture) in case.fixtures.iter_mut().flatten().enumerate() {
        scrub_json(fixture, &format!("$.fixtures[{i}]"), rules, out);
    }
    for (key, value) in case.extra.iter_mut() {
        scrub_json(value, &crate::json::path::child_key("$", key), rules, out);
    }
}

/// Whether [`scrub_file`] writes back what it redacted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScrubMode {
    /// Only report (`softprobe scrub --check`): the file is not touched.
    Check,
    /// Replace the file when something was redacted (atomically; untouched otherwise).
    Rewrite,
}

/// [`scrub_case_with`] on the case file at `path`, read into `stream`
/// ([`CaseStream::open`]), one trace document at a time: the same findings in the same
/// order, and with [`ScrubMode::Rewrite`] the same bytes [`Case::write`] would give the
/// scrubbed case. The new document is streamed into a temporary file beside the old one and
/// renamed over it only when something was redacted and everything was written; a
/// malformed case ([`CaseError::Parse`]) or a write error leaves the file as it was.
pub fn scrub_file(
    stream: &CaseStream,
    path: &Path,
    rules: &ScrubRules,
    mode: ScrubMode,
) -> Result<Vec<Finding>, CaseError> {
    let mut head = stream.head()?;
    let mut beside = Vec::new();
    scrub_beside_traces(&mut head, rules, &mut beside);
    let found = RefCell::new(Vec::new());
    match mode {
        ScrubMode::Check => {
            stream
                .for_each_trace(|t, mut trace| {
                    scrub_trace(&mut trace, t, rules, &mut found.borrow_mut());
                    Ok::<_, std::convert::Infallible>(())
                })
                .map_err(|err| match err {
                    StreamError::Case(err) => err,
                    StreamError::Stopped(never) => match never {},
                })?;
        }
        ScrubMode::Rewrite => {
            let malformed = RefCell::new(None);
            let doc = Scrubbed {
                head: &head,
                stream,
                rules,
                found: &found,
                malformed: &malformed,
            };
            let written = write_atomic_when(path, |out| {
                write_canonical(out, &doc)?;
                Ok(!found.borrow().is_empty() || !beside.is_empty())
            });
            if let Some(err) = malformed.into_inner() {
                return Err(err);
            }
            written?;
        }
    }
    let mut found = found.into_inner();
    found.append(&mut beside);
    Ok(found)
}

/// A case file's scrubbed document: its head with each trace document scrubbed as it is
/// read and written.
struct Scrubbed<'a> {
    head: &'a Case,
    stream: &'a CaseStream,
    rules: &'a ScrubRules,
    found: &'a RefCell<Vec<Finding>>,
    /// Set when a trace document turned out malformed while being written.
    malformed: &'a RefCell<Option<CaseError>>,
}

impl Serialize for Scrubbed<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.head
            .serialize_with_traces(serializer, &ScrubbedTraces(self))
    }
}

struct ScrubbedTraces<'s, 'a>(&'s Scrubbed<'a>);

impl Serialize for ScrubbedTraces<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error as _, SerializeSeq as _};
        let doc = self.0;
        let mut seq = serializer.serialize_seq(None)?;
        let walked = doc.stream.for_each_trace(|t, mut trace| {
            scrub_trace(&mut trace, t, doc.rules, &mut doc.found.borrow_mut());
            seq.serialize_element(&trace)
        });
        match walked {
            Ok(_) => seq.end(),
            Err(StreamError::Stopped(err)) => Err(err),
            Err(StreamError::Case(err)) => {
                let message = err.to_string();
                *doc.malformed.borrow_mut() = Some(err);
                Err(S::Error::custom(message))
            }
        }
    }
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
        scrub_body(&mut body, &|| "$.b".to_owned(), &rules, &mut found);
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
        scrub_body(&mut body, &|| "$.b".to_owned(), &rules, &mut found);
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

    /// Every case file of the repository with secrets planted in headers, bodies, a fixture
    /// and an unknown top-level key: what the case file walk finds and writes is what the
    /// in-memory scrub of the parsed case finds and [`Case::write`] writes, byte for byte.
    #[test]
    fn the_file_walk_finds_and_writes_what_the_parsed_case_scrub_does() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let mut files = Vec::new();
        for dir in ["fixtures/cases", "examples/checkout/cases", "tests/cases"] {
            for entry in std::fs::read_dir(root.join(dir)).unwrap() {
                let path = entry.unwrap().path();
                if path.to_string_lossy().ends_with(".case.json") {
                    files.push(path);
                }
            }
        }
        assert!(files.len() >= 5, "{files:?}");
        let rules = ScrubRules::parse(
            br#"{"version": 1, "jsonPaths": ["$.sku"], "headers": ["x-request-id"]}"#,
            "r.json",
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut planted = 0;
        for file in &files {
            let text = std::fs::read_to_string(file).unwrap();
            let mut case = Case::from_slice(text.as_bytes()).unwrap();
            case.fixtures
                .get_or_insert_with(Vec::new)
                .push(serde_json::json!({"name": "mail", "value": "jane@example.com"}));
            case.extra.insert(
                "x-notes".into(),
                serde_json::json!(["key AKIAIOSFODNN7EXAMPLE"]),
            );
            let leaky = String::from_utf8(case.to_json_bytes())
                .unwrap()
                .replace("[REDACTED]", "Bearer sk_live_4eC39HqLyjWDarjtT1zdp7dc");
            let expected_path = dir.path().join("expected.case.json");
            let streamed_path = dir.path().join("streamed.case.json");
            std::fs::write(&streamed_path, &leaky).unwrap();
            let mut parsed = Case::from_slice(leaky.as_bytes()).unwrap();
            let expected = scrub_case_with(&mut parsed, &rules);
            parsed.write(&expected_path).unwrap();

            let stream = CaseStream::open(&streamed_path).unwrap();
            let checked = scrub_file(&stream, &streamed_path, &rules, ScrubMode::Check).unwrap();
            assert_eq!(checked, expected, "{}", file.display());
            assert_eq!(std::fs::read_to_string(&streamed_path).unwrap(), leaky);
            let found = scrub_file(&stream, &streamed_path, &rules, ScrubMode::Rewrite).unwrap();
            assert_eq!(found, expected, "{}", file.display());
            assert_eq!(
                std::fs::read(&streamed_path).unwrap(),
                std::fs::read(&expected_path).unwrap(),
                "{}",
                file.display()
            );
            planted += found.len();
        }
        assert!(planted > 3 * files.len(), "{planted} findings");
    }

    #[test]
    fn a_clean_file_keeps_its_bytes_and_a_malformed_one_is_left_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.case.json");
        // Not canonical (keys out of order, no indent): a scrub that finds nothing must not
        // rewrite it.
        let clean = r#"{"traces":[{"resourceSpans":[]}],"caseId":"c","version":"1.0.0","createdAt":"2026-04-20T10:00:00Z"}"#;
        std::fs::write(&path, clean).unwrap();
        let stream = CaseStream::open(&path).unwrap();
        let found = scrub_file(&stream, &path, &ScrubRules::default(), ScrubMode::Rewrite);
        assert_eq!(found.unwrap(), []);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), clean);

        // The first trace document has a secret and is written to the temporary file before
        // the second turns out malformed: the file keeps its old bytes, no temporary stays.
        let leaky = r#"{"version":"1.0.0","caseId":"c","createdAt":"2026-04-20T10:00:00Z","traces":[
          {"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203331","name":"GET","kind":2,"startTimeUnixNano":"1","endTimeUnixNano":"2",
            "attributes":[{"key":"http.request.header.authorization","value":{"stringValue":"Bearer abcdefgh12345"}}]}]}]}]},
          {"resourceSpans":[{"scopeSpans":[{"spans":"not a list"}]}]}]}"#;
        std::fs::write(&path, leaky).unwrap();
        let stream = CaseStream::open(&path).unwrap();
        let err =
            scrub_file(&stream, &path, &ScrubRules::default(), ScrubMode::Rewrite).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("c.case.json: $.traces[1].resourceSpans[0].scopeSpans[0].spans: "),
            "{text}"
        );
        assert!(matches!(err, CaseError::Parse { .. }), "{err:?}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), leaky);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [std::ffi::OsString::from("c.case.json")]);
    }
}
