//! The session store: the trait every front end (control API, OTLP handlers, in-process
//! proxy) talks to, and the in-memory implementation.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::id::new_session_id;
use super::state::{NewSession, Session, SessionState};
use crate::Mode;
use crate::case::{Direction, Exchange};
use crate::error::{Error, Result};
use crate::metrics::{InjectOutcome, Metrics};
use crate::replay::{Decision, Request};

/// Where sessions live. Object-safe and shared as `Arc<dyn SessionStore>`.
///
/// The provided methods ([`SessionStore::session`], [`SessionStore::update`],
/// [`SessionStore::inject`], [`SessionStore::record`]) are what front ends call; an
/// implementation only supplies storage.
pub trait SessionStore: Send + Sync + std::fmt::Debug {
    /// Creates a session with a fresh id.
    fn create(&self, new: NewSession) -> Result<Arc<Session>>;
    /// The session with this id, if open.
    fn get(&self, id: &str) -> Option<Arc<Session>>;
    /// Removes a session (on close); returns it if it was open.
    fn remove(&self, id: &str) -> Option<Arc<Session>>;
    /// Every open session, oldest first.
    fn list(&self) -> Vec<Arc<Session>>;
    /// How many sessions are open.
    fn len(&self) -> usize {
        self.list().len()
    }
    /// Whether no session is open.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The process counters updated by [`SessionStore::inject`] and [`SessionStore::record`].
    fn metrics(&self) -> &Metrics;

    /// The session with this id if open; [`Error::StoreUnavailable`] when a shared store
    /// cannot be reached. [`SessionStore::get`] answers `None` for both.
    fn try_get(&self, id: &str) -> Result<Option<Arc<Session>>> {
        Ok(self.get(id))
    }

    /// The session with this id, or [`Error::UnknownSession`].
    fn session(&self, id: &str) -> Result<Arc<Session>> {
        self.try_get(id)?.ok_or_else(|| Error::UnknownSession {
            session_id: id.to_owned(),
        })
    }

    /// [`SessionStore::list`], or [`Error::StoreUnavailable`] when a shared store cannot
    /// be reached (`list` answers an empty list then).
    fn try_list(&self) -> Result<Vec<Arc<Session>>> {
        Ok(self.list())
    }

    /// Whether every session of this store lives in this process (the in-memory store), so
    /// that stopping the process ends them; a shared store's sessions outlive any replica.
    fn is_process_local(&self) -> bool {
        true
    }

    /// The `GET /v1/sessions/{id}/stats` body.
    fn stats_json(&self, id: &str) -> Result<Value> {
        Ok(self.session(id)?.stats_json())
    }

    /// The `GET /v1/sessions/{id}/state` body.
    fn state_json(&self, id: &str) -> Result<Value> {
        Ok(self.session(id)?.state_json())
    }

    /// How long since the session was last used, for idle expiry.
    fn idle_for(&self, session: &Session) -> Duration {
        session.idle_for()
    }

    /// Hops of a capture session that were forwarded but could not be stored (a shared
    /// store was unreachable), as `close` reports them.
    fn lost_hops(&self, id: &str) -> Result<u64> {
        self.session(id).map(|_| 0)
    }

    /// Applies a configuration change to a session and returns its new revision (see
    /// [`Session::update`]).
    fn update(
        &self,
        id: &str,
        change: &mut dyn FnMut(&mut SessionState) -> Result<()>,
    ) -> Result<u64> {
        let session = self.session(id)?;
        session.update(change).map(|(revision, ())| revision)
    }

    /// Decides an inject request for a session (and counts it in the session stats and the
    /// process metrics). The caller applies the decision's latency and answers.
    fn inject(&self, session_id: &str, request: &Request) -> Result<Decision> {
        let session = self.session(session_id)?;
        Ok(self.decide_in(&session, request))
    }

    /// [`SessionStore::inject`] in a session found already: by this store's own
    /// [`SessionStore::plan_hop`] ([`HopPlan::DecideIn`]), which a store that keeps its
    /// counters elsewhere does not hand out.
    fn decide_in(&self, session: &Session, request: &Request) -> Decision {
        let started = Instant::now();
        let decision = session.inject(request);
        let outcome = match &decision {
            Decision::Respond {
                injected_error: true,
                ..
            } => InjectOutcome::Error,
            Decision::Respond { .. } => InjectOutcome::Hit,
            Decision::Passthrough { .. } => InjectOutcome::Miss,
            Decision::StrictMiss(_) => InjectOutcome::StrictMiss,
        };
        self.metrics().record_inject(outcome, started.elapsed());
        decision
    }

    /// What the session needs of a hop going `direction` to `host`, found with one lookup
    /// before the hop's [`Request`] is built (see [`HopPlan`]). The default looks nothing up
    /// and answers [`HopPlan::Decide`]: every hop is decided by id, as a store whose
    /// counters live outside this process needs.
    fn plan_hop(&self, session_id: &str, direction: Direction, host: &str) -> Result<HopPlan> {
        let _ = (session_id, direction, host);
        Ok(HopPlan::Decide)
    }

    /// Closes a session. A capture session is first written to `capture_path` (required for
    /// capture sessions); if that write fails the session stays open with its hops, so the
    /// caller can retry with another path. Returns how many hops were written (`None` for
    /// sessions that write nothing).
    ///
    /// Blocking (file I/O): call it from `spawn_blocking` in async code.
    fn close(&self, id: &str, capture_path: Option<&Path>) -> Result<Option<usize>> {
        let session = self.session(id)?;
        let Some(path) = capture_path.filter(|_| session.mode() == Mode::Capture) else {
            self.remove(id);
            return Ok(None);
        };
        let mut written = session.write_capture(path)?;
        self.remove(id);
        // A hop recorded between the write and the removal would be lost; once removed no
        // new hop can arrive, so one more write catches up.
        if session.captured_len() != written {
            match session.write_capture(path) {
                Ok(n) => written = n,
                Err(err) => tracing::error!("{err} (the file holds the first {written} hops)"),
            }
        }
        session.release_capture();
        crate::allocator::release_after(std::fs::metadata(path).map_or(0, |m| m.len()));
        Ok(Some(written))
    }

    /// Counts an extracted hop of a session that does not keep hops (every session but a
    /// capture one) and returns `true`, exactly as [`SessionStore::record`] would have
    /// counted it; returns `false`, counting nothing, for a capture session, whose hops
    /// have to go through `record`. Proxies call it first, so they do not build a recording
    /// that would only be counted.
    fn count_instead_of_recording(&self, session_id: &str) -> Result<bool> {
        let session = self.session(session_id)?;
        Ok(self.count_in(&session))
    }

    /// [`SessionStore::count_instead_of_recording`] in a session found already by this
    /// store's own [`SessionStore::plan_hop`].
    fn count_in(&self, session: &Session) -> bool {
        if !session.count_instead_of_recording() {
            return false;
        }
        self.metrics().record_extracted(1);
        true
    }

    /// Records an extracted hop for a session (buffered for capture sessions, counted for
    /// all); returns whether it was buffered.
    fn record(&self, session_id: &str, exchange: Exchange) -> Result<bool> {
        let session = self.session(session_id)?;
        self.metrics().record_extracted(1);
        session.record(exchange)
    }
}

/// What a session needs of one hop, as [`SessionStore::plan_hop`] finds it before the
/// hop's [`Request`] is built. A proxy builds the request only for the first two; the
/// session handles save the store a second and third lookup of the same id.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum HopPlan {
    /// Decide the hop's request by session id ([`SessionStore::inject`]), then count
    /// or record it by id ([`SessionStore::count_instead_of_recording`],
    /// [`SessionStore::record`]).
    Decide,
    /// Decide the hop's request in this session ([`SessionStore::decide_in`]), then count
    /// it ([`SessionStore::count_in`]) or record it.
    DecideIn(Arc<Session>),
    /// Forward the hop as it is: nothing in the session can answer it and the session keeps
    /// no hops. Its decision (a passthrough) is already counted, as
    /// [`SessionStore::inject`] counts one; count the hop with [`SessionStore::count_in`]
    /// once its answer has started, as a decided hop is.
    Forward(Arc<Session>),
}

/// The bounds an [`InMemoryStore`] enforces. [`SessionLimits::default`] is what the
/// runtime server uses; [`SessionLimits::UNLIMITED`] is what [`InMemoryStore::new`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    /// Most sessions open at once; creating one more answers
    /// [`Error::TooManySessions`] (429).
    pub max_sessions: Option<usize>,
    /// Most spans a capture session buffers; more answer [`Error::SpanLimit`] (413) and
    /// the spans already held are kept.
    pub max_spans_per_session: Option<usize>,
}

impl SessionLimits {
    /// The server's default number of open sessions.
    pub const DEFAULT_MAX_SESSIONS: usize = 1024;
    /// The server's default number of captured spans per session.
    pub const DEFAULT_MAX_SPANS_PER_SESSION: usize = 100_000;
    /// No bound at all.
    pub const UNLIMITED: SessionLimits = SessionLimits {
        max_sessions: None,
        max_spans_per_session: None,
    };
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            max_sessions: Some(Self::DEFAULT_MAX_SESSIONS),
            max_spans_per_session: Some(Self::DEFAULT_MAX_SPANS_PER_SESSION),
        }
    }
}

/// The in-memory store: a map behind a `RwLock`, each session behind its own locks, so
/// traffic on one session never waits for another.
#[derive(Debug)]
pub struct InMemoryStore {
    sessions: RwLock<HashMap<String, (u64, Arc<Session>)>>,
    next_seq: AtomicU64,
    metrics: Metrics,
    limits: SessionLimits,
}

impl Default for InMemoryStore {
    fn default() -> Self {
        Self::with_limits(SessionLimits::UNLIMITED)
    }
}

impl InMemoryStore {
    /// An empty store without limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store that enforces `limits`.
    pub fn with_limits(limits: SessionLimits) -> Self {
        InMemoryStore {
            sessions: RwLock::new(HashMap::new()),
            next_seq: AtomicU64::new(0),
            metrics: Metrics::default(),
            limits,
        }
    }

    /// An empty store without limits, ready to share.
    pub fn shared() -> Arc<dyn SessionStore> {
        Arc::new(Self::new())
    }

    /// The limits this store enforces.
    pub fn limits(&self) -> SessionLimits {
        self.limits
    }
}

impl SessionStore for InMemoryStore {
    fn create(&self, new: NewSession) -> Result<Arc<Session>> {
        let id = new_session_id()?;
        let session = Arc::new(
            Session::new(id.clone(), new).with_span_limit(self.limits.max_spans_per_session),
        );
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let mut sessions = self.sessions.write().unwrap_or_else(|p| p.into_inner());
        if let Some(limit) = self.limits.max_sessions
            && sessions.len() >= limit
        {
            return Err(Error::TooManySessions { limit });
        }
        sessions.insert(id, (seq, Arc::clone(&session)));
        drop(sessions);
        self.metrics
            .record_session_created(&session.mode().to_string());
        Ok(session)
    }

    fn get(&self, id: &str) -> Option<Arc<Session>> {
        let session = self
            .sessions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .map(|(_, s)| Arc::clone(s))?;
        session.touch();
        Some(session)
    }

    fn remove(&self, id: &str) -> Option<Arc<Session>> {
        self.sessions
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)
            .map(|(_, s)| s)
    }

    fn list(&self) -> Vec<Arc<Session>> {
        let map = self.sessions.read().unwrap_or_else(|p| p.into_inner());
        let mut all: Vec<(u64, Arc<Session>)> =
            map.values().map(|(seq, s)| (*seq, Arc::clone(s))).collect();
        drop(map);
        all.sort_by_key(|(seq, _)| *seq);
        all.into_iter().map(|(_, s)| s).collect()
    }

    fn len(&self) -> usize {
        self.sessions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    fn plan_hop(&self, session_id: &str, direction: Direction, host: &str) -> Result<HopPlan> {
        let session = self.session(session_id)?;
        // Timed as `decide_in` times a decision: from the session found to the answer.
        let started = Instant::now();
        if !session.forwards_untouched(direction, host) {
            return Ok(HopPlan::DecideIn(session));
        }
        self.metrics
            .record_inject(InjectOutcome::Miss, started.elapsed());
        Ok(HopPlan::Forward(session))
    }
}

#[cfg(test)]
mod tests {
    use std::thread;

    use super::*;
    use crate::Mode;
    use crate::case::{Direction, SpanId, TraceId};
    use crate::policy::parse_policy;
    use crate::rules::parse_rules_document;

    fn hop(direction: Direction, host: &str, path: &str) -> Exchange {
        Exchange {
            service: Some("checkout".into()),
            span_type: Some("extract".into()),
            scheme: Some("https".into()),
            request_headers: vec![
                ("authorization".into(), "Bearer sk_live".into()),
                ("accept".into(), "application/json".into()),
            ],
            status: Some(200),
            response_headers: vec![("set-cookie".into(), "sid=1".into())],
            trace_id: TraceId([1; 16]),
            span_id: SpanId([2; 8]),
            start_time_unix_nano: 1,
            end_time_unix_nano: 2,
            ..Exchange::new(direction, "GET", host, path)
        }
    }

    #[test]
    fn concurrent_sessions_stay_isolated() {
        let store = Arc::new(InMemoryStore::new());
        let rules = br#"[{"id": "m", "when": {"host": "api.test"}, "then": {"action": "mock", "response": {"body": "ok"}}}]"#;
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let store = Arc::clone(&store);
                thread::spawn(move || {
                    let mut ids = Vec::new();
                    for _ in 0..25 {
                        let s = store.create(NewSession::new(Mode::Replay)).unwrap();
                        let parsed = parse_rules_document(rules, "t").unwrap();
                        let rev = store
                            .update(s.id(), &mut |st| {
                                st.set_rules(parsed.clone());
                                Ok(())
                            })
                            .unwrap();
                        assert_eq!(rev, 1);
                        let req =
                            Request::from_exchange(&hop(Direction::Outbound, "api.test", "/"));
                        let decision = store.inject(s.id(), &req).unwrap();
                        assert!(matches!(decision, Decision::Respond { .. }));
                        ids.push(s.id().to_owned());
                    }
                    ids
                })
            })
            .collect();
        let ids: Vec<String> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        assert_eq!(store.len(), 200);
        assert_eq!(store.list().len(), 200);
        for id in &ids {
            let s = store.session(id).unwrap();
            assert_eq!(s.revision(), 1);
            assert_eq!(s.stats().injected_spans, 1);
        }
        assert_eq!(store.metrics().inject_count(InjectOutcome::Hit), 200);
        assert!(store.remove(&ids[0]).is_some());
        assert!(store.remove(&ids[0]).is_none());
        assert!(matches!(
            store.session(&ids[0]),
            Err(Error::UnknownSession { .. })
        ));
    }

    #[test]
    fn a_failed_update_keeps_the_revision() {
        let store = InMemoryStore::new();
        let s = store.create(NewSession::new(Mode::Replay)).unwrap();
        let err = store
            .update(s.id(), &mut |_| Err(Error::invalid("nope")))
            .unwrap_err();
        assert_eq!(err.to_string(), "nope");
        assert_eq!(s.revision(), 0);
        assert!(matches!(
            store.update("sess_missing", &mut |_| Ok(())),
            Err(Error::UnknownSession { .. })
        ));
    }

    #[test]
    fn strict_misses_are_counted_and_the_last_twenty_kept() {
        let store = InMemoryStore::new();
        let s = store.create(NewSession::new(Mode::Replay)).unwrap();
        let policy = parse_policy(br#"{"externalHttp": "strict"}"#, "t").unwrap();
        s.update(|st| {
            st.set_policy(policy);
            Ok(())
        })
        .unwrap();
        for i in 0..25 {
            let req =
                Request::from_exchange(&hop(Direction::Outbound, "api.test", &format!("/{i}")));
            let decision = store.inject(s.id(), &req).unwrap();
            assert!(matches!(decision, Decision::StrictMiss(_)));
        }
        assert_eq!(s.stats().strict_misses, 25);
        let misses = s.strict_misses();
        assert_eq!(misses.len(), super::super::MAX_STRICT_MISSES);
        assert!(
            misses[0]["request"]["url"]
                .as_str()
                .unwrap()
                .ends_with("/5")
        );
        assert!(
            misses[19]["request"]["url"]
                .as_str()
                .unwrap()
                .ends_with("/24")
        );
        assert_eq!(store.metrics().inject_count(InjectOutcome::StrictMiss), 25);
    }

    #[test]
    fn record_buffers_redacted_hops_only_for_capture() {
        let store = InMemoryStore::new();
        let capture = store.create(NewSession::new(Mode::Capture)).unwrap();
        let replay = store.create(NewSession::new(Mode::Replay)).unwrap();
        for s in [&capture, &replay] {
            store
                .record(s.id(), hop(Direction::Inbound, "app", "/checkout"))
                .unwrap();
        }
        assert_eq!(capture.stats().extracted_spans, 1);
        assert_eq!(replay.stats().extracted_spans, 1);
        assert_eq!(replay.captured_len(), 0);
        let hops = capture.captured();
        assert_eq!(hops.len(), 1);
        assert_eq!(hops[0].request_header("authorization"), Some("[REDACTED]"));
        assert_eq!(hops[0].request_header("accept"), Some("application/json"));
        assert_eq!(hops[0].response_header("set-cookie"), Some("[REDACTED]"));
        assert_eq!(hops[0].session_id.as_deref(), Some(capture.id()));
        assert_eq!(store.metrics().extracted_spans(), 2);
    }

    /// `x-auth-token` is a credential for `softprobe scrub` and, since both read one list,
    /// for the capture path too (the capture path used to store it in clear).
    #[test]
    fn capture_redacts_every_sensitive_header_the_scrubber_knows() {
        let store = InMemoryStore::new();
        let capture = store.create(NewSession::new(Mode::Capture)).unwrap();
        let mut exchange = hop(Direction::Outbound, "api.test", "/a");
        exchange
            .request_headers
            .push(("X-Auth-Token".into(), "t0ken".into()));
        store.record(capture.id(), exchange).unwrap();
        let hops = capture.captured();
        assert_eq!(hops[0].request_header("x-auth-token"), Some("[REDACTED]"));
        for name in crate::headers::SENSITIVE {
            assert!(crate::headers::is_sensitive(name));
        }
    }

    #[test]
    fn close_writes_captures_and_keeps_the_session_when_the_write_fails() {
        let dir = tempfile::tempdir().unwrap();
        let store = InMemoryStore::new();
        let replay = store.create(NewSession::new(Mode::Replay)).unwrap();
        assert_eq!(store.close(replay.id(), None).unwrap(), None);
        assert!(store.get(replay.id()).is_none());

        let capture = store.create(NewSession::new(Mode::Capture)).unwrap();
        store
            .record(capture.id(), hop(Direction::Outbound, "api.test", "/a"))
            .unwrap();
        let blocked = dir.path().join("file");
        std::fs::write(&blocked, "x").unwrap();
        let err = store
            .close(capture.id(), Some(&blocked.join("x.case.json")))
            .unwrap_err();
        assert!(matches!(err, Error::CaptureWrite { .. }), "{err}");
        assert!(store.get(capture.id()).is_some());
        assert_eq!(capture.captured_len(), 1, "a failed write keeps the hops");

        let out = dir.path().join("ok/x.case.json");
        assert_eq!(store.close(capture.id(), Some(&out)).unwrap(), Some(1));
        assert!(store.get(capture.id()).is_none());
        assert_eq!(
            capture.captured_len(),
            0,
            "a written capture's hops are freed at close, even while the session is still held"
        );
        let case = crate::case::Case::read(&out).unwrap();
        assert_eq!(case.exchanges().unwrap().len(), 1);
    }
}
