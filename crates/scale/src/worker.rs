//! The worker loop: pull a batch, run the model step, publish each verdict, then ack.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, Consumer};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{AckKind, Context, Message};
use bytes::Bytes;
use futures_util::StreamExt;
use opensoc_verdict::Verdict;

use crate::settings::ensure_consumer;
use crate::{ensure_streams, ScaleError, Settings, WorkItem};

/// The model step's answer for one entry: its verdict, or why it failed.
pub type StepResult = Result<Verdict, String>;

/// The model step: verdicts for a batch of entries, in order, one per entry. It runs on
/// a blocking thread, so it may take as long as the model needs.
pub trait AnalyzeStep: Send + Sync + 'static {
    fn analyze(&self, items: &[WorkItem]) -> Vec<StepResult>;
}

impl<F> AnalyzeStep for F
where
    F: Fn(&[WorkItem]) -> Vec<StepResult> + Send + Sync + 'static,
{
    fn analyze(&self, items: &[WorkItem]) -> Vec<StepResult> {
        self(items)
    }
}

/// Header of a dead letter: the last failure's message.
pub const ERROR_HEADER: &str = "Opensoc-Error";
/// Header of a dead letter: how many deliveries failed.
pub const DELIVERIES_HEADER: &str = "Opensoc-Deliveries";

/// How long one pull waits for the first entry of a batch.
const PULL_WAIT: Duration = Duration::from_secs(5);
/// Pause after a failed pull (server away): the client reconnects meanwhile.
const PULL_RETRY: Duration = Duration::from_millis(500);
/// Attempts at publishing one verdict before the entry is left for redelivery.
const PUBLISH_ATTEMPTS: u32 = 3;

/// What a worker did, shared so that a caller can watch it while the worker runs.
#[derive(Debug, Default)]
pub struct WorkerStats {
    /// Verdicts published and their entries acknowledged.
    pub done: AtomicU64,
    /// Verdicts the results stream already held (an entry redelivered after its verdict
    /// was published, but before its ack arrived).
    pub duplicates: AtomicU64,
    /// Entries received on a second or later delivery.
    pub redelivered: AtomicU64,
    /// Model-step failures given back for another delivery.
    pub retried: AtomicU64,
    /// Entries sent to the dead-letter stream.
    pub dead_lettered: AtomicU64,
    /// Batches pulled.
    pub batches: AtomicU64,
}

/// The counters at one moment.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WorkerStatsSnapshot {
    pub done: u64,
    pub duplicates: u64,
    pub redelivered: u64,
    pub retried: u64,
    pub dead_lettered: u64,
    pub batches: u64,
}

impl WorkerStats {
    pub fn snapshot(&self) -> WorkerStatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        WorkerStatsSnapshot {
            done: get(&self.done),
            duplicates: get(&self.duplicates),
            redelivered: get(&self.redelivered),
            retried: get(&self.retried),
            dead_lettered: get(&self.dead_lettered),
            batches: get(&self.batches),
        }
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// One worker: any number may run, on any machines, against the same consumer.
pub struct Worker {
    js: Context,
    consumer: Consumer<pull::Config>,
    settings: Settings,
    step: Arc<dyn AnalyzeStep>,
    batch: usize,
    stats: Arc<WorkerStats>,
}

impl Worker {
    /// Creates the streams and the consumer where they are missing. The consumer's own
    /// settings (ack wait, deliveries) are the ones that count, whoever created it.
    pub async fn new(
        js: Context,
        settings: &Settings,
        step: Arc<dyn AnalyzeStep>,
        batch: usize,
    ) -> Result<Self, ScaleError> {
        let (entries, _, _) = ensure_streams(&js, settings).await?;
        let consumer = ensure_consumer(&entries, settings).await?;
        let mut settings = settings.clone();
        let config = &consumer.cached_info().config;
        settings.ack_wait = config.ack_wait;
        settings.max_deliver = config.max_deliver;
        Ok(Worker {
            js,
            consumer,
            settings,
            step,
            batch: batch.max(1),
            stats: Arc::default(),
        })
    }

    /// The settings in force (the consumer's ack wait and deliveries).
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn stats(&self) -> Arc<WorkerStats> {
        self.stats.clone()
    }

    /// Works until `shutdown` completes; the batch in progress is finished first.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> WorkerStatsSnapshot {
        tokio::pin!(shutdown);
        loop {
            let batch = tokio::select! {
                biased;
                _ = &mut shutdown => break,
                batch = self.pull() => batch,
            };
            match batch {
                Ok(messages) if messages.is_empty() => {}
                Ok(messages) => self.process(messages).await,
                Err(err) => {
                    tracing::warn!("pulling entries: {err}");
                    tokio::time::sleep(PULL_RETRY).await;
                }
            }
        }
        self.stats.snapshot()
    }

    /// Up to `batch` entries: waits for the first, then takes only what is already
    /// there, so a trickle of entries is not held back to fill a batch.
    async fn pull(&self) -> Result<Vec<Message>, String> {
        let mut messages = Vec::with_capacity(self.batch);
        let mut first = self
            .consumer
            .batch()
            .max_messages(1)
            .expires(PULL_WAIT)
            .messages()
            .await
            .map_err(|e| e.to_string())?;
        while let Some(m) = first.next().await {
            messages.push(m.map_err(|e| e.to_string())?);
        }
        if messages.is_empty() || self.batch == 1 {
            return Ok(messages);
        }
        let rest = self
            .consumer
            .fetch()
            .max_messages(self.batch - 1)
            .messages()
            .await;
        // What was pulled stays ours either way: a failure here only shortens the batch.
        match rest {
            Ok(mut rest) => {
                while let Some(m) = rest.next().await {
                    match m {
                        Ok(m) => messages.push(m),
                        Err(e) => {
                            tracing::debug!("filling a batch: {e}");
                            break;
                        }
                    }
                }
            }
            Err(e) => tracing::debug!("filling a batch: {e}"),
        }
        Ok(messages)
    }

    async fn process(&self, messages: Vec<Message>) {
        bump(&self.stats.batches);
        let mut items = Vec::with_capacity(messages.len());
        let mut kept = Vec::with_capacity(messages.len());
        for message in messages {
            if delivered(&message) > 1 {
                bump(&self.stats.redelivered);
            }
            match serde_json::from_slice::<WorkItem>(&message.payload) {
                Ok(item) => {
                    items.push(item);
                    kept.push(message);
                }
                Err(err) => {
                    // Unreadable now is unreadable on every delivery: no retries.
                    let what = format!("not an entry: {err}");
                    tracing::warn!(subject = %message.subject, "{what}");
                    self.dead_letter(&message, "-", &what).await;
                }
            }
        }
        if items.is_empty() {
            return;
        }
        let results = self.run_step(&kept, items.clone()).await;
        for ((message, item), result) in kept.iter().zip(&items).zip(results) {
            match result {
                Ok(verdict) => self.deliver(message, item, &verdict).await,
                Err(err) => self.failed(message, item, &err).await,
            }
        }
    }

    /// Runs the model step on a blocking thread, telling the server every third of the
    /// ack wait that the batch is still being worked on, so a slow batch is not
    /// redelivered to another worker while a dead worker's entries still are.
    async fn run_step(&self, messages: &[Message], items: Vec<WorkItem>) -> Vec<StepResult> {
        let n = items.len();
        let step = self.step.clone();
        let task = tokio::task::spawn_blocking(move || step.analyze(&items));
        tokio::pin!(task);
        let every = (self.settings.ack_wait / 3).max(Duration::from_millis(100));
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        let joined = loop {
            tokio::select! {
                joined = &mut task => break joined,
                _ = ticks.tick() => {
                    for m in messages {
                        if let Err(e) = m.ack_with(AckKind::Progress).await {
                            tracing::debug!("progress ack: {e}");
                        }
                    }
                }
            }
        };
        let mut results = match joined {
            Ok(results) => results,
            Err(e) => {
                let why = format!("model step panicked: {e}");
                vec![Err(why); n]
            }
        };
        // A step that answers for fewer entries fails the rest, never shifts them.
        results.resize_with(n, || Err("model step returned no verdict".to_string()));
        results.truncate(n);
        results
    }

    /// Publishes the verdict (message ID = entry ID), and acks the entry only once the
    /// results stream has stored it. If this worker dies in between, the entry is
    /// delivered again and the server drops the second verdict as a duplicate.
    async fn deliver(&self, message: &Message, item: &WorkItem, verdict: &Verdict) {
        let payload = match serde_json::to_vec(verdict) {
            Ok(p) => Bytes::from(p),
            Err(e) => return self.failed(message, item, &format!("encoding: {e}")).await,
        };
        let mut stored = None;
        for attempt in 1..=PUBLISH_ATTEMPTS {
            let publish = PublishMessage::build()
                .payload(payload.clone())
                .message_id(&item.id);
            let ack = match self
                .js
                .send_publish(self.settings.results_subject.clone(), publish)
                .await
            {
                Ok(ack) => ack.await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match ack {
                Ok(ack) => {
                    stored = Some(ack);
                    break;
                }
                Err(e) => {
                    tracing::warn!(id = %item.id, attempt, "publishing the verdict: {e}")
                }
            }
        }
        let Some(ack) = stored else {
            // Not acked: it comes back after the ack wait, to this or another worker.
            return;
        };
        if ack.duplicate {
            bump(&self.stats.duplicates);
        }
        match message.double_ack().await {
            Ok(()) => bump(&self.stats.done),
            Err(e) => tracing::warn!(id = %item.id, "acknowledging: {e}"),
        }
    }

    /// A failed step: another delivery later, or the dead-letter stream on the last one.
    async fn failed(&self, message: &Message, item: &WorkItem, err: &str) {
        let n = delivered(message);
        if n >= self.settings.max_deliver {
            tracing::warn!(id = %item.id, deliveries = n, "dead letter: {err}");
            self.dead_letter(message, &item.source, err).await;
        } else {
            tracing::warn!(id = %item.id, deliveries = n, "model step failed, will retry: {err}");
            bump(&self.stats.retried);
            if let Err(e) = message
                .ack_with(AckKind::Nak(Some(self.settings.retry_delay)))
                .await
            {
                tracing::debug!("nak: {e}");
            }
        }
    }

    /// Stores the entry as it came, with the failure in headers, then acks it so that
    /// it leaves the work queue. If the dead letter cannot be stored, the entry is left
    /// unacknowledged: it is not lost, the server offers it again.
    async fn dead_letter(&self, message: &Message, source: &str, err: &str) {
        let n = delivered(message);
        let mut publish = PublishMessage::build()
            .payload(message.payload.clone())
            .header(ERROR_HEADER, one_line(err).as_str())
            .header(DELIVERIES_HEADER, n.to_string().as_str());
        if let Some(id) = message
            .headers
            .as_ref()
            .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
        {
            publish = publish.message_id(id.as_str());
        }
        let stored = match self
            .js
            .send_publish(self.settings.dead_subject(source), publish)
            .await
        {
            Ok(ack) => ack.await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match stored {
            Ok(_) => {
                bump(&self.stats.dead_lettered);
                if let Err(e) = message.double_ack().await {
                    tracing::warn!("acknowledging a dead letter: {e}");
                }
            }
            Err(e) => tracing::warn!("storing a dead letter: {e}"),
        }
    }
}

/// The delivery count the server gives the message (1 on the first delivery).
fn delivered(message: &Message) -> i64 {
    message.info().map(|i| i.delivered).unwrap_or(1)
}

/// Header values are one line.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(1000)
        .collect()
}
