//! How the verdict cache would see a log, line by line (no incident grouping): lines the
//! fast path decides, lines for the model, their distinct cache keys (model calls on a
//! cold cache), and lines that get no key. `cargo run --release -p opensoc-cache
//! --example key_report -- FILE...`

use std::collections::{BTreeMap, HashSet};
use std::io::BufRead;

use opensoc_cache::{CacheContext, EntryKey};
use opensoc_ingest::Format;
use opensoc_triage::{Route, Triage};

fn main() -> std::io::Result<()> {
    let triage = Triage::builtin();
    let context = CacheContext::new("m", "a", "t", "p", "s");
    for path in std::env::args().skip(1) {
        let (mut lines, mut fast, mut model, mut no_key) = (0, 0, 0, 0);
        let mut keys = HashSet::new();
        let mut no_key_formats: BTreeMap<String, usize> = BTreeMap::new();
        let mut w3c = false;
        for line in std::io::BufReader::new(std::fs::File::open(&path)?).lines() {
            let line = line?;
            if line.starts_with('#') {
                w3c |= line.starts_with("#Fields:");
                continue;
            }
            lines += 1;
            let a = triage.assess(&line);
            if matches!(a.route, Route::FastPath { .. }) {
                fast += 1;
                continue;
            }
            model += 1;
            // As the intake would tell it: a `#Fields:` header makes a file W3C.
            let format = if w3c { Format::W3c } else { a.format };
            match EntryKey::with_format(&context, format, &line, &a) {
                Some(k) => {
                    keys.insert(k.digest().to_string());
                }
                None => {
                    no_key += 1;
                    *no_key_formats
                        .entry(a.format.name().to_string())
                        .or_default() += 1;
                }
            }
        }
        println!(
            "{path}: {lines} lines, {fast} fast path, {model} for the model: {} distinct keys, {no_key} without a key {no_key_formats:?}",
            keys.len()
        );
    }
    Ok(())
}
