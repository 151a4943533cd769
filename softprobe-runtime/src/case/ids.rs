//! Trace and span identifiers.
//!
//! Case files written by hand and by this crate carry lowercase hex ids (32 chars for a trace,
//! 16 for a span); protobuf-JSON encoders (and the original runtime) write the raw bytes as
//! base64. Both spellings are read; hex is always written.

use std::fmt;

use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why an id string could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} id {value:?}: expected {hex} hex characters or base64 of {bytes} bytes")]
pub struct IdError {
    kind: &'static str,
    value: String,
    hex: usize,
    bytes: usize,
}

fn decode<const N: usize>(kind: &'static str, s: &str) -> Result<[u8; N], IdError> {
    let err = || IdError {
        kind,
        value: s.to_owned(),
        hex: N * 2,
        bytes: N,
    };
    let mut out = [0u8; N];
    if s.len() == N * 2 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
            let pair = std::str::from_utf8(chunk).map_err(|_| err())?;
            out[i] = u8::from_str_radix(pair, 16).map_err(|_| err())?;
        }
        return Ok(out);
    }
    // base64 of N bytes is shorter than 2N hex chars, so the two spellings never collide.
    let engines = [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        &base64::engine::general_purpose::URL_SAFE,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ];
    for engine in engines {
        if let Ok(bytes) = engine.decode(s)
            && bytes.len() == N
        {
            out.copy_from_slice(&bytes);
            return Ok(out);
        }
    }
    Err(err())
}

fn write_hex(bytes: &[u8], f: &mut fmt::Formatter<'_>) -> fmt::Result {
    for b in bytes {
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $len:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// Parses hex (the canonical spelling) or base64 (protobuf-JSON).
            pub fn parse(s: &str) -> Result<Self, IdError> {
                decode::<$len>($kind, s).map(Self)
            }

            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            /// True when every byte is zero, which W3C and OTLP treat as "no id".
            pub fn is_zero(&self) -> bool {
                self.0.iter().all(|b| *b == 0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_hex(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}(", stringify!($name))?;
                write_hex(&self.0, f)?;
                write!(f, ")")
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type!(
    /// A 16-byte trace id, written as 32 lowercase hex characters.
    TraceId,
    16,
    "trace"
);
id_type!(
    /// An 8-byte span id, written as 16 lowercase hex characters.
    SpanId,
    8,
    "span"
);

/// Reads an optional span id where OTLP encoders write `""` for "no parent".
pub(crate) fn deserialize_opt_span_id<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<SpanId>, D::Error> {
    let s = Option::<std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
    match s.as_deref() {
        None | Some("") => Ok(None),
        Some(s) => SpanId::parse(s)
            .map(|id| (!id.is_zero()).then_some(id))
            .map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_base64_spellings_agree() {
        let hex = TraceId::parse("5b8efff798038103d269b633813fc60c").unwrap();
        let b64 = TraceId::parse("W47/95gDgQPSabYzgT/GDA==").unwrap();
        assert_eq!(hex, b64);
        assert_eq!(b64.to_string(), "5b8efff798038103d269b633813fc60c");
        let span = SpanId::parse("AQIDBAUGBwg=").unwrap();
        assert_eq!(span.to_string(), "0102030405060708");
    }

    #[test]
    fn wrong_lengths_are_rejected_with_the_expected_shape() {
        let err = TraceId::parse("5ef").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid trace id \"5ef\": expected 32 hex characters or base64 of 16 bytes"
        );
        assert!(SpanId::parse("5b8efff798038103d269b633813fc60c").is_err());
        assert!(SpanId::parse("zzzzzzzzzzzzzzzz").is_err());
    }
}
