//! Loopback ports for the servers tests start: one owner for the workspace's end-to-end tests
//! (`softprobe-e2e`) and the runtime's integration tests, which include this file by path.

/// A loopback port nobody listens on right now.
///
/// The port comes from below Linux's ephemeral range (32768 and up), where the kernel never
/// hands ports to outgoing connections: a port from `bind(0)` is released before the test binds
/// it again, and in between any client connection of a parallel test may take it as its own
/// source port. Each process starts at its own offset so that parallel test processes (nextest)
/// rarely try the same ports.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        (std::process::id() * 97) % SPAN,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    for _ in 0..SPAN {
        let port = (FIRST + NEXT.fetch_add(1, Ordering::Relaxed) % SPAN) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port between {FIRST} and {}", FIRST + SPAN)
}
