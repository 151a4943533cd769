//! Sessions: the unit of isolation of the runtime. Each test (or curl user) creates one,
//! configures it (case, rules, policy, fixtures), drives traffic that the proxy reports via
//! inject/extract, then closes it (a capture session becomes a case file).
//!
//! [`SessionStore`] is the object-safe store the control API, the OTLP handlers and the
//! in-process proxy share; [`InMemoryStore`] is the default implementation, and
//! `RedisStore` (feature `redis-store`) shares sessions between runtime replicas. A [`Session`] keeps its
//! configuration behind one `RwLock` (never held across an await) and its counters in atomics.

mod id;
#[cfg(feature = "redis-store")]
mod redis;
mod state;
mod store;

pub use id::{SESSION_ID_PREFIX, new_session_id};
#[cfg(feature = "redis-store")]
pub use redis::{CHANGES_SEEN_WITHIN, CLOSE_DRAIN, REDIS_TIMEOUT, RedisStore, redacted_url};
pub use state::{
    CaseSummary, Cookie, Fixtures, MAX_STRICT_MISSES, NewSession, Session, SessionState,
    StatsSnapshot,
};
pub use store::{HopPlan, InMemoryStore, SessionLimits, SessionStore};
