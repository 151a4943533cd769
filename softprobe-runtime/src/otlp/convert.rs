//! Conversion between the protobuf OTLP messages (`opentelemetry-proto`) and the case
//! model's JSON-shaped types ([`crate::case::otlp`]). The proto side is what the original
//! Envoy/WASM proxy and OTel exporters send; everything inside the runtime works on ours.
//!
//! Span events, links and status are kept as JSON in the case model; they are converted both
//! ways in their OTLP JSON shape (ids as hex) so nothing an exporter sent is dropped.

use opentelemetry_proto::tonic::common::v1 as pc;
use opentelemetry_proto::tonic::resource::v1 as pr;
use opentelemetry_proto::tonic::trace::v1 as pt;
use serde_json::{Map, Value, json};

use crate::case::TracesData;
use crate::case::{AnyValue, KeyValue, Resource, ResourceSpans, ScopeSpans, Span, SpanId, TraceId};
use crate::error::{Error, Result};

/// Protobuf `TracesData` (or `ExportTraceServiceRequest`, which has the same wire shape) to
/// the case model. Ids of the wrong length are errors naming the span; empty ids read as
/// all-zero ids (some proxies leave them unset on inject calls).
pub fn traces_from_proto(data: pt::TracesData) -> Result<TracesData> {
    let mut resource_spans = Vec::with_capacity(data.resource_spans.len());
    for (r, rs) in data.resource_spans.into_iter().enumerate() {
        let mut scope_spans = Vec::with_capacity(rs.scope_spans.len());
        for (s, ss) in rs.scope_spans.into_iter().enumerate() {
            let mut spans = Vec::with_capacity(ss.spans.len());
            for (i, span) in ss.spans.into_iter().enumerate() {
                let path = format!("$.resourceSpans[{r}].scopeSpans[{s}].spans[{i}]");
                spans.push(span_from_proto(span, &path)?);
            }
            scope_spans.push(ScopeSpans {
                scope: ss.scope.map(scope_to_json),
                spans,
                schema_url: non_empty(ss.schema_url),
            });
        }
        resource_spans.push(ResourceSpans {
            resource: rs.resource.map(|res| Resource {
                attributes: res.attributes.into_iter().map(kv_from_proto).collect(),
                dropped_attributes_count: non_zero(res.dropped_attributes_count),
            }),
            scope_spans,
            schema_url: non_empty(rs.schema_url),
        });
    }
    Ok(TracesData { resource_spans })
}

/// The case model to protobuf `TracesData`.
pub fn traces_to_proto(data: &TracesData) -> pt::TracesData {
    pt::TracesData {
        resource_spans: data
            .resource_spans
            .iter()
            .map(|rs| pt::ResourceSpans {
                resource: rs.resource.as_ref().map(|res| pr::Resource {
                    attributes: res.attributes.iter().map(kv_to_proto).collect(),
                    dropped_attributes_count: res.dropped_attributes_count.unwrap_or(0),
                    ..Default::default()
                }),
                scope_spans: rs
                    .scope_spans
                    .iter()
                    .map(|ss| pt::ScopeSpans {
                        scope: ss.scope.as_ref().map(scope_from_json),
                        spans: ss.spans.iter().map(span_to_proto).collect(),
                        schema_url: ss.schema_url.clone().unwrap_or_default(),
                    })
                    .collect(),
                schema_url: rs.schema_url.clone().unwrap_or_default(),
            })
            .collect(),
    }
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

fn non_zero(n: u32) -> Option<u32> {
    (n != 0).then_some(n)
}

fn id_bytes<const N: usize>(bytes: &[u8], path: &str, field: &str) -> Result<[u8; N]> {
    if bytes.is_empty() {
        return Ok([0; N]);
    }
    bytes.try_into().map_err(|_| {
        Error::invalid(format!(
            "{path}.{field}: expected {N} bytes, found {}",
            bytes.len()
        ))
    })
}

fn span_from_proto(span: pt::Span, path: &str) -> Result<Span> {
    // JSON readers refuse other kinds; a span taken here must also read back from a case file.
    if !(0..=5).contains(&span.kind) {
        return Err(Error::invalid(format!(
            "{path}.kind: span kind {} is not between 0 and 5",
            span.kind
        )));
    }
    let trace_id = TraceId(id_bytes(&span.trace_id, path, "traceId")?);
    let span_id = SpanId(id_bytes(&span.span_id, path, "spanId")?);
    let parent_span_id = if span.parent_span_id.is_empty() {
        None
    } else {
        Some(SpanId(id_bytes(
            &span.parent_span_id,
            path,
            "parentSpanId",
        )?))
    };
    let events = (!span.events.is_empty()).then(|| {
        Value::Array(
            span.events
                .into_iter()
                .map(|e| {
                    let mut m = Map::new();
                    m.insert("timeUnixNano".into(), json!(e.time_unix_nano.to_string()));
                    m.insert("name".into(), json!(e.name));
                    m.insert("attributes".into(), attrs_to_json(e.attributes));
                    if e.dropped_attributes_count != 0 {
                        m.insert(
                            "droppedAttributesCount".into(),
                            json!(e.dropped_attributes_count),
                        );
                    }
                    Value::Object(m)
                })
                .collect(),
        )
    });
    let links = (!span.links.is_empty()).then(|| {
        Value::Array(
            span.links
                .into_iter()
                .map(|l| {
                    let mut m = Map::new();
                    m.insert("traceId".into(), json!(hex(&l.trace_id)));
                    m.insert("spanId".into(), json!(hex(&l.span_id)));
                    if !l.trace_state.is_empty() {
                        m.insert("traceState".into(), json!(l.trace_state));
                    }
                    m.insert("attributes".into(), attrs_to_json(l.attributes));
                    if l.flags != 0 {
                        m.insert("flags".into(), json!(l.flags));
                    }
                    Value::Object(m)
                })
                .collect(),
        )
    });
    let status = span.status.and_then(|st| {
        if st.code == 0 && st.message.is_empty() {
            return None;
        }
        let mut m = Map::new();
        if !st.message.is_empty() {
            m.insert("message".into(), json!(st.message));
        }
        m.insert("code".into(), json!(st.code));
        Some(Value::Object(m))
    });
    Ok(Span {
        trace_id,
        span_id,
        parent_span_id,
        trace_state: non_empty(span.trace_state),
        name: span.name,
        kind: span.kind,
        start_time_unix_nano: span.start_time_unix_nano,
        end_time_unix_nano: span.end_time_unix_nano,
        attributes: span.attributes.into_iter().map(kv_from_proto).collect(),
        flags: non_zero(span.flags),
        dropped_attributes_count: non_zero(span.dropped_attributes_count),
        events,
        dropped_events_count: non_zero(span.dropped_events_count),
        links,
        dropped_links_count: non_zero(span.dropped_links_count),
        status,
    })
}

fn span_to_proto(span: &Span) -> pt::Span {
    pt::Span {
        trace_id: span.trace_id.as_bytes().to_vec(),
        span_id: span.span_id.as_bytes().to_vec(),
        trace_state: span.trace_state.clone().unwrap_or_default(),
        parent_span_id: span
            .parent_span_id
            .map(|p| p.as_bytes().to_vec())
            .unwrap_or_default(),
        flags: span.flags.unwrap_or(0),
        name: span.name.clone(),
        kind: span.kind,
        start_time_unix_nano: span.start_time_unix_nano,
        end_time_unix_nano: span.end_time_unix_nano,
        attributes: span.attributes.iter().map(kv_to_proto).collect(),
        dropped_attributes_count: span.dropped_attributes_count.unwrap_or(0),
        events: json_items(span.events.as_ref())
            .map(|e| pt::span::Event {
                time_unix_nano: json_u64(e.get("timeUnixNano")),
                name: json_string(e.get("name")),
                attributes: json_attrs(e.get("attributes")),
                dropped_attributes_count: json_u64(e.get("droppedAttributesCount")) as u32,
            })
            .collect(),
        dropped_events_count: span.dropped_events_count.unwrap_or(0),
        links: json_items(span.links.as_ref())
            .map(|l| pt::span::Link {
                trace_id: json_id::<TraceId>(l.get("traceId")),
                span_id: json_id::<SpanId>(l.get("spanId")),
                trace_state: json_string(l.get("traceState")),
                attributes: json_attrs(l.get("attributes")),
                dropped_attributes_count: json_u64(l.get("droppedAttributesCount")) as u32,
                flags: json_u64(l.get("flags")) as u32,
            })
            .collect(),
        dropped_links_count: span.dropped_links_count.unwrap_or(0),
        status: span.status.as_ref().map(|st| pt::Status {
            message: json_string(st.get("message")),
            code: json_status_code(st.get("code")),
        }),
    }
}

fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

fn attrs_to_json(attrs: Vec<pc::KeyValue>) -> Value {
    let kvs: Vec<KeyValue> = attrs.into_iter().map(kv_from_proto).collect();
    serde_json::to_value(kvs).unwrap_or(Value::Array(Vec::new()))
}

fn json_items(v: Option<&Value>) -> impl Iterator<Item = &Map<String, Value>> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
}

fn json_string(v: Option<&Value>) -> String {
    v.and_then(Value::as_str).unwrap_or_default().to_owned()
}

fn json_u64(v: Option<&Value>) -> u64 {
    match v {
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
        Some(Value::String(s)) => s.trim().parse().unwrap_or(0),
        _ => 0,
    }
}

fn json_status_code(v: Option<&Value>) -> i32 {
    match v {
        Some(Value::String(s)) => match s.as_str() {
            "STATUS_CODE_OK" | "OK" => 1,
            "STATUS_CODE_ERROR" | "ERROR" => 2,
            other => other.parse().unwrap_or(0),
        },
        other => json_u64(other) as i32,
    }
}

fn json_attrs(v: Option<&Value>) -> Vec<pc::KeyValue> {
    v.and_then(|v| serde_json::from_value::<Vec<KeyValue>>(v.clone()).ok())
        .unwrap_or_default()
        .iter()
        .map(kv_to_proto)
        .collect()
}

trait IdBytes: std::str::FromStr {
    fn to_vec(&self) -> Vec<u8>;
}

impl IdBytes for TraceId {
    fn to_vec(&self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }
}

impl IdBytes for SpanId {
    fn to_vec(&self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }
}

fn json_id<T: IdBytes>(v: Option<&Value>) -> Vec<u8> {
    v.and_then(Value::as_str)
        .and_then(|s| s.parse::<T>().ok())
        .map(|id| id.to_vec())
        .unwrap_or_default()
}

fn scope_to_json(scope: pc::InstrumentationScope) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), json!(scope.name));
    if !scope.version.is_empty() {
        m.insert("version".into(), json!(scope.version));
    }
    if !scope.attributes.is_empty() {
        m.insert("attributes".into(), attrs_to_json(scope.attributes));
    }
    if scope.dropped_attributes_count != 0 {
        m.insert(
            "droppedAttributesCount".into(),
            json!(scope.dropped_attributes_count),
        );
    }
    Value::Object(m)
}

fn scope_from_json(v: &Value) -> pc::InstrumentationScope {
    pc::InstrumentationScope {
        name: json_string(v.get("name")),
        version: json_string(v.get("version")),
        attributes: json_attrs(v.get("attributes")),
        dropped_attributes_count: json_u64(v.get("droppedAttributesCount")) as u32,
    }
}

fn kv_from_proto(kv: pc::KeyValue) -> KeyValue {
    KeyValue {
        key: kv.key,
        value: kv.value.map(value_from_proto).unwrap_or_default(),
    }
}

fn kv_to_proto(kv: &KeyValue) -> pc::KeyValue {
    pc::KeyValue {
        key: kv.key.clone(),
        value: Some(value_to_proto(&kv.value)),
        ..Default::default()
    }
}

fn value_from_proto(v: pc::AnyValue) -> AnyValue {
    use pc::any_value::Value as V;
    match v.value {
        None => AnyValue::Empty,
        Some(V::StringValue(s)) => AnyValue::String(s),
        Some(V::BoolValue(b)) => AnyValue::Bool(b),
        Some(V::IntValue(i)) => AnyValue::Int(i),
        Some(V::DoubleValue(d)) => AnyValue::Double(d),
        Some(V::BytesValue(b)) => AnyValue::Bytes(b),
        Some(V::ArrayValue(a)) => {
            AnyValue::Array(a.values.into_iter().map(value_from_proto).collect())
        }
        Some(V::KvlistValue(l)) => {
            AnyValue::KvList(l.values.into_iter().map(kv_from_proto).collect())
        }
        // A string-table index only means something inside a profiles payload.
        Some(V::StringValueStrindex(_)) => AnyValue::Empty,
    }
}

fn value_to_proto(v: &AnyValue) -> pc::AnyValue {
    use pc::any_value::Value as V;
    let value = match v {
        AnyValue::Empty => None,
        AnyValue::String(s) => Some(V::StringValue(s.clone())),
        AnyValue::Bool(b) => Some(V::BoolValue(*b)),
        AnyValue::Int(i) => Some(V::IntValue(*i)),
        AnyValue::Double(d) => Some(V::DoubleValue(*d)),
        AnyValue::Bytes(b) => Some(V::BytesValue(b.clone())),
        AnyValue::Array(items) => Some(V::ArrayValue(pc::ArrayValue {
            values: items.iter().map(value_to_proto).collect(),
        })),
        AnyValue::KvList(items) => Some(V::KvlistValue(pc::KeyValueList {
            values: items.iter().map(kv_to_proto).collect(),
        })),
    };
    pc::AnyValue { value }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TracesData {
        serde_json::from_value(json!({"resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "checkout"}}]},
            "scopeSpans": [{
                "scope": {"name": "softprobe", "version": "0.1.0"},
                "spans": [{
                    "traceId": "5b8efff798038103d269b633813fc60c",
                    "spanId": "eee19b7ec3c1b174",
                    "parentSpanId": "eee19b7ec3c1b173",
                    "name": "HTTP GET",
                    "kind": 3,
                    "startTimeUnixNano": "1713616200000000000",
                    "endTimeUnixNano": "1713616200035000000",
                    "attributes": [
                        {"key": "http.request.method", "value": {"stringValue": "GET"}},
                        {"key": "http.response.status_code", "value": {"intValue": "200"}},
                        {"key": "ok", "value": {"boolValue": true}},
                        {"key": "ratio", "value": {"doubleValue": 0.5}},
                        {"key": "raw", "value": {"bytesValue": "AAEC"}},
                        {"key": "list", "value": {"arrayValue": {"values": [{"stringValue": "a"}]}}},
                        {"key": "map", "value": {"kvlistValue": {"values": [{"key": "k", "value": {"intValue": 1}}]}}}
                    ],
                    "events": [{"timeUnixNano": "1713616200001000000", "name": "retry", "attributes": [{"key": "n", "value": {"intValue": "1"}}]}],
                    "links": [{"traceId": "5b8efff798038103d269b633813fc60d", "spanId": "eee19b7ec3c1b175", "attributes": []}],
                    "status": {"message": "boom", "code": 2}
                }]
            }]
        }]}))
        .unwrap()
    }

    #[test]
    fn proto_round_trip_keeps_everything() {
        let ours = sample();
        let proto = traces_to_proto(&ours);
        let span = &proto.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(span.trace_id.len(), 16);
        assert_eq!(span.attributes.len(), 7);
        assert_eq!(span.status.as_ref().unwrap().code, 2);
        let back = traces_from_proto(proto).unwrap();
        assert_eq!(back, ours);
    }

    #[test]
    fn wrong_id_length_names_the_span() {
        let mut proto = traces_to_proto(&sample());
        proto.resource_spans[0].scope_spans[0].spans[0].span_id = vec![1, 2, 3];
        let err = traces_from_proto(proto).unwrap_err().to_string();
        assert_eq!(
            err,
            "$.resourceSpans[0].scopeSpans[0].spans[0].spanId: expected 8 bytes, found 3"
        );
    }

    #[test]
    fn empty_ids_read_as_zero() {
        let mut proto = traces_to_proto(&sample());
        proto.resource_spans[0].scope_spans[0].spans[0]
            .trace_id
            .clear();
        let back = traces_from_proto(proto).unwrap();
        assert!(
            back.resource_spans[0].scope_spans[0].spans[0]
                .trace_id
                .is_zero()
        );
    }
}
