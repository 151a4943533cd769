//! The softprobe engine: case files, and (as they land) the session store, rules, replay,
//! the control API server and the proxy.
//!
//! Start with [`case`]: a case file is the unit everything else reads and writes. [`rules`]
//! and [`policy`] parse what a session is told; [`replay`] decides what each hop gets.
//! [`session`] holds each session's state, [`server`] serves the control API ([`control`])
//! and the proxy OTLP API ([`otlp`]) over it, and [`capture`] writes capture sessions out.
//!
//! # Where things are
//!
//! - A strict miss is decided, answered (599 and its header) and explained in
//!   `src/replay/miss.rs` ([`replay::MissReport`]); every entry point reports it, with drift
//!   and unused recordings, through [`verdict`].
//! - Header classes (volatile, sensitive, hop-by-hop, not resent, not recorded): [`headers`].
//! - JSON paths (parsing, rendering) and the JSON diff: [`json`]; redaction: [`redact`].
//! - How one outbound hop is answered: [`replay::Engine::decide`]; request drift:
//!   `src/replay/drift.rs` ([`replay::RequestDrift`]).
//!
//! # Features
//!
//! The test harness (`softprobe-test`) embeds the engine with no feature on: case files and
//! their validation (without the JSON Schema engine), rules and policies, sessions, replay,
//! the proxies, capture and the suite model its `#[softprobe::cases]` runs. The rest is
//! opt-in:
//!
//! - `schema`: the JSON Schema engine, [`case::validate::validate_json`] and the schema
//!   findings of [`case::validate::validate_case`]; without it a case is checked by the case
//!   model, the semantic checks and a lean check of what the schema alone would catch;
//! - `server` (turns `schema` on): the standalone runtime's HTTP front, [`server`],
//!   [`control`], [`otlp`] and [`view`] (axum, tower-http, the OTLP protobuf codec), and
//!   [`Runtime`] (server, proxies, CA and capture flush together, what the
//!   `softprobe-runtime` binary runs);
//! - `redis-store`, `object-storage`: sessions in Redis, cases in S3-compatible storage;
//! - `cli` (default): the `softprobe` and `softprobe-runtime` binaries, with all of the above.

pub mod allocator;
pub mod capture;
pub mod case;
pub mod content_coding;
#[cfg(feature = "server")]
pub mod control;
pub mod error;
pub mod grpc;
pub mod headers;
pub mod hop_log;
pub mod json;
mod listener;
pub mod metrics;
pub mod mode;
pub mod multipart;
#[cfg(feature = "server")]
pub mod otlp;
pub mod policy;
pub mod proxy;
pub mod redact;
pub mod replay;
pub mod request;
pub mod rules;
pub mod scrub;
#[cfg(feature = "server")]
pub mod server;
pub mod session;
#[cfg(feature = "server")]
pub mod standalone;
pub mod streaming;
pub mod suite;
pub mod verdict;
#[cfg(feature = "server")]
pub mod view;
pub mod yaml;

#[cfg(feature = "cli")]
pub mod cli;

pub use error::{Error, Result};
pub use mode::Mode;
#[cfg(feature = "server")]
pub use server::{RunningServer, Server, ServerBuilder};
#[cfg(feature = "server")]
pub use standalone::{RunningRuntime, Runtime, RuntimeBuilder, RuntimeError};
