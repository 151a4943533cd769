//! Many case tests at once in one process share the embedded runtime and egress proxy
//! without cross-talk: each sees only its own session's hops and its own verdict.

use softprobe::{Mode, Run, Session};
use softprobe_e2e::{RECORDED_PORTS, Variant, checkout_app, post_checkout};

const CASE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/cases/checkout-happy-path.case.json"
);

fn run(variant: Variant, n: usize) -> Result<(), softprobe::Failure> {
    Run::new(CASE)
        .mode(Mode::Replay)
        .redact([".body.orderId", ".body.createdAt"])
        .name(format!("parallel_sessions::{n}"))
        .run(move |sp: Session| async move {
            let base = sp
                .serve(checkout_app(sp.http_client(), RECORDED_PORTS, variant))
                .await;
            let resp = post_checkout(&sp.client(), &base).await;
            let _ = resp.bytes().await;
        })
}

#[test]
fn fifty_replays_in_parallel_each_get_their_own_verdict() {
    let handles: Vec<_> = (0..50)
        .map(|n| {
            // Every third test drifts; only those may fail, and each for its own reason.
            let variant = if n % 3 == 0 {
                Variant::ExtraFee
            } else {
                Variant::Recorded
            };
            std::thread::spawn(move || (n, variant, run(variant, n)))
        })
        .collect();
    for handle in handles {
        let (n, variant, verdict) = handle.join().unwrap();
        match (variant, verdict) {
            (Variant::Recorded, Ok(())) => {}
            (Variant::ExtraFee, Err(failure)) => {
                let report = failure.report();
                assert!(
                    report.contains(&format!("parallel_sessions::{n} does not replay")),
                    "{report}"
                );
                assert!(report.contains("+ actual:   1549"), "{report}");
                // Exactly one inbound request: nobody else's traffic leaked into this session.
                assert_eq!(
                    report.matches("inbound POST /checkout").count(),
                    1,
                    "{report}"
                );
            }
            (variant, verdict) => panic!("test {n} ({variant:?}): unexpected verdict {verdict:?}"),
        }
    }
}
