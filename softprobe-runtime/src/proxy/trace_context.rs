//! W3C Trace Context (`traceparent`, `tracestate`) and `baggage` handling for the proxy.
//!
//! The ingress stamps every flow with a trace and a `sp=<sessionId>` tracestate member; the
//! egress reads them back to find the session and to link outbound spans to their parent.

use crate::case::{SpanId, TraceId};

/// The tracestate key this proxy writes.
pub const SESSION_MEMBER: &str = "sp";
/// The tracestate key the original proxy writes; read, never written.
pub const LEGACY_SESSION_MEMBER: &str = "x-softprobe-session-id";
/// W3C limit on the number of tracestate members.
pub const MAX_TRACESTATE_MEMBERS: usize = 32;

/// A parsed `traceparent` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// The trace.
    pub trace_id: TraceId,
    /// The caller's span, parent of whatever the receiver does.
    pub parent_id: SpanId,
    /// Trace flags (bit 0: sampled).
    pub flags: u8,
}

impl TraceParent {
    /// Parses a header value. Returns `None` for anything the W3C spec says to ignore:
    /// wrong lengths, uppercase hex, version `ff`, all-zero ids, extra fields on version 00.
    pub fn parse(value: &str) -> Option<Self> {
        let value = value.trim_matches([' ', '\t']);
        let bytes = value.as_bytes();
        if bytes.len() < 55 || bytes[2] != b'-' || bytes[35] != b'-' || bytes[52] != b'-' {
            return None;
        }
        let version = hex_u8(&value[0..2])?;
        if version == 0xff {
            return None;
        }
        // Version 00 has exactly four fields; later versions may append more after a dash.
        if (version == 0 && bytes.len() != 55) || (bytes.len() > 55 && bytes[55] != b'-') {
            return None;
        }
        let trace_hex = &value[3..35];
        let span_hex = &value[36..52];
        if !is_lower_hex(trace_hex) || !is_lower_hex(span_hex) {
            return None;
        }
        let trace_id = TraceId::parse(trace_hex).ok()?;
        let parent_id = SpanId::parse(span_hex).ok()?;
        if trace_id.is_zero() || parent_id.is_zero() {
            return None;
        }
        let flags = hex_u8(&value[53..55])?;
        Some(TraceParent {
            trace_id,
            parent_id,
            flags,
        })
    }

    /// A new sampled trace with random ids.
    pub fn random() -> Self {
        TraceParent {
            trace_id: TraceId::random(),
            parent_id: SpanId::random(),
            flags: 0x01,
        }
    }

    /// The header value, version 00.
    pub fn to_header(&self) -> String {
        String::from_utf8(self.header_bytes().to_vec()).expect("hex digits and dashes")
    }

    /// The header value as the bytes of a `traceparent` header, without the formatting
    /// machinery: the ingress writes one per request.
    pub fn header_bytes(&self) -> [u8; 55] {
        // 00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>
        let mut out = [b'-'; 55];
        out[..2].copy_from_slice(b"00");
        hex_into(&mut out[3..35], self.trace_id.as_bytes());
        hex_into(&mut out[36..52], self.parent_id.as_bytes());
        hex_into(&mut out[53..55], &[self.flags]);
        out
    }

    /// [`Self::header_bytes`] as a header value, cut from a buffer kept per thread that
    /// holds many of them: the ingress writes one per request, and one allocation per
    /// request for 55 bytes would be most of what its hop allocates.
    pub fn header_value(&self) -> http::HeaderValue {
        /// Values per buffer: a buffer is freed once its last value is.
        const PER_BUFFER: usize = 64;
        thread_local! {
            static VALUES: std::cell::RefCell<bytes::BytesMut> =
                std::cell::RefCell::new(bytes::BytesMut::new());
        }
        let bytes = self.header_bytes();
        VALUES.with_borrow_mut(|values| {
            if values.capacity() < bytes.len() {
                // Reuses the buffer when every value cut from it is gone.
                values.reserve(bytes.len() * PER_BUFFER);
            }
            values.extend_from_slice(&bytes);
            http::HeaderValue::from_maybe_shared(values.split().freeze())
                .expect("hex digits and dashes are a valid header value")
        })
    }
}

/// Lowercase hex of `bytes` into `out` (twice as long).
fn hex_into(out: &mut [u8], bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (pair, byte) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = HEX[usize::from(byte >> 4)];
        pair[1] = HEX[usize::from(byte & 0x0f)];
    }
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn hex_u8(s: &str) -> Option<u8> {
    if s.len() == 2 && is_lower_hex(s) {
        u8::from_str_radix(s, 16).ok()
    } else {
        None
    }
}

/// The members of a `tracestate` header, in order, valid ones only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceState {
    members: Vec<(String, String)>,
}

impl TraceState {
    /// Parses one or more `tracestate` header values (several header lines are one list).
    /// Invalid members are dropped; for a duplicated key the first occurrence wins.
    pub fn parse<'a>(values: impl IntoIterator<Item = &'a str>) -> Self {
        let mut members: Vec<(String, String)> = Vec::new();
        for value in values {
            for raw in value.split(',') {
                let raw = raw.trim_matches([' ', '\t']);
                if raw.is_empty() {
                    continue;
                }
                let Some((key, val)) = raw.split_once('=') else {
                    continue;
                };
                if !valid_key(key) || !valid_value(val) {
                    continue;
                }
                if members.iter().any(|(k, _)| k == key) {
                    continue;
                }
                members.push((key.to_owned(), val.to_owned()));
            }
        }
        TraceState { members }
    }

    /// The members, in order.
    pub fn members(&self) -> &[(String, String)] {
        &self.members
    }

    /// The value of one member.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.members
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The session this trace belongs to: the `sp` member, else the original proxy's
    /// `x-softprobe-session-id` member.
    pub fn session_id(&self) -> Option<&str> {
        self.get(SESSION_MEMBER)
            .or_else(|| self.get(LEGACY_SESSION_MEMBER))
            .filter(|s| !s.is_empty())
    }

    /// The members that are not session correlation: the trace tags rules match against.
    pub fn foreign_members(&self) -> impl Iterator<Item = (&str, &str)> {
        self.members
            .iter()
            .filter(|(k, _)| k != SESSION_MEMBER && k != LEGACY_SESSION_MEMBER)
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// This list with `sp=<session_id>` first and every previous session member removed,
    /// cut to 32 members from the end. A session id that is not a valid member value (it
    /// would corrupt the header) leaves the list without a session member.
    pub fn with_session(&self, session_id: &str) -> Self {
        TraceState {
            members: self
                .members_with(Some(session_id))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        }
    }

    /// The header value, or `None` for an empty list (the header should then be omitted).
    pub fn to_header(&self) -> Option<String> {
        let bytes = self.header_bytes(None)?;
        Some(String::from_utf8(bytes).expect("member keys and values are printable ASCII"))
    }

    /// The header value of [`Self::with_session`] (of this list itself for `None`), written
    /// straight into a header value without the intermediate list: the ingress writes one
    /// per request. `None` for an empty list.
    pub fn header_value(&self, session_id: Option<&str>) -> Option<http::HeaderValue> {
        if self.members.is_empty()
            && let Some(id) = session_id.filter(|id| valid_value(id))
        {
            return session_only(id);
        }
        let bytes = self.header_bytes(session_id)?;
        // Keys and values were checked when parsed (or, for the session id, just now).
        http::HeaderValue::from_maybe_shared(bytes::Bytes::from(bytes)).ok()
    }

    /// The members [`Self::with_session`] keeps, in its order; all of them for `None`.
    fn members_with<'a>(
        &'a self,
        session_id: Option<&'a str>,
    ) -> impl Iterator<Item = (&'a str, &'a str)> {
        let session = session_id
            .filter(|id| valid_value(id))
            .map(|id| (SESSION_MEMBER, id));
        let replaced = session_id.is_some();
        let limit = if replaced {
            MAX_TRACESTATE_MEMBERS
        } else {
            usize::MAX
        };
        session
            .into_iter()
            .chain(
                self.members
                    .iter()
                    .filter(move |(k, _)| {
                        !replaced || (k != SESSION_MEMBER && k != LEGACY_SESSION_MEMBER)
                    })
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            )
            .take(limit)
    }

    /// `key=value` members joined by commas, sized exactly; `None` when there are none.
    fn header_bytes(&self, session_id: Option<&str>) -> Option<Vec<u8>> {
        let len: usize = self
            .members_with(session_id)
            .map(|(k, v)| k.len() + v.len() + 2)
            .sum();
        if len == 0 {
            return None;
        }
        let mut out = Vec::with_capacity(len - 1);
        for (k, v) in self.members_with(session_id) {
            if !out.is_empty() {
                out.push(b',');
            }
            out.extend_from_slice(k.as_bytes());
            out.push(b'=');
            out.extend_from_slice(v.as_bytes());
        }
        Some(out)
    }
}

/// `sp=<session_id>` as a header value: the tracestate of every hop of a session that brings
/// none of its own. The last one is kept per thread and shared (a header value's bytes are
/// reference-counted), so a run of one session's hops writes it once, not once per hop.
fn session_only(session_id: &str) -> Option<http::HeaderValue> {
    thread_local! {
        static LAST: std::cell::RefCell<Option<http::HeaderValue>> =
            const { std::cell::RefCell::new(None) };
    }
    LAST.with_borrow_mut(|last| {
        if let Some(value) = last
            && value
                .as_bytes()
                .strip_prefix(SESSION_MEMBER.as_bytes())
                .and_then(|rest| rest.strip_prefix(b"="))
                == Some(session_id.as_bytes())
        {
            return Some(value.clone());
        }
        let mut out = Vec::with_capacity(SESSION_MEMBER.len() + 1 + session_id.len());
        out.extend_from_slice(SESSION_MEMBER.as_bytes());
        out.push(b'=');
        out.extend_from_slice(session_id.as_bytes());
        let value = http::HeaderValue::from_maybe_shared(bytes::Bytes::from(out)).ok()?;
        *last = Some(value.clone());
        Some(value)
    })
}

fn valid_simple_key(key: &str, max: usize) -> bool {
    let b = key.as_bytes();
    !b.is_empty()
        && b.len() <= max
        && b[0].is_ascii_lowercase()
        && b[1..].iter().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'-' | b'*' | b'/')
        })
}

fn valid_key(key: &str) -> bool {
    match key.split_once('@') {
        None => valid_simple_key(key, 256),
        Some((tenant, system)) => {
            let t = tenant.as_bytes();
            !t.is_empty()
                && t.len() <= 241
                && (t[0].is_ascii_lowercase() || t[0].is_ascii_digit())
                && t[1..].iter().all(|c| {
                    c.is_ascii_lowercase()
                        || c.is_ascii_digit()
                        || matches!(c, b'_' | b'-' | b'*' | b'/')
                })
                && valid_simple_key(system, 14)
        }
    }
}

fn valid_value(value: &str) -> bool {
    let b = value.as_bytes();
    !b.is_empty()
        && b.len() <= 256
        && b.iter()
            .all(|&c| (0x20..=0x7e).contains(&c) && c != b',' && c != b'=')
        && b[b.len() - 1] != b' '
}

/// The entries of one or more `baggage` header values: `key=value` pairs, properties
/// after `;` ignored, values percent-decoded, malformed entries dropped.
pub fn parse_baggage<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for value in values {
        for entry in value.split(',') {
            let pair = entry.split(';').next().unwrap_or("");
            let Some((k, v)) = pair.split_once('=') else {
                continue;
            };
            let k = k.trim_matches([' ', '\t']);
            let v = v.trim_matches([' ', '\t']);
            if k.is_empty() || !k.bytes().all(is_token_char) {
                continue;
            }
            if let Some(v) = percent_decode(v) {
                out.push((k.to_owned(), v));
            }
        }
    }
    out
}

fn is_token_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

/// `%XX` escapes decoded, refusing a bad escape or invalid UTF-8 (`percent-encoding`'s
/// decoder keeps a bad escape as written and cannot tell), so a malformed baggage member is
/// dropped instead of recorded half-decoded.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_cut_from_one_buffer_stay_whole_while_others_are_cut() {
        let parents: Vec<TraceParent> = (0..300).map(|_| TraceParent::random()).collect();
        // Some kept, some dropped at once, across several buffers.
        let kept: Vec<(TraceParent, http::HeaderValue)> = parents
            .iter()
            .enumerate()
            .filter_map(|(i, tp)| {
                let value = tp.header_value();
                (i % 3 == 0).then_some((*tp, value))
            })
            .collect();
        for (tp, value) in &kept {
            assert_eq!(value.as_bytes(), &tp.header_bytes()[..]);
        }
    }

    #[test]
    fn header_bytes_are_the_formatted_header() {
        for _ in 0..200 {
            let tp = TraceParent {
                trace_id: crate::case::TraceId::random(),
                parent_id: crate::case::SpanId::random(),
                flags: (crate::case::SpanId::random().as_bytes()[0]),
            };
            let formatted = format!("00-{}-{}-{:02x}", tp.trace_id, tp.parent_id, tp.flags);
            assert_eq!(tp.to_header(), formatted);
            assert_eq!(&tp.header_bytes()[..], formatted.as_bytes());
            assert_eq!(tp.header_value().as_bytes(), formatted.as_bytes());
            assert_eq!(TraceParent::parse(&formatted), Some(tp));
        }
    }

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn traceparent_table() {
        let cases: &[(&str, bool)] = &[
            (TP, true),
            (
                " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00 ",
                true,
            ),
            ("", false),
            ("garbage", false),
            (
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                false,
            ),
            (
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                false,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                false,
            ),
            (
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                false,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
                false,
            ),
            (
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
                true,
            ),
            (
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
                false,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
                false,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
                false,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bz-01",
                false,
            ),
        ];
        for (input, ok) in cases {
            assert_eq!(TraceParent::parse(input).is_some(), *ok, "{input:?}");
        }
        let tp = TraceParent::parse(TP).unwrap();
        assert_eq!(tp.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(tp.parent_id.to_string(), "00f067aa0ba902b7");
        assert_eq!(tp.flags, 1);
        assert_eq!(tp.to_header(), TP);
    }

    #[test]
    fn random_traceparent_is_valid_and_sampled() {
        let a = TraceParent::random();
        let b = TraceParent::random();
        assert_ne!(a.trace_id, b.trace_id);
        let back = TraceParent::parse(&a.to_header()).unwrap();
        assert_eq!(back, a);
        assert_eq!(back.flags & 1, 1);
    }

    #[test]
    fn tracestate_parse_table() {
        type Members<'a> = &'a [(&'a str, &'a str)];
        let cases: &[(&[&str], Members<'_>)] = &[
            (&[], &[]),
            (&[""], &[]),
            (&["a=1"], &[("a", "1")]),
            (&["a=1, b=2 ,,c=3"], &[("a", "1"), ("b", "2"), ("c", "3")]),
            (&["a=1", "b=2"], &[("a", "1"), ("b", "2")]),
            // Uppercase keys, missing '=', bad values and empty values are dropped.
            (&["A=1,b,c=,d=x=y,e=ok"], &[("e", "ok")]),
            // The first of two members with one key wins.
            (&["sp=first,sp=second"], &[("sp", "first")]),
            (
                &["tenant@vendor=v,1t@sys=w,@x=y"],
                &[("tenant@vendor", "v"), ("1t@sys", "w")],
            ),
            (&["k=trailing "], &[("k", "trailing")]),
        ];
        for (input, expected) in cases {
            let ts = TraceState::parse(input.iter().copied());
            let got: Vec<(&str, &str)> = ts
                .members()
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            assert_eq!(&got, expected, "{input:?}");
        }
    }

    #[test]
    fn session_member_read_in_both_spellings() {
        assert_eq!(
            TraceState::parse(["vendor=1,sp=sess_a"]).session_id(),
            Some("sess_a")
        );
        assert_eq!(
            TraceState::parse(["x-softprobe-session-id=sess_b"]).session_id(),
            Some("sess_b")
        );
        assert_eq!(
            TraceState::parse(["sp=sess_a,x-softprobe-session-id=sess_b"]).session_id(),
            Some("sess_a")
        );
        assert_eq!(TraceState::parse(["vendor=1"]).session_id(), None);
    }

    #[test]
    fn with_session_puts_sp_first_and_drops_old_session_members() {
        let ts = TraceState::parse(["congo=t61,sp=old,x-softprobe-session-id=older,rojo=00f"]);
        let out = ts.with_session("sess_new");
        assert_eq!(out.to_header().unwrap(), "sp=sess_new,congo=t61,rojo=00f");
        assert_eq!(
            out.foreign_members().collect::<Vec<_>>(),
            vec![("congo", "t61"), ("rojo", "00f")]
        );
    }

    #[test]
    fn with_session_keeps_at_most_32_members_dropping_from_the_end() {
        let many: Vec<String> = (0..40).map(|i| format!("k{i}=v{i}")).collect();
        let header = many.join(",");
        let out = TraceState::parse([header.as_str()]).with_session("sess_x");
        assert_eq!(out.members().len(), 32);
        assert_eq!(out.members()[0], ("sp".to_owned(), "sess_x".to_owned()));
        assert_eq!(out.members()[31], ("k30".to_owned(), "v30".to_owned()));
    }

    #[test]
    fn header_values_follow_the_session_from_hop_to_hop() {
        let empty = TraceState::default();
        let with_foreign = TraceState::parse(["congo=t61"]);
        for (state, id, expected) in [
            (&empty, Some("sess_a"), Some("sp=sess_a")),
            (&empty, Some("sess_a"), Some("sp=sess_a")),
            (&empty, Some("sess_b"), Some("sp=sess_b")),
            (&empty, Some("sess_"), Some("sp=sess_")),
            (&with_foreign, Some("sess_b"), Some("sp=sess_b,congo=t61")),
            (&empty, Some("sess_b"), Some("sp=sess_b")),
            (&empty, Some("bad,id"), None),
            (&empty, None, None),
            (&with_foreign, None, Some("congo=t61")),
            (&empty, Some("sess_a"), Some("sp=sess_a")),
        ] {
            let got = state.header_value(id);
            assert_eq!(
                got.as_ref().map(|v| v.to_str().unwrap()),
                expected,
                "{state:?} {id:?}"
            );
            assert_eq!(
                got.map(|v| v.to_str().unwrap().to_owned()),
                id.map_or_else(|| state.clone(), |id| state.with_session(id))
                    .to_header()
            );
        }
    }

    #[test]
    fn a_session_id_that_would_corrupt_the_header_is_not_written() {
        let out = TraceState::parse(["a=1"]).with_session("bad,id=x");
        assert_eq!(out.to_header().unwrap(), "a=1");
        assert_eq!(TraceState::default().to_header(), None);
    }

    #[test]
    fn baggage_entries_are_decoded() {
        let got = parse_baggage([
            "userId=alice%20b,  tier = gold;ttl=3",
            "bad entry,x=%zz,y=1",
        ]);
        assert_eq!(
            got,
            vec![
                ("userId".to_owned(), "alice b".to_owned()),
                ("tier".to_owned(), "gold".to_owned()),
                ("y".to_owned(), "1".to_owned()),
            ]
        );
    }
}
