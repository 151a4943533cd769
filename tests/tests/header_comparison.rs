//! Response headers in the replay verdict: the default set (`content-type`, `location`,
//! `cache-control`...) is always compared, a test adds its own with `headers(...)` on the
//! attribute or `Run::headers`, and volatile ones (`date`, `x-request-id`) never count.
//! `cases/headers/listing.case.json` was recorded with
//! `SOFTPROBE_MODE=capture cargo test -p softprobe-e2e --test header_comparison`.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use softprobe::{Mode, Run, Session};
use std::sync::atomic::{AtomicU32, Ordering};

/// Makes `x-request-id` differ on every answer, as a real service's does.
static NEXT_ID: AtomicU32 = AtomicU32::new(1);

/// A listing service with no upstream: what varies between runs is its headers.
#[derive(Debug, Clone, Copy)]
struct Listing {
    total: u32,
    cache: &'static str,
}

fn listing(l: Listing) -> Router {
    Router::new().route(
        "/orders",
        get(move || async move {
            (
                [
                    (header::CACHE_CONTROL, l.cache.to_owned()),
                    (
                        header::HeaderName::from_static("x-total-count"),
                        l.total.to_string(),
                    ),
                    (
                        header::HeaderName::from_static("x-request-id"),
                        format!("req-{}", NEXT_ID.fetch_add(1, Ordering::Relaxed)),
                    ),
                ],
                axum::Json(serde_json::json!({"orders": ["o1", "o2"]})),
            )
                .into_response()
        }),
    )
}

const RECORDED: Listing = Listing {
    total: 3,
    cache: "max-age=60",
};

async fn list(sp: &Session, l: Listing) {
    let base = sp.serve(listing(l)).await;
    let resp = sp
        .client()
        .get(format!("{base}/orders"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[softprobe::case("cases/headers/listing.case.json", headers("x-total-count"))]
async fn the_recorded_listing_replays(sp: Session) {
    list(&sp, RECORDED).await;
}

#[softprobe::case(
    "cases/headers/listing.case.json",
    mode = "replay",
    headers("X-Total-Count")
)]
#[should_panic(expected = "header:x-total-count:\n      - recorded: 3\n      + actual:   4")]
async fn an_added_header_that_drifts_fails_the_replay(sp: Session) {
    list(
        &sp,
        Listing {
            total: 4,
            ..RECORDED
        },
    )
    .await;
}

#[softprobe::case("cases/headers/listing.case.json", mode = "replay")]
async fn a_header_not_asked_for_is_not_compared(sp: Session) {
    list(
        &sp,
        Listing {
            total: 4,
            ..RECORDED
        },
    )
    .await;
}

#[test]
fn default_headers_drift_added_ones_on_request_volatile_ones_never() {
    let dir = tempfile::tempdir().unwrap();
    let case = dir.path().join("listing.case.json");
    let run = |mode: Mode, l: Listing, headers: &[&str]| {
        Run::new(&case)
            .mode(mode)
            .headers(headers.iter().copied())
            .name("header_comparison::run")
            .run(move |sp: Session| async move { list(&sp, l).await })
    };
    run(Mode::Capture, RECORDED, &[]).expect("capture");
    // x-request-id differs on every answer and is never compared.
    run(Mode::Replay, RECORDED, &["x-total-count"]).expect("same answer");

    let failure = run(
        Mode::Replay,
        Listing {
            cache: "no-store",
            ..RECORDED
        },
        &[],
    )
    .expect_err("cache-control is compared by default");
    assert!(
        failure.report().contains(
            "header:cache-control:\n      - recorded: max-age=60\n      + actual:   no-store"
        ),
        "{failure}"
    );

    let changed = Listing {
        total: 9,
        ..RECORDED
    };
    run(Mode::Replay, changed, &[]).expect("x-total-count is not compared unless asked for");
    let failure = run(Mode::Replay, changed, &["x-total-count"]).expect_err("asked for");
    assert!(
        failure
            .report()
            .contains("header:x-total-count:\n      - recorded: 3\n      + actual:   9"),
        "{failure}"
    );

    let failure = run(Mode::Replay, RECORDED, &["date"]).expect_err("volatile");
    assert!(
        failure
            .report()
            .contains("headers(...): the header \"date\" changes on every run"),
        "{failure}"
    );
}

/// `#[softprobe::cases]` resends the recorded request and compares the added header too.
#[softprobe::cases("cases/headers/*.case.json", headers("x-total-count"))]
async fn listing_cases(sp: Session) -> String {
    sp.serve(listing(RECORDED)).await
}

/// Whether a header may be compared is decided at run time, for `#[softprobe::cases]` as
/// for `#[softprobe::case]`.
#[softprobe::cases("cases/headers/*.case.json", headers("traceparent"))]
#[should_panic(expected = "headers(...): the header \"traceparent\" changes on every run")]
async fn listing_cases_asking_for_a_volatile_header(sp: Session) -> String {
    sp.serve(listing(RECORDED)).await
}

#[softprobe::cases("cases/headers/*.case.json", headers("x-total-count"))]
#[should_panic(expected = "header:x-total-count:\n      - recorded: 3\n      + actual:   5")]
async fn listing_cases_with_a_drifting_total(sp: Session) -> String {
    sp.serve(listing(Listing {
        total: 5,
        ..RECORDED
    }))
    .await
}
