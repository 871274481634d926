//! Errors that stop the intake from starting. Problems inside the input never become
//! errors: they are counted in [`crate::Stats`] and warned with file and line.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Why [`crate::Intake::start`] failed.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// A path that is neither a file, a directory nor a glob with matches.
    #[error("{}: no such file or directory (nor glob match)", path.display())]
    NotFound {
        /// The path as given.
        path: PathBuf,
    },
    /// A symlink that leads back to itself (directly or through other links).
    #[error("{}: symlink loop (too many levels of symbolic links)", path.display())]
    SymlinkLoop {
        /// The path as given.
        path: PathBuf,
    },
    /// A symlink whose target does not exist.
    #[error("{}: dangling symlink (its target does not exist)", path.display())]
    DanglingSymlink {
        /// The path as given.
        path: PathBuf,
    },
    /// An unparsable glob pattern.
    #[error("invalid glob pattern {pattern:?}: {source}")]
    Glob {
        /// The pattern as given.
        pattern: String,
        /// What glob said.
        #[source]
        source: glob::PatternError,
    },
    /// An I/O error tied to a path.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A syslog listener could not bind.
    #[error("cannot listen for syslog on {proto} {addr}: {source}")]
    Bind {
        /// `udp` or `tcp`.
        proto: &'static str,
        /// The address asked for.
        addr: SocketAddr,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A config value out of range.
    #[error("invalid intake config: {0}")]
    Config(String),
    /// The OS refused a thread.
    #[error("cannot start intake thread: {0}")]
    Thread(#[source] std::io::Error),
}
