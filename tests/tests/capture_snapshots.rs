//! `softprobe::assert_response!` in both modes: a capture run writes (or overwrites) the insta
//! snapshot of each asserted response when the test passes, with no `INSTA_UPDATE` needed; a
//! replay compares against it the way insta always does.

use softprobe::{Mode, Run, Session};
use softprobe_e2e::{Upstreams, Variant, checkout_app, free_port, post_checkout};

/// Runs the checkout once in `mode` and snapshot-asserts its answer as `checkout`; the body
/// fails after the assertion when `fail_after` is set.
fn run(
    case: &std::path::Path,
    mode: Mode,
    variant: Variant,
    ports: (u16, u16),
    fail_after: bool,
) -> Result<(), softprobe::Failure> {
    Run::new(case)
        .mode(mode)
        .redact([".body.orderId", ".body.createdAt"])
        .name("capture_snapshots::run")
        .run(move |sp: Session| async move {
            let _upstreams = match sp.mode() {
                Mode::Capture => Some(Upstreams::start(ports.0, ports.1).await),
                _ => None,
            };
            let base = sp
                .serve(checkout_app(sp.http_client(), ports, variant))
                .await;
            let resp = post_checkout(&sp.client(), &base).await;
            softprobe::assert_response!(sp, "checkout", resp);
            if fail_after {
                return Err("the test body failed after its assertion");
            }
            Ok(())
        })
}

#[test]
fn capture_writes_the_snapshot_and_replay_compares_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let case = dir.path().join("checkout.case.json");
    let snaps = dir.path().join("snapshots");
    let snap = snaps.join("capture_snapshots__checkout.snap");
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(&snaps);
    let _bound = settings.bind_to_scope();
    let ports = (free_port(), free_port());
    let read = || std::fs::read_to_string(&snap).unwrap();

    // A first recording creates the snapshot, redactions applied.
    run(&case, Mode::Capture, Variant::Recorded, ports, false).expect("capture");
    let first = read();
    assert!(first.starts_with("---\nsource: "), "{first}");
    assert!(
        first.contains("expression: assert_response!(sp, \"checkout\", resp)\n---\nstatus: 200\n"),
        "{first}"
    );
    assert!(first.contains("\"total\": 1499"), "{first}");
    assert!(first.contains("\"orderId\": \"[REDACTED]\""), "{first}");

    // Recording again overwrites it, with no INSTA_UPDATE and no review.
    run(&case, Mode::Capture, Variant::ExtraFee, ports, false).expect("second capture");
    let second = read();
    assert!(second.contains("\"total\": 1549"), "{second}");
    assert!(!snap.with_extension("snap.new").exists());

    // A capture whose test fails writes neither the case nor the snapshot.
    let failure =
        run(&case, Mode::Capture, Variant::Recorded, ports, true).expect_err("the body failed");
    assert!(
        failure.report().contains("and so are its 1 snapshot(s)"),
        "{failure}"
    );
    assert_eq!(read(), second);

    // A replay reads the snapshot with insta: the recorded behaviour passes offline...
    run(&case, Mode::Replay, Variant::ExtraFee, ports, false).expect("replay matches");

    // ...and another answer fails insta's assertion, leaving the snapshot as it was.
    let update = std::env::var("INSTA_UPDATE").unwrap_or_default();
    if !matches!(update.as_str(), "always" | "1" | "force") {
        let panic = std::panic::catch_unwind(|| {
            let _ = run(&case, Mode::Replay, Variant::Recorded, ports, false);
        })
        .expect_err("insta fails the replay");
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default();
        assert!(
            message.contains("snapshot assertion for 'checkout' failed"),
            "{message}"
        );
        assert_eq!(read(), second);
    }
}
