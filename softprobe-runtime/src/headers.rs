//! Header classes: every header name the runtime and the harness treat specially, each list
//! with the reason for each entry, and one classifier per class. Recording, replay, request
//! drift, the case diff, the harness's comparison and resend, the suite and the scrubber all
//! ask here, so a header changes class in one place.
//!
//! Names are lowercase; every classifier compares without regard to case. The classes:
//! - [`SESSION_HEADERS`] and the other protocol headers: what softprobe itself reads.
//! - [`VOLATILE`]: values that change on every run; never compared unless asked by name
//!   where that is allowed (`exactFields`), and refused by the harness's `headers(...)`.
//! - [`SENSITIVE`]: credentials, stored as `"[REDACTED]"` by default.
//! - [`HOP_BY_HOP`]: connection headers a proxy never forwards (RFC 9110 §7.6.1).
//! - [`NOT_RESENT`]: request headers a recorded request is sent again without.
//! - [`NOT_RECORDED`]: request headers never written into a recording.

/// Header names that carry the session id on requests: the canonical one first, then the
/// original proxy's aliases.
pub const SESSION_HEADERS: &[&str] = &[
    "x-softprobe-session-id",
    "x-sp-session-id",
    "sp_session_id",
    "x-session-id",
];
/// Optional header tagging traffic with a case id.
pub const CASE_ID_HEADER: &str = "x-softprobe-case-id";
/// Optional header carrying a mode override.
pub const MODE_HEADER: &str = "x-softprobe-mode";
/// Optional header naming the test, for logs and reports.
pub const TEST_NAME_HEADER: &str = "x-softprobe-test-name";
/// W3C Trace Context: the trace and the caller's span.
pub const TRACEPARENT: &str = "traceparent";
/// W3C Trace Context: vendor members (softprobe's `sp=<session id>` among them).
pub const TRACESTATE: &str = "tracestate";
/// W3C Baggage: key-value pairs that travel with a trace.
pub const BAGGAGE: &str = "baggage";

/// The protocol headers above as [`http::HeaderName`]s, for the proxies' lookups in a
/// `HeaderMap`: a `&str` name is parsed and checked again on every lookup, these are not.
pub mod names {
    use http::HeaderName;

    const _: () = assert!(
        super::SESSION_HEADERS.len() == 4,
        "one name per session header"
    );

    /// [`super::SESSION_HEADERS`], in the same order.
    pub static SESSION: [HeaderName; 4] = [
        HeaderName::from_static(super::SESSION_HEADERS[0]),
        HeaderName::from_static(super::SESSION_HEADERS[1]),
        HeaderName::from_static(super::SESSION_HEADERS[2]),
        HeaderName::from_static(super::SESSION_HEADERS[3]),
    ];
    /// [`super::CASE_ID_HEADER`].
    pub static CASE_ID: HeaderName = HeaderName::from_static(super::CASE_ID_HEADER);
    /// [`super::MODE_HEADER`].
    pub static MODE: HeaderName = HeaderName::from_static(super::MODE_HEADER);
    /// [`super::TEST_NAME_HEADER`].
    pub static TEST_NAME: HeaderName = HeaderName::from_static(super::TEST_NAME_HEADER);
    /// [`super::TRACEPARENT`].
    pub static TRACEPARENT: HeaderName = HeaderName::from_static(super::TRACEPARENT);
    /// [`super::TRACESTATE`].
    pub static TRACESTATE: HeaderName = HeaderName::from_static(super::TRACESTATE);
    /// [`super::BAGGAGE`].
    pub static BAGGAGE: HeaderName = HeaderName::from_static(super::BAGGAGE);

    /// A header name as a request head spells it: one of the protocol names above without
    /// a copy (a name `http` does not know is otherwise copied to the heap on every
    /// request), any other parsed as usual.
    pub(crate) fn from_head(bytes: &[u8]) -> Result<HeaderName, http::header::InvalidHeaderName> {
        let own = SESSION
            .iter()
            .chain([
                &TRACEPARENT,
                &TRACESTATE,
                &BAGGAGE,
                &TEST_NAME,
                &CASE_ID,
                &MODE,
            ])
            .find(|name| name.as_str().as_bytes().eq_ignore_ascii_case(bytes));
        match own {
            Some(name) => Ok(name.clone()),
            None => HeaderName::from_bytes(bytes),
        }
    }
}

/// Headers whose values change from run to run, or that describe the connection, the trace
/// or the retry rather than the exchange.
pub const VOLATILE: &[&str] = &[
    // Clocks: the moment the message was sent.
    "date",
    "age",
    "expires",
    "last-modified",
    // Timings measured by the server on this run.
    "server-timing",
    // Trace context: new ids every run.
    TRACEPARENT,
    TRACESTATE,
    BAGGAGE,
    // Per-request ids minted by the client or a gateway.
    "x-request-id",
    "x-correlation-id",
    "x-trace-id",
    "idempotency-key",
    "x-idempotency-key",
    // Framing of this connection, not the message.
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    // Where and through what the request was sent this time.
    "host",
    "user-agent",
    // What the client accepts; the answer's own `content-encoding` is compared instead.
    "accept-encoding",
];

/// Headers whose whole value is a credential: redacted before a capture is stored and
/// flagged by `softprobe scrub`.
pub const SENSITIVE: &[&str] = &[
    // HTTP authentication (RFC 9110 §11.6.2).
    "authorization",
    // Authentication to a proxy (RFC 9110 §11.7.2).
    "proxy-authorization",
    // Session cookies sent by the client.
    "cookie",
    // Session cookies set by the server.
    "set-cookie",
    // The common API key header.
    "x-api-key",
    // The common token header of frameworks that do not use `authorization`.
    "x-auth-token",
];

/// Headers that belong to one connection (RFC 9110 §7.6.1), removed by a proxy before it
/// forwards a message, along with every name a `Connection` header lists and every `proxy-*`.
pub const HOP_BY_HOP: &[&str] = &[
    // Lists further hop-by-hop headers.
    "connection",
    // Options of this connection.
    "keep-alive",
    // The non-standard `connection` of old proxies.
    "proxy-connection",
    // Transfer codings the client accepts on this connection.
    "te",
    // Trailers announced for this connection's chunked framing.
    "trailer",
    // The framing of this connection.
    "transfer-encoding",
    // A protocol switch of this connection.
    "upgrade",
    // A challenge from the proxy to this client.
    "proxy-authenticate",
    // This client's credentials for the proxy.
    "proxy-authorization",
];

/// Request headers a recorded request is sent again without (besides the hop-by-hop ones and
/// the session headers): whoever sends it again sets them for its own connection and session.
pub const NOT_RESENT: &[&str] = &[
    // The sending client sets the target host.
    "host",
    // The sending client frames the body again.
    "content-length",
    // A new trace starts with the new request.
    TRACEPARENT,
    TRACESTATE,
    // Added by the proxies the recording went through.
    "via",
    // The harness names the test of the new run.
    TEST_NAME_HEADER,
];

/// Request headers never written into a recording (besides the session headers): the trace
/// correlation changes on every run and the span's ids already carry it.
pub const NOT_RECORDED: &[&str] = &[TRACEPARENT, TRACESTATE];

fn listed(list: &[&str], name: &str) -> bool {
    list.iter().any(|h| h.eq_ignore_ascii_case(name))
}

/// True for a header that carries the session id (any alias).
pub fn is_session(name: &str) -> bool {
    listed(SESSION_HEADERS, name)
}

/// True for softprobe's own headers (`x-softprobe-*`) and the session aliases.
pub fn is_softprobe(name: &str) -> bool {
    name.get(..12)
        .is_some_and(|p| p.eq_ignore_ascii_case("x-softprobe-"))
        || is_session(name)
}

/// True for a header whose value changes on every run ([`VOLATILE`]).
pub fn is_volatile(name: &str) -> bool {
    listed(VOLATILE, name)
}

/// True for a credential header redacted by default ([`SENSITIVE`]).
pub fn is_sensitive(name: &str) -> bool {
    listed(SENSITIVE, name)
}

/// True for a header of the fixed hop-by-hop set ([`HOP_BY_HOP`]) or any `proxy-*` header.
/// Names a `Connection` header lists are hop-by-hop too; see
/// [`crate::proxy::http::remove_hop_by_hop`].
pub fn is_hop_by_hop(name: &str) -> bool {
    listed(HOP_BY_HOP, name)
        || name
            .get(..6)
            .is_some_and(|p| p.eq_ignore_ascii_case("proxy-"))
}

/// True for a header that describes how a recorded answer was framed on its connection
/// (hop-by-hop or `content-length`): whoever sends the answer again frames it anew.
pub fn is_framing(name: &str) -> bool {
    is_hop_by_hop(name) || name.eq_ignore_ascii_case("content-length")
}

/// True for a request header a recorded request is sent again without: hop-by-hop, session,
/// HTTP/2 pseudo-headers and [`NOT_RESENT`].
pub fn is_not_resent(name: &str) -> bool {
    name.starts_with(':') || is_hop_by_hop(name) || is_session(name) || listed(NOT_RESENT, name)
}

/// True for a request header never written into a recording: session headers and
/// [`NOT_RECORDED`].
pub fn is_not_recorded(name: &str) -> bool {
    is_session(name) || listed(NOT_RECORDED, name)
}

/// Headers as lowercase `(name, value)` pairs in order, the shape of
/// [`crate::case::Exchange`] and of a suite's answers. Values that are not UTF-8 are kept
/// lossily: a recording must never fail on a strange header.
pub fn pairs(headers: &http::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// The value of the first header named `name` (compared without regard to case) in a list
/// of `(name, value)` pairs, as requests, exchanges and answers hold them.
pub fn find<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_names_are_the_protocol_names_in_any_case_or_parsed() {
        assert_eq!(
            names::from_head(b"X-Softprobe-Session-Id").unwrap(),
            names::SESSION[0]
        );
        assert_eq!(
            names::from_head(b"traceparent").unwrap(),
            names::TRACEPARENT
        );
        assert_eq!(
            names::from_head(b"Content-Type").unwrap(),
            http::header::CONTENT_TYPE
        );
        assert_eq!(names::from_head(b"X-Other").unwrap().as_str(), "x-other");
        assert!(names::from_head(b"bad name").is_err());
    }

    #[test]
    fn lists_are_lowercase_and_without_repeats() {
        for list in [
            SESSION_HEADERS,
            VOLATILE,
            SENSITIVE,
            HOP_BY_HOP,
            NOT_RESENT,
            NOT_RECORDED,
        ] {
            for (i, name) in list.iter().enumerate() {
                assert_eq!(*name, name.to_ascii_lowercase(), "{name} is not lowercase");
                assert!(!list[..i].contains(name), "{name} is listed twice");
            }
        }
    }

    #[test]
    fn find_takes_the_first_match_in_any_case_and_pairs_keep_order() {
        let mut map = http::HeaderMap::new();
        map.append("X-Tenant", http::HeaderValue::from_static("acme"));
        map.append("x-tenant", http::HeaderValue::from_static("other"));
        map.append(
            "x-raw",
            http::HeaderValue::from_bytes(b"caf\xe9").expect("a valid header byte"),
        );
        let list = pairs(&map);
        assert_eq!(
            list,
            [
                ("x-tenant".to_owned(), "acme".to_owned()),
                ("x-tenant".to_owned(), "other".to_owned()),
                ("x-raw".to_owned(), "caf\u{fffd}".to_owned()),
            ]
        );
        assert_eq!(find(&list, "X-TENANT"), Some("acme"));
        assert_eq!(find(&list, "x-missing"), None);
    }

    #[test]
    fn classifiers_ignore_case() {
        assert!(is_volatile("Date"));
        assert!(is_sensitive("X-Auth-Token"));
        assert!(is_hop_by_hop("Proxy-Foo"));
        assert!(is_framing("Content-Length"));
        assert!(!is_hop_by_hop("content-length"));
        assert!(is_not_resent("X-SP-Session-Id"));
        assert!(is_not_resent(":authority"));
        assert!(!is_not_resent("accept-encoding"));
        assert!(is_not_recorded("TraceParent"));
        assert!(!is_not_recorded("x-softprobe-test-name"));
        assert!(is_softprobe("X-Softprobe-Mode"));
        assert!(!is_softprobe("x-soft"));
        assert!(!is_volatile("content-type"));
    }
}
