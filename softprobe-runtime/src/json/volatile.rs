//! Values that change on every run by nature: identifiers and clocks. When the recorded and
//! the sent value have the same such shape, a comparison treats them as the same field value
//! ("ignored as volatile"); a value that loses its shape (a UUID turned into a plain word, a
//! timestamp turned into a number) still differs.
//!
//! UUIDs and ULIDs are recognised by their fixed textual layout, checked here in a few lines
//! rather than through a crate that would parse them into values nobody uses; RFC 3339 goes
//! through the `time` crate's parser.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// How far a Unix time may be from the moment its hop happened and still count as a clock.
const CLOCK_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);

/// A shape of volatile value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `8-4-4-4-12` hexadecimal digits.
    Uuid,
    /// 26 Crockford base-32 characters.
    Ulid,
    /// An RFC 3339 date-time.
    Timestamp,
    /// Seconds or milliseconds since 1970 within a day of the hop.
    UnixTime,
}

impl Shape {
    /// `UUID`, `ULID`, `RFC 3339 timestamp` or `Unix time`.
    pub fn as_str(self) -> &'static str {
        match self {
            Shape::Uuid => "UUID",
            Shape::Ulid => "ULID",
            Shape::Timestamp => "RFC 3339 timestamp",
            Shape::UnixTime => "Unix time",
        }
    }
}

/// The volatile shape of `value`, for a hop that happened at `at`.
pub fn shape(value: &Value, at: SystemTime) -> Option<Shape> {
    match value {
        Value::String(s) => text_shape(s, at),
        Value::Number(n) => n
            .as_f64()
            .filter(|t| is_clock(*t, at))
            .map(|_| Shape::UnixTime),
        _ => None,
    }
}

/// The shape of a text value (a header, a query parameter, a form field or a JSON string;
/// digits alone are read as a Unix time), for a hop that happened at `at`.
pub fn text_shape(s: &str, at: SystemTime) -> Option<Shape> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        s.parse::<f64>()
            .ok()
            .filter(|t| is_clock(*t, at))
            .map(|_| Shape::UnixTime)
    } else if is_uuid(s) {
        Some(Shape::Uuid)
    } else if is_ulid(s) {
        Some(Shape::Ulid)
    } else if is_rfc3339(s) {
        Some(Shape::Timestamp)
    } else {
        None
    }
}

/// The shape both values share, when they share one: the recorded value read at its capture
/// time, the sent one at the time it was sent.
pub fn same_shape(
    recorded: &Value,
    recorded_at: SystemTime,
    sent: &Value,
    sent_at: SystemTime,
) -> Option<Shape> {
    let a = shape(recorded, recorded_at)?;
    (shape(sent, sent_at)? == a).then_some(a)
}

fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn is_ulid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 26
        && matches!(b[0], b'0'..=b'7')
        && b.iter().all(|c| {
            c.is_ascii_digit()
                || (c.is_ascii_alphabetic() && !matches!(c.to_ascii_uppercase(), b'I' | b'L' | b'O' | b'U'))
        })
        // A word of 26 letters is not an id.
        && b.iter().any(u8::is_ascii_digit)
}

fn is_rfc3339(s: &str) -> bool {
    s.len() >= 20
        && time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).is_ok()
}

fn is_clock(t: f64, at: SystemTime) -> bool {
    let at = at
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let window = CLOCK_WINDOW.as_secs_f64();
    (t - at).abs() <= window || (t / 1000.0 - at).abs() <= window
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_and_clocks_are_recognised_and_near_misses_are_not() {
        let now = SystemTime::now();
        let secs = now.duration_since(UNIX_EPOCH).unwrap().as_secs();
        assert_eq!(
            shape(&json!("0f8fad5b-d9cb-469f-a165-70867728950e"), now),
            Some(Shape::Uuid)
        );
        assert_eq!(
            shape(&json!("01ARZ3NDEKTSV4RRFFQ69G5FAV"), now),
            Some(Shape::Ulid)
        );
        assert_eq!(
            shape(&json!("2026-12-03T12:00:00Z"), now),
            Some(Shape::Timestamp)
        );
        assert_eq!(
            shape(&json!("2026-12-03T12:00:00.5+01:00"), now),
            Some(Shape::Timestamp)
        );
        assert_eq!(shape(&json!(secs), now), Some(Shape::UnixTime));
        assert_eq!(shape(&json!(secs * 1000), now), Some(Shape::UnixTime));
        assert_eq!(shape(&json!(secs - 3 * 86_400), now), None);
        assert_eq!(shape(&json!(1000), now), None);
        assert_eq!(shape(&json!("not-a-uuid"), now), None);
        assert_eq!(
            shape(&json!("0f8fad5b-d9cb-469f-a165-70867728950"), now),
            None
        );
        assert_eq!(shape(&json!("ABCDEFGHJKMNPQRSTVWXYZABCD"), now), None);
        assert_eq!(shape(&json!("2026-12-03"), now), None);
        assert_eq!(
            same_shape(&json!("2026-12-03T12:00:00Z"), now, &json!(secs), now),
            None,
            "a timestamp that became a number is not the same field"
        );
    }
}
