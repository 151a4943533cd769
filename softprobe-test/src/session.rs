//! [`Session`]: what a case test receives, one per test, isolated from every other test.

use std::path::{Path, PathBuf};

use crate::Mode;

/// One test's view of softprobe: its mode and its case file.
///
/// A test asks for it by taking `sp: softprobe::Session` as its only argument.
#[derive(Debug)]
pub struct Session {
    pub(crate) mode: Mode,
    pub(crate) case_path: PathBuf,
    pub(crate) test_name: &'static str,
}

impl Session {
    /// The mode this test runs in.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The absolute path of the case file.
    pub fn case_path(&self) -> &Path {
        &self.case_path
    }

    /// The test's full name, `module::path::function`.
    pub fn test_name(&self) -> &str {
        self.test_name
    }
}
