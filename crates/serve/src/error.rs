//! Errors of the store and the server.

use std::path::PathBuf;

/// What can go wrong in the alert store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the alert database {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("the alert database refused WAL mode (journal mode {0:?})")]
    NoWal(String),
    #[error(
        "the alert database has schema version {found}, newer than this OpenSOC knows ({known})"
    )]
    NewerSchema { found: i64, known: i64 },
    #[error("alert database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("verdict JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    BadFilter(String),
    #[error("a thread panicked while it held the database")]
    Poisoned,
}

/// What can stop the server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Config(String),
    #[error("cannot read the token file {}", path.display())]
    TokenFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("server I/O: {0}")]
    Io(#[from] std::io::Error),
}
