//! How triage routes labelled examples: fast-path misses (attacks decided benign), bound
//! violations (the label's category outside the allowed ones, or "No Threat" forbidden
//! for a benign example), per label category, as a Markdown table on stdout; each
//! problem entry on stderr.
//!
//! `cargo run --release -p opensoc-triage --example route_report -- [--unheld] FILE...`
//! (Alpaca JSON lists or JSONL with `input` and `output`).
//!
//! `--routed`: instead of the table, print every record triage sends to the model (as
//! JSONL, the record unchanged): what an adapter should train on, since the fast path
//! decides the rest without it (`scripts/training-mix.py`).

use std::collections::BTreeMap;

use opensoc_attack::Taxonomy;
use opensoc_triage::{Route, Triage};

#[derive(Default)]
struct Row {
    n: usize,
    fast: usize,
    outside: usize,
    benign_forbidden: usize,
    /// Attacks the model may still call benign (no payload signal holds it).
    unheld: usize,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let triage = Triage::builtin();
    let taxonomy = Taxonomy::builtin();
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    // `--unheld`: also print every attack whose bounds still allow "No Threat".
    let show_unheld = std::env::args().any(|a| a == "--unheld");
    let routed_only = std::env::args().any(|a| a == "--routed");
    for path in std::env::args()
        .skip(1)
        .filter(|a| a != "--unheld" && a != "--routed")
    {
        let text = std::fs::read_to_string(&path)?;
        let records: Vec<serde_json::Value> = match serde_json::from_str(&text) {
            Ok(serde_json::Value::Array(v)) => v,
            _ => text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(serde_json::from_str)
                .collect::<Result<_, _>>()?,
        };
        for r in records {
            let input = r["input"].as_str().unwrap_or_default();
            let output = r["output"].as_str().unwrap_or_default();
            let label = output
                .lines()
                .find_map(|l| l.strip_prefix("THREAT_TYPE:"))
                .map(str::trim)
                .unwrap_or_default();
            let category = taxonomy.category_of(label).unwrap_or("?").to_string();
            let key = match r["source"].as_str() {
                Some(s) => format!("{category} [{s}]"),
                None => category.clone(),
            };
            let row = rows.entry(key).or_default();
            row.n += 1;
            let a = triage.assess(input);
            if routed_only {
                if matches!(a.route, Route::Model(_)) {
                    println!("{}", serde_json::to_string(&r)?);
                }
                continue;
            }
            let benign = category == "NO THREAT";
            let problem = match &a.route {
                Route::FastPath { .. } => {
                    row.fast += 1;
                    !benign
                }
                Route::Model(b) => {
                    let outside = b
                        .categories
                        .as_ref()
                        .is_some_and(|c| !c.contains(&category.as_str()));
                    row.outside += usize::from(outside);
                    let forbidden = benign && !b.benign_allowed;
                    row.benign_forbidden += usize::from(forbidden);
                    let unheld = !benign && b.benign_allowed;
                    row.unheld += usize::from(unheld);
                    if unheld && show_unheld {
                        eprintln!("UNHELD {category}: {}", input.lines().next().unwrap_or(""));
                    }
                    outside || forbidden
                }
            };
            if problem {
                let signals: Vec<&str> = a.signals.iter().map(|s| s.rule).collect();
                eprintln!(
                    "{category}: {:?} {signals:?}\n  {}",
                    a.route,
                    input.lines().next().unwrap_or("")
                );
            }
        }
    }
    if routed_only {
        return Ok(());
    }
    println!("| label category | entries | fast path | outside bounds | benign forbidden | attacks the model may call benign |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (k, r) in &rows {
        println!(
            "| {k} | {} | {} | {} | {} | {} |",
            r.n, r.fast, r.outside, r.benign_forbidden, r.unheld
        );
    }
    Ok(())
}
