//! What `opensoc analyze` and `opensoc bench --log` do with each entry: triage first;
//! the benign fast path and the verdict cache answer at once; only the rest waits for
//! the model, in batches. Model verdicts are stored in the cache as they come.

use std::collections::HashSet;
use std::path::PathBuf;

use anyhow::{Context, Result};
use opensoc_analyze::{verdict_from_cached, AnalyzeError, Analyzer, AnalyzerConfig};
use opensoc_attack::{Catalog, Taxonomy};
use opensoc_cache::{taxonomy_version, CacheContext, EntryKey, VerdictCache};
use opensoc_ingest::Entry;
use opensoc_model::{fetch, Adapter};
use opensoc_verdict::{CacheUse, Verdict};
use sha2::{Digest, Sha256};

/// Verdict cache options of the commands that analyse.
#[derive(clap::Args)]
pub struct CacheArgs {
    /// Verdict cache file (SQLite). Default: `verdicts.sqlite` in `$OPENSOC_HOME`
    /// (else `$XDG_CACHE_HOME/opensoc`, else `~/.cache/opensoc`); docs/CACHE.md.
    #[arg(long = "cache", value_name = "PATH", conflicts_with = "no_cache")]
    pub path: Option<PathBuf>,
    /// Ask the model about every entry it decides, even one seen before.
    #[arg(long = "no-cache")]
    pub no_cache: bool,
}

impl CacheArgs {
    /// The cache these options ask for; a corrupt file is rebuilt with a warning.
    pub fn open(&self, quiet: bool) -> Result<Option<VerdictCache>> {
        if self.no_cache {
            return Ok(None);
        }
        let path = self
            .path
            .clone()
            .unwrap_or_else(|| fetch::home().join(opensoc_cache::DEFAULT_FILE));
        let (cache, warning) = VerdictCache::open(&path)
            .with_context(|| format!("opening the verdict cache {}", path.display()))?;
        if let Some(w) = warning {
            if quiet {
                tracing::warn!("{w}");
            } else {
                eprintln!("warning: {w}");
            }
        }
        Ok(Some(cache))
    }
}

/// The identity of a model for the cache: the file (or each file of a directory) with
/// its size and modification time, so a replaced file is a new model; a hub name as given.
pub fn model_identity(spec: Option<&str>) -> String {
    let path = match spec {
        None => fetch::default_model_path(),
        Some(s) => PathBuf::from(s),
    };
    let describe = |p: &std::path::Path| -> Option<String> {
        let meta = std::fs::metadata(p).ok()?;
        let mtime = meta
            .modified()
            .ok()?
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_nanos();
        Some(format!("{}|{}|{mtime}", p.display(), meta.len()))
    };
    if path.is_dir() {
        let mut parts: Vec<String> = std::fs::read_dir(&path)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .filter_map(|e| describe(&e.path()))
            .collect();
        parts.sort();
        parts.join(";")
    } else {
        describe(&path).unwrap_or_else(|| spec.unwrap_or("default").to_string())
    }
}

/// A digest of an adapter's configuration and weights (`none` without one).
pub fn adapter_identity(adapter: Option<&Adapter>, merged: bool) -> Result<String> {
    let Some(adapter) = adapter else {
        return Ok("none".into());
    };
    let mut h = Sha256::new();
    h.update(format!("{:?}|merged={merged}", adapter.config).as_bytes());
    for ((layer, module), (a, b)) in &adapter.weights {
        h.update(format!("{layer}.{module}").as_bytes());
        for t in [a, b] {
            let values: Vec<f32> = t
                .flatten_all()
                .and_then(|t| t.to_dtype(candle_core::DType::F32))
                .and_then(|t| t.to_vec1())
                .context("reading the adapter weights")?;
            for v in values {
                h.update(v.to_le_bytes());
            }
        }
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The cache context of a run: model, adapter, taxonomy, playbook and the settings
/// that change a model verdict (`config`, `weights`).
pub fn cache_context(
    model: String,
    adapter: String,
    config: &AnalyzerConfig,
    weights: &str,
) -> CacheContext {
    let taxonomy = taxonomy_version(Taxonomy::builtin(), Catalog::enterprise());
    // The playbook only matters where it writes the narrative.
    let playbook = match (&config.narrative, &config.playbook) {
        (None, Some(book)) => book.version().to_string(),
        _ => "none".to_string(),
    };
    let settings = format!(
        "grammar={} narrative={} beam={} follows={} severity_follows={} bounds={} max_input={} max_new={} weights={weights}",
        config.constrained,
        config.narrative.is_some(),
        config.technique_beam,
        config.technique_follows_type,
        config.severity_follows_type,
        config.signal_bounds,
        config.max_input_tokens,
        config.max_new_tokens,
    );
    CacheContext {
        model,
        adapter,
        taxonomy,
        playbook,
        settings: format!("opensoc {}; {settings}", env!("CARGO_PKG_VERSION")),
    }
}

/// Who answered an entry.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum By {
    FastPath,
    Cache,
    Model,
}

/// One answered entry.
pub struct Done {
    pub entry: Entry,
    pub result: Result<Verdict, AnalyzeError>,
    pub by: By,
    /// Position of the entry in the input (0, 1, ...).
    pub seq: u64,
}

struct Queued {
    entry: Entry,
    key: Option<EntryKey>,
    seq: u64,
}

/// Puts answers back in input order (files and stdin, where nobody waits on one entry);
/// a live stream passes them through as they come.
pub struct Reorder {
    ordered: bool,
    next: u64,
    held: std::collections::BTreeMap<u64, Done>,
}

impl Reorder {
    pub fn new(ordered: bool) -> Reorder {
        Reorder {
            ordered,
            next: 0,
            held: Default::default(),
        }
    }

    /// The answers that may be written now.
    pub fn push(&mut self, done: Done) -> Vec<Done> {
        if !self.ordered {
            return vec![done];
        }
        self.held.insert(done.seq, done);
        let mut out = Vec::new();
        while let Some(d) = self.held.remove(&self.next) {
            self.next += 1;
            out.push(d);
        }
        out
    }

    /// Whatever is still held (after a stop), in order.
    pub fn drain(&mut self) -> Vec<Done> {
        std::mem::take(&mut self.held).into_values().collect()
    }
}

/// The routing of entries between the fast path, the cache and the model.
pub struct Pipeline<'a> {
    analyzer: &'a Analyzer,
    cache: Option<(VerdictCache, CacheContext)>,
    min_confidence: Option<f32>,
    batch: usize,
    /// Entries for the next model batch.
    queued: Vec<Queued>,
    /// Keys in `queued`: an equal entry waits for that verdict instead of asking again.
    queued_keys: HashSet<String>,
    /// Entries waiting for an equal entry's model verdict.
    waiting: Vec<Queued>,
    /// Model calls made (entries sent to the model).
    pub model_calls: u64,
    /// Entries pushed so far.
    seen: u64,
}

impl<'a> Pipeline<'a> {
    pub fn new(
        analyzer: &'a Analyzer,
        cache: Option<(VerdictCache, CacheContext)>,
        min_confidence: Option<f32>,
        batch: usize,
    ) -> Pipeline<'a> {
        Pipeline {
            analyzer,
            cache,
            min_confidence,
            batch: batch.max(1),
            queued: Vec::new(),
            queued_keys: HashSet::new(),
            waiting: Vec::new(),
            model_calls: 0,
            seen: 0,
        }
    }

    /// Entries waiting for the model.
    pub fn queued(&self) -> usize {
        self.queued.len()
    }

    /// Whether the next model batch is full.
    pub fn batch_full(&self) -> bool {
        self.queued.len() >= self.batch
    }

    /// A cache error costs the cache, not the run: warn and go on without it.
    fn drop_cache(&mut self, err: opensoc_cache::CacheError) {
        tracing::warn!("{err}; going on without the verdict cache");
        self.cache = None;
    }

    /// Routes one entry: its verdict at once (fast path, cache), or `None` when it was
    /// queued for the model.
    pub fn push(&mut self, entry: Entry) -> Option<Done> {
        let seq = self.seen;
        self.seen += 1;
        self.route(entry, seq)
    }

    fn route(&mut self, entry: Entry, seq: u64) -> Option<Done> {
        let assessment = self.analyzer.triage().assess(&entry.text);
        if let Some(v) = self.analyzer.fast_path(&entry.id, &entry.text, &assessment) {
            return Some(Done {
                entry,
                result: Ok(v),
                by: By::FastPath,
                seq,
            });
        }
        let key = self.cache.as_ref().and_then(|(_, ctx)| {
            let format = if entry.incident.is_none() {
                entry.format
            } else {
                assessment.format
            };
            EntryKey::with_format(ctx, format, &entry.text, &assessment)
        });
        if let (Some(k), Some((cache, _))) = (&key, self.cache.as_mut()) {
            match cache.lookup(k) {
                Ok(Some(hit)) => {
                    let mut v = verdict_from_cached(
                        &entry.id,
                        &entry.text,
                        &hit.verdict,
                        &assessment,
                        self.min_confidence,
                        self.analyzer.playbook(),
                    );
                    v.cache = Some(CacheUse { hits: hit.hits });
                    return Some(Done {
                        entry,
                        result: Ok(v),
                        by: By::Cache,
                        seq,
                    });
                }
                Ok(None) => {}
                Err(e) => self.drop_cache(e),
            }
            if self.queued_keys.contains(k.digest()) {
                self.waiting.push(Queued { entry, key, seq });
                return None;
            }
        }
        if let Some(k) = &key {
            self.queued_keys.insert(k.digest().to_string());
        }
        self.queued.push(Queued { entry, key, seq });
        None
    }

    /// Runs the queued entries through the model (stores their verdicts in the cache),
    /// then answers the entries that waited for them.
    pub fn run_model(&mut self) -> Vec<Done> {
        let queued = std::mem::take(&mut self.queued);
        self.queued_keys.clear();
        if queued.is_empty() {
            return Vec::new();
        }
        let inputs: Vec<(String, String)> = queued
            .iter()
            .map(|q| (q.entry.id.clone(), q.entry.text.clone()))
            .collect();
        self.model_calls += inputs.len() as u64;
        let results = self.analyzer.analyze_batch(&inputs);
        let mut done = Vec::with_capacity(queued.len() + self.waiting.len());
        for (q, result) in queued.into_iter().zip(results) {
            if let (Ok(v), Some(k), Some((cache, _))) = (&result, &q.key, self.cache.as_mut()) {
                // Only whole verdicts of the model: one on shortened input describes
                // what the model read, not the entry.
                if v.decided_by.as_deref() == Some("model") && v.input == q.entry.text {
                    if let Err(e) = cache.store(k, v) {
                        self.drop_cache(e);
                    }
                }
            }
            done.push(Done {
                entry: q.entry,
                result,
                by: By::Model,
                seq: q.seq,
            });
        }
        // Those whose twin failed (or was not stored) go to the next batch.
        for w in std::mem::take(&mut self.waiting) {
            done.extend(self.route(w.entry, w.seq));
        }
        done
    }

    /// Writes what the cache holds in memory (hit counts).
    pub fn finish(&mut self) {
        if let Some((cache, _)) = self.cache.as_mut() {
            if let Err(e) = cache.flush() {
                tracing::warn!("{e}");
            }
        }
    }
}
