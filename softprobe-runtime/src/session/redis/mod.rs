//! The Redis session store: sessions shared by every runtime replica pointed at one Redis
//! (`--store redis://host:port/db`, `rediss://` for TLS, `redis://:password@host`).
//!
//! What lives in Redis, per session (keys share the `{id}` hash tag, so a cluster keeps them
//! on one node): `softprobe:{id}:meta`, a hash with the identity (mode, case id, test name,
//! creation time), the revision, the configuration documents (case, rules, policy,
//! fixtures as JSON), the counters (`injected`, `extracted`, `strict`, `lost`) and, while a
//! replica writes the capture, `closing` (then `sealed` once it reads the hops);
//! `softprobe:{id}:hops`, the captured hops as a list (appended by a script, so replicas
//! never read-modify-write a session); and `softprobe:{id}:misses`, the last strict-miss
//! reports. `softprobe:sessions` indexes the ids by creation time. Every change is one Lua
//! script, atomic on the server, which also publishes the session id on the store's changes
//! channel (`softprobe:changes:{db}`).
//!
//! What each replica keeps: the [`Session`] rebuilt from the stored documents, keyed by
//! revision, kept fresh by the changes channel (see [`cache`]: a change completed
//! [`CHANGES_SEEN_WITHIN`] before a hop starts is seen by it). A decided hop costs no round trip:
//! it is decided from the cached engine, and its counts and the restart of the session's
//! idle TTL are sent with the next batch. A recorded hop is redacted with the cached
//! configuration and queued; the batch (see [`batch`]), sent every few milliseconds, stores a
//! session's queued hops in one script that checks the revision they were redacted at. So
//! the stats and hops another replica reads may trail by that much; a replica sends what it
//! holds before it reads counters, and a close waits for the other replicas' hops (below).
//! Replay bookkeeping that the engine keeps between hops (rules with `consume: once`,
//! repeated identical requests answered in recorded order) is per replica.
//!
//! A close claims the session (`closing`: hops are no longer decided, new hops are refused),
//! sends this replica's queued hops, gives the other replicas [`CLOSE_DRAIN`] to send theirs
//! (they send at once when they hear the claim; skipped when no other replica listens),
//! then seals the list and writes it. A replica killed outright loses the hops it had not
//! sent yet (at most [`FLUSH_EVERY`] of traffic).
//!
//! The client is the `redis` crate's synchronous connection in an `r2d2` pool with connect,
//! read and write timeouts: the [`SessionStore`] trait is synchronous, and a round trip on
//! loopback costs less than handing the request to another thread would.

mod batch;
mod cache;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::{Commands as _, Script};
use serde_json::{Value, json};

use self::batch::FLUSH_EVERY;
use self::batch::{Pending, Queued};
pub use self::cache::CHANGES_SEEN_WITHIN;
use self::cache::Cache;
use super::state::{NewSession, Session, SessionState, StatsSnapshot};
use super::store::{SessionLimits, SessionStore};
use super::{MAX_STRICT_MISSES, new_session_id};
use crate::Mode;
use crate::case::{Case, Exchange, Span};
use crate::error::{Error, Result};
use crate::metrics::{InjectOutcome, Metrics};
use crate::replay::{Decision, Layer, Origin, Request, Response};

/// How long connecting, and each read or write, may take before the store counts as
/// unavailable.
pub const REDIS_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a close waits for the hops other replicas still hold for the session.
pub const CLOSE_DRAIN: Duration = Duration::from_millis(50);
/// Most pooled connections per replica.
const POOL_SIZE: u32 = 32;
/// The key of the session index.
const INDEX_KEY: &str = "softprobe:sessions";

/// Returns the revision and restarts the TTLs; nil for a missing or closing session.
const TOUCH: &str = r"
local rev = redis.call('HGET', KEYS[1], 'rev')
if not rev then return false end
if redis.call('HEXISTS', KEYS[1], 'closing') == 1 then return false end
local ttl = tonumber(ARGV[1])
if ttl > 0 then
  for i = 1, #KEYS do redis.call('PEXPIRE', KEYS[i], ttl) end
end
return tonumber(rev)
";

/// Appends captured hops (ARGV[4..]) redacted at revision ARGV[1], in order, up to the span
/// limit ARGV[2]: {-1, 0} unknown or sealed, {-3, 0} the revision moved (nothing stored:
/// redact again), else {the list's length, hops refused at the limit}. A closing session
/// still takes hops until its close seals it.
const RECORD: &str = r"
local rev = redis.call('HGET', KEYS[1], 'rev')
if not rev or redis.call('HEXISTS', KEYS[1], 'sealed') == 1 then return {-1, 0} end
if tonumber(rev) ~= tonumber(ARGV[1]) then return {-3, 0} end
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  for i = 1, #KEYS do redis.call('PEXPIRE', KEYS[i], ttl) end
end
redis.call('HINCRBY', KEYS[1], 'extracted', #ARGV - 3)
local limit = tonumber(ARGV[2])
local n = redis.call('LLEN', KEYS[2])
local refused = 0
for i = 4, #ARGV do
  if limit > 0 and n >= limit then
    refused = refused + 1
  else
    n = redis.call('RPUSH', KEYS[2], ARGV[i])
  end
end
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
return {n, refused}
";

/// Counts into one field (and keeps a strict-miss report): 0 for a missing session.
const COUNT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[1], ARGV[1], tonumber(ARGV[2]))
if ARGV[3] ~= '' then
  redis.call('RPUSH', KEYS[2], ARGV[3])
  redis.call('LTRIM', KEYS[2], -tonumber(ARGV[4]), -1)
  local ttl = tonumber(ARGV[5])
  if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
end
return 1
";

/// Stores a configuration change made at revision ARGV[1] and publishes the session id
/// ARGV[3] on channel ARGV[2]: -1 unknown or closing, -2 the revision moved meanwhile, else
/// the new revision.
const UPDATE: &str = r"
local rev = redis.call('HGET', KEYS[1], 'rev')
if not rev or redis.call('HEXISTS', KEYS[1], 'closing') == 1 then return -1 end
if tonumber(rev) ~= tonumber(ARGV[1]) then return -2 end
for i = 4, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
local new = redis.call('HINCRBY', KEYS[1], 'rev', 1)
redis.call('PUBLISH', ARGV[2], ARGV[3])
return new
";

/// Claims the close of a session for token ARGV[1] and publishes the session id ARGV[3] on
/// channel ARGV[2]: 1 for the one caller that gets it, 0 for the others.
const CLAIM: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local got = redis.call('HSETNX', KEYS[1], 'closing', ARGV[1])
if got == 1 then redis.call('PUBLISH', ARGV[2], ARGV[3]) end
return got
";

/// Seals a session claimed with token ARGV[1]: no hop is appended after. 1 if sealed.
const SEAL: &str = r"
if redis.call('HGET', KEYS[1], 'closing') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'sealed', '1')
return 1
";

struct Scripts {
    touch: Script,
    record: Script,
    count: Script,
    update: Script,
    claim: Script,
    seal: Script,
}

impl Scripts {
    /// Loads the scripts a batch uses (after the server lost its script cache).
    fn load_all(&self, conn: &mut redis::Connection) -> redis::RedisResult<()> {
        for script in [&self.touch, &self.record, &self.count] {
            script.load(conn)?;
        }
        Ok(())
    }
}

/// Sets the read and write timeouts on every pooled connection.
#[derive(Debug)]
struct Timeouts;

impl r2d2::CustomizeConnection<redis::Connection, redis::RedisError> for Timeouts {
    fn on_acquire(&self, conn: &mut redis::Connection) -> Result<(), redis::RedisError> {
        conn.set_read_timeout(Some(REDIS_TIMEOUT))?;
        conn.set_write_timeout(Some(REDIS_TIMEOUT))
    }
}

/// The Redis session store. See the module documentation for what is shared and what
/// each replica caches.
pub struct RedisStore {
    inner: Arc<Inner>,
}

/// The store's state, shared with its batch and listener threads.
struct Inner {
    url: String,
    pool: r2d2::Pool<redis::Client>,
    scripts: Scripts,
    cache: Cache,
    /// The channel every change is published on.
    channel: String,
    lost: Mutex<HashMap<String, u64>>,
    pending: Mutex<Pending>,
    /// Held while a batch is sent, so batches reach Redis in order.
    sending: Mutex<()>,
    writer: OnceLock<std::thread::Thread>,
    /// Set while the latest batch failed: a recorded hop is then sent by its own thread at
    /// once, and lost if that fails too, as it would be with no batch.
    failing: AtomicBool,
    stop: AtomicBool,
    metrics: Metrics,
    limits: SessionLimits,
    ttl_ms: u64,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.inner.url)
            .field("limits", &self.inner.limits)
            .finish_non_exhaustive()
    }
}

/// `url` with its password replaced by `***`, for messages and logs.
pub fn redacted_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => format!("{scheme}://***@{host}"),
    }
}

fn meta_key(id: &str) -> String {
    format!("softprobe:{{{id}}}:meta")
}

fn hops_key(id: &str) -> String {
    format!("softprobe:{{{id}}}:hops")
}

fn misses_key(id: &str) -> String {
    format!("softprobe:{{{id}}}:misses")
}

fn keys(id: &str) -> [String; 3] {
    [meta_key(id), hops_key(id), misses_key(id)]
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl RedisStore {
    /// Connects to the Redis at `url` and checks that it answers; the error names the URL
    /// (password hidden). `idle` is the idle expiry: every use of a session restarts a TTL
    /// of twice that on its keys, so sessions no replica closes still disappear; `None`
    /// keeps sessions until they are closed.
    pub fn connect(url: &str, limits: SessionLimits, idle: Option<Duration>) -> Result<Self> {
        let shown = redacted_url(url);
        let unavailable = |message: String| Error::StoreUnavailable {
            url: shown.clone(),
            message,
        };
        let client =
            redis::Client::open(url).map_err(|e| unavailable(format!("not a Redis URL: {e}")))?;
        let pool = r2d2::Pool::builder()
            .max_size(POOL_SIZE)
            .min_idle(Some(1))
            .connection_timeout(REDIS_TIMEOUT)
            .test_on_check_out(false)
            .connection_customizer(Box::new(Timeouts))
            .error_handler(Box::new(r2d2::NopErrorHandler))
            .build(client.clone())
            .map_err(|e| unavailable(format!("cannot connect: {e}")))?;
        let db = client.get_connection_info().redis.db;
        let replica = new_session_id()?;
        let inner = Arc::new(Inner {
            url: shown,
            pool,
            scripts: Scripts {
                touch: Script::new(TOUCH),
                record: Script::new(RECORD),
                count: Script::new(COUNT),
                update: Script::new(UPDATE),
                claim: Script::new(CLAIM),
                seal: Script::new(SEAL),
            },
            cache: Cache::new(format!("softprobe:replica:{db}:{replica}")),
            channel: format!("softprobe:changes:{db}"),
            lost: Mutex::new(HashMap::new()),
            pending: Mutex::new(Pending::default()),
            sending: Mutex::new(()),
            writer: OnceLock::new(),
            failing: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            metrics: Metrics::default(),
            limits,
            ttl_ms: idle.map_or(0, |d| {
                u64::try_from(d.as_millis().saturating_mul(2)).unwrap_or(u64::MAX)
            }),
        });
        let mut conn = inner.conn()?;
        let pong: String = redis::cmd("PING")
            .query(&mut *conn)
            .map_err(|e| inner.unavailable(e))?;
        if pong != "PONG" {
            return Err(inner.unavailable(format!("PING answered {pong:?}")));
        }
        drop(conn);
        let store = RedisStore {
            inner: Arc::clone(&inner),
        };
        let writer = Arc::clone(&inner);
        let thread = std::thread::Builder::new()
            .name("softprobe-redis-batch".into())
            .spawn(move || {
                while !writer.stopped() {
                    std::thread::park_timeout(FLUSH_EVERY);
                    if let Err(err) = writer.flush(true) {
                        tracing::debug!("the batch is kept for later: {err}");
                    }
                }
            })
            .map_err(|e| inner.unavailable(format!("cannot start the batch thread: {e}")))?;
        let _ = inner.writer.set(thread.thread().clone());
        let listener = Arc::clone(&inner);
        std::thread::Builder::new()
            .name("softprobe-redis-changes".into())
            .spawn(move || cache::listen(&listener, &client))
            .map_err(|e| inner.unavailable(format!("cannot start the change listener: {e}")))?;
        Ok(store)
    }

    /// The store URL, password hidden.
    pub fn url(&self) -> &str {
        &self.inner.url
    }
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::Relaxed);
        self.inner.wake_writer();
        let _ = self.inner.flush(false);
    }
}

impl Inner {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn wake_writer(&self) {
        if let Some(thread) = self.writer.get() {
            thread.unpark();
        }
    }

    fn pending(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends this replica's batch now.
    fn flush_now(&self) -> Result<()> {
        self.flush(false).map_err(|e| self.unavailable(e))
    }

    fn unavailable(&self, err: impl std::fmt::Display) -> Error {
        Error::StoreUnavailable {
            url: self.url.clone(),
            message: err.to_string(),
        }
    }

    fn conn(&self) -> Result<r2d2::PooledConnection<redis::Client>> {
        self.pool.get().map_err(|e| self.unavailable(e))
    }

    /// Drops what this replica knows of a session (its cached state, its hop count).
    fn forget(&self, id: &str) {
        self.cache.forget(id);
        self.pending().forget(id);
    }

    /// Rebuilds the session from its stored documents (not cached).
    fn load(&self, conn: &mut redis::Connection, id: &str) -> Result<Option<Session>> {
        let fields: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(meta_key(id))
            .arg(&[
                "mode", "caseId", "testName", "created", "rev", "case", "rules", "policy",
                "fixtures", "closing",
            ])
            .query(conn)
            .map_err(|e| self.unavailable(e))?;
        let [
            mode,
            case_id,
            test_name,
            created,
            rev,
            case,
            rules,
            policy,
            fixtures,
            closing,
        ] = <[Option<String>; 10]>::try_from(fields)
            .map_err(|_| self.unavailable("HMGET answered the wrong number of fields"))?;
        let (Some(mode), Some(rev), None) = (mode, rev, closing) else {
            return Ok(None);
        };
        let corrupt = |what: &str, err: &dyn std::fmt::Display| {
            self.unavailable(format!("session `{id}` has an unreadable {what}: {err}"))
        };
        let mode: Mode = serde_json::from_value(json!(mode)).map_err(|e| corrupt("mode", &e))?;
        let revision: u64 = rev.parse().map_err(|e| corrupt("revision", &e))?;
        let created =
            UNIX_EPOCH + Duration::from_millis(created.and_then(|c| c.parse().ok()).unwrap_or(0));
        let new = NewSession {
            mode,
            case_id,
            test_name,
        };
        let session = Session::restore(id.to_owned(), new, created, revision)
            .with_span_limit(self.limits.max_spans_per_session);
        let source = format!("the stored state of session {id}");
        session
            .update(|state| {
                if let Some(case) = case {
                    let case = Case::from_slice_named(case.as_bytes(), &source)?;
                    state.load_case(case, &source)?;
                }
                if let Some(rules) = rules {
                    let rules = crate::rules::parse_rules_document(rules.as_bytes(), &source)
                        .map_err(|e| Error::invalid(e.to_string()))?;
                    state.set_rules(rules);
                }
                if let Some(policy) = policy {
                    let policy = crate::policy::parse_policy(policy.as_bytes(), &source)
                        .map_err(|e| Error::invalid(e.to_string()))?;
                    state.set_policy(policy);
                }
                if let Some(fixtures) = fixtures {
                    let fixtures = serde_json::from_str(&fixtures)
                        .map_err(|e| Error::invalid(format!("fixtures: {e}")))?;
                    state.set_fixtures(fixtures);
                }
                Ok(())
            })
            .map_err(|e| corrupt("configuration", &e))?;
        // `update` counted one change; the stored revision is the one that holds.
        session.set_revision(revision);
        Ok(Some(session))
    }

    /// What a hop gets when the store cannot be reached: a session this replica knows to be
    /// strict fails closed (503 `store_unavailable`); any other goes upstream, as it would
    /// with an unreachable runtime.
    fn unreachable_decision(&self, id: &str, request: &Request, err: Error) -> Result<Decision> {
        let strict = self.cache.any(id).is_some_and(|s| {
            request.direction == crate::case::Direction::Outbound
                && s.read().policy().blocks(&request.host)
        });
        if !strict {
            return Err(err);
        }
        let body = json!({"error": {
            "code": "store_unavailable",
            "message": format!(
                "{} {}{}: session `{id}` has a strict policy and {err}; the hop fails closed \
                 rather than reach a real host",
                request.method, request.host, request.path
            ),
        }});
        Ok(Decision::Respond {
            response: Response {
                status: 503,
                headers: vec![("content-type".into(), "application/json".into())],
                body: Some(crate::case::Body::Text(body.to_string())),
            },
            latency: None,
            origin: Origin::Rule {
                layer: Layer::Policy,
                name: Some("store unavailable".into()),
            },
            injected_error: true,
        })
    }

    fn counters(&self, id: &str) -> Result<(StatsSnapshot, u64)> {
        let mut conn = self.conn()?;
        let fields: Vec<Option<u64>> = conn
            .hget(meta_key(id), &["injected", "extracted", "strict", "lost"])
            .map_err(|e| self.unavailable(e))?;
        let at = |i: usize| fields.get(i).copied().flatten().unwrap_or(0);
        Ok((
            StatsSnapshot {
                injected_spans: at(0),
                extracted_spans: at(1),
                strict_misses: at(2),
                // Request drift is found by the replica that answered the call and kept
                // in its engine (like the rest of the replay bookkeeping): filled in from
                // this replica's session by the callers.
                request_drift: 0,
            },
            at(3),
        ))
    }

    /// The stored configuration of `state` as hash fields (the case only when it changed).
    fn documents(state: &SessionState, case_changed: bool) -> Vec<(&'static str, String)> {
        let mut out = Vec::with_capacity(4);
        if case_changed && let Some(case) = state.case() {
            out.push((
                "case",
                String::from_utf8_lossy(&case.to_json_bytes()).into_owned(),
            ));
        }
        out.push((
            "rules",
            serde_json::to_string(state.engine().rules(Layer::Session)).unwrap_or_default(),
        ));
        out.push((
            "policy",
            serde_json::to_string(state.policy()).unwrap_or_default(),
        ));
        if let Some(fixtures) = state.fixtures() {
            out.push((
                "fixtures",
                serde_json::to_string(fixtures).unwrap_or_default(),
            ));
        }
        out
    }

    /// Counts `by` into a counter field of the session.
    fn count(&self, id: &str, field: &str, by: u64) -> Result<()> {
        let mut conn = self.conn()?;
        let _: i64 = self
            .scripts
            .count
            .key(meta_key(id))
            .key(misses_key(id))
            .arg(field)
            .arg(by)
            .arg("")
            .arg(MAX_STRICT_MISSES)
            .arg(self.ttl_ms)
            .invoke(&mut *conn)
            .map_err(|e| self.unavailable(e))?;
        Ok(())
    }

    /// Hands the hops this replica could not store to Redis, now that it answers.
    fn flush_lost(&self) {
        let pending: Vec<(String, u64)> = {
            let mut lost = self.lost.lock().unwrap_or_else(|p| p.into_inner());
            if lost.is_empty() {
                return;
            }
            lost.drain().collect()
        };
        for (id, n) in pending {
            if let Err(err) = self.count(&id, "lost", n) {
                tracing::warn!(sessionId = %id, "{err}");
                *self
                    .lost
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(id)
                    .or_default() += n;
            }
        }
    }

    fn note_lost(&self, id: &str, n: u64) {
        let capture = self.cache.any(id).is_none_or(|s| s.mode() == Mode::Capture);
        if capture && n > 0 {
            *self
                .lost
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(id.to_owned())
                .or_default() += n;
        }
    }

    fn finish(&self, conn: &mut redis::Connection, id: &str) -> Result<()> {
        let [meta, hops, misses] = keys(id);
        redis::pipe()
            .atomic()
            .del(&[meta, hops, misses])
            .ignore()
            .zrem(INDEX_KEY, id)
            .ignore()
            .publish(&self.channel, id)
            .ignore()
            .query::<()>(conn)
            .map_err(|e| self.unavailable(e))?;
        self.forget(id);
        Ok(())
    }

    /// Gives a claimed session back after its close failed, so it takes hops again.
    fn release(&self, conn: &mut redis::Connection, id: &str) {
        let _: redis::RedisResult<()> = redis::pipe()
            .atomic()
            .hdel(meta_key(id), &["closing", "sealed"])
            .ignore()
            .publish(&self.channel, id)
            .ignore()
            .query(conn);
    }

    fn try_get(&self, id: &str) -> Result<Option<Arc<Session>>> {
        if let Some(session) = self.cache.fresh(id) {
            self.pending().touch(id);
            return Ok(Some(session));
        }
        let ticket = self.cache.ticket();
        let mut conn = self.conn()?;
        let [meta, hops, misses] = keys(id);
        let revision: Option<u64> = self
            .scripts
            .touch
            .key(meta)
            .key(hops)
            .key(misses)
            .arg(self.ttl_ms)
            .invoke(&mut *conn)
            .map_err(|e| self.unavailable(e))?;
        let Some(revision) = revision else {
            self.forget(id);
            return Ok(None);
        };
        if let Some(session) = self.cache.any(id)
            && session.revision() == revision
        {
            return Ok(Some(self.cache.remember(id, session, ticket)));
        }
        let Some(session) = self.load(&mut conn, id)? else {
            self.forget(id);
            return Ok(None);
        };
        let session = self.cache.remember(id, Arc::new(session), ticket);
        drop(conn);
        self.flush_lost();
        Ok(Some(session))
    }

    fn session(&self, id: &str) -> Result<Arc<Session>> {
        self.try_get(id)?.ok_or_else(|| Error::UnknownSession {
            session_id: id.to_owned(),
        })
    }

    /// Whether a replica other than this one listens for changes.
    fn others_listen(&self, conn: &mut redis::Connection) -> bool {
        let counts: Vec<(String, u64)> = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(&self.channel)
            .query(conn)
            .unwrap_or_default();
        counts.first().is_none_or(|(_, n)| *n > 1)
    }

    fn close(&self, id: &str, capture_path: Option<&std::path::Path>) -> Result<Option<usize>> {
        let session = self.session(id)?;
        self.flush_lost();
        let mut conn = self.conn()?;
        let token = format!("{}-{}", std::process::id(), now_ms());
        let claimed: i64 = self
            .scripts
            .claim
            .key(meta_key(id))
            .arg(&token)
            .arg(&self.channel)
            .arg(id)
            .invoke(&mut *conn)
            .map_err(|e| self.unavailable(e))?;
        if claimed != 1 {
            // Another replica closes it (or just did): as for a closed session.
            self.forget(id);
            return Err(Error::UnknownSession {
                session_id: id.to_owned(),
            });
        }
        self.cache.forget(id);
        // The hops and counts this replica holds go first; the claim lets them in.
        if let Err(err) = self.flush_now() {
            self.release(&mut conn, id);
            return Err(err);
        }
        let Some(path) = capture_path.filter(|_| session.mode() == Mode::Capture) else {
            self.finish(&mut conn, id)?;
            return Ok(None);
        };
        if self.others_listen(&mut conn) {
            std::thread::sleep(CLOSE_DRAIN);
        }
        let sealed: redis::RedisResult<i64> = self
            .scripts
            .seal
            .key(meta_key(id))
            .arg(&token)
            .invoke(&mut *conn);
        match sealed {
            Ok(1) => {}
            Ok(_) => {
                self.forget(id);
                return Err(Error::UnknownSession {
                    session_id: id.to_owned(),
                });
            }
            Err(err) => {
                self.release(&mut conn, id);
                return Err(self.unavailable(err));
            }
        }
        let stored: Vec<String> = match conn.lrange(hops_key(id), 0, -1) {
            Ok(stored) => stored,
            Err(err) => {
                self.release(&mut conn, id);
                return Err(self.unavailable(err));
            }
        };
        let mut hops = Vec::with_capacity(stored.len());
        // Each stored hop is dropped once it is parsed: at most one copy of the hops is held.
        for (i, text) in stored.into_iter().enumerate() {
            let hop = serde_json::from_str::<Value>(&text)
                .map_err(|e| e.to_string())
                .and_then(|v| {
                    let service = v["service"].as_str().map(str::to_owned);
                    let span: Span =
                        serde_json::from_value(v["span"].clone()).map_err(|e| e.to_string())?;
                    Exchange::from_span(&span, service.as_deref()).map_err(|e| e.to_string())
                });
            match hop {
                Ok(hop) => hops.push(hop),
                Err(err) => {
                    self.release(&mut conn, id);
                    return Err(self
                        .unavailable(format!("hop {i} of session `{id}` cannot be read: {err}")));
                }
            }
        }
        if let Err(err) = session.write_capture_of(path, &hops) {
            self.release(&mut conn, id);
            return Err(err);
        }
        let lost: Option<u64> = conn.hget(meta_key(id), "lost").unwrap_or(None);
        if let Some(lost) = lost.filter(|n| *n > 0) {
            tracing::error!(
                sessionId = id,
                lost,
                "the capture misses {lost} hop(s) that reached their upstream while the \
                 session store was unavailable"
            );
        }
        self.finish(&mut conn, id)?;
        let written = hops.len();
        drop(hops);
        crate::allocator::release_after(std::fs::metadata(path).map_or(0, |m| m.len()));
        Ok(Some(written))
    }

    fn record(&self, session_id: &str, exchange: Exchange) -> Result<bool> {
        self.metrics.record_extracted(1);
        let session = match self.cache.any(session_id) {
            Some(session) => session,
            None => match self.session(session_id) {
                Ok(session) => session,
                Err(err @ Error::StoreUnavailable { .. }) => {
                    self.note_lost(session_id, 1);
                    return Err(err);
                }
                Err(err) => return Err(err),
            },
        };
        if session.mode() != Mode::Capture {
            self.pending().count(session_id, "extracted", None);
            return Ok(false);
        }
        let limit = self.limits.max_spans_per_session.unwrap_or(0);
        let hop = Queued::new(session, exchange);
        let (queued, due) = self.pending().queue(session_id, limit, hop);
        if !queued {
            self.pending().count(session_id, "extracted", None);
            return Err(Error::SpanLimit {
                session_id: session_id.to_owned(),
                limit,
                refused: 1,
            });
        }
        if due || self.failing.load(Ordering::Relaxed) {
            self.flush(false).map_err(|e| self.unavailable(e))?;
        }
        Ok(true)
    }
}

impl SessionStore for RedisStore {
    fn create(&self, new: NewSession) -> Result<Arc<Session>> {
        let inner = &*self.inner;
        let id = new_session_id()?;
        let ticket = inner.cache.ticket();
        let mut conn = inner.conn()?;
        if let Some(limit) = inner.limits.max_sessions {
            let open: usize = conn.zcard(INDEX_KEY).map_err(|e| inner.unavailable(e))?;
            if open >= limit {
                return Err(Error::TooManySessions { limit });
            }
        }
        let created = now_ms();
        let mut fields: Vec<(&str, String)> = vec![
            ("mode", new.mode.to_string()),
            ("created", created.to_string()),
            ("rev", "0".into()),
            ("injected", "0".into()),
            ("extracted", "0".into()),
            ("strict", "0".into()),
        ];
        if let Some(c) = &new.case_id {
            fields.push(("caseId", c.clone()));
        }
        if let Some(t) = &new.test_name {
            fields.push(("testName", t.clone()));
        }
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hset_multiple(meta_key(&id), &fields)
            .ignore()
            .zadd(INDEX_KEY, &id, created)
            .ignore();
        if inner.ttl_ms > 0 {
            pipe.pexpire(
                meta_key(&id),
                i64::try_from(inner.ttl_ms).unwrap_or(i64::MAX),
            )
            .ignore();
        }
        pipe.query::<()>(&mut *conn)
            .map_err(|e| inner.unavailable(e))?;
        let session = Arc::new(
            Session::restore(
                id.clone(),
                new,
                UNIX_EPOCH + Duration::from_millis(created),
                0,
            )
            .with_span_limit(inner.limits.max_spans_per_session),
        );
        let session = inner.cache.remember(&id, session, ticket);
        inner
            .metrics
            .record_session_created(&session.mode().to_string());
        Ok(session)
    }

    fn get(&self, id: &str) -> Option<Arc<Session>> {
        match self.inner.try_get(id) {
            Ok(found) => found,
            Err(err) => {
                tracing::warn!(sessionId = id, "{err}");
                None
            }
        }
    }

    fn try_get(&self, id: &str) -> Result<Option<Arc<Session>>> {
        self.inner.try_get(id)
    }

    fn remove(&self, id: &str) -> Option<Arc<Session>> {
        let session = self.get(id)?;
        let mut conn = self.inner.conn().ok()?;
        if let Err(err) = self.inner.finish(&mut conn, id) {
            tracing::warn!(sessionId = id, "{err}");
            return None;
        }
        Some(session)
    }

    fn list(&self) -> Vec<Arc<Session>> {
        self.try_list().unwrap_or_else(|err| {
            tracing::warn!("{err}");
            Vec::new()
        })
    }

    fn try_list(&self) -> Result<Vec<Arc<Session>>> {
        let inner = &*self.inner;
        let ids: Vec<String> = inner
            .conn()?
            .zrange(INDEX_KEY, 0, -1)
            .map_err(|e| inner.unavailable(e))?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            match inner.try_get(&id) {
                Ok(Some(session)) => out.push(session),
                Ok(None) => {
                    // Expired through its TTL (or closed meanwhile): drop it from the index
                    // unless a close is only in progress.
                    if let Ok(mut conn) = inner.conn() {
                        let exists: bool = conn.exists(meta_key(&id)).unwrap_or(true);
                        if !exists {
                            let _: redis::RedisResult<()> = conn.zrem(INDEX_KEY, &id);
                        }
                    }
                }
                Err(err) => tracing::warn!("{err}"),
            }
        }
        Ok(out)
    }

    fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    fn is_process_local(&self) -> bool {
        false
    }

    fn update(
        &self,
        id: &str,
        change: &mut dyn FnMut(&mut SessionState) -> Result<()>,
    ) -> Result<u64> {
        let inner = &*self.inner;
        // Optimistic: change a private copy made at the stored revision, store it only if
        // the revision is still that one, else start again from the newer state.
        for _ in 0..8 {
            let ticket = inner.cache.ticket();
            let mut conn = inner.conn()?;
            let Some(session) = inner.load(&mut conn, id)? else {
                return Err(Error::UnknownSession {
                    session_id: id.to_owned(),
                });
            };
            let before = session.revision();
            let old_case = session.read().case().map(Arc::clone);
            session.update(|state| change(state))?;
            let fields = {
                let state = session.read();
                let case_changed = match (&old_case, state.case()) {
                    (Some(old), Some(new)) => !Arc::ptr_eq(old, new),
                    (None, Some(_)) => true,
                    _ => false,
                };
                Inner::documents(&state, case_changed)
            };
            let mut invocation = inner.scripts.update.key(meta_key(id));
            invocation.arg(before).arg(&inner.channel).arg(id);
            for (name, value) in &fields {
                invocation.arg(*name).arg(value);
            }
            let revision: i64 = invocation
                .invoke(&mut *conn)
                .map_err(|e| inner.unavailable(e))?;
            match revision {
                -1 => {
                    return Err(Error::UnknownSession {
                        session_id: id.to_owned(),
                    });
                }
                -2 => continue,
                rev => {
                    let rev = u64::try_from(rev).unwrap_or(0);
                    session.set_revision(rev);
                    inner.cache.remember(id, Arc::new(session), ticket);
                    return Ok(rev);
                }
            }
        }
        Err(inner.unavailable(format!(
            "session `{id}` kept changing under concurrent updates; try again"
        )))
    }

    fn inject(&self, session_id: &str, request: &Request) -> Result<Decision> {
        let inner = &*self.inner;
        let session = match inner.try_get(session_id) {
            Ok(Some(session)) => session,
            Ok(None) => {
                return Err(Error::UnknownSession {
                    session_id: session_id.to_owned(),
                });
            }
            Err(err) => return inner.unreachable_decision(session_id, request, err),
        };
        let started = std::time::Instant::now();
        let decision = session.read().engine().decide(request);
        let counted = match &decision {
            Decision::Respond {
                injected_error: true,
                ..
            } => Some((InjectOutcome::Error, "injected", None)),
            Decision::Respond { .. } => Some((InjectOutcome::Hit, "injected", None)),
            Decision::StrictMiss(report) => Some((
                InjectOutcome::StrictMiss,
                "strict",
                Some(report.to_json(session_id).to_string()),
            )),
            Decision::Passthrough { .. } => None,
        };
        let outcome = counted.as_ref().map_or(InjectOutcome::Miss, |c| c.0);
        inner.metrics.record_inject(outcome, started.elapsed());
        if let Some((_, field, report)) = counted {
            inner.pending().count(session_id, field, report);
        }
        Ok(decision)
    }

    fn count_instead_of_recording(&self, session_id: &str) -> Result<bool> {
        let inner = &*self.inner;
        let session = match inner.cache.any(session_id) {
            Some(session) => session,
            None => inner.session(session_id)?,
        };
        if session.mode() == Mode::Capture {
            return Ok(false);
        }
        inner.metrics.record_extracted(1);
        inner.pending().count(session_id, "extracted", None);
        Ok(true)
    }

    fn record(&self, session_id: &str, exchange: Exchange) -> Result<bool> {
        self.inner.record(session_id, exchange)
    }

    fn close(&self, id: &str, capture_path: Option<&std::path::Path>) -> Result<Option<usize>> {
        self.inner.close(id, capture_path)
    }

    fn stats_json(&self, id: &str) -> Result<Value> {
        let inner = &*self.inner;
        let session = inner.session(id)?;
        inner.flush_now()?;
        let (mut stats, _) = inner.counters(id)?;
        stats.request_drift = session.stats().request_drift;
        Ok(session.stats_json_with(stats))
    }

    fn state_json(&self, id: &str) -> Result<Value> {
        let inner = &*self.inner;
        let session = inner.session(id)?;
        inner.flush_now()?;
        let (mut stats, lost) = inner.counters(id)?;
        stats.request_drift = session.stats().request_drift;
        let mut conn = inner.conn()?;
        let misses: Vec<String> = conn
            .lrange(misses_key(id), 0, -1)
            .map_err(|e| inner.unavailable(e))?;
        let misses = misses
            .iter()
            .filter_map(|m| serde_json::from_str(m).ok())
            .collect();
        let mut state = session.state_json_with(stats, misses);
        if lost > 0 {
            state["lostHops"] = json!(lost);
        }
        Ok(state)
    }

    fn idle_for(&self, session: &Session) -> Duration {
        let inner = &*self.inner;
        if inner.ttl_ms == 0 {
            return Duration::ZERO;
        }
        let left: i64 = inner
            .conn()
            .and_then(|mut c| {
                c.pttl(meta_key(session.id()))
                    .map_err(|e| inner.unavailable(e))
            })
            .unwrap_or(-1);
        match u64::try_from(left) {
            Ok(left) => Duration::from_millis(inner.ttl_ms.saturating_sub(left)),
            Err(_) => Duration::ZERO,
        }
    }

    fn lost_hops(&self, id: &str) -> Result<u64> {
        let inner = &*self.inner;
        inner.session(id)?;
        inner.flush_lost();
        Ok(inner.counters(id)?.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redacted_url("redis://:s3cret@cache:6379/2"),
            "redis://:***@cache:6379/2"
        );
        assert_eq!(
            redacted_url("rediss://user:pw@h:1/0"),
            "rediss://user:***@h:1/0"
        );
        assert_eq!(
            redacted_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
    }

    #[test]
    fn an_unreachable_store_is_named() {
        let err = RedisStore::connect("redis://:pw@127.0.0.1:1/0", SessionLimits::default(), None)
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("the session store at redis://:***@127.0.0.1:1/0 is unavailable"),
            "{text}"
        );
        assert_eq!((err.code(), err.status()), ("store_unavailable", 503));
    }
}
