//! Every signature `#[softprobe::case]` accepts compiles and runs, and failures carry the
//! evidence a person needs.

use std::sync::atomic::{AtomicUsize, Ordering};

static RAN: AtomicUsize = AtomicUsize::new(0);

#[softprobe::case("tests/cases/empty.case.json", mode = "replay")]
fn sync_without_session() {
    RAN.fetch_add(1, Ordering::SeqCst);
}

#[softprobe::case("tests/cases/empty.case.json", mode = "replay")]
fn sync_with_session(sp: softprobe::Session) {
    assert_eq!(sp.mode(), softprobe::Mode::Replay);
    assert!(sp.case_path().ends_with("tests/cases/empty.case.json"));
    assert!(sp.case_path().is_absolute());
    assert_eq!(sp.test_name(), "attribute_signatures::sync_with_session");
}

#[softprobe::case("tests/cases/empty.case.json", mode = "replay")]
async fn async_without_session() {
    // The body runs inside a tokio runtime with timers enabled.
    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
}

#[softprobe::case("tests/cases/empty.case.json", mode = "replay")]
async fn async_with_session(sp: softprobe::Session) -> Result<(), String> {
    if sp.mode() == softprobe::Mode::Replay {
        Ok(())
    } else {
        Err(format!("unexpected mode {}", sp.mode()))
    }
}

#[softprobe::case("tests/cases/empty.case.json", mode = "replay")]
#[should_panic(expected = "returned an error: \"payment declined\"")]
async fn an_error_result_fails_the_test_with_its_debug_text() -> Result<(), String> {
    Err("payment declined".to_owned())
}

#[softprobe::case("tests/cases/not-recorded-yet.case.json", mode = "replay")]
#[should_panic(
    expected = "Record it with:\n  SOFTPROBE_MODE=capture cargo test -p softprobe-test -- a_missing_case_names_the_command_that_records_it --exact"
)]
fn a_missing_case_names_the_command_that_records_it() {}

#[softprobe::case(
    "tests/cases/empty.case.json",
    mode = "replay",
    redact(".body.id", "header:date")
)]
fn options_are_accepted(sp: softprobe::Session) {
    RAN.fetch_add(1, Ordering::SeqCst);
    assert_eq!(sp.mode(), softprobe::Mode::Replay);
}

/// A service configured with `softprobe::reqwest::Client` takes the session's clients as they
/// are: the re-export is the reqwest the session is built on (this fails to compile if not).
#[softprobe::case("tests/cases/empty.case.json", mode = "replay")]
fn the_reexported_reqwest_is_the_sessions(sp: softprobe::Session) {
    struct ServiceConfig {
        http: softprobe::reqwest::Client,
    }
    let config = ServiceConfig {
        http: sp.http_client(),
    };
    let _: softprobe::reqwest::Client = sp.client();
    let _: softprobe::reqwest::ClientBuilder = sp.http_client_builder();
    drop(config.http);
}
