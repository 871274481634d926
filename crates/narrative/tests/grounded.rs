//! The property of issue 17 over every log fixture of the repository and the paper's 50
//! evaluation inputs: every evidence span is the entry's own text (or that text decoded,
//! marked so), and no playbook advice rendered with an entry's facts says a forbidden
//! thing.

use std::path::{Path, PathBuf};

use opensoc_attack::Taxonomy;
use opensoc_ingest::{ingest_reader, IntakeConfig};
use opensoc_narrative::{forbidden_phrase, ground, is_grounded, Playbook};
use opensoc_triage::Triage;
use opensoc_verdict::{parse_answer, DetectorHit};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Log files, read as `opensoc analyze` reads them (parsed, grouped into incidents).
const LOG_FIXTURES: &[&str] = &[
    "examples/sample.log",
    "crates/ingest/tests/golden/flood.log",
    "crates/ingest/tests/golden/web_scan.log",
    "crates/ingest/tests/golden/ssh_bruteforce.log",
    "crates/ingest/tests/golden/windows_4625.txt",
    "crates/corpus/tests/fixtures/sources/crowdsec-hub/.tests/ssh-bf/ssh-bf.log",
    "crates/corpus/tests/fixtures/sources/crowdsec-hub/.tests/sshd-logs-fp/sshd-logs.log",
];

/// Labelled entries (JSONL with `input` and `output`), as the model reads them.
const JSONL_FIXTURES: &[&str] = &[
    "crates/analyze/tests/data/injection-suite.jsonl",
    "crates/eval/tests/fixtures/real-logs.jsonl",
    "crates/eval/tests/fixtures/alpaca-model.jsonl",
];

/// The paper's held-out set: `$OPENSOC_PAPER_DATA/soc_eval.json`, else the shared data
/// folder beside the repository. Read in place.
fn paper_eval() -> Option<PathBuf> {
    let dir = std::env::var_os("OPENSOC_PAPER_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/data/opensoc-ai"));
    let path = dir.join("soc_eval.json");
    path.is_file().then_some(path)
}

/// `(name, text, label)` of every entry.
fn entries() -> Vec<(String, String, Option<String>)> {
    let mut out = Vec::new();
    for rel in LOG_FIXTURES {
        let path = root().join(rel);
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{rel}: {e}"));
        let (entries, _) = ingest_reader(rel, file, &IntakeConfig::new(Vec::new()));
        assert!(!entries.is_empty(), "{rel}");
        out.extend(entries.into_iter().map(|e| (e.id, e.text, None)));
    }
    for rel in JSONL_FIXTURES {
        let text =
            std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let v: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{rel}:{}: {e}", i + 1));
            let Some(input) = v["input"].as_str() else {
                continue;
            };
            let label = v["output"].as_str().map(str::to_string);
            out.push((format!("{rel}:{}", i + 1), input.to_string(), label));
        }
    }
    out
}

fn paper_entries() -> Vec<(String, String, Option<String>)> {
    let Some(path) = paper_eval() else {
        eprintln!(
            "note: soc_eval.json not found (set OPENSOC_PAPER_DATA); paper inputs not checked"
        );
        return Vec::new();
    };
    let text = std::fs::read_to_string(&path).expect("readable soc_eval.json");
    let data: serde_json::Value = serde_json::from_str(&text).expect("valid soc_eval.json");
    let records = data.as_array().expect("a list of examples");
    assert_eq!(
        records.len(),
        50,
        "the paper's held-out set has 50 examples"
    );
    records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            (
                format!("soc_eval.json#{i}"),
                r["input"].as_str().unwrap_or("").to_string(),
                r["output"].as_str().map(str::to_string),
            )
        })
        .collect()
}

fn hits(text: &str) -> Vec<DetectorHit> {
    Triage::builtin()
        .assess(text)
        .signals
        .into_iter()
        .map(|s| DetectorHit {
            class: s.class.name().to_string(),
            rule: s.rule.to_string(),
            start: s.start,
            end: s.end,
            text: s.text,
            decoded: s.decoded,
        })
        .collect()
}

fn check(entries: &[(String, String, Option<String>)]) -> (usize, usize) {
    let taxonomy = Taxonomy::builtin();
    let book = Playbook::builtin();
    let (mut spans, mut decoded) = (0, 0);
    for (name, text, label) in entries {
        let signals = hits(text);
        let g = ground(text, &signals);
        for s in &g.spans {
            assert!(is_grounded(text, s), "{name}: span not in the entry: {s:?}");
        }
        if signals.iter().any(|h| h.class != "log-injection") {
            assert!(!g.spans.is_empty(), "{name}: detector hits but no evidence");
        }
        let line = g.evidence_line().unwrap_or_default();
        assert!(!line.contains('\n'), "{name}: {line}");
        spans += g.spans.len();
        decoded += g.spans.iter().filter(|s| s.decoded).count();
        // The label's play, and every category's, with this entry's facts.
        let mut asks: Vec<(Option<String>, Option<String>, Option<String>)> = taxonomy
            .categories()
            .iter()
            .map(|c| (None, None, Some(c.clone())))
            .collect();
        if let Some(answer) = label.as_deref().map(parse_answer) {
            let category = answer
                .threat_type
                .as_deref()
                .and_then(|t| taxonomy.category_of(t))
                .map(str::to_string);
            asks.push((answer.threat_type, answer.technique_id, category));
        }
        for (threat_type, technique, category) in asks {
            let Some(advice) = book.advise(
                threat_type.as_deref(),
                technique.as_deref(),
                category.as_deref(),
                &g.facts,
            ) else {
                panic!("{name}: no play for {threat_type:?} {technique:?} {category:?}");
            };
            let all = format!("{} {}", advice.impact, advice.recommendation());
            assert_eq!(forbidden_phrase(&all), None, "{name}: {all}");
            assert!(!all.contains('\n') && !all.contains('{'), "{name}: {all}");
        }
    }
    (spans, decoded)
}

#[test]
fn every_fixture_span_is_the_entrys_own_text_and_no_advice_is_forbidden() {
    let entries = entries();
    assert!(entries.len() > 100, "{}", entries.len());
    let (spans, decoded) = check(&entries);
    eprintln!(
        "{} fixture entries: {spans} spans, {decoded} decoded",
        entries.len()
    );
    // The fixtures exercise both kinds of span.
    assert!(spans > entries.len(), "{spans} spans");
    assert!(decoded > 10, "{decoded} decoded spans");
}

#[test]
fn paper_eval_inputs_are_grounded_and_ssh_bursts_name_their_address() {
    let entries = paper_entries();
    if entries.is_empty() {
        return;
    }
    let (spans, decoded) = check(&entries);
    eprintln!(
        "{} paper inputs: {spans} spans, {decoded} decoded",
        entries.len()
    );
    // The paper's SSH bursts: the address in the evidence is the real one, whole.
    for (name, text, _) in &entries {
        if !text.contains("sshd[") {
            continue;
        }
        let g = ground(text, &hits(text));
        let addr = g
            .spans
            .iter()
            .find(|s| s.what == "source-address")
            .unwrap_or_else(|| panic!("{name}"));
        assert!(
            text.contains(&format!("from {} port", addr.text)),
            "{name}: {}",
            addr.text
        );
    }
}
