//! The crate's error type for the server side: starting the server, the session store,
//! OTLP payloads and capture files. The control API maps each variant to the JSON error body
//! of `spec/protocol/` (see [`Error::code`] and [`Error::status`]).

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::case::CaseError;

/// Everything that can go wrong in the runtime server and its session store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address that was asked for.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A socket or file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// No session has this id (never created, or already closed).
    #[error("unknown session `{session_id}`")]
    UnknownSession {
        /// The id that was asked for.
        session_id: String,
    },
    /// A request body or payload is malformed or does not have the expected shape; the
    /// message names the field or JSON path.
    #[error("{message}")]
    InvalidRequest {
        /// What is wrong and where.
        message: String,
    },
    /// A case file could not be read, parsed or written.
    #[error(transparent)]
    Case(Box<CaseError>),
    /// A capture session could not be written to its case file; the session and its spans
    /// are kept so the write can be retried.
    #[error("cannot write the capture of session `{session_id}` to {}: {source}", path.display())]
    CaptureWrite {
        /// The session being closed.
        session_id: String,
        /// The target file.
        path: PathBuf,
        /// Why the write failed.
        #[source]
        source: Box<CaseError>,
    },
    /// Creating a session would exceed the configured number of open sessions.
    #[error(
        "cannot create a session: {limit} sessions are open, the most this runtime allows \
         (--max-sessions / SOFTPROBE_MAX_SESSIONS); close the sessions you no longer need"
    )]
    TooManySessions {
        /// The configured maximum.
        limit: usize,
    },
    /// Recording spans would exceed the configured number of captured spans per session;
    /// the spans already captured are kept.
    #[error(
        "session `{session_id}` already holds {limit} captured spans, the most this runtime \
         allows (--max-spans-per-session / SOFTPROBE_MAX_SPANS_PER_SESSION): {refused} span(s) \
         were not recorded; the spans captured before are kept and close still writes them"
    )]
    SpanLimit {
        /// The session.
        session_id: String,
        /// The configured maximum.
        limit: usize,
        /// How many spans of the request were refused.
        refused: usize,
    },
    /// The shared session store (Redis) cannot be reached or answered an error; the
    /// request can be retried once it is back.
    #[error("the session store at {url} is unavailable: {message}")]
    StoreUnavailable {
        /// The store URL, password hidden.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// A listener was asked to bind a non-loopback address without the explicit opt-in.
    #[error(
        "refusing to listen on {addr}: it is not a loopback address, so anyone who can reach \
         it could drive sessions; pass --allow-remote (SOFTPROBE_ALLOW_REMOTE=true) to do it on \
         purpose, and set SOFTPROBE_API_TOKEN"
    )]
    RemoteBindRefused {
        /// The address that was asked for.
        addr: SocketAddr,
    },
    /// A capture path (`?out=`, or the configured template once its placeholders are
    /// replaced) leaves the capture root; nothing was written.
    #[error(
        "capture path {} is outside the capture root {}: it escapes it ({reason}); write \
         under the root, choose another root with --capture-root (SOFTPROBE_CAPTURE_ROOT), or \
         let captures go anywhere the runtime's user can write with \
         --allow-capture-outside-root",
        path.display(),
        root.display()
    )]
    CaptureOutsideRoot {
        /// The path as asked for, placeholders replaced.
        path: PathBuf,
        /// The capture root.
        root: PathBuf,
        /// How it leaves the root (`..`, an absolute path, a symbolic link).
        reason: String,
    },
    /// A non-loopback listener was asked for with no token to protect it.
    #[error(
        "refusing to listen on {addr} without a token: anyone who can reach it could drive \
         sessions and write files; set SOFTPROBE_API_TOKEN (or --api-token), or pass \
         --insecure-no-token (SOFTPROBE_INSECURE_NO_TOKEN=true) to run unprotected on purpose"
    )]
    RemoteWithoutToken {
        /// The address that was asked for.
        addr: SocketAddr,
    },
    /// The TLS certificate or key of the control API cannot be used.
    #[error("TLS for the control API: {message}")]
    Tls {
        /// What is wrong, naming the file.
        message: String,
    },
}

impl From<CaseError> for Error {
    fn from(err: CaseError) -> Self {
        Error::Case(Box::new(err))
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Shorthand for [`Error::InvalidRequest`].
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::InvalidRequest {
            message: message.into(),
        }
    }

    /// The stable error code of the control API's JSON error body.
    pub fn code(&self) -> &'static str {
        match self {
            Error::UnknownSession { .. } => "unknown_session",
            Error::InvalidRequest { .. } | Error::Case(_) => "invalid_request",
            Error::Bind { .. } | Error::Io { .. } | Error::CaptureWrite { .. } => "internal_error",
            Error::TooManySessions { .. } => "too_many_sessions",
            Error::SpanLimit { .. } => "span_limit_exceeded",
            Error::RemoteBindRefused { .. } => "remote_bind_refused",
            Error::RemoteWithoutToken { .. } => "remote_without_token",
            Error::Tls { .. } => "tls_config",
            Error::CaptureOutsideRoot { .. } => "capture_path_outside_root",
            Error::StoreUnavailable { .. } => "store_unavailable",
        }
    }

    /// The HTTP status the control API answers for this error.
    pub fn status(&self) -> u16 {
        match self {
            Error::UnknownSession { .. } => 404,
            Error::InvalidRequest { .. } | Error::Case(_) => 400,
            Error::Bind { .. } | Error::Io { .. } | Error::CaptureWrite { .. } => 500,
            Error::TooManySessions { .. } => 429,
            Error::SpanLimit { .. } => 413,
            Error::RemoteBindRefused { .. }
            | Error::RemoteWithoutToken { .. }
            | Error::Tls { .. } => 500,
            Error::CaptureOutsideRoot { .. } => 400,
            Error::StoreUnavailable { .. } => 503,
        }
    }
}

/// The innermost cause of `err` (the end of its `source` chain), which is what names the
/// real trouble in a client error ("connection refused" rather than "error sending request").
pub fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = err;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_statuses_follow_the_contract() {
        let unknown = Error::UnknownSession {
            session_id: "sess_x".into(),
        };
        assert_eq!((unknown.code(), unknown.status()), ("unknown_session", 404));
        assert_eq!(unknown.to_string(), "unknown session `sess_x`");
        let bad = Error::invalid("$.mode: unknown variant `replya`");
        assert_eq!((bad.code(), bad.status()), ("invalid_request", 400));
        let io = Error::Io {
            context: "reading".into(),
            source: std::io::Error::other("boom"),
        };
        assert_eq!((io.code(), io.status()), ("internal_error", 500));
    }
}
