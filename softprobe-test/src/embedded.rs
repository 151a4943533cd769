//! The one runtime and pair of proxies a test process shares, started on first use on their
//! own multi-threaded tokio runtime, so every test flavour (`#[test]`, any `#[tokio::test]`)
//! and every harness (cargo test threads, nextest processes) can use them.
//!
//! Sessions isolate tests from each other: the egress proxy finds a test's session in the
//! proxy credentials of that test's HTTP client, so one listener serves every test.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use softprobe_runtime::case::{Direction, Exchange};
use softprobe_runtime::proxy::{
    BackendFuture, CertificateAuthority, EgressProxy, ProxyBackend, RemoteBackend, RunningEgress,
    StoreBackend,
};
use softprobe_runtime::replay::{Decision, Layer, MissReport, Origin, Request};
use softprobe_runtime::session::{InMemoryStore, SessionStore};

use crate::control::{Control, InProcess, OverHttp};
use crate::error::Error;
use crate::hooks::{MockHook, MockResponse, OutboundCall};

/// What a test saw of its session: every hop the proxies finished, and every strict miss.
#[derive(Debug, Default, Clone)]
pub(crate) struct Observed {
    pub(crate) exchanges: Vec<Exchange>,
    /// Hops decided that will be recorded (all but strict misses), each once its response
    /// has been streamed.
    pub(crate) decided: usize,
    /// A rule of the test itself answered a hop: the scenario differs from the recording on
    /// purpose, so the service's answers are not compared with it.
    pub(crate) altered: bool,
    /// Outbound calls decided (answered, forwarded or refused) so far.
    pub(crate) outbound_decided: usize,
    /// What the harness could not do for the test: calls without a session refused while it
    /// may have made them ([`crate::proxy_env`]), closures that could not run.
    pub(crate) problems: Vec<String>,
}

/// What the proxies saw of one session and the closures rewriting its answers: owned by the
/// test's [`crate::Session`], and found by the [`Observer`] while the session is open.
#[derive(Default)]
pub(crate) struct Watch {
    observed: Mutex<Observed>,
    /// `Session::on_mock_response` closures.
    mock_hooks: Mutex<Vec<MockHook>>,
}

/// Wraps the real backend and hands each hop's facts to the [`Watch`] of its session.
pub(crate) struct Observer {
    /// Woken whenever a hop is recorded, so [`Observer::settle`] waits for exactly that.
    recorded: tokio::sync::Notify,
    inner: Arc<dyn ProxyBackend>,
    /// A remote runtime answers over HTTP, so decisions arrive without their origin: its
    /// strict misses are told by their status and header, and every answer looks like a rule.
    remote: bool,
    /// The open sessions of this process: the one listener serves every test, so a hop is
    /// matched to its test's watch by the session id it carries.
    open: Mutex<HashMap<String, Arc<Watch>>>,
}

impl Observer {
    /// Waits (up to half a second) until every hop decided for the session has been
    /// recorded: a response body the test never read finishes streaming after it returns.
    pub(crate) async fn settle(&self, session_id: &str) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(500);
        loop {
            // Registered before the check, so a hop recorded in between still wakes us.
            let recorded = self.recorded.notified();
            let mut recorded = std::pin::pin!(recorded);
            recorded.as_mut().enable();
            let pending = self
                .with(session_id, |o| o.decided > o.exchanges.len())
                .unwrap_or(false);
            if !pending || tokio::time::timeout_at(deadline, recorded).await.is_err() {
                return;
            }
        }
    }

    /// Whether a hop decided for the session has not been recorded yet, so that
    /// [`Observer::settle`] has something to wait for. Checked without a runtime: a test whose
    /// hops are all recorded is judged without crossing to the shared runtime.
    pub(crate) fn pending(&self, session_id: &str) -> bool {
        self.with(session_id, |o| o.decided > o.exchanges.len())
            .unwrap_or(false)
    }

    /// Starts handing the session's hops to `watch`, until [`Observer::take`].
    pub(crate) fn watch(&self, session_id: &str, watch: Arc<Watch>) {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(session_id.to_owned(), watch);
    }

    /// Stops watching the session and takes what was seen of it.
    pub(crate) fn take(&self, session_id: &str) -> Observed {
        let watch = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(session_id);
        // Each change to the log is one push or increment, so a panic elsewhere cannot leave
        // it half-done: a poisoned log is read, never skipped.
        watch.map_or_else(Observed::default, |w| {
            std::mem::take(
                &mut *w
                    .observed
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            )
        })
    }

    /// Registers a closure that rewrites the session's mocked and replayed answers.
    pub(crate) fn add_mock_hook(watch: &Watch, hook: MockHook) -> Result<(), String> {
        let mut hooks = watch.mock_hooks.lock().map_err(|_| {
            "the list of on_mock_response closures was poisoned by a panic in another thread \
             of this test"
                .to_owned()
        })?;
        hooks.push(hook);
        Ok(())
    }

    /// How many outbound calls of the session have been decided so far.
    pub(crate) fn outbound_answered(&self, session_id: &str) -> usize {
        self.with(session_id, |o| o.outbound_decided).unwrap_or(0)
    }

    /// The test judges the service's answers itself (a suite's assertions), so the default
    /// comparison with the recording is skipped, as for a scenario changed on purpose.
    pub(crate) fn skip_comparison(&self, session_id: &str) {
        self.with(session_id, |o| o.altered = true);
    }

    /// Runs the session's `on_mock_response` closures over an answer to an outbound call; a
    /// rewritten answer changes the scenario, so the recording is no longer the reference.
    fn rewrite(&self, session_id: &str, request: &Request, decision: &mut Decision) {
        let Decision::Respond { response, .. } = decision else {
            return;
        };
        // A remote runtime's strict miss is an answer too; it must reach the verdict intact.
        if request.direction != Direction::Outbound
            || (self.remote && MissReport::from_response(response).is_some())
        {
            return;
        }
        let Some(watch) = self.find(session_id) else {
            return;
        };
        let hooks = match watch.mock_hooks.lock() {
            Ok(h) => h.clone(),
            Err(_) => {
                self.with(session_id, |o| {
                    o.problems.push(
                        "on_mock_response: the list of closures was poisoned by a panic in \
                         another test, so none rewrote this answer"
                            .to_owned(),
                    )
                });
                return;
            }
        };
        if hooks.is_empty() {
            return;
        }
        let call = OutboundCall::from_request(request);
        let mut answer = MockResponse::from_response(response);
        for hook in &hooks {
            hook(&call, &mut answer);
        }
        answer.apply(response);
        self.with(session_id, |o| o.altered = true);
    }

    /// Refuses a call that cannot be given to the test that made it, and puts the refusal in
    /// the verdict of each test that may have made it.
    fn refuse(&self, text: String, suspects: &[String]) -> Decision {
        for id in suspects {
            self.with(id, |o| o.problems.push(text.clone()));
        }
        let body = serde_json::json!({"error": {"code": "session_ambiguous", "message": text}});
        Decision::Respond {
            response: softprobe_runtime::replay::Response {
                status: 421,
                headers: vec![("content-type".into(), "application/json".into())],
                body: Some(softprobe_runtime::case::Body::Text(body.to_string())),
            },
            latency: None,
            origin: Origin::Rule {
                layer: Layer::Policy,
                name: Some("softprobe-unattributed".into()),
            },
            injected_error: true,
        }
    }

    fn find(&self, session_id: &str) -> Option<Arc<Watch>> {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(session_id)
            .cloned()
    }

    /// Runs `f` on what was seen of the session; `None` when no open test owns it.
    fn with<T>(&self, session_id: &str, f: impl FnOnce(&mut Observed) -> T) -> Option<T> {
        let watch = self.find(session_id)?;
        let mut observed = watch
            .observed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Some(f(&mut observed))
    }
}

impl ProxyBackend for Observer {
    fn inject<'a>(
        &'a self,
        session_id: &'a str,
        request: &'a Request,
    ) -> BackendFuture<'a, Decision> {
        Box::pin(async move {
            if session_id == crate::proxy_env::UNATTRIBUTED {
                let (text, suspects) = crate::proxy_env::refusal(&request.method, &request.url());
                return Ok(self.refuse(text, &suspects));
            }
            if let Some(embedded) = EMBEDDED.get().and_then(|e| e.as_ref().ok())
                && let Some((text, suspects)) = crate::proxy_env::misattributed(
                    embedded,
                    session_id,
                    &request.method,
                    &request.url(),
                )
            {
                return Ok(self.refuse(text, &suspects));
            }
            let mut decision = self.inner.inject(session_id, request).await?;
            self.rewrite(session_id, request, &mut decision);
            self.with(session_id, |o| {
                // The proxy records every hop it answers except a strict miss, so a miss
                // must not leave the verdict waiting for a recording that never comes.
                if !matches!(decision, Decision::StrictMiss(_)) {
                    o.decided += 1;
                }
                if request.direction == Direction::Outbound {
                    o.outbound_decided += 1;
                }
                // Strict misses reach the verdict from the session itself
                // (`Control::findings`), in process and remote alike.
                if let Decision::Respond {
                    origin:
                        Origin::Rule {
                            layer: Layer::Session,
                            ..
                        },
                    ..
                } = &decision
                {
                    o.altered = true;
                }
            });
            Ok(decision)
        })
    }

    fn record<'a>(&'a self, session_id: &'a str, exchange: Exchange) -> BackendFuture<'a, ()> {
        Box::pin(async move {
            if session_id == crate::proxy_env::UNATTRIBUTED {
                return Ok(());
            }
            self.with(session_id, |o| o.exchanges.push(exchange.clone()));
            self.recorded.notify_waiters();
            self.inner.record(session_id, exchange).await
        })
    }

    fn session_exists<'a>(&'a self, session_id: &'a str) -> BackendFuture<'a, bool> {
        self.inner.session_exists(session_id)
    }
}

/// The shared machinery.
pub(crate) struct Embedded {
    pub(crate) rt: tokio::runtime::Runtime,
    /// Where sessions live: in this process, or in a runtime named by
    /// `SOFTPROBE_RUNTIME_URL`.
    pub(crate) control: Box<dyn Control>,
    pub(crate) observer: Arc<Observer>,
    pub(crate) egress: RunningEgress,
    /// The egress proxy's CA as the clients of every session trust it, parsed once.
    pub(crate) proxy_ca: reqwest::Certificate,
}

static EMBEDDED: OnceLock<Result<Embedded, String>> = OnceLock::new();
static UPSTREAM_ROOTS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Trusts an extra CA for the real upstreams the egress proxy reaches in capture mode (for
/// example a local HTTPS test server). Call it before the first case test of the process
/// starts; the roots in `SOFTPROBE_UPSTREAM_CA_FILE` and the public web roots are always
/// trusted.
pub fn trust_upstream_ca(pem: &str) -> Result<(), Error> {
    let mut roots = UPSTREAM_ROOTS.lock().map_err(|_| Error::Poisoned)?;
    if roots.iter().any(|r| r == pem) {
        return Ok(());
    }
    if EMBEDDED.get().is_some() {
        return Err(Error::TooLate(
            "trust_upstream_ca must be called before the first case test starts the embedded runtime",
        ));
    }
    roots.push(pem.to_owned());
    Ok(())
}

pub(crate) fn embedded() -> Result<&'static Embedded, Error> {
    EMBEDDED
        .get_or_init(start)
        .as_ref()
        .map_err(|e| Error::Start(e.clone()))
}

fn start() -> Result<Embedded, String> {
    // reqwest (used by sessions) and the proxies share one TLS provider: ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("softprobe")
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the softprobe tokio runtime: {e}"))?;
    let remote = std::env::var("SOFTPROBE_RUNTIME_URL")
        .ok()
        .filter(|u| !u.trim().is_empty());
    let token = std::env::var("SOFTPROBE_API_TOKEN")
        .ok()
        .filter(|t| !t.is_empty());
    let (control, inner): (Box<dyn Control>, Arc<dyn ProxyBackend>) = match remote {
        Some(base) => {
            let backend = RemoteBackend::new(&base, token.clone())
                .map_err(|e| format!("SOFTPROBE_RUNTIME_URL={base}: {e}"))?;
            let control = OverHttp::new(&base, token, rt.handle().clone())
                .map_err(|e| format!("SOFTPROBE_RUNTIME_URL={base}: {e}"))?;
            (Box::new(control), Arc::new(backend))
        }
        None => {
            let store: Arc<dyn SessionStore> = Arc::new(InMemoryStore::new());
            (
                Box::new(InProcess(store.clone())),
                Arc::new(StoreBackend::new(store)),
            )
        }
    };
    let observer = Arc::new(Observer {
        recorded: tokio::sync::Notify::new(),
        remote: !control.reports_origins(),
        inner,
        open: Mutex::new(HashMap::new()),
    });
    let roots: Vec<String> = UPSTREAM_ROOTS.lock().map(|r| r.clone()).unwrap_or_default();
    let backend: Arc<dyn ProxyBackend> = observer.clone();
    let listen = egress_addr()?;
    let egress = rt.block_on(async move {
        let mut builder = EgressProxy::builder()
            .listen(listen)
            .ca(CertificateAuthority::generate().map_err(|e| e.to_string())?)
            .backend(backend)
            .service("softprobe-test");
        for pem in &roots {
            for cert in rustls_pemfile_certs(pem)? {
                builder = builder.upstream_root(cert);
            }
        }
        builder
            .start()
            .await
            .map_err(|e| format!("cannot start the egress proxy: {e}"))
    })?;
    let proxy_ca = reqwest::Certificate::from_pem(egress.ca_cert_pem().as_bytes())
        .map_err(|e| format!("the egress proxy's CA certificate cannot be read: {e}"))?;
    Ok(Embedded {
        rt,
        control,
        observer,
        egress,
        proxy_ca,
    })
}

/// Where the egress proxy listens: `127.0.0.1:0`, or the loopback address
/// `SOFTPROBE_EGRESS_ADDR` names, so that a process can be started with `HTTP_PROXY` already
/// naming it ([`crate::ProxyEnv`]).
fn egress_addr() -> Result<std::net::SocketAddr, String> {
    let Some(value) = std::env::var("SOFTPROBE_EGRESS_ADDR")
        .ok()
        .filter(|v| !v.trim().is_empty())
    else {
        return Ok(([127, 0, 0, 1], 0).into());
    };
    let addr: std::net::SocketAddr = value.trim().parse().map_err(|e| {
        format!("SOFTPROBE_EGRESS_ADDR={value:?} is not an address such as 127.0.0.1:18080: {e}")
    })?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "SOFTPROBE_EGRESS_ADDR={value:?}: the embedded egress proxy listens on loopback only"
        ));
    }
    Ok(addr)
}

fn rustls_pemfile_certs(
    pem: &str,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject as _;
    let certs: Vec<_> = rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("trust_upstream_ca: not a PEM certificate: {e:?}"))?;
    if certs.is_empty() {
        return Err("trust_upstream_ca: no certificate in the PEM text".into());
    }
    Ok(certs)
}
