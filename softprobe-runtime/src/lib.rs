//! The softprobe engine: case files, and (as they land) the session store, rules, replay,
//! the control API server and the proxy.
//!
//! Start with [`case`]: a case file is the unit everything else reads and writes.

pub mod case;
pub mod proxy;
