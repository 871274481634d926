//! Log intake for OpenSOC: raw security logs in, entries for the model out.
//!
//! Real input is files, rotating logs and syslog streams in many formats, and an attack
//! such as brute force or scanning only shows as a burst across many lines. This crate
//! (no ML dependency) reads the sources, recognises each record's format, groups bursts
//! into compact incidents and hands the model one [`Entry`] at a time.
//!
//! * **Formats** ([`parse`]), detected per file and per record: Apache/nginx combined and
//!   common; W3C/IIS (`#Fields:`); syslog RFC 3164 and RFC 5424 with sshd, PAM, sudo and su
//!   auth details; Windows events from `.evtx` files, event XML, Winlogbeat/ECS JSON and
//!   the paper's multi-line `EventID: 4625` / `User: ...` text; JSON lines (Suricata EVE,
//!   Zeek, CloudTrail); anything else as plain text. Each record becomes a [`LogEvent`].
//! * **Grouping** ([`group`]): auth failures, HTTP 4xx probes and request floods from one
//!   source within a time window become one [`Incident`], rendered as its first lines, a
//!   count, the last line and the distinct users, paths and statuses, like the paper's
//!   `[...29 total attempts...]`. Deterministic; configurable with [`GroupingConfig`].
//! * **Sources** ([`Source`]): files (plain, gzip, EVTX), directories, globs, stdin,
//!   `follow` (`tail -F`), syslog over UDP and TCP (RFC 6587). Bounded queues give
//!   backpressure; [`Stats`] counts what was read, parsed, grouped, skipped and dropped.
//!
//! Bad input never stops the intake: binary lines, invalid UTF-8, oversized records,
//! truncated `.gz` files and malformed JSON/XML/EVTX records are counted in [`Stats`] and
//! reported with `tracing::warn!(path, line, reason)`; the rest of the input goes on.
//!
//! # Example
//!
//! ```
//! use opensoc_ingest::{ingest_reader, IntakeConfig};
//!
//! let log = (0..30)
//!     .map(|i| format!("Mar 15 01:05:{i:02} server sshd[1234]: Failed password for root from 203.0.113.42 port 22 ssh2\n"))
//!     .collect::<String>()
//!     + "Mar 15 01:06:00 server sshd[1240]: Accepted publickey for deploy from 10.0.0.5 port 53422 ssh2\n";
//! let (entries, stats) = ingest_reader("auth.log", log.as_bytes(), &IntakeConfig::default());
//! assert_eq!(entries.len(), 2);
//! // A single event passes through at once; an incident comes out when its window closes.
//! assert_eq!(entries[0].id, "auth.log:31");
//! assert_eq!(entries[1].id, "auth.log:1-30");
//! assert_eq!(entries[1].events, 30);
//! assert!(entries[1].text.ends_with("; users (1): root...]"));
//! assert_eq!(stats.grouped, 30);
//! ```
//!
//! With threads and real sources, [`Intake`] is an iterator of entries:
//!
//! ```no_run
//! use opensoc_ingest::{Intake, IntakeConfig, Source};
//!
//! let cfg = IntakeConfig::new(vec![Source::Path("/var/log/nginx".into()), Source::Stdin]);
//! let mut intake = Intake::start(cfg)?;
//! for entry in intake.by_ref() {
//!     println!("{}\t{}", entry.id, entry.text);
//! }
//! eprintln!("{}", intake.stats());
//! # Ok::<(), opensoc_ingest::IngestError>(())
//! ```

mod error;
mod event;
mod evtx_file;
mod follow;
pub mod group;
mod intake;
mod net;
pub mod parse;
mod queue;
mod stats;
mod stream;
mod suspicion;

pub use error::IngestError;
pub use event::{Fields, Format, LogEvent, Timestamp};
pub use evtx_file::parse_evtx;
pub use group::{
    is_incident_summary, BurstKind, Grouped, Grouper, GroupingConfig, Incident, Location,
};
pub use intake::{
    ingest_reader, Entry, Intake, IntakeConfig, Source, Timeout, DEFAULT_MAX_ENTRY_BYTES,
};
pub use net::SyslogFramer;
pub use parse::{parse_line, Parsed, Parser};
pub use stats::Stats;
pub use stream::cut_marker;
pub use suspicion::is_suspicious;
