//! Record/replay tests for Rust HTTP services.
//!
//! Put `#[softprobe::case("cases/<scenario>.case.json")]` on a test that starts your service
//! and calls it. Run it once with `SOFTPROBE_MODE=capture cargo test`: every request your test
//! sends to the service and every call the service makes (HTTP and HTTPS) is recorded into the
//! case file, which you commit. Every later `cargo test` (or `cargo nextest run`, in CI, with no
//! network) answers the service's outbound calls from the file and fails when its answers drift
//! from the recording, with a field-by-field diff.
//!
//! ```no_run
//! use softprobe::Session;
//!
//! # mod my_service { pub fn router(_: reqwest::Client) -> axum::Router { axum::Router::new() } }
//! #[softprobe::case("cases/checkout-happy-path.case.json", redact(".body.orderId"))]
//! async fn checkout_happy_path(sp: Session) {
//!     // The service sends its outbound calls through the session's proxy...
//!     let app = my_service::router(sp.http_client());
//!     // ...is served behind the session's ingress...
//!     let base = sp.serve(app).await;
//!     // ...and the test calls it with the session header.
//!     let resp = sp.client().post(format!("{base}/checkout")).send().await.unwrap();
//!     assert!(resp.status().is_success());
//! }
//! # fn main() {}
//! ```
//!
//! One runtime and one egress proxy serve the whole test process (started on first use, on
//! their own threads); each test gets its own session, so tests run in parallel under
//! `cargo test` and each in its own process under `cargo nextest`. Set
//! `SOFTPROBE_RUNTIME_URL` to use a standalone `softprobe-runtime` instead.
//!
//! `#[softprobe::cases("suites/checkout.suite.yaml")]` runs a suite file (the one `softprobe
//! suite run` reads) as one test per case, and [`Session::on_request`],
//! [`Session::on_mock_response`] and [`Session::assert_body`] are the suite's hooks as closures.
//!
//! The attribute reference is in [`attribute_reference`]; [`Session`] lists what a test can do.

/// Snapshot-asserts a response of the service with [insta](https://insta.rs): status, the
/// compared headers it carries (`content-type`, `location`, `cache-control`... and the test's
/// `headers(...)`; cookie names only for `set-cookie`) and body (pretty JSON with the test's
/// `redact(...)` paths replaced).
/// The snapshot lives where insta keeps it, next to the test: `snapshots/<module>__<name>.snap`
/// in the test file's directory (or where the bound insta `Settings` say), never beside the
/// case; its header names the assertion (`expression: assert_response!(sp, "checkout", resp)`).
/// In replay mode `cargo insta review` and `INSTA_UPDATE` work as usual. In capture mode
/// (`SOFTPROBE_MODE=capture`) the snapshot is written, over any older one, when the test
/// passes: a recording run records the answers along with the case.
///
/// ```no_run
/// #[softprobe::case("cases/checkout.case.json", redact(".body.orderId"))]
/// async fn checkout(sp: softprobe::Session) {
///     let resp = sp.client().get("http://127.0.0.1:8082/checkout").send().await.unwrap();
///     softprobe::assert_response!(sp, "checkout", resp);
/// }
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! assert_response {
    ($sp:expr, $name:expr, $resp:expr $(,)?) => {{
        let __softprobe_sp: &$crate::Session = &$sp;
        let __softprobe_name = $name;
        let __softprobe_name: &str = ::core::convert::AsRef::<str>::as_ref(&__softprobe_name);
        let __softprobe_text = $crate::__private::response_snapshot(__softprobe_sp, $resp).await;
        let __softprobe_workspace = $crate::__private::insta::_get_workspace_root!();
        // What the snapshot header names: the assertion as written.
        let __softprobe_expression = ::core::concat!(
            "assert_response!(",
            ::core::stringify!($sp),
            ", ",
            ::core::stringify!($name),
            ", ",
            ::core::stringify!($resp),
            ")"
        );
        let __softprobe_site = $crate::__private::SnapshotSite {
            workspace: __softprobe_workspace.as_path(),
            module_path: ::core::module_path!(),
            file: ::core::file!(),
            name: __softprobe_name,
            expression: __softprobe_expression,
        };
        if !$crate::__private::capture_snapshot(__softprobe_sp, &__softprobe_text, __softprobe_site)
        {
            $crate::__private::insta::assert_snapshot!(
                __softprobe_name,
                __softprobe_text,
                __softprobe_expression
            );
        }
    }};
}

/// The reference of `#[softprobe::case]` and `#[softprobe::cases]`.
#[doc = include_str!("../docs/attribute.md")]
pub mod attribute_reference {}

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;
mod clients;
mod control;
mod embedded;
mod error;
mod file_stamp;
mod hooks;
mod mode;
mod proxy_env;
mod run;
mod scenario;
mod served;
mod session;
mod suite_case;
mod verify;

pub use embedded::trust_upstream_ca;
pub use error::{Error, Result};
pub use hooks::{InboundRequest, MockResponse, OutboundCall, ResponseBody};
pub use mode::Mode;
pub use proxy_env::ProxyEnv;
/// The reqwest (0.13) that [`Session::http_client`] and [`Session::client`] return: name
/// `softprobe::reqwest::Client` in your service's configuration and the types always agree,
/// whichever reqwest version your own crate depends on.
pub use reqwest;
pub use run::{Failure, Run};
pub use session::{CaseView, Session};
pub use softprobe_macros::{case, cases};
pub use softprobe_runtime as runtime;
/// The typed verdict of a replay, as [`Failure::verdict`] returns it.
pub use softprobe_runtime::verdict::{Finding, Verdict};
