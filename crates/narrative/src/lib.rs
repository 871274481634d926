//! The words of a verdict without the model.
//!
//! * [`evidence`]: the slices of the entry the verdict rests on ([`ground`]), chosen by
//!   the parsers' fields, the incident summary and the detector hits, each checked
//!   against the entry; and the one-line `evidence` read from them.
//! * [`playbook`]: a reviewed, versioned playbook per threat category (and per ATT&CK
//!   technique or fine type where finer) for a small business without a security team:
//!   what it means, the first three things to do, how to check whether it worked, and
//!   the ATT&CK mitigations behind the advice; rendered with the entry's facts.
//!
//! ```
//! use opensoc_narrative::{ground, is_grounded, Playbook};
//! let entry = "Nov 12 09:20:01 web01 sshd[2211]: Failed password for root from 185.220.101.4 port 51122 ssh2";
//! let g = ground(entry, &[]);
//! assert!(g.spans.iter().all(|s| is_grounded(entry, s)));
//! assert_eq!(g.facts.address.as_deref(), Some("185.220.101.4"));
//! let advice = Playbook::builtin()
//!     .advise(None, Some("T1110.001"), Some("SSH BRUTE FORCE"), &g.facts)
//!     .unwrap();
//! assert!(advice.recommendation().starts_with("1) Block 185.220.101.4"));
//! assert!(advice.recommendation().contains("M1032 Multi-factor Authentication"));
//! ```

pub mod evidence;
pub mod playbook;

pub use evidence::{ground, is_grounded, Facts, Grounding};
pub use playbook::{forbidden_phrase, Advice, Play, Playbook, PlaybookError, FORBIDDEN_PHRASES};
