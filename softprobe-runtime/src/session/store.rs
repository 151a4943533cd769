//! The session store: the trait every front end (control API, OTLP handlers, in-process
//! proxy) talks to, and the in-memory implementation.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use super::id::new_session_id;
use super::state::{NewSession, Session, SessionState};
use crate::case::Exchange;
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

    /// The session with this id, or [`Error::UnknownSession`].
    fn session(&self, id: &str) -> Result<Arc<Session>> {
        self.get(id).ok_or_else(|| Error::UnknownSession {
            session_id: id.to_owned(),
        })
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
        Ok(decision)
    }

    /// Records an extracted hop for a session (buffered for capture sessions, counted for
    /// all); returns whether it was buffered.
    fn record(&self, session_id: &str, exchange: Exchange) -> Result<bool> {
        let session = self.session(session_id)?;
        self.metrics().record_extracted(1);
        Ok(session.record(exchange))
    }
}

/// The in-memory store: a map behind a `RwLock`, each session behind its own locks, so
/// traffic on one session never waits for another.
#[derive(Debug, Default)]
pub struct InMemoryStore {
    sessions: RwLock<HashMap<String, (u64, Arc<Session>)>>,
    next_seq: AtomicU64,
    metrics: Metrics,
}

impl InMemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store, ready to share.
    pub fn shared() -> Arc<dyn SessionStore> {
        Arc::new(Self::new())
    }
}

impl SessionStore for InMemoryStore {
    fn create(&self, new: NewSession) -> Result<Arc<Session>> {
        let id = new_session_id()?;
        let session = Arc::new(Session::new(id.clone(), new));
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        self.sessions
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, (seq, Arc::clone(&session)));
        self.metrics.record_session_created();
        Ok(session)
    }

    fn get(&self, id: &str) -> Option<Arc<Session>> {
        self.sessions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .map(|(_, s)| Arc::clone(s))
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
}
