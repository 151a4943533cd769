//! What the runtime's integration tests share, one module per kind of helper:
//!
//! | module | for |
//! | --- | --- |
//! | [`process`] | built binaries: `Binary` (a child killed on drop), free ports, the runtime with a clean environment, waiting for a port or URL, the CLI |
//! | [`control`] | the control API: an in-process server, a JSON client, sessions, contract errors, metrics, schemas |
//! | [`otlp`] | OTLP JSON spans, traces and a small case built by hand |
//! | [`raw_http`] | a raw HTTP/1 client over a `TcpStream`, answers read one by one |
//! | [`upstream`] | servers behind the proxies: echo and price upstreams, the checkout app, TLS, `CONNECT` |
//! | [`browser`] | headless Chromium over the DevTools protocol |
//!
//! Everything but the browser is re-exported here, so a test writes `mod support;` and
//! `use support::*;` (or names what it uses).

// Each test binary uses its own subset.
#![allow(dead_code, unreachable_pub, unused_imports)]

pub mod browser;
pub mod control;
pub mod otlp;
pub mod process;
pub mod raw_http;
pub mod upstream;

pub use control::*;
pub use otlp::*;
pub use process::*;
pub use raw_http::*;
pub use upstream::*;
