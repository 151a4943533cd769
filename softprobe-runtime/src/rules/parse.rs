//! Reading rules from JSON or YAML: first into loose serde shapes that refuse unknown keys
//! (so errors carry the JSON path and the line), then into [`Rule`] with the checks serde
//! cannot express (exclusive fields, the response an action needs, valid JSONPaths).

use std::fmt;
use std::marker::PhantomData;

use base64::Engine as _;
use serde::de::{self, DeserializeOwned, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::{Consume, MockResponse, Redaction, Rule, RulesError, Then, When};
use crate::case::validate::locate;
use crate::case::{Body, Direction};
use crate::json::path::{JsonPath, push_key};
use crate::request::host::normalize_host;

/// Parses a rules document: `{"version": 1, "rules": [...]}` or a bare array of rules, in JSON
/// or YAML (detected). `source_name` names the input in errors.
pub fn parse_rules_document(bytes: &[u8], source_name: &str) -> Result<Vec<Rule>, RulesError> {
    let doc: RawRulesDocument = from_bytes(bytes, source_name)?;
    let base = if doc.bare { "$" } else { "$.rules" };
    convert_rules(doc.rules, source_name, base)
}

/// Parses rules already read as JSON values, such as a case file's `rules` array.
/// `json_path` is where the array sits in its document (e.g. `$.rules`), so errors read
/// `case.json: $.rules[1].then.action: ...`.
pub fn rules_from_values(
    values: &[Value],
    source_name: &str,
    json_path: &str,
) -> Result<Vec<Rule>, RulesError> {
    // Read back from their JSON text: the rules model is compiled for one deserializer, the
    // one every rules document goes through. The text is ours, so its positions mean nothing
    // to the reader; the path, rebased onto `json_path`, is the place.
    let text = serde_json::to_vec(values).expect("JSON values always serialize");
    let raw: Vec<Obj<RawRule>> = locate::from_json(&text).map_err(|err| {
        let path = err.json_path.strip_prefix('$').unwrap_or(&err.json_path);
        RulesError::at(source_name, format!("{json_path}{path}"), err.message)
    })?;
    convert_rules(unwrap_all(raw), source_name, json_path)
}

/// Deserializes a JSON or YAML document with path-aware errors. Input that starts like JSON
/// is read as JSON; if that fails on syntax it may still be YAML flow style, so YAML gets a
/// try and the JSON error is reported when both fail.
pub(crate) fn from_bytes<T: DeserializeOwned>(
    bytes: &[u8],
    source_name: &str,
) -> Result<T, RulesError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| RulesError::at(source_name, "$", format!("not UTF-8 text: {e}")))?;
    // A byte-order mark is not part of the document; removing it keeps line numbers right.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        return Err(RulesError::at(
            source_name,
            "$",
            "empty document: expected a JSON or YAML document",
        ));
    }
    if trimmed.starts_with(['{', '[']) {
        match locate::from_json(text.as_bytes()) {
            Ok(v) => Ok(v),
            Err(err) if err.syntax() => {
                from_yaml(text, source_name).map_err(|_| json_error(source_name, err))
            }
            Err(err) => Err(json_error(source_name, err)),
        }
    } else {
        from_yaml(text, source_name)
    }
}

fn json_error(source_name: &str, err: locate::JsonError) -> RulesError {
    RulesError {
        source_name: source_name.to_owned(),
        json_path: err.json_path,
        line: (err.line > 0).then_some(err.line),
        column: (err.column > 0).then_some(err.column),
        message: err.message,
    }
}

fn from_yaml<T: DeserializeOwned>(text: &str, source_name: &str) -> Result<T, RulesError> {
    crate::yaml::from_str(text).map_err(|err| RulesError {
        source_name: source_name.to_owned(),
        json_path: err.json_path,
        line: Some(err.line),
        column: Some(err.column),
        message: err.message,
    })
}

struct RawRulesDocument {
    rules: Vec<RawRule>,
    bare: bool,
}

impl<'de> Deserialize<'de> for RawRulesDocument {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawRulesDocument;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    r#"a rules document {"version": 1, "rules": [...]} or an array of rules"#,
                )
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut rules = Vec::new();
                while let Some(rule) = seq.next_element()? {
                    rules.push(rule);
                }
                Ok(RawRulesDocument { rules, bare: true })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut rules = None;
                let mut version_seen = false;
                // Keys are read as an identifier enum so an unknown key fails while its name
                // is on the error path.
                while let Some(key) = map.next_key::<DocumentField>()? {
                    match key {
                        DocumentField::Version => {
                            if version_seen {
                                return Err(de::Error::duplicate_field("version"));
                            }
                            version_seen = true;
                            map.next_value::<Version>()?;
                        }
                        DocumentField::Rules => {
                            if rules.is_some() {
                                return Err(de::Error::duplicate_field("rules"));
                            }
                            rules = Some(unwrap_all(map.next_value::<Vec<Obj<RawRule>>>()?));
                        }
                    }
                }
                let rules = rules.ok_or_else(|| de::Error::missing_field("rules"))?;
                Ok(RawRulesDocument { rules, bare: false })
            }
        }
        deserializer.deserialize_any(V)
    }
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum DocumentField {
    Version,
    Rules,
}

/// The document version: `1` or `"1"` (YAML writers quote it sometimes); anything else is
/// refused while deserializing it, so the error points at `$.version`.
struct Version;

fn check_version<E: de::Error>(v: u64) -> Result<Version, E> {
    if v == 1 {
        Ok(Version)
    } else {
        Err(E::custom(format!(
            "unsupported rules document version {v}: expected 1"
        )))
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Version;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("the version number 1")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Version, E> {
                check_version(v)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Version, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom(format!("invalid version {v}: expected 1")))
                    .and_then(check_version)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Version, E> {
                let major = v.split('.').next().unwrap_or(v);
                major
                    .parse()
                    .map_err(|_| E::custom(format!("invalid version {v:?}: expected 1")))
                    .and_then(check_version)
            }
        }
        deserializer.deserialize_any(V)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawRule {
    id: Option<String>,
    name: Option<String>,
    description: Option<String>,
    #[serde(default)]
    priority: i64,
    consume: Option<RawConsume>,
    latency_ms: Option<u64>,
    when: Option<Obj<RawWhen>>,
    then: Obj<RawThen>,
}

/// Deserializes a fieldless enum from a string through `deserialize_str`, so a value of the
/// wrong type reads "invalid type: integer `1`, expected one of ..." in JSON and YAML alike.
macro_rules! str_enum {
    ($ty:ty { $($name:literal => $variant:expr),+ $(,)? }) => {
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl serde::de::Visitor<'_> for V {
                    type Value = $ty;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str(concat!("one of" $(, " \"", $name, "\"")+))
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$ty, E> {
                        match v {
                            $($name => Ok($variant),)+
                            other => Err(E::unknown_variant(other, &[$($name),+])),
                        }
                    }
                }
                d.deserialize_str(V)
            }
        }
    };
}
pub(crate) use str_enum;

#[derive(Clone, Copy)]
enum RawConsume {
    Once,
    Many,
}
str_enum!(RawConsume { "once" => RawConsume::Once, "many" => RawConsume::Many });

#[derive(Clone, Copy)]
enum RawDirection {
    Inbound,
    Outbound,
}
str_enum!(RawDirection { "inbound" => RawDirection::Inbound, "outbound" => RawDirection::Outbound });

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawWhen {
    direction: Option<RawDirection>,
    service: Option<String>,
    host: Option<String>,
    host_suffix: Option<OneOrMany>,
    not_host_suffix: Option<OneOrMany>,
    method: Option<String>,
    path: Option<String>,
    path_prefix: Option<String>,
    headers: Option<OrderedMap<String>>,
    body_json_path: Option<OrderedMap<Value>>,
    trace_tags: Option<OrderedMap<String>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum RawAction {
    Mock,
    Replay,
    Passthrough,
    Error,
    CaptureOnly,
}
str_enum!(RawAction {
    "mock" => RawAction::Mock,
    "replay" => RawAction::Replay,
    "passthrough" => RawAction::Passthrough,
    "error" => RawAction::Error,
    "capture_only" => RawAction::CaptureOnly,
});

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawThen {
    action: RawAction,
    response: Option<Obj<RawResponse>>,
    capture_only: Option<Obj<RawCaptureOnly>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawResponse {
    status: Option<u16>,
    headers: Option<OrderedMap<String>>,
    body: Option<Value>,
    body_base64: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawCaptureOnly {
    #[serde(default)]
    redact_headers: Vec<String>,
    #[serde(default)]
    redact_json_paths: Vec<String>,
}

/// A value that must be a JSON object. Derived struct deserializers also accept arrays
/// (fields by position), which would let `[1, 2]` pass as a rule; this wrapper only asks for
/// a map, so an array reads "invalid type: sequence, expected an object".
pub(crate) struct Obj<T>(pub(crate) T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Vis<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for Vis<T> {
            type Value = Obj<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Obj<T>, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Obj)
            }
        }
        deserializer.deserialize_map(Vis(PhantomData))
    }
}

pub(crate) fn unwrap_all<T>(list: Vec<Obj<T>>) -> Vec<T> {
    list.into_iter().map(|o| o.0).collect()
}

/// A string or an array of strings.
struct OneOrMany(Vec<String>);

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany(vec![v.to_owned()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMany, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    out.push(s);
                }
                Ok(OneOrMany(out))
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// An object read in document order (headers and JSONPaths keep the order written).
pub(crate) struct OrderedMap<V>(pub(crate) Vec<(String, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for OrderedMap<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Vis<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for Vis<V> {
            type Value = OrderedMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out: Vec<(String, V)> = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    if out.iter().any(|(k, _)| *k == key) {
                        return Err(de::Error::custom(format!("duplicate key `{key}`")));
                    }
                    let value = map.next_value()?;
                    out.push((key, value));
                }
                Ok(OrderedMap(out))
            }
        }
        deserializer.deserialize_map(Vis(PhantomData))
    }
}

pub(crate) fn convert_rules(
    raw: Vec<RawRule>,
    source_name: &str,
    base: &str,
) -> Result<Vec<Rule>, RulesError> {
    raw.into_iter()
        .enumerate()
        .map(|(i, r)| convert_rule(r, source_name, &format!("{base}[{i}]")))
        .collect()
}

fn convert_rule(raw: RawRule, source_name: &str, path: &str) -> Result<Rule, RulesError> {
    let err = |field: &str, message: String| {
        RulesError::at(source_name, format!("{path}{field}"), message)
    };
    let name = match (raw.id, raw.name) {
        (Some(id), Some(name)) if id != name => {
            return Err(err(
                ".name",
                format!(
                    "`id` ({id:?}) and `name` ({name:?}) are two spellings of one field and differ"
                ),
            ));
        }
        (id, name) => name.or(id),
    };
    let when = match raw.when {
        Some(Obj(w)) => convert_when(w, &|field, message| err(&format!(".when{field}"), message))?,
        None => When::default(),
    };
    let then = convert_then(raw.then.0, &|field, message| {
        err(&format!(".then{field}"), message)
    })?;
    Ok(Rule {
        name,
        description: raw.description,
        priority: raw.priority,
        consume: match raw.consume {
            Some(RawConsume::Once) => Consume::Once,
            Some(RawConsume::Many) | None => Consume::Many,
        },
        latency_ms: raw.latency_ms,
        when,
        then,
    })
}

type ErrAt<'a> = dyn Fn(&str, String) -> RulesError + 'a;

fn convert_when(raw: RawWhen, err: &ErrAt<'_>) -> Result<When, RulesError> {
    let non_empty = |field: &str, v: Option<String>| -> Result<Option<String>, RulesError> {
        match v {
            Some(s) if s.trim().is_empty() => Err(err(field, "must not be empty".into())),
            other => Ok(other),
        }
    };
    let host = non_empty(".host", raw.host)?.map(|h| normalize_host(h.trim()));
    let suffixes = |field: &str, v: Option<OneOrMany>| -> Result<Vec<String>, RulesError> {
        let list = v.map(|v| v.0).unwrap_or_default();
        for (i, s) in list.iter().enumerate() {
            if s.trim().is_empty() {
                return Err(err(&format!("{field}[{i}]"), "must not be empty".into()));
            }
        }
        Ok(list
            .into_iter()
            .map(|s| s.trim().to_ascii_lowercase())
            .collect())
    };
    let method = non_empty(".method", raw.method)?;
    if let Some(m) = &method
        && !m
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_!#$%&'*+.^`|~".contains(&b))
    {
        return Err(err(".method", format!("{m:?} is not an HTTP method token")));
    }
    for (field, value) in [(".path", &raw.path), (".pathPrefix", &raw.path_prefix)] {
        if let Some(p) = value
            && !p.starts_with('/')
        {
            return Err(err(field, format!("{p:?} must start with `/`")));
        }
    }
    if let Some(p) = &raw.path
        && p.contains('?')
    {
        return Err(err(
            ".path",
            format!("{p:?} contains a query; `path` matches the path without its query"),
        ));
    }
    let mut body_json_path = Vec::new();
    for (text, expected) in raw.body_json_path.map(|m| m.0).unwrap_or_default() {
        let parsed = JsonPath::parse(&text).map_err(|e| {
            let mut field = ".bodyJsonPath".to_owned();
            push_key(&mut field, &text);
            err(&field, e.to_string())
        })?;
        body_json_path.push((parsed, expected));
    }
    Ok(When {
        direction: raw.direction.map(|d| match d {
            RawDirection::Inbound => Direction::Inbound,
            RawDirection::Outbound => Direction::Outbound,
        }),
        service: non_empty(".service", raw.service)?,
        host,
        host_suffix: suffixes(".hostSuffix", raw.host_suffix)?,
        not_host_suffix: suffixes(".notHostSuffix", raw.not_host_suffix)?,
        method: method.map(|m| m.to_ascii_uppercase()),
        path: raw.path,
        path_prefix: raw.path_prefix,
        headers: raw
            .headers
            .map(|m| m.0)
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect(),
        body_json_path,
        trace_tags: raw.trace_tags.map(|m| m.0).unwrap_or_default(),
    })
}

fn convert_then(raw: RawThen, err: &ErrAt<'_>) -> Result<Then, RulesError> {
    let action = raw.action;
    let response = raw.response.map(|o| o.0);
    let capture_only = raw.capture_only.map(|o| o.0);
    let name = match action {
        RawAction::Mock => "mock",
        RawAction::Replay => "replay",
        RawAction::Passthrough => "passthrough",
        RawAction::Error => "error",
        RawAction::CaptureOnly => "capture_only",
    };
    if response.is_some() && !matches!(action, RawAction::Mock | RawAction::Error) {
        return Err(err(
            ".response",
            format!("`response` is only allowed with action \"mock\" or \"error\", not {name:?}"),
        ));
    }
    if capture_only.is_some() && action != RawAction::CaptureOnly {
        return Err(err(
            ".captureOnly",
            format!("`captureOnly` is only allowed with action \"capture_only\", not {name:?}"),
        ));
    }
    Ok(match action {
        RawAction::Mock => {
            let response = response.ok_or_else(|| {
                err(
                    ".response",
                    "`response` is required when action is \"mock\"".into(),
                )
            })?;
            Then::Mock(convert_response(response, 200, &|f, m| {
                err(&format!(".response{f}"), m)
            })?)
        }
        RawAction::Error => Then::Error(match response {
            Some(r) => convert_response(r, 500, &|f, m| err(&format!(".response{f}"), m))?,
            None => MockResponse {
                status: 500,
                headers: Vec::new(),
                body: None,
            },
        }),
        RawAction::Replay => Then::Replay,
        RawAction::Passthrough => Then::Passthrough,
        RawAction::CaptureOnly => {
            let c = capture_only.unwrap_or_default();
            for (i, p) in c.redact_json_paths.iter().enumerate() {
                JsonPath::parse(p).map_err(|e| {
                    err(&format!(".captureOnly.redactJsonPaths[{i}]"), e.to_string())
                })?;
            }
            for (i, h) in c.redact_headers.iter().enumerate() {
                if h.trim().is_empty() {
                    return Err(err(
                        &format!(".captureOnly.redactHeaders[{i}]"),
                        "must not be empty".into(),
                    ));
                }
            }
            Then::CaptureOnly(Redaction {
                headers: c
                    .redact_headers
                    .into_iter()
                    .map(|h| h.trim().to_ascii_lowercase())
                    .collect(),
                json_paths: c.redact_json_paths,
            })
        }
    })
}

pub(crate) fn convert_response(
    raw: RawResponse,
    default_status: u16,
    err: &ErrAt<'_>,
) -> Result<MockResponse, RulesError> {
    let status = raw.status.unwrap_or(default_status);
    if !(100..=599).contains(&status) {
        return Err(err(
            ".status",
            format!("{status} is not an HTTP status code (100-599)"),
        ));
    }
    let mut headers: Vec<(String, String)> = Vec::new();
    for (name, value) in raw.headers.map(|m| m.0).unwrap_or_default() {
        let lower = name.to_ascii_lowercase();
        if lower.is_empty() || !lower.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
            let mut field = ".headers".to_owned();
            push_key(&mut field, &name);
            return Err(err(&field, format!("{name:?} is not a valid header name")));
        }
        if value.contains(['\r', '\n']) {
            let mut field = ".headers".to_owned();
            push_key(&mut field, &name);
            return Err(err(
                &field,
                "header values must not contain line breaks".into(),
            ));
        }
        headers.push((lower, value));
    }
    let body = match (raw.body, raw.body_base64) {
        (Some(_), Some(_)) => {
            return Err(err(
                ".bodyBase64",
                "`body` and `bodyBase64` are exclusive: give one".into(),
            ));
        }
        (None, Some(b64)) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|e| err(".bodyBase64", format!("not valid base64: {e}")))?;
            Some(Body::Binary(bytes))
        }
        (Some(Value::String(s)), None) => Some(Body::Text(s)),
        (Some(Value::Null), None) | (None, None) => None,
        (Some(json), None) => {
            if !headers.iter().any(|(n, _)| n == "content-type") {
                headers.push(("content-type".into(), "application/json".into()));
            }
            Some(Body::Text(json.to_string()))
        }
    };
    Ok(MockResponse {
        status,
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Rule>, RulesError> {
        parse_rules_document(text.as_bytes(), "rules.json")
    }

    #[test]
    fn document_and_bare_array_in_json_and_yaml() {
        let json_doc = r#"{"version": 1, "rules": [{"id": "a", "when": {"path": "/x"},
            "then": {"action": "mock", "response": {"status": 201, "body": "hi"}}}]}"#;
        let bare = r#"[{"name": "a", "when": {"path": "/x"},
            "then": {"action": "mock", "response": {"status": 201, "body": "hi"}}}]"#;
        let yaml = "version: 1\nrules:\n  - id: a\n    when: { path: /x }\n    then:\n      action: mock\n      response: { status: 201, body: hi }\n";
        let a = parse(json_doc).unwrap();
        assert_eq!(a, parse(bare).unwrap());
        assert_eq!(a, parse(yaml).unwrap());
        assert_eq!(a[0].name.as_deref(), Some("a"));
        assert_eq!(a[0].when.path.as_deref(), Some("/x"));
        assert_eq!(
            a[0].then,
            Then::Mock(MockResponse {
                status: 201,
                headers: vec![],
                body: Some(Body::Text("hi".into()))
            })
        );
    }

    #[test]
    fn unknown_keys_are_named_with_path_and_line() {
        let text = "{\"version\": 1, \"rules\": [\n {\"then\": {\"action\": \"passthrough\"}},\n {\"when\": {\"hots\": \"x\"}, \"then\": {\"action\": \"passthrough\"}}]}";
        let err = parse(text).unwrap_err();
        assert_eq!(err.json_path, "$.rules[1].when.hots", "{err}");
        assert!(err.message.contains("unknown field `hots`"), "{err}");
        assert!(
            err.message.contains("hostSuffix"),
            "lists the expected keys: {err}"
        );
        assert_eq!(err.line, Some(3), "{err}");
        assert!(
            err.to_string()
                .starts_with("rules.json: $.rules[1].when.hots: "),
            "{err}"
        );

        let yaml = "- then:\n    action: mock\n    respons: {}\n";
        let err = parse(yaml).unwrap_err();
        assert_eq!(err.json_path, "$[0].then.respons", "{err}");
        assert_eq!(err.line, Some(3), "{err}");
    }

    #[test]
    fn semantic_errors_name_the_field() {
        let cases = [
            (
                r#"[{"id": "a", "name": "b", "then": {"action": "passthrough"}}]"#,
                "$[0].name",
                "two spellings",
            ),
            (
                r#"[{"then": {"action": "mock"}}]"#,
                "$[0].then.response",
                "required",
            ),
            (
                r#"[{"then": {"action": "passthrough", "response": {}}}]"#,
                "$[0].then.response",
                "only allowed",
            ),
            (
                r#"[{"then": {"action": "mock", "response": {"body": "a", "bodyBase64": "YQ=="}}}]"#,
                "$[0].then.response.bodyBase64",
                "exclusive",
            ),
            (
                r#"[{"then": {"action": "mock", "response": {"status": 42}}}]"#,
                "$[0].then.response.status",
                "100-599",
            ),
            (
                r#"[{"then": {"action": "mock", "response": {"status": 600}}}]"#,
                "$[0].then.response.status",
                "100-599",
            ),
            (
                r#"[{"when": {"path": "x"}, "then": {"action": "replay"}}]"#,
                "$[0].when.path",
                "start with",
            ),
            (
                r#"[{"when": {"bodyJsonPath": {"$.a[*]": 1}}, "then": {"action": "replay"}}]"#,
                "$[0].when.bodyJsonPath['$.a[*]']",
                "wildcards",
            ),
            (
                r#"[{"then": {"action": "capture_only", "captureOnly": {"redactJsonPaths": ["card"]}}}]"#,
                "$[0].then.captureOnly.redactJsonPaths[0]",
                "starts with",
            ),
            (
                r#"[{"then": {"action": "teleport"}}]"#,
                "$[0].then.action",
                "unknown variant",
            ),
            (
                r#"[{"latencyMs": -1, "then": {"action": "passthrough"}}]"#,
                "$[0].latencyMs",
                "invalid value",
            ),
            (r#"{"version": 2, "rules": []}"#, "$.version", "version 2"),
            (
                r#"{"rules": [], "extra": 1}"#,
                "$.extra",
                "unknown field `extra`",
            ),
            (r#"{"version": 1}"#, "$", "missing field `rules`"),
        ];
        for (text, path, fragment) in cases {
            let err = parse(text).unwrap_err();
            assert_eq!(err.json_path, path, "{text}: {err}");
            assert!(err.message.contains(fragment), "{text}: {err}");
        }
    }

    #[test]
    fn json_bodies_become_text_with_a_content_type() {
        let rules = parse(
            r#"[{"then": {"action": "mock", "response": {"body": {"ok": true}}}},
                {"then": {"action": "mock", "response": {"headers": {"Content-Type": "text/x"}, "body": [1]}}},
                {"then": {"action": "mock", "response": {"bodyBase64": "AAEC"}}},
                {"then": {"action": "error"}}]"#,
        )
        .unwrap();
        let Then::Mock(r0) = &rules[0].then else {
            panic!()
        };
        assert_eq!(r0.status, 200);
        assert_eq!(r0.body, Some(Body::Text(r#"{"ok":true}"#.into())));
        assert_eq!(
            r0.headers,
            vec![("content-type".into(), "application/json".into())]
        );
        let Then::Mock(r1) = &rules[1].then else {
            panic!()
        };
        assert_eq!(r1.headers, vec![("content-type".into(), "text/x".into())]);
        let Then::Mock(r2) = &rules[2].then else {
            panic!()
        };
        assert_eq!(r2.body, Some(Body::Binary(vec![0, 1, 2])));
        assert_eq!(
            rules[3].then,
            Then::Error(MockResponse {
                status: 500,
                headers: vec![],
                body: None
            })
        );
    }

    #[test]
    fn case_values_report_their_own_path() {
        let values: Vec<Value> = serde_json::from_str(
            r#"[{"then": {"action": "passthrough"}}, {"when": {"method": 5}, "then": {"action": "passthrough"}}]"#,
        )
        .unwrap();
        let err = rules_from_values(&values, "c.case.json", "$.rules").unwrap_err();
        assert_eq!(err.json_path, "$.rules[1].when.method", "{err}");
        assert_eq!(err.source_name, "c.case.json");
    }

    #[test]
    fn a_byte_order_mark_is_skipped() {
        let rules = parse("\u{feff}[{\"then\": {\"action\": \"replay\"}}]").unwrap();
        assert_eq!(rules[0].then, Then::Replay);
        let err = parse("\u{feff}[\n{\"then\": 1}]").unwrap_err();
        assert_eq!((err.json_path.as_str(), err.line), ("$[0].then", Some(2)));
    }

    #[test]
    fn empty_and_non_utf8_input_is_refused() {
        assert!(
            parse("  \n")
                .unwrap_err()
                .message
                .contains("empty document")
        );
        let err = parse_rules_document(&[0xff, 0xfe], "r").unwrap_err();
        assert!(err.message.contains("UTF-8"), "{err}");
    }
}
