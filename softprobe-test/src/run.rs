//! Running one case: open a session in the right mode, run the test body, then judge what
//! happened ([`crate::verify`]) and write the capture or the evidence. The attribute reaches
//! this through `__private::run_case`; [`Run`] is the same thing for code that computes its
//! case paths or wants the verdict as a value.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use softprobe_runtime::replay::IndexedCase;
use softprobe_runtime::verdict::{Finding, Verdict};

use crate::__private::TestBody;
use crate::__private::TestFn;
use crate::Session;
use crate::file_stamp::FileStamp;
use crate::mode::{Mode, ModeSource};
use crate::scenario;
use crate::session::on_shared;
use crate::verify;

/// Everything needed to run one case.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) case_path: PathBuf,
    pub(crate) mode: Mode,
    pub(crate) source: ModeSource,
    pub(crate) ci: bool,
    pub(crate) strict: bool,
    /// The test sends only some of the recorded inbound requests on purpose.
    pub(crate) partial: bool,
    pub(crate) redact: Vec<String>,
    pub(crate) exact: Vec<String>,
    pub(crate) headers: Vec<String>,
    pub(crate) test_name: String,
    pub(crate) record_command: String,
}

/// Why a case run failed: the report a person reads (missed calls with their nearest
/// recordings, drifted responses and requests with a field-by-field diff, the re-record
/// command), and the typed [`Verdict`] behind it when the replay ran to its end.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    report: String,
    verdict: Option<Box<Verdict>>,
}

impl Failure {
    /// The report.
    pub fn report(&self) -> &str {
        &self.report
    }

    /// The verdict, when the replay ran to its end (not for a case file that does not
    /// read, a capture that could not be written...).
    pub fn verdict(&self) -> Option<&Verdict> {
        self.verdict.as_deref()
    }

    pub(crate) fn text(report: String) -> Self {
        Failure {
            report,
            verdict: None,
        }
    }
}

impl From<Verdict> for Failure {
    fn from(verdict: Verdict) -> Self {
        Failure {
            report: verdict.to_string(),
            verdict: Some(Box::new(verdict)),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.report)
    }
}

impl std::error::Error for Failure {}

/// A case run built in code: the programmatic twin of `#[softprobe::case]`.
///
/// ```no_run
/// # fn demo() -> Result<(), softprobe::Failure> {
/// softprobe::Run::new("cases/checkout.case.json")
///     .mode(softprobe::Mode::Replay)
///     .redact([".body.orderId"])
///     .run(|sp: softprobe::Session| async move {
///         let _client = sp.client();
///     })
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a Run does nothing until .run() is called"]
pub struct Run {
    plan: Plan,
}

impl Run {
    /// A replay of the case at `path` (absolute, or relative to the current directory).
    pub fn new(path: impl AsRef<Path>) -> Self {
        let case_path =
            std::path::absolute(path.as_ref()).unwrap_or_else(|_| path.as_ref().to_owned());
        Run {
            plan: Plan {
                record_command: format!(
                    "run it again with Mode::Capture to record {}",
                    case_path.display()
                ),
                case_path,
                mode: Mode::Replay,
                source: ModeSource::Attribute,
                ci: false,
                strict: false,
                partial: false,
                redact: Vec::new(),
                headers: Vec::new(),
                test_name: "softprobe::Run".to_owned(),
                exact: Vec::new(),
            },
        }
    }

    /// Capture, replay or generate (see [`Mode`]).
    pub fn mode(mut self, mode: Mode) -> Self {
        self.plan.mode = mode;
        self
    }

    /// Fail when the case recorded calls the run never made.
    pub fn strict(mut self, strict: bool) -> Self {
        self.plan.strict = strict;
        self
    }

    /// The test sends only some of the recorded inbound requests, on purpose: the ones it
    /// never sends do not fail it (by default each recorded inbound request must be sent).
    pub fn partial(mut self, partial: bool) -> Self {
        self.plan.partial = partial;
        self
    }

    /// Fields never compared: body paths (`.body.id`) and headers (`header:date`).
    pub fn redact<I, S>(mut self, selectors: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.plan.redact = selectors.into_iter().map(Into::into).collect();
        self
    }

    /// Fields compared by value even when the recorded and the sent value are both UUIDs,
    /// ULIDs, RFC 3339 timestamps or Unix times (which otherwise compare by shape), and
    /// volatile request headers to compare anyway: body paths (`.body.nonce`), `header:<name>`
    /// and `query:<name>`.
    pub fn exact<I, S>(mut self, selectors: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.plan.exact = selectors.into_iter().map(Into::into).collect();
        self
    }

    /// Response headers compared with the recording on top of the defaults (`content-type`,
    /// `content-encoding`, `content-language`, `content-disposition`, `location`,
    /// `cache-control`, `www-authenticate`, and how many `set-cookie`), and shown in
    /// `assert_response!` snapshots. Volatile headers (`date`, `traceparent`,
    /// `x-request-id`...) cannot be compared: naming one fails the run.
    pub fn headers<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.plan.headers = names.into_iter().map(Into::into).collect();
        self
    }

    /// The name used in reports and sent as `x-softprobe-test-name`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.plan.test_name = name.into();
        self
    }

    /// The command a report suggests to record the case again.
    pub fn record_command(mut self, command: impl Into<String>) -> Self {
        self.plan.record_command = command.into();
        self
    }

    /// Runs `test` (any signature `#[softprobe::case]` accepts) and returns the verdict. A
    /// panic in the test body still propagates, after the session is cleaned up.
    pub fn run<M, F: TestFn<M>>(self, test: F) -> Result<(), Failure> {
        execute(&self.plan, test)
    }
}

/// The policy a replay starts with: strict, and the test's one list of volatile fields
/// (`redact`), its `exact` fields and its compared headers, which the runtime applies to the
/// service's outbound requests as the harness applies them to its responses.
pub(crate) fn replay_policy(plan: &Plan) -> serde_json::Value {
    serde_json::json!({
        "externalHttp": "strict",
        "volatileFields": plan.redact,
        "exactFields": plan.exact,
        "comparedHeaders": plan.headers,
    })
}

/// Runs a planned case. `Err` is the failure report.
pub(crate) fn execute<M, F: TestFn<M>>(plan: &Plan, test: F) -> Result<(), Failure> {
    execute_body(plan, Box::new(move |rt, session| test.run(rt, session)))
}

/// [`execute`] with the test's type erased: compiled once, not once per test.
pub(crate) fn execute_body(plan: &Plan, test: TestBody<'_>) -> Result<(), Failure> {
    let fail = Failure::text;
    for name in &plan.headers {
        verify::check_compared_header(name).map_err(|e| {
            fail(format!(
                "softprobe: test {}: headers(...): {e}",
                plan.test_name
            ))
        })?;
    }
    let loaded = match plan.mode {
        Mode::Capture | Mode::Generate => None,
        Mode::Replay => Some(load_case(plan).map_err(fail)?),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            fail(format!(
                "softprobe: cannot start a tokio runtime for the test: {e}"
            ))
        })?;
    let session = Session::open(
        plan.mode,
        plan.case_path.clone(),
        &plan.test_name,
        loaded,
        plan.redact.clone(),
        plan.headers.clone(),
        replay_policy(plan),
    )
    .map_err(|e| fail(format!("softprobe: test {}: {e}", plan.test_name)))?;
    let handle = session.clone();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| test(&rt, session)));
    let passed = matches!(outcome, Ok(Ok(())));
    let verdict = finish(plan, &handle, passed);
    match outcome {
        Err(panic) => {
            if let Err(report) = verdict {
                eprintln!("{report}");
            }
            std::panic::resume_unwind(panic)
        }
        Ok(Err(err)) => {
            let extra = verdict
                .err()
                .map(|r| format!("\n\n{r}"))
                .unwrap_or_default();
            Err(fail(format!(
                "softprobe: test {} returned an error: {err}{extra}",
                plan.test_name
            )))
        }
        Ok(Ok(())) => verdict,
    }
}

fn load_case(plan: &Plan) -> Result<(IndexedCase, Vec<u8>), String> {
    let (case_path, source, ci) = (&plan.case_path, plan.source.clone(), plan.ci);
    // Stamped before the read: a write after it gives the file another stamp.
    let stamp = std::fs::metadata(case_path)
        .ok()
        .and_then(|meta| FileStamp::of(&meta));
    if let Some(read) = stamp.and_then(|stamp| unchanged_since_read(case_path, stamp)) {
        return Ok(read);
    }
    let read_at = std::time::SystemTime::now();
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
            return Err(format!(
                "softprobe: case file not found: {}\n  test: {}\n  mode: replay ({why})\n\nRecord it with:\n  {}\n",
                case_path.display(),
                plan.test_name,
                plan.record_command,
            ));
        }
        Err(e) => {
            return Err(format!(
                "softprobe: cannot read {}: {e}",
                case_path.display()
            ));
        }
    };
    let stamp = stamp.filter(|stamp| stamp.settled(read_at));
    if let Some(case) = already_read(case_path, &bytes, stamp) {
        return Ok((case, bytes));
    }
    let source_name = case_path.display().to_string();
    // The reader alone accepts files the runtime later refuses span by span (no status, no
    // host) or never checks (version, ids); the validator names file, line and path of each.
    match softprobe_runtime::case::validate::read_valid_case(&bytes, &source_name) {
        Ok(case) => {
            // Indexed here, once per case and process: every session replaying it shares it.
            let case = IndexedCase::build(Arc::new(case), &source_name).map_err(|e| {
                format!(
                    "softprobe: {source_name} cannot be replayed: {e}\nFix the file, or record it again with:\n  {}\n",
                    plan.record_command
                )
            })?;
            remember_read(case_path, &bytes, &case, stamp);
            Ok((case, bytes))
        }
        Err(report) => Err(format!(
            "softprobe: {source_name} is not a valid case file:\n{report}\n{}Fix the file, or record it again with:\n  {}\n",
            if softprobe_runtime::case::validate::SCHEMA_ENGINE {
                ""
            } else {
                SCHEMA_HINT
            },
            plan.record_command
        )),
    }
}

/// Where the JSON Schema's findings are when the build leaves the schema engine out.
const SCHEMA_HINT: &str = "(Checked by the case model; `softprobe validate case <file>`, or the \
     harness's `schema-validation` feature, adds the JSON Schema's findings.)\n";

/// Case files this process has validated, parsed and indexed, by path, with the bytes they
/// had. Tests sharing a case (a replay and its drift and miss variants) validate, parse and
/// index it once, and their sessions share the index. The bytes are compared on every use,
/// so an edited or re-recorded file is read anew, unless the file's metadata shows it
/// unchanged since a read that came well after its last change ([`FileStamp`]): then the
/// file is not read at all.
type ReadCases = HashMap<PathBuf, ReadCase>;

struct ReadCase {
    bytes: Vec<u8>,
    case: IndexedCase,
    /// The file's stamp when those bytes were read, once it had settled.
    stamp: Option<FileStamp>,
}

/// Bounds the memory [`ReadCases`] holds in a process that replays many distinct cases.
const READ_CASES_MAX: usize = 64;

fn read_cases() -> &'static Mutex<ReadCases> {
    static READ: OnceLock<Mutex<ReadCases>> = OnceLock::new();
    READ.get_or_init(Mutex::default)
}

/// The case and bytes read before from a file whose settled stamp is still `stamp`.
fn unchanged_since_read(path: &Path, stamp: FileStamp) -> Option<(IndexedCase, Vec<u8>)> {
    let read = read_cases().lock().ok()?;
    let seen = read.get(path)?;
    (seen.stamp == Some(stamp)).then(|| (seen.case.clone(), seen.bytes.clone()))
}

/// The case read before from `path` if it had these bytes; a settled `stamp` taken before
/// they were read is kept for [`unchanged_since_read`].
fn already_read(path: &Path, bytes: &[u8], stamp: Option<FileStamp>) -> Option<IndexedCase> {
    let mut read = read_cases().lock().ok()?;
    let seen = read.get_mut(path)?;
    if seen.bytes.as_slice() != bytes {
        return None;
    }
    seen.stamp = stamp;
    Some(seen.case.clone())
}

fn remember_read(path: &Path, bytes: &[u8], case: &IndexedCase, stamp: Option<FileStamp>) {
    if let Ok(mut read) = read_cases().lock() {
        if read.len() >= READ_CASES_MAX && !read.contains_key(path) {
            read.clear();
        }
        read.insert(
            path.to_owned(),
            ReadCase {
                bytes: bytes.to_vec(),
                case: case.clone(),
                stamp,
            },
        );
    }
}

/// Tears the session down and judges it. `Err` carries the report to fail the test with.
fn finish(plan: &Plan, session: &Session, passed: bool) -> Result<(), Failure> {
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
    // Nothing to shut down and every decided hop recorded: no need to cross to the shared
    // runtime (a test that only made outbound calls is judged on its own thread).
    if !ingresses.is_empty() || !apps.is_empty() || embedded.observer.pending(&inner.id) {
        let observer = embedded.observer.clone();
        let id = inner.id.clone();
        on_shared(embedded, async move {
            observer.settle(&id).await;
            for ingress in ingresses {
                ingress.shutdown().await;
            }
            for app in apps {
                app.abort();
            }
        });
    }
    let mut observed = embedded.observer.take(&inner.id);
    observed
        .problems
        .extend(crate::proxy_env::closed(embedded, &inner.id));
    match inner.mode {
        Mode::Capture => finish_capture(plan, session, passed, &observed).map_err(Failure::text),
        Mode::Replay | Mode::Generate => finish_replay(plan, session, &observed),
    }
}

fn finish_capture(
    plan: &Plan,
    session: &Session,
    passed: bool,
    observed: &crate::embedded::Observed,
) -> Result<(), String> {
    let inner = &session.inner;
    let path = inner.case_path.clone();
    let snapshots = std::mem::take(
        &mut *inner
            .snapshots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    let problems = scenario::findings(session, None, observed, plan.partial, false);
    if !problems.is_empty() {
        let _ = close(session, None);
        let mut text = format!(
            "softprobe: capture of {} not written: some of what the test ran could not be recorded; the previous file (if any) is unchanged\n",
            path.display()
        );
        for (i, f) in problems.iter().enumerate() {
            text.push_str(&format!("\n{}. {}\n", i + 1, f));
        }
        return Err(text);
    }
    let observed = &observed.exchanges;
    if !passed {
        let _ = close(session, None);
        return Err(format!(
            "softprobe: capture of {} not written because the test failed; the previous file (if any) is unchanged{}",
            path.display(),
            match snapshots.len() {
                0 => String::new(),
                n => format!(", and so are its {n} snapshot(s)"),
            }
        ));
    }
    close(session, Some(&path)).map_err(|e| {
        format!(
            "softprobe: cannot write the capture of {}: {e}",
            plan.test_name
        )
    })?;
    println!(
        "softprobe: captured {} hop(s) into {}\n{}",
        observed.len(),
        path.display(),
        verify::summary(observed)
    );
    if let Some(note) = scenario::no_outbound_note(observed) {
        println!("{note}");
    }
    for snap in &snapshots {
        verify::write_snapshot(snap).map_err(|e| {
            format!(
                "softprobe: cannot write the snapshot {} of {}: {e}",
                snap.path.display(),
                plan.test_name
            )
        })?;
        println!("softprobe: wrote snapshot {}", snap.path.display());
    }
    verify::remove_evidence(&path, &plan.test_name);
    Ok(())
}

fn close(session: &Session, out: Option<&Path>) -> Result<(), String> {
    let inner = &session.inner;
    inner
        .embedded
        .control
        .close(&inner.id, out)
        .map_err(|e| e.to_string())
}

fn finish_replay(
    plan: &Plan,
    session: &Session,
    observed: &crate::embedded::Observed,
) -> Result<(), Failure> {
    let inner = &session.inner;
    let generate = inner.mode == Mode::Generate;
    let replayed = if generate {
        "the test's rules (generate mode: no case file is read or written)".to_owned()
    } else {
        inner.case_path.display().to_string()
    };
    let mut verdict = Verdict::new(&plan.test_name, replayed);
    let redactions =
        verify::Redactions::parse(&plan.redact.iter().map(String::as_str).collect::<Vec<_>>());
    let view = inner.case.as_ref();
    // A remote runtime cannot say which answers came from the test's own rules: any rule the
    // test added counts as changing the scenario.
    let altered =
        observed.altered || (!inner.embedded.control.reports_origins() && session.added_rules());
    let found = inner.embedded.control.findings(&inner.id);
    let _ = close(session, None);
    match found {
        Ok(found) => verdict.add_session(found, plan.strict),
        Err(e) => verdict.findings.push(Finding::Check(format!(
            "softprobe could not read what the session noticed (strict misses, request drift, unused recordings): {e}"
        ))),
    }
    if let Some(view) = view.filter(|_| !altered) {
        verdict.findings.extend(verify::inbound_failures(
            view.exchanges(),
            &observed.exchanges,
            &redactions,
            &plan.headers,
        ));
    }
    if let Some(view) = view {
        verdict.findings.extend(
            session
                .inbound_body_failures(view.exchanges(), &observed.exchanges)
                .into_iter()
                .map(Finding::Check),
        );
    }
    let failing = !verdict.passed();
    verdict.findings.extend(
        scenario::findings(
            session,
            view.map(|v| v.exchanges()),
            observed,
            plan.partial,
            failing,
        )
        .into_iter()
        .map(|f| Finding::Scenario(f.text)),
    );
    if !verdict.volatile.is_empty() && verbose() {
        eprintln!("{verdict:#}");
    }
    if verdict.passed() {
        for warning in &verdict.warnings {
            eprintln!(
                "softprobe: {}: warning (requestDrift: warn): {warning}",
                plan.test_name
            );
        }
        verify::remove_evidence(&inner.case_path, &plan.test_name);
        return Ok(());
    }
    if generate {
        // Nothing recorded to compare with and no case to record again: the findings are
        // the calls no rule answered and the test's own checks.
        return Err(verdict.into());
    }
    let case_id = view
        .map(|v| v.document().case_id.clone())
        .unwrap_or_else(|| inner.id.clone());
    verdict.evidence = verify::write_evidence(
        &inner.case_path,
        &plan.test_name,
        &case_id,
        &observed.exchanges,
    );
    verdict.rerecord = Some(plan.record_command.clone());
    Err(verdict.into())
}

/// `SOFTPROBE_VERBOSE=1`: also show the fields ignored as volatile.
fn verbose() -> bool {
    std::env::var("SOFTPROBE_VERBOSE").is_ok_and(|v| !v.is_empty() && v != "0")
}

#[cfg(test)]
mod tests {
    use super::*;
    use softprobe_runtime::case::Case;

    fn minimal() -> Vec<u8> {
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fixtures/cases/minimal.case.json"
        ))
        .unwrap()
    }

    #[test]
    fn a_case_read_before_is_reused_only_while_its_bytes_are_the_same() {
        let path = Path::new("/nonexistent/reuse-test.case.json");
        let bytes = minimal();
        let case = Arc::new(Case::from_slice_named(&bytes, "minimal").unwrap());
        let case = IndexedCase::build(case, "minimal").unwrap();
        assert!(already_read(path, &bytes, None).is_none());
        remember_read(path, &bytes, &case, None);
        let again = already_read(path, &bytes, None).expect("same bytes reuse the parsed case");
        assert!(Arc::ptr_eq(again.case(), case.case()));
        let mut edited = bytes.clone();
        edited.push(b'\n');
        assert!(
            already_read(path, &edited, None).is_none(),
            "an edited file is read anew"
        );
    }

    #[test]
    fn a_settled_case_file_is_taken_from_memory_until_it_is_replaced_or_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stamped.case.json");
        std::fs::write(&path, minimal()).unwrap();
        let plan = Run::new(&path).plan;
        let (first, _) = load_case(&plan).unwrap();
        // As if the read had come long after the file's last change.
        let stamp = FileStamp::of(&std::fs::metadata(&path).unwrap()).unwrap();
        already_read(&path, &minimal(), Some(stamp)).unwrap();
        let (kept, bytes) = load_case(&plan).unwrap();
        assert!(Arc::ptr_eq(kept.case(), first.case()));
        assert_eq!(bytes, minimal());

        // Another case of the same length renamed over it, as a capture writes one.
        let replaced = String::from_utf8(minimal())
            .unwrap()
            .replace("\"caseId\": \"minimal\"", "\"caseId\": \"replace\"");
        let tmp = dir.path().join("stamped.tmp");
        std::fs::write(&tmp, &replaced).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        let (read, _) = load_case(&plan).unwrap();
        assert_eq!(
            read.case().case_id,
            "replace",
            "a replaced case file is read anew"
        );

        // Written in place with the same length.
        let stamp = FileStamp::of(&std::fs::metadata(&path).unwrap()).unwrap();
        already_read(&path, replaced.as_bytes(), Some(stamp)).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let rewritten = replaced.replace("\"caseId\": \"replace\"", "\"caseId\": \"written\"");
        std::fs::write(&path, &rewritten).unwrap();
        let (read, _) = load_case(&plan).unwrap();
        assert_eq!(
            read.case().case_id,
            "written",
            "a case file written in place is read anew"
        );
    }
}
