//! Output formats on a tiny hand-made set: a golden Markdown file, and the promises of
//! the HTML page (self-contained, attacker text escaped).
//!
//! Set `UPDATE_GOLDEN=1` to rewrite the golden file after an intended change, then
//! review the diff.

use opensoc_attack::{Catalog, Taxonomy};
use opensoc_eval::{dataset, evaluate, render, Evaluation, System};

const GOLDEN_MD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/report.md");

/// Three labelled entries: SQL injection, SSH brute force, benign.
const LABELS: &str = r#"[
 {"instruction": "Analyze this log.", "input": "GET /item?id=1 UNION SELECT password FROM users",
  "output": "THREAT_TYPE: SQL Injection — UNION-based SQLi\nMITRE_TECHNIQUE: T1190 (Exploit Public-Facing Application)\nMITRE_TACTIC: Initial Access\nSEVERITY: CRITICAL\nRISK_SCORE: 90\nEVIDENCE: UNION SELECT in query"},
 {"instruction": "Analyze this log.", "input": "sshd: Failed password for root from 203.0.113.9 (x40)",
  "output": "THREAT_TYPE: SSH Brute Force Attack\nMITRE_TECHNIQUE: T1110.001 (Password Guessing)\nMITRE_TACTIC: Credential Access\nSEVERITY: HIGH\nRISK_SCORE: 70"},
 {"instruction": "Analyze this log.", "input": "GET /index.html 200",
  "output": "THREAT_TYPE: No Threat Detected — Normal Traffic\nMITRE_TECHNIQUE: N/A (N/A)\nMITRE_TACTIC: N/A\nSEVERITY: LOW\nRISK_SCORE: 5"}
]"#;

/// An untuned chat model: prose, no field names, then a loop.
const BASE: &str = r#"{"id": "0", "output": "Threat type: SQL injection\nSeverity: critical\nThe request carries a UNION SELECT."}
{"id": "1", "output": "Many failed SSH logins suggest a brute-force attempt.\n### Instruction:\nTHREAT_TYPE: Benign"}
{"id": "2", "output": "Nothing suspicious here."}"#;

/// A tuned model's verdicts, as `opensoc analyze` writes them, matched by position.
const ADAPTER: &str = r#"{"id": "eval.log:1", "input": "x", "threat_type": "SQL Injection — Union/Boolean SQLi", "technique_id": "T1190", "tactic": "Initial Access", "severity": "CRITICAL", "risk_score": 85, "confidence": 0.9, "raw_output": "THREAT_TYPE: SQL Injection — Union/Boolean SQLi\nSEVERITY: CRITICAL"}
{"id": "eval.log:2", "input": "x", "threat_type": "SSH Brute Force Attack", "technique_id": "T1110.003", "tactic": "Credential Access", "severity": "HIGH", "risk_score": 75, "confidence": 0.8, "raw_output": "THREAT_TYPE: SSH Brute Force Attack\nSEVERITY: HIGH"}
{"id": "eval.log:3", "input": "x", "threat_type": "Automated Reconnaissance / Vulnerability Scanning", "technique_id": "T1595.002", "tactic": "Reconnaissance", "severity": "MEDIUM", "risk_score": 40, "confidence": 0.3, "raw_output": "THREAT_TYPE: Automated Reconnaissance / Vulnerability Scanning\nSEVERITY: MEDIUM"}"#;

fn system(name: &str, jsonl: &str) -> System {
    System {
        name: name.into(),
        origin: name.into(),
        predictions: match dataset::parse_predictions(jsonl, name) {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        },
        scope: opensoc_eval::Scope::All,
    }
}

fn evaluation(systems: &[System]) -> Evaluation {
    let examples = match dataset::parse_examples(LABELS, "labels") {
        Ok(e) => e,
        Err(e) => panic!("{e}"),
    };
    match evaluate(
        &examples,
        systems,
        Taxonomy::builtin(),
        Catalog::enterprise(),
    ) {
        Ok(e) => e,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn markdown_matches_golden_file() {
    let eval = evaluation(&[system("base", BASE), system("adapter", ADAPTER)]);
    let got = render::markdown(&eval.report);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        if let Err(e) = std::fs::write(GOLDEN_MD, &got) {
            panic!("cannot write {GOLDEN_MD}: {e}");
        }
    }
    let want = std::fs::read_to_string(GOLDEN_MD).unwrap_or_default();
    assert!(
        got == want,
        "Markdown differs from {GOLDEN_MD} (UPDATE_GOLDEN=1 rewrites it):\n{got}"
    );
}

#[test]
fn html_is_self_contained_and_escapes_attacker_text() {
    let hostile = "<script>alert(1)</script><img src=x onerror=alert(2)>";
    let eval = evaluation(&[system(hostile, BASE), system("adapter", ADAPTER)]);
    let page = render::html(&eval.report);
    // For eyeballing the plots: OPENSOC_EVAL_DUMP=dir writes the page there.
    if let Some(dir) = std::env::var_os("OPENSOC_EVAL_DUMP") {
        let path = std::path::Path::new(&dir).join("report.html");
        if let Err(e) = std::fs::write(&path, &page) {
            panic!("cannot write {}: {e}", path.display());
        }
    }
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.trim_end().ends_with("</html>"));
    for forbidden in [
        "<script", "<img", "http:", "https:", "href=", "url(", "@import",
    ] {
        assert!(!page.contains(forbidden), "page contains {forbidden:?}");
    }
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    // The accuracy bars, a category and a severity heatmap per system, and a reliability
    // diagram for the system whose verdicts carry a confidence.
    assert_eq!(page.matches("<svg ").count(), 1 + 2 * 2 + 1);
    assert!(page.contains("Per-category accuracy with Wilson intervals"));
    assert_eq!(
        page.matches("aria-label=\"Reliability diagram\"").count(),
        1
    );

    let md = render::markdown(&eval.report);
    assert!(!md.contains("<script") && !md.contains("<img"), "{md}");
}

#[test]
fn json_and_records_round_trip_as_json() {
    let eval = evaluation(&[system("base", BASE), system("adapter", ADAPTER)]);
    let mut json = Vec::new();
    if let Err(e) = render::write_json(&eval.report, &mut json) {
        panic!("{e}");
    }
    let value: serde_json::Value = serde_json::from_slice(&json).unwrap_or_default();
    assert_eq!(value["examples"], 3);
    assert_eq!(value["comparisons"][0]["candidate"], "adapter");
    assert_eq!(
        value["systems"][1]["soc_bench"]["category_accuracy"]["successes"],
        2
    );

    let mut jsonl = Vec::new();
    if let Err(e) = render::write_records_jsonl(&eval.records, &mut jsonl) {
        panic!("{e}");
    }
    let text = String::from_utf8(jsonl).unwrap_or_default();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_default())
        .collect();
    assert_eq!(lines.len(), 3);
    let adapter = &lines[1]["systems"][1];
    assert_eq!(adapter["system"], "adapter");
    assert_eq!(adapter["id"], "eval.log:2");
    assert_eq!(adapter["predicted"]["technique_id"], "T1110.003");
    assert_eq!(adapter["correct"]["technique"], false);
    assert_eq!(adapter["correct"]["technique_parent"], true);
    assert_eq!(lines[1]["label"]["severity"], "HIGH");
    assert_eq!(lines[2]["systems"][0]["correct"]["category"], false);
}
