//! What OpenSOC says about a log entry, and how it asks.
//!
//! * [`prompt`]: the one prompt template, shared by inference and training, and the
//!   neutralisation of attacker-controlled log text before it enters a prompt.
//! * [`Verdict`]: the typed answer, with the public JSON key names of `opensoc analyze`.
//! * [`parse_answer`]: a tolerant reader of the model's `KEY: value` text.
//!
//! ```
//! use opensoc_verdict::{parse_answer, Severity};
//! let fields = parse_answer("THREAT_TYPE: XSS\nSEVERITY: high\nRISK_SCORE: 71\n### Input:");
//! assert_eq!(fields.threat_type.as_deref(), Some("XSS"));
//! assert_eq!(fields.severity, Some(Severity::High));
//! assert_eq!(fields.risk_score, Some(71));
//! ```

pub mod prompt;
mod verdict;

pub use verdict::{
    parse_answer, Answer, CacheUse, DetectorHit, EvidenceSpan, Field, ParseSeverityError, Severity,
    Verdict, VERDICT_KEYS,
};
