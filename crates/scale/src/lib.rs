//! Analysis past one machine, on NATS JetStream: the collecting machine publishes the
//! entries that need the model to a work-queue stream, any number of workers pull them
//! from one durable consumer, run the model and publish verdicts to a results stream, and
//! a collector reads the verdicts back, once each. Delivery is at-least-once end to end;
//! message IDs and the collector's set of entry IDs make the results exactly-once.
//!
//! ```text
//!  opensoc analyze --publish ──► OPENSOC_ENTRIES (work queue, opensoc.entries.<source>)
//!                                     │ durable pull consumer "opensoc-workers"
//!                                     ▼ explicit ack, ack wait, max deliveries
//!                       opensoc worker × N ──► OPENSOC_RESULTS (opensoc.results)
//!                                     │                 │
//!                                     ▼ failed N times  ▼
//!                        OPENSOC_DEAD (opensoc.dead.<source>)   opensoc collect (once per entry ID)
//! ```
//!
//! The model step is passed in ([`AnalyzeStep`]), so this crate knows nothing of the
//! model: the binary gives it `opensoc_analyze::Analyzer`, tests a stand-in.
//!
//! ```no_run
//! # async fn demo() -> Result<(), opensoc_scale::ScaleError> {
//! use opensoc_scale::{connect, Publisher, Settings, WorkItem};
//! let settings = Settings::default();
//! let js = connect("nats://127.0.0.1:4222").await?;
//! let mut publisher = Publisher::new(js, &settings).await?;
//! publisher
//!     .publish_entry(&WorkItem::new("access.log", "access.log:1", "GET / HTTP/1.1"))
//!     .await?;
//! let counts = publisher.finish().await?;
//! assert_eq!(counts.entries, 1);
//! # Ok(())
//! # }
//! ```

mod collect;
mod publish;
mod settings;
mod worker;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use collect::{CollectOptions, CollectSummary, Collector};
pub use publish::{PublishCounts, Publisher};
pub use settings::{ensure_streams, Settings};
pub use worker::{AnalyzeStep, StepResult, Worker, WorkerStats, WorkerStatsSnapshot};

/// Any error of the NATS client, kept as the source of a [`ScaleError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum ScaleError {
    #[error("connecting to {url}")]
    Connect {
        url: String,
        #[source]
        source: BoxError,
    },
    #[error("setting up {what}")]
    Setup {
        what: String,
        #[source]
        source: BoxError,
    },
    #[error("publishing {id}")]
    Publish {
        id: String,
        #[source]
        source: BoxError,
    },
    #[error("reading stream {stream}")]
    Read {
        stream: String,
        #[source]
        source: BoxError,
    },
    #[error("writing the verdict of {id}")]
    Sink {
        id: String,
        #[source]
        source: BoxError,
    },
}

/// One entry for a worker: what `opensoc analyze` would hand its model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkItem {
    /// Where the entry came from: a file path, `-`, `syslog/udp/ADDR`.
    pub source: String,
    /// The entry ID (`source:LINE` or `source:FIRST-LAST`), the verdict's `id`.
    pub id: String,
    /// What the model reads.
    pub text: String,
    /// Events behind the entry (an incident counts all of its events).
    #[serde(default = "one")]
    pub events: usize,
    /// Bytes the intake cut out of the record's middle; 0 when nothing was cut.
    #[serde(default)]
    pub cut_bytes: u64,
}

fn one() -> usize {
    1
}

impl WorkItem {
    pub fn new(source: impl Into<String>, id: impl Into<String>, text: impl Into<String>) -> Self {
        WorkItem {
            source: source.into(),
            id: id.into(),
            text: text.into(),
            events: 1,
            cut_bytes: 0,
        }
    }

    /// The JetStream message ID: source and position (the entry ID) plus a hash of the
    /// content, so an entry sent twice is dropped by the server's duplicate window, while
    /// a new record at the same position (a rotated file) is not.
    pub fn message_id(&self) -> String {
        let digest = Sha256::digest(self.text.as_bytes());
        let mut id = self.id.clone();
        id.push('#');
        for byte in &digest[..8] {
            id.push_str(&format!("{byte:02x}"));
        }
        id
    }
}

/// A subject token for a source: NATS subjects are dot-separated tokens without spaces
/// or wildcards, so other characters become `_`, and a short hash of the original name
/// is added whenever that changed it (two paths must not share a subject by accident).
pub fn subject_token(source: &str) -> String {
    const MAX: usize = 64;
    let clean: String = source
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(MAX)
        .collect();
    if clean == source && !clean.is_empty() {
        return clean;
    }
    let digest = Sha256::digest(source.as_bytes());
    format!(
        "{clean}-{:02x}{:02x}{:02x}{:02x}",
        digest[0], digest[1], digest[2], digest[3]
    )
}

/// Connects to a NATS server (`nats://HOST:PORT`) and returns its JetStream context.
/// The client reconnects by itself when the connection drops.
pub async fn connect(url: &str) -> Result<async_nats::jetstream::Context, ScaleError> {
    let client = async_nats::ConnectOptions::new()
        .name("opensoc")
        .connection_timeout(Duration::from_secs(5))
        .connect(url)
        .await
        .map_err(|e| ScaleError::Connect {
            url: url.to_string(),
            source: Box::new(e),
        })?;
    Ok(async_nats::jetstream::new(client))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_id_is_position_plus_content() {
        let a = WorkItem::new("web.log", "web.log:7", "GET /a");
        let same = WorkItem::new("web.log", "web.log:7", "GET /a");
        let rotated = WorkItem::new("web.log", "web.log:7", "GET /b");
        assert_eq!(a.message_id(), same.message_id());
        assert_ne!(a.message_id(), rotated.message_id());
        assert!(a.message_id().starts_with("web.log:7#"));
        assert_eq!(a.message_id().len(), "web.log:7#".len() + 16);
    }

    #[test]
    fn subject_tokens_are_valid_and_distinct() {
        assert_eq!(subject_token("auth_log"), "auth_log");
        let a = subject_token("/var/log/auth.log");
        let b = subject_token("/var/log/auth_log");
        assert!(a.starts_with("_var_log_auth_log-"));
        assert_ne!(a, b);
        for t in [&a, &b, &subject_token("a b*>.c"), &subject_token("")] {
            assert!(!t.is_empty());
            assert!(!t.contains(['.', ' ', '*', '>']), "{t}");
        }
        assert!(subject_token(&"x/".repeat(100)).len() <= 64 + 9);
    }

    #[test]
    fn work_items_read_without_optional_fields() {
        let item: WorkItem =
            serde_json::from_str(r#"{"source":"-","id":"-:1","text":"x"}"#).unwrap();
        assert_eq!(item.events, 1);
        assert_eq!(item.cut_bytes, 0);
    }
}
