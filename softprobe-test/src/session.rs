//! [`Session`]: what a case test receives, one per test, isolated from every other test.
//!
//! It routes the service's outbound calls through the shared egress proxy (the session rides
//! in the proxy credentials of [`Session::http_client`]), puts an ingress proxy in front of
//! the service ([`Session::serve`], [`Session::target`]), and lets the test add rules.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};
use softprobe_runtime::case::{Case, Direction, Exchange};
use softprobe_runtime::proxy::{IngressProxy, RunningProxy};
use softprobe_runtime::replay::IndexedCase;

use crate::Mode;
use crate::control::Opening;
use crate::embedded::{Embedded, embedded};
use crate::error::{Error, Result};
use crate::hooks::{
    BodyCheck, InboundRequest, MockResponse, OutboundCall, RequestHook, ResponseBody,
};
use crate::proxy_env::ProxyEnv;
use crate::scenario::HookProblems;

/// Takes a hook list for registering; a list poisoned by a panic elsewhere fails the test
/// here, naming the closure that could not be registered, instead of dropping it.
fn hooks_for<'a, T>(list: &'a Mutex<T>, what: &str) -> MutexGuard<'a, T> {
    list.lock().unwrap_or_else(|_| {
        panic!(
            "softprobe: {what}: the session's list of {what} closures was poisoned by a panic \
             in another thread of this test; the closure cannot be registered"
        )
    })
}

/// One test's view of softprobe.
///
/// A test asks for it by taking `sp: softprobe::Session` as its only argument. Cloning is
/// cheap and every clone is the same session.
#[derive(Clone)]
pub struct Session {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) id: String,
    pub(crate) mode: Mode,
    pub(crate) case_path: PathBuf,
    pub(crate) test_name: String,
    pub(crate) case: Option<CaseView>,
    pub(crate) embedded: &'static Embedded,
    pub(crate) ingresses: Mutex<Vec<RunningProxy>>,
    pub(crate) apps: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    pub(crate) redact: Vec<String>,
    /// The policy a replay starts with; its request-drift fields stay under a policy the
    /// test sets.
    replay_policy: Value,
    rules: Mutex<Vec<Value>>,
    ca_file: Mutex<Option<tempfile::NamedTempFile>>,
    request_hooks: Mutex<Vec<RequestHook>>,
    body_checks: Mutex<Vec<BodyCheck>>,
    /// A suite test runs the `assert_body` closures on each answer itself.
    pub(crate) body_checked_inline: std::sync::atomic::AtomicBool,
    /// Requests the `on_request` closures have been given a chance to rewrite.
    requests_rewritten: AtomicUsize,
    /// Answers the `assert_body` closures have been given a chance to check.
    bodies_checked: AtomicUsize,
    /// Closures that could not take effect, for the verdict.
    pub(crate) hook_problems: HookProblems,
    /// The headers `assert_response!` compares besides the default ones (the attribute's
    /// `headers = [...]`).
    pub(crate) compared_headers: Vec<String>,
    /// Snapshots a capture run writes if the test passes, in the order they were asserted.
    pub(crate) snapshots: Mutex<Vec<crate::verify::PendingSnapshot>>,
    /// What the proxies saw of this session, and its `on_mock_response` closures.
    pub(crate) watch: Arc<crate::embedded::Watch>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.inner.id)
            .field("mode", &self.inner.mode)
            .field("case_path", &self.inner.case_path)
            .finish_non_exhaustive()
    }
}

/// Runs `fut` on the shared runtime and waits for it, from sync or async code alike.
pub(crate) fn on_shared<F>(embedded: &Embedded, fut: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::channel();
    embedded.rt.spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv()
        .expect("the softprobe runtime dropped a task it was running")
}

impl Session {
    /// Opens a session on the shared runtime: replay sessions load the case and start with
    /// `replay_policy` (strict, with the test's request-drift fields), so a call the case
    /// cannot answer fails instead of leaving.
    pub(crate) fn open(
        mode: Mode,
        case_path: PathBuf,
        test_name: &str,
        case: Option<(IndexedCase, Vec<u8>)>,
        redact: Vec<String>,
        compared_headers: Vec<String>,
        replay_policy: Value,
    ) -> Result<Session> {
        let embedded = embedded()?;
        let case_id = case
            .as_ref()
            .map(|(c, _)| c.case().case_id.clone())
            .or_else(|| {
                case_path.file_name().and_then(|n| n.to_str()).map(|n| {
                    n.trim_end_matches(".json")
                        .trim_end_matches(".case")
                        .to_owned()
                })
            });
        let source = case_path.display().to_string();
        let id = embedded.control.open(Opening {
            mode,
            case_id,
            test_name,
            case: case.as_ref(),
            source: &source,
            policy: &replay_policy,
        })?;
        let view = case.map(|(case, _)| CaseView { case });
        let watch = Arc::new(crate::embedded::Watch::default());
        embedded.observer.watch(&id, Arc::clone(&watch));
        crate::proxy_env::opened(embedded, &id, test_name);
        Ok(Session {
            inner: Arc::new(Inner {
                id,
                mode,
                case_path,
                test_name: test_name.to_owned(),
                case: view,
                embedded,
                ingresses: Mutex::new(Vec::new()),
                apps: Mutex::new(Vec::new()),
                redact,
                replay_policy,
                rules: Mutex::new(Vec::new()),
                ca_file: Mutex::new(None),
                request_hooks: Mutex::new(Vec::new()),
                body_checks: Mutex::new(Vec::new()),
                body_checked_inline: std::sync::atomic::AtomicBool::new(false),
                requests_rewritten: AtomicUsize::new(0),
                bodies_checked: AtomicUsize::new(0),
                hook_problems: HookProblems::default(),
                compared_headers,
                snapshots: Mutex::new(Vec::new()),
                watch,
            }),
        })
    }

    /// The session id (`sess_...`).
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The mode this test runs in.
    pub fn mode(&self) -> Mode {
        self.inner.mode
    }

    /// The absolute path of the case file.
    pub fn case_path(&self) -> &Path {
        &self.inner.case_path
    }

    /// The test's full name, `module::path::function`.
    pub fn test_name(&self) -> &str {
        &self.inner.test_name
    }

    /// The egress proxy URL with this session in its credentials
    /// (`http://sess_...@127.0.0.1:PORT`), for `HTTP_PROXY`/`HTTPS_PROXY` or any client's
    /// proxy setting.
    ///
    /// The process environment is shared by every test of the process: for a service that
    /// builds its client from `HTTP_PROXY`, use [`Session::proxy_env`] instead.
    pub fn egress_proxy_url(&self) -> String {
        crate::proxy_env::took_raw_url(&self.inner.id);
        // A client built from it names the session: its calls are never those without one.
        crate::proxy_env::names_its_session(&self.inner.id);
        self.session_proxy_url()
    }

    fn session_proxy_url(&self) -> String {
        self.inner.embedded.egress.uri_for_session(&self.inner.id)
    }

    /// The PEM certificate of the CA the egress proxy signs HTTPS hosts with; clients that
    /// call HTTPS upstreams through the proxy must trust it.
    pub fn ca_cert_pem(&self) -> String {
        self.inner.embedded.egress.ca_cert_pem().to_owned()
    }

    /// A `reqwest::Client` for the service under test to make its outbound calls with: every
    /// call goes through the egress proxy, carries this session, and trusts the proxy's CA.
    pub fn http_client(&self) -> reqwest::Client {
        self.http_client_builder()
            .build()
            .expect("a reqwest client with a proxy and a root certificate builds")
    }

    /// Whether the test gave this session rules of its own.
    pub(crate) fn added_rules(&self) -> bool {
        self.inner
            .rules
            .lock()
            .map(|r| !r.is_empty())
            .unwrap_or(false)
    }

    fn proxy_ca(&self) -> reqwest::Certificate {
        self.inner.embedded.proxy_ca.clone()
    }

    /// The builder behind [`Session::http_client`], to add timeouts or default headers.
    pub fn http_client_builder(&self) -> reqwest::ClientBuilder {
        crate::proxy_env::names_its_session(&self.inner.id);
        let proxy = reqwest::Proxy::all(self.session_proxy_url())
            .expect("the egress proxy URL is a valid proxy URL");
        let ca = self.proxy_ca();
        // Every HTTPS call goes through the proxy, which presents certificates of its own CA:
        // that is the only root needed, and skipping the system roots keeps a client cheap.
        reqwest::Client::builder().proxy(proxy).tls_certs_only([ca])
    }

    /// A `reqwest::Client` for the test itself to call the service: it carries the session
    /// header, so point it at the URL [`Session::serve`] or [`Session::target`] returned.
    pub fn client(&self) -> reqwest::Client {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            "x-softprobe-session-id",
            self.inner.id.parse().expect("session ids are header-safe"),
        );
        headers.insert(
            "x-softprobe-test-name",
            reqwest::header::HeaderValue::from_str(&self.inner.test_name)
                .unwrap_or_else(|_| reqwest::header::HeaderValue::from_static("test")),
        );
        let ca = self.proxy_ca();
        reqwest::Client::builder()
            .no_proxy()
            .default_headers(headers)
            .tls_certs_only([ca])
            .build()
            .expect("a plain reqwest client builds")
    }

    /// Serves `service` (an axum `Router` or any tower service of HTTP requests) on
    /// `127.0.0.1:0` behind an ingress proxy for this session, and returns the ingress base
    /// URL (`http://127.0.0.1:PORT`) to send the test's requests to.
    pub async fn serve<S, B>(&self, service: S) -> String
    where
        S: tower_service::Service<
                http::Request<hyper::body::Incoming>,
                Response = http::Response<B>,
            > + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
        S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        self.serve_erased(crate::served::erase(service)).await
    }

    /// [`Session::serve`] past its one generic line: the accept loop and the HTTP/1 and
    /// HTTP/2 server are compiled once, in this crate, not once per service type in every
    /// test crate.
    async fn serve_erased(&self, service: crate::served::Served) -> String {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
            .expect("binding 127.0.0.1:0 for the service under test");
        listener
            .set_nonblocking(true)
            .expect("a nonblocking listener");
        let addr = listener.local_addr().expect("a bound address");
        let app = self
            .inner
            .embedded
            .rt
            .spawn(crate::served::accept_loop(listener, service));
        if let Ok(mut apps) = self.inner.apps.lock() {
            apps.push(app);
        }
        self.target(&format!("http://{addr}")).await
    }

    /// Puts an ingress proxy for this session in front of a service started elsewhere
    /// (another process, a container) and returns the ingress base URL.
    pub async fn target(&self, upstream: &str) -> String {
        let backend: Arc<dyn softprobe_runtime::proxy::ProxyBackend> =
            self.inner.embedded.observer.clone();
        let upstream = upstream.to_owned();
        let started = self
            .inner
            .embedded
            .rt
            .spawn(async move {
                IngressProxy::builder()
                    .listen(([127, 0, 0, 1], 0).into())
                    .upstream(upstream)
                    .backend(backend)
                    .service("softprobe-test")
                    .start()
                    .await
            })
            .await
            .expect("the ingress start task ran")
            .expect("the ingress proxy starts on 127.0.0.1:0");
        let uri = started.uri();
        if let Ok(mut ingresses) = self.inner.ingresses.lock() {
            ingresses.push(started);
        }
        uri
    }

    /// A command for a service in another process: `HTTP_PROXY`/`HTTPS_PROXY` (both cases)
    /// point at the egress proxy with this session, `SSL_CERT_FILE` at a file holding the
    /// proxy CA, and `SOFTPROBE_SESSION_ID` names the session.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> std::process::Command {
        let mut cmd = std::process::Command::new(program);
        for (k, v) in self.command_env() {
            cmd.env(k, v);
        }
        cmd
    }

    /// [`Session::command`] as a `tokio::process::Command`.
    pub fn tokio_command(&self, program: impl AsRef<std::ffi::OsStr>) -> tokio::process::Command {
        tokio::process::Command::from(self.command(program))
    }

    /// The environment [`Session::command`] gives a service in another process, for process
    /// builders other than `std::process::Command` (a container, a shell script, a test
    /// runner's own command type): `HTTP_PROXY` / `HTTPS_PROXY` (both cases) with this session
    /// in the credentials, `NO_PROXY` empty, `SSL_CERT_FILE` and `SOFTPROBE_CA_FILE` naming
    /// [`Session::ca_cert_file`], and `SOFTPROBE_SESSION_ID`.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # softprobe::Run::new(dir.path().join("env.case.json"))
    /// #     .mode(softprobe::Mode::Capture)
    /// #     .run(|sp: softprobe::Session| {
    /// let env: std::collections::HashMap<_, _> = sp.command_env().into_iter().collect();
    /// assert_eq!(env["HTTPS_PROXY"], sp.egress_proxy_url());
    /// assert_eq!(env["SSL_CERT_FILE"], sp.ca_cert_file().display().to_string());
    /// # })
    /// # .unwrap();
    /// ```
    pub fn command_env(&self) -> Vec<(&'static str, String)> {
        crate::proxy_env::names_its_session(&self.inner.id);
        let proxy = self.session_proxy_url();
        let ca_path = self.ca_file_path();
        vec![
            ("HTTP_PROXY", proxy.clone()),
            ("HTTPS_PROXY", proxy.clone()),
            ("http_proxy", proxy.clone()),
            ("https_proxy", proxy),
            ("NO_PROXY", String::new()),
            ("no_proxy", String::new()),
            ("SSL_CERT_FILE", ca_path.clone()),
            ("SOFTPROBE_CA_FILE", ca_path),
            ("SOFTPROBE_SESSION_ID", self.inner.id.clone()),
        ]
    }

    /// Makes the calls of the service that reach the egress proxy without naming a session
    /// (a client it builds from `HTTP_PROXY` / `HTTPS_PROXY` set to the session-less
    /// [`ProxyEnv::proxy_url`]) this test's, until the guard is dropped or the test ends. Other
    /// tests of the process that ask for it wait meanwhile, so such tests run one at a time
    /// while every other test keeps running in parallel. See [`ProxyEnv`].
    pub fn proxy_env(&self) -> ProxyEnv {
        ProxyEnv::acquire(self)
    }

    pub(crate) fn ca_file_path(&self) -> String {
        let mut slot = self.inner.ca_file.lock().expect("the CA file lock");
        if slot.is_none() {
            let mut file = tempfile::Builder::new()
                .prefix("softprobe-ca-")
                .suffix(".pem")
                .tempfile()
                .expect("a temporary file for the proxy CA");
            std::io::Write::write_all(&mut file, self.ca_cert_pem().as_bytes())
                .expect("writing the proxy CA");
            *slot = Some(file);
        }
        slot.as_ref()
            .map(|f| f.path().display().to_string())
            .unwrap_or_default()
    }

    /// Adds one rule (the shape of `spec/schemas/rule.schema.json`) to this session's rules,
    /// which win over the case's own rules and the policy.
    pub fn mock(&self, rule: Value) -> Result<()> {
        let mut rules = self.inner.rules.lock().map_err(|_| Error::Poisoned)?;
        rules.push(rule);
        let doc = json!({"version": 1, "rules": *rules});
        drop(rules);
        self.apply_rules(doc)
    }

    /// Replaces this session's rules with a rules document (`{"version":1,"rules":[...]}` or
    /// a bare array).
    pub fn rules(&self, document: Value) -> Result<()> {
        let list = match &document {
            Value::Array(items) => items.clone(),
            other => other["rules"].as_array().cloned().unwrap_or_default(),
        };
        *self.inner.rules.lock().map_err(|_| Error::Poisoned)? = list;
        self.apply_rules(document)
    }

    fn apply_rules(&self, document: Value) -> Result<()> {
        self.inner
            .embedded
            .control
            .set_rules(&self.inner.id, &document, self.test_name())
    }

    /// Sets this session's policy (`{"externalHttp": "strict"|"allow", ...}`). Replay
    /// sessions start strict; the request-drift fields the test named (`redact`, `exact`,
    /// `headers`) stay unless `document` sets them itself.
    pub fn policy(&self, mut document: Value) -> Result<()> {
        if let (Value::Object(doc), Value::Object(base)) =
            (&mut document, &self.inner.replay_policy)
        {
            for key in ["volatileFields", "exactFields", "comparedHeaders"] {
                if let (false, Some(v)) = (doc.contains_key(key), base.get(key)) {
                    doc.insert(key.to_owned(), v.clone());
                }
            }
        }
        self.inner
            .embedded
            .control
            .set_policy(&self.inner.id, &document, self.test_name())
    }

    /// The case this test replays. Panics in capture mode (there is none yet) and in generate
    /// mode (the test's rules answer, no case is read).
    pub fn case(&self) -> &CaseView {
        self.inner.case.as_ref().unwrap_or_else(|| {
            panic!(
                "Session::case: {} mode has no loaded case; check sp.mode() first",
                self.inner.mode
            )
        })
    }

    /// Rewrites each recorded inbound request before `#[softprobe::cases]` sends it to the
    /// service again (closures run in the order they were added). The answers are still
    /// compared with the recording, matched by method and path, so a closure that changes
    /// the path makes the comparison report the request as unknown.
    ///
    /// ```no_run
    /// # fn demo(sp: softprobe::Session) {
    /// sp.on_request(|req: &mut softprobe::InboundRequest| {
    ///     req.set_header("authorization", "Bearer test-token");
    /// });
    /// # }
    /// ```
    ///
    /// A closure registered after the first recorded request was sent, or one that never gets
    /// a request to rewrite (a `#[softprobe::case]` test sends its own requests), fails the
    /// test: it would otherwise be skipped without a word.
    pub fn on_request(&self, hook: impl Fn(&mut InboundRequest) + Send + Sync + 'static) {
        let mut hooks = hooks_for(&self.inner.request_hooks, "on_request");
        let sent = self.inner.requests_rewritten.load(Ordering::SeqCst);
        if sent > 0 {
            self.inner.hook_problems.push(format!(
                "on_request: a closure was registered after {sent} recorded request(s) had \
                 already been sent, so it rewrote none of them; register it before returning \
                 the service's URL"
            ));
        }
        hooks.push(std::sync::Arc::new(hook));
    }

    /// Rewrites the answers the egress proxy gives the service's outbound calls in this
    /// session (replayed from the case or mocked by a rule), before the service sees them.
    /// Rewriting changes the scenario on purpose, so once a closure has run the service's
    /// answers are no longer compared with the recording: assert on them in the test.
    ///
    /// ```no_run
    /// # fn demo(sp: softprobe::Session) {
    /// use softprobe::{MockResponse, OutboundCall};
    /// sp.on_mock_response(|call: &OutboundCall, resp: &mut MockResponse| {
    ///     if call.path == "/shipping" {
    ///         resp.set_json(&serde_json::json!({"quote": 999, "carrier": "ups"}));
    ///     }
    /// });
    /// # }
    /// ```
    ///
    /// A closure registered after the session already answered outbound calls fails the test
    /// (those answers were not rewritten): register it before the service starts calling out.
    pub fn on_mock_response(
        &self,
        hook: impl Fn(&OutboundCall, &mut MockResponse) + Send + Sync + 'static,
    ) {
        let observer = &self.inner.embedded.observer;
        let answered = observer.outbound_answered(&self.inner.id);
        if answered > 0 {
            self.inner.hook_problems.push(format!(
                "on_mock_response: a closure was registered after the session had already \
                 answered {answered} outbound call(s), which it did not rewrite; register it \
                 before the service starts calling out"
            ));
        }
        if let Err(why) =
            crate::embedded::Observer::add_mock_hook(&self.inner.watch, std::sync::Arc::new(hook))
        {
            panic!("softprobe: on_mock_response: {why}; the closure cannot be registered");
        }
    }

    /// Adds a check of each answer's body against the recorded one: `(recorded, actual)`,
    /// `Err(message)` fails the test with the message. It runs in addition to the default
    /// comparison (and to a suite's `assertions.body`); to replace that, redact the body
    /// (`redact(".body")`) or set `body.mode: ignore` in the suite.
    ///
    /// ```no_run
    /// # fn demo(sp: softprobe::Session) {
    /// sp.assert_body(|recorded, actual| {
    ///     let (r, a) = (recorded.json().unwrap_or_default(), actual.json().unwrap_or_default());
    ///     if a["total"].as_i64() >= r["total"].as_i64() { Ok(()) } else { Err(format!("total fell: {a}")) }
    /// });
    /// # }
    /// ```
    pub fn assert_body(
        &self,
        check: impl Fn(&ResponseBody, &ResponseBody) -> std::result::Result<(), String>
        + Send
        + Sync
        + 'static,
    ) {
        let mut checks = hooks_for(&self.inner.body_checks, "assert_body");
        let checked = self.inner.bodies_checked.load(Ordering::SeqCst);
        if checked > 0 {
            self.inner.hook_problems.push(format!(
                "assert_body: a closure was registered after {checked} answer(s) had already \
                 been checked, so it checked none of them; register it before sending requests"
            ));
        }
        checks.push(std::sync::Arc::new(check));
    }

    /// Runs the `on_request` closures over a request.
    pub(crate) fn rewrite_request(&self, request: &mut InboundRequest) {
        self.inner.requests_rewritten.fetch_add(1, Ordering::SeqCst);
        let hooks = hooks_for(&self.inner.request_hooks, "on_request").clone();
        for hook in hooks {
            hook(request);
        }
    }

    /// A recorded inbound hop with the `on_request` closures applied.
    pub(crate) fn rewrite_inbound(&self, ex: &Exchange) -> Exchange {
        let mut out = ex.clone();
        if hooks_for(&self.inner.request_hooks, "on_request").is_empty() {
            self.inner.requests_rewritten.fetch_add(1, Ordering::SeqCst);
            return out;
        }
        let mut request = InboundRequest::from_exchange(ex);
        self.rewrite_request(&mut request);
        request.apply(&mut out);
        out
    }

    /// What the `assert_body` closures say about one answer.
    pub(crate) fn body_failures(&self, recorded: &[u8], actual: &[u8]) -> Vec<String> {
        self.inner.bodies_checked.fetch_add(1, Ordering::SeqCst);
        let checks = match self.inner.body_checks.lock() {
            Ok(c) => c.clone(),
            Err(_) => {
                return vec![
                    "the session's list of assert_body closures was poisoned by a panic in \
                     another thread of this test, so none of them could run"
                        .to_owned(),
                ];
            }
        };
        if checks.is_empty() {
            return Vec::new();
        }
        let (recorded, actual) = (
            ResponseBody::new(recorded.to_vec()),
            ResponseBody::new(actual.to_vec()),
        );
        checks
            .iter()
            .filter_map(|check| check(&recorded, &actual).err())
            .collect()
    }

    /// The `assert_body` verdicts over a whole test: each inbound answer the test saw, paired
    /// in order with the recorded one of the same method and path.
    pub(crate) fn inbound_body_failures(
        &self,
        recorded: &[Exchange],
        observed: &[Exchange],
    ) -> Vec<String> {
        if self
            .inner
            .body_checked_inline
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return Vec::new();
        }
        let mut used = vec![false; recorded.len()];
        let mut out = Vec::new();
        for actual in observed
            .iter()
            .filter(|e| e.direction == Direction::Inbound)
        {
            let found = recorded.iter().enumerate().position(|(i, r)| {
                !used[i]
                    && r.direction == Direction::Inbound
                    && r.method.eq_ignore_ascii_case(&actual.method)
                    && r.path == actual.path
            });
            let Some(i) = found else { continue };
            used[i] = true;
            let bytes = |b: &Option<softprobe_runtime::case::Body>| {
                b.as_ref()
                    .map(|b| b.as_bytes().to_vec())
                    .unwrap_or_default()
            };
            for message in self.body_failures(
                &bytes(&recorded[i].response_body),
                &bytes(&actual.response_body),
            ) {
                out.push(format!(
                    "assert_body: {} {}: {message}",
                    actual.method, actual.path
                ));
            }
        }
        out
    }

    /// The closures that never ran although the test is over: `on_request` with no request
    /// sent through it, `assert_body` with no answer to check.
    pub(crate) fn idle_hooks(&self) {
        fn registered<T>(list: &Mutex<Vec<T>>) -> usize {
            list.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .len()
        }
        let requests = registered(&self.inner.request_hooks);
        if requests > 0 && self.inner.requests_rewritten.load(Ordering::SeqCst) == 0 {
            self.inner.hook_problems.push(format!(
                "on_request: {requests} closure(s) never ran: they rewrite the recorded requests \
                 that #[softprobe::cases] (or a suite) sends again, and this test sent none that \
                 way; a #[softprobe::case] test sets what it needs on the requests it sends"
            ));
        }
        let checks = registered(&self.inner.body_checks);
        if checks > 0 && self.inner.bodies_checked.load(Ordering::SeqCst) == 0 {
            self.inner.hook_problems.push(format!(
                "assert_body: {checks} closure(s) never ran: no answer of the service was paired \
                 with a recorded one (same method and path) to check"
            ));
        }
    }

    /// Runs a future to completion from a synchronous test body.
    pub fn block_on<F: Future>(&self, fut: F) -> F::Output {
        tokio::runtime::Handle::current().block_on(fut)
    }
}

/// The loaded case with lookups that fail loudly on zero or ambiguous matches.
#[derive(Debug, Clone)]
pub struct CaseView {
    /// Shared with every session replaying the case, and with their engines.
    case: IndexedCase,
}

impl CaseView {
    /// The case document.
    pub fn document(&self) -> &Case {
        self.case.case()
    }

    /// Every hop, in file order.
    pub fn exchanges(&self) -> &[Exchange] {
        self.case.exchanges()
    }

    /// Hops with this method whose path (or full URL) is `path_or_url`.
    pub fn find_all(&self, method: &str, path_or_url: &str) -> Vec<&Exchange> {
        self.exchanges()
            .iter()
            .filter(|e| e.method.eq_ignore_ascii_case(method))
            .filter(|e| e.path == path_or_url || e.url() == path_or_url)
            .collect()
    }

    /// The one hop with this method and path (or URL); an error names what was found when
    /// there is none or more than one.
    pub fn find(&self, method: &str, path_or_url: &str) -> Result<&Exchange> {
        let found = self.find_all(method, path_or_url);
        match found.as_slice() {
            [one] => Ok(one),
            [] => Err(Error::Lookup(format!(
                "case {}: no hop {method} {path_or_url}; it has: {}",
                self.case.case().case_id,
                self.exchanges()
                    .iter()
                    .map(|e| format!("{} {} {}", e.direction, e.method, e.url()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
            many => Err(Error::Lookup(format!(
                "case {}: {} hops match {method} {path_or_url}; use find_all",
                self.case.case().case_id,
                many.len()
            ))),
        }
    }

    /// The inbound hops: the requests the service received.
    pub fn inbound(&self) -> Vec<&Exchange> {
        self.exchanges()
            .iter()
            .filter(|e| e.direction == Direction::Inbound)
            .collect()
    }

    /// The outbound hops: the calls the service made.
    pub fn outbound(&self) -> Vec<&Exchange> {
        self.exchanges()
            .iter()
            .filter(|e| e.direction == Direction::Outbound)
            .collect()
    }
}
