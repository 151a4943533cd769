//! The HTTP surface of the runtime: the JSON control API (`/health`, `/v1/meta`,
//! `/v1/sessions/...`, `/metrics`) and, mounted on the same router, the proxy OTLP API
//! (`/v1/inject`, `/v1/traces`, in [`crate::otlp`]) and the live sessions page (`/ui`, the
//! page of [`crate::view`]).
//!
//! [`app`] builds the router from an [`AppState`]; tests drive it with `oneshot`, the
//! [`crate::server`] serves it on a socket. The router sits above the OTLP handlers, which
//! use this module's state and errors.

mod auth;
mod body;
mod captures;
mod error;
pub mod guard;
mod handlers;
pub mod openapi;
mod router;
mod ui;

use std::sync::{Arc, RwLock};

pub(crate) use body::RawBody;
pub use error::ApiError;
pub use guard::Access;
/// What `softprobe doctor` expects of a runtime.
#[cfg(feature = "cli")]
pub(crate) use handlers::SCHEMA_VERSION;
pub(crate) use handlers::SPEC_VERSION;
pub use router::app;

use crate::capture::{CaptureRoot, WrittenCaptures};
use crate::session::SessionStore;

/// Default request body limit: 16 MiB, well above the case-file size guidance.
pub const DEFAULT_BODY_LIMIT: usize = 16 * 1024 * 1024;

/// What every handler shares. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn SessionStore>,
    token: Option<String>,
    capture_path: Option<String>,
    body_limit: usize,
    proxy_ca_pem: RwLock<Option<String>>,
    access: Access,
    capture_root: CaptureRoot,
    written: WrittenCaptures,
    captures: captures::Captures,
}

impl AppState {
    /// State over `store` with no token, the default capture path and body limit.
    pub fn new(store: Arc<dyn SessionStore>) -> Self {
        Self::with_config(store, None, None, DEFAULT_BODY_LIMIT)
    }

    /// State with every setting given, loopback access only and the capture root of the
    /// working directory and `capture_path` ([`CaptureRoot::for_config`]). An empty token
    /// counts as none.
    pub fn with_config(
        store: Arc<dyn SessionStore>,
        token: Option<String>,
        capture_path: Option<String>,
        body_limit: usize,
    ) -> Self {
        let root = CaptureRoot::for_config(None, capture_path.as_deref())
            .unwrap_or_else(|_| CaptureRoot::Under(std::path::PathBuf::from("/")));
        Self::with_security(
            store,
            token,
            capture_path,
            body_limit,
            Access::default(),
            root,
        )
    }

    /// [`Self::with_config`] with who may call ([`Access`]) and where captures may go
    /// ([`CaptureRoot`]) given too.
    pub fn with_security(
        store: Arc<dyn SessionStore>,
        token: Option<String>,
        capture_path: Option<String>,
        body_limit: usize,
        access: Access,
        capture_root: CaptureRoot,
    ) -> Self {
        AppState {
            inner: Arc::new(Inner {
                store,
                token: token.filter(|t| !t.is_empty()),
                capture_path: capture_path.filter(|p| !p.is_empty()),
                body_limit,
                proxy_ca_pem: RwLock::new(None),
                access,
                capture_root,
                written: WrittenCaptures::default(),
                captures: captures::Captures::default(),
            }),
        }
    }

    /// Which hosts and browser origins may call.
    pub fn access(&self) -> &Access {
        &self.inner.access
    }

    /// Where captures may be written.
    pub fn capture_root(&self) -> &CaptureRoot {
        &self.inner.capture_root
    }

    /// Where the capture of `session` goes ([`crate::capture::target`]): `out` (a close
    /// call's `?out=`) or the configured template, confined to the capture root.
    pub fn capture_target(
        &self,
        out: Option<&str>,
        session: &crate::session::Session,
    ) -> crate::Result<crate::capture::CaptureTarget> {
        crate::capture::target(
            out,
            self.capture_path(),
            &self.inner.capture_root,
            &self.inner.written,
            session.id(),
            &session.mode().to_string(),
            std::time::SystemTime::now(),
        )
    }

    /// The session store.
    pub fn store(&self) -> &Arc<dyn SessionStore> {
        &self.inner.store
    }

    /// The bearer token `/v1/*` routes require, if any.
    pub fn token(&self) -> Option<&str> {
        self.inner.token.as_deref()
    }

    /// The capture path template (`SOFTPROBE_CAPTURE_CASE_PATH`), if configured.
    pub fn capture_path(&self) -> Option<&str> {
        self.inner.capture_path.as_deref()
    }

    /// Where recently closed capture sessions wrote their case files.
    pub(crate) fn captures(&self) -> &captures::Captures {
        &self.inner.captures
    }

    /// The request body limit in bytes.
    pub fn body_limit(&self) -> usize {
        self.inner.body_limit
    }

    /// Publishes the in-process proxy's CA certificate on `GET /v1/proxy/ca.pem`.
    pub fn set_proxy_ca_pem(&self, pem: impl Into<String>) {
        *self
            .inner
            .proxy_ca_pem
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(pem.into());
    }

    /// The in-process proxy's CA certificate, if one was published.
    pub fn proxy_ca_pem(&self) -> Option<String> {
        self.inner
            .proxy_ca_pem
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}
