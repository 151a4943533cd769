//! The settings the control server, the proxies and the session store have in common, and
//! their setters, written once: [`super::ServerBuilder`] and [`crate::RuntimeBuilder`] both
//! hold a [`SharedSettings`] and expand [`shared_setters!`] into their `impl`, so each
//! setting has one field, one setter and one doc whichever builder it is set on.

use std::time::Duration;

use crate::proxy::DEFAULT_HEADER_READ_TIMEOUT;
use crate::session::SessionLimits;

/// Who may call in and how long sessions and connections may last.
#[derive(Debug, Clone)]
pub(crate) struct SharedSettings {
    /// The bearer token; never `Some("")`.
    pub(crate) token: Option<String>,
    pub(crate) allow_remote: bool,
    pub(crate) insecure_no_token: bool,
    pub(crate) header_read_timeout: Duration,
    pub(crate) limits: SessionLimits,
    /// Never `Some(Duration::ZERO)`.
    pub(crate) idle_timeout: Option<Duration>,
}

impl Default for SharedSettings {
    fn default() -> Self {
        SharedSettings {
            token: None,
            allow_remote: false,
            insecure_no_token: false,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            limits: SessionLimits::default(),
            idle_timeout: None,
        }
    }
}

/// The setters of [`SharedSettings`], for a builder whose field `$field` holds them.
macro_rules! shared_setters {
    ($field:ident) => {
        /// The bearer token every `/v1/*` route requires; `None` or empty disables auth.
        /// A [`Runtime`](crate::Runtime) also takes it as the egress proxy's credentials
        /// password and sends it to a [remote runtime](crate::RuntimeBuilder::remote_runtime).
        pub fn token(mut self, token: Option<String>) -> Self {
            self.$field.token = token.filter(|t| !t.is_empty());
            self
        }

        /// Allows a non-loopback listen address (refused otherwise, with
        /// [`Error::RemoteBindRefused`](crate::Error::RemoteBindRefused)); a warning is
        /// logged either way. A [`Runtime`](crate::Runtime) allows it for its proxies too.
        pub fn allow_remote(mut self, allow: bool) -> Self {
            self.$field.allow_remote = allow;
            self
        }

        /// With `allow_remote`, also allows running without a token: anyone who can reach
        /// the address can then drive sessions. Off by default.
        pub fn insecure_no_token(mut self, yes: bool) -> Self {
            self.$field.insecure_no_token = yes;
            self
        }

        /// How long a client gets to send a whole request head before its connection is
        /// closed (default [`DEFAULT_HEADER_READ_TIMEOUT`](crate::proxy::DEFAULT_HEADER_READ_TIMEOUT),
        /// 10 s), so slow clients cannot pin connections. A [`Runtime`](crate::Runtime)
        /// applies it to every listener.
        pub fn header_read_timeout(mut self, timeout: ::std::time::Duration) -> Self {
            self.$field.header_read_timeout = timeout;
            self
        }

        /// Most open sessions and most captured spans per session (default
        /// [`SessionLimits::default`](crate::session::SessionLimits::default): 1024
        /// sessions, 100 000 spans), for the in-memory store and a Redis store alike. A
        /// store given to [`ServerBuilder::store`](crate::server::ServerBuilder::store)
        /// enforces its own limits instead.
        pub fn limits(mut self, limits: crate::session::SessionLimits) -> Self {
            self.$field.limits = limits;
            self
        }

        /// Closes sessions left untouched for this long (`None`, the default, or zero:
        /// never). A capture session is written to its case path first (the configured
        /// template, else the default path); if that write fails it stays open and is tried
        /// again after another idle period.
        pub fn idle_timeout(mut self, idle: Option<::std::time::Duration>) -> Self {
            self.$field.idle_timeout = idle.filter(|d| !d.is_zero());
            self
        }
    };
}
pub(crate) use shared_setters;
