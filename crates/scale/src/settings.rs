//! Stream and consumer settings, and their idempotent creation.

use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, Consumer, DeliverPolicy};
use async_nats::jetstream::stream::{self, DiscardPolicy, RetentionPolicy, StorageType};
use async_nats::jetstream::Context;

use crate::{subject_token, ScaleError};

/// Names and limits of the three streams and the workers' consumer (docs/SCALE-OUT.md).
/// The first program to connect creates what is missing; existing streams and consumers
/// are used as they are, so changing a setting later means removing the stream or
/// consumer first.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Entries waiting for the model: work-queue retention (an entry is removed when a
    /// worker acknowledges it), file storage.
    pub entries_stream: String,
    /// Prefix of the entries' subjects; the source's token follows.
    pub entries_subject: String,
    /// Verdicts: limits retention, so a collector that was down reads them later.
    pub results_stream: String,
    pub results_subject: String,
    /// Entries whose model step failed on every delivery.
    pub dead_stream: String,
    pub dead_subject: String,
    /// The workers' durable pull consumer.
    pub consumer: String,
    /// An entry not acknowledged this long after delivery goes to another worker. Workers
    /// extend it while their model runs, so it bounds how long a dead worker's entries
    /// wait, not how long a batch may take.
    pub ack_wait: Duration,
    /// Deliveries of one entry at most; a step that fails on the last one sends the entry
    /// to the dead-letter stream.
    pub max_deliver: i64,
    /// Delay before an entry whose step failed is offered again.
    pub retry_delay: Duration,
    /// Entries delivered but not yet acknowledged, over all workers.
    pub max_ack_pending: i64,
    /// Window in which the server drops a message whose ID it has already stored.
    pub duplicate_window: Duration,
    /// Entries waiting, at most: a publisher beyond it gets an error, never a silent drop.
    pub max_entries: i64,
    /// How long verdicts and dead letters are kept.
    pub results_max_age: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            entries_stream: "OPENSOC_ENTRIES".into(),
            entries_subject: "opensoc.entries".into(),
            results_stream: "OPENSOC_RESULTS".into(),
            results_subject: "opensoc.results".into(),
            dead_stream: "OPENSOC_DEAD".into(),
            dead_subject: "opensoc.dead".into(),
            consumer: "opensoc-workers".into(),
            ack_wait: Duration::from_secs(30),
            max_deliver: 5,
            retry_delay: Duration::from_secs(1),
            max_ack_pending: 1000,
            duplicate_window: Duration::from_secs(120),
            max_entries: 1_000_000,
            results_max_age: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

impl Settings {
    /// The subject of an entry from `source`.
    pub fn entry_subject(&self, source: &str) -> String {
        format!("{}.{}", self.entries_subject, subject_token(source))
    }

    /// The dead-letter subject of an entry from `source`.
    pub fn dead_subject(&self, source: &str) -> String {
        format!("{}.{}", self.dead_subject, subject_token(source))
    }

    pub(crate) fn consumer_config(&self) -> pull::Config {
        pull::Config {
            durable_name: Some(self.consumer.clone()),
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::Explicit,
            ack_wait: self.ack_wait,
            max_deliver: self.max_deliver,
            max_ack_pending: self.max_ack_pending,
            ..Default::default()
        }
    }
}

fn setup_error(what: &str, e: impl std::error::Error + Send + Sync + 'static) -> ScaleError {
    ScaleError::Setup {
        what: what.to_string(),
        source: Box::new(e),
    }
}

/// Creates the three streams where they are missing and returns them (entries, results,
/// dead letters).
pub async fn ensure_streams(
    js: &Context,
    settings: &Settings,
) -> Result<(stream::Stream, stream::Stream, stream::Stream), ScaleError> {
    let entries = js
        .get_or_create_stream(stream::Config {
            name: settings.entries_stream.clone(),
            subjects: vec![format!("{}.>", settings.entries_subject)],
            retention: RetentionPolicy::WorkQueue,
            storage: StorageType::File,
            max_messages: settings.max_entries,
            discard: DiscardPolicy::New,
            duplicate_window: settings.duplicate_window,
            ..Default::default()
        })
        .await
        .map_err(|e| setup_error(&settings.entries_stream, e))?;
    let results = js
        .get_or_create_stream(stream::Config {
            name: settings.results_stream.clone(),
            subjects: vec![settings.results_subject.clone()],
            retention: RetentionPolicy::Limits,
            storage: StorageType::File,
            max_age: settings.results_max_age,
            duplicate_window: settings.duplicate_window,
            ..Default::default()
        })
        .await
        .map_err(|e| setup_error(&settings.results_stream, e))?;
    let dead = js
        .get_or_create_stream(stream::Config {
            name: settings.dead_stream.clone(),
            subjects: vec![format!("{}.>", settings.dead_subject)],
            retention: RetentionPolicy::Limits,
            storage: StorageType::File,
            max_age: settings.results_max_age,
            duplicate_window: settings.duplicate_window,
            ..Default::default()
        })
        .await
        .map_err(|e| setup_error(&settings.dead_stream, e))?;
    Ok((entries, results, dead))
}

/// The workers' durable consumer, created where missing.
pub(crate) async fn ensure_consumer(
    entries: &stream::Stream,
    settings: &Settings,
) -> Result<Consumer<pull::Config>, ScaleError> {
    entries
        .get_or_create_consumer(&settings.consumer, settings.consumer_config())
        .await
        .map_err(|e| setup_error(&settings.consumer, e))
}
