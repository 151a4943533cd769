//! `#[softprobe::cases("suites/*.suite.yaml")]`: one generated test per case of a suite, each
//! run with the suite's request overrides, mocks, executable hooks, policy and assertions
//! against the checkout service, failing with the same text as `softprobe suite run`.

use softprobe::Session;
use softprobe_e2e::{RECORDED_PORTS, Variant, checkout_app};

async fn checkout_service(sp: &Session) -> String {
    sp.serve(checkout_app(
        sp.http_client(),
        RECORDED_PORTS,
        Variant::Recorded,
    ))
    .await
}

#[softprobe::cases("suites/checkout.suite.yaml")]
async fn checkout(sp: Session) -> String {
    checkout_service(&sp).await
}

// The suite mocks shipping at 999: the total drifts, and the failure shows the suite's diff.
#[softprobe::cases("suites/checkout-drift.suite.yaml")]
#[should_panic(
    expected = "body: body differs from the captured one (json-subset, 2 difference(s))\n\
- $.shipping: 499\n+ $.shipping: 999\n- $.total: 1499\n+ $.total: 1999\n"
)]
async fn checkout_drift(sp: Session) -> String {
    checkout_service(&sp).await
}

// A body check added in Rust joins the suite's own: its message is part of each case's failure.
#[softprobe::cases("suites/checkout-drift.suite.yaml")]
#[should_panic(expected = "assert_body: total 1999 is over budget\n")]
async fn checkout_budget(sp: Session) -> String {
    sp.assert_body(|_recorded, actual| match actual.json() {
        Some(body) if body["total"].as_i64().is_some_and(|t| t > 1500) => {
            Err(format!("total {} is over budget", body["total"]))
        }
        _ => Ok(()),
    });
    checkout_service(&sp).await
}

// The original runner's format, unchanged: TypeScript and JavaScript hooks from the suite's
// `hooks` list, a request entirely from the suite, an inline 503 override.
#[softprobe::cases("suites/original.suite.yaml")]
async fn original(sp: Session) -> String {
    checkout_service(&sp).await
}

// A custom TypeScript body check the recorded service fails, with its issue as the message.
#[softprobe::cases("suites/original-carrier.suite.yaml")]
#[should_panic(expected = "carrierIsFedex (")]
async fn original_carrier(sp: Session) -> String {
    checkout_service(&sp).await
}

// `cases` use a `${VAR}`: one test lists the cases with the run's environment and runs them
// (here with the default, the checkout cases).
#[softprobe::cases("suites/env-cases.suite.yaml")]
async fn env_suite(sp: Session) -> String {
    checkout_service(&sp).await
}

#[softprobe::cases("suites/env-required.suite.yaml")]
#[should_panic(
    expected = "env-required.suite.yaml:4: variable SOFTPROBE_E2E_REQUIRED_DIR is not set"
)]
async fn env_suite_unset(sp: Session) -> String {
    checkout_service(&sp).await
}

// A case listed at run time that fails: the test names it and shows the suite's diff.
#[softprobe::cases("suites/env-drift.suite.yaml")]
#[should_panic(
    expected = "env-drift.suite.yaml) failed:\n\nsoftprobe: suite \"env-drift\", case \"dearer-shipping\""
)]
async fn env_suite_drift(sp: Session) -> String {
    checkout_service(&sp).await
}

/// The tests of this binary whose name contains `filter`, sorted, as libtest lists them.
fn tests_named(filter: &str) -> Vec<String> {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--list", "--format", "terse", filter])
        .output()
        .unwrap();
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_suffix(": test"))
        .map(str::to_owned)
        .collect();
    names.sort_unstable();
    names
}

#[test]
fn suite_variables_are_read_when_the_tests_run() {
    assert_eq!(
        tests_named("env_suite"),
        [
            "env_suite::all_cases",
            "env_suite_drift::all_cases",
            "env_suite_unset::all_cases"
        ]
    );

    // The same binary, run with the variable naming a directory without cases: the listing
    // happens now, with this environment, not when the test was compiled.
    let empty = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["env_suite::all_cases", "--exact", "--nocapture"])
        .env("SOFTPROBE_E2E_CASE_DIR", empty.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    let looked_for = format!(
        "matches no file (looked for {}/*.case.json)",
        empty.path().display()
    );
    assert!(stderr.contains(&looked_for), "{stdout}\n{stderr}");
}

#[test]
fn every_suite_case_has_its_own_test() {
    // Names come from the suite (`name`, else the file stem), as `softprobe suite run` shows
    // them; the list is what libtest (and nextest) see in this very binary.
    assert_eq!(
        tests_named("checkout"),
        [
            "checkout::__case_files_current",
            "checkout::fedex_by_hook",
            "checkout::happy_path",
            "checkout::rejects_lowercase_currency",
            "checkout::slow_shipping",
            "checkout_budget::__case_files_current",
            "checkout_budget::dearer_shipping",
            "checkout_drift::__case_files_current",
            "checkout_drift::dearer_shipping",
        ]
    );
}
