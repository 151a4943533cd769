//! Suites: hundreds of captured cases run as one regression sweep (`softprobe suite run`, or
//! one Rust test per case with `#[softprobe::cases("x.suite.yaml")]`).
//!
//! [`model`] reads `*.suite.yaml` files, [`steps`] turns one planned case into a request, mocks
//! and checks, [`driver`] drives one case through them (for the CLI and the harness alike), [`mod@assert`] compares what came back, [`hooks`] lets any executable (or, with
//! [`node`], a JavaScript/TypeScript function) rewrite requests and mocks or add checks, and [`report`] writes JUnit, HTML and JSON. [`diff`]
//! compares the hops of two sets of cases. Only the CLI's runner (`runner`, with the `cli`
//! feature) needs an HTTP client; the rest is what the Rust harness uses.

pub mod assert;
pub mod diff;
pub mod driver;
pub mod hooks;
pub mod model;
pub mod node;
pub mod report;
#[cfg(feature = "cli")]
pub mod runner;
pub mod steps;

use std::path::{Path, PathBuf};

pub use model::{PlannedCase, Suite, SuiteFile, SuiteWarning, load, load_with, read_env_file};
pub use report::{CaseResult, CaseStatus, Failure, SuiteReport};
#[cfg(feature = "cli")]
pub use runner::{CaseCallback, RunOptions, run};

/// Why a suite could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SuiteError {
    /// The file could not be read.
    #[error("{}: {message}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The file is not a valid suite.
    #[error("{}:{line}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong, with the JSON path when known.
        message: String,
    },
    /// The JavaScript/TypeScript hook modules could not be loaded.
    #[error("hooks: {0}")]
    Hooks(String),
    /// The runtime could not be reached.
    #[error("cannot reach the runtime at {url}: {message}")]
    Runtime {
        /// Its control API URL.
        url: String,
        /// What went wrong.
        message: String,
    },
}

impl SuiteError {
    pub(crate) fn at(path: &Path, line: usize, message: String) -> Self {
        SuiteError::Invalid {
            path: path.to_owned(),
            line,
            message,
        }
    }

    /// The line the error points at, when it points at one.
    pub fn line(&self) -> Option<usize> {
        match self {
            SuiteError::Invalid { line, .. } => Some(*line),
            _ => None,
        }
    }
}
