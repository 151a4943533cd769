//! The whole life of a case, through the public API: capture the checkout service against
//! real local upstreams (HTTPS payments, HTTP shipping), replay it with the upstreams gone,
//! then change the service and read the failure a person would read.

use softprobe::{Mode, Run, Session};
use softprobe_e2e::{Upstreams, Variant, checkout_app, free_port, post_checkout};
use softprobe_runtime::case::{Case, Direction, validate::validate_case};

async fn checkout(sp: &Session, variant: Variant, ports: (u16, u16)) -> reqwest::Response {
    let app = checkout_app(sp.http_client(), ports, variant);
    let base = sp.serve(app).await;
    post_checkout(&sp.client(), &base).await
}

fn replay(
    path: &std::path::Path,
    variant: Variant,
    ports: (u16, u16),
) -> Result<(), softprobe::Failure> {
    Run::new(path)
        .mode(Mode::Replay)
        .redact([".body.orderId", ".body.createdAt"])
        .name("capture_replay_cycle::replay")
        .run(move |sp: Session| async move {
            let _ = checkout(&sp, variant, ports).await;
        })
}

#[test]
fn capture_then_replay_offline_then_fail_with_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cases/checkout.case.json");
    let ports = (free_port(), free_port());

    // Capture against real upstreams.
    Run::new(&path)
        .mode(Mode::Capture)
        .name("capture_replay_cycle::capture")
        .run(move |sp: Session| async move {
            let _upstreams = Upstreams::start(ports.0, ports.1).await;
            let resp = checkout(&sp, Variant::Recorded, ports).await;
            assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
        })
        .expect("the capture run passes");

    // The written case is valid, links its hops in one trace, and holds no credential.
    let bytes = std::fs::read(&path).unwrap();
    let report = validate_case(&bytes, "captured");
    assert!(report.is_valid(), "{report}");
    let text = String::from_utf8(bytes).unwrap();
    assert!(
        !text.contains("sk_test_4eC39"),
        "the bearer token was redacted"
    );
    let case = Case::read(&path).unwrap();
    let hops = case.exchanges().unwrap();
    let inbound: Vec<_> = hops
        .iter()
        .filter(|h| h.direction == Direction::Inbound)
        .collect();
    let outbound: Vec<_> = hops
        .iter()
        .filter(|h| h.direction == Direction::Outbound)
        .collect();
    assert_eq!(inbound.len(), 1, "{hops:#?}");
    assert_eq!(outbound.len(), 2, "{hops:#?}");
    let urls: Vec<String> = outbound.iter().map(|h| h.url()).collect();
    assert!(
        urls.iter()
            .any(|u| u.ends_with("/v1/payment_intents") && u.starts_with("https://localhost:")),
        "{urls:?}"
    );
    assert!(
        urls.iter().any(|u| u.contains("/shipping?zip=94107")),
        "{urls:?}"
    );
    for hop in &outbound {
        assert_eq!(hop.trace_id, inbound[0].trace_id, "one trace");
        assert_eq!(
            hop.parent_span_id,
            Some(inbound[0].span_id),
            "children of the inbound span"
        );
    }

    // Replay with nothing listening on the upstream ports.
    replay(&path, Variant::Recorded, ports).expect("the replay passes offline");

    // A changed response fails with a field-by-field diff and the evidence file.
    let failure = replay(&path, Variant::ExtraFee, ports).expect_err("drift must fail");
    let report = failure.report();
    assert!(
        report.contains("inbound POST /checkout: the response differs from the recording"),
        "{report}"
    );
    assert!(
        report.contains("body $.total:\n      - recorded: 1499\n      + actual:   1549"),
        "{report}"
    );
    let evidence_path = path.with_extension("json.capture_replay_cycle__replay.new");
    assert!(
        report.contains(&evidence_path.display().to_string()),
        "{report}"
    );
    let evidence = Case::read(&evidence_path).unwrap();
    assert_eq!(evidence.exchanges().unwrap().len(), 3);

    // Another test sharing the case keeps its own evidence.
    let other = Run::new(&path)
        .mode(Mode::Replay)
        .redact([".body.orderId", ".body.createdAt"])
        .name("capture_replay_cycle::other")
        .run(move |sp: Session| async move {
            let _ = checkout(&sp, Variant::ExtraFee, ports).await;
        });
    assert!(other.is_err());
    let other_evidence = path.with_extension("json.capture_replay_cycle__other.new");
    assert!(other_evidence.exists() && evidence_path.exists());

    // The change is intended: review accepts the replay's evidence as the case, and the same
    // service now replays green.
    let review = |args: &[&str]| {
        let mut argv = vec!["softprobe", "review"];
        argv.extend_from_slice(args);
        softprobe_runtime::cli::run(<softprobe_runtime::cli::Cli as clap::Parser>::parse_from(
            argv,
        ))
    };
    assert_eq!(
        review(&["--accept-all", evidence_path.to_str().unwrap()]),
        0
    );
    assert!(
        !evidence_path.exists(),
        "accepted evidence moves over the case"
    );
    replay(&path, Variant::ExtraFee, ports).expect("the accepted case replays the new total");
    // The other test's evidence is stale once it passes.
    let other = Run::new(&path)
        .mode(Mode::Replay)
        .redact([".body.orderId", ".body.createdAt"])
        .name("capture_replay_cycle::other")
        .run(move |sp: Session| async move {
            let _ = checkout(&sp, Variant::ExtraFee, ports).await;
        });
    assert!(other.is_ok(), "{other:?}");
    assert!(
        !other_evidence.exists(),
        "a passing test removes its evidence"
    );

    // A call the case never saw names the nearest recording and what differed.
    let failure = replay(&path, Variant::OtherZip, ports).expect_err("a miss must fail");
    let report = failure.report();
    assert!(report.contains("GET http://127.0.0.1:"), "{report}");
    assert!(report.contains("/shipping?zip=10001"), "{report}");
    assert!(
        report.contains("zip=94107"),
        "the nearest candidate is shown: {report}"
    );
    assert!(
        report.contains("query"),
        "the differing field is named: {report}"
    );
}

#[test]
fn repeated_identical_calls_replay_in_recorded_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stock.case.json");
    let ports = (free_port(), free_port());
    let poll = move |sp: Session| async move {
        let base = sp
            .serve(checkout_app(sp.http_client(), ports, Variant::Recorded))
            .await;
        let body: serde_json::Value = sp
            .client()
            .get(format!("{base}/stock/sku-1"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body["polls"], serde_json::json!([12, 7, 0]), "{body}");
    };
    Run::new(&path)
        .mode(Mode::Capture)
        .run(move |sp: Session| async move {
            let _upstreams = Upstreams::start(ports.0, ports.1).await;
            poll(sp).await;
        })
        .expect("capture");
    Run::new(&path)
        .run(poll)
        .expect("replay answers 12, 7, 0 in order");
}
