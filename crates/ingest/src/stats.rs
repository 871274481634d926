//! Intake counters, shared by reader threads, and their snapshot [`Stats`].

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Counts of what the intake did. `read` counts records; `parsed` and `plain` count the
/// events made from them (a CloudTrail `{"Records": [...]}` line is one record and many
/// events; a W3C `#Fields:` directive is a record and no event); `skipped` counts records
/// and input that were not passed on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Records read: lines or multi-line records, blocks, syslog messages, EVTX records.
    pub read: u64,
    /// Events recognised by a structured parser.
    pub parsed: u64,
    /// Events kept as plain text (unrecognised or malformed).
    pub plain: u64,
    /// Events folded into incidents.
    pub grouped: u64,
    /// Incidents emitted.
    pub incidents: u64,
    /// Entries handed to the consumer.
    pub entries: u64,
    /// Records not passed on: binary data, unreadable EVTX records, truncated input.
    pub skipped: u64,
    /// Records that broke their format's rules (bad JSON, XML, W3C); passed on as plain text.
    pub malformed: u64,
    /// Messages dropped because the queue was full (UDP syslog only; other sources wait).
    pub dropped: u64,
    /// Records longer than `max_entry_bytes`, cut in the middle.
    pub oversized: u64,
    /// Records with invalid UTF-8, converted lossily.
    pub invalid_utf8: u64,
    /// Files or connections that could not be read.
    pub unreadable: u64,
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "read {}, parsed {}, plain {}, grouped {} into {} incidents, entries {}, skipped {}, malformed {}, dropped {}, oversized {}, invalid UTF-8 {}, unreadable {}",
            self.read,
            self.parsed,
            self.plain,
            self.grouped,
            self.incidents,
            self.entries,
            self.skipped,
            self.malformed,
            self.dropped,
            self.oversized,
            self.invalid_utf8,
            self.unreadable
        )
    }
}

/// The live counters behind [`Stats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub read: AtomicU64,
    pub parsed: AtomicU64,
    pub plain: AtomicU64,
    pub grouped: AtomicU64,
    pub incidents: AtomicU64,
    pub entries: AtomicU64,
    pub skipped: AtomicU64,
    pub malformed: AtomicU64,
    pub dropped: AtomicU64,
    pub oversized: AtomicU64,
    pub invalid_utf8: AtomicU64,
    pub unreadable: AtomicU64,
}

pub(crate) fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl Counters {
    pub fn snapshot(&self) -> Stats {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            read: g(&self.read),
            parsed: g(&self.parsed),
            plain: g(&self.plain),
            grouped: g(&self.grouped),
            incidents: g(&self.incidents),
            entries: g(&self.entries),
            skipped: g(&self.skipped),
            malformed: g(&self.malformed),
            dropped: g(&self.dropped),
            oversized: g(&self.oversized),
            invalid_utf8: g(&self.invalid_utf8),
            unreadable: g(&self.unreadable),
        }
    }
}
