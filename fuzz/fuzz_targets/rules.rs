//! Rules documents (JSON or YAML): the reader and the validator never panic; rules that read
//! are written back and read again to the same JSON; and they decide every hop of the
//! checkout fixture through the replay engine (matcher, JSONPath, redaction) without panic.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use softprobe_fuzz::{check_report, fixture};
use softprobe_runtime::Mode;
use softprobe_runtime::case::validate::validate_rules;
use softprobe_runtime::case::{Case, Exchange};
use softprobe_runtime::replay::{Engine, Request};
use softprobe_runtime::rules::{parse_rules_document, rules_from_values};

fn checkout() -> &'static (Arc<Case>, Vec<Exchange>) {
    static CASE: OnceLock<(Arc<Case>, Vec<Exchange>)> = OnceLock::new();
    CASE.get_or_init(|| {
        let case = Case::from_slice(&fixture("cases/checkout.case.json")).unwrap();
        let exchanges = case.exchanges().unwrap();
        (Arc::new(case), exchanges)
    })
}

fuzz_target!(|data: &[u8]| {
    check_report(&validate_rules(data, "fuzz.rules"));
    let Ok(rules) = parse_rules_document(data, "fuzz.rules") else {
        return;
    };
    let written: Vec<_> = rules.iter().map(|r| r.to_json()).collect();
    let again = rules_from_values(&written, "rewritten", "$")
        .unwrap_or_else(|e| panic!("rules written back do not read: {e}\n{written:?}"));
    let rewritten: Vec<_> = again.iter().map(|r| r.to_json()).collect();
    assert_eq!(rewritten, written, "writing rules back is not stable");

    let (case, exchanges) = checkout();
    let mut engine = Engine::new(Mode::Replay);
    engine
        .load_case(case.clone(), "checkout.case.json")
        .unwrap();
    engine.set_session_rules(rules);
    for ex in exchanges {
        let req = Request::from_exchange(ex);
        let _ = engine.decide(&req).local_response("sess_fuzz");
        let mut hop = ex.clone();
        engine.capture_redaction(&req).apply(&mut hop);
    }
});
