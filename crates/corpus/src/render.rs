//! Turns raw log lines into entry text with the code `opensoc analyze` runs: the same
//! parsers and the same incident grouping, so a record's `input` is what the model would
//! be shown for those lines.

use std::io::Cursor;
use std::path::Path;

use opensoc_ingest::{ingest_reader, Entry, Intake, IntakeConfig, Source};

/// RFC 3164 stamps carry no year; a fixed one keeps rebuilds identical whatever the date.
pub const SYSLOG_YEAR: i32 = 2026;

/// The intake configuration analyze uses by default, with the syslog year fixed.
pub fn intake_config() -> IntakeConfig {
    IntakeConfig {
        syslog_year: Some(SYSLOG_YEAR),
        ..IntakeConfig::default()
    }
}

/// Entries for `text` (one or more raw lines), as `ingest_reader` gives them.
pub fn entries(name: &str, text: &str) -> Vec<Entry> {
    let (entries, _stats) = ingest_reader(name, Cursor::new(text.as_bytes()), &intake_config());
    entries
}

/// Entries of one `.evtx` file, through the file intake analyze uses for paths.
pub fn evtx_entries(path: &Path) -> Result<Vec<Entry>, String> {
    let mut cfg = intake_config();
    cfg.sources = vec![Source::Path(path.to_path_buf())];
    let mut intake = Intake::start(cfg).map_err(|e| e.to_string())?;
    let out: Vec<Entry> = intake.by_ref().collect();
    let stats = intake.stats();
    if out.is_empty() && stats.unreadable > 0 {
        return Err("EVTX file unreadable".to_owned());
    }
    Ok(out)
}
