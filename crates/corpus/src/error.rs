//! Errors of the corpus build, and the problems it reports and skips.

use std::fmt;
use std::path::PathBuf;

/// A failure that stops the build.
#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    /// A source directory or file that must exist cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The sources directory holds none of the expected sources.
    #[error("no known source under {0} (see docs/DATA.md for the layout)")]
    NoSources(PathBuf),
    /// A label names a threat type the taxonomy does not have (a bug in a label rule).
    #[error("threat type {0:?} is not in the taxonomy")]
    UnknownType(String),
}

/// One input that could not be used: reported with its file and line, counted, skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file, relative to the sources directory.
    pub path: String,
    /// 1-based line (0: the whole file).
    pub line: usize,
    /// Why it was skipped.
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.path, self.reason)
        } else {
            write!(f, "{}:{}: {}", self.path, self.line, self.reason)
        }
    }
}
