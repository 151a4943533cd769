//! The YAML reading `softprobe-runtime` and `softprobe-macros` share, in one place.
//!
//! - [`document`]: a YAML document as a tree of values (YAML 1.2 core schema, mappings in
//!   document order) and the line and column of every JSON path ([`document::Locator`]),
//!   from `saphyr-parser`'s events and spans; with the `json` feature, the same document as
//!   a `serde_json` value and as JSON text in document order.
//! - [`path`]: the JSON path syntax those positions are keyed by (`$.cases[1].path`).
//! - [`vars`]: a suite's `${VAR}`, `${VAR:-default}` and `$$`.
//! - [`cases`]: which case files a suite's `cases` entries name, under which names.
//!
//! Why a crate of its own: the macro lists a suite's case files when the test compiles and
//! the runtime plans the same suite when it runs; both must read the YAML and list the files
//! alike, and the macro must not depend on the runtime (every user's test build would compile
//! the runtime's server stack for a proc macro). This crate depends on `saphyr-parser` and
//! `glob`, plus `serde_json` with the `json` feature, which the runtime enables and the macro
//! does not: a proc macro's dependencies are compiled apart from the test's own, so every
//! crate the macro needs is compiled twice in a user's test build.

pub mod cases;
pub mod document;
pub mod path;
pub mod vars;
