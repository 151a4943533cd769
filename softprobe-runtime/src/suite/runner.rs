//! Runs a suite: a bounded pool of workers, one replay session per case on the runtime, the
//! case's mocks and policy installed, each captured inbound request sent again through the
//! application's ingress proxy with the session header, the responses checked, the session
//! closed. Everything goes over HTTP, exactly as a CI job in another language would drive it;
//! each case is driven by [`super::driver`], as the tests `#[softprobe::cases]` generates are.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use super::SuiteError;
use super::assert::Message;
use super::driver::{self, CaseHost, Driven, HookContext};
use super::hooks::HookSet;
use super::model::{PlannedCase, Suite};
use super::report::{CaseResult, CaseStatus, Failure, SuiteReport};
use super::steps::{self, fail};
use crate::case::Case;
use crate::error::root_cause;
use crate::verdict::{SessionFindings, Verdict};

/// Called with each case's result as it finishes (progress bars, live logs).
pub type CaseCallback = Arc<dyn Fn(&CaseResult) + Send + Sync>;

/// How to run a suite.
#[derive(Clone)]
pub struct RunOptions {
    /// Control API of the runtime, e.g. `http://127.0.0.1:8080`.
    pub runtime_url: String,
    /// Bearer token for the runtime.
    pub token: Option<String>,
    /// The application's ingress proxy, e.g. `http://127.0.0.1:8082`.
    pub app_url: String,
    /// Cases in flight at once (at least 1).
    pub parallel: usize,
    /// Run only cases whose name or path contains this.
    pub filter: Option<String>,
    /// Start no new case after the first failure.
    pub fail_fast: bool,
    /// Where executable hooks named in the suite are looked up first.
    pub hooks_dir: Option<PathBuf>,
    /// JavaScript/TypeScript hook modules (`--hooks FILE.js|.mjs|.ts`), loaded into one Node
    /// process.
    pub hook_modules: Vec<PathBuf>,
    /// How long a hook may run.
    pub hook_timeout: Duration,
    /// Called as each case finishes, from the worker that ran it.
    pub on_case: Option<CaseCallback>,
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("runtime_url", &self.runtime_url)
            .field("token", &self.token.as_ref().map(|_| "[REDACTED]"))
            .field("app_url", &self.app_url)
            .field("parallel", &self.parallel)
            .field("filter", &self.filter)
            .field("fail_fast", &self.fail_fast)
            .field("hooks_dir", &self.hooks_dir)
            .field("hook_modules", &self.hook_modules)
            .field("hook_timeout", &self.hook_timeout)
            .field("on_case", &self.on_case.is_some())
            .finish()
    }
}

impl RunOptions {
    /// Options with the defaults: 8 cases in flight, 10 s per hook.
    pub fn new(runtime_url: impl Into<String>, app_url: impl Into<String>) -> Self {
        RunOptions {
            runtime_url: runtime_url.into(),
            token: None,
            app_url: app_url.into(),
            parallel: 8,
            filter: None,
            fail_fast: false,
            hooks_dir: None,
            hook_modules: Vec::new(),
            hook_timeout: Duration::from_secs(10),
            on_case: None,
        }
    }
}

struct Shared {
    http: reqwest::Client,
    runtime: String,
    app: String,
    token: Option<String>,
    hooks: Arc<HookSet>,
    suite_name: String,
    stop: AtomicBool,
    fail_fast: bool,
    on_case: Option<CaseCallback>,
}

/// Runs the suite and returns every case's result. Fails only when the runtime cannot be
/// reached at all or the hook modules cannot be loaded; everything else is a failed case.
pub async fn run(suite: &Suite, opts: &RunOptions) -> Result<SuiteReport, SuiteError> {
    let http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(opts.parallel.max(1) * 2)
        .build()
        .map_err(|e| SuiteError::Runtime {
            url: opts.runtime_url.clone(),
            message: e.to_string(),
        })?;
    // Hook modules load first: a module that does not load is the suite's fault, whatever
    // the runtime's state.
    let (set_suite, modules, dir, timeout) = (
        suite.clone(),
        opts.hook_modules.clone(),
        opts.hooks_dir.clone(),
        opts.hook_timeout,
    );
    let hooks =
        tokio::task::spawn_blocking(move || HookSet::new(&set_suite, &modules, dir, timeout))
            .await
            .map_err(|e| SuiteError::Hooks(e.to_string()))?
            .map_err(SuiteError::Hooks)?;
    let runtime = opts.runtime_url.trim_end_matches('/').to_owned();
    let health = http.get(format!("{runtime}/health")).send().await;
    if let Err(e) = health {
        return Err(SuiteError::Runtime {
            url: runtime,
            message: root_cause(&e),
        });
    }
    let shared = Arc::new(Shared {
        http,
        runtime,
        app: opts.app_url.trim_end_matches('/').to_owned(),
        token: opts.token.clone().filter(|t| !t.is_empty()),
        hooks: Arc::new(hooks),
        suite_name: suite.file.name.clone(),
        stop: AtomicBool::new(false),
        fail_fast: opts.fail_fast,
        on_case: opts.on_case.clone(),
    });
    let cases: Vec<PlannedCase> = suite
        .cases
        .iter()
        .filter(|c| match &opts.filter {
            Some(f) => c.name.contains(f.as_str()) || c.path.to_string_lossy().contains(f.as_str()),
            None => true,
        })
        .cloned()
        .collect();
    let started = Instant::now();
    let semaphore = Arc::new(tokio::sync::Semaphore::new(opts.parallel.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let mut results: Vec<Option<CaseResult>> = vec![None; cases.len()];
    for (i, case) in cases.into_iter().enumerate() {
        if let Some(reason) = &case.skip {
            results[i] = Some(skipped(&case, reason.clone()));
            continue;
        }
        let permit = semaphore
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        if shared.stop.load(Ordering::Relaxed) {
            results[i] = Some(skipped(
                &case,
                "not run: --fail-fast stopped the suite".into(),
            ));
            continue;
        }
        let shared = shared.clone();
        tasks.spawn(async move {
            let result = run_case(&shared, &case).await;
            if let Some(cb) = &shared.on_case {
                cb(&result);
            }
            if result.status == CaseStatus::Failed && shared.fail_fast {
                shared.stop.store(true, Ordering::Relaxed);
            }
            drop(permit);
            (i, result)
        });
        // Collect what already finished so memory stays flat on very large suites.
        while let Some(done) = tasks.try_join_next() {
            match done {
                Ok((j, r)) => results[j] = Some(r),
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            }
        }
    }
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok((j, r)) => results[j] = Some(r),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    let results = results
        .into_iter()
        .map(|r| r.expect("every case has a result"))
        .collect();
    Ok(SuiteReport::new(
        suite.file.name.clone(),
        results,
        started.elapsed(),
    ))
}

fn skipped(case: &PlannedCase, reason: String) -> CaseResult {
    CaseResult {
        name: case.name.clone(),
        path: case.path.display().to_string(),
        status: CaseStatus::Skipped,
        duration_ms: 0.0,
        skip_reason: Some(reason),
        failures: Vec::new(),
        expected: Vec::new(),
        actual: Vec::new(),
    }
}

async fn run_case(sh: &Shared, case: &PlannedCase) -> CaseResult {
    let started = Instant::now();
    let mut result = CaseResult {
        name: case.name.clone(),
        path: case.path.display().to_string(),
        status: CaseStatus::Passed,
        duration_ms: 0.0,
        skip_reason: None,
        failures: Vec::new(),
        expected: Vec::new(),
        actual: Vec::new(),
    };
    let mut host = Host {
        sh,
        bytes: Vec::new(),
        session: None,
    };
    let mut driven = Driven::default();
    if let Err(f) = run_steps(&mut host, case, &mut driven).await {
        driven.failures.push(f);
    }
    result.failures = driven.failures;
    result.expected = driven.expected;
    result.actual = driven.actual;
    if let Some(id) = host.session
        && let Err(f) = control(sh, &format!("/v1/sessions/{id}/close"), json!({})).await
    {
        result.failures.push(f);
    }
    if !result.failures.is_empty() {
        result.status = CaseStatus::Failed;
    }
    result.duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    result
}

/// Reads the case, drives it ([`driver::drive`]), then adds what the session noticed itself.
async fn run_steps(
    host: &mut Host<'_>,
    case: &PlannedCase,
    driven: &mut Driven,
) -> Result<(), Failure> {
    // Case files are small; a blocking read here costs less than a thread hop.
    let bytes = std::fs::read(&case.path)
        .map_err(|e| fail("case", format!("cannot read {}: {e}", case.path.display())))?;
    let shown = case.path.display().to_string();
    let parsed = Case::from_slice_named(&bytes, &shown).map_err(|e| fail("case", e.to_string()))?;
    let exchanges = parsed
        .exchanges_named(&shown)
        .map_err(|e| fail("case", e.to_string()))?;
    host.bytes = bytes;
    let sh = host.sh;
    let hooks = HookContext {
        hooks: &sh.hooks,
        suite_name: &sh.suite_name,
    };
    driver::drive(host, hooks, case, &exchanges, driven).await?;
    // What the session noticed itself: outbound calls nothing answered, outbound requests
    // that drifted from their recording.
    let id = host.session.clone().unwrap_or_default();
    let state = control_get(sh, &format!("/v1/sessions/{id}/state")).await?;
    let found = SessionFindings::from_state(&state).map_err(|e| fail("runtime", e))?;
    let mut verdict = Verdict::new(&case.name, &shown);
    verdict.add_session(found, false);
    driven
        .failures
        .extend(verdict.findings.iter().map(|finding| Failure {
            kind: finding.kind().to_owned(),
            message: finding.to_string(),
            diff: None,
        }));
    Ok(())
}

/// A case driven over the control API: a replay session per case, requests sent to the
/// application's ingress with the session header.
struct Host<'a> {
    sh: &'a Shared,
    /// The case file, loaded into the session as is.
    bytes: Vec<u8>,
    session: Option<String>,
}

impl CaseHost for Host<'_> {
    async fn prepare(
        &mut self,
        rules: Option<Value>,
        policy: Option<&Value>,
    ) -> Result<(), Failure> {
        let sh = self.sh;
        let created = control(sh, "/v1/sessions", json!({"mode": "replay"})).await?;
        let id = created["sessionId"]
            .as_str()
            .ok_or_else(|| fail("runtime", format!("session create answered {created}")))?
            .to_owned();
        self.session = Some(id.clone());
        let bytes = std::mem::take(&mut self.bytes);
        control_bytes(sh, &format!("/v1/sessions/{id}/load-case"), bytes).await?;
        if let Some(rules) = rules {
            control(sh, &format!("/v1/sessions/{id}/rules"), rules).await?;
        }
        if let Some(policy) = policy {
            control(sh, &format!("/v1/sessions/{id}/policy"), policy.clone()).await?;
        }
        Ok(())
    }

    async fn send(
        &mut self,
        request: &Map<String, Value>,
        url: Option<&str>,
    ) -> Result<Message, Failure> {
        let session = self.session.as_deref().unwrap_or_default();
        send(self.sh, session, url, request).await
    }
}

async fn control_get(sh: &Shared, path: &str) -> Result<Value, Failure> {
    let req = sh.http.get(format!("{}{path}", sh.runtime));
    finish(sh, path, req).await
}

async fn send(
    sh: &Shared,
    session: &str,
    url: Option<&str>,
    request: &Map<String, Value>,
) -> Result<Message, Failure> {
    let method = request
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or("GET");
    let method = reqwest::Method::from_bytes(method.as_bytes())
        .map_err(|_| fail("request", format!("bad method {method:?}")))?;
    let path = request.get("path").and_then(Value::as_str).unwrap_or("/");
    if url.is_none() && sh.app.is_empty() {
        return Err(fail(
            "request",
            "no application URL: give request.url in the suite, pass --app-url, or set SOFTPROBE_APP_URL or APP_URL",
        ));
    }
    let url = steps::target_url(&sh.app, url, path);
    let mut req = sh.http.request(method.clone(), &url);
    if let Some(Value::Object(h)) = request.get("headers") {
        for (k, v) in h {
            if let Some(v) = v.as_str() {
                req = req.header(k.as_str(), v);
            }
        }
    }
    req = req.header("x-softprobe-session-id", session);
    let body = steps::body_bytes(request.get("body").unwrap_or(&Value::Null));
    if !body.is_empty() {
        req = req.body(body);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| driver::unanswered(&method, &url, &e))?;
    let status = resp.status().as_u16();
    let headers = crate::headers::pairs(resp.headers());
    driver::receive(&method, &url, status, headers, resp.bytes()).await
}

async fn control(sh: &Shared, path: &str, body: Value) -> Result<Value, Failure> {
    let req = sh.http.post(format!("{}{path}", sh.runtime)).json(&body);
    finish(sh, path, req).await
}

async fn control_bytes(sh: &Shared, path: &str, body: Vec<u8>) -> Result<Value, Failure> {
    let req = sh
        .http
        .post(format!("{}{path}", sh.runtime))
        .header("content-type", "application/json")
        .body(body);
    finish(sh, path, req).await
}

async fn finish(
    sh: &Shared,
    path: &str,
    mut req: reqwest::RequestBuilder,
) -> Result<Value, Failure> {
    if let Some(t) = &sh.token {
        req = req.bearer_auth(t);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| fail("runtime", format!("{path}: {}", root_cause(&e))))?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    if status.is_success() {
        Ok(body)
    } else {
        let message = body["error"]["message"]
            .as_str()
            .map_or_else(|| body.to_string(), str::to_owned);
        Err(fail(
            "runtime",
            format!("{path} answered {status}: {message}"),
        ))
    }
}
