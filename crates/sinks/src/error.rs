use std::io;

/// What can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Writing to the output failed (a closed pipe included).
    #[error(transparent)]
    Io(#[from] io::Error),
    /// A `--forward` target that cannot be understood.
    #[error("bad forward target {target:?}: {reason}")]
    Target { target: String, reason: String },
    /// A line of a verdict file that is not a verdict.
    #[error("{path}:{line}: not a verdict: {reason}")]
    BadVerdict {
        path: String,
        line: usize,
        reason: String,
    },
    /// A forwarder's worker thread could not be started.
    #[error("starting the forwarder for {target}: {source}")]
    Spawn {
        target: String,
        #[source]
        source: io::Error,
    },
}
