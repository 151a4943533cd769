//! The softprobe engine: case files, and (as they land) the session store, rules, replay,
//! the control API server and the proxy.
//!
//! Start with [`case`]: a case file is the unit everything else reads and writes. [`rules`]
//! and [`policy`] parse what a session is told; [`replay`] decides what each hop gets.

pub mod case;
pub mod mode;
pub mod policy;
pub mod replay;
pub mod rules;

pub mod scrub;

pub use mode::Mode;

#[cfg(feature = "cli")]
pub mod cli;
