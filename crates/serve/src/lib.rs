//! `opensoc serve`: the analyst's console. An HTTP API and server-rendered pages over an
//! SQLite alert store; logs come in by upload, `POST /api/v1/logs` or the live sources of
//! `analyze` (syslog, followed files), are stored durably, analysed by one worker thread,
//! and reviewed by the analyst (confirm, false positive, relabel). The reviews become
//! training records ([`feedback`]).
//!
//! The model stays out of this crate: the pipeline comes in as an [`Analyze`] trait
//! object, so tests run with a stand-in.
//!
//! ```no_run
//! use std::sync::Arc;
//! use opensoc_serve::{Analyze, Console, ServeConfig};
//! use opensoc_verdict::Verdict;
//!
//! struct Nothing;
//! impl Analyze for Nothing {
//!     fn analyze(&self, entries: Vec<(String, String)>) -> Vec<Result<Verdict, String>> {
//!         entries.into_iter().map(|_| Err("no model".to_owned())).collect()
//!     }
//! }
//!
//! # async fn run() -> Result<(), opensoc_serve::ServeError> {
//! let console = Console::open(ServeConfig::new("alerts.db"), Arc::new(Nothing))?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! console.serve(listener, std::future::pending()).await
//! # }
//! ```

pub mod error;
pub mod feedback;
pub mod pages;
pub mod security;
pub mod store;
pub mod web;
pub mod worker;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use opensoc_ingest::{Entry, Intake, IntakeConfig, Timeout};
use opensoc_verdict::Verdict;

pub use error::{ServeError, StoreError};
use store::NewEntry;
pub use store::Store;
use web::{AppState, Inner};
use worker::{Wakeup, Worker};

/// The analysis pipeline: verdicts for `(id, text)` entries, one result per entry in
/// order. Called from one worker thread, never from the async runtime.
pub trait Analyze: Send + Sync {
    fn analyze(&self, entries: Vec<(String, String)>) -> Vec<Result<Verdict, String>>;
}

/// Default body limit for uploads and API calls: 16 MiB.
pub const DEFAULT_MAX_BODY: usize = 16 << 20;

/// How the console runs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub db: PathBuf,
    /// Required on every request when set (`Authorization: Bearer`, or the login cookie).
    pub token: Option<String>,
    /// Largest request body, in bytes.
    pub max_body: usize,
    /// Entries the worker hands the pipeline at once.
    pub batch: usize,
    /// How uploads and API bodies become entries (parsers, grouping).
    pub intake: IntakeConfig,
}

impl ServeConfig {
    pub fn new(db: impl Into<PathBuf>) -> ServeConfig {
        ServeConfig {
            db: db.into(),
            token: None,
            max_body: DEFAULT_MAX_BODY,
            batch: 8,
            intake: IntakeConfig::default(),
        }
    }
}

/// Refuses to listen beyond this machine without a token: loopback addresses may go
/// without one, any other address needs `--token-file`.
pub fn check_bind(addr: SocketAddr, token: Option<&str>) -> Result<(), ServeError> {
    if addr.ip().is_loopback() || token.is_some_and(|t| !t.is_empty()) {
        Ok(())
    } else {
        Err(ServeError::Config(format!(
            "{addr} is reachable from other machines: give an access token with --token-file \
             (or listen on 127.0.0.1)"
        )))
    }
}

/// Reads an access token from a file: its first line, trimmed; an empty one is refused.
pub fn read_token_file(path: &std::path::Path) -> Result<String, ServeError> {
    let text = std::fs::read_to_string(path).map_err(|source| ServeError::TokenFile {
        path: path.to_path_buf(),
        source,
    })?;
    let token = text.lines().next().unwrap_or("").trim().to_owned();
    if token.len() < 16 {
        return Err(ServeError::Config(format!(
            "the token in {} is shorter than 16 characters",
            path.display()
        )));
    }
    Ok(token)
}

/// The running console: store, worker and HTTP state.
pub struct Console {
    state: AppState,
    _worker: Worker,
    max_body: usize,
}

impl Console {
    /// Opens the store (migrating it) and starts the analysis worker, which picks up any
    /// entries a previous run left queued.
    pub fn open(config: ServeConfig, analyzer: Arc<dyn Analyze>) -> Result<Console, ServeError> {
        let store = Arc::new(Store::open(&config.db)?);
        let wakeup = Arc::new(Wakeup::default());
        let worker = Worker::start(store.clone(), analyzer, wakeup.clone(), config.batch);
        let state = AppState(Arc::new(Inner {
            store,
            wakeup,
            token: config.token,
            csrf: security::random_secret(),
            templates: pages::templates(),
            intake: config.intake,
        }));
        Ok(Console {
            state,
            _worker: worker,
            max_body: config.max_body,
        })
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.state.0.store
    }

    /// The HTTP routes (for tests: drive it without a socket).
    pub fn router(&self) -> axum::Router {
        web::router(self.state.clone(), self.max_body)
    }

    /// Stores entries from a live source (one transaction) and wakes the worker.
    pub fn enqueue_entries(&self, source: &str, entries: Vec<Entry>) -> Result<(), StoreError> {
        let new: Vec<NewEntry> = entries.into_iter().map(NewEntry::from).collect();
        if !new.is_empty() {
            self.state.0.store.enqueue(source, &new, 0, None)?;
            self.state.0.wakeup.wake();
        }
        Ok(())
    }

    /// Serves on `listener` until `shutdown` completes. Dropping the console afterwards
    /// lets the worker finish its batch and stops it.
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(ServeError::Io)
    }
}

/// Entries from a live intake (syslog listeners, followed files) into the console's
/// store, in small batches, until the intake ends or `stop` is set. Blocking: run it on
/// its own thread.
pub fn pump_intake(
    console: &Console,
    intake: &Intake,
    stop: &std::sync::atomic::AtomicBool,
) -> Result<(), StoreError> {
    use std::sync::atomic::Ordering;
    const TICK: Duration = Duration::from_millis(200);
    const JOIN: Duration = Duration::from_millis(20);
    while !stop.load(Ordering::Relaxed) {
        let first = match intake.next_timeout(TICK) {
            Ok(Some(e)) => e,
            Ok(None) => return Ok(()),
            Err(Timeout) => continue,
        };
        let mut batch = vec![first];
        while batch.len() < 64 {
            match intake.next_timeout(JOIN) {
                Ok(Some(e)) => batch.push(e),
                _ => break,
            }
        }
        // The source column holds the origin (`syslog/udp/ADDR`, the file's path) for
        // the queue's filter.
        let mut by_source: Vec<(String, Vec<Entry>)> = Vec::new();
        for e in batch {
            let source = e.location.origin.to_string();
            match by_source.iter_mut().find(|(s, _)| *s == source) {
                Some((_, v)) => v.push(e),
                None => by_source.push((source, vec![e])),
            }
        }
        for (source, entries) in by_source {
            console.enqueue_entries(&source, entries)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_goes_without_a_token() {
        let lo: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let lo6: SocketAddr = "[::1]:8080".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert!(check_bind(lo, None).is_ok());
        assert!(check_bind(lo6, None).is_ok());
        assert!(check_bind(any, None).is_err());
        assert!(check_bind(any, Some("")).is_err());
        assert!(check_bind(any, Some("a-long-enough-token")).is_ok());
    }

    #[test]
    fn short_or_missing_token_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let short = dir.path().join("short");
        std::fs::write(&short, "abc\n").unwrap();
        assert!(read_token_file(&short).is_err());
        assert!(read_token_file(&dir.path().join("missing")).is_err());
        let good = dir.path().join("good");
        std::fs::write(&good, "  0123456789abcdef0123  \nignored\n").unwrap();
        assert_eq!(read_token_file(&good).unwrap(), "0123456789abcdef0123");
    }
}
