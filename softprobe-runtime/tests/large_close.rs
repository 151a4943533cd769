//! A large capture gives its memory back when it closes: the hops recorded by the proxies'
//! threads are freed at the close and returned to the system, not kept by the allocator.
//!
//! One test in its own process, so the resident set it reads (`/proc/self/status`) is the
//! capture's alone. glibc is the allocator that keeps freed pages; other targets do not.
#![cfg(all(target_os = "linux", target_env = "gnu"))]

use std::sync::Arc;

use softprobe_runtime::Mode;
use softprobe_runtime::case::{Body, Direction, Exchange, SpanId, TraceId};
use softprobe_runtime::session::{InMemoryStore, NewSession, SessionLimits, SessionStore};

/// Hops recorded by each of the recording threads, and the size of each hop's body: about
/// 48 MB of hops in all, the size of a few seconds of load through the ingress.
const THREADS: usize = 2;
const HOPS_PER_THREAD: usize = 6_000;
const BODY: usize = 4_000;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("a VmRSS line");
    line.split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("VmRSS in kB")
}

fn hop(thread: usize, i: usize) -> Exchange {
    let mut id = [0u8; 8];
    id[..4].copy_from_slice(&(i as u32).to_be_bytes());
    id[4] = thread as u8 + 1;
    Exchange {
        direction: Direction::Inbound,
        service: Some("checkout".into()),
        session_id: None,
        span_type: Some("extract".into()),
        method: "GET".into(),
        scheme: Some("http".into()),
        host: "app.test".into(),
        path: format!("/price/{i}"),
        query: None,
        request_headers: vec![("accept".into(), "application/json".into())],
        request_body: None,
        status: Some(200),
        response_headers: vec![("content-type".into(), "text/plain".into())],
        response_body: Some(Body::Text("x".repeat(BODY))),
        trace_id: TraceId([thread as u8 + 1; 16]),
        span_id: SpanId(id),
        parent_span_id: None,
        name: "HTTP GET".into(),
        start_time_unix_nano: 1,
        end_time_unix_nano: 2,
        extra_attributes: Vec::new(),
    }
}

#[test]
fn closing_a_large_capture_returns_its_memory_to_the_system() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(InMemoryStore::with_limits(SessionLimits::UNLIMITED));
    let id = store
        .create(NewSession::new(Mode::Capture))
        .unwrap()
        .id()
        .to_owned();

    // The hops are recorded on threads of their own, as the proxies record them, each
    // keeping a small allocation alive every few hops (as a connection's state outlives the
    // requests it served): freeing the hops then leaves holes below live memory, which the
    // allocator keeps unless asked to give them back.
    let kept: Vec<Vec<Vec<u8>>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let store = &store;
                let id = &id;
                s.spawn(move || {
                    let mut kept = Vec::new();
                    for i in 0..HOPS_PER_THREAD {
                        store.record(id, hop(t, i)).unwrap();
                        if i % 64 == 0 {
                            kept.push(vec![t as u8; 256]);
                        }
                    }
                    kept
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let payload_kib = (THREADS * HOPS_PER_THREAD * BODY / 1024) as u64;

    let before = rss_kib();
    let path = dir.path().join("large.case.json");
    let written = store.close(&id, Some(&path)).unwrap();
    let after = rss_kib();
    assert_eq!(written, Some(THREADS * HOPS_PER_THREAD));
    eprintln!(
        "resident before the close {before} KiB, after it {after} KiB ({payload_kib} KiB of bodies)"
    );
    assert!(
        std::fs::metadata(&path).unwrap().len() > (THREADS * HOPS_PER_THREAD * BODY) as u64,
        "the case holds every hop's body"
    );
    assert!(
        after + payload_kib / 2 <= before,
        "closing a capture of {payload_kib} KiB of hop bodies left the process at {after} KiB \
         resident, against {before} KiB before the close: the freed hops were not given back \
         to the system"
    );
    drop(kept);
}
