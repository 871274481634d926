//! The collecting machine's side: entries for the workers, verdicts it decided itself.

use std::collections::VecDeque;
use std::time::Duration;

use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::Context;
use bytes::Bytes;
use opensoc_verdict::Verdict;

use crate::{ensure_streams, ScaleError, Settings, WorkItem};

/// Publishes awaiting before the next one waits for the oldest acknowledgement: enough
/// to keep the connection busy, few enough that a failure is retried promptly.
const IN_FLIGHT: usize = 256;

/// A message that failed is sent again (same ID, so never stored twice) this many times,
/// a second apart: a server restart of half a minute costs no entry.
const RETRIES: u32 = 30;
const RETRY_DELAY: Duration = Duration::from_secs(1);

/// What a publisher sent.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PublishCounts {
    /// Entries stored for the workers.
    pub entries: u64,
    /// Verdicts stored in the results stream (decided without the model).
    pub verdicts: u64,
    /// Messages the server already held (same ID in its duplicate window): a re-sent
    /// input, not new work.
    pub duplicates: u64,
}

struct Pending {
    subject: String,
    id: String,
    msg_id: String,
    payload: Bytes,
    is_entry: bool,
    ack: PublishAckFuture,
}

/// Sends entries to the work-queue stream and verdicts to the results stream, with the
/// acknowledgements pipelined; [`Publisher::finish`] waits for all of them.
pub struct Publisher {
    js: Context,
    settings: Settings,
    pending: VecDeque<Pending>,
    counts: PublishCounts,
}

impl Publisher {
    /// Creates the streams where they are missing.
    pub async fn new(js: Context, settings: &Settings) -> Result<Self, ScaleError> {
        ensure_streams(&js, settings).await?;
        Ok(Publisher {
            js,
            settings: settings.clone(),
            pending: VecDeque::new(),
            counts: PublishCounts::default(),
        })
    }

    /// Queues an entry for the workers, on its source's subject.
    pub async fn publish_entry(&mut self, item: &WorkItem) -> Result<(), ScaleError> {
        let payload = serde_json::to_vec(item).map_err(|e| ScaleError::Publish {
            id: item.id.clone(),
            source: Box::new(e),
        })?;
        let subject = self.settings.entry_subject(&item.source);
        self.send(subject, item.id.clone(), item.message_id(), payload, true)
            .await
    }

    /// Stores a verdict decided here (the fast path) beside the workers' verdicts, so
    /// the collector sees every entry in one place.
    pub async fn publish_verdict(&mut self, verdict: &Verdict) -> Result<(), ScaleError> {
        let payload = serde_json::to_vec(verdict).map_err(|e| ScaleError::Publish {
            id: verdict.id.clone(),
            source: Box::new(e),
        })?;
        let subject = self.settings.results_subject.clone();
        self.send(
            subject,
            verdict.id.clone(),
            verdict.id.clone(),
            payload,
            false,
        )
        .await
    }

    async fn send(
        &mut self,
        subject: String,
        id: String,
        msg_id: String,
        payload: Vec<u8>,
        is_entry: bool,
    ) -> Result<(), ScaleError> {
        let payload = Bytes::from(payload);
        let ack = send_once(&self.js, &subject, &id, &msg_id, &payload).await?;
        self.pending.push_back(Pending {
            subject,
            id,
            msg_id,
            payload,
            is_entry,
            ack,
        });
        while self.pending.len() >= IN_FLIGHT {
            self.settle_oldest().await?;
        }
        Ok(())
    }

    async fn settle_oldest(&mut self) -> Result<(), ScaleError> {
        let Some(p) = self.pending.pop_front() else {
            return Ok(());
        };
        let mut outcome = p.ack.await;
        let mut attempt = 0;
        while let Err(err) = &outcome {
            attempt += 1;
            if attempt > RETRIES {
                return Err(ScaleError::Publish {
                    id: p.id,
                    source: err.to_string().into(),
                });
            }
            tracing::warn!(id = %p.id, attempt, "publish not acknowledged ({err}); sending it again");
            tokio::time::sleep(RETRY_DELAY).await;
            outcome = match send_once(&self.js, &p.subject, &p.id, &p.msg_id, &p.payload).await {
                Ok(ack) => ack.await,
                Err(e) => {
                    tracing::warn!(id = %p.id, "{e}");
                    continue;
                }
            };
        }
        if let Ok(ack) = outcome {
            if ack.duplicate {
                self.counts.duplicates += 1;
            } else if p.is_entry {
                self.counts.entries += 1;
            } else {
                self.counts.verdicts += 1;
            }
        }
        Ok(())
    }

    /// Waits until the server has stored (or recognised as duplicate) everything sent.
    pub async fn finish(mut self) -> Result<PublishCounts, ScaleError> {
        while !self.pending.is_empty() {
            self.settle_oldest().await?;
        }
        Ok(self.counts)
    }
}

async fn send_once(
    js: &Context,
    subject: &str,
    id: &str,
    msg_id: &str,
    payload: &Bytes,
) -> Result<PublishAckFuture, ScaleError> {
    let message = PublishMessage::build()
        .payload(payload.clone())
        .message_id(msg_id);
    js.send_publish(subject.to_string(), message)
        .await
        .map_err(|e| ScaleError::Publish {
            id: id.to_string(),
            source: Box::new(e),
        })
}
