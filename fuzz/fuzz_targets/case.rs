//! Case files: the validator and the case model's reader must never panic, every finding
//! must be located, a file the validator accepts must be readable hop by hop, and whatever
//! the reader accepts must survive a canonical rewrite unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use softprobe_fuzz::check_report;
use softprobe_runtime::case::Case;
use softprobe_runtime::case::validate::{validate_case, validate_trace};

fuzz_target!(|data: &[u8]| {
    let report = validate_case(data, "fuzz.case.json");
    check_report(&report);
    check_report(&validate_trace(data, "fuzz.trace.json"));

    let parsed = Case::from_slice_named(data, "fuzz.case.json");
    if report.is_valid() {
        let case = parsed
            .as_ref()
            .unwrap_or_else(|e| panic!("valid per the validator, unreadable: {e}"));
        if let Err(e) = case.exchanges() {
            panic!("valid per the validator, but a span is not a hop: {e}");
        }
    }
    let Ok(case) = parsed else { return };
    let bytes = case.to_json_bytes();
    let again = Case::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("the canonical rewrite does not read back: {e}"));
    assert_eq!(again.to_json_bytes(), bytes, "canonical form is not stable");
    // Reading hops must not panic, whether or not every span is one.
    if let Ok(exchanges) = case.exchanges() {
        let mut rebuilt = Case::new("fuzz", "2026-01-01T00:00:00Z");
        rebuilt.push_exchanges(&exchanges);
        let back = rebuilt
            .exchanges()
            .unwrap_or_else(|e| panic!("hops written by the case model do not read back: {e}"));
        assert_eq!(back.len(), exchanges.len());
    }
});
