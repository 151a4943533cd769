//! The softprobe engine: case files, and (as they land) the session store, rules, replay,
//! the control API server and the proxy.
//!
//! Start with [`case`]: a case file is the unit everything else reads and writes. [`rules`]
//! and [`policy`] parse what a session is told; [`replay`] decides what each hop gets.
//! [`session`] holds each session's state, [`server`] serves the control API ([`control`])
//! and the proxy OTLP API ([`otlp`]) over it, and [`capture`] writes capture sessions out.

pub mod capture;
pub mod case;
pub mod content_coding;
pub mod control;
pub mod error;
pub mod grpc;
pub mod hop_log;
pub mod json;
mod listener;
pub mod metrics;
pub mod mode;
pub mod multipart;
pub mod otlp;
pub mod policy;
pub mod proxy;
pub mod replay;
pub mod rules;
pub mod scrub;
pub mod server;
pub mod session;
pub mod streaming;
pub mod suite;
pub mod verdict;
pub mod view;
pub mod yaml;

#[cfg(feature = "cli")]
pub mod cli;

pub use error::{Error, Result};
pub use mode::Mode;
pub use server::{RunningServer, Server, ServerBuilder};
