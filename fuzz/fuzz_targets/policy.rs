//! Policy documents: the reader and the validator never panic; a policy that reads is
//! written back and reads again the same; it decides the checkout fixture's hops and host
//! checks without panic.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use softprobe_fuzz::{check_report, fixture};
use softprobe_runtime::Mode;
use softprobe_runtime::case::validate::validate_policy;
use softprobe_runtime::case::{Case, Exchange};
use softprobe_runtime::policy::parse_policy;
use softprobe_runtime::replay::{Engine, Request};

fn checkout() -> &'static (Arc<Case>, Vec<Exchange>) {
    static CASE: OnceLock<(Arc<Case>, Vec<Exchange>)> = OnceLock::new();
    CASE.get_or_init(|| {
        let case = Case::from_slice(&fixture("cases/checkout.case.json")).unwrap();
        let exchanges = case.exchanges().unwrap();
        (Arc::new(case), exchanges)
    })
}

fuzz_target!(|data: &[u8]| {
    check_report(&validate_policy(data, "fuzz.policy"));
    let Ok(policy) = parse_policy(data, "fuzz.policy") else {
        return;
    };
    let written = serde_json::to_vec(&policy).unwrap();
    let again = parse_policy(&written, "rewritten.json").unwrap_or_else(|e| {
        panic!(
            "a policy written back does not read: {e}\n{}",
            String::from_utf8_lossy(&written)
        )
    });
    assert_eq!(
        serde_json::to_vec(&again).unwrap(),
        written,
        "writing a policy back is not stable"
    );

    let (case, exchanges) = checkout();
    let mut engine = Engine::new(Mode::Replay);
    engine
        .load_case(case.clone(), "checkout.case.json")
        .unwrap();
    engine.set_policy(policy);
    for ex in exchanges {
        let _ = engine.policy().blocks(&ex.host);
        let _ = engine.policy().allowlisted(&ex.host);
        let _ = engine
            .decide(&Request::from_exchange(ex))
            .local_response("sess_fuzz");
    }
});
