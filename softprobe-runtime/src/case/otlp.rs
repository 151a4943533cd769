//! OTLP trace data in its JSON encoding (`TracesData` → `ResourceSpans` → `ScopeSpans` →
//! `Span`), as it appears in a case file's `traces[]` and on `/v1/traces` and `/v1/inject`.
//!
//! Reading is lenient where real encoders differ (ids in hex or base64, 64-bit integers as
//! JSON numbers or strings, span kinds as numbers or enum names); writing is canonical (hex
//! ids, integers as strings, numeric kinds) so case files diff cleanly.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::ids::{SpanId, TraceId, deserialize_opt_span_id};

/// One OTLP trace document: what an exporter posts to `/v1/traces`, and one entry of a case
/// file's `traces[]`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TracesData {
    /// Spans grouped by the resource (service) that produced them.
    #[serde(default)]
    pub resource_spans: Vec<ResourceSpans>,
}

/// Spans of one resource.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceSpans {
    /// The resource; `service.name` lives here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<Resource>,
    /// Spans grouped by instrumentation scope.
    #[serde(default)]
    pub scope_spans: Vec<ScopeSpans>,
    /// Schema URL of the resource, kept as read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_url: Option<String>,
}

/// An OTLP resource.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resource {
    /// Resource attributes such as `service.name`.
    #[serde(default)]
    pub attributes: Vec<KeyValue>,
    /// Count kept as read.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_u32"
    )]
    pub dropped_attributes_count: Option<u32>,
}

/// Spans of one instrumentation scope.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScopeSpans {
    /// The scope (library name and version), kept as read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Value>,
    /// The spans.
    #[serde(default)]
    pub spans: Vec<Span>,
    /// Schema URL of the scope, kept as read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_url: Option<String>,
}

/// One span. In a case file a span is one HTTP hop; [`super::Exchange`] is its typed view.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Span {
    /// Trace id (32 hex characters when written).
    pub trace_id: TraceId,
    /// Span id (16 hex characters when written).
    pub span_id: SpanId,
    /// Parent span id; absent, `""` and all-zero all mean "root span".
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "deserialize_opt_span_id"
    )]
    pub parent_span_id: Option<SpanId>,
    /// W3C `tracestate` of the span, kept as read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_state: Option<String>,
    /// Span name, e.g. `HTTP POST`.
    #[serde(default)]
    pub name: String,
    /// Span kind: 2 server (inbound), 3 client (outbound).
    #[serde(default, deserialize_with = "span_kind")]
    pub kind: i32,
    /// Start time, nanoseconds since the Unix epoch.
    #[serde(default, with = "u64_string")]
    pub start_time_unix_nano: u64,
    /// End time, nanoseconds since the Unix epoch.
    #[serde(default, with = "u64_string")]
    pub end_time_unix_nano: u64,
    /// Attributes: the Softprobe and HTTP vocabulary of `spec/protocol/case-format.md`.
    #[serde(default)]
    pub attributes: Vec<KeyValue>,
    /// W3C trace flags, kept as read.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_u32"
    )]
    pub flags: Option<u32>,
    /// Count kept as read.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_u32"
    )]
    pub dropped_attributes_count: Option<u32>,
    /// Span events, kept as read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Value>,
    /// Count kept as read.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_u32"
    )]
    pub dropped_events_count: Option<u32>,
    /// Span links, kept as read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub links: Option<Value>,
    /// Count kept as read.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_u32"
    )]
    pub dropped_links_count: Option<u32>,
    /// Span status, kept as read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Value>,
}

/// OTLP span kind numbers.
pub mod span_kind {
    /// Unspecified.
    pub const UNSPECIFIED: i32 = 0;
    /// Internal.
    pub const INTERNAL: i32 = 1;
    /// Server: an inbound request to the service under test.
    pub const SERVER: i32 = 2;
    /// Client: an outbound call made by the service under test.
    pub const CLIENT: i32 = 3;
    /// Producer.
    pub const PRODUCER: i32 = 4;
    /// Consumer.
    pub const CONSUMER: i32 = 5;

    pub(crate) fn from_name(name: &str) -> Option<i32> {
        let short = name.strip_prefix("SPAN_KIND_").unwrap_or(name);
        Some(match short.to_ascii_uppercase().as_str() {
            "UNSPECIFIED" => UNSPECIFIED,
            "INTERNAL" => INTERNAL,
            "SERVER" => SERVER,
            "CLIENT" => CLIENT,
            "PRODUCER" => PRODUCER,
            "CONSUMER" => CONSUMER,
            _ => return None,
        })
    }
}

/// One attribute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyValue {
    /// Attribute name, e.g. `http.request.method`.
    pub key: String,
    /// Attribute value.
    #[serde(default)]
    pub value: AnyValue,
}

impl KeyValue {
    /// A string attribute.
    pub fn string(key: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            value: AnyValue::String(value.into()),
        }
    }

    /// An integer attribute.
    pub fn int(key: impl Into<String>, value: i64) -> Self {
        Self {
            key: key.into(),
            value: AnyValue::Int(value),
        }
    }
}

/// An OTLP attribute value: exactly one of `stringValue`, `boolValue`, `intValue`,
/// `doubleValue`, `bytesValue`, `arrayValue`, `kvlistValue`, or nothing.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum AnyValue {
    /// `{}`: no value.
    #[default]
    Empty,
    /// `stringValue`.
    String(String),
    /// `boolValue`.
    Bool(bool),
    /// `intValue`, read from a JSON number or a decimal string, written as a string.
    Int(i64),
    /// `doubleValue`.
    Double(f64),
    /// `bytesValue`, base64 in JSON.
    Bytes(Vec<u8>),
    /// `arrayValue.values`.
    Array(Vec<AnyValue>),
    /// `kvlistValue.values`.
    KvList(Vec<KeyValue>),
}

impl AnyValue {
    /// The string inside a `stringValue`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            AnyValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// The integer inside an `intValue`, or a `stringValue`/`doubleValue` holding a whole
    /// number (some encoders write status codes that way).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            AnyValue::Int(i) => Some(*i),
            AnyValue::String(s) => s.trim().parse().ok(),
            AnyValue::Double(d) if d.fract() == 0.0 => Some(*d as i64),
            _ => None,
        }
    }
}

impl Serialize for AnyValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let b64 = &base64::engine::general_purpose::STANDARD;
        match self {
            AnyValue::Empty => serializer.serialize_map(Some(0))?.end(),
            AnyValue::String(s) => single(serializer, "stringValue", s),
            AnyValue::Bool(b) => single(serializer, "boolValue", b),
            AnyValue::Int(i) => single(serializer, "intValue", &i.to_string()),
            AnyValue::Double(d) if d.is_finite() => single(serializer, "doubleValue", d),
            // JSON has no NaN or infinity (serde_json would write `null`); OTLP JSON spells
            // them as strings, which the reader takes back.
            AnyValue::Double(d) => single(
                serializer,
                "doubleValue",
                if d.is_nan() {
                    "NaN"
                } else if d.is_sign_positive() {
                    "Infinity"
                } else {
                    "-Infinity"
                },
            ),
            AnyValue::Bytes(b) => single(serializer, "bytesValue", &b64.encode(b)),
            AnyValue::Array(values) => single(serializer, "arrayValue", &ValuesRef::Array(values)),
            AnyValue::KvList(values) => {
                single(serializer, "kvlistValue", &ValuesRef::KvList(values))
            }
        }
    }
}

fn single<S: Serializer, T: Serialize + ?Sized>(
    serializer: S,
    key: &str,
    value: &T,
) -> Result<S::Ok, S::Error> {
    let mut map = serializer.serialize_map(Some(1))?;
    map.serialize_entry(key, value)?;
    map.end()
}

enum ValuesRef<'a> {
    Array(&'a [AnyValue]),
    KvList(&'a [KeyValue]),
}

impl Serialize for ValuesRef<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ValuesRef::Array(v) => single(serializer, "values", v),
            ValuesRef::KvList(v) => single(serializer, "values", v),
        }
    }
}

#[derive(Deserialize)]
struct ArrayValue {
    #[serde(default)]
    values: Vec<AnyValue>,
}

#[derive(Deserialize)]
struct KvListValue {
    #[serde(default)]
    values: Vec<KeyValue>,
}

impl<'de> Deserialize<'de> for AnyValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AnyValueVisitor;

        impl<'de> Visitor<'de> for AnyValueVisitor {
            type Value = AnyValue;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an OTLP AnyValue object such as {\"stringValue\": \"...\"}")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AnyValue, A::Error> {
                let mut out = AnyValue::Empty;
                let mut seen: Option<String> = None;
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    let value = match key.as_ref() {
                        "stringValue" => AnyValue::String(map.next_value()?),
                        "boolValue" => AnyValue::Bool(map.next_value()?),
                        "intValue" => AnyValue::Int(map.next_value::<I64Lenient>()?.0),
                        "doubleValue" => AnyValue::Double(map.next_value::<F64Lenient>()?.0),
                        "bytesValue" => {
                            let s: std::borrow::Cow<'de, str> = map.next_value()?;
                            let bytes = base64::engine::general_purpose::STANDARD
                                .decode(s.as_bytes())
                                .map_err(|e| {
                                    de::Error::custom(format!(
                                        "bytesValue is not valid base64: {e}"
                                    ))
                                })?;
                            AnyValue::Bytes(bytes)
                        }
                        "arrayValue" => AnyValue::Array(map.next_value::<ArrayValue>()?.values),
                        "kvlistValue" => AnyValue::KvList(map.next_value::<KvListValue>()?.values),
                        other => {
                            return Err(de::Error::unknown_field(
                                other,
                                &[
                                    "stringValue",
                                    "boolValue",
                                    "intValue",
                                    "doubleValue",
                                    "bytesValue",
                                    "arrayValue",
                                    "kvlistValue",
                                ],
                            ));
                        }
                    };
                    if let Some(prev) = &seen {
                        return Err(de::Error::custom(format!(
                            "an AnyValue holds exactly one value, found both {prev} and {key}"
                        )));
                    }
                    seen = Some(key.into_owned());
                    out = value;
                }
                Ok(out)
            }
        }

        deserializer.deserialize_map(AnyValueVisitor)
    }
}

/// An `i64` written by encoders as a JSON number or a decimal string.
struct I64Lenient(i64);

impl<'de> Deserialize<'de> for I64Lenient {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(I64Visitor)
    }
}

struct I64Visitor;

impl Visitor<'_> for I64Visitor {
    type Value = I64Lenient;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer, as a JSON number or a decimal string")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<I64Lenient, E> {
        Ok(I64Lenient(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<I64Lenient, E> {
        i64::try_from(v)
            .map(I64Lenient)
            .map_err(|_| E::custom(format!("integer {v} does not fit in 64 signed bits")))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<I64Lenient, E> {
        if v.fract() == 0.0 && v.abs() < 9.2e18 {
            Ok(I64Lenient(v as i64))
        } else {
            Err(E::custom(format!("expected an integer, found {v}")))
        }
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<I64Lenient, E> {
        v.trim()
            .parse()
            .map(I64Lenient)
            .map_err(|_| E::custom(format!("expected an integer, found {v:?}")))
    }
}

/// An `f64` written as a JSON number or as a string (`"NaN"`, `"Infinity"`, `"1.5"`).
struct F64Lenient(f64);

impl<'de> Deserialize<'de> for F64Lenient {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = F64Lenient;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number, as a JSON number or a string")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<F64Lenient, E> {
                Ok(F64Lenient(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<F64Lenient, E> {
                Ok(F64Lenient(v as f64))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<F64Lenient, E> {
                Ok(F64Lenient(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<F64Lenient, E> {
                v.trim()
                    .parse()
                    .map(F64Lenient)
                    .map_err(|_| E::custom(format!("expected a number, found {v:?}")))
            }
        }
        deserializer.deserialize_any(V)
    }
}

fn opt_u32<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u32>, D::Error> {
    Ok(Option::<U32Lenient>::deserialize(deserializer)?.map(|v| v.0))
}

/// A count: an [`I64Lenient`] that fits in a `u32`, checked in the visitor so that an error
/// carries the position of the value itself.
struct U32Lenient(u32);

impl<'de> Deserialize<'de> for U32Lenient {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl V {
            fn count<E: de::Error>(v: Result<I64Lenient, E>) -> Result<U32Lenient, E> {
                let v = v?.0;
                u32::try_from(v)
                    .map(U32Lenient)
                    .map_err(|_| E::custom(format!("{v} is not a valid count")))
            }
        }
        impl Visitor<'_> for V {
            type Value = U32Lenient;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                I64Visitor.expecting(f)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<U32Lenient, E> {
                V::count(I64Visitor.visit_i64(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<U32Lenient, E> {
                V::count(I64Visitor.visit_u64(v))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<U32Lenient, E> {
                V::count(I64Visitor.visit_f64(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<U32Lenient, E> {
                V::count(I64Visitor.visit_str(v))
            }
        }
        deserializer.deserialize_any(V)
    }
}

fn span_kind<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i32, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = i32;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a span kind: 0-5 or a name such as SPAN_KIND_SERVER")
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<i32, E> {
            if (0..=5).contains(&v) {
                Ok(v as i32)
            } else {
                Err(E::custom(format!("span kind {v} is not between 0 and 5")))
            }
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<i32, E> {
            self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<i32, E> {
            if let Ok(n) = v.parse::<i64>() {
                return self.visit_i64(n);
            }
            span_kind::from_name(v).ok_or_else(|| E::custom(format!("unknown span kind {v:?}")))
        }
    }
    deserializer.deserialize_any(V)
}

/// Nanosecond timestamps: read from a number or a decimal string, written as a string (the
/// OTLP JSON rule for 64-bit integers).
mod u64_string {
    use super::*;

    pub(super) fn serialize<S: Serializer>(v: &u64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(v)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = u64;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("nanoseconds since the Unix epoch, as a number or a decimal string")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
                Ok(v)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
                u64::try_from(v).map_err(|_| E::custom(format!("timestamp {v} is negative")))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<u64, E> {
                if v >= 0.0 && v.fract() == 0.0 {
                    Ok(v as u64)
                } else {
                    Err(E::custom(format!("timestamp {v} is not a whole number")))
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
                v.trim()
                    .parse()
                    .map_err(|_| E::custom(format!("expected a timestamp, found {v:?}")))
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// Attributes as a lookup table, keeping the first value of a repeated key.
pub(crate) fn attribute_map(attributes: &[KeyValue]) -> BTreeMap<&str, &AnyValue> {
    let mut map = BTreeMap::new();
    for kv in attributes {
        map.entry(kv.key.as_str()).or_insert(&kv.value);
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_value_reads_lenient_and_writes_canonical() {
        let v: AnyValue = serde_json::from_str(r#"{"intValue": 200}"#).unwrap();
        assert_eq!(v, AnyValue::Int(200));
        let v: AnyValue = serde_json::from_str(r#"{"intValue": "200"}"#).unwrap();
        assert_eq!(v, AnyValue::Int(200));
        assert_eq!(serde_json::to_string(&v).unwrap(), r#"{"intValue":"200"}"#);
        let v: AnyValue = serde_json::from_str(r#"{"bytesValue": "AAEC"}"#).unwrap();
        assert_eq!(v, AnyValue::Bytes(vec![0, 1, 2]));
        let v: AnyValue =
            serde_json::from_str(r#"{"arrayValue": {"values": [{"boolValue": true}]}}"#).unwrap();
        assert_eq!(v, AnyValue::Array(vec![AnyValue::Bool(true)]));
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"arrayValue":{"values":[{"boolValue":true}]}}"#
        );
    }

    #[test]
    fn any_value_rejects_two_values_and_unknown_keys() {
        let err =
            serde_json::from_str::<AnyValue>(r#"{"intValue": 1, "stringValue": "x"}"#).unwrap_err();
        assert!(err.to_string().contains("exactly one value"), "{err}");
        let err = serde_json::from_str::<AnyValue>(r#"{"strValue": "x"}"#).unwrap_err();
        assert!(
            err.to_string().contains("unknown field `strValue`"),
            "{err}"
        );
    }

    #[test]
    fn span_kind_accepts_names() {
        let span: Span = serde_json::from_str(
            r#"{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"0102030405060708",
                "kind":"SPAN_KIND_CLIENT","startTimeUnixNano":1,"parentSpanId":""}"#,
        )
        .unwrap();
        assert_eq!(span.kind, span_kind::CLIENT);
        assert_eq!(span.start_time_unix_nano, 1);
        assert_eq!(span.parent_span_id, None);
    }
}
