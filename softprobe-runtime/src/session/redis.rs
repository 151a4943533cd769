//! The Redis session store: sessions shared by every runtime replica pointed at one Redis
//! (`--store redis://host:port/db`, `rediss://` for TLS, `redis://:password@host`).
//!
//! What lives in Redis, per session (keys share the `{id}` hash tag, so a cluster keeps them
//! on one node): `softprobe:{id}:meta`, a hash with the identity (mode, case id, test name,
//! creation time), the revision, the configuration documents (case, rules, policy,
//! fixtures as JSON), the counters (`injected`, `extracted`, `strict`, `lost`) and, while a
//! replica writes the capture, `closing`; `softprobe:{id}:hops`, the captured hops as a list
//! (one `RPUSH` per hop, so replicas never read-modify-write a session); and
//! `softprobe:{id}:misses`, the last strict-miss reports. `softprobe:sessions` indexes the
//! ids by creation time. Every change is one Lua script, atomic on the server.
//!
//! What each replica keeps: the [`Session`] rebuilt from the stored documents, keyed by
//! revision. A decided hop costs one round trip to learn the revision (which also restarts
//! the idle TTL) and is decided from the cached engine; a new revision reloads the documents
//! once. A recorded hop is redacted with the cached configuration and stored in one round
//! trip that checks the revision. The counters of decided hops are added to Redis by a
//! background thread every few milliseconds (and before this replica reads them), so the
//! stats another replica shows may trail by that much.
//! Replay bookkeeping that the engine keeps between hops (rules with `consume: once`,
//! repeated identical requests answered in recorded order) is per replica.
//!
//! The client is the `redis` crate's synchronous connection in an `r2d2` pool with connect,
//! read and write timeouts: the [`SessionStore`] trait is synchronous, and a round trip on
//! loopback costs less than handing the request to another thread would.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::{Commands as _, Script};
use serde_json::{Value, json};

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

/// Appends a captured hop redacted at revision ARGV[4]: -1 unknown or closing, -3 the
/// revision moved (nothing stored: redact again), -2 span limit reached, else the count.
const RECORD: &str = r"
local rev = redis.call('HGET', KEYS[1], 'rev')
if not rev or redis.call('HEXISTS', KEYS[1], 'closing') == 1 then return -1 end
if tonumber(rev) ~= tonumber(ARGV[4]) then return -3 end
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  for i = 1, #KEYS do redis.call('PEXPIRE', KEYS[i], ttl) end
end
redis.call('HINCRBY', KEYS[1], 'extracted', 1)
local limit = tonumber(ARGV[2])
if limit > 0 and redis.call('LLEN', KEYS[2]) >= limit then return -2 end
local n = redis.call('RPUSH', KEYS[2], ARGV[1])
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
return n
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

/// Stores a configuration change made at revision ARGV[1]: -1 unknown or closing, -2 the
/// revision moved meanwhile, else the new revision.
const UPDATE: &str = r"
local rev = redis.call('HGET', KEYS[1], 'rev')
if not rev or redis.call('HEXISTS', KEYS[1], 'closing') == 1 then return -1 end
if tonumber(rev) ~= tonumber(ARGV[1]) then return -2 end
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return redis.call('HINCRBY', KEYS[1], 'rev', 1)
";

/// Claims the close of a session: 1 for the one caller that gets it, 0 for the others.
const CLAIM: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
return redis.call('HSETNX', KEYS[1], 'closing', ARGV[1])
";

/// Counts not yet added in Redis: hops answered, counted and strict misses are counted
/// here on the hop's path and flushed by a background thread every [`FLUSH_EVERY`] (and
/// before this replica reads counters), so that a decided hop costs one round trip.
#[derive(Debug, Default)]
struct Pending {
    counts: HashMap<(String, &'static str), u64>,
    misses: Vec<(String, String)>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.counts.is_empty() && self.misses.is_empty()
    }
}

/// How often a replica adds its pending counts to Redis.
const FLUSH_EVERY: Duration = Duration::from_millis(5);

struct Scripts {
    touch: Script,
    record: Script,
    count: Script,
    update: Script,
    claim: Script,
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
    url: String,
    pool: r2d2::Pool<redis::Client>,
    scripts: Scripts,
    cache: RwLock<HashMap<String, Arc<Session>>>,
    lost: Mutex<HashMap<String, u64>>,
    pending: Arc<Mutex<Pending>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    metrics: Metrics,
    limits: SessionLimits,
    ttl_ms: u64,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.url)
            .field("limits", &self.limits)
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
            .build(client)
            .map_err(|e| unavailable(format!("cannot connect: {e}")))?;
        let store = RedisStore {
            url: shown,
            pool,
            scripts: Scripts {
                touch: Script::new(TOUCH),
                record: Script::new(RECORD),
                count: Script::new(COUNT),
                update: Script::new(UPDATE),
                claim: Script::new(CLAIM),
            },
            cache: RwLock::new(HashMap::new()),
            lost: Mutex::new(HashMap::new()),
            pending: Arc::new(Mutex::new(Pending::default())),
            stop: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            metrics: Metrics::default(),
            limits,
            ttl_ms: idle.map_or(0, |d| {
                u64::try_from(d.as_millis().saturating_mul(2)).unwrap_or(u64::MAX)
            }),
        };
        let mut conn = store.conn()?;
        let pong: String = redis::cmd("PING")
            .query(&mut *conn)
            .map_err(|e| store.unavailable(e))?;
        if pong != "PONG" {
            return Err(store.unavailable(format!("PING answered {pong:?}")));
        }
        drop(conn);
        let (pool, pending, stop) = (
            store.pool.clone(),
            Arc::clone(&store.pending),
            Arc::clone(&store.stop),
        );
        let ttl_ms = store.ttl_ms;
        std::thread::Builder::new()
            .name("softprobe-redis-counts".into())
            .spawn(move || {
                let script = Script::new(COUNT);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(FLUSH_EVERY);
                    if let Err(err) = flush_pending(&pool, &script, &pending, ttl_ms) {
                        tracing::debug!("counts kept for later: {err}");
                    }
                }
            })
            .map_err(|e| store.unavailable(format!("cannot start the counter thread: {e}")))?;
        Ok(store)
    }

    /// Adds this replica's pending counts to Redis now.
    fn flush_counts(&self) -> Result<()> {
        flush_pending(&self.pool, &self.scripts.count, &self.pending, self.ttl_ms)
            .map_err(|e| self.unavailable(e))
    }

    fn add_pending(&self, id: &str, field: &'static str, miss: Option<Value>) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        *pending.counts.entry((id.to_owned(), field)).or_default() += 1;
        if let Some(miss) = miss {
            pending.misses.push((id.to_owned(), miss.to_string()));
        }
    }

    /// The store URL, password hidden.
    pub fn url(&self) -> &str {
        &self.url
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

    fn cached(&self, id: &str) -> Option<Arc<Session>> {
        self.cache
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    fn forget(&self, id: &str) {
        self.cache
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
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

    fn keys(id: &str) -> [String; 3] {
        [meta_key(id), hops_key(id), misses_key(id)]
    }

    /// Counts `by` into a counter field of the session (and keeps a strict-miss report).
    fn count(&self, id: &str, field: &str, by: u64, miss: Option<&Value>) -> Result<()> {
        let mut conn = self.conn()?;
        let report = miss.map(Value::to_string).unwrap_or_default();
        let _: i64 = self
            .scripts
            .count
            .key(meta_key(id))
            .key(misses_key(id))
            .arg(field)
            .arg(by)
            .arg(report)
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
            if let Err(err) = self.count(&id, "lost", n, None) {
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

    fn note_lost(&self, id: &str) {
        let capture = self.cached(id).is_none_or(|s| s.mode() == Mode::Capture);
        if capture {
            *self
                .lost
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(id.to_owned())
                .or_default() += 1;
        }
    }

    /// What a hop gets when the store cannot be reached: a session this replica knows to be
    /// strict fails closed (503 `store_unavailable`); any other goes upstream, as it would
    /// with an unreachable runtime.
    fn unreachable_decision(&self, id: &str, request: &Request, err: Error) -> Result<Decision> {
        let strict = self.cached(id).is_some_and(|s| {
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

    fn finish(&self, conn: &mut redis::Connection, id: &str) -> Result<()> {
        let [meta, hops, misses] = Self::keys(id);
        redis::pipe()
            .atomic()
            .del(&[meta, hops, misses])
            .ignore()
            .zrem(INDEX_KEY, id)
            .ignore()
            .query::<()>(conn)
            .map_err(|e| self.unavailable(e))?;
        self.forget(id);
        Ok(())
    }
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = self.flush_counts();
    }
}

/// Takes the pending counts and adds them in one pipeline; on failure they are put back.
fn flush_pending(
    pool: &r2d2::Pool<redis::Client>,
    script: &Script,
    pending: &Mutex<Pending>,
    ttl_ms: u64,
) -> std::result::Result<(), String> {
    let taken = {
        let mut pending = pending.lock().unwrap_or_else(|p| p.into_inner());
        if pending.is_empty() {
            return Ok(());
        }
        std::mem::take(&mut *pending)
    };
    let applied = pool.get().map_err(|e| e.to_string()).and_then(|mut conn| {
        let mut pipe = redis::pipe();
        for ((id, field), n) in &taken.counts {
            pipe.invoke_script(
                script
                    .key(meta_key(id))
                    .key(misses_key(id))
                    .arg(*field)
                    .arg(*n)
                    .arg("")
                    .arg(MAX_STRICT_MISSES)
                    .arg(ttl_ms),
            )
            .ignore();
        }
        for (id, report) in &taken.misses {
            pipe.invoke_script(
                script
                    .key(meta_key(id))
                    .key(misses_key(id))
                    .arg("strict")
                    .arg(0)
                    .arg(report)
                    .arg(MAX_STRICT_MISSES)
                    .arg(ttl_ms),
            )
            .ignore();
        }
        // A pipeline of EVALSHA fails whole when the server lost its script cache (a
        // restart); load it and try once more.
        match pipe.query::<()>(&mut *conn) {
            Err(err) if err.kind() == redis::ErrorKind::NoScriptError => {
                script
                    .prepare_invoke()
                    .load(&mut *conn)
                    .map_err(|e| e.to_string())?;
                pipe.query::<()>(&mut *conn).map_err(|e| e.to_string())
            }
            other => other.map_err(|e| e.to_string()),
        }
    });
    if applied.is_err() {
        let mut pending = pending.lock().unwrap_or_else(|p| p.into_inner());
        for (key, n) in taken.counts {
            *pending.counts.entry(key).or_default() += n;
        }
        pending.misses.extend(taken.misses);
    }
    applied
}

impl SessionStore for RedisStore {
    fn create(&self, new: NewSession) -> Result<Arc<Session>> {
        let id = new_session_id()?;
        let mut conn = self.conn()?;
        if let Some(limit) = self.limits.max_sessions {
            let open: usize = conn.zcard(INDEX_KEY).map_err(|e| self.unavailable(e))?;
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
        if self.ttl_ms > 0 {
            pipe.pexpire(
                meta_key(&id),
                i64::try_from(self.ttl_ms).unwrap_or(i64::MAX),
            )
            .ignore();
        }
        pipe.query::<()>(&mut *conn)
            .map_err(|e| self.unavailable(e))?;
        let session = Arc::new(
            Session::restore(
                id.clone(),
                new,
                UNIX_EPOCH + Duration::from_millis(created),
                0,
            )
            .with_span_limit(self.limits.max_spans_per_session),
        );
        self.cache
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, Arc::clone(&session));
        self.metrics
            .record_session_created(&session.mode().to_string());
        Ok(session)
    }

    fn get(&self, id: &str) -> Option<Arc<Session>> {
        match self.try_get(id) {
            Ok(found) => found,
            Err(err) => {
                tracing::warn!(sessionId = id, "{err}");
                None
            }
        }
    }

    fn try_get(&self, id: &str) -> Result<Option<Arc<Session>>> {
        let mut conn = self.conn()?;
        let [meta, hops, misses] = Self::keys(id);
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
        if let Some(session) = self.cached(id)
            && session.revision() == revision
        {
            return Ok(Some(session));
        }
        let Some(session) = self.load(&mut conn, id)? else {
            self.forget(id);
            return Ok(None);
        };
        let session = Arc::new(session);
        self.cache
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_owned(), Arc::clone(&session));
        drop(conn);
        self.flush_lost();
        Ok(Some(session))
    }

    fn remove(&self, id: &str) -> Option<Arc<Session>> {
        let session = self.get(id)?;
        let mut conn = self.conn().ok()?;
        if let Err(err) = self.finish(&mut conn, id) {
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
        let ids: Vec<String> = self
            .conn()?
            .zrange(INDEX_KEY, 0, -1)
            .map_err(|e| self.unavailable(e))?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            match self.try_get(&id) {
                Ok(Some(session)) => out.push(session),
                Ok(None) => {
                    // Expired through its TTL (or closed meanwhile): drop it from the index
                    // unless a close is only in progress.
                    if let Ok(mut conn) = self.conn() {
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
        &self.metrics
    }

    fn is_process_local(&self) -> bool {
        false
    }

    fn update(
        &self,
        id: &str,
        change: &mut dyn FnMut(&mut SessionState) -> Result<()>,
    ) -> Result<u64> {
        // Optimistic: change a private copy made at the stored revision, store it only if
        // the revision is still that one, else start again from the newer state.
        for _ in 0..8 {
            let mut conn = self.conn()?;
            let Some(session) = self.load(&mut conn, id)? else {
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
                Self::documents(&state, case_changed)
            };
            let mut invocation = self.scripts.update.key(meta_key(id));
            invocation.arg(before);
            for (name, value) in &fields {
                invocation.arg(*name).arg(value);
            }
            let revision: i64 = invocation
                .invoke(&mut *conn)
                .map_err(|e| self.unavailable(e))?;
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
                    self.cache
                        .write()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(id.to_owned(), Arc::new(session));
                    return Ok(rev);
                }
            }
        }
        Err(self.unavailable(format!(
            "session `{id}` kept changing under concurrent updates; try again"
        )))
    }

    fn inject(&self, session_id: &str, request: &Request) -> Result<Decision> {
        let session = match self.try_get(session_id) {
            Ok(Some(session)) => session,
            Ok(None) => {
                return Err(Error::UnknownSession {
                    session_id: session_id.to_owned(),
                });
            }
            Err(err) => return self.unreachable_decision(session_id, request, err),
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
                Some(report.to_json(session_id)),
            )),
            Decision::Passthrough { .. } => None,
        };
        let outcome = counted.as_ref().map_or(InjectOutcome::Miss, |c| c.0);
        self.metrics.record_inject(outcome, started.elapsed());
        if let Some((_, field, report)) = counted {
            self.add_pending(session_id, field, report);
        }
        Ok(decision)
    }

    fn count_instead_of_recording(&self, session_id: &str) -> Result<bool> {
        let session = match self.cached(session_id) {
            Some(session) => session,
            None => self.session(session_id)?,
        };
        if session.mode() == Mode::Capture {
            return Ok(false);
        }
        self.metrics.record_extracted(1);
        self.add_pending(session_id, "extracted", None);
        Ok(true)
    }

    fn record(&self, session_id: &str, exchange: Exchange) -> Result<bool> {
        self.metrics.record_extracted(1);
        let mut session = match self.cached(session_id) {
            Some(session) => session,
            None => match self.session(session_id) {
                Ok(session) => session,
                Err(err @ Error::StoreUnavailable { .. }) => {
                    self.note_lost(session_id);
                    return Err(err);
                }
                Err(err) => return Err(err),
            },
        };
        if session.mode() != Mode::Capture {
            self.add_pending(session_id, "extracted", None);
            return Ok(false);
        }
        let limit = self.limits.max_spans_per_session.unwrap_or(0);
        // Redacted with the cached configuration; stored only if that is still the stored
        // revision, else redacted again with the new one.
        for _ in 0..4 {
            let hop = session.prepare_capture(exchange.clone());
            let stored = json!({"service": hop.service, "span": hop.to_span()}).to_string();
            let result: redis::RedisResult<i64> = match self.conn() {
                Ok(mut conn) => {
                    let [meta, hops, misses] = Self::keys(session_id);
                    self.scripts
                        .record
                        .key(meta)
                        .key(hops)
                        .key(misses)
                        .arg(stored)
                        .arg(limit)
                        .arg(self.ttl_ms)
                        .arg(session.revision())
                        .invoke(&mut *conn)
                }
                Err(err) => {
                    self.note_lost(session_id);
                    return Err(err);
                }
            };
            match result {
                Ok(-1) => {
                    self.forget(session_id);
                    return Err(Error::UnknownSession {
                        session_id: session_id.to_owned(),
                    });
                }
                Ok(-2) => {
                    return Err(Error::SpanLimit {
                        session_id: session_id.to_owned(),
                        limit,
                        refused: 1,
                    });
                }
                Ok(-3) => session = self.session(session_id)?,
                Ok(_) => return Ok(true),
                Err(err) => {
                    self.note_lost(session_id);
                    return Err(self.unavailable(err));
                }
            }
        }
        Err(self.unavailable(format!(
            "session `{session_id}` kept changing while a hop was recorded"
        )))
    }

    fn close(&self, id: &str, capture_path: Option<&std::path::Path>) -> Result<Option<usize>> {
        let session = self.session(id)?;
        self.flush_lost();
        self.flush_counts()?;
        let mut conn = self.conn()?;
        let token = format!("{}-{}", std::process::id(), now_ms());
        let claimed: i64 = self
            .scripts
            .claim
            .key(meta_key(id))
            .arg(&token)
            .invoke(&mut *conn)
            .map_err(|e| self.unavailable(e))?;
        if claimed != 1 {
            // Another replica closes it (or just did): as for a closed session.
            self.forget(id);
            return Err(Error::UnknownSession {
                session_id: id.to_owned(),
            });
        }
        let Some(path) = capture_path.filter(|_| session.mode() == Mode::Capture) else {
            self.finish(&mut conn, id)?;
            return Ok(None);
        };
        let release = |conn: &mut redis::Connection| {
            let _: redis::RedisResult<()> = conn.hdel(meta_key(id), "closing");
        };
        let stored: Vec<String> = match conn.lrange(hops_key(id), 0, -1) {
            Ok(stored) => stored,
            Err(err) => {
                release(&mut conn);
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
                    release(&mut conn);
                    return Err(self
                        .unavailable(format!("hop {i} of session `{id}` cannot be read: {err}")));
                }
            }
        }
        if let Err(err) = session.write_capture_of(path, &hops) {
            release(&mut conn);
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

    fn stats_json(&self, id: &str) -> Result<Value> {
        let session = self.session(id)?;
        self.flush_counts()?;
        let (mut stats, _) = self.counters(id)?;
        stats.request_drift = session.stats().request_drift;
        Ok(session.stats_json_with(stats))
    }

    fn state_json(&self, id: &str) -> Result<Value> {
        let session = self.session(id)?;
        self.flush_counts()?;
        let (mut stats, lost) = self.counters(id)?;
        stats.request_drift = session.stats().request_drift;
        let mut conn = self.conn()?;
        let misses: Vec<String> = conn
            .lrange(misses_key(id), 0, -1)
            .map_err(|e| self.unavailable(e))?;
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
        if self.ttl_ms == 0 {
            return Duration::ZERO;
        }
        let left: i64 = self
            .conn()
            .and_then(|mut c| {
                c.pttl(meta_key(session.id()))
                    .map_err(|e| self.unavailable(e))
            })
            .unwrap_or(-1);
        match u64::try_from(left) {
            Ok(left) => Duration::from_millis(self.ttl_ms.saturating_sub(left)),
            Err(_) => Duration::ZERO,
        }
    }

    fn lost_hops(&self, id: &str) -> Result<u64> {
        self.session(id)?;
        self.flush_lost();
        Ok(self.counters(id)?.1)
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
