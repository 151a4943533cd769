//! The entry point that `#[softprobe::case]` expands to. Not public API: names here may change
//! in any release.

use std::fmt::Debug;
use std::future::Future;
use std::path::{Path, PathBuf};

use crate::Session;
use crate::mode;
use crate::run::Plan;

/// Call-site facts the attribute captures.
#[derive(Debug, Clone, Copy)]
pub struct CaseSpec {
    /// The case path as written in the attribute, relative to the crate root.
    pub path: &'static str,
    /// `CARGO_MANIFEST_DIR` of the crate holding the test.
    pub manifest_dir: &'static str,
    /// `CARGO_PKG_NAME` of that crate.
    pub package: &'static str,
    /// `module_path!()::function`.
    pub test_name: &'static str,
    /// `file!()` of the test.
    pub source_file: &'static str,
    /// The attribute's `mode`, when given.
    pub mode: Option<&'static str>,
    /// The attribute's `strict` flag.
    pub strict: bool,
    /// The attribute's `redact(...)` selectors.
    pub redact: &'static [&'static str],
}

impl CaseSpec {
    fn case_path(&self) -> PathBuf {
        let path = Path::new(self.path);
        if path.is_absolute() {
            path.to_owned()
        } else {
            Path::new(self.manifest_dir).join(path)
        }
    }

    /// The name libtest knows the test by: the module path without the crate name.
    fn test_filter(&self) -> &str {
        self.test_name
            .split_once("::")
            .map(|(_, rest)| rest)
            .unwrap_or(self.test_name)
    }

    /// The exact command that (re)records this test's case.
    pub fn record_command(&self) -> String {
        format!(
            "SOFTPROBE_MODE=capture cargo test -p {} -- {} --exact",
            self.package,
            self.test_filter()
        )
    }
}

/// What a test function may return: `()` or `Result<(), E: Debug>`.
pub trait TestResult {
    /// `Err` carries the error's `Debug` text.
    fn into_outcome(self) -> Result<(), String>;
}

impl TestResult for () {
    fn into_outcome(self) -> Result<(), String> {
        Ok(())
    }
}

impl<E: Debug> TestResult for Result<(), E> {
    fn into_outcome(self) -> Result<(), String> {
        self.map_err(|e| format!("{e:?}"))
    }
}

/// Marker: `fn()`.
pub struct SyncNoSession;
/// Marker: `fn(Session)`.
pub struct SyncWithSession;
/// Marker: `async fn()`.
pub struct AsyncNoSession;
/// Marker: `async fn(Session)`.
pub struct AsyncWithSession;

/// The signatures a case test may have. The marker is inferred from the function, so an
/// unsupported signature is an ordinary "trait bound not satisfied" error at the test.
pub trait TestFn<Marker> {
    /// Runs the test body on `rt` and returns its outcome.
    fn run(self, rt: &tokio::runtime::Runtime, session: Session) -> Result<(), String>;
}

impl<F, R> TestFn<(SyncNoSession, R)> for F
where
    F: FnOnce() -> R,
    R: TestResult,
{
    fn run(self, rt: &tokio::runtime::Runtime, _session: Session) -> Result<(), String> {
        let _guard = rt.enter();
        self().into_outcome()
    }
}

impl<F, R> TestFn<(SyncWithSession, R)> for F
where
    F: FnOnce(Session) -> R,
    R: TestResult,
{
    fn run(self, rt: &tokio::runtime::Runtime, session: Session) -> Result<(), String> {
        let _guard = rt.enter();
        self(session).into_outcome()
    }
}

impl<F, Fut> TestFn<(AsyncNoSession, Fut)> for F
where
    F: FnOnce() -> Fut,
    Fut: Future,
    Fut::Output: TestResult,
{
    fn run(self, rt: &tokio::runtime::Runtime, _session: Session) -> Result<(), String> {
        block_on_boxed(rt, Box::pin(async move { self().await.into_outcome() }))
    }
}

impl<F, Fut> TestFn<(AsyncWithSession, Fut)> for F
where
    F: FnOnce(Session) -> Fut,
    Fut: Future,
    Fut::Output: TestResult,
{
    fn run(self, rt: &tokio::runtime::Runtime, session: Session) -> Result<(), String> {
        block_on_boxed(
            rt,
            Box::pin(async move { self(session).await.into_outcome() }),
        )
    }
}

/// A test body with its type erased: what the non-generic part of the harness runs.
pub(crate) type TestBody<'a> =
    Box<dyn FnOnce(&tokio::runtime::Runtime, Session) -> Result<(), String> + 'a>;

/// The test's future, boxed, so that the runtime's `block_on` is compiled once for every test
/// of a crate rather than once per test.
fn block_on_boxed(
    rt: &tokio::runtime::Runtime,
    test: std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + '_>>,
) -> Result<(), String> {
    rt.block_on(test)
}

/// Options of `#[softprobe::case]` added after [`CaseSpec`], kept apart so code that builds a
/// `CaseSpec` keeps compiling.
#[derive(Debug, Clone, Copy, Default)]
pub struct CaseOptions {
    /// The attribute's `headers(...)`: headers compared on top of the defaults, in the
    /// service's responses and in its outbound requests.
    pub headers: &'static [&'static str],
    /// The attribute's `partial` flag: the test sends only some of the recorded inbound
    /// requests, on purpose.
    pub partial: bool,
    /// The attribute's `exact(...)`: request fields compared by value even when they look
    /// volatile.
    pub exact: &'static [&'static str],
}

/// Runs one case test with the attribute's options. Panics (failing the test) with a
/// message that says what to do.
///
/// The only generic step is boxing the test: everything else is compiled once, however many
/// tests a crate has (each test's own code is its body and this call).
#[track_caller]
pub fn run_case_with<M, F: TestFn<M>>(spec: CaseSpec, options: CaseOptions, test: F) {
    run_case(
        spec,
        options,
        Box::new(move |rt, session| test.run(rt, session)),
    );
}

#[track_caller]
fn run_case(spec: CaseSpec, options: CaseOptions, test: TestBody<'_>) {
    let case_path = spec.case_path();
    let env_mode = std::env::var("SOFTPROBE_MODE").ok();
    let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false");
    let (mode, source) = match mode::resolve(spec.mode, env_mode.as_deref(), ci, &case_path) {
        Ok(m) => m,
        Err(msg) => panic!("softprobe: {msg} (test {})", spec.test_name),
    };
    let plan = Plan {
        case_path,
        mode,
        source,
        ci,
        strict: spec.strict,
        partial: options.partial,
        redact: spec.redact.iter().map(|s| (*s).to_owned()).collect(),
        headers: options.headers.iter().map(|s| (*s).to_owned()).collect(),
        exact: options.exact.iter().map(|s| (*s).to_owned()).collect(),
        test_name: spec.test_name.to_owned(),
        record_command: spec.record_command(),
    };
    if let Err(failure) = crate::run::execute_body(&plan, test) {
        panic!("{failure}");
    }
}

pub use insta;

/// Where `softprobe::assert_response!` was called: what insta names the snapshot file from.
#[derive(Debug, Clone, Copy)]
pub struct SnapshotSite<'a> {
    /// insta's workspace root for the calling crate (`insta::_get_workspace_root!()`).
    pub workspace: &'a Path,
    /// `module_path!()` at the call.
    pub module_path: &'a str,
    /// `file!()` at the call.
    pub file: &'a str,
    /// The snapshot name the test gave.
    pub name: &'a str,
    /// The assertion as written (`assert_response!(sp, "checkout", resp)`), for the
    /// snapshot header.
    pub expression: &'a str,
}

/// In capture mode, queues the snapshot to be written (over any older one) when the test
/// passes and returns `true`: the caller then skips insta's comparison, because a recording
/// run records the answers rather than judging them. In replay mode returns `false` and
/// insta asserts as usual.
#[track_caller]
pub fn capture_snapshot(sp: &Session, text: &str, site: SnapshotSite<'_>) -> bool {
    if sp.mode() != crate::Mode::Capture {
        return false;
    }
    let pending = crate::verify::PendingSnapshot::new(site, text);
    let mut queued = sp
        .inner
        .snapshots
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Err(msg) = crate::verify::queue_snapshot(&mut queued, pending) {
        drop(queued);
        panic!("{msg}");
    }
    true
}

// `#[softprobe::cases("x.suite.yaml")]` and the case-files guard.
pub use crate::suite_case::{
    CaseFiles, SuiteCase, check_case_files, run_suite_case, run_suite_cases,
};

/// The text `softprobe::assert_response!` snapshots for a response.
pub async fn response_snapshot(sp: &Session, resp: reqwest::Response) -> String {
    let status = resp.status().as_u16();
    let headers = softprobe_runtime::headers::pairs(resp.headers());
    let body = resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
    crate::verify::snapshot_text(
        status,
        &headers,
        &body,
        &sp.inner.redact,
        &sp.inner.compared_headers,
    )
}

/// Runs one test generated by `#[softprobe::cases]`: `app` starts the service and returns
/// its base URL; every inbound request the case recorded is sent to it again, and the answers
/// are compared with the recorded ones at the end of the test.
#[track_caller]
pub fn run_inbound_replay_with<F, Fut, U>(spec: CaseSpec, options: CaseOptions, app: F)
where
    F: FnOnce(Session) -> Fut,
    Fut: Future<Output = U>,
    U: Into<String>,
{
    run_case_with(spec, options, move |sp: Session| async move {
        let base: String = app(sp.clone()).await.into();
        let requests: Vec<_> = sp.case().inbound().into_iter().cloned().collect();
        let client = sp.client();
        for ex in requests {
            let ex = sp.rewrite_inbound(&ex);
            crate::verify::resend(&client, &base, &ex).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(path: &'static str) -> CaseSpec {
        CaseSpec {
            path,
            manifest_dir: "/work/app",
            package: "checkout",
            test_name: "checkout::tests::happy_path",
            source_file: "src/lib.rs",
            mode: None,
            strict: false,
            redact: &[],
        }
    }

    #[test]
    fn record_command_names_package_and_exact_test() {
        assert_eq!(
            spec("cases/x.case.json").record_command(),
            "SOFTPROBE_MODE=capture cargo test -p checkout -- tests::happy_path --exact"
        );
        assert_eq!(
            spec("cases/x.case.json").case_path(),
            Path::new("/work/app/cases/x.case.json")
        );
        assert_eq!(
            spec("/abs/x.case.json").case_path(),
            Path::new("/abs/x.case.json")
        );
    }
}
