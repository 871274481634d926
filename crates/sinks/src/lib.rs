//! SIEM outputs for OpenSOC verdicts: the formats the tools around a small SOC already
//! read, and forwarding to them as verdicts are made.
//!
//! - [`ecs`]: Elastic Common Schema 9.x documents (`event.kind: alert`, `threat.*`,
//!   OpenSOC's own fields under `opensoc`).
//! - [`ocsf`]: OCSF 1.8 Detection Finding events (class 2004).
//! - [`cef`]: ArcSight CEF lines.
//! - [`navigator`]: ATT&CK Navigator layers scoring techniques by alerts and severity.
//! - [`forward`]: syslog over TCP (RFC 5424, octet counting) and webhooks (JSON POST with
//!   a Slack/Teams `text`), each behind a bounded queue with counted drops.
//! - [`level`]: the one table from severities to Sigma levels and each format's number.
//!
//! Every format starts from an [`Alert`]: the verdict with its level, its ATT&CK
//! technique and tactic from the catalog, and the source, user, host and time the
//! ingest parsers read back from the log text.
//!
//! ```
//! use opensoc_sinks::{Alert, SiemFormat, VerdictSink, SiemWriter};
//! use opensoc_verdict::{parse_answer, Verdict};
//!
//! let answer = "THREAT_TYPE: SSH Brute Force Attack\nMITRE_TECHNIQUE: T1110.001\nMITRE_TACTIC: Credential Access\nSEVERITY: HIGH\nRISK_SCORE: 75";
//! let verdict = Verdict::from_answer(
//!     "auth.log:5".into(),
//!     "Nov 12 09:20:01 web01 sshd[2211]: Failed password for root from 185.220.101.4 port 51122 ssh2".into(),
//!     answer.into(),
//!     parse_answer(answer),
//! );
//! let mut out = Vec::new();
//! let mut writer = SiemWriter::new(&mut out, SiemFormat::Cef);
//! writer.write(&verdict).unwrap();
//! let line = String::from_utf8(out).unwrap();
//! assert!(line.starts_with("CEF:0|OpenSOC|OpenSOC|"));
//! assert!(line.contains("|T1110.001|SSH Brute Force Attack|8|"));
//! assert!(line.contains(" src=185.220.101.4 suser=root dhost=web01 "));
//! ```

mod alert;
pub mod cef;
pub mod ecs;
mod error;
pub mod forward;
pub mod level;
pub mod navigator;
pub mod ocsf;
mod writer;

pub use alert::{now, tactic_url, technique_url, Alert, Observed, PRODUCT, PRODUCT_VERSION};
pub use error::SinkError;
pub use forward::{ForwardConfig, ForwardStats, ForwardTarget, Forwarder, Outputs, Payload};
pub use level::{Level, LEVELS};
pub use writer::{SiemFormat, SiemWriter, VerdictSink};
