//! The results side: every verdict in the results stream, once per entry ID.

use std::collections::HashSet;
use std::time::Duration;

use async_nats::jetstream::consumer::pull::OrderedConfig;
use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::stream::Stream;
use async_nats::jetstream::Context;
use futures_util::StreamExt;
use opensoc_verdict::Verdict;

use crate::{ensure_streams, BoxError, ScaleError, Settings};

/// When a collection stops.
#[derive(Debug, Clone, Default)]
pub struct CollectOptions {
    /// Stop after this many distinct verdicts.
    pub expect: Option<usize>,
    /// Without `expect`: keep waiting for new verdicts instead of stopping at the last
    /// one stored when the collection started.
    pub follow: bool,
    /// Stop when no new message arrived for this long.
    pub idle_timeout: Option<Duration>,
}

/// What a collection read.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CollectSummary {
    /// Verdicts handed on (first sight of their entry ID).
    pub verdicts: u64,
    /// Verdicts of an entry already handed on, skipped.
    pub duplicates: u64,
    /// Messages that are not a verdict, skipped.
    pub malformed: u64,
    /// Stopped by the idle timeout before `expect` was reached.
    pub timed_out: bool,
}

/// Reads the results stream from its start (an ordered consumer, which the client
/// recreates after a gap or a server restart) and hands on each entry's first verdict.
/// The set of entry IDs seen lives as long as the collector.
pub struct Collector {
    stream: Stream,
    seen: HashSet<String>,
}

impl Collector {
    pub async fn new(js: Context, settings: &Settings) -> Result<Self, ScaleError> {
        let (_, stream, _) = ensure_streams(&js, settings).await?;
        Ok(Collector {
            stream,
            seen: HashSet::new(),
        })
    }

    /// Distinct entry IDs handed on so far.
    pub fn seen(&self) -> usize {
        self.seen.len()
    }

    pub async fn run<F>(
        &mut self,
        options: &CollectOptions,
        mut on_verdict: F,
    ) -> Result<CollectSummary, ScaleError>
    where
        F: FnMut(Verdict) -> Result<(), BoxError>,
    {
        let name = self.stream.cached_info().config.name.clone();
        let read_error = |e: BoxError| ScaleError::Read {
            stream: name.clone(),
            source: e,
        };
        let mut summary = CollectSummary::default();
        let done = |seen: usize, seq: u64, until: u64| match options.expect {
            Some(n) => seen >= n,
            None => !options.follow && seq >= until,
        };
        let until = self
            .stream
            .info()
            .await
            .map_err(|e| read_error(Box::new(e)))?
            .state
            .last_sequence;
        if done(self.seen.len(), 0, until) {
            return Ok(summary);
        }
        let consumer = self
            .stream
            .create_consumer(OrderedConfig {
                deliver_policy: DeliverPolicy::All,
                ..Default::default()
            })
            .await
            .map_err(|e| read_error(Box::new(e)))?;
        let mut messages = consumer
            .messages()
            .await
            .map_err(|e| read_error(Box::new(e)))?;
        loop {
            let next = match options.idle_timeout {
                Some(idle) => match tokio::time::timeout(idle, messages.next()).await {
                    Ok(next) => next,
                    Err(_) => {
                        summary.timed_out = true;
                        break;
                    }
                },
                None => messages.next().await,
            };
            let message = match next {
                None => break,
                Some(Ok(m)) => m,
                Some(Err(e)) => {
                    // The ordered consumer recovers by itself from most of these.
                    tracing::warn!("reading verdicts: {e}");
                    continue;
                }
            };
            let seq = message.info().map(|i| i.stream_sequence).unwrap_or(0);
            match serde_json::from_slice::<Verdict>(&message.payload) {
                Ok(verdict) => {
                    if self.seen.insert(verdict.id.clone()) {
                        let id = verdict.id.clone();
                        on_verdict(verdict).map_err(|e| ScaleError::Sink { id, source: e })?;
                        summary.verdicts += 1;
                    } else {
                        summary.duplicates += 1;
                    }
                }
                Err(e) => {
                    tracing::warn!(sequence = seq, "not a verdict: {e}");
                    summary.malformed += 1;
                }
            }
            if done(self.seen.len(), seq, until) {
                break;
            }
        }
        Ok(summary)
    }
}
