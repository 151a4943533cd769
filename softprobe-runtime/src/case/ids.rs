//! Trace and span identifiers.
//!
//! Case files written by hand and by this crate carry lowercase hex ids (32 chars for a trace,
//! 16 for a span); protobuf-JSON encoders (and the original runtime) write the raw bytes as
//! base64. Both spellings are read; hex is always written. Fresh ids ([`TraceId::random`],
//! [`SpanId::random`]) come from the operating system's generator, drawn in blocks per thread
//! so a proxy does not make a system call for every hop.

use std::fmt;
use std::marker::PhantomData;

use base64::Engine as _;
use serde::de::{self, Visitor};
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
    if s.len() == N * 2 && hex::decode_to_slice(s, &mut out).is_ok() {
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
    f.write_str(&hex::encode(bytes))
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

            /// A fresh, non-zero, unguessable id: bytes of the operating system's
            /// generator, drawn in blocks per thread.
            pub fn random() -> Self {
                loop {
                    let id = Self(random_bytes::<$len>());
                    if !id.is_zero() {
                        return id;
                    }
                }
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
                deserializer.deserialize_str(IdVisitor(PhantomData))
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

/// Bytes drawn from the operating system generator per refill: 64 span ids or 32 trace ids.
const POOL_BYTES: usize = 512;

/// A thread's unused bytes of the operating system generator.
struct Pool {
    bytes: [u8; POOL_BYTES],
    /// Bytes before this index are spent.
    next: usize,
}

thread_local! {
    static POOL: std::cell::RefCell<Pool> = const {
        std::cell::RefCell::new(Pool { bytes: [0; POOL_BYTES], next: POOL_BYTES })
    };
}

/// `N` bytes of the operating system's generator (`getrandom`), served from a per-thread
/// block refilled every `POOL_BYTES` bytes: one system call per 64 span ids instead of one
/// each. Every byte is handed out once and wiped, so ids stay as unguessable as the
/// generator itself. (A forked child that kept running Rust code would share the parent's
/// unspent block; this crate only forks to `exec`.)
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    const { assert!(N <= POOL_BYTES) };
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.next + N > POOL_BYTES {
            // The generator failing means the machine cannot produce ids at all; nothing
            // sensible can continue without them.
            getrandom::fill(&mut pool.bytes)
                .expect("the operating system random number generator failed");
            pool.next = 0;
        }
        let start = pool.next;
        let mut out = [0u8; N];
        out.copy_from_slice(&pool.bytes[start..start + N]);
        pool.bytes[start..start + N].fill(0);
        pool.next = start + N;
        out
    })
}

/// Reads an id from its string. The id is parsed inside the visitor, so a bad one is an
/// error of the string itself: it carries the string's position, and the JSON path read
/// back from that position names the member.
struct IdVisitor<T>(PhantomData<T>);

impl<T: std::str::FromStr<Err = IdError>> Visitor<'_> for IdVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<T, E> {
        s.parse().map_err(E::custom)
    }
}

/// Reads an optional span id where OTLP encoders write `""` for "no parent".
pub(crate) fn deserialize_opt_span_id<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<SpanId>, D::Error> {
    struct Parent;
    impl<'de> Visitor<'de> for Parent {
        type Value = Option<SpanId>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_str(self)
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
            if s.is_empty() {
                return Ok(None);
            }
            let id: SpanId = IdVisitor(PhantomData).visit_str(s)?;
            Ok((!id.is_zero()).then_some(id))
        }
    }
    deserializer.deserialize_option(Parent)
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

    #[test]
    fn random_ids_are_non_zero_and_distinct_across_refills() {
        // Several pool refills on this thread and one on another: no id repeats.
        let mut seen = std::collections::HashSet::new();
        for _ in 0..(3 * POOL_BYTES / 8) {
            let id = SpanId::random();
            assert!(!id.is_zero());
            assert!(seen.insert(id.to_string()), "span id {id} drawn twice");
        }
        let other = std::thread::spawn(|| (0..100).map(|_| SpanId::random()).collect::<Vec<_>>())
            .join()
            .unwrap();
        for id in other {
            assert!(
                seen.insert(id.to_string()),
                "span id {id} drawn on two threads"
            );
        }
        let (a, b) = (TraceId::random(), TraceId::random());
        assert!(!a.is_zero() && a != b);
        assert_eq!(a.to_string().len(), 32);
    }

    #[test]
    fn random_bytes_are_wiped_once_handed_out() {
        let _ = random_bytes::<8>();
        POOL.with(|pool| {
            let pool = pool.borrow();
            assert!(pool.bytes[..pool.next].iter().all(|b| *b == 0));
        });
    }
}
