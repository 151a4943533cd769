//! Row 6: reading a 1 MiB case into the replay index (typed parse, hop extraction, rule and
//! path index) against serde_json reading the same bytes into an untyped `Value`.

use std::sync::Arc;
use std::time::Instant;

use softprobe_runtime::case::Case;
use softprobe_runtime::replay::Engine;

use crate::support::Samples;

/// Parse-and-index time of ours and of `serde_json::Value`, `iterations` each, interleaved.
pub(crate) fn run(bytes: &[u8], iterations: usize) -> (Samples, Samples) {
    let (mut ours, mut peer) = (Samples::default(), Samples::default());
    for i in 0..iterations + 2 {
        let start = Instant::now();
        let case = Case::from_slice_named(bytes, "bench-1mib.case.json").expect("the case parses");
        let mut engine = Engine::new(softprobe_runtime::Mode::Replay);
        engine
            .load_case(Arc::new(case), "bench-1mib.case.json")
            .expect("the case indexes");
        let d = start.elapsed();
        assert!(!engine.case_exchanges().is_empty());
        drop(engine);
        // The first two of each side warm caches and the allocator.
        if i >= 2 {
            ours.push(d);
        }

        let start = Instant::now();
        let value: serde_json::Value = serde_json::from_slice(bytes).expect("valid JSON");
        let d = start.elapsed();
        assert!(value.is_object());
        drop(value);
        if i >= 2 {
            peer.push(d);
        }
    }
    (ours, peer)
}
