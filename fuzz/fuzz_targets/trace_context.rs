//! `traceparent`, `tracestate` and `baggage` headers as the proxies read them: parsing never
//! panics, and what parses is written back and parses again to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use softprobe_runtime::proxy::trace_context::{
    MAX_TRACESTATE_MEMBERS, TraceParent, TraceState, parse_baggage,
};
use softprobe_runtime::replay::trace_tags_from_headers;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // One header value per line, as several header lines of one request.
    let values: Vec<&str> = text.split('\n').collect();

    for v in &values {
        if let Some(tp) = TraceParent::parse(v) {
            let header = tp.to_header();
            let again = TraceParent::parse(&header)
                .unwrap_or_else(|| panic!("{header:?} (from {v:?}) does not parse"));
            assert_eq!(again.trace_id, tp.trace_id);
            assert_eq!(again.parent_id, tp.parent_id);
            assert_eq!(again.flags, tp.flags);
        }
    }

    let state = TraceState::parse(values.iter().copied());
    if let Some(header) = state.to_header() {
        assert_eq!(TraceState::parse([header.as_str()]), state, "{header:?}");
    }
    let session = values.first().copied().unwrap_or("");
    let stamped = state.with_session(session);
    assert!(stamped.members().len() <= MAX_TRACESTATE_MEMBERS);
    if let Some(header) = stamped.to_header() {
        let again = TraceState::parse([header.as_str()]);
        assert_eq!(again, stamped, "{header:?}");
        if let Some(id) = again.session_id() {
            assert_eq!(id, session, "the session member reads back as another id");
        }
    }
    let _ = state.foreign_members().count();
    let _ = parse_baggage(values.iter().copied());

    let headers: Vec<(String, String)> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let name = [
                "tracestate",
                "baggage",
                "x-softprobe-test-name",
                "x-softprobe-case-id",
            ][i % 4];
            (name.to_owned(), (*v).to_owned())
        })
        .collect();
    let _ = trace_tags_from_headers(&headers);
});
