//! The build: runs every source present under the sources directory, renders and labels
//! its samples, removes near-duplicates and returns the records in a stable order.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde::Serialize;

use crate::error::{CorpusError, Problem};
use crate::label::{self, Facts};
use crate::render;
use crate::sources;
pub use crate::sources::composed::ComposedCounts;

/// Which split a record belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Validation,
}

impl Split {
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Validation => "validation",
        }
    }
}

/// One labelled record, as written to the JSONL files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Record {
    /// Empty: the trainer and the analyzer build the prompt from `input`.
    pub instruction: String,
    /// The entry text `opensoc analyze` shows the model.
    pub input: String,
    /// The answer block (THREAT_TYPE ... RECOMMENDATION).
    pub output: String,
    /// Source group (`crs-regression`, `libinjection`, ...).
    pub source: String,
    /// Ingest format name of the entry (`access-combined`, `syslog-3164`, `evtx`, ...).
    pub format: String,
    pub split: Split,
    /// The label rule that gave the threat type (docs/DATA.md).
    pub label_rule: String,
    /// The taxonomy category of the threat type, for per-category counts.
    pub category: String,
    /// The raw log lines the input was rendered from (empty for EVTX records); kept for
    /// tests and audits, not written.
    #[serde(skip)]
    pub raw: String,
}

/// What a source hands the build: raw log text and its label.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Stable, unique key within the source (file and item), for the seeded draws.
    pub key: String,
    /// Raw log lines (each ending in `\n`).
    pub text: String,
    /// Taxonomy fine type.
    pub fine_type: &'static str,
    pub rule: String,
    pub source: &'static str,
    pub split: Split,
    /// HTTP status, for web samples.
    pub status: Option<u16>,
    /// Evidence sentence, or empty to let the build describe the entry.
    pub evidence: String,
    /// For multi-line samples: which entries carry the label.
    pub take: Take,
    /// An entry already rendered by the intake (EVTX records, read from their file).
    pub rendered: Option<Rendered>,
}

/// An entry rendered by the intake outside [`render::entries`].
#[derive(Debug, Clone)]
pub struct Rendered {
    pub input: String,
    pub format: &'static str,
    pub events: usize,
}

/// Which rendered entries of a sample become records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// Exactly one entry is expected (a single line); anything else is reported.
    Single,
    /// Incidents only (bursts); single events of the same text are not labelled.
    Incidents,
    /// Every entry.
    All,
}

/// Build options.
#[derive(Debug, Clone)]
pub struct BuildConfig {
    /// Seed of every draw.
    pub seed: u64,
    /// How much composed traffic to add.
    pub composed: ComposedCounts,
}

impl Default for BuildConfig {
    fn default() -> Self {
        BuildConfig {
            seed: 20_261_130,
            composed: ComposedCounts::default(),
        }
    }
}

/// The built corpus.
#[derive(Debug, Default)]
pub struct Corpus {
    pub records: Vec<Record>,
    /// Inputs skipped, with file and line.
    pub problems: Vec<Problem>,
    /// Sources found and read.
    pub sources_read: Vec<String>,
    /// Records dropped as near-duplicates of an earlier one.
    pub duplicates: usize,
    /// Records dropped for an input longer than [`MAX_INPUT_BYTES`].
    pub too_long: usize,
}

/// Longest input kept: long entries cost training time out of proportion and analyze
/// cuts them anyway.
pub const MAX_INPUT_BYTES: usize = 1_500;

impl Corpus {
    /// Records of one split.
    pub fn split(&self, split: Split) -> impl Iterator<Item = &Record> {
        self.records.iter().filter(move |r| r.split == split)
    }

    /// Counts by (split, source, category).
    pub fn counts(&self) -> BTreeMap<(Split, String, String), usize> {
        let mut m = BTreeMap::new();
        for r in &self.records {
            *m.entry((r.split, r.source.clone(), r.category.clone()))
                .or_insert(0) += 1;
        }
        m
    }
}

/// Near-duplicate key: case-folded text with digit runs collapsed, so records that
/// differ only in addresses, times, ports or sizes count once.
pub fn dedup_key(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    let mut in_digits = false;
    for c in input.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('0');
            }
            in_digits = true;
        } else {
            in_digits = false;
            out.extend(c.to_lowercase());
        }
    }
    out
}

/// Builds the corpus from the sources under `dir` (layout: docs/DATA.md).
pub fn build(dir: &Path, cfg: &BuildConfig) -> Result<Corpus, CorpusError> {
    if !dir.is_dir() {
        return Err(CorpusError::Io {
            path: dir.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "not a directory"),
        });
    }
    let mut corpus = Corpus::default();
    let mut samples = Vec::new();
    for source in sources::ALL {
        let root = dir.join(source.dir);
        if !root.is_dir() {
            continue;
        }
        corpus.sources_read.push(source.dir.to_owned());
        (source.read)(&root, cfg.seed, &mut samples, &mut corpus.problems);
    }
    if corpus.sources_read.is_empty() {
        return Err(CorpusError::NoSources(dir.to_path_buf()));
    }
    sources::composed::read(cfg.seed, &cfg.composed, &mut samples);
    let mut seen = HashSet::new();
    for s in samples {
        if let Some(r) = &s.rendered {
            let facts = Facts {
                status: None,
                events: r.events,
                evidence: s.evidence.clone(),
            };
            push(
                &mut corpus,
                &mut seen,
                &s,
                r.input.clone(),
                r.format,
                &facts,
            )?;
            continue;
        }
        let entries = render::entries(&s.key, &s.text);
        let picked: Vec<_> = match s.take {
            Take::Single if entries.len() == 1 => entries,
            Take::Single => {
                corpus.problems.push(Problem {
                    path: s.key.clone(),
                    line: 0,
                    reason: format!("rendered into {} entries, expected 1", entries.len()),
                });
                continue;
            }
            Take::Incidents => entries
                .into_iter()
                .filter(|e| e.incident.is_some())
                .collect(),
            Take::All => entries,
        };
        for e in picked {
            let facts = Facts {
                status: s.status,
                events: e.events,
                evidence: if s.evidence.is_empty() {
                    describe(&e)
                } else {
                    s.evidence.clone()
                },
            };
            push(&mut corpus, &mut seen, &s, e.text, e.format.name(), &facts)?;
        }
    }
    Ok(corpus)
}

/// Adds a record unless a near-identical one is already in.
pub(crate) fn push(
    corpus: &mut Corpus,
    seen: &mut HashSet<String>,
    s: &Sample,
    input: String,
    format: &str,
    facts: &Facts,
) -> Result<(), CorpusError> {
    if input.len() > MAX_INPUT_BYTES {
        corpus.too_long += 1;
        return Ok(());
    }
    if !seen.insert(dedup_key(&input)) {
        corpus.duplicates += 1;
        return Ok(());
    }
    let (output, category) = label::answer(s.fine_type, facts)?;
    corpus.records.push(Record {
        instruction: String::new(),
        input,
        output,
        source: s.source.to_owned(),
        format: format.to_owned(),
        split: s.split,
        label_rule: s.rule.clone(),
        category: category.to_owned(),
        raw: s.text.clone(),
    });
    Ok(())
}

/// A generic evidence line from the entry's parsed facts: for incidents the count, the
/// source and the users or paths seen; for syslog the program and message; else the
/// first line, shortened.
fn describe(e: &opensoc_ingest::Entry) -> String {
    let first = e.text.lines().next().unwrap_or_default();
    if let Some(inc) = &e.incident {
        let list = |d: &opensoc_ingest::group::Distinct| {
            d.counts
                .keys()
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        };
        let what = if !inc.users.is_empty() {
            format!("users {}", list(&inc.users))
        } else if !inc.paths.is_empty() {
            format!("paths {}", list(&inc.paths))
        } else {
            label::clip(first, 120)
        };
        return label::clip(
            &format!(
                "{} events from {} in one burst; {what}",
                inc.count, inc.source
            ),
            200,
        );
    }
    if let Some(ev) = &e.event {
        if let (Some(program), Some(message)) = (ev.field("program"), ev.field("message")) {
            let from = ev
                .source
                .as_deref()
                .map(|s| format!(" (from {s})"))
                .unwrap_or_default();
            return label::clip(&format!("{program}: {message}{from}"), 180);
        }
        if let (Some(source), Some(path)) = (ev.source.as_deref(), ev.field("path")) {
            let method = ev.field("method").unwrap_or("GET");
            let query = ev
                .field("query")
                .filter(|q| !q.is_empty() && *q != "-")
                .map(|q| format!("?{q}"))
                .unwrap_or_default();
            let status = ev.field("status").unwrap_or("-");
            // A payload in the user agent is the fact to quote.
            let agent = ev
                .field("user_agent")
                .filter(|a| {
                    a.contains(['$', '{', '<', '\'', '(', ';', '|'])
                        && !a.starts_with("Mozilla/5.0 (")
                })
                .map(|a| format!(", user agent `{}`", label::clip(a, 80)))
                .unwrap_or_default();
            return label::clip(
                &format!("{method} {path}{query} from {source}, status {status}{agent}"),
                200,
            );
        }
    }
    label::clip(first, 180)
}

/// Writes records as JSON lines (keys in the order of [`Record`]'s fields).
pub fn write_jsonl<'a, W: std::io::Write>(
    records: impl IntoIterator<Item = &'a Record>,
    mut out: W,
) -> std::io::Result<()> {
    for r in records {
        serde_json::to_writer(&mut out, r)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}
