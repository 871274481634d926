//! Forwarding verdicts to a SIEM or a chat channel as they are made.
//!
//! Each target gets a worker thread fed by a bounded queue, so a slow or absent receiver
//! never holds the analysis back. When the queue is full a new verdict is dropped and
//! counted (drop-newest: what is queued goes out in order). The worker retries with
//! exponential backoff: a syslog receiver until it comes back, a webhook up to
//! [`ForwardConfig::max_attempts`] times. At the end, [`Forwarder::finish`] gives the
//! queue [`ForwardConfig::drain_timeout`] to empty and reports the counts.

mod syslog;
mod webhook;

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use opensoc_verdict::Verdict;

use crate::alert::Alert;
use crate::writer::{SiemFormat, VerdictSink};
use crate::SinkError;

pub use syslog::{frame as syslog_frame, message as syslog_message, FACILITY as SYSLOG_FACILITY};
pub use webhook::{body as webhook_body, chat_text};

/// What a syslog message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    /// The verdict as `opensoc analyze --format jsonl` writes it.
    Jsonl,
    /// A SIEM event.
    Siem(SiemFormat),
}

impl Payload {
    fn render(self, alert: &Alert<'_>) -> String {
        match self {
            // A verdict always serialises; the fallback keeps a message rather than none.
            Payload::Jsonl => {
                serde_json::to_string(alert.verdict).unwrap_or_else(|_| alert.summary())
            }
            Payload::Siem(f) => f.render(alert),
        }
    }
}

/// A `--forward` target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardTarget {
    /// `syslog+tcp://HOST:PORT[?format=cef|ecs|ocsf|jsonl]`: RFC 5424 messages with
    /// RFC 6587 octet counting over TCP; CEF unless `format` says otherwise.
    SyslogTcp { addr: String, payload: Payload },
    /// `webhook=URL`: each verdict POSTed as JSON with a chat-ready `text` field.
    Webhook { url: String },
}

impl FromStr for ForwardTarget {
    type Err = SinkError;

    fn from_str(s: &str) -> Result<Self, SinkError> {
        let bad = |reason: &str| SinkError::Target {
            target: s.to_string(),
            reason: reason.to_string(),
        };
        if let Some(rest) = s.strip_prefix("syslog+tcp://") {
            let (addr, query) = rest.split_once('?').unwrap_or((rest, ""));
            let addr = addr.trim_end_matches('/');
            let Some((host, port)) = addr.rsplit_once(':') else {
                return Err(bad("expected syslog+tcp://HOST:PORT"));
            };
            if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
                return Err(bad("expected syslog+tcp://HOST:PORT with a port 1-65535"));
            }
            let mut payload = Payload::Siem(SiemFormat::Cef);
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                payload = match pair {
                    "format=cef" => Payload::Siem(SiemFormat::Cef),
                    "format=ecs" => Payload::Siem(SiemFormat::Ecs),
                    "format=ocsf" => Payload::Siem(SiemFormat::Ocsf),
                    "format=jsonl" => Payload::Jsonl,
                    _ => return Err(bad("the only option is format=cef|ecs|ocsf|jsonl")),
                };
            }
            return Ok(ForwardTarget::SyslogTcp {
                addr: addr.to_string(),
                payload,
            });
        }
        if let Some(url) = s.strip_prefix("webhook=") {
            let lower = url.to_ascii_lowercase();
            let rest = lower
                .strip_prefix("http://")
                .or_else(|| lower.strip_prefix("https://"));
            if rest.is_none_or(|r| r.is_empty() || r.starts_with('/')) {
                return Err(bad("expected webhook=http://... or webhook=https://..."));
            }
            return Ok(ForwardTarget::Webhook {
                url: url.to_string(),
            });
        }
        Err(bad(
            "expected syslog+tcp://HOST:PORT[?format=...] or webhook=URL",
        ))
    }
}

impl fmt::Display for ForwardTarget {
    /// The target for messages, without a webhook's path (which often holds a secret
    /// token, as Slack's and Teams' do).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ForwardTarget::SyslogTcp { addr, .. } => write!(f, "syslog+tcp://{addr}"),
            ForwardTarget::Webhook { url } => {
                let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
                let host = rest.split(['/', '?']).next().unwrap_or("");
                write!(f, "webhook {scheme}://{host}/...")
            }
        }
    }
}

/// Queue, retry and timing settings of a forwarder.
#[derive(Debug, Clone)]
pub struct ForwardConfig {
    /// Verdicts waiting to be sent, the one in flight included; more are dropped.
    pub capacity: usize,
    /// First retry delay; doubled after each failure up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Attempts per verdict before it is given up (webhook); syslog retries until the
    /// receiver is back or the drain time is over.
    pub max_attempts: u32,
    /// How long [`Forwarder::finish`] waits for the queue to empty.
    pub drain_timeout: Duration,
    /// Connect, read and write timeout of one attempt.
    pub io_timeout: Duration,
}

impl Default for ForwardConfig {
    fn default() -> Self {
        ForwardConfig {
            capacity: 1024,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            max_attempts: 5,
            drain_timeout: Duration::from_secs(10),
            io_timeout: Duration::from_secs(5),
        }
    }
}

/// What a forwarder did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ForwardStats {
    /// Verdicts accepted into the queue.
    pub queued: u64,
    /// Delivered (written to the syslog connection; a 2xx answer from the webhook).
    pub sent: u64,
    /// Refused because the queue was full.
    pub dropped: u64,
    /// Given up: a webhook's retries ran out or it answered with a client error.
    pub failed: u64,
    /// Still queued when the drain time ran out.
    pub unsent: u64,
    /// Failed attempts that were retried.
    pub retries: u64,
}

impl fmt::Display for ForwardStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} sent, {} dropped (queue full), {} failed, {} unsent, {} retries",
            self.sent, self.dropped, self.failed, self.unsent, self.retries
        )
    }
}

/// The result of one delivery attempt.
#[derive(Debug)]
pub(crate) enum SendError {
    /// Worth another try (no connection, a 5xx or 429 answer).
    Retry(String),
    /// Will not succeed however often it is tried (a 4xx answer).
    Fatal(String),
}

/// One way of delivering an encoded verdict.
pub(crate) trait Transport: Send + 'static {
    fn send(&mut self, payload: &[u8]) -> Result<(), SendError>;
    /// Whether [`ForwardConfig::max_attempts`] applies.
    fn gives_up(&self) -> bool;
}

#[derive(Default)]
struct State {
    queue: VecDeque<Vec<u8>>,
    closing: bool,
    deadline: Option<Instant>,
    stats: ForwardStats,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A worker that panicked mid-update leaves counters, not broken invariants.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

enum Encoding {
    Syslog { payload: Payload, hostname: String },
    Webhook,
}

/// A running forwarder: a bounded queue and the worker thread that empties it.
pub struct Forwarder {
    target: ForwardTarget,
    encoding: Encoding,
    capacity: usize,
    drain_timeout: Duration,
    shared: Arc<Shared>,
    worker: Option<JoinHandle<()>>,
}

impl Forwarder {
    /// Starts the worker. Nothing is connected yet: an absent receiver is retried, not
    /// an error.
    pub fn start(target: ForwardTarget, config: ForwardConfig) -> Result<Forwarder, SinkError> {
        let (encoding, transport): (Encoding, Box<dyn Transport>) = match &target {
            ForwardTarget::SyslogTcp { addr, payload } => (
                Encoding::Syslog {
                    payload: *payload,
                    hostname: syslog::local_hostname(),
                },
                Box::new(syslog::SyslogTcp::new(addr.clone(), config.io_timeout)),
            ),
            ForwardTarget::Webhook { url } => (
                Encoding::Webhook,
                Box::new(webhook::Webhook::new(url.clone(), config.io_timeout)),
            ),
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        });
        let worker = {
            let shared = Arc::clone(&shared);
            let config = config.clone();
            let name = target.to_string();
            std::thread::Builder::new()
                .name("forward".into())
                .spawn(move || run_worker(&shared, transport, &config, &name))
                .map_err(|source| SinkError::Spawn {
                    target: target.to_string(),
                    source,
                })?
        };
        Ok(Forwarder {
            target,
            encoding,
            capacity: config.capacity.max(1),
            drain_timeout: config.drain_timeout,
            shared,
            worker: Some(worker),
        })
    }

    /// Queues one alert; never blocks. Returns false when the queue was full and the
    /// alert was dropped (and counted).
    pub fn send(&self, alert: &Alert<'_>) -> bool {
        let payload = match &self.encoding {
            Encoding::Syslog { payload, hostname } => {
                syslog::frame(&syslog::message(alert, hostname, &payload.render(alert)))
            }
            Encoding::Webhook => webhook::body(alert),
        };
        let mut state = self.shared.lock();
        if state.queue.len() >= self.capacity {
            state.stats.dropped += 1;
            if state.stats.dropped == 1 {
                tracing::warn!(target = %self.target, capacity = self.capacity, "Forward queue full: dropping new verdicts (counted).");
            }
            return false;
        }
        state.queue.push_back(payload);
        state.stats.queued += 1;
        drop(state);
        self.shared.wake.notify_all();
        true
    }

    /// The counts so far.
    pub fn stats(&self) -> ForwardStats {
        self.shared.lock().stats
    }

    pub fn target(&self) -> &ForwardTarget {
        &self.target
    }

    /// Waits up to the drain timeout for the queue to empty, stops the worker and
    /// returns the final counts.
    pub fn finish(mut self) -> ForwardStats {
        self.stop(self.drain_timeout);
        self.stats()
    }

    fn stop(&mut self, grace: Duration) {
        {
            let mut state = self.shared.lock();
            state.closing = true;
            state.deadline = Some(Instant::now() + grace);
        }
        self.shared.wake.notify_all();
        if let Some(worker) = self.worker.take() {
            if worker.join().is_err() {
                tracing::error!(target = %self.target, "The forwarder's worker panicked.");
            }
        }
    }
}

impl Drop for Forwarder {
    /// Dropped without [`Forwarder::finish`] (the primary output failed, say): what is
    /// queued still gets the drain time, and losses are still reported.
    fn drop(&mut self) {
        if self.worker.is_some() {
            self.stop(self.drain_timeout);
            let stats = self.stats();
            if stats.dropped + stats.failed + stats.unsent > 0 {
                tracing::warn!(target = %self.target, "Forwarding: {stats}");
            }
        }
    }
}

fn run_worker(
    shared: &Shared,
    mut transport: Box<dyn Transport>,
    config: &ForwardConfig,
    name: &str,
) {
    loop {
        let payload = {
            let mut state = shared.lock();
            loop {
                if state.closing && state.deadline.is_some_and(|d| Instant::now() >= d) {
                    abandon(&mut state);
                    return;
                }
                if let Some(front) = state.queue.front() {
                    break front.clone();
                }
                if state.closing {
                    return;
                }
                state = shared.wake.wait(state).unwrap_or_else(|p| p.into_inner());
            }
        };

        let mut attempts = 0u32;
        let mut backoff = config.initial_backoff;
        let delivered = loop {
            attempts += 1;
            let error = match transport.send(&payload) {
                Ok(()) => break Some(true),
                Err(SendError::Fatal(e)) => {
                    tracing::warn!(target = name, "Forwarding failed, not retried: {e}");
                    break Some(false);
                }
                Err(SendError::Retry(e)) => e,
            };
            if transport.gives_up() && attempts >= config.max_attempts {
                tracing::warn!(
                    target = name,
                    attempts,
                    "Forwarding failed, giving up: {error}"
                );
                break Some(false);
            }
            if attempts == 1 {
                tracing::warn!(
                    target = name,
                    "Forwarding failed, retrying with backoff: {error}"
                );
            }
            shared.lock().stats.retries += 1;
            if !sleep_unless_over(shared, backoff) {
                break None;
            }
            backoff = (backoff * 2).min(config.max_backoff);
        };

        let mut state = shared.lock();
        match delivered {
            Some(ok) => {
                state.queue.pop_front();
                if ok {
                    state.stats.sent += 1;
                } else {
                    state.stats.failed += 1;
                }
            }
            None => {
                abandon(&mut state);
                return;
            }
        }
    }
}

/// Counts what is left as unsent and empties the queue.
fn abandon(state: &mut State) {
    state.stats.unsent += state.queue.len() as u64;
    state.queue.clear();
}

/// Sleeps `delay`, or less if the drain deadline comes first; false when it has passed.
fn sleep_unless_over(shared: &Shared, delay: Duration) -> bool {
    let until = Instant::now() + delay;
    let mut state = shared.lock();
    loop {
        let now = Instant::now();
        let wake_at = match state.deadline {
            Some(d) if d <= now => return false,
            Some(d) => d.min(until),
            None => until,
        };
        if now >= until {
            return true;
        }
        state = shared
            .wake
            .wait_timeout(state, wake_at - now)
            .map(|(s, _)| s)
            .unwrap_or_else(|p| p.into_inner().0);
    }
}

/// The primary output plus any forwarders: what `opensoc analyze` writes to.
pub struct Outputs<'a> {
    primary: Box<dyn VerdictSink + 'a>,
    forwarders: Vec<Forwarder>,
}

impl<'a> Outputs<'a> {
    /// Starts a forwarder per target.
    pub fn new(
        primary: Box<dyn VerdictSink + 'a>,
        targets: &[ForwardTarget],
        config: &ForwardConfig,
    ) -> Result<Outputs<'a>, SinkError> {
        let forwarders = targets
            .iter()
            .map(|t| Forwarder::start(t.clone(), config.clone()))
            .collect::<Result<_, _>>()?;
        Ok(Outputs {
            primary,
            forwarders,
        })
    }
}

impl VerdictSink for Outputs<'_> {
    /// Forwards first: a failing standard output (a closed pipe) does not keep the
    /// verdict from the SIEM.
    fn write(&mut self, verdict: &Verdict) -> Result<(), SinkError> {
        if !self.forwarders.is_empty() {
            let alert = Alert::now(verdict);
            for f in &self.forwarders {
                f.send(&alert);
            }
        }
        self.primary.write(verdict)
    }

    /// Finishes the primary output, then drains the forwarders and reports their counts
    /// on the log (a warning when anything was lost).
    fn finish(&mut self) -> Result<(), SinkError> {
        let result = self.primary.finish();
        for f in self.forwarders.drain(..) {
            let target = f.target().to_string();
            let stats = f.finish();
            if stats.dropped + stats.failed + stats.unsent > 0 {
                tracing::warn!(%target, "Forwarding: {stats}");
            } else {
                tracing::info!(%target, "Forwarding: {stats}");
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_targets() {
        let t: ForwardTarget = "syslog+tcp://siem.example:6514".parse().unwrap();
        assert_eq!(
            t,
            ForwardTarget::SyslogTcp {
                addr: "siem.example:6514".into(),
                payload: Payload::Siem(SiemFormat::Cef)
            }
        );
        let t: ForwardTarget = "syslog+tcp://[::1]:514?format=ecs".parse().unwrap();
        assert_eq!(
            t,
            ForwardTarget::SyslogTcp {
                addr: "[::1]:514".into(),
                payload: Payload::Siem(SiemFormat::Ecs)
            }
        );
        let t: ForwardTarget = "webhook=https://hooks.example/services/T0/B0/secret"
            .parse()
            .unwrap();
        assert_eq!(t.to_string(), "webhook https://hooks.example/...");
        for bad in [
            "syslog+tcp://host",
            "syslog+tcp://:514",
            "syslog+tcp://h:0",
            "syslog+tcp://h:514?format=xml",
            "syslog+udp://h:514",
            "webhook=ftp://x",
            "webhook=http://",
            "http://x",
        ] {
            assert!(bad.parse::<ForwardTarget>().is_err(), "{bad}");
        }
    }
}
