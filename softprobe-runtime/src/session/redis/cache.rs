//! What a replica keeps of the shared sessions, and how it stays fresh without a round trip
//! per hop.
//!
//! Every change to a session (a configuration update, the start and the end of a close) is
//! stored by a Lua script that also publishes the session id on the store's changes channel;
//! each replica listens on a connection of its own and drops that id from its cache. A hop is
//! decided from the cache only while the listener is known to be current: every
//! [`HEARTBEAT_EVERY`] the replica publishes the time it sends on a channel of its own, and an
//! entry is trusted only while the latest heartbeat heard was sent less than
//! [`CHANGES_SEEN_WITHIN`] ago. Redis delivers a subscriber's messages in publish order, so hearing
//! a heartbeat sent at `t` means every change completed before `t` has been heard: **a
//! change completed `CHANGES_SEEN_WITHIN` before a hop starts on any replica is seen by that hop**
//! (in practice within a millisecond). When the listener falls behind or loses its
//! connection, hops revalidate with a round trip each, as they would with no cache.
//!
//! An entry is also revalidated every [`MAX_AGE`], so a change made by something that does
//! not publish (a replica of an older version during a rolling upgrade, a key expired by its
//! TTL) is seen within that bound. Entries of sessions in use are revalidated by the
//! batched TTL restarts (see `batch`), so a busy session never pays that round trip.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use super::super::state::Session;
use super::{Inner, REDIS_TIMEOUT};

/// How recent the latest heartbeat heard must be for the cache to answer a hop.
pub const CHANGES_SEEN_WITHIN: Duration = Duration::from_millis(50);
/// How often a replica publishes its heartbeat.
pub(super) const HEARTBEAT_EVERY: Duration = Duration::from_millis(10);
/// How long an entry is trusted after the round trip that last confirmed its revision.
pub(super) const MAX_AGE: Duration = Duration::from_secs(1);
/// How long the listener waits for a message before it checks whether it should stop.
const LISTEN_TIMEOUT: Duration = Duration::from_millis(250);

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

struct Entry {
    session: Arc<Session>,
    /// Nanoseconds after the cache's origin until which the entry answers hops.
    valid_until: u64,
}

/// Taken before a round trip whose answer is cached: the time it started and how many
/// changes had been heard, so that an answer overtaken by a change is not trusted.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ticket {
    epoch: u64,
    at: u64,
}

/// The replica's sessions by id, with what makes them trustworthy.
pub(super) struct Cache {
    origin: Instant,
    entries: RwLock<HashMap<String, Entry>>,
    /// Bumped (under the entries' write lock) by every change heard and every reconnect.
    epoch: AtomicU64,
    /// Send time (nanoseconds after `origin`, plus one) of the latest heartbeat heard; 0
    /// while the listener is not known to be current.
    heard: AtomicU64,
    last_heartbeat: AtomicU64,
    /// This replica's heartbeat channel.
    pub(super) heartbeat_channel: String,
}

impl Cache {
    pub(super) fn new(heartbeat_channel: String) -> Self {
        Cache {
            origin: Instant::now(),
            entries: RwLock::new(HashMap::new()),
            epoch: AtomicU64::new(0),
            heard: AtomicU64::new(0),
            last_heartbeat: AtomicU64::new(0),
            heartbeat_channel,
        }
    }

    fn now(&self) -> u64 {
        nanos(self.origin.elapsed())
    }

    /// The cached session whatever its freshness (its mode never changes; a recorded hop's
    /// redaction is checked against the stored revision by Redis).
    pub(super) fn any(&self, id: &str) -> Option<Arc<Session>> {
        self.entries
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .map(|e| Arc::clone(&e.session))
    }

    /// The cached session if it may answer a hop without a round trip.
    pub(super) fn fresh(&self, id: &str) -> Option<Arc<Session>> {
        // The heartbeat first: hearing it orders every earlier invalidation before the read
        // of the entry below.
        let heard = self.heard.load(Ordering::Acquire);
        let now = self.now();
        if heard == 0 || now.saturating_sub(heard - 1) > nanos(CHANGES_SEEN_WITHIN) {
            return None;
        }
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        let entry = entries.get(id)?;
        (now < entry.valid_until).then(|| Arc::clone(&entry.session))
    }

    pub(super) fn ticket(&self) -> Ticket {
        Ticket {
            epoch: self.epoch.load(Ordering::Acquire),
            at: self.now(),
        }
    }

    /// Caches `session` as read by the round trip of `ticket`, unless the cache holds a
    /// newer revision. An entry of the same revision is kept (its engine holds this
    /// replica's replay bookkeeping) and only its freshness renewed. The entry answers hops
    /// only if no change was heard since the ticket. Returns the session to use.
    pub(super) fn remember(&self, id: &str, session: Arc<Session>, ticket: Ticket) -> Arc<Session> {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        let valid_until = if self.epoch.load(Ordering::Acquire) == ticket.epoch {
            ticket.at + nanos(MAX_AGE)
        } else {
            0
        };
        match entries.get_mut(id) {
            Some(entry) if entry.session.revision() >= session.revision() => {
                if entry.session.revision() == session.revision() {
                    entry.valid_until = entry.valid_until.max(valid_until);
                }
                Arc::clone(&entry.session)
            }
            _ => {
                entries.insert(
                    id.to_owned(),
                    Entry {
                        session: Arc::clone(&session),
                        valid_until,
                    },
                );
                session
            }
        }
    }

    /// A batched TTL restart answered that the stored revision is `revision`: renews the
    /// entry if it is that revision, drops it if not.
    pub(super) fn confirm(&self, id: &str, revision: Option<u64>, ticket: Ticket) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        let Some(entry) = entries.get_mut(id) else {
            return;
        };
        match revision {
            Some(rev) if rev == entry.session.revision() => {
                if self.epoch.load(Ordering::Acquire) == ticket.epoch {
                    entry.valid_until = entry.valid_until.max(ticket.at + nanos(MAX_AGE));
                }
            }
            _ => {
                entries.remove(id);
                self.epoch.fetch_add(1, Ordering::AcqRel);
            }
        }
    }

    pub(super) fn forget(&self, id: &str) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        entries.remove(id);
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    fn clear(&self) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        entries.clear();
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// No hop is answered from the cache until the next heartbeat is heard.
    pub(super) fn distrust(&self) {
        self.heard.store(0, Ordering::Release);
    }

    fn heard_heartbeat(&self, sent: u64) {
        self.heard.fetch_max(sent + 1, Ordering::AcqRel);
    }

    /// The send time to publish if a heartbeat is due.
    pub(super) fn heartbeat_due(&self) -> Option<u64> {
        let now = self.now();
        let last = self.last_heartbeat.load(Ordering::Relaxed);
        if last != 0 && now.saturating_sub(last) < nanos(HEARTBEAT_EVERY) {
            return None;
        }
        self.last_heartbeat.store(now.max(1), Ordering::Relaxed);
        Some(now)
    }
}

/// The listener thread: hears the changes channel and this replica's heartbeats until the
/// store is dropped, reconnecting after a failure.
pub(super) fn listen(inner: &Inner, client: &redis::Client) {
    while !inner.stopped() {
        if let Err(err) = listen_once(inner, client) {
            inner.cache.distrust();
            tracing::debug!("the session change listener reconnects: {err}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn listen_once(inner: &Inner, client: &redis::Client) -> redis::RedisResult<()> {
    let mut conn = client.get_connection_with_timeout(REDIS_TIMEOUT)?;
    conn.set_read_timeout(Some(LISTEN_TIMEOUT))?;
    conn.set_write_timeout(Some(REDIS_TIMEOUT))?;
    let mut pubsub = conn.as_pubsub();
    pubsub.subscribe(&[&inner.channel, &inner.cache.heartbeat_channel])?;
    // Changes published while no connection listened were missed: start afresh. Entries
    // cached from round trips that started before this point are not trusted (the epoch
    // moved); later round trips see every missed change.
    inner.cache.clear();
    let mut last_message = Instant::now();
    while !inner.stopped() {
        let msg = match pubsub.get_message() {
            Ok(msg) => msg,
            Err(err) if err.is_timeout() && last_message.elapsed() < REDIS_TIMEOUT => continue,
            Err(err) => return Err(err),
        };
        last_message = Instant::now();
        let payload: String = msg.get_payload()?;
        if msg.get_channel_name() == inner.cache.heartbeat_channel {
            if let Ok(sent) = payload.parse() {
                inner.cache.heard_heartbeat(sent);
            }
        } else {
            inner.forget(&payload);
            // Hops this replica holds for a session being closed elsewhere go now.
            inner.wake_writer();
        }
    }
    Ok(())
}
