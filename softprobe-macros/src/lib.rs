//! Procedural macros behind `#[softprobe::case]`.
//!
//! They parse, validate and expand only: every behaviour (modes, the embedded runtime,
//! snapshots, miss reports) lives in the `softprobe` crate behind
//! `softprobe::__private::run_case_with`. Use them through `softprobe`, not directly.

mod case_attr;
mod cases_attr;
mod suite_plan;

use proc_macro::TokenStream;

/// Turns a function into a record/replay test of one case file. See the `softprobe` crate.
#[proc_macro_attribute]
pub fn case(args: TokenStream, item: TokenStream) -> TokenStream {
    case_attr::expand(args.into(), item.into()).into()
}

/// One replay test per case file matching a glob, or per case of a `*.suite.yaml`; see the
/// `softprobe` crate.
#[proc_macro_attribute]
pub fn cases(args: TokenStream, item: TokenStream) -> TokenStream {
    cases_attr::expand(args.into(), item.into()).into()
}
