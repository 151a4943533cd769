//! One session: identity, configuration (case, rules, policy, fixtures) with its revision,
//! counters, the last strict misses and the capture buffer.
//!
//! Every configuration change goes through [`Session::update`], which validates before it
//! touches anything and bumps the revision only on success, so a rejected request changes
//! nothing stored.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::Mode;
use crate::capture;
use crate::case::{Case, Direction, Exchange};
use crate::error::{Error, Result};
use crate::policy::Policy;
use crate::replay::{Decision, Engine, IndexedCase, Request};
use crate::rules::Rule;

/// How many strict-miss reports a session keeps for `state` and test reports.
pub const MAX_STRICT_MISSES: usize = 20;

/// What `POST /v1/sessions` asks for.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewSession {
    /// The session mode.
    pub mode: Mode,
    /// Case id for the capture (defaults to the session id) and for reports.
    #[serde(default)]
    pub case_id: Option<String>,
    /// Free-form test name for logs and reports.
    #[serde(default)]
    pub test_name: Option<String>,
}

impl NewSession {
    /// A session of `mode` with no case id or test name.
    pub fn new(mode: Mode) -> Self {
        NewSession {
            mode,
            case_id: None,
            test_name: None,
        }
    }
}

/// The fixtures/auth document (`POST /v1/sessions/{id}/fixtures/auth`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Fixtures {
    /// Auth tokens the SUT may be handed.
    #[serde(default)]
    pub tokens: Vec<String>,
    /// Cookies the SUT may be handed.
    #[serde(default)]
    pub cookies: Vec<Cookie>,
    /// Free-form metadata.
    #[serde(default)]
    pub metadata: Map<String, Value>,
}

/// One fixture cookie.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cookie {
    /// Cookie name.
    pub name: String,
    /// Cookie value.
    pub value: String,
    /// Domain the cookie belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Path the cookie belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// What a loaded case holds, as `load-case` and `state` report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CaseSummary {
    /// The case's `caseId`.
    pub case_id: String,
    /// Entries in `traces`.
    pub traces: usize,
    /// Spans over all traces.
    pub spans: usize,
    /// Inbound hops.
    pub inbound: usize,
    /// Outbound hops.
    pub outbound: usize,
}

/// The three session counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatsSnapshot {
    /// Inject calls answered locally.
    pub injected_spans: u64,
    /// Spans received on extract.
    pub extracted_spans: u64,
    /// Outbound hops answered with the strict-miss 599.
    pub strict_misses: u64,
    /// Replayed outbound requests that differ from their recording.
    pub request_drift: u64,
}

/// A session's configuration; changed only through [`Session::update`] with the setters
/// below ([`SessionState::load_case`], [`SessionState::set_rules`], ...), read through
/// [`Session::read`] with the getters.
pub struct SessionState {
    revision: u64,
    /// The decision engine (rules, policy, replay index).
    engine: Engine,
    /// The policy as last set (the engine keeps its own copy).
    policy: Policy,
    /// The loaded case, if any.
    case: Option<(Arc<Case>, CaseSummary)>,
    /// Fixtures as last set.
    fixtures: Option<Fixtures>,
}

impl std::fmt::Debug for SessionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionState")
            .field("revision", &self.revision)
            .field("case", &self.case.as_ref().map(|(_, s)| s))
            .field("rules", &self.engine.rule_counts())
            .finish_non_exhaustive()
    }
}

impl SessionState {
    /// The revision: 0 at creation, +1 per successful change.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// The decision engine: what each hop gets, the drift and unused recordings it noticed.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The policy as last set.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The loaded case, if any.
    pub fn case(&self) -> Option<&Arc<Case>> {
        self.case.as_ref().map(|(case, _)| case)
    }

    /// What the loaded case holds (traces, spans, inbound and outbound hops), if one is
    /// loaded.
    pub fn case_summary(&self) -> Option<&CaseSummary> {
        self.case.as_ref().map(|(_, summary)| summary)
    }

    /// The fixtures as last set, if any.
    pub fn fixtures(&self) -> Option<&Fixtures> {
        self.fixtures.as_ref()
    }

    /// Loads a case (validated first: every span must be a readable hop and its embedded
    /// rules must parse); replaces a previous case.
    pub fn load_case(&mut self, case: Case, source_name: &str) -> Result<CaseSummary> {
        self.load_shared_case(Arc::new(case), source_name)
    }

    /// [`SessionState::load_case`] for a case already shared, e.g. by a test harness that
    /// keeps the parsed case for its own lookups: the session holds the same allocation.
    pub fn load_shared_case(&mut self, case: Arc<Case>, source_name: &str) -> Result<CaseSummary> {
        // Read every hop first: its error names the span, in the case reader's words.
        case.exchanges_named(source_name)?;
        let indexed =
            IndexedCase::build(case, source_name).map_err(|e| Error::invalid(e.to_string()))?;
        Ok(self.load_indexed_case(&indexed))
    }

    /// [`SessionState::load_case`] for a case indexed before: the session shares the index
    /// (built once per case, not once per session) and keeps only which hops answered.
    pub fn load_indexed_case(&mut self, case: &IndexedCase) -> CaseSummary {
        let exchanges = case.exchanges();
        let outbound = exchanges
            .iter()
            .filter(|e| e.direction == Direction::Outbound)
            .count();
        let summary = CaseSummary {
            case_id: case.case().case_id.clone(),
            traces: case.case().traces.len(),
            spans: exchanges.len(),
            inbound: exchanges.len() - outbound,
            outbound,
        };
        self.engine.load_indexed(case);
        self.case = Some((Arc::clone(case.case()), summary.clone()));
        summary
    }

    /// Replaces the session rules.
    pub fn set_rules(&mut self, rules: Vec<Rule>) {
        self.engine.set_session_rules(rules);
    }

    /// Replaces the policy.
    pub fn set_policy(&mut self, policy: Policy) {
        self.policy = policy.clone();
        self.engine.set_policy(policy);
    }

    /// Replaces the fixtures.
    pub fn set_fixtures(&mut self, fixtures: Fixtures) {
        self.fixtures = Some(fixtures);
    }
}

#[derive(Debug, Default)]
struct Stats {
    injected_spans: AtomicU64,
    extracted_spans: AtomicU64,
    strict_misses: AtomicU64,
}

/// One session. Shared as `Arc<Session>`; every method takes `&self`.
#[derive(Debug)]
pub struct Session {
    id: String,
    mode: Mode,
    created: SystemTime,
    created_at: String,
    case_id: Option<String>,
    test_name: Option<String>,
    state: RwLock<SessionState>,
    stats: Stats,
    misses: Mutex<VecDeque<Value>>,
    /// A capture's hops in arrival order. Each is behind an `Arc` so that writing the case
    /// takes a snapshot of pointers under the lock and writes without it, holding no copy.
    captured: Mutex<Vec<Arc<Exchange>>>,
    span_limit: Option<usize>,
    born: Instant,
    /// Milliseconds after `born` of the last lookup, for idle expiry.
    touched_ms: AtomicU64,
}

impl Session {
    /// A new session at revision 0 with the default policy and no rules.
    pub fn new(id: String, new: NewSession) -> Self {
        let created = SystemTime::now();
        Session {
            id,
            mode: new.mode,
            created,
            created_at: capture::rfc3339(created),
            case_id: new.case_id,
            test_name: new.test_name,
            state: RwLock::new(SessionState {
                revision: 0,
                engine: Engine::new(new.mode),
                policy: Policy::default(),
                case: None,
                fixtures: None,
            }),
            stats: Stats::default(),
            misses: Mutex::new(VecDeque::new()),
            captured: Mutex::new(Vec::new()),
            span_limit: None,
            born: Instant::now(),
            touched_ms: AtomicU64::new(0),
        }
    }

    /// A session as another process created it (a shared store rebuilds it): given id,
    /// creation time and revision, the default configuration (the caller loads the stored
    /// case, rules, policy and fixtures into it).
    #[cfg(feature = "redis-store")]
    pub(crate) fn restore(id: String, new: NewSession, created: SystemTime, revision: u64) -> Self {
        let mut session = Session::new(id, new);
        session.created = created;
        session.created_at = capture::rfc3339(created);
        session.write().revision = revision;
        session
    }

    /// The revision the state has after a configuration change applied to it outside
    /// [`Session::update`] (the shared store writes the change first, then adopts it).
    #[cfg(feature = "redis-store")]
    pub(crate) fn set_revision(&self, revision: u64) {
        self.write().revision = revision;
    }

    /// Caps the capture buffer at `limit` spans (`None`: no cap); [`Session::record`]
    /// refuses spans beyond it.
    #[must_use]
    pub fn with_span_limit(mut self, limit: Option<usize>) -> Self {
        self.span_limit = limit;
        self
    }

    /// The cap on captured spans, if any.
    pub fn span_limit(&self) -> Option<usize> {
        self.span_limit
    }

    /// Marks the session as used now (the store does it on every lookup), which restarts
    /// its idle clock.
    pub fn touch(&self) {
        let ms = u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.touched_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// How long since the session was last used (created, looked up, or given traffic).
    pub fn idle_for(&self) -> Duration {
        let touched = Duration::from_millis(self.touched_ms.load(Ordering::Relaxed));
        self.born.elapsed().saturating_sub(touched)
    }

    /// Whether `more` spans fit under the span cap next to those already captured; the
    /// error names the session, the cap and how many would be refused.
    pub fn check_span_room(&self, more: usize) -> Result<()> {
        let Some(limit) = self.span_limit else {
            return Ok(());
        };
        if self.mode != Mode::Capture || more == 0 {
            return Ok(());
        }
        let held = self.captured_len();
        if held.saturating_add(more) > limit {
            return Err(Error::SpanLimit {
                session_id: self.id.clone(),
                limit,
                refused: more,
            });
        }
        Ok(())
    }

    /// The session id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The session mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// When the session was created.
    pub fn created(&self) -> SystemTime {
        self.created
    }

    /// Creation time, RFC 3339.
    pub fn created_at(&self) -> &str {
        &self.created_at
    }

    /// The case id given at creation, else the loaded case's id.
    pub fn case_id(&self) -> Option<String> {
        self.case_id.clone().or_else(|| {
            self.read()
                .case
                .as_ref()
                .map(|(_, summary)| summary.case_id.clone())
        })
    }

    /// The test name given at creation.
    pub fn test_name(&self) -> Option<&str> {
        self.test_name.as_deref()
    }

    /// The current revision.
    pub fn revision(&self) -> u64 {
        self.read().revision
    }

    /// The counters.
    pub fn stats(&self) -> StatsSnapshot {
        self.stats_of(&self.read())
    }

    fn stats_of(&self, state: &SessionState) -> StatsSnapshot {
        StatsSnapshot {
            injected_spans: self.stats.injected_spans.load(Ordering::Relaxed),
            extracted_spans: self.stats.extracted_spans.load(Ordering::Relaxed),
            strict_misses: self.stats.strict_misses.load(Ordering::Relaxed),
            request_drift: state.engine.drifted_requests() as u64,
        }
    }

    /// The last strict-miss reports (at most [`MAX_STRICT_MISSES`]), oldest first.
    pub fn strict_misses(&self) -> Vec<Value> {
        lock(&self.misses).iter().cloned().collect()
    }

    /// Read access to the configuration.
    pub fn read(&self) -> RwLockReadGuard<'_, SessionState> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, SessionState> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies a configuration change; on success the revision goes up by one and is
    /// returned with the change's result. `change` must validate before it mutates, so an
    /// error leaves the state as it was.
    pub fn update<T>(
        &self,
        change: impl FnOnce(&mut SessionState) -> Result<T>,
    ) -> Result<(u64, T)> {
        let mut state = self.write();
        let out = change(&mut state)?;
        state.revision += 1;
        Ok((state.revision, out))
    }

    /// Decides an inject request and counts it: a local answer counts as an injected span,
    /// a strict miss is counted and its report kept.
    pub fn inject(&self, request: &Request) -> Decision {
        let decision = self.read().engine.decide(request);
        match &decision {
            Decision::Respond { .. } => {
                self.stats.injected_spans.fetch_add(1, Ordering::Relaxed);
            }
            Decision::StrictMiss(report) => self.report_miss(report.to_json(&self.id)),
            Decision::Passthrough { .. } => {}
        }
        decision
    }

    /// Counts a strict miss and keeps its report (the last [`MAX_STRICT_MISSES`]): a request
    /// nothing answered, or a replay that went wrong after its answer started.
    pub fn report_miss(&self, report: Value) {
        self.stats.strict_misses.fetch_add(1, Ordering::Relaxed);
        let mut misses = lock(&self.misses);
        if misses.len() == MAX_STRICT_MISSES {
            misses.pop_front();
        }
        misses.push_back(report);
    }

    /// Counts an extracted hop and returns `true` when the session does not keep hops (not
    /// a capture session); returns `false`, counting nothing, for a capture session, whose
    /// hops go through [`Session::record`].
    pub fn count_instead_of_recording(&self) -> bool {
        if self.mode == Mode::Capture {
            return false;
        }
        self.stats.extracted_spans.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Whether a hop going `direction` to `host` needs nothing of this session but to be
    /// forwarded and counted: the session keeps no hops (not a capture) and nothing it holds
    /// can answer the hop ([`Engine::passes_through`]).
    pub fn forwards_untouched(&self, direction: Direction, host: &str) -> bool {
        self.mode != Mode::Capture && self.read().engine.passes_through(direction, host)
    }

    /// Records an extracted hop: counted always, buffered (after redaction) only in capture
    /// sessions. Returns whether it was buffered; [`Error::SpanLimit`] when the buffer is at
    /// the session's span cap (the buffer is left as it was).
    pub fn record(&self, exchange: Exchange) -> Result<bool> {
        self.stats.extracted_spans.fetch_add(1, Ordering::Relaxed);
        if self.mode != Mode::Capture {
            return Ok(false);
        }
        let exchange = self.prepare_capture(exchange);
        let mut captured = lock(&self.captured);
        if let Some(limit) = self.span_limit
            && captured.len() >= limit
        {
            return Err(Error::SpanLimit {
                session_id: self.id.clone(),
                limit,
                refused: 1,
            });
        }
        captured.push(Arc::new(exchange));
        Ok(true)
    }

    /// A hop as a capture keeps it: redacted (the session's capture redaction plus the
    /// default sensitive headers) and carrying the session id.
    pub fn prepare_capture(&self, mut exchange: Exchange) -> Exchange {
        let request = Request::from_exchange(&exchange);
        let mut redaction = self.read().engine.capture_redaction(&request);
        redaction.merge(&crate::rules::Redaction::headers(crate::headers::SENSITIVE));
        redaction.apply(&mut exchange);
        if exchange.session_id.is_none() {
            exchange.session_id = Some(self.id.clone());
        }
        exchange
    }

    /// How many hops the capture buffer holds.
    pub fn captured_len(&self) -> usize {
        lock(&self.captured).len()
    }

    /// A copy of the capture buffer, in arrival order.
    pub fn captured(&self) -> Vec<Exchange> {
        lock(&self.captured).iter().map(|h| (**h).clone()).collect()
    }

    /// The capture buffer's hops as they are now, shared with the buffer (no copy).
    fn captured_snapshot(&self) -> Vec<Arc<Exchange>> {
        lock(&self.captured).clone()
    }

    /// The case this capture session becomes now.
    pub fn capture_case(&self) -> Case {
        let hops = self.captured_snapshot();
        self.capture_case_of_iter(hops.iter().map(|h| &**h))
    }

    /// The case this capture session becomes with `hops` (kept elsewhere than in this
    /// process's buffer, e.g. in a shared store).
    pub fn capture_case_of(&self, hops: &[Exchange]) -> Case {
        self.capture_case_of_iter(hops)
    }

    fn capture_case_of_iter<'a>(&self, hops: impl IntoIterator<Item = &'a Exchange>) -> Case {
        let mut case = capture::build_case(self.capture_case_id(), &[], SystemTime::now());
        case.push_exchanges(hops);
        case
    }

    fn capture_case_id(&self) -> &str {
        self.case_id.as_deref().unwrap_or(&self.id)
    }

    /// Writes the capture to `path` (atomically, parent directories created) and returns how
    /// many hops it holds. The buffer is kept either way. The case is streamed to the file
    /// while it is serialized (see [`Case::write_with_exchanges`]): no copy of the hops and
    /// no whole document in memory.
    pub fn write_capture(&self, path: &std::path::Path) -> Result<usize> {
        let hops = self.captured_snapshot();
        self.write_capture_of(path, hops.iter().map(|h| &**h))?;
        Ok(hops.len())
    }

    /// Writes the case this capture session becomes with `hops` (kept elsewhere than in
    /// this process's buffer, e.g. in a shared store) to `path`, as
    /// [`Session::write_capture`] does.
    pub fn write_capture_of<'a>(
        &self,
        path: &std::path::Path,
        hops: impl IntoIterator<Item = &'a Exchange>,
    ) -> Result<()> {
        let header = capture::build_case(self.capture_case_id(), &[], SystemTime::now());
        header
            .write_with_exchanges(path, hops)
            .map_err(|source| Error::CaptureWrite {
                session_id: self.id.clone(),
                path: path.to_owned(),
                source: Box::new(source),
            })
    }

    /// Drops the capture buffer and gives its memory back to the allocator. A closed
    /// session calls it once its case is written: nothing reads the hops after that, and a
    /// large capture would otherwise stay in memory for as long as anything holds the
    /// session.
    pub fn release_capture(&self) {
        let hops = std::mem::take(&mut *lock(&self.captured));
        drop(hops);
    }

    /// The `GET /v1/sessions` entry.
    pub fn summary_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("sessionId".into(), json!(self.id));
        m.insert("mode".into(), json!(self.mode));
        m.insert("sessionRevision".into(), json!(self.revision()));
        m.insert("createdAt".into(), json!(self.created_at));
        if let Some(case_id) = self.case_id() {
            m.insert("caseId".into(), json!(case_id));
        }
        Value::Object(m)
    }

    /// The `GET /v1/sessions/{id}/stats` body.
    pub fn stats_json(&self) -> Value {
        self.stats_json_with(self.stats())
    }

    /// [`Session::stats_json`] with counters kept elsewhere (a shared store).
    pub fn stats_json_with(&self, stats: StatsSnapshot) -> Value {
        json!({
            "sessionId": self.id,
            "injectedSpans": stats.injected_spans,
            "extractedSpans": stats.extracted_spans,
            "strictMisses": stats.strict_misses,
            "requestDrift": stats.request_drift,
            "stats": stats,
        })
    }

    /// The `GET /v1/sessions/{id}/state` body.
    pub fn state_json(&self) -> Value {
        self.state_json_with(self.stats(), self.strict_misses())
    }

    /// [`Session::state_json`] with counters and strict misses kept elsewhere (a shared
    /// store).
    pub fn state_json_with(&self, stats: StatsSnapshot, strict_misses: Vec<Value>) -> Value {
        let state = self.read();
        let (policy_rules, case_rules, session_rules) = state.engine.rule_counts();
        json!({
            "sessionId": self.id,
            "mode": self.mode,
            "sessionRevision": state.revision,
            "createdAt": self.created_at,
            "case": state.case.as_ref().map(|(_, summary)| summary),
            "policy": state.policy,
            "rules": {"policy": policy_rules, "case": case_rules, "session": session_rules},
            "fixtures": state.fixtures,
            "stats": stats,
            "strictMisses": strict_misses,
            "requestDrift": state.engine.request_drift(),
            "unusedRecordings": state.engine.unused_recordings(),
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
