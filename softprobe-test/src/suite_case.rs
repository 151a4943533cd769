//! The tests `#[softprobe::cases("x.suite.yaml")]` generates: each runs one case of the suite
//! with the suite's settings (request overrides, mocks, policy, assertions, executable hooks)
//! read at run time by `softprobe-runtime` and driven by its [`driver`], as `softprobe suite
//! run` drives each case, so `cargo test` and the CLI judge a case alike and fail with the
//! same text. Also the guard test that notices case files added
//! or removed since the tests were generated.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use softprobe_runtime::case::Exchange;
use softprobe_runtime::suite::assert::Message;
use softprobe_runtime::suite::driver::{self, CaseHost, Driven, HookContext};
use softprobe_runtime::suite::hooks::HookSet;
use softprobe_runtime::suite::report::{Failure, failures_text};
use softprobe_runtime::suite::steps::{self, fail};
use softprobe_runtime::suite::{PlannedCase, Suite};

use crate::__private::CaseSpec;
use crate::Session;
use crate::hooks::InboundRequest;
use crate::mode::{Mode, ModeSource};
use crate::run::Plan;

/// Which case of which suite a generated test runs.
#[derive(Debug, Clone, Copy)]
pub struct SuiteCase {
    /// The suite file, absolute.
    pub suite: &'static str,
    /// The case's position in the suite when the test was generated.
    pub index: usize,
    /// The case's name in the suite.
    pub name: &'static str,
}

/// Where a `#[softprobe::cases]` attribute found its case files.
#[derive(Debug, Clone, Copy)]
pub enum CaseFiles {
    /// A glob, relative to the crate's directory.
    Glob(&'static str),
    /// A suite file, absolute.
    Suite(&'static str),
}

/// How long an executable hook named by a suite may run.
const HOOK_TIMEOUT: Duration = Duration::from_secs(10);

fn load_suite(path: &str) -> Result<Suite, String> {
    softprobe_runtime::suite::load(Path::new(path), &BTreeMap::new())
        .map_err(|e| format!("softprobe: {e}"))
}

/// The planned case for `case`: at its index when the suite still lists it there, else by
/// name and file.
fn find(suite: &Suite, case: &SuiteCase, case_path: &str) -> Result<PlannedCase, String> {
    let same = |c: &PlannedCase| c.name == case.name && c.path == Path::new(case_path);
    suite
        .cases
        .get(case.index)
        .filter(|c| same(c))
        .or_else(|| suite.cases.iter().find(|c| same(c)))
        .cloned()
        .ok_or_else(|| {
            format!(
                "softprobe: {} no longer has the case {:?} ({case_path}) this test was generated for; rebuild the tests (touch the test source file)",
                case.suite, case.name
            )
        })
}

/// Runs one suite case: `app` starts the service and returns its base URL.
#[track_caller]
pub fn run_suite_case<F, Fut, U>(spec: CaseSpec, case: SuiteCase, app: F)
where
    F: FnOnce(Session) -> Fut,
    Fut: Future<Output = U>,
    U: Into<String>,
{
    let planned = match load_suite(case.suite).and_then(|s| {
        let p = find(&s, &case, spec.path)?;
        Ok((s, p))
    }) {
        Ok(p) => p,
        Err(msg) => panic!("{msg}\n  test: {}", spec.test_name),
    };
    let (suite, planned) = planned;
    run_planned(&spec, suite, planned, app);
}

/// Lists the cases of the suite at `suite_path` with this run's environment and runs each
/// (skipped ones are reported as such): the test `#[softprobe::cases]` generates for a suite
/// whose `cases` use a `${VAR}`. Fails naming every case that failed.
#[track_caller]
pub fn run_suite_cases<F, Fut, U>(spec: CaseSpec, suite_path: &str, app: F)
where
    F: FnOnce(Session) -> Fut + Clone,
    Fut: Future<Output = U>,
    U: Into<String>,
{
    let suite = match load_suite(suite_path) {
        Ok(s) => s,
        Err(msg) => panic!("{msg}\n  test: {}", spec.test_name),
    };
    let mut failed = Vec::new();
    for planned in &suite.cases {
        if let Some(reason) = &planned.skip {
            println!("softprobe: case {:?} skipped: {reason}", planned.name);
            continue;
        }
        let run = std::panic::AssertUnwindSafe(|| {
            run_planned(&spec, suite.clone(), planned.clone(), app.clone())
        });
        if let Err(panic) = std::panic::catch_unwind(run) {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            failed.push(message);
        }
    }
    if !failed.is_empty() {
        panic!(
            "softprobe: {} of the {} case(s) of suite {:?} ({suite_path}) failed:\n\n{}",
            failed.len(),
            suite.cases.len(),
            suite.file.name,
            failed.join("\n\n")
        );
    }
}

#[track_caller]
fn run_planned<F, Fut, U>(spec: &CaseSpec, suite: Suite, planned: PlannedCase, app: F)
where
    F: FnOnce(Session) -> Fut,
    Fut: Future<Output = U>,
    U: Into<String>,
{
    let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false");
    let plan = Plan {
        case_path: planned.path.clone(),
        mode: Mode::Replay,
        source: ModeSource::Attribute,
        ci,
        strict: false,
        partial: false,
        redact: Vec::new(),
        exact: Vec::new(),
        headers: Vec::new(),
        test_name: spec.test_name.to_owned(),
        record_command: format!(
            "the #[softprobe::case] test or `softprobe capture` session that produced {} (suite cases only replay)",
            planned.path.display()
        ),
    };
    let result = crate::run::execute(&plan, move |sp: Session| async move {
        if let Err(failures) = drive(&sp, &suite, &planned, app).await {
            panic!(
                "softprobe: suite {:?}, case {:?} ({}) failed:\n{}",
                suite.file.name,
                planned.name,
                planned.path.display(),
                failures_text(&failures)
            );
        }
    });
    if let Err(report) = result {
        panic!("{report}");
    }
}

async fn drive<F, Fut, U>(
    sp: &Session,
    suite: &Suite,
    case: &PlannedCase,
    app: F,
) -> Result<(), Vec<Failure>>
where
    F: FnOnce(Session) -> Fut,
    Fut: Future<Output = U>,
    U: Into<String>,
{
    // The suite's assertions judge the answers, not the default comparison.
    sp.inner.embedded.observer.skip_comparison(sp.id());
    sp.inner
        .body_checked_inline
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let exchanges: Vec<Exchange> = sp.case().exchanges().to_vec();
    let hooks = Arc::new(suite_hooks(suite).map_err(|f| vec![f])?);
    let mut host = Host {
        sp,
        app: Some(app),
        base: String::new(),
        client: sp.client(),
    };
    let mut driven = Driven::default();
    let context = HookContext {
        hooks: &hooks,
        suite_name: &suite.file.name,
    };
    if let Err(f) = driver::drive(&mut host, context, case, &exchanges, &mut driven).await {
        driven.failures.push(f);
    }
    if driven.failures.is_empty() {
        Ok(())
    } else {
        Err(driven.failures)
    }
}

/// The suite's hooks: executables looked up in `SOFTPROBE_HOOKS_DIR` first (the twin of
/// `--hooks DIR`), then next to the suite; JavaScript/TypeScript modules from the suite's
/// `hooks` list and from `SOFTPROBE_HOOKS` (paths separated as in `PATH`, the twin of
/// `--hooks FILE.ts`), loaded into one Node process for the case.
fn suite_hooks(suite: &Suite) -> Result<HookSet, Failure> {
    let dir = std::env::var_os("SOFTPROBE_HOOKS_DIR").map(PathBuf::from);
    let modules: Vec<PathBuf> = std::env::var_os("SOFTPROBE_HOOKS")
        .map(|v| std::env::split_paths(&v).collect())
        .unwrap_or_default();
    HookSet::new(suite, &modules, dir, HOOK_TIMEOUT)
        .map_err(|e| fail("hook", format!("hooks: {e}")))
}

/// A case driven over the test's [`Session`]: mocks and policy set on it, the service
/// started by the test's closure once they are, requests rewritten by the session's
/// closures and sent to the service.
struct Host<'a, F> {
    sp: &'a Session,
    /// The test's closure starting the service, until [`CaseHost::prepare`] calls it.
    app: Option<F>,
    base: String,
    client: reqwest::Client,
}

impl<F, Fut, U> CaseHost for Host<'_, F>
where
    F: FnOnce(Session) -> Fut,
    Fut: Future<Output = U>,
    U: Into<String>,
{
    async fn prepare(
        &mut self,
        rules: Option<Value>,
        policy: Option<&Value>,
    ) -> Result<(), Failure> {
        if let Some(rules) = rules {
            self.sp
                .rules(rules)
                .map_err(|e| fail("mock", format!("the suite's mocks: {e}")))?;
        }
        if let Some(policy) = policy {
            self.sp
                .policy(policy.clone())
                .map_err(|e| fail("policy", format!("the suite's policy: {e}")))?;
        }
        if let Some(app) = self.app.take() {
            self.base = app(self.sp.clone()).await.into();
        }
        Ok(())
    }

    async fn send(
        &mut self,
        request: &Map<String, Value>,
        url: Option<&str>,
    ) -> Result<Message, Failure> {
        let mut outgoing = inbound_request(request, url);
        self.sp.rewrite_request(&mut outgoing);
        send(&self.client, &self.base, &outgoing).await
    }

    fn extra_checks(&self, expected: &Message, actual: &Message) -> Vec<String> {
        self.sp.body_failures(&expected.body, &actual.body)
    }
}

/// The suite's `{method, path, headers, body}` as the request the closures rewrite.
/// `url` is the suite's `request.url`: only its path counts here, the test's service takes the
/// place of its host.
fn inbound_request(request: &Map<String, Value>, url: Option<&str>) -> InboundRequest {
    let text = |k: &str, default: &str| {
        request
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or(default)
            .to_owned()
    };
    let headers = match request.get("headers") {
        Some(Value::Object(h)) => h
            .iter()
            .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
            .collect(),
        _ => Vec::new(),
    };
    InboundRequest {
        method: text("method", "GET"),
        path: match url {
            Some(u) => {
                steps::path_of(&steps::target_url("", Some(u), &text("path", "/"))).to_owned()
            }
            None => text("path", "/"),
        },
        headers,
        body: steps::body_bytes(request.get("body").unwrap_or(&Value::Null)),
    }
}

async fn send(
    client: &reqwest::Client,
    base: &str,
    request: &InboundRequest,
) -> Result<Message, Failure> {
    let method = reqwest::Method::from_bytes(request.method.as_bytes())
        .map_err(|_| fail("request", format!("bad method {:?}", request.method)))?;
    let url = format!("{}{}", base.trim_end_matches('/'), request.path);
    let mut req = client.request(method.clone(), &url);
    for (k, v) in &request.headers {
        req = req.header(k.as_str(), v.as_str());
    }
    if !request.body.is_empty() {
        req = req.body(request.body.clone());
    }
    let resp = req
        .send()
        .await
        .map_err(|e| driver::unanswered(&method, &url, &e))?;
    let status = resp.status().as_u16();
    let headers = softprobe_runtime::headers::pairs(resp.headers());
    driver::receive(&method, &url, status, headers, resp.bytes()).await
}

/// The case files `files` names now.
fn current_files(spec: &CaseSpec, files: CaseFiles) -> Result<BTreeSet<String>, String> {
    match files {
        CaseFiles::Suite(path) => Ok(load_suite(path)?
            .cases
            .into_iter()
            .map(|c| c.path.display().to_string())
            .collect()),
        CaseFiles::Glob(pattern) => {
            let full = Path::new(spec.manifest_dir).join(pattern);
            let found = glob::glob(&full.to_string_lossy())
                .map_err(|e| format!("softprobe: bad glob {pattern:?}: {e}"))?;
            Ok(found
                .filter_map(std::result::Result::ok)
                .filter(|p| p.is_file())
                .map(|p| p.display().to_string())
                .collect())
        }
    }
}

/// The list of case files now against the one the tests were generated from.
fn difference(listed: &[&str], now: &BTreeSet<String>) -> (Vec<String>, Vec<String>) {
    let then: BTreeSet<String> = listed.iter().map(|s| (*s).to_owned()).collect();
    (
        now.difference(&then).cloned().collect(),
        then.difference(now).cloned().collect(),
    )
}

/// The guard test generated next to the per-case tests: fails when the glob or suite now
/// names other case files than when the tests were generated (a new file needs a rebuild to
/// get its test).
#[track_caller]
pub fn check_case_files(spec: CaseSpec, files: CaseFiles, listed: &[&str]) {
    let now = match current_files(&spec, files) {
        Ok(n) => n,
        Err(msg) => panic!("{msg}\n  test: {}", spec.test_name),
    };
    let (added, removed) = difference(listed, &now);
    if added.is_empty() && removed.is_empty() {
        return;
    }
    let source = match files {
        CaseFiles::Glob(p) | CaseFiles::Suite(p) => p,
    };
    let mut text = format!(
        "softprobe: the tests generated from {source:?} in {} are out of date: cargo built them before these case files changed.\n",
        spec.source_file
    );
    for f in &added {
        text.push_str(&format!("  added (no test yet): {f}\n"));
    }
    for f in &removed {
        text.push_str(&format!("  removed (its test still runs): {f}\n"));
    }
    text.push_str(&format!(
        "Rebuild the tests: `touch {}` (or `cargo clean -p {}`), then run the tests again.\n",
        spec.source_file, spec.package
    ));
    panic!("{text}");
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn differences_name_added_and_removed_files() {
        let now: BTreeSet<String> = ["a", "c"].map(String::from).into();
        let (added, removed) = difference(&["a", "b"], &now);
        assert_eq!(added, ["c"]);
        assert_eq!(removed, ["b"]);
        assert_eq!(difference(&["a", "c"], &now), (vec![], vec![]));
    }

    fn spec(dir: &Path) -> CaseSpec {
        CaseSpec {
            path: "cases/*.case.json",
            manifest_dir: Box::leak(dir.display().to_string().into_boxed_str()),
            package: "shop",
            test_name: "shop::checkout::__case_files_current",
            source_file: "tests/checkout.rs",
            mode: Some("replay"),
            strict: false,
            redact: &[],
        }
    }

    fn guard_message(spec: CaseSpec, files: CaseFiles, listed: &[&str]) -> Option<String> {
        std::panic::catch_unwind(|| check_case_files(spec, files, listed))
            .err()
            .map(|p| p.downcast_ref::<String>().cloned().unwrap_or_default())
    }

    #[test]
    fn the_guard_names_new_and_gone_case_files_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("cases")).unwrap();
        let a = dir.path().join("cases/a.case.json");
        let b = dir.path().join("cases/b.case.json");
        std::fs::write(&a, "{}").unwrap();
        let a_text = a.display().to_string();
        let glob = CaseFiles::Glob("cases/*.case.json");
        assert_eq!(guard_message(spec(dir.path()), glob, &[&a_text]), None);

        std::fs::write(&b, "{}").unwrap();
        std::fs::remove_file(&a).unwrap();
        let msg = guard_message(spec(dir.path()), glob, &[&a_text]).unwrap();
        assert!(
            msg.contains(&format!("added (no test yet): {}", b.display())),
            "{msg}"
        );
        assert!(
            msg.contains(&format!("removed (its test still runs): {a_text}")),
            "{msg}"
        );
        assert!(
            msg.contains("`touch tests/checkout.rs` (or `cargo clean -p shop`)"),
            "{msg}"
        );

        let suite = dir.path().join("s.suite.yaml");
        std::fs::write(&suite, "name: s\ncases: cases/*.case.json\n").unwrap();
        let suite_text: &'static str = Box::leak(suite.display().to_string().into_boxed_str());
        let listed = [b.display().to_string()];
        let listed: Vec<&str> = listed.iter().map(String::as_str).collect();
        assert_eq!(
            guard_message(spec(dir.path()), CaseFiles::Suite(suite_text), &listed),
            None
        );
        std::fs::write(&a, "{}").unwrap();
        let msg = guard_message(spec(dir.path()), CaseFiles::Suite(suite_text), &listed).unwrap();
        assert!(msg.contains("added (no test yet)"), "{msg}");
    }

    #[test]
    fn requests_from_the_suite_shape() {
        let mut m = Map::new();
        m.insert("method".into(), json!("POST"));
        m.insert("path".into(), json!("/checkout?x=1"));
        m.insert(
            "headers".into(),
            json!({"content-type": "application/json"}),
        );
        m.insert("body".into(), json!({"amount": 1}));
        let r = inbound_request(&m, None);
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/checkout?x=1");
        assert_eq!(r.header("Content-Type"), Some("application/json"));
        assert_eq!(r.json(), Some(json!({"amount": 1})));
        // A suite's `request.url` gives the path; its host is the test's service.
        m.insert("path".into(), json!("/checkout"));
        let r = inbound_request(&m, Some("http://127.0.0.1:8082/checkout"));
        assert_eq!(r.path, "/checkout");
        let r = inbound_request(&m, Some("http://127.0.0.1:8082/api"));
        assert_eq!(r.path, "/api/checkout");
    }
}
