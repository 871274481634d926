//! OpenSOC's real-data training corpus: pinned public sources in, labelled JSONL records
//! out (`opensoc corpus build`).
//!
//! Every record's `input` is the text `opensoc analyze` would show the model for the same
//! raw lines: the lines go through [`opensoc_ingest::ingest_reader`] (parsers and incident
//! grouping; `.evtx` files through the same file intake), and the entry's text is taken as
//! it is. Web payloads, which are not logs, are first replayed into access-log lines of
//! every web format ([`web`]); benign traffic is partly real, partly composed from real
//! structures ([`compose`]). Labels come from the sources' own metadata by the rules named
//! in each record's `label_rule` ([`label`], docs/DATA.md). Whole sources and payload
//! families are held out as the validation split. The build is deterministic: the same
//! sources and seed give the same bytes.
//!
//! ```no_run
//! use opensoc_corpus::{build, BuildConfig};
//!
//! let corpus = build(std::path::Path::new("corpus-sources"), &BuildConfig::default())?;
//! for p in &corpus.problems {
//!     eprintln!("skipped {p}");
//! }
//! println!("{} records", corpus.records.len());
//! # Ok::<(), opensoc_corpus::CorpusError>(())
//! ```

mod build;
pub mod compose;
mod error;
pub mod label;
pub mod render;
pub mod rng;
pub mod sources;
pub mod web;

pub use build::{build, write_jsonl, BuildConfig, ComposedCounts, Corpus, Record, Split};
pub use error::{CorpusError, Problem};
