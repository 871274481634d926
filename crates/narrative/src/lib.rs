//! The words of a verdict without the model.
//!
//! * [`evidence`]: the slices of the entry the verdict rests on ([`ground`]), chosen by
//!   the parsers' fields, the incident summary and the detector hits, each checked
//!   against the entry; and the one-line `evidence` read from them.
//! * [`playbook`]: a reviewed, versioned playbook per threat category (and per ATT&CK
//!   technique or fine type where finer) for a small business without a security team:
//!   what it means, the first three things to do, how to check whether it worked, and
//!   the ATT&CK mitigations behind the advice; rendered with the entry's facts.

pub mod evidence;
pub mod playbook;

pub use evidence::{ground, is_grounded, Facts, Grounding};
pub use playbook::{forbidden_phrase, Advice, Play, Playbook, PlaybookError, FORBIDDEN_PHRASES};
