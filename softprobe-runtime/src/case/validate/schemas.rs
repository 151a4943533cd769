//! The JSON Schemas of `spec/schemas/`, embedded at build time and compiled once each, and
//! the translation of schema errors into findings people can act on (the unknown key and the
//! keys that were expected, what a pattern means rather than the regex).

use std::collections::HashMap;
use std::sync::LazyLock;
#[cfg(feature = "schema")]
use std::sync::OnceLock;

#[cfg(feature = "schema")]
use jsonschema::error::{TypeKind, ValidationErrorKind};
#[cfg(feature = "schema")]
use jsonschema::{Registry, Validator};
use serde_json::Value;

#[cfg(feature = "schema")]
use super::locate;
use super::locate::Segment;

/// Base URI of every schema `$id`.
const BASE: &str = "https://softprobe.dev/schemas/";

/// Every schema file, by its path under `spec/schemas/` (so `$id` is `BASE` + path).
const FILES: &[(&str, &str)] = &[
    (
        "case.schema.json",
        include_str!("../../../schemas/case.schema.json"),
    ),
    (
        "trace.schema.json",
        include_str!("../../../schemas/trace.schema.json"),
    ),
    (
        "rule.schema.json",
        include_str!("../../../schemas/rule.schema.json"),
    ),
    (
        "rules.schema.json",
        include_str!("../../../schemas/rules.schema.json"),
    ),
    (
        "policy.schema.json",
        include_str!("../../../schemas/policy.schema.json"),
    ),
    (
        "fixtures-auth.schema.json",
        include_str!("../../../schemas/fixtures-auth.schema.json"),
    ),
    (
        "control/common.json",
        include_str!("../../../schemas/control/common.json"),
    ),
    (
        "control/create-session.request.json",
        include_str!("../../../schemas/control/create-session.request.json"),
    ),
    (
        "control/create-session.response.json",
        include_str!("../../../schemas/control/create-session.response.json"),
    ),
    (
        "control/list-sessions.response.json",
        include_str!("../../../schemas/control/list-sessions.response.json"),
    ),
    (
        "control/load-case.request.json",
        include_str!("../../../schemas/control/load-case.request.json"),
    ),
    (
        "control/load-case.response.json",
        include_str!("../../../schemas/control/load-case.response.json"),
    ),
    (
        "control/rules.request.json",
        include_str!("../../../schemas/control/rules.request.json"),
    ),
    (
        "control/rules.response.json",
        include_str!("../../../schemas/control/rules.response.json"),
    ),
    (
        "control/policy.request.json",
        include_str!("../../../schemas/control/policy.request.json"),
    ),
    (
        "control/policy.response.json",
        include_str!("../../../schemas/control/policy.response.json"),
    ),
    (
        "control/fixtures.request.json",
        include_str!("../../../schemas/control/fixtures.request.json"),
    ),
    (
        "control/fixtures.response.json",
        include_str!("../../../schemas/control/fixtures.response.json"),
    ),
    (
        "control/stats.response.json",
        include_str!("../../../schemas/control/stats.response.json"),
    ),
    (
        "control/state.response.json",
        include_str!("../../../schemas/control/state.response.json"),
    ),
    (
        "control/close.request.json",
        include_str!("../../../schemas/control/close.request.json"),
    ),
    (
        "control/close.response.json",
        include_str!("../../../schemas/control/close.response.json"),
    ),
    (
        "control/meta.response.json",
        include_str!("../../../schemas/control/meta.response.json"),
    ),
    (
        "control/health.response.json",
        include_str!("../../../schemas/control/health.response.json"),
    ),
    (
        "control/error.response.json",
        include_str!("../../../schemas/control/error.response.json"),
    ),
    (
        "control/strict-miss.response.json",
        include_str!("../../../schemas/control/strict-miss.response.json"),
    ),
    (
        "proxy/error.response.json",
        include_str!("../../../schemas/proxy/error.response.json"),
    ),
];

/// Which schema a document is checked against. Each names one file of `spec/schemas/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SchemaKind {
    /// `case.schema.json`: a case file.
    Case,
    /// `trace.schema.json`: one OTLP trace document (`/v1/traces`, `/v1/inject`, `traces[]`).
    Trace,
    /// `rule.schema.json`: one rule.
    Rule,
    /// `rules.schema.json`: a rules document or a bare array of rules.
    Rules,
    /// `policy.schema.json`: a policy document.
    Policy,
    /// `fixtures-auth.schema.json`: an auth fixtures document.
    FixturesAuth,
    /// Body of `POST /v1/sessions`.
    CreateSessionRequest,
    /// Answer of `POST /v1/sessions`.
    CreateSessionResponse,
    /// Answer of `GET /v1/sessions`.
    ListSessionsResponse,
    /// Body of `POST /v1/sessions/{id}/load-case` (a case file).
    LoadCaseRequest,
    /// Answer of `POST /v1/sessions/{id}/load-case`.
    LoadCaseResponse,
    /// Body of `POST /v1/sessions/{id}/rules` (a rules document).
    RulesRequest,
    /// Answer of `POST /v1/sessions/{id}/rules`.
    RulesResponse,
    /// Body of `POST /v1/sessions/{id}/policy` (a policy document).
    PolicyRequest,
    /// Answer of `POST /v1/sessions/{id}/policy`.
    PolicyResponse,
    /// Body of `POST /v1/sessions/{id}/fixtures/auth`.
    FixturesAuthRequest,
    /// Answer of `POST /v1/sessions/{id}/fixtures/auth`.
    FixturesAuthResponse,
    /// Answer of `GET /v1/sessions/{id}/stats`.
    StatsResponse,
    /// Answer of `GET /v1/sessions/{id}/state`.
    StateResponse,
    /// Body of `POST /v1/sessions/{id}/close` (`{}`).
    CloseRequest,
    /// Answer of `POST /v1/sessions/{id}/close`.
    CloseResponse,
    /// Answer of `GET /v1/meta`.
    MetaResponse,
    /// Answer of `GET /health`.
    HealthResponse,
    /// Body of every control API error.
    ErrorResponse,
    /// Body of a strict-miss answer (status 599).
    StrictMissResponse,
    /// Body of an error the ingress or egress proxy answers itself.
    ProxyErrorResponse,
}

impl SchemaKind {
    /// Every kind, in declaration order.
    pub const ALL: &'static [SchemaKind] = &[
        SchemaKind::Case,
        SchemaKind::Trace,
        SchemaKind::Rule,
        SchemaKind::Rules,
        SchemaKind::Policy,
        SchemaKind::FixturesAuth,
        SchemaKind::CreateSessionRequest,
        SchemaKind::CreateSessionResponse,
        SchemaKind::ListSessionsResponse,
        SchemaKind::LoadCaseRequest,
        SchemaKind::LoadCaseResponse,
        SchemaKind::RulesRequest,
        SchemaKind::RulesResponse,
        SchemaKind::PolicyRequest,
        SchemaKind::PolicyResponse,
        SchemaKind::FixturesAuthRequest,
        SchemaKind::FixturesAuthResponse,
        SchemaKind::StatsResponse,
        SchemaKind::StateResponse,
        SchemaKind::CloseRequest,
        SchemaKind::CloseResponse,
        SchemaKind::MetaResponse,
        SchemaKind::HealthResponse,
        SchemaKind::ErrorResponse,
        SchemaKind::StrictMissResponse,
        SchemaKind::ProxyErrorResponse,
    ];

    /// The schema's file under `spec/schemas/`, e.g. `control/close.response.json`.
    pub fn file(self) -> &'static str {
        match self {
            SchemaKind::Case => "case.schema.json",
            SchemaKind::Trace => "trace.schema.json",
            SchemaKind::Rule => "rule.schema.json",
            SchemaKind::Rules => "rules.schema.json",
            SchemaKind::Policy => "policy.schema.json",
            SchemaKind::FixturesAuth => "fixtures-auth.schema.json",
            SchemaKind::CreateSessionRequest => "control/create-session.request.json",
            SchemaKind::CreateSessionResponse => "control/create-session.response.json",
            SchemaKind::ListSessionsResponse => "control/list-sessions.response.json",
            SchemaKind::LoadCaseRequest => "control/load-case.request.json",
            SchemaKind::LoadCaseResponse => "control/load-case.response.json",
            SchemaKind::RulesRequest => "control/rules.request.json",
            SchemaKind::RulesResponse => "control/rules.response.json",
            SchemaKind::PolicyRequest => "control/policy.request.json",
            SchemaKind::PolicyResponse => "control/policy.response.json",
            SchemaKind::FixturesAuthRequest => "control/fixtures.request.json",
            SchemaKind::FixturesAuthResponse => "control/fixtures.response.json",
            SchemaKind::StatsResponse => "control/stats.response.json",
            SchemaKind::StateResponse => "control/state.response.json",
            SchemaKind::CloseRequest => "control/close.request.json",
            SchemaKind::CloseResponse => "control/close.response.json",
            SchemaKind::MetaResponse => "control/meta.response.json",
            SchemaKind::HealthResponse => "control/health.response.json",
            SchemaKind::ErrorResponse => "control/error.response.json",
            SchemaKind::StrictMissResponse => "control/strict-miss.response.json",
            SchemaKind::ProxyErrorResponse => "proxy/error.response.json",
        }
    }

    /// The schema's `$id`, e.g. `https://softprobe.dev/schemas/case.schema.json`.
    pub fn id(self) -> String {
        format!("{BASE}{}", self.file())
    }

    /// The schema document itself.
    pub fn schema(self) -> &'static Value {
        &SCHEMAS[&self.id()]
    }

    #[cfg(feature = "schema")]
    fn index(self) -> usize {
        SchemaKind::ALL
            .iter()
            .position(|k| *k == self)
            .expect("every kind is listed in ALL")
    }
}

/// Every embedded schema, as `(file under spec/schemas/, document)`, shared definitions
/// (`control/common.json`) included.
pub fn documents() -> Vec<(&'static str, &'static Value)> {
    FILES
        .iter()
        .map(|(file, _)| (*file, &SCHEMAS[&format!("{BASE}{file}")]))
        .collect()
}

/// Every embedded schema document by `$id`.
static SCHEMAS: LazyLock<HashMap<String, Value>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|(file, text)| {
            let value: Value = serde_json::from_str(text)
                .unwrap_or_else(|e| panic!("embedded schema {file} is not JSON: {e}"));
            (format!("{BASE}{file}"), value)
        })
        .collect()
});

#[cfg(feature = "schema")]
static REGISTRY: LazyLock<Registry<'static>> = LazyLock::new(|| {
    let mut builder = Registry::new();
    for (id, value) in SCHEMAS.iter() {
        builder = builder
            .add(id, value.clone())
            .unwrap_or_else(|e| panic!("embedded schema {id}: {e}"));
    }
    builder
        .prepare()
        .unwrap_or_else(|e| panic!("embedded schemas do not resolve: {e}"))
});

#[cfg(feature = "schema")]
static VALIDATORS: [OnceLock<Validator>; SchemaKind::ALL.len()] =
    [const { OnceLock::new() }; SchemaKind::ALL.len()];

#[cfg(feature = "schema")]
fn validator(kind: SchemaKind) -> &'static Validator {
    VALIDATORS[kind.index()].get_or_init(|| {
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .with_registry(&REGISTRY)
            .build(kind.schema())
            .unwrap_or_else(|e| panic!("embedded schema {} does not compile: {e}", kind.file()))
    })
}

/// One schema violation, already translated for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Violation {
    pub(crate) path: Vec<Segment>,
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

/// Checks `value` against a schema. On failure, every violation as (JSON path, message),
/// e.g. `("$.rules[0].when.hots", "unknown field `hots`; expected one of: ...")`; this is what
/// the control API puts in its 400 answers.
#[cfg(feature = "schema")]
pub fn validate_json(kind: SchemaKind, value: &Value) -> Result<(), Vec<(String, String)>> {
    let violations = violations(kind, value);
    if violations.is_empty() {
        Ok(())
    } else {
        Err(violations
            .into_iter()
            .map(|v| (locate::render(&v.path), v.message))
            .collect())
    }
}

/// Without the `schema` feature there is no JSON Schema engine: no violation is found here and
/// the case model and the semantic checks are what validates a document.
#[cfg(not(feature = "schema"))]
pub(crate) fn violations(_kind: SchemaKind, _value: &Value) -> Vec<Violation> {
    Vec::new()
}

/// Every violation of `value` against the schema, in a stable order, duplicates removed.
#[cfg(feature = "schema")]
pub(crate) fn violations(kind: SchemaKind, value: &Value) -> Vec<Violation> {
    let mut out: Vec<Violation> = Vec::new();
    for error in validator(kind).iter_errors(value) {
        let path = locate::segments_of(error.instance_path(), value);
        let evaluation_path = error.evaluation_path().as_str();
        let node = schema_node(kind, evaluation_path);
        let instance = error.instance();
        let found = describe(instance);
        let mut push = |path: Vec<Segment>, code: &'static str, message: String| {
            let v = Violation {
                path,
                code,
                message,
            };
            if !out.contains(&v) {
                out.push(v);
            }
        };
        match error.kind() {
            ValidationErrorKind::AdditionalProperties { unexpected }
            | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
                let expected = node
                    .and_then(|n| n.get("properties"))
                    .and_then(Value::as_object)
                    .map(|props| props.keys().map(|k| format!("`{k}`")).collect::<Vec<_>>());
                for key in unexpected {
                    let mut p = path.clone();
                    p.push(Segment::Key(key.clone()));
                    let message = match &expected {
                        Some(keys) if !keys.is_empty() => {
                            format!("unknown field `{key}`; expected one of {}", keys.join(", "))
                        }
                        _ => format!("unknown field `{key}`"),
                    };
                    push(p, "unknown-field", message);
                }
            }
            ValidationErrorKind::Required { property } => {
                let name = property
                    .as_str()
                    .map_or_else(|| property.to_string(), str::to_owned);
                push(
                    path,
                    "missing-field",
                    format!("missing required field `{name}`"),
                );
            }
            ValidationErrorKind::Type { kind: expected } => {
                let expected = match expected {
                    TypeKind::Single(t) => t.to_string(),
                    TypeKind::Multiple(set) => set
                        .iter()
                        .map(|t| t.to_string())
                        .collect::<Vec<_>>()
                        .join(" or "),
                };
                push(path, "type", format!("expected {expected}, found {found}"));
            }
            ValidationErrorKind::Enum { options } => {
                let options = options
                    .as_array()
                    .map(|o| {
                        o.iter()
                            .map(Value::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_else(|| options.to_string());
                push(
                    path,
                    "enum",
                    format!("expected one of {options}, found {found}"),
                );
            }
            ValidationErrorKind::Constant { expected_value } => {
                push(
                    path,
                    "const",
                    format!("expected {expected_value}, found {found}"),
                );
            }
            ValidationErrorKind::Pattern { .. } => {
                let meaning = node
                    .and_then(|n| n.get("description"))
                    .and_then(Value::as_str);
                let message = match meaning {
                    Some(m) => format!("invalid value {found}: {}", lower_first(m)),
                    None => error.to_string(),
                };
                push(path, "pattern", message);
            }
            ValidationErrorKind::Format { format } => {
                let message = if format == "date-time" {
                    format!(
                        "expected an RFC 3339 date-time such as \"2026-04-20T10:00:00Z\", found {found}"
                    )
                } else {
                    format!("expected a {format}, found {found}")
                };
                push(path, "format", message);
            }
            ValidationErrorKind::MaxProperties { limit } if *limit == 1 => {
                let keys = instance
                    .as_object()
                    .map(|o| {
                        o.keys()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default();
                push(
                    path,
                    "one-value",
                    format!("holds exactly one value, found {keys}"),
                );
            }
            ValidationErrorKind::FalseSchema
                if evaluation_path.ends_with("/additionalProperties") =>
            {
                // `additionalProperties: false` without `properties` is reported on the
                // object's path with the member's value; name the members instead.
                let object = if instance.is_object() {
                    Some(instance.as_ref())
                } else {
                    value_at(value, &path)
                };
                let known = node
                    .and_then(|n| n.get("properties"))
                    .and_then(Value::as_object);
                for key in object
                    .and_then(Value::as_object)
                    .into_iter()
                    .flat_map(|o| o.keys())
                {
                    if known.is_some_and(|k| k.contains_key(key)) {
                        continue;
                    }
                    let mut p = path.clone();
                    p.push(Segment::Key(key.clone()));
                    push(
                        p,
                        "unknown-field",
                        format!("unknown field `{key}`; this object takes no fields"),
                    );
                }
            }
            ValidationErrorKind::FalseSchema => {
                let message = match path.last() {
                    Some(Segment::Key(k)) if k == "body" => {
                        "`body` and `bodyBase64` are exclusive; give one of them".to_owned()
                    }
                    Some(Segment::Key(k)) if k == "response" => {
                        "`response` is only allowed with action \"mock\" or \"error\"".to_owned()
                    }
                    Some(Segment::Key(k)) if k == "captureOnly" => {
                        "`captureOnly` is only allowed with action \"capture_only\"".to_owned()
                    }
                    Some(Segment::Key(k)) => format!("`{k}` is not allowed here"),
                    _ => "not allowed here".to_owned(),
                };
                push(path, "not-allowed", message);
            }
            ValidationErrorKind::PropertyNames { error: inner } => {
                let key = inner
                    .instance()
                    .as_str()
                    .map_or_else(|| inner.instance().to_string(), str::to_owned);
                let mut p = path.clone();
                p.push(Segment::Key(key.clone()));
                let message = match inner.kind() {
                    ValidationErrorKind::Pattern { pattern } if pattern == "^\\$" => {
                        format!("invalid key {key:?}: a JSONPath must start with `$`")
                    }
                    _ => format!("invalid key {key:?}: {inner}"),
                };
                push(p, "property-name", message);
            }
            ValidationErrorKind::Minimum { .. }
            | ValidationErrorKind::Maximum { .. }
            | ValidationErrorKind::ExclusiveMinimum { .. }
            | ValidationErrorKind::ExclusiveMaximum { .. }
            | ValidationErrorKind::MinLength { .. }
            | ValidationErrorKind::MaxLength { .. }
            | ValidationErrorKind::MinItems { .. }
            | ValidationErrorKind::MaxItems { .. } => push(path, "range", error.to_string()),
            _ => push(path, "schema", error.to_string()),
        }
    }
    out
}

#[cfg(feature = "schema")]
fn value_at<'v>(root: &'v Value, path: &[Segment]) -> Option<&'v Value> {
    path.iter().try_fold(root, |v, seg| match seg {
        Segment::Key(k) => v.get(k),
        Segment::Index(i) => v.get(i),
    })
}

#[cfg(feature = "schema")]
fn lower_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if chars.clone().next().is_some_and(char::is_lowercase) => {
            c.to_lowercase().chain(chars).collect()
        }
        _ => s.to_owned(),
    }
}

/// A short description of a JSON value for messages: its type and, for scalars, the value.
#[cfg(feature = "schema")]
pub(crate) fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => {
            let mut shown: String = s.chars().take(60).collect();
            if shown.len() < s.len() {
                shown.push('…');
            }
            format!("string {shown:?}")
        }
        Value::Array(a) => format!("an array of {} items", a.len()),
        Value::Object(_) => "an object".to_owned(),
    }
}

/// The schema object a keyword belongs to: walks the evaluation path (a JSON pointer through
/// the schema, `$ref`s included) from the kind's root, following references between the embedded
/// files. `None` when the path cannot be followed.
#[cfg(feature = "schema")]
fn schema_node(kind: SchemaKind, schema_path: &str) -> Option<&'static Value> {
    let mut base = kind.id();
    let mut node = kind.schema();
    let mut segments: Vec<String> = schema_path
        .split('/')
        .skip(1)
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect();
    // The last segment is the failing keyword; its parent is the node we want.
    segments.pop();
    for seg in segments {
        if seg == "$ref" {
            let reference = node.get("$ref")?.as_str()?;
            let (target, resolved_base) = resolve_ref(&base, reference)?;
            node = target;
            base = resolved_base;
        } else {
            node = match node {
                Value::Object(map) => map.get(&seg)?,
                Value::Array(items) => items.get(seg.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
    }
    Some(node)
}

#[cfg(feature = "schema")]
fn resolve_ref(base: &str, reference: &str) -> Option<(&'static Value, String)> {
    let (doc, fragment) = reference.split_once('#').unwrap_or((reference, ""));
    let doc_id = if doc.is_empty() {
        base.to_owned()
    } else if doc.starts_with("https://") {
        doc.to_owned()
    } else {
        let dir = &base[..base.rfind('/')? + 1];
        let mut parts: Vec<&str> = dir.trim_end_matches('/').split('/').collect();
        for part in doc.split('/') {
            match part {
                ".." => {
                    parts.pop();
                }
                "." => {}
                p => parts.push(p),
            }
        }
        parts.join("/")
    };
    let mut node = SCHEMAS.get(&doc_id)?;
    for seg in fragment.split('/').skip(1) {
        node = node.get(seg.replace("~1", "/").replace("~0", "~"))?;
    }
    Some((node, doc_id))
}

#[cfg(feature = "schema")]
#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_schema_compiles_and_has_its_id() {
        for kind in SchemaKind::ALL {
            assert_eq!(kind.schema()["$id"], kind.id(), "{kind:?}");
            let _ = validator(*kind);
        }
        assert_eq!(SCHEMAS.len(), FILES.len());
    }

    #[test]
    fn unknown_fields_name_the_key_and_the_expected_ones() {
        let doc = json!({"version": 1, "rules": [{"when": {"hots": "x"}, "then": {"action": "passthrough"}}]});
        let errors = validate_json(SchemaKind::Rules, &doc).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].0, "$.rules[0].when.hots");
        assert!(
            errors[0]
                .1
                .starts_with("unknown field `hots`; expected one of `bodyJsonPath`, `direction`"),
            "{}",
            errors[0].1
        );
    }

    #[test]
    fn references_between_files_are_followed_for_messages() {
        let doc = json!({"version": "1.0.0", "caseId": "c", "createdAt": "2026-04-20T10:00:00Z",
            "traces": [{"resourceSpans": [{"scopeSpans": [{"spans": [
                {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "0102030405060708", "kynd": 3}
            ]}]}]}],
            "rules": [{"then": {"action": "replay"}, "when": {"hots": "x"}}]});
        let errors = validate_json(SchemaKind::LoadCaseRequest, &doc).unwrap_err();
        let find = |path: &str| {
            errors
                .iter()
                .find(|(p, _)| p == path)
                .map(|(_, m)| m.as_str())
                .unwrap_or_else(|| panic!("no error at {path}: {errors:?}"))
        };
        assert_eq!(errors.len(), 2, "{errors:?}");
        let span = find("$.traces[0].resourceSpans[0].scopeSpans[0].spans[0].kynd");
        assert!(span.contains("expected one of `attributes`"), "{span}");
        let rule = find("$.rules[0].when.hots");
        assert!(rule.contains("expected one of `bodyJsonPath`"), "{rule}");
    }

    #[test]
    fn property_name_errors_point_at_the_key() {
        let doc =
            json!([{"when": {"bodyJsonPath": {"amount": 1}}, "then": {"action": "passthrough"}}]);
        let errors = validate_json(SchemaKind::Rules, &doc).unwrap_err();
        assert_eq!(
            errors,
            vec![(
                "$[0].when.bodyJsonPath.amount".to_owned(),
                "invalid key \"amount\": a JSONPath must start with `$`".to_owned()
            )]
        );
    }

    #[test]
    fn request_bodies_are_checked() {
        assert!(
            validate_json(SchemaKind::CreateSessionRequest, &json!({"mode": "replay"})).is_ok()
        );
        let errors = validate_json(SchemaKind::CreateSessionRequest, &json!({"mode": "record"}))
            .unwrap_err();
        assert_eq!(errors[0].0, "$.mode");
        assert_eq!(
            errors[0].1,
            "expected one of \"capture\", \"replay\", \"generate\", found string \"record\""
        );
        let errors = validate_json(SchemaKind::CloseRequest, &json!({"out": "x"})).unwrap_err();
        assert_eq!(errors[0].0, "$.out");
        assert!(validate_json(SchemaKind::CloseRequest, &json!({})).is_ok());
    }

    #[test]
    fn patterns_are_explained_by_the_schema_description() {
        let doc = json!({"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "5ef", "spanId": "0102030405060708"}]}]}]});
        let errors = validate_json(SchemaKind::Trace, &doc).unwrap_err();
        assert_eq!(
            errors,
            vec![(
                "$.resourceSpans[0].scopeSpans[0].spans[0].traceId".to_owned(),
                "invalid value string \"5ef\": 16 bytes: 32 hex characters, or base64 as protobuf-JSON encoders write it.".to_owned()
            )]
        );
    }
}
