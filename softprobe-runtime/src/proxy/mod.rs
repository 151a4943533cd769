//! The ingress and egress proxies: hyper servers that sit in front of the service under test
//! (ingress) and between it and the services it calls (egress), asking the runtime what to do
//! with every hop and recording what happened.

pub mod http;
pub mod tls;
pub mod trace_context;
