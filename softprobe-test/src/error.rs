//! The harness's error type.

/// What went wrong setting up or driving a case test.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The embedded runtime or proxies could not start.
    #[error("softprobe could not start: {0}")]
    Start(String),
    /// A setting was changed after the embedded runtime had started.
    #[error("{0}")]
    TooLate(&'static str),
    /// A lock was poisoned by a panicking test.
    #[error("softprobe state is poisoned by an earlier panic")]
    Poisoned,
    /// The runtime refused or failed an operation.
    #[error("{0}")]
    Runtime(String),
    /// A rule, policy or case given to the session is invalid.
    #[error("{0}")]
    Invalid(String),
    /// A lookup in the loaded case found nothing or more than one hop.
    #[error("{0}")]
    Lookup(String),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
