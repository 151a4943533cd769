//! What a replica sends to Redis off the hop's path: every [`FLUSH_EVERY`] (and before it
//! reads counters or closes a session) one pipeline carries the heartbeat (see `cache`), the
//! TTL restarts of the sessions used since the last one (whose answers revalidate the cached
//! revisions), the counters, the strict-miss reports and the captured hops, one script per
//! capture session with its hops in the order they were recorded.
//!
//! A captured hop is redacted on the recording thread with the cached configuration; the
//! script stores a session's hops only if they were redacted at the stored revision, else
//! they are redacted again with the newer one and sent again, before any later hop of the
//! session. The span cap is enforced by the script, hop by hop, so the list never holds more;
//! the replica also refuses a hop at once when the hops it knows to be stored or queued
//! reach the cap (exact when one replica records the session; with several, a hop another
//! replica's hops crowded out is refused by the script and logged). Hops that cannot be
//! sent (the store is unreachable) are counted as lost, as a hop that fails to store is;
//! while the latest batch failed, each recorded hop is sent at once by its own thread (and
//! its error returned), as it would be with no batch.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::json;

use super::super::state::Session;
use super::{Inner, meta_key, misses_key};
use crate::case::Exchange;
use crate::error::Error;
use crate::session::MAX_STRICT_MISSES;

/// How often a replica sends what it holds.
pub(super) const FLUSH_EVERY: Duration = Duration::from_millis(5);
/// Hops a replica holds before the recording thread sends them itself.
const MAX_QUEUED: usize = 4096;
/// Attempts to store a session's hops while its configuration keeps changing.
const REDACT_ATTEMPTS: usize = 4;

/// A captured hop waiting to be sent: as stored, and as it came (to redact it again if the
/// configuration moved before it was stored).
pub(super) struct Queued {
    session: Arc<Session>,
    stored: String,
    original: Exchange,
}

impl Queued {
    pub(super) fn new(session: Arc<Session>, original: Exchange) -> Self {
        let stored = stored_form(&session, original.clone());
        Queued {
            session,
            stored,
            original,
        }
    }
}

fn stored_form(session: &Session, exchange: Exchange) -> String {
    let hop = session.prepare_capture(exchange);
    json!({"service": hop.service, "span": hop.to_span()}).to_string()
}

/// What the replica holds for Redis.
#[derive(Default)]
pub(super) struct Pending {
    counts: HashMap<(String, &'static str), u64>,
    misses: Vec<(String, String)>,
    touched: HashSet<String>,
    hops: HashMap<String, Vec<Queued>>,
    queued: usize,
    /// Per capture session, a lower bound of the hops stored plus those queued here.
    held: HashMap<String, usize>,
}

impl Pending {
    pub(super) fn count(&mut self, id: &str, field: &'static str, miss: Option<String>) {
        *self.counts.entry((id.to_owned(), field)).or_default() += 1;
        if let Some(miss) = miss {
            self.misses.push((id.to_owned(), miss));
        }
    }

    pub(super) fn touch(&mut self, id: &str) {
        if !self.touched.contains(id) {
            self.touched.insert(id.to_owned());
        }
    }

    /// Queues a hop unless the session holds `limit` hops already (`0`: no cap); returns
    /// whether it was queued and whether the queue is due to be sent by the caller.
    pub(super) fn queue(&mut self, id: &str, limit: usize, hop: Queued) -> (bool, bool) {
        let held = self.held.entry(id.to_owned()).or_default();
        if limit > 0 && *held >= limit {
            return (false, false);
        }
        *held += 1;
        self.hops.entry(id.to_owned()).or_default().push(hop);
        self.queued += 1;
        (true, self.queued >= MAX_QUEUED)
    }

    pub(super) fn forget(&mut self, id: &str) {
        self.held.remove(id);
    }

    fn is_empty(&self) -> bool {
        self.counts.is_empty()
            && self.misses.is_empty()
            && self.touched.is_empty()
            && self.hops.is_empty()
    }

    /// Everything to send, leaving what the replica knows of its sessions.
    fn take(&mut self) -> Pending {
        Pending {
            counts: std::mem::take(&mut self.counts),
            misses: std::mem::take(&mut self.misses),
            touched: std::mem::take(&mut self.touched),
            hops: std::mem::take(&mut self.hops),
            queued: std::mem::replace(&mut self.queued, 0),
            held: HashMap::new(),
        }
    }
}

enum Reply {
    Touch(String),
    Hops(String),
}

/// A session's hops, all redacted at one revision.
struct Group {
    revision: u64,
    hops: Vec<Queued>,
}

impl Group {
    /// Redacts again, with the newest configuration among them, the hops redacted with an
    /// older one.
    fn new(mut hops: Vec<Queued>) -> Group {
        let newest = hops
            .iter()
            .map(|h| &h.session)
            .max_by_key(|s| s.revision())
            .map(Arc::clone);
        let revision = newest.as_ref().map_or(0, |s| s.revision());
        if let Some(newest) = newest {
            for hop in &mut hops {
                if hop.session.revision() != revision {
                    hop.stored = stored_form(&newest, hop.original.clone());
                    hop.session = Arc::clone(&newest);
                }
            }
        }
        Group { revision, hops }
    }

    fn redact_with(&mut self, session: &Arc<Session>) {
        self.revision = session.revision();
        for hop in &mut self.hops {
            hop.stored = stored_form(session, hop.original.clone());
            hop.session = Arc::clone(session);
        }
    }
}

impl Inner {
    /// Sends everything this replica holds in one pipeline (plus a heartbeat when
    /// `heartbeat` and one is due). Sends are serialized, so a session's hops reach Redis
    /// in the order they were recorded.
    pub(super) fn flush(&self, heartbeat: bool) -> std::result::Result<(), String> {
        // The connection first: waiting for an unreachable store must not hold the send
        // lock, or every recording thread would wait for the others' timeouts in turn.
        let conn = self.pool.get();
        let _sending = self.sending.lock().unwrap_or_else(|p| p.into_inner());
        let heartbeat = heartbeat.then(|| self.cache.heartbeat_due()).flatten();
        let taken = self.pending().take();
        if taken.is_empty() && heartbeat.is_none() {
            return Ok(());
        }
        let mut groups: Vec<(String, Group)> = taken
            .hops
            .into_iter()
            .map(|(id, hops)| (id, Group::new(hops)))
            .collect();
        let ticket = self.cache.ticket();
        let mut conn = match conn {
            Ok(conn) => conn,
            Err(err) => {
                self.cache.distrust();
                self.failing.store(true, Ordering::Relaxed);
                self.put_back(taken.counts, taken.misses);
                self.lose(groups);
                return Err(err.to_string());
            }
        };
        let mut pipe = redis::pipe();
        let mut replies = Vec::new();
        if let Some(sent) = heartbeat {
            pipe.cmd("PUBLISH")
                .arg(&self.cache.heartbeat_channel)
                .arg(sent)
                .ignore();
        }
        for id in &taken.touched {
            let [meta, hops, misses] = super::keys(id);
            pipe.invoke_script(
                self.scripts
                    .touch
                    .key(meta)
                    .key(hops)
                    .key(misses)
                    .arg(self.ttl_ms),
            );
            replies.push(Reply::Touch(id.clone()));
        }
        for ((id, field), n) in &taken.counts {
            pipe.invoke_script(&self.count_invocation(id, field, *n, ""))
                .ignore();
        }
        for (id, report) in &taken.misses {
            pipe.invoke_script(&self.count_invocation(id, "strict", 0, report))
                .ignore();
        }
        for (id, group) in &groups {
            pipe.invoke_script(&self.record_invocation(id, group));
            replies.push(Reply::Hops(id.clone()));
        }
        // A pipeline of EVALSHA fails whole when the server lost its script cache (a
        // restart); load the scripts and try once more.
        let answered = match pipe.query::<Vec<redis::Value>>(&mut *conn) {
            Err(err) if err.kind() == redis::ErrorKind::NoScriptError => self
                .scripts
                .load_all(&mut conn)
                .and_then(|()| pipe.query::<Vec<redis::Value>>(&mut *conn)),
            other => other,
        };
        let answers = match answered {
            Ok(answers) if answers.len() == replies.len() => answers,
            Ok(answers) => {
                self.failing.store(true, Ordering::Relaxed);
                self.put_back(taken.counts, taken.misses);
                self.lose(groups);
                return Err(format!(
                    "Redis answered {} of {} replies to a pipeline",
                    answers.len(),
                    replies.len()
                ));
            }
            Err(err) => {
                self.cache.distrust();
                self.failing.store(true, Ordering::Relaxed);
                self.put_back(taken.counts, taken.misses);
                self.lose(groups);
                return Err(err.to_string());
            }
        };
        self.failing.store(false, Ordering::Relaxed);
        let mut moved = Vec::new();
        let mut by_id: HashMap<String, Group> = groups.drain(..).collect();
        for (reply, answer) in replies.into_iter().zip(answers) {
            match reply {
                Reply::Touch(id) => {
                    let revision = redis::from_redis_value::<Option<u64>>(&answer)
                        .ok()
                        .flatten();
                    if revision.is_none() {
                        self.forget(&id);
                    } else {
                        self.cache.confirm(&id, revision, ticket);
                    }
                }
                Reply::Hops(id) => {
                    let Some(group) = by_id.remove(&id) else {
                        continue;
                    };
                    if let Some(group) = self.stored(&id, group, &answer) {
                        moved.push((id, group));
                    }
                }
            }
        }
        for (id, group) in moved {
            self.store_again(&mut conn, &id, group);
        }
        Ok(())
    }

    /// Applies a record script's answer; returns the group if its revision moved.
    fn stored(&self, id: &str, group: Group, answer: &redis::Value) -> Option<Group> {
        let answer: Vec<i64> = redis::from_redis_value(answer).unwrap_or_default();
        match answer.as_slice() {
            [-3, ..] => Some(group),
            [-1, ..] => {
                tracing::warn!(
                    sessionId = id,
                    hops = group.hops.len(),
                    "hops of a session closed meanwhile were not recorded"
                );
                self.forget(id);
                None
            }
            [stored, refused, ..] => {
                let stored = usize::try_from(*stored).unwrap_or(0);
                let mut pending = self.pending();
                let queued = pending.hops.get(id).map_or(0, Vec::len);
                pending.held.insert(id.to_owned(), stored + queued);
                drop(pending);
                if *refused > 0 {
                    let err = Error::SpanLimit {
                        session_id: id.to_owned(),
                        limit: self.limits.max_spans_per_session.unwrap_or(0),
                        refused: usize::try_from(*refused).unwrap_or(0),
                    };
                    tracing::warn!(sessionId = id, "{err}");
                }
                None
            }
            _ => {
                tracing::warn!(sessionId = id, "Redis answered a record script oddly");
                None
            }
        }
    }

    /// Redacts a session's hops with its newest configuration and stores them, before any
    /// later hop of the session is sent.
    fn store_again(&self, conn: &mut redis::Connection, id: &str, mut group: Group) {
        for _ in 0..REDACT_ATTEMPTS {
            let ticket = self.cache.ticket();
            let session = match self.load(conn, id) {
                Ok(Some(session)) => self.cache.remember(id, Arc::new(session), ticket),
                Ok(None) => {
                    self.forget(id);
                    tracing::warn!(
                        sessionId = id,
                        hops = group.hops.len(),
                        "hops of a session closed meanwhile were not recorded"
                    );
                    return;
                }
                Err(err) => {
                    tracing::warn!(sessionId = id, "{err}");
                    self.lose(vec![(id.to_owned(), group)]);
                    return;
                }
            };
            group.redact_with(&session);
            let answer = self
                .record_invocation(id, &group)
                .invoke::<redis::Value>(conn);
            match answer {
                Ok(answer) => match self.stored(id, group, &answer) {
                    Some(again) => group = again,
                    None => return,
                },
                Err(err) => {
                    tracing::warn!(sessionId = id, "{err}");
                    self.lose(vec![(id.to_owned(), group)]);
                    return;
                }
            }
        }
        tracing::warn!(
            sessionId = id,
            hops = group.hops.len(),
            "the session kept changing while its hops were recorded; they were not"
        );
        self.lose(vec![(id.to_owned(), group)]);
    }

    fn record_invocation<'a>(&'a self, id: &str, group: &Group) -> redis::ScriptInvocation<'a> {
        let [meta, hops, misses] = super::keys(id);
        let mut invocation = self.scripts.record.key(meta);
        invocation
            .key(hops)
            .key(misses)
            .arg(group.revision)
            .arg(self.limits.max_spans_per_session.unwrap_or(0))
            .arg(self.ttl_ms);
        for hop in &group.hops {
            invocation.arg(&hop.stored);
        }
        invocation
    }

    fn count_invocation<'a>(
        &'a self,
        id: &str,
        field: &str,
        by: u64,
        report: &str,
    ) -> redis::ScriptInvocation<'a> {
        let mut invocation = self.scripts.count.key(meta_key(id));
        invocation
            .key(misses_key(id))
            .arg(field)
            .arg(by)
            .arg(report)
            .arg(MAX_STRICT_MISSES)
            .arg(self.ttl_ms);
        invocation
    }

    fn put_back(
        &self,
        counts: HashMap<(String, &'static str), u64>,
        misses: Vec<(String, String)>,
    ) {
        let mut pending = self.pending();
        for (key, n) in counts {
            *pending.counts.entry(key).or_default() += n;
        }
        pending.misses.extend(misses);
    }

    /// Hops that could not be stored: counted as lost (the close reports them) and no
    /// longer held against the span cap.
    fn lose(&self, groups: Vec<(String, Group)>) {
        for (id, group) in groups {
            let n = group.hops.len();
            if let Some(held) = self.pending().held.get_mut(&id) {
                *held = held.saturating_sub(n);
            }
            self.note_lost(&id, n as u64);
        }
    }
}
