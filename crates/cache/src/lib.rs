//! The verdict cache: a log entry that is the same event as one the model already judged
//! (same normalised form, same detector signals, same model, adapter, taxonomy, playbooks
//! and analysis settings) reuses that verdict's decided fields instead of asking the model
//! again. Persistent (one SQLite file, WAL, safe with several processes), never trusted
//! across a change of anything that decides a verdict: those all go into the key.
//!
//! * [`normalize`]: which parts of a record are masked (timestamps, client address and
//!   port, PIDs, byte counts, session IDs) and which never are (request, user agent,
//!   referer, user names, commands, messages).
//! * [`EntryKey`]: the key of one entry; only single records routed to the model get one
//!   (incidents keep their counts and rates, which are evidence, and are few).
//! * [`VerdictCache`]: lookup and store; a hit's narrative is rebound to the new entry.
//!
//! ```
//! use opensoc_cache::{CacheContext, EntryKey, VerdictCache};
//! use opensoc_triage::Triage;
//! use opensoc_verdict::Verdict;
//!
//! let dir = tempfile::tempdir()?;
//! let (mut cache, warning) = VerdictCache::open(&dir.path().join("verdicts.sqlite"))?;
//! assert!(warning.is_none());
//! let context = CacheContext::new("model-a", "adapter-1", "taxonomy-1", "playbooks-0", "default");
//! let triage = Triage::builtin();
//! let line = |ip: &str| format!(r#"{ip} - - [12/Nov/2026:09:14:02 +0000] "GET /a.php?id=1%27%20OR%201=1-- HTTP/1.1" 200 5 "-" "curl/8""#);
//! let (a, b) = (line("203.0.113.5"), line("198.51.100.7"));
//! let key_a = EntryKey::new(&context, &a, &triage.assess(&a)).expect("cacheable");
//! let key_b = EntryKey::new(&context, &b, &triage.assess(&b)).expect("cacheable");
//! let mut verdict = Verdict::from_answer("x:1".into(), a.clone(), String::new(), Default::default());
//! verdict.threat_type = Some("SQL Injection — Boolean-based SQLi".into());
//! verdict.evidence = Some("tautology from 203.0.113.5".into());
//! cache.store(&key_a, &verdict)?;
//! let hit = cache.lookup(&key_b)?.expect("same event");
//! assert_eq!(hit.verdict.threat_type, verdict.threat_type);
//! assert_eq!(hit.verdict.evidence.as_deref(), Some("tautology from 198.51.100.7"));
//! assert_eq!(hit.hits, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod normalize;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use opensoc_attack::{Catalog, Taxonomy};
use opensoc_ingest::Format;
use opensoc_triage::{Assessment, Route};
use opensoc_verdict::Verdict;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use sha2::{Digest, Sha256};

pub use normalize::{normalize, Normalized};

/// The cache's file name in OpenSOC's home directory.
pub const DEFAULT_FILE: &str = "verdicts.sqlite";

/// Version of the table layout and of what a stored verdict holds; a file of another
/// version is emptied, never read.
const SCHEMA_VERSION: i64 = 1;

/// How long a process waits for another one's write before it reports the cache busy.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Hit counts are summed in memory and written at most this often (and at the end).
const FLUSH_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("verdict cache {path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("verdict cache {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("verdict cache {path}: stored verdict is unreadable: {source}")]
    Stored {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// Everything besides the entry that decides a verdict. Two runs share cached verdicts
/// only when every part is equal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheContext {
    /// The model's identity (file, size and modification time, or a digest).
    pub model: String,
    /// The adapter's digest, or `none`.
    pub adapter: String,
    /// [`taxonomy_version`] of the taxonomy and ATT&CK catalog in use.
    pub taxonomy: String,
    /// Version of the playbooks that write narratives.
    pub playbook: String,
    /// Analysis settings that change verdicts (grammar, narrative, bounds, fast-path rules).
    pub settings: String,
}

impl CacheContext {
    pub fn new(
        model: &str,
        adapter: &str,
        taxonomy: &str,
        playbook: &str,
        settings: &str,
    ) -> CacheContext {
        CacheContext {
            model: model.to_string(),
            adapter: adapter.to_string(),
            taxonomy: taxonomy.to_string(),
            playbook: playbook.to_string(),
            settings: settings.to_string(),
        }
    }

    fn digest(&self) -> Sha256 {
        let mut h = Sha256::new();
        for part in [
            &self.model,
            &self.adapter,
            &self.taxonomy,
            &self.playbook,
            &self.settings,
        ] {
            h.update(part.len().to_le_bytes());
            h.update(part.as_bytes());
        }
        h
    }
}

/// A digest of the threat taxonomy (every fine type with its category, technique, tactic
/// and severity) and the ATT&CK catalog version: a verdict decided under another
/// taxonomy is not reused.
pub fn taxonomy_version(taxonomy: &Taxonomy, catalog: &Catalog) -> String {
    let mut h = Sha256::new();
    h.update(catalog.version().as_bytes());
    for t in taxonomy.fine_types() {
        for part in [
            Some(&t.name),
            Some(&t.category),
            t.technique.as_ref(),
            t.tactic.as_ref(),
            t.severity.as_ref(),
        ] {
            let part = part.map_or("", String::as_str);
            h.update(part.len().to_le_bytes());
            h.update(part.as_bytes());
        }
    }
    hex(&h.finalize()[..16])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The cache key of one entry, with the values its normal form hid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryKey {
    digest: String,
    normal: String,
    slots: Vec<String>,
}

impl EntryKey {
    /// The key of an entry, or `None` when it is not cacheable: incidents and blocks
    /// (their counts, rates and durations are evidence), entries the fast path decides
    /// (they never reach the model), and records whose variable parts this crate cannot
    /// tell from the rest. The record's format is the one triage found in the text.
    pub fn new(context: &CacheContext, text: &str, assessment: &Assessment) -> Option<EntryKey> {
        EntryKey::with_format(context, assessment.format, text, assessment)
    }

    /// [`EntryKey::new`] for a record whose format the intake knows better than the text
    /// alone says: a W3C (IIS) line is only recognised with its file's `#Fields:` header,
    /// which triage, reading the line alone, does not see.
    pub fn with_format(
        context: &CacheContext,
        format: Format,
        text: &str,
        assessment: &Assessment,
    ) -> Option<EntryKey> {
        if assessment.records != 1 || !matches!(assessment.route, Route::Model(_)) {
            return None;
        }
        let Normalized {
            text: normal,
            slots,
        } = normalize(format, text)?;
        let mut h = context.digest();
        h.update(format.name().as_bytes());
        h.update([0]);
        // Detector hits are part of the key (not their offsets, which move with the
        // masked values): a large response or a scanner agent changes the verdict's bounds.
        let mut signals: Vec<(&str, &str)> = assessment
            .signals
            .iter()
            .map(|s| (s.class.name(), s.rule))
            .collect();
        signals.sort_unstable();
        signals.dedup();
        for (class, rule) in signals {
            h.update(class.as_bytes());
            h.update([b'/']);
            h.update(rule.as_bytes());
            h.update([0]);
        }
        h.update(normal.as_bytes());
        Some(EntryKey {
            digest: hex(&h.finalize()),
            normal,
            slots,
        })
    }

    /// The hex digest stored in the cache file.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The normal form (variable parts replaced by markers).
    pub fn normal(&self) -> &str {
        &self.normal
    }
}

/// A cached verdict for an entry: the decided fields, with the narrative rewritten for
/// the new entry. `id`, `input` and `signals` still belong to the stored entry; the
/// analyzer rebuilds them for the new one.
#[derive(Debug, Clone)]
pub struct Hit {
    pub verdict: Verdict,
    /// Entries that reused this verdict so far (all processes), this one included.
    pub hits: u64,
}

/// What is kept of a verdict: the fields the model decided. Detector signals and
/// grounding warnings are re-derived for each entry, so they are dropped.
fn decided_fields(v: &Verdict) -> Verdict {
    let mut kept = v.clone();
    kept.signals.clear();
    kept.cache = None;
    kept.warnings.retain(|w| !w.starts_with("evidence quotes "));
    kept
}

/// Rewrites the stored entry's variable values into the new entry's, in the narrative
/// fields and the raw answer (an evidence line that names the client address names the
/// new client's). Values shorter than four characters (ports, small PIDs) are left: they
/// would match unrelated text.
pub fn rebind(verdict: &mut Verdict, old: &[String], new: &[String]) {
    let pairs: Vec<(&String, &String)> = old
        .iter()
        .zip(new)
        .filter(|(o, n)| o != n && o.len() >= 4)
        .collect();
    if pairs.is_empty() {
        return;
    }
    let fix = |text: &mut String| {
        for (o, n) in &pairs {
            if text.contains(o.as_str()) {
                *text = text.replace(o.as_str(), n);
            }
        }
    };
    for field in [
        &mut verdict.evidence,
        &mut verdict.impact,
        &mut verdict.recommendation,
    ]
    .into_iter()
    .flatten()
    {
        fix(field);
    }
    fix(&mut verdict.raw_output);
}

struct Memo {
    verdict: Verdict,
    slots: Vec<String>,
    /// Hits as last read from or written to the file.
    stored_hits: u64,
}

/// The verdict cache on one SQLite file. Entries found are also kept in memory, and hit
/// counts are written in batches, so a warm run costs one hash per entry.
pub struct VerdictCache {
    conn: Connection,
    path: PathBuf,
    memo: HashMap<String, Memo>,
    /// Hits not yet added to the file, per key.
    pending: HashMap<String, u64>,
    last_flush: Instant,
}

impl std::fmt::Debug for VerdictCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerdictCache")
            .field("path", &self.path)
            .field("memo", &self.memo.len())
            .finish()
    }
}

impl VerdictCache {
    /// Opens (or creates) the cache at `path`. A file that is not a readable cache
    /// (corrupt, not SQLite) is moved aside to `PATH.corrupt-SECS` and a new one is
    /// created; the returned warning says so. Errors only when no cache can be had
    /// (an unwritable directory).
    pub fn open(path: &Path) -> Result<(VerdictCache, Option<String>), CacheError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| CacheError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        match Self::open_checked(path) {
            Ok(cache) => Ok((cache, None)),
            Err(CacheError::Sqlite { source, .. }) if is_corruption(&source) => {
                let stamp = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let aside = PathBuf::from(format!("{}.corrupt-{stamp}", path.display()));
                std::fs::rename(path, &aside).map_err(|source| CacheError::Io {
                    path: path.to_path_buf(),
                    source,
                })?;
                for suffix in ["-wal", "-shm"] {
                    let side = PathBuf::from(format!("{}{suffix}", path.display()));
                    let _ = std::fs::remove_file(side);
                }
                let cache = Self::open_checked(path)?;
                let warning = format!(
                    "verdict cache {} was unreadable ({source}); moved to {} and started anew",
                    path.display(),
                    aside.display()
                );
                Ok((cache, Some(warning)))
            }
            Err(e) => Err(e),
        }
    }

    fn open_checked(path: &Path) -> Result<VerdictCache, CacheError> {
        let err = |source| CacheError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(err)?;
        // WAL: readers never block the writer, so two runs share the file; NORMAL
        // synchronous is safe under WAL (a crash loses at most the last commits).
        // A file system that refuses WAL (some network mounts) keeps rollback mode,
        // which is slower but as safe.
        let _mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(err)?;
        conn.execute_batch("PRAGMA synchronous=NORMAL;")
            .map_err(err)?;
        let check: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(err)?;
        if check != "ok" {
            return Err(err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
                Some(check),
            )));
        }
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(err)?;
        if version != SCHEMA_VERSION {
            // Another layout (or a new file): nothing in it is trusted.
            conn.execute_batch(&format!(
                "BEGIN IMMEDIATE;
                 DROP TABLE IF EXISTS verdicts;
                 CREATE TABLE verdicts (
                     key TEXT PRIMARY KEY NOT NULL,
                     normal TEXT NOT NULL,
                     slots TEXT NOT NULL,
                     verdict TEXT NOT NULL,
                     hits INTEGER NOT NULL DEFAULT 0,
                     created INTEGER NOT NULL
                 ) WITHOUT ROWID;
                 PRAGMA user_version = {SCHEMA_VERSION};
                 COMMIT;"
            ))
            .map_err(err)?;
        }
        Ok(VerdictCache {
            conn,
            path: path.to_path_buf(),
            memo: HashMap::new(),
            pending: HashMap::new(),
            last_flush: Instant::now(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn sqlite_err(&self, source: rusqlite::Error) -> CacheError {
        CacheError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// The cached verdict of `key`'s event, rebound to `key`'s entry, and counts the hit.
    pub fn lookup(&mut self, key: &EntryKey) -> Result<Option<Hit>, CacheError> {
        if !self.memo.contains_key(&key.digest) {
            let row: Option<(String, String, u64)> = self
                .conn
                .prepare_cached("SELECT slots, verdict, hits FROM verdicts WHERE key = ?1")
                .and_then(|mut s| {
                    s.query_row(params![key.digest], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })
                    .optional()
                })
                .map_err(|e| self.sqlite_err(e))?;
            let Some((slots, verdict, hits)) = row else {
                return Ok(None);
            };
            let stored = |source| CacheError::Stored {
                path: self.path.clone(),
                source,
            };
            let memo = Memo {
                verdict: serde_json::from_str(&verdict).map_err(stored)?,
                slots: serde_json::from_str(&slots).map_err(stored)?,
                stored_hits: hits,
            };
            self.memo.insert(key.digest.clone(), memo);
        }
        let Some(memo) = self.memo.get(&key.digest) else {
            return Ok(None);
        };
        let pending = self.pending.entry(key.digest.clone()).or_insert(0);
        *pending += 1;
        let hits = memo.stored_hits + *pending;
        let mut verdict = memo.verdict.clone();
        rebind(&mut verdict, &memo.slots, &key.slots);
        if self.last_flush.elapsed() >= FLUSH_EVERY {
            self.flush()?;
        }
        Ok(Some(Hit { verdict, hits }))
    }

    /// Stores the model's verdict for `key`'s entry. When another process stored the
    /// same event first, its verdict is kept (both came from the same model and settings).
    pub fn store(&mut self, key: &EntryKey, verdict: &Verdict) -> Result<(), CacheError> {
        let kept = decided_fields(verdict);
        let json = serde_json::to_string(&kept).map_err(|source| CacheError::Stored {
            path: self.path.clone(),
            source,
        })?;
        let slots = serde_json::to_string(&key.slots).map_err(|source| CacheError::Stored {
            path: self.path.clone(),
            source,
        })?;
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        self.conn
            .prepare_cached(
                "INSERT OR IGNORE INTO verdicts (key, normal, slots, verdict, hits, created)
                 VALUES (?1, ?2, ?3, ?4, 0, ?5)",
            )
            .and_then(|mut s| s.execute(params![key.digest, key.normal, slots, json, created]))
            .map_err(|e| self.sqlite_err(e))?;
        Ok(())
    }

    /// Writes the hit counts summed in memory.
    pub fn flush(&mut self) -> Result<(), CacheError> {
        self.last_flush = Instant::now();
        if self.pending.is_empty() {
            return Ok(());
        }
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(|e| self.sqlite_err(e))?;
        {
            let mut update = tx
                .prepare_cached(
                    "UPDATE verdicts SET hits = hits + ?1 WHERE key = ?2 RETURNING hits",
                )
                .map_err(|e| self.sqlite_err(e))?;
            for (key, n) in &self.pending {
                let now: Option<u64> = update
                    .query_row(params![n, key], |r| r.get(0))
                    .optional()
                    .map_err(|e| CacheError::Sqlite {
                    path: self.path.clone(),
                    source: e,
                })?;
                if let (Some(now), Some(memo)) = (now, self.memo.get_mut(key)) {
                    memo.stored_hits = now;
                }
            }
        }
        tx.commit().map_err(|e| self.sqlite_err(e))?;
        self.pending.clear();
        Ok(())
    }

    /// Verdicts stored in the file.
    pub fn len(&self) -> Result<u64, CacheError> {
        self.conn
            .query_row("SELECT COUNT(*) FROM verdicts", [], |r| r.get(0))
            .map_err(|e| self.sqlite_err(e))
    }

    pub fn is_empty(&self) -> Result<bool, CacheError> {
        Ok(self.len()? == 0)
    }
}

impl Drop for VerdictCache {
    fn drop(&mut self) {
        // Counts only: losing them on an error loses no verdict.
        let _ = self.flush();
    }
}

/// Whether an error means the file is not a usable SQLite database.
fn is_corruption(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseCorrupt) | Some(rusqlite::ErrorCode::NotADatabase)
    )
}

#[cfg(test)]
mod tests;
