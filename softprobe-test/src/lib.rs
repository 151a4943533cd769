//! Record/replay tests for Rust HTTP services.
//!
//! The harness itself arrives with the `#[softprobe::case]` attribute; today this crate
//! re-exports the engine so that case files can be read and validated from tests.

pub use softprobe_runtime as runtime;
