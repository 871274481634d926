//! Intake counters, shared by reader threads, and their snapshot [`Stats`].

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Counts of what the intake did. `read` counts records received; `parsed` and `plain`
/// count the events made from them (a CloudTrail `{"Records": [...]}` line is one record
/// and many events; a W3C `#Fields:` directive is a record and no event); `skipped` counts
/// records and input that were not passed on.
///
/// Accounting: with one event per record, every record read ends up in exactly one of
/// `skipped`, `dropped`, `abandoned`, or an entry (`entries`, of which `queued` still wait
/// for the consumer); `grouped` events share their incident's entry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Records received: lines or multi-line records, blocks, syslog messages, EVTX
    /// records.
    pub read: u64,
    /// Events recognised by a structured parser.
    pub parsed: u64,
    /// Events kept as plain text (unrecognised or malformed).
    pub plain: u64,
    /// Events folded into incidents.
    pub grouped: u64,
    /// Incidents emitted.
    pub incidents: u64,
    /// Entries handed to the queue for the consumer.
    pub entries: u64,
    /// Entries waiting in that queue now.
    pub queued: u64,
    /// Records not passed on: binary data, unreadable EVTX records, truncated input.
    pub skipped: u64,
    /// Records that broke their format's rules (bad JSON, XML, W3C); passed on as plain text.
    pub malformed: u64,
    /// Events dropped because a queue was full: syslog messages only, under the overflow
    /// policy (benign-looking ones first); files, stdin wait instead.
    pub dropped: u64,
    /// Events read but never handed to the consumer because it stopped first (shutdown):
    /// the entries still queued and whatever was in the pipeline.
    pub abandoned: u64,
    /// Records longer than `max_entry_bytes`, cut in the middle.
    pub oversized: u64,
    /// Records with invalid UTF-8, converted lossily.
    pub invalid_utf8: u64,
    /// Records with NUL bytes, each replaced by U+FFFD (the record is kept).
    pub nul: u64,
    /// Files, directories, symlinks (dangling, looping) or connections that could not be
    /// read.
    pub unreadable: u64,
}

impl Stats {
    /// Whether anything was not analysed or not read as it was: the exit code's test.
    pub fn lost_anything(&self) -> bool {
        self.skipped > 0
            || self.malformed > 0
            || self.unreadable > 0
            || self.dropped > 0
            || self.abandoned > 0
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "received {}, parsed {}, plain {}, grouped {} into {} incidents, entries {}, queued {}, skipped {}, malformed {}, dropped {}, abandoned {}, oversized {}, invalid UTF-8 {}, NUL {}, unreadable {}",
            self.read,
            self.parsed,
            self.plain,
            self.grouped,
            self.incidents,
            self.entries,
            self.queued,
            self.skipped,
            self.malformed,
            self.dropped,
            self.abandoned,
            self.oversized,
            self.invalid_utf8,
            self.nul,
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
    pub queued: AtomicU64,
    pub skipped: AtomicU64,
    pub malformed: AtomicU64,
    pub dropped: AtomicU64,
    pub abandoned: AtomicU64,
    pub oversized: AtomicU64,
    pub invalid_utf8: AtomicU64,
    pub nul: AtomicU64,
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
            queued: g(&self.queued),
            skipped: g(&self.skipped),
            malformed: g(&self.malformed),
            dropped: g(&self.dropped),
            abandoned: g(&self.abandoned),
            oversized: g(&self.oversized),
            invalid_utf8: g(&self.invalid_utf8),
            nul: g(&self.nul),
            unreadable: g(&self.unreadable),
        }
    }
}
