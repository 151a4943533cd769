//! Raw bytes as an HTTP/1 request to a real ingress or egress proxy on a loopback socket.
//!
//! One runtime server (the ingress upstream, and the store both proxies decide with), one
//! ingress and one egress run for the whole process. The first byte picks the proxy; the rest
//! goes on the wire as is, with `@C@` / `@R@` replaced by the id of an open capture session /
//! a strict replay session holding the checkout case, so inputs can reach the session paths
//! the fuzzer could never guess ids for. Any panic in a proxy task aborts the process
//! (libFuzzer's panic hook), which is the crash this target looks for.
#![no_main]

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use softprobe_fuzz::fixture;
use softprobe_runtime::case::Case;
use softprobe_runtime::policy::parse_policy;
use softprobe_runtime::proxy::{
    CertificateAuthority, EgressProxy, IngressProxy, RunningEgress, RunningProxy, StoreBackend,
};
use softprobe_runtime::session::{NewSession, SessionStore};
use softprobe_runtime::{Mode, RunningServer, Server};

/// Capture sessions buffer every hop; starting fresh ones now and then keeps memory flat.
const EXECS_PER_SESSION: u64 = 2_000;

struct Harness {
    _runtime: tokio::runtime::Runtime,
    _server: RunningServer,
    _ingress: RunningProxy,
    _egress: RunningEgress,
    store: Arc<dyn SessionStore>,
    ingress: SocketAddr,
    egress: SocketAddr,
    sessions: Mutex<(String, String)>,
    execs: AtomicU64,
}

fn open_sessions(store: &Arc<dyn SessionStore>) -> (String, String) {
    let capture = store.create(NewSession::new(Mode::Capture)).unwrap();
    let replay = store.create(NewSession::new(Mode::Replay)).unwrap();
    let case = Case::from_slice(&fixture("cases/checkout.case.json")).unwrap();
    let strict = parse_policy(br#"{"externalHttp": "strict"}"#, "strict.json").unwrap();
    store
        .update(replay.id(), &mut |state| {
            state.load_case(case.clone(), "checkout.case.json")?;
            state.set_policy(strict.clone());
            Ok(())
        })
        .unwrap();
    (capture.id().to_owned(), replay.id().to_owned())
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (server, ingress, egress) = runtime.block_on(async {
            let server = Server::builder().start().await.unwrap();
            let backend = Arc::new(StoreBackend::new(server.store()));
            let ingress = IngressProxy::builder()
                .upstream(server.uri())
                .backend(backend.clone())
                .upstream_timeout(Duration::from_secs(2))
                .start()
                .await
                .unwrap();
            let egress = EgressProxy::builder()
                .ca(CertificateAuthority::generate().unwrap())
                .backend(backend)
                .upstream(server.uri())
                .connect_timeout(Duration::from_millis(200))
                .upstream_timeout(Duration::from_secs(2))
                .start()
                .await
                .unwrap();
            (server, ingress, egress)
        });
        let store = server.store();
        let sessions = open_sessions(&store);
        Harness {
            ingress: ingress.addr(),
            egress: egress.addr(),
            _runtime: runtime,
            _server: server,
            _ingress: ingress,
            _egress: egress,
            store,
            sessions: Mutex::new(sessions),
            execs: AtomicU64::new(0),
        }
    })
}

fn replace(data: &[u8], token: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut rest = data;
    while let Some(at) = rest.windows(token.len()).position(|w| w == token) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(with);
        rest = &rest[at + token.len()..];
    }
    out.extend_from_slice(rest);
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, request)) = data.split_first() else {
        return;
    };
    let h = harness();
    if h.execs.fetch_add(1, Ordering::Relaxed) % EXECS_PER_SESSION == EXECS_PER_SESSION - 1 {
        let mut sessions = h.sessions.lock().unwrap();
        h.store.remove(&sessions.0);
        h.store.remove(&sessions.1);
        *sessions = open_sessions(&h.store);
    }
    let (capture, replay) = h.sessions.lock().unwrap().clone();
    let request = replace(request, b"@C@", capture.as_bytes());
    let request = replace(&request, b"@R@", replay.as_bytes());

    let addr = if pick & 1 == 0 { h.ingress } else { h.egress };
    let Ok(mut stream) = TcpStream::connect(addr) else {
        panic!("the proxy at {addr} stopped accepting connections");
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    // The proxy may answer and close before reading everything: write errors are expected.
    let _ = stream.write_all(&request);
    let _ = stream.shutdown(Shutdown::Write);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
});
