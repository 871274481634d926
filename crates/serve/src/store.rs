//! The alert store: one SQLite file in WAL mode, its schema versioned by migrations.
//!
//! Every entry is written (state `queued`) in one transaction before the request that
//! brought it is acknowledged; the analysis worker later fills its verdict in. A restart,
//! even after `kill -9`, finds queued entries still queued and analyses them then, so
//! nothing acknowledged is lost and nothing is stored twice. One connection writes (behind
//! a mutex); readers take their own connections, which WAL lets run beside the writer.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use opensoc_verdict::{Severity, Verdict};
use rusqlite::types::Value;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Transaction};
use serde::{Deserialize, Serialize};

use crate::error::StoreError;

/// Schema migrations, applied in order; `PRAGMA user_version` holds how many ran. Never
/// edit one that shipped: add the next.
const MIGRATIONS: &[&str] = &[
    // 1: entries with their verdicts and the analyst's review, requests, feedback history.
    r#"
    CREATE TABLE requests (
        id INTEGER PRIMARY KEY,
        received_at INTEGER NOT NULL,
        source TEXT NOT NULL,
        idempotency_key TEXT UNIQUE,
        entries INTEGER NOT NULL,
        skipped INTEGER NOT NULL
    );
    CREATE TABLE entries (
        id INTEGER PRIMARY KEY,
        request INTEGER REFERENCES requests(id),
        received_at INTEGER NOT NULL,
        source TEXT NOT NULL,
        entry_id TEXT NOT NULL,
        text TEXT NOT NULL,
        events INTEGER NOT NULL,
        cut_bytes INTEGER NOT NULL DEFAULT 0,
        state TEXT NOT NULL DEFAULT 'queued'
            CHECK (state IN ('queued', 'analysed', 'failed')),
        error TEXT,
        verdict TEXT,
        threat_type TEXT,
        category TEXT,
        technique_id TEXT,
        tactic TEXT,
        severity INTEGER,
        risk_score INTEGER,
        confidence REAL,
        analysed_at INTEGER,
        status TEXT NOT NULL DEFAULT 'new'
            CHECK (status IN ('new', 'confirmed', 'false_positive', 'relabelled')),
        label_type TEXT,
        label_severity INTEGER,
        note TEXT,
        reviewed_at INTEGER
    );
    CREATE INDEX entries_queued ON entries(id) WHERE state = 'queued';
    CREATE INDEX entries_received ON entries(received_at);
    CREATE INDEX entries_category ON entries(category);
    CREATE INDEX entries_severity ON entries(severity);
    CREATE INDEX entries_status ON entries(status);
    CREATE TABLE feedback (
        id INTEGER PRIMARY KEY,
        entry INTEGER NOT NULL REFERENCES entries(id),
        at INTEGER NOT NULL,
        action TEXT NOT NULL,
        threat_type TEXT,
        severity INTEGER,
        note TEXT
    );
    "#,
    // 2: the overview's counts read this index alone, not the rows with their text and
    // verdict (about ten times faster at 100,000 entries; docs/API.md).
    r#"
    CREATE INDEX entries_overview
        ON entries(state, status, category, severity, technique_id, received_at);
    CREATE INDEX entries_source ON entries(source);
    "#,
];

/// Severity as stored: an integer so that filters and sorting follow its order.
fn severity_rank(s: Severity) -> i64 {
    match s {
        Severity::Low => 0,
        Severity::Medium => 1,
        Severity::High => 2,
        Severity::Critical => 3,
    }
}

fn severity_from_rank(r: i64) -> Option<Severity> {
    Some(match r {
        0 => Severity::Low,
        1 => Severity::Medium,
        2 => Severity::High,
        3 => Severity::Critical,
        _ => return None,
    })
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// One entry to store, as the intake made it.
#[derive(Debug, Clone)]
pub struct NewEntry {
    /// The intake's id (`access.log:12`).
    pub entry_id: String,
    pub text: String,
    pub events: usize,
    pub cut_bytes: u64,
}

impl From<opensoc_ingest::Entry> for NewEntry {
    fn from(e: opensoc_ingest::Entry) -> Self {
        NewEntry {
            entry_id: e.id,
            text: e.text,
            events: e.events,
            cut_bytes: e.cut_bytes,
        }
    }
}

/// What storing a request gave: the first and last new row ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Accepted {
    pub request: i64,
    /// Entries stored for this request.
    pub entries: usize,
    /// Records the intake skipped (malformed, binary...).
    pub skipped: u64,
    /// Row ids `first..=last` (none when `entries` is 0).
    pub first: Option<i64>,
    pub last: Option<i64>,
    /// True when this idempotency key was seen before: nothing new was stored.
    pub replayed: bool,
}

/// The analyst's verdict on an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Review {
    New,
    Confirmed,
    FalsePositive,
    Relabelled,
}

impl Review {
    pub fn as_str(self) -> &'static str {
        match self {
            Review::New => "new",
            Review::Confirmed => "confirmed",
            Review::FalsePositive => "false_positive",
            Review::Relabelled => "relabelled",
        }
    }

    pub fn parse(s: &str) -> Option<Review> {
        Some(match s {
            "new" => Review::New,
            "confirmed" => Review::Confirmed,
            "false_positive" => Review::FalsePositive,
            "relabelled" => Review::Relabelled,
            _ => return None,
        })
    }
}

/// A review to record. `Relabelled` carries the new type (and optionally severity).
#[derive(Debug, Clone, PartialEq)]
pub struct Feedback {
    pub review: Review,
    pub threat_type: Option<String>,
    pub severity: Option<Severity>,
    pub note: Option<String>,
}

/// One stored entry with its verdict and review.
#[derive(Debug, Clone, Serialize)]
pub struct Alert {
    pub id: i64,
    /// Unix seconds.
    pub received_at: i64,
    pub source: String,
    pub entry_id: String,
    pub text: String,
    pub events: i64,
    /// `queued`, `analysed` or `failed`.
    pub state: String,
    pub error: Option<String>,
    pub threat_type: Option<String>,
    pub category: Option<String>,
    pub technique_id: Option<String>,
    pub tactic: Option<String>,
    pub severity: Option<Severity>,
    pub risk_score: Option<i64>,
    pub confidence: Option<f64>,
    pub status: Review,
    pub label_type: Option<String>,
    pub label_severity: Option<Severity>,
    pub note: Option<String>,
    pub reviewed_at: Option<i64>,
    /// The full verdict (only in single-alert reads).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
}

/// Queue filters, shared by the page and `GET /api/v1/alerts`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertFilter {
    pub severity: Option<String>,
    pub category: Option<String>,
    /// Technique ID; a parent also matches its sub-techniques.
    pub technique: Option<String>,
    pub source: Option<String>,
    pub status: Option<String>,
    /// `queued`, `analysed` or `failed`.
    pub state: Option<String>,
    /// Received at or after (unix seconds or `YYYY-MM-DD[THH:MM[:SS]]`, UTC).
    pub since: Option<String>,
    pub until: Option<String>,
    /// Case-insensitive text in the log text, threat type or entry id.
    pub q: Option<String>,
    /// Leave out entries judged "No Threat".
    pub threats_only: Option<bool>,
    pub limit: Option<u32>,
    pub offset: Option<u32>,
}

pub const DEFAULT_PAGE: u32 = 50;
pub const MAX_PAGE: u32 = 500;

/// A page of alerts and how many match in all.
#[derive(Debug, Clone, Serialize)]
pub struct AlertPage {
    pub total: i64,
    pub limit: u32,
    pub offset: u32,
    pub alerts: Vec<Alert>,
}

/// Counts for the overview and `GET /api/v1/stats`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    pub entries: i64,
    pub queued: i64,
    pub analysed: i64,
    pub failed: i64,
    /// Analysed entries judged a threat (not "No Threat").
    pub threats: i64,
    pub by_status: Vec<(String, i64)>,
    pub by_severity: Vec<(String, i64)>,
    pub by_category: Vec<(String, i64)>,
    pub by_technique: Vec<(String, i64)>,
    /// Threats per hour (`YYYY-MM-DD HH:00` UTC), the last 48 hours with any.
    pub by_hour: Vec<(String, i64)>,
}

/// The category the taxonomy gives "No Threat" verdicts.
pub const NO_THREAT: &str = "NO THREAT";

const ALERT_COLUMNS: &str = "id, received_at, source, entry_id, text, events, state, error, \
    threat_type, category, technique_id, tactic, severity, risk_score, confidence, status, \
    label_type, label_severity, note, reviewed_at";

fn alert_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Alert> {
    let status: String = row.get(15)?;
    Ok(Alert {
        id: row.get(0)?,
        received_at: row.get(1)?,
        source: row.get(2)?,
        entry_id: row.get(3)?,
        text: row.get(4)?,
        events: row.get(5)?,
        state: row.get(6)?,
        error: row.get(7)?,
        threat_type: row.get(8)?,
        category: row.get(9)?,
        technique_id: row.get(10)?,
        tactic: row.get(11)?,
        severity: row.get::<_, Option<i64>>(12)?.and_then(severity_from_rank),
        risk_score: row.get(13)?,
        confidence: row.get(14)?,
        status: Review::parse(&status).unwrap_or(Review::New),
        label_type: row.get(16)?,
        label_severity: row.get::<_, Option<i64>>(17)?.and_then(severity_from_rank),
        note: row.get(18)?,
        reviewed_at: row.get(19)?,
        verdict: None,
    })
}

/// An entry waiting for the model.
#[derive(Debug, Clone)]
pub struct Queued {
    pub id: i64,
    pub entry_id: String,
    pub text: String,
    pub cut_bytes: u64,
}

/// The SQLite store. Cheap to share behind an `Arc`; every method blocks (call from a
/// blocking thread).
pub struct Store {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
}

fn configure(conn: &Connection) -> Result<(), StoreError> {
    // FULL: the WAL is synced at every commit, so an acknowledged request survives a
    // power cut, not only a killed process.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(())
}

impl Store {
    /// Opens (or creates) the database at `path` and brings its schema up to date.
    pub fn open(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        let path = path.as_ref().to_path_buf();
        let mut conn = Connection::open(&path).map_err(|source| StoreError::Open {
            path: path.clone(),
            source,
        })?;
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::NoWal(mode));
        }
        configure(&conn)?;
        migrate(&mut conn)?;
        Ok(Store {
            path,
            writer: Mutex::new(conn),
            readers: Mutex::new(Vec::new()),
        })
    }

    /// The schema version (number of migrations applied).
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.read(|c| Ok(c.query_row("PRAGMA user_version", [], |r| r.get(0))?))
    }

    fn write<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.writer.lock().map_err(|_| StoreError::Poisoned)?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let pooled = self.readers.lock().map_err(|_| StoreError::Poisoned)?.pop();
        let conn = match pooled {
            Some(c) => c,
            None => {
                let c = Connection::open_with_flags(
                    &self.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(|source| StoreError::Open {
                    path: self.path.clone(),
                    source,
                })?;
                c.busy_timeout(std::time::Duration::from_secs(10))?;
                c
            }
        };
        let out = f(&conn);
        if let Ok(mut pool) = self.readers.lock() {
            if pool.len() < 8 {
                pool.push(conn);
            }
        }
        out
    }

    /// Stores the entries of one request (upload, API call, a batch from a live source)
    /// durably, all or none. With an `idempotency_key` seen before, stores nothing and
    /// answers what the first request got.
    pub fn enqueue(
        &self,
        source: &str,
        entries: &[NewEntry],
        skipped: u64,
        idempotency_key: Option<&str>,
    ) -> Result<Accepted, StoreError> {
        self.write(|tx| {
            if let Some(key) = idempotency_key {
                let seen = tx
                    .query_row(
                        "SELECT r.id, r.entries, r.skipped, MIN(e.id), MAX(e.id)
                         FROM requests r LEFT JOIN entries e ON e.request = r.id
                         WHERE r.idempotency_key = ?1 GROUP BY r.id",
                        [key],
                        |r| {
                            Ok(Accepted {
                                request: r.get(0)?,
                                entries: r.get::<_, i64>(1)? as usize,
                                skipped: r.get::<_, i64>(2)? as u64,
                                first: r.get(3)?,
                                last: r.get(4)?,
                                replayed: true,
                            })
                        },
                    )
                    .optional()?;
                if let Some(seen) = seen {
                    return Ok(seen);
                }
            }
            let at = now();
            tx.execute(
                "INSERT INTO requests (received_at, source, idempotency_key, entries, skipped)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![at, source, idempotency_key, entries.len() as i64, skipped as i64],
            )?;
            let request = tx.last_insert_rowid();
            let mut insert = tx.prepare_cached(
                "INSERT INTO entries (request, received_at, source, entry_id, text, events, cut_bytes)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            let (mut first, mut last) = (None, None);
            for e in entries {
                insert.execute(params![
                    request,
                    at,
                    source,
                    e.entry_id,
                    e.text,
                    e.events as i64,
                    e.cut_bytes as i64
                ])?;
                let id = tx.last_insert_rowid();
                first.get_or_insert(id);
                last = Some(id);
            }
            Ok(Accepted {
                request,
                entries: entries.len(),
                skipped,
                first,
                last,
                replayed: false,
            })
        })
    }

    /// Up to `limit` queued entries, oldest first.
    pub fn queued(&self, limit: usize) -> Result<Vec<Queued>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, entry_id, text, cut_bytes FROM entries WHERE state = 'queued'
                 ORDER BY id LIMIT ?1",
            )?;
            let rows = stmt.query_map([limit as i64], |r| {
                Ok(Queued {
                    id: r.get(0)?,
                    entry_id: r.get(1)?,
                    text: r.get(2)?,
                    cut_bytes: r.get::<_, i64>(3)?.max(0) as u64,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    /// Records the outcome of analysing the entries `ids` (in one transaction).
    pub fn record_results(
        &self,
        results: &[(i64, Result<Verdict, String>)],
    ) -> Result<(), StoreError> {
        self.write(|tx| {
            let at = now();
            let mut ok = tx.prepare_cached(
                "UPDATE entries SET state = 'analysed', error = NULL, verdict = ?2,
                    threat_type = ?3, category = ?4, technique_id = ?5, tactic = ?6,
                    severity = ?7, risk_score = ?8, confidence = ?9, analysed_at = ?10
                 WHERE id = ?1",
            )?;
            let mut failed = tx.prepare_cached(
                "UPDATE entries SET state = 'failed', error = ?2, analysed_at = ?3 WHERE id = ?1",
            )?;
            for (id, result) in results {
                match result {
                    Ok(v) => {
                        let json = serde_json::to_string(v)?;
                        ok.execute(params![
                            id,
                            json,
                            v.threat_type,
                            v.category,
                            v.technique_id,
                            v.tactic,
                            v.severity.map(severity_rank),
                            v.risk_score.map(i64::from),
                            v.confidence.map(f64::from),
                            at
                        ])?;
                    }
                    Err(e) => {
                        failed.execute(params![id, e, at])?;
                    }
                }
            }
            Ok(())
        })
    }

    /// Records the analyst's review of alert `id`; `Ok(false)` when there is no such alert.
    pub fn review(&self, id: i64, fb: &Feedback) -> Result<bool, StoreError> {
        self.write(|tx| {
            let at = now();
            let (label_type, label_severity) = match fb.review {
                Review::Relabelled => (fb.threat_type.clone(), fb.severity.map(severity_rank)),
                _ => (None, None),
            };
            let changed = tx.execute(
                "UPDATE entries SET status = ?2, label_type = ?3, label_severity = ?4,
                    note = ?5, reviewed_at = ?6 WHERE id = ?1",
                params![
                    id,
                    fb.review.as_str(),
                    label_type,
                    label_severity,
                    fb.note,
                    at
                ],
            )?;
            if changed == 0 {
                return Ok(false);
            }
            tx.execute(
                "INSERT INTO feedback (entry, at, action, threat_type, severity, note)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    id,
                    at,
                    fb.review.as_str(),
                    label_type,
                    label_severity,
                    fb.note
                ],
            )?;
            Ok(true)
        })
    }

    /// One alert with its full verdict.
    pub fn alert(&self, id: i64) -> Result<Option<Alert>, StoreError> {
        self.read(|c| {
            let sql = format!("SELECT {ALERT_COLUMNS}, verdict FROM entries WHERE id = ?1");
            let row = c
                .query_row(&sql, [id], |r| {
                    let mut a = alert_from_row(r)?;
                    let json: Option<String> = r.get(20)?;
                    a.verdict = json.and_then(|j| serde_json::from_str(&j).ok());
                    Ok(a)
                })
                .optional()?;
            Ok(row)
        })
    }

    /// Alerts matching `filter`, newest first.
    pub fn alerts(&self, filter: &AlertFilter) -> Result<AlertPage, StoreError> {
        let (clause, values) = where_clause(filter)?;
        let limit = filter.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
        let offset = filter.offset.unwrap_or(0);
        self.read(|c| {
            let total: i64 = c.query_row(
                &format!("SELECT COUNT(*) FROM entries {clause}"),
                rusqlite::params_from_iter(values.iter()),
                |r| r.get(0),
            )?;
            let sql = format!(
                "SELECT {ALERT_COLUMNS} FROM entries {clause} ORDER BY id DESC LIMIT {limit} OFFSET {offset}"
            );
            let mut stmt = c.prepare(&sql)?;
            let alerts = stmt
                .query_map(rusqlite::params_from_iter(values.iter()), alert_from_row)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(AlertPage {
                total,
                limit,
                offset,
                alerts,
            })
        })
    }

    /// Reviewed, analysed alerts with their verdicts, oldest review first (for training).
    pub fn reviewed(&self) -> Result<Vec<Alert>, StoreError> {
        self.read(|c| {
            let sql = format!(
                "SELECT {ALERT_COLUMNS}, verdict FROM entries
                 WHERE status != 'new' AND state = 'analysed' ORDER BY reviewed_at, id"
            );
            let mut stmt = c.prepare(&sql)?;
            let rows = stmt.query_map([], |r| {
                let mut a = alert_from_row(r)?;
                let json: Option<String> = r.get(20)?;
                a.verdict = json.and_then(|j| serde_json::from_str(&j).ok());
                Ok(a)
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    /// Distinct sources, for the queue's filter.
    pub fn sources(&self) -> Result<Vec<String>, StoreError> {
        self.read(|c| {
            let mut stmt =
                c.prepare("SELECT DISTINCT source FROM entries ORDER BY source LIMIT 200")?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    /// The totals only (entries, queued, analysed, failed, threats): the queue page's line.
    pub fn counts(&self) -> Result<Stats, StoreError> {
        self.read(|c| {
            let mut s = Stats::default();
            totals(c, &mut s)?;
            Ok(s)
        })
    }

    pub fn stats(&self) -> Result<Stats, StoreError> {
        self.read(|c| {
            let mut s = Stats::default();
            let threat = totals(c, &mut s)?;
            let group = |sql: &str| -> Result<Vec<(String, i64)>, StoreError> {
                let mut stmt = c.prepare(sql)?;
                let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
                Ok(rows.collect::<Result<Vec<_>, _>>()?)
            };
            s.by_status = group("SELECT status, COUNT(*) FROM entries WHERE state = 'analysed' GROUP BY status ORDER BY 2 DESC")?;
            s.by_severity = group(&format!(
                "SELECT CASE severity WHEN 3 THEN 'CRITICAL' WHEN 2 THEN 'HIGH' WHEN 1 THEN 'MEDIUM' ELSE 'LOW' END,
                    COUNT(*) FROM entries WHERE {threat} AND severity IS NOT NULL
                 GROUP BY severity ORDER BY severity DESC"
            ))?;
            s.by_category = group(
                "SELECT IFNULL(category, 'UNKNOWN'), COUNT(*) FROM entries WHERE state = 'analysed'
                 GROUP BY 1 ORDER BY 2 DESC, 1",
            )?;
            s.by_technique = group(&format!(
                "SELECT technique_id, COUNT(*) FROM entries WHERE {threat} AND technique_id IS NOT NULL
                 GROUP BY 1 ORDER BY 2 DESC, 1"
            ))?;
            let mut hours = group(&format!(
                "SELECT strftime('%Y-%m-%d %H:00', received_at, 'unixepoch'), COUNT(*) FROM entries
                 WHERE {threat} GROUP BY 1 ORDER BY 1 DESC LIMIT 48"
            ))?;
            hours.reverse();
            s.by_hour = hours;
            Ok(s)
        })
    }
}

/// Fills the totals of `s`; returns the SQL condition for "a threat".
fn totals(c: &Connection, s: &mut Stats) -> Result<String, StoreError> {
    let mut stmt = c.prepare_cached("SELECT state, COUNT(*) FROM entries GROUP BY state")?;
    for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
        let (state, n) = row?;
        s.entries += n;
        match state.as_str() {
            "queued" => s.queued = n,
            "analysed" => s.analysed = n,
            _ => s.failed += n,
        }
    }
    // An alert the analyst called a false positive is no threat.
    let threat = format!(
        "state = 'analysed' AND status != 'false_positive' AND IFNULL(category, '') != '{NO_THREAT}'"
    );
    s.threats = c.query_row(
        &format!("SELECT COUNT(*) FROM entries WHERE {threat}"),
        [],
        |r| r.get(0),
    )?;
    Ok(threat)
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(StoreError::NewerSchema {
            found: version,
            known,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

/// A time bound as unix seconds: a number, or an ISO date(-time) read as UTC.
fn parse_time(c: &Connection, text: &str) -> Result<i64, StoreError> {
    let t = text.trim();
    if let Ok(n) = t.parse::<i64>() {
        return Ok(n);
    }
    // SQLite's own date parser: NULL for anything it does not read.
    let secs: Option<i64> = c.query_row("SELECT unixepoch(?1)", [t], |r| r.get(0))?;
    secs.ok_or_else(|| StoreError::BadFilter(format!("unreadable time {t:?}")))
}

/// The WHERE clause for `f`, with its values bound (never spliced into the SQL).
fn where_clause(f: &AlertFilter) -> Result<(String, Vec<Value>), StoreError> {
    let mut conds: Vec<String> = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    // `cond` has one `?`, numbered here after the values before it.
    fn bind(conds: &mut Vec<String>, values: &mut Vec<Value>, cond: &str, v: Value) {
        values.push(v);
        conds.push(cond.replace('?', &format!("?{}", values.len())));
    }
    let nonempty = |o: &Option<String>| {
        o.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    if let Some(s) = nonempty(&f.severity) {
        let sev: Severity = s
            .parse()
            .map_err(|e: opensoc_verdict::ParseSeverityError| {
                StoreError::BadFilter(e.to_string())
            })?;
        bind(
            &mut conds,
            &mut values,
            "severity = ?",
            Value::Integer(severity_rank(sev)),
        );
    }
    if let Some(s) = nonempty(&f.category) {
        bind(
            &mut conds,
            &mut values,
            "category = ?",
            Value::Text(s.to_uppercase()),
        );
    }
    if let Some(s) = nonempty(&f.technique) {
        let id = s.to_uppercase();
        values.push(Value::Text(id.clone()));
        values.push(Value::Text(format!("{id}.")));
        let (a, b) = (values.len() - 1, values.len());
        conds.push(format!(
            "(technique_id = ?{a} OR substr(technique_id, 1, length(?{b})) = ?{b})"
        ));
    }
    if let Some(s) = nonempty(&f.source) {
        bind(&mut conds, &mut values, "source = ?", Value::Text(s));
    }
    if let Some(s) = nonempty(&f.status) {
        if Review::parse(&s).is_none() {
            return Err(StoreError::BadFilter(format!(
                "unknown status {s:?} (new, confirmed, false_positive, relabelled)"
            )));
        }
        bind(&mut conds, &mut values, "status = ?", Value::Text(s));
    }
    if let Some(s) = nonempty(&f.state) {
        if !matches!(s.as_str(), "queued" | "analysed" | "failed") {
            return Err(StoreError::BadFilter(format!(
                "unknown state {s:?} (queued, analysed, failed)"
            )));
        }
        bind(&mut conds, &mut values, "state = ?", Value::Text(s));
    }
    // Time bounds need SQLite to read dates; an in-memory connection does it.
    if f.since.is_some() || f.until.is_some() {
        let c = Connection::open_in_memory()?;
        if let Some(s) = nonempty(&f.since) {
            bind(
                &mut conds,
                &mut values,
                "received_at >= ?",
                Value::Integer(parse_time(&c, &s)?),
            );
        }
        if let Some(s) = nonempty(&f.until) {
            bind(
                &mut conds,
                &mut values,
                "received_at <= ?",
                Value::Integer(parse_time(&c, &s)?),
            );
        }
    }
    if let Some(s) = nonempty(&f.q) {
        values.push(Value::Text(s.to_lowercase()));
        let n = values.len();
        conds.push(format!(
            "(instr(lower(text), ?{n}) > 0 OR instr(lower(IFNULL(threat_type, '')), ?{n}) > 0 \
             OR instr(lower(entry_id), ?{n}) > 0)"
        ));
    }
    if f.threats_only == Some(true) {
        conds.push(format!("IFNULL(category, '') != '{NO_THREAT}'"));
    }
    let clause = if conds.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conds.join(" AND "))
    };
    Ok((clause, values))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, text: &str) -> NewEntry {
        NewEntry {
            entry_id: id.into(),
            text: text.into(),
            events: 1,
            cut_bytes: 0,
        }
    }

    fn verdict(id: &str, category: &str, severity: Severity, technique: &str) -> Verdict {
        let mut v = Verdict::from_answer(
            id.into(),
            "x".into(),
            String::new(),
            opensoc_verdict::Answer::default(),
        );
        v.category = Some(category.into());
        v.threat_type = Some(format!("{category} type"));
        v.severity = Some(severity);
        v.technique_id = Some(technique.into());
        v
    }

    #[test]
    fn migrations_run_once_and_a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        let store = Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
        store
            .enqueue("api", &[entry("a:1", "one")], 0, None)
            .unwrap();
        drop(store);
        // Reopening keeps the data (no migration runs twice).
        let store = Store::open(&path).unwrap();
        assert_eq!(store.stats().unwrap().entries, 1);
        drop(store);
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        assert!(matches!(
            Store::open(&path),
            Err(StoreError::NewerSchema { found: 99, .. })
        ));
    }

    #[test]
    fn a_database_of_an_older_schema_is_migrated_with_its_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            // What the first release wrote: migration 1 only, with an entry.
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            conn.execute(
                "INSERT INTO entries (received_at, source, entry_id, text, events)
                 VALUES (1, 'api', 'a:1', 'old entry', 1)",
                [],
            )
            .unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
        let page = store.alerts(&AlertFilter::default()).unwrap();
        assert_eq!(page.alerts[0].text, "old entry");
        let indexes: i64 = store
            .read(|c| {
                Ok(c.query_row(
                    "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = 'entries_overview'",
                    [],
                    |r| r.get(0),
                )?)
            })
            .unwrap();
        assert_eq!(indexes, 1);
    }

    #[test]
    fn an_idempotency_key_stores_a_request_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("a.db")).unwrap();
        let entries = [entry("a:1", "one"), entry("a:2", "two")];
        let first = store.enqueue("api", &entries, 1, Some("k1")).unwrap();
        let again = store.enqueue("api", &entries, 1, Some("k1")).unwrap();
        assert!(!first.replayed && again.replayed);
        assert_eq!((again.first, again.last), (first.first, first.last));
        assert_eq!(store.stats().unwrap().entries, 2);
    }

    #[test]
    fn filters_select_the_matching_alerts() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("a.db")).unwrap();
        let acc = store
            .enqueue(
                "upload:web.log",
                &[
                    entry("w:1", "GET /?id=1 UNION SELECT"),
                    entry("w:2", "GET /index.html"),
                    entry("w:3", "bash -c"),
                ],
                0,
                None,
            )
            .unwrap();
        let first = acc.first.unwrap();
        store
            .record_results(&[
                (
                    first,
                    Ok(verdict("w:1", "SQL INJECTION", Severity::High, "T1190")),
                ),
                (
                    first + 1,
                    Ok(verdict("w:2", NO_THREAT, Severity::Low, "T1190")),
                ),
                (
                    first + 2,
                    Ok(verdict(
                        "w:3",
                        "COMMAND INJECTION",
                        Severity::Critical,
                        "T1059.004",
                    )),
                ),
            ])
            .unwrap();
        let ids = |f: AlertFilter| -> Vec<String> {
            store
                .alerts(&f)
                .unwrap()
                .alerts
                .into_iter()
                .map(|a| a.entry_id)
                .collect()
        };
        assert_eq!(ids(AlertFilter::default()), ["w:3", "w:2", "w:1"]);
        assert_eq!(
            ids(AlertFilter {
                severity: Some("high".into()),
                ..Default::default()
            }),
            ["w:1"]
        );
        assert_eq!(
            ids(AlertFilter {
                technique: Some("t1059".into()),
                ..Default::default()
            }),
            ["w:3"]
        );
        assert_eq!(
            ids(AlertFilter {
                threats_only: Some(true),
                ..Default::default()
            }),
            ["w:3", "w:1"]
        );
        assert_eq!(
            ids(AlertFilter {
                q: Some("union select".into()),
                ..Default::default()
            }),
            ["w:1"]
        );
        assert_eq!(
            ids(AlertFilter {
                since: Some("2999-01-01".into()),
                ..Default::default()
            }),
            Vec::<String>::new()
        );
        assert_eq!(
            ids(AlertFilter {
                limit: Some(1),
                offset: Some(1),
                ..Default::default()
            }),
            ["w:2"]
        );
        assert!(matches!(
            store.alerts(&AlertFilter {
                severity: Some("bad".into()),
                ..Default::default()
            }),
            Err(StoreError::BadFilter(_))
        ));
        assert!(matches!(
            store.alerts(&AlertFilter {
                until: Some("yesterday".into()),
                ..Default::default()
            }),
            Err(StoreError::BadFilter(_))
        ));
        // A quote in the search is a value, not SQL.
        assert_eq!(
            ids(AlertFilter {
                q: Some("' OR 1=1 --".into()),
                ..Default::default()
            }),
            Vec::<String>::new()
        );

        let fb = Feedback {
            review: Review::FalsePositive,
            threat_type: None,
            severity: None,
            note: Some("scanner we run".into()),
        };
        assert!(store.review(first, &fb).unwrap());
        assert!(!store.review(first + 100, &fb).unwrap());
        assert_eq!(
            ids(AlertFilter {
                status: Some("false_positive".into()),
                ..Default::default()
            }),
            ["w:1"]
        );
        let stats = store.stats().unwrap();
        // The false positive no longer counts as a threat.
        assert_eq!((stats.analysed, stats.threats), (3, 1));
        assert_eq!(stats.by_technique, [("T1059.004".to_string(), 1)]);
    }
}
