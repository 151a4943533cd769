//! Record/replay tests for Rust HTTP services.
//!
//! ```ignore
//! #[softprobe::case("cases/checkout-happy-path.case.json")]
//! async fn checkout_happy_path(sp: softprobe::Session) {
//!     // drive your service; outbound calls are captured once, then replayed from the file
//! }
//! ```
//!
//! The mode comes from the attribute's `mode = "..."`, else `SOFTPROBE_MODE` (`replay`, the
//! default; `capture`; `auto`). A missing case in replay mode fails with the exact command that
//! records it.

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;
mod embedded;
mod error;
mod mode;
mod run;
mod session;
mod verify;

pub use embedded::trust_upstream_ca;
pub use error::{Error, Result};
pub use mode::Mode;
pub use run::{Failure, Run};
pub use session::{CaseView, Session};
pub use softprobe_macros::{case, cases};
pub use softprobe_runtime as runtime;
