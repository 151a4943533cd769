//! Request drift: after a replayed outbound request is matched to its recording (by its
//! request line), what the service sent is compared with what was recorded — query
//! parameters, the compared headers (`content-type` and those the policy names) and the body
//! (JSON structurally, form bodies field by field, gRPC messages by field number, anything
//! else byte for byte). The recorded
//! answer is served either way; the differences become a [`RequestDrift`] that fails the
//! verdict under `requestDrift: fail`.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::case::{Body, Exchange};
use crate::json::diff::{DiffOptions, JsonDiff, Volatile, diff};
use crate::json::volatile::text_shape;
use crate::json::{Difference, Shape};
use crate::policy::{Fields, Policy};
use crate::request::Request;
use crate::rules::REDACTED;

/// Longest excerpt of a body that is neither JSON nor a form.
const EXCERPT_CHARS: usize = 80;

/// A request field whose recorded and sent values differ but share a volatile shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolatileField {
    /// The field (`$.id`, `query:ts`, `header:idempotency-key`).
    pub field: String,
    /// `UUID`, `ULID`, `RFC 3339 timestamp` or `Unix time`.
    pub shape: String,
}

/// How one replayed outbound request differs from the recording that answered it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestDrift {
    /// The method sent.
    pub method: String,
    /// The URL sent.
    pub url: String,
    /// Position of the recording among the case's outbound hops, from 1.
    pub hop: usize,
    /// How many outbound hops the case recorded.
    pub hops: usize,
    /// Span id of the recording.
    pub span_id: String,
    /// Where the recording sits in the case file.
    pub json_path: String,
    /// The differing fields; `expected` is the recording, `actual` what was sent.
    pub differences: Vec<Difference>,
    /// Fields that differ only by volatile value (shown in verbose output).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volatile: Vec<VolatileField>,
}

impl RequestDrift {
    /// True when a field really differs (not only volatile values).
    pub fn drifted(&self) -> bool {
        !self.differences.is_empty()
    }
}

/// `outbound POST https://api.example.com/v1/pay (hop 2 of 3): $.amount: recorded 1000, sent
/// 2000`, one field per line when several differ; the alternate form (`{:#}`) adds the fields
/// ignored as volatile.
impl fmt::Display for RequestDrift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "outbound {} {} (hop {} of {})",
            self.method, self.url, self.hop, self.hops
        )?;
        let line = |d: &Difference| {
            format!(
                "{}: recorded {}, sent {}",
                d.field,
                Difference::show(d.expected.as_ref()),
                Difference::show(d.actual.as_ref())
            )
        };
        match self.differences.as_slice() {
            [] => f.write_str(": no field differs")?,
            [one] => write!(f, ": {}", line(one))?,
            many => {
                f.write_str(":")?;
                for d in many {
                    write!(f, "\n    {}", line(d))?;
                }
            }
        }
        if f.alternate() {
            for v in &self.volatile {
                write!(f, "\n    {}: ignored as volatile ({})", v.field, v.shape)?;
            }
        }
        Ok(())
    }
}

/// Compares a request with the recording that answered it. `recorded_json` is the recorded
/// body parsed once at load time.
pub(crate) fn compare(
    recorded: &Exchange,
    recorded_json: Option<&Value>,
    req: &Request,
    policy: &Policy,
    sent_at: SystemTime,
) -> (Vec<Difference>, Vec<VolatileField>) {
    let recorded_at = UNIX_EPOCH + Duration::from_nanos(recorded.start_time_unix_nano);
    let mut cmp = Comparison {
        policy,
        recorded_at,
        sent_at,
        differences: Vec::new(),
        volatile: Vec::new(),
    };
    cmp.query(recorded.query.as_deref(), req.query.as_deref());
    cmp.headers(&recorded.request_headers, req);
    cmp.body(recorded, recorded_json, req);
    (cmp.differences, cmp.volatile)
}

struct Comparison<'a> {
    policy: &'a Policy,
    recorded_at: SystemTime,
    sent_at: SystemTime,
    differences: Vec<Difference>,
    volatile: Vec<VolatileField>,
}

impl Comparison<'_> {
    /// Two text values of one field: equal, of one volatile shape, or different.
    fn text(&mut self, field: String, exact: bool, e: Option<&str>, a: Option<&str>) {
        if e == a || e == Some(REDACTED) {
            return;
        }
        if !exact
            && let (Some(x), Some(y)) = (e, a)
            && let Some(shape) = text_shape(x, self.recorded_at)
            && text_shape(y, self.sent_at) == Some(shape)
        {
            self.volatile.push(volatile(field, shape));
            return;
        }
        self.differences.push(Difference::new(
            field,
            e.map(|v| json!(v)),
            a.map(|v| json!(v)),
        ));
    }

    fn query(&mut self, recorded: Option<&str>, sent: Option<&str>) {
        if recorded == sent {
            return;
        }
        let e = pairs(recorded.unwrap_or("").as_bytes());
        let a = pairs(sent.unwrap_or("").as_bytes());
        let mut names: Vec<&str> = e.iter().map(|(n, _)| n.as_str()).collect();
        names.extend(a.iter().map(|(n, _)| n.as_str()));
        let mut seen = Vec::new();
        for name in names {
            if seen.contains(&name) || self.policy.volatile_fields.has_query(name) {
                continue;
            }
            seen.push(name);
            let values = |list: &[(String, String)]| -> Vec<String> {
                list.iter()
                    .filter(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
                    .collect()
            };
            let (ev, av) = (values(&e), values(&a));
            if ev == av {
                continue;
            }
            let exact = self.policy.exact_fields.has_query(name);
            let field = format!("query:{name}");
            match (ev.as_slice(), av.as_slice()) {
                ([x], [y]) => self.text(field, exact, Some(x), Some(y)),
                ([x], []) => self.text(field, exact, Some(x), None),
                ([], [y]) => self.text(field, exact, None, Some(y)),
                _ => {
                    self.differences
                        .push(Difference::new(field, Some(json!(ev)), Some(json!(av))))
                }
            }
        }
    }

    fn headers(&mut self, recorded: &[(String, String)], req: &Request) {
        let policy = self.policy;
        let names = std::iter::once("content-type")
            .chain(policy.compared_headers.iter().map(String::as_str));
        let mut seen: Vec<&str> = Vec::new();
        for name in names {
            let exact = policy.exact_fields.has_header(name);
            if seen.contains(&name)
                || policy.volatile_fields.has_header(name)
                || (!exact && crate::headers::is_volatile(name))
            {
                continue;
            }
            seen.push(name);
            let e = recorded
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str());
            self.text(format!("header:{name}"), exact, e, req.header(name));
        }
    }

    fn body(&mut self, recorded: &Exchange, recorded_json: Option<&Value>, req: &Request) {
        let e = recorded.request_body.as_ref().filter(|b| !b.is_empty());
        let a = req.body.as_ref().filter(|b| !b.is_empty());
        let (eb, ab) = (
            e.map_or(&[][..], Body::as_bytes),
            a.map_or(&[][..], Body::as_bytes),
        );
        if eb == ab {
            return;
        }
        if let Some(expected) = crate::multipart::recorded_parts(recorded) {
            // A multipart body's random boundary changes on every upload: compare its parts.
            let live = crate::multipart::live_parts(&req.headers, a.map(Body::as_bytes))
                .unwrap_or_default();
            for line in crate::multipart::differences(&expected, &live) {
                let (field, what) = line.split_once(": ").unwrap_or(("body", line.as_str()));
                self.differences.push(Difference::new(
                    format!("body {field}"),
                    Some(json!(what)),
                    None,
                ));
            }
            return;
        }
        let form = |ct: Option<&str>| {
            ct.is_some_and(|c| {
                c.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("application/x-www-form-urlencoded")
            })
        };
        let recorded_ct = recorded
            .request_headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
            .map(|(_, v)| v.as_str());
        let documents = if form(recorded_ct) || form(req.header("content-type")) {
            Some((form_object(eb), form_object(ab)))
        } else if crate::grpc::is_grpc_hop(recorded) {
            // gRPC messages, field by field (a streaming call: message by message).
            let framed = crate::grpc::is_streaming(&recorded.extra_attributes);
            crate::grpc::readable(eb, framed).zip(crate::grpc::readable(ab, framed))
        } else {
            let sent: Option<Value> = serde_json::from_slice(ab).ok();
            match (recorded_json, sent) {
                (Some(x), Some(y)) if e.is_some() => Some((x.clone(), y)),
                _ => None,
            }
        };
        match documents {
            Some((x, y)) => {
                let policy = self.policy;
                let found: JsonDiff = diff(
                    &x,
                    &y,
                    &DiffOptions {
                        subset: false,
                        ignore: &policy.volatile_fields.body,
                        volatile: Some(Volatile {
                            exact: &policy.exact_fields.body,
                            recorded_at: self.recorded_at,
                            actual_at: self.sent_at,
                        }),
                    },
                );
                self.differences.extend(found.differences);
                self.volatile
                    .extend(found.volatile.into_iter().map(|(f, s)| volatile(f, s)));
            }
            None if policy_ignores_body(&self.policy.volatile_fields) => {}
            None => self.differences.push(Difference::new(
                "body",
                Some(json!(summary(eb))),
                Some(json!(summary(ab))),
            )),
        }
    }
}

fn policy_ignores_body(fields: &Fields) -> bool {
    fields.body.iter().any(|p| p.matches(&[]))
}

fn volatile(field: String, shape: Shape) -> VolatileField {
    VolatileField {
        field,
        shape: shape.as_str().to_owned(),
    }
}

fn pairs(bytes: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(bytes).into_owned().collect()
}

/// A form body as a JSON object: one member per field, an array for a repeated field.
fn form_object(bytes: &[u8]) -> Value {
    let mut map = Map::new();
    for (name, value) in pairs(bytes) {
        match map.get_mut(&name) {
            Some(Value::Array(list)) => list.push(Value::String(value)),
            Some(first) => *first = json!([first.take(), value]),
            None => {
                map.insert(name, Value::String(value));
            }
        }
    }
    Value::Object(map)
}

/// A body that cannot be compared field by field: its size, digest and start.
fn summary(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "(empty)".to_owned();
    }
    let digest = crate::case::diff::sha256_hex(bytes);
    let text = String::from_utf8_lossy(bytes);
    let mut excerpt: String = text.chars().take(EXCERPT_CHARS).collect();
    if text.chars().count() > EXCERPT_CHARS {
        excerpt.push('…');
    }
    format!(
        "{} bytes, sha256 {}, {excerpt:?}",
        bytes.len(),
        &digest[..16]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::Direction;
    use crate::policy::parse_policy;

    fn recorded(ct: &str, body: &str, query: Option<&str>) -> Exchange {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        Exchange {
            scheme: Some("https".into()),
            query: query.map(str::to_owned),
            request_headers: vec![("content-type".into(), ct.into())],
            request_body: Some(Body::Text(body.into())),
            status: Some(200),
            trace_id: crate::case::TraceId([1; 16]),
            span_id: crate::case::SpanId([1; 8]),
            start_time_unix_nano: u64::try_from(now.as_nanos()).unwrap(),
            ..Exchange::new(
                Direction::Outbound,
                "POST",
                "api.stripe.com",
                "/v1/payment_intents",
            )
        }
    }

    fn sent(ex: &Exchange, body: &str, query: Option<&str>) -> Request {
        let mut req = Request::from_exchange(ex);
        req.body = Some(Body::Text(body.into()));
        req.query = query.map(str::to_owned);
        req
    }

    fn fields(policy: &str, ex: &Exchange, req: &Request) -> (Vec<String>, Vec<String>) {
        let policy = parse_policy(policy.as_bytes(), "p").unwrap();
        let json = serde_json::from_slice(ex.request_body.as_ref().unwrap().as_bytes()).ok();
        let (d, v) = compare(ex, json.as_ref(), req, &policy, SystemTime::now());
        (
            d.iter()
                .map(|d| {
                    format!(
                        "{} {} {}",
                        d.field,
                        Difference::show(d.expected.as_ref()),
                        Difference::show(d.actual.as_ref())
                    )
                })
                .collect(),
            v.into_iter().map(|v| v.field).collect(),
        )
    }

    #[test]
    fn json_bodies_compare_by_structure_and_volatile_shape() {
        let ex = recorded(
            "application/json",
            r#"{"amount":1000,"currency":"usd","id":"0f8fad5b-d9cb-469f-a165-70867728950e","at":"2026-12-03T10:00:00Z"}"#,
            None,
        );
        let same = sent(
            &ex,
            r#"{"at":"2026-12-04T11:00:00.123Z","id":"7c9e6679-7425-40de-944b-e07fc1f90ae7","currency":"usd","amount":1000.0}"#,
            None,
        );
        let (d, v) = fields("{}", &ex, &same);
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(v, ["$.at", "$.id"]);
        let changed = sent(
            &ex,
            r#"{"at":1764756000,"id":"order-7","currency":"usd","amount":2000}"#,
            None,
        );
        let (d, _) = fields("{}", &ex, &changed);
        assert_eq!(
            d,
            [
                "$.amount 1000 2000",
                r#"$.at "2026-12-03T10:00:00Z" 1764756000"#,
                r#"$.id "0f8fad5b-d9cb-469f-a165-70867728950e" "order-7""#,
            ]
        );
        let (d, _) = fields(
            r#"{"volatileFields": [".body.amount"], "exactFields": [".body.id", "$.at"]}"#,
            &ex,
            &same,
        );
        assert_eq!(d.len(), 2, "{d:?}");
    }

    #[test]
    fn forms_queries_headers_and_opaque_bodies() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let ex = recorded(
            "application/x-www-form-urlencoded",
            "amount=1000&currency=usd",
            Some(&format!("expand=a&ts={now}")),
        );
        let later = format!("expand=b&ts={}", now + 100);
        let mut req = sent(&ex, "currency=usd&amount=2000", Some(&later));
        let (d, v) = fields("{}", &ex, &req);
        assert_eq!(d, [r#"query:expand "a" "b""#, r#"$.amount "1000" "2000""#]);
        assert!(v.contains(&"query:ts".to_owned()), "{v:?}");
        req.headers = vec![("content-type".into(), "text/plain".into())];
        let (d, _) = fields(
            r#"{"volatileFields": ["query:expand", ".body"]}"#,
            &ex,
            &req,
        );
        assert_eq!(
            d,
            [r#"header:content-type "application/x-www-form-urlencoded" "text/plain""#]
        );
        let bin = recorded("application/octet-stream", "abc", None);
        let (d, _) = fields("{}", &bin, &sent(&bin, "abd", None));
        assert_eq!(d.len(), 1);
        assert!(d[0].starts_with("body \"3 bytes, sha256 "), "{d:?}");
    }

    #[test]
    fn grpc_messages_compare_field_by_field() {
        let message = |sku: &str, qty: u8| {
            let mut m = vec![0x0a, u8::try_from(sku.len()).unwrap()];
            m.extend_from_slice(sku.as_bytes());
            m.extend_from_slice(&[0x10, qty]);
            m
        };
        let mut ex = recorded("application/grpc", "", None);
        let (body, attrs) = crate::grpc::request_for_record(
            "/shop.Inventory/Reserve",
            &crate::grpc::frame(&message("mug", 1)),
        );
        ex.request_body = body;
        ex.extra_attributes = attrs;
        let mut req = sent(&ex, "", None);
        req.body = Some(Body::Binary(message("mug", 2)));
        let policy = Policy::default();
        let (d, _) = compare(&ex, None, &req, &policy, SystemTime::now());
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(
            (
                d[0].field.as_str(),
                d[0].expected.clone(),
                d[0].actual.clone()
            ),
            ("$['2']", Some(json!(1)), Some(json!(2)))
        );
    }

    #[test]
    fn the_report_line_names_hop_field_and_values() {
        let drift = RequestDrift {
            method: "POST".into(),
            url: "https://api.stripe.com/v1/payment_intents".into(),
            hop: 2,
            hops: 3,
            span_id: "00".into(),
            json_path: "$".into(),
            differences: vec![Difference::new(
                "$.amount",
                Some(json!(1000)),
                Some(json!(2000)),
            )],
            volatile: vec![volatile("$.id".into(), Shape::Uuid)],
        };
        assert_eq!(
            drift.to_string(),
            "outbound POST https://api.stripe.com/v1/payment_intents (hop 2 of 3): $.amount: recorded 1000, sent 2000"
        );
        assert!(format!("{drift:#}").ends_with("$.id: ignored as volatile (UUID)"));
    }
}
