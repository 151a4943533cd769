//! The structural JSON diff: the recorded document against the one the service produced,
//! one [`Difference`] per differing field.
//!
//! Its rules, the same for every verdict: member order never matters; numbers compare by value
//! (`1000` equals `1000.0`); a missing member differs from a member that is `null`; arrays
//! compare element by element, an extra or missing element being one difference; a value
//! stored as `"[REDACTED]"` on either side matches anything; ignored paths and everything
//! under them are skipped; with [`Volatile`] set, two values of the same volatile shape
//! ([`super::volatile`]) are noted as volatile instead of differing.

use std::time::SystemTime;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::path::{PathPattern, Step, render};
use super::volatile::{Shape, same_shape};
use crate::redact::REDACTED;

/// JSON equality where numbers compare by value (`1000` equals `1000.0`) and object key
/// order does not matter.
pub fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
                x == y
            } else if let (Some(x), Some(y)) = (x.as_u64(), y.as_u64()) {
                x == y
            } else {
                x.as_f64() == y.as_f64()
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// One differing field. `expected` is the recording, `actual` what the service did; `None`
/// means the field is absent on that side (a field that is `null` is `Some(null)`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Difference {
    /// What differs: a JSON path (`$.amount`), or a named part of a request (`method`,
    /// `query:limit`, `header:content-type`, `body`).
    pub field: String,
    /// The recorded value.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub expected: Option<Value>,
    /// The value the service produced.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub actual: Option<Value>,
}

/// A member that is there is `Some`, even when it is `null`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

impl Difference {
    /// A difference of `field`.
    pub fn new(field: impl Into<String>, expected: Option<Value>, actual: Option<Value>) -> Self {
        Difference {
            field: field.into(),
            expected,
            actual,
        }
    }

    /// A side as people read it: the JSON value, or `(absent)`.
    pub fn show(side: Option<&Value>) -> String {
        match side {
            None => "(absent)".to_owned(),
            Some(v) => v.to_string(),
        }
    }
}

/// Compares by shape instead of by value where both sides have one volatile shape.
#[derive(Debug, Clone, Copy)]
pub struct Volatile<'a> {
    /// Fields that always compare by value, whatever their shape.
    pub exact: &'a [PathPattern],
    /// When the recording was made (Unix times are read against it).
    pub recorded_at: SystemTime,
    /// When the compared value was produced.
    pub actual_at: SystemTime,
}

/// How to compare.
#[derive(Debug, Clone, Copy, Default)]
pub struct DiffOptions<'a> {
    /// Members only the actual document has are fine (a subset check).
    pub subset: bool,
    /// Fields never compared, with everything under them.
    pub ignore: &'a [PathPattern],
    /// Volatile values compare by shape.
    pub volatile: Option<Volatile<'a>>,
}

/// What [`diff`] found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JsonDiff {
    /// The differing fields, in document order (recorded members first).
    pub differences: Vec<Difference>,
    /// Fields whose values differ but share a volatile shape, with that shape.
    pub volatile: Vec<(String, Shape)>,
}

impl JsonDiff {
    /// True when nothing differs.
    pub fn is_empty(&self) -> bool {
        self.differences.is_empty()
    }
}

/// Compares `expected` (the recording) with `actual`.
pub fn diff(expected: &Value, actual: &Value, opts: &DiffOptions<'_>) -> JsonDiff {
    let mut out = JsonDiff::default();
    let mut path = Vec::new();
    walk(expected, actual, &mut path, opts, &mut out);
    out
}

fn ignored(path: &[Step<'_>], opts: &DiffOptions<'_>) -> bool {
    opts.ignore.iter().any(|p| p.covers(path))
}

fn walk<'v>(
    e: &'v Value,
    a: &'v Value,
    path: &mut Vec<Step<'v>>,
    opts: &DiffOptions<'_>,
    out: &mut JsonDiff,
) {
    if ignored(path, opts) || e == REDACTED || a == REDACTED {
        return;
    }
    match (e, a) {
        (Value::Object(eo), Value::Object(ao)) => {
            for (k, ev) in eo {
                path.push(Step::Key(k));
                match ao.get(k) {
                    Some(av) => walk(ev, av, path, opts, out),
                    None => one_side(path, Some(ev), None, opts, out),
                }
                path.pop();
            }
            if !opts.subset {
                for (k, av) in ao.iter().filter(|(k, _)| !eo.contains_key(*k)) {
                    path.push(Step::Key(k));
                    one_side(path, None, Some(av), opts, out);
                    path.pop();
                }
            }
        }
        (Value::Array(ea), Value::Array(aa)) => {
            for i in 0..ea.len().max(aa.len()) {
                path.push(Step::Index(i));
                match (ea.get(i), aa.get(i)) {
                    (Some(ev), Some(av)) => walk(ev, av, path, opts, out),
                    (ev, av) => one_side(path, ev, av, opts, out),
                }
                path.pop();
            }
        }
        _ if json_eq(e, a) => {}
        _ => {
            if let Some(v) = opts.volatile
                && !v.exact.iter().any(|p| p.covers(path))
                && let Some(shape) = same_shape(e, v.recorded_at, a, v.actual_at)
            {
                out.volatile.push((render(path), shape));
                return;
            }
            out.differences.push(Difference::new(
                render(path),
                Some(e.clone()),
                Some(a.clone()),
            ));
        }
    }
}

fn one_side(
    path: &[Step<'_>],
    e: Option<&Value>,
    a: Option<&Value>,
    opts: &DiffOptions<'_>,
    out: &mut JsonDiff,
) {
    if !ignored(path, opts) {
        out.differences
            .push(Difference::new(render(path), e.cloned(), a.cloned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(d: &JsonDiff) -> Vec<&str> {
        d.differences.iter().map(|d| d.field.as_str()).collect()
    }

    #[test]
    fn leaves_missing_members_null_and_arrays() {
        let e = json!({"amount": 1000, "card": {"brand": "visa"}, "items": [1, 2], "gone": true, "n": null});
        let a =
            json!({"amount": 1000.0, "card": {"brand": "amex"}, "items": [1, 3, 4], "new name": 1});
        let d = diff(&e, &a, &DiffOptions::default());
        assert_eq!(
            fields(&d),
            [
                "$.card.brand",
                "$.gone",
                "$.items[1]",
                "$.items[2]",
                "$.n",
                "$['new name']"
            ]
        );
        let gone = &d.differences[1];
        assert_eq!(
            (gone.expected.clone(), gone.actual.clone()),
            (Some(json!(true)), None)
        );
        let null = &d.differences[4];
        assert_eq!(
            (null.expected.clone(), null.actual.clone()),
            (Some(Value::Null), None)
        );
        let sub = diff(
            &e,
            &a,
            &DiffOptions {
                subset: true,
                ..Default::default()
            },
        );
        assert!(!fields(&sub).contains(&"$['new name']"));
    }

    #[test]
    fn ignored_redacted_and_volatile_fields() {
        let ignore = [PathPattern::parse("$.items[*].at").unwrap()];
        let e = json!({"items": [{"at": 1, "sku": "x"}], "token": "[REDACTED]", "id": "0f8fad5b-d9cb-469f-a165-70867728950e"});
        let a = json!({"items": [{"at": 2, "sku": "x"}], "token": "t", "id": "7c9e6679-7425-40de-944b-e07fc1f90ae7"});
        let now = SystemTime::now();
        let volatile = Volatile {
            exact: &[],
            recorded_at: now,
            actual_at: now,
        };
        let d = diff(
            &e,
            &a,
            &DiffOptions {
                ignore: &ignore,
                volatile: Some(volatile),
                ..Default::default()
            },
        );
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(d.volatile, [("$.id".to_owned(), Shape::Uuid)]);
        let exact = [PathPattern::parse("$.id").unwrap()];
        let strict = Volatile {
            exact: &exact,
            ..volatile
        };
        let d = diff(
            &e,
            &a,
            &DiffOptions {
                ignore: &ignore,
                volatile: Some(strict),
                ..Default::default()
            },
        );
        assert_eq!(fields(&d), ["$.id"]);
    }

    #[test]
    fn a_difference_keeps_absent_apart_from_null_on_the_wire() {
        let d = Difference::new("$.x", Some(Value::Null), None);
        let text = serde_json::to_string(&d).unwrap();
        assert_eq!(text, r#"{"field":"$.x","expected":null}"#);
        assert_eq!(serde_json::from_str::<Difference>(&text).unwrap(), d);
    }
}
