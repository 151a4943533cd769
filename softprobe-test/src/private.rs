//! The entry point that `#[softprobe::case]` expands to. Not public API: names here may change
//! in any release.

use std::fmt::Debug;
use std::future::Future;
use std::path::{Path, PathBuf};

use crate::Session;
use crate::embedded::Control;
use crate::mode::{self, Mode, ModeSource};
use crate::session::on_shared;
use crate::verify;

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
        rt.block_on(self()).into_outcome()
    }
}

impl<F, Fut> TestFn<(AsyncWithSession, Fut)> for F
where
    F: FnOnce(Session) -> Fut,
    Fut: Future,
    Fut::Output: TestResult,
{
    fn run(self, rt: &tokio::runtime::Runtime, session: Session) -> Result<(), String> {
        rt.block_on(self(session)).into_outcome()
    }
}

/// Runs one case test. Panics (failing the test) with a message that says what to do.
#[track_caller]
pub fn run_case<M, F: TestFn<M>>(spec: CaseSpec, test: F) {
    let case_path = spec.case_path();
    let env_mode = std::env::var("SOFTPROBE_MODE").ok();
    let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false");
    let (mode, source) = match mode::resolve(spec.mode, env_mode.as_deref(), ci, &case_path) {
        Ok(m) => m,
        Err(msg) => panic!("softprobe: {msg} (test {})", spec.test_name),
    };
    let loaded = match mode {
        Mode::Capture => None,
        Mode::Replay => Some(load_case(&spec, &case_path, source, ci)),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("softprobe: cannot start a tokio runtime for the test");
    let session = match Session::open(mode, case_path.clone(), spec.test_name, loaded) {
        Ok(s) => s,
        Err(e) => panic!("softprobe: test {}: {e}", spec.test_name),
    };
    let handle = session.clone();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        test.run(&rt, session)
    }));
    let verdict = finish(&spec, &handle, outcome.is_ok() && matches!(outcome, Ok(Ok(()))));
    match outcome {
        Err(panic) => {
            if let Err(report) = verdict {
                eprintln!("{report}");
            }
            std::panic::resume_unwind(panic)
        }
        Ok(Err(err)) => {
            let extra = verdict.err().map(|r| format!("\n\n{r}")).unwrap_or_default();
            panic!(
                "softprobe: test {} returned an error: {err}{extra}",
                spec.test_name
            )
        }
        Ok(Ok(())) => {
            if let Err(report) = verdict {
                panic!("{report}");
            }
        }
    }
}

fn load_case(
    spec: &CaseSpec,
    case_path: &Path,
    source: ModeSource,
    ci: bool,
) -> (std::sync::Arc<softprobe_runtime::case::Case>, Vec<u8>) {
    let bytes = match std::fs::read(case_path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let why = match source {
                ModeSource::Attribute => "the attribute sets mode = \"replay\"",
                ModeSource::Environment if ci => {
                    "SOFTPROBE_MODE asks for it, and CI never captures"
                }
                ModeSource::Environment => "SOFTPROBE_MODE asks for it",
                ModeSource::Default => "replay is the default mode",
            };
            panic!(
                "softprobe: case file not found: {}\n  test: {}\n  mode: replay ({why})\n\nRecord it with:\n  {}\n",
                case_path.display(),
                spec.test_name,
                spec.record_command(),
            );
        }
        Err(e) => panic!("softprobe: cannot read {}: {e}", case_path.display()),
    };
    let source_name = case_path.display().to_string();
    match softprobe_runtime::case::Case::from_slice_named(&bytes, &source_name) {
        Ok(case) => (std::sync::Arc::new(case), bytes),
        Err(e) => panic!(
            "softprobe: {e}\n\nFix the file, or record it again with:\n  {}\n",
            spec.record_command()
        ),
    }
}

/// Tears the session down and judges it. `Err` carries the report to fail the test with.
fn finish(spec: &CaseSpec, session: &Session, passed: bool) -> Result<(), String> {
    let inner = &session.inner;
    let embedded = inner.embedded;
    let ingresses: Vec<_> = inner
        .ingresses
        .lock()
        .map(|mut v| v.drain(..).collect())
        .unwrap_or_default();
    let apps: Vec<_> = inner
        .apps
        .lock()
        .map(|mut v| v.drain(..).collect())
        .unwrap_or_default();
    on_shared(embedded, async move {
        for ingress in ingresses {
            ingress.shutdown().await;
        }
        for app in apps {
            app.abort();
        }
    });
    let observed = embedded.observer.take(&inner.id);
    match inner.mode {
        Mode::Capture => finish_capture(spec, session, passed, &observed.exchanges),
        Mode::Replay => finish_replay(spec, session, &observed),
    }
}

fn finish_capture(
    spec: &CaseSpec,
    session: &Session,
    passed: bool,
    observed: &[softprobe_runtime::case::Exchange],
) -> Result<(), String> {
    let inner = &session.inner;
    let path = inner.case_path.clone();
    if !passed {
        let _ = close(session, None);
        return Err(format!(
            "softprobe: capture of {} not written because the test failed; the previous file (if any) is unchanged",
            path.display()
        ));
    }
    close(session, Some(&path)).map_err(|e| {
        format!("softprobe: cannot write the capture of {}: {e}", spec.test_name)
    })?;
    println!(
        "softprobe: captured {} hop(s) into {}\n{}",
        observed.len(),
        path.display(),
        verify::summary(observed)
    );
    Ok(())
}

fn close(session: &Session, out: Option<&Path>) -> Result<(), String> {
    let inner = &session.inner;
    match &inner.embedded.control {
        Control::Local(store) => store
            .close(&inner.id, out)
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Control::Remote { base, token } => {
            let mut url = format!("{base}/v1/sessions/{}/close", inner.id);
            if let Some(out) = out {
                let abs = std::path::absolute(out).unwrap_or_else(|_| out.to_owned());
                url.push_str("?out=");
                url.push_str(&abs.display().to_string().replace(' ', "%20"));
            }
            let token = token.clone();
            on_shared(inner.embedded, async move {
                let client = reqwest::Client::builder()
                    .no_proxy()
                    .build()
                    .map_err(|e| e.to_string())?;
                let mut req = client.post(url).header("content-type", "application/json").body("{}");
                if let Some(t) = token {
                    req = req.bearer_auth(t);
                }
                let resp = req.send().await.map_err(|e| e.to_string())?;
                if resp.status().is_success() {
                    Ok(())
                } else {
                    Err(format!("{}: {}", resp.status(), resp.text().await.unwrap_or_default()))
                }
            })
        }
    }
}

fn finish_replay(
    spec: &CaseSpec,
    session: &Session,
    observed: &crate::embedded::Observed,
) -> Result<(), String> {
    let inner = &session.inner;
    let mut failures = verify::miss_failures(&observed.misses);
    let redactions = verify::Redactions::parse(spec.redact);
    let view = inner.case.as_ref();
    if let Some(view) = view {
        failures.extend(verify::inbound_failures(
            view.exchanges(),
            &observed.exchanges,
            &redactions,
        ));
    }
    if spec.strict
        && let Control::Local(store) = &inner.embedded.control
        && let Ok(s) = store.session(&inner.id)
    {
        for unused in s.read().engine.unused_captures() {
            failures.push(format!(
                "strict: the case recorded {} {} but the test never made that call",
                unused.method,
                unused.url()
            ));
        }
    }
    let _ = close(session, None);
    if failures.is_empty() {
        return Ok(());
    }
    let case_id = view
        .map(|v| v.document().case_id.clone())
        .unwrap_or_else(|| inner.id.clone());
    let evidence = verify::write_evidence(&inner.case_path, &case_id, &observed.exchanges);
    let mut text = format!(
        "softprobe: {} does not replay {}\n",
        spec.test_name,
        inner.case_path.display()
    );
    for (i, f) in failures.iter().enumerate() {
        text.push_str(&format!("\n{}. {}\n", i + 1, f.trim_end()));
    }
    if let Some(path) = evidence {
        text.push_str(&format!("\nWhat the test exchanged is in {path}\n"));
    }
    text.push_str(&format!(
        "If the new behaviour is right, record the case again with:\n  {}\n",
        spec.record_command()
    ));
    Err(text)
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
