//! Who writes a verdict's words, on tiny random models: the playbook by default (grounded
//! evidence spans, reviewed advice), the model on request, nobody with `none`; and
//! `finish_verdict` rebuilds a verdict from the decided fields alone.

#[path = "../../model/tests/common/mod.rs"]
mod common;

use std::sync::Arc;

use opensoc_analyze::{
    narrate, verdict_from_cached, Analyzer, AnalyzerConfig, NarrativeLimits, Playbook,
};
use opensoc_model::Model;
use opensoc_narrative::is_grounded;
use opensoc_triage::Triage;

fn tiny(seed: u64, dir: &std::path::Path) -> Model {
    common::tiny_gguf_model(&dir.join(format!("tiny-{seed}.gguf")), seed)
}

const ENTRIES: [&str; 4] = [
    r#"203.0.113.45 - - [12/Nov/2026:09:14:02 +0000] "GET /products.php?id=7%20UNION%20SELECT%20username,password%20FROM%20users-- HTTP/1.1" 200 5120 "-" "sqlmap/1.7.2#stable""#,
    "Nov 12 09:20:01 web01 sshd[2211]: Failed password for root from 185.220.101.4 port 51122 ssh2",
    "EventID: 4625\nTimestamp: 15-Mar-2025:03:00:01\nSource IP: 192.168.0.99\nUser: admin\nDescription: Failed Login",
    r#"10.0.4.12 - - [12/Nov/2026:09:17:05 +0000] "GET /index.html HTTP/1.1" 200 8812 "-" "Mozilla/5.0""#,
];

fn entries() -> Vec<(String, String)> {
    ENTRIES
        .iter()
        .enumerate()
        .map(|(i, t)| (format!("e{i}"), t.to_string()))
        .collect()
}

#[test]
fn default_is_the_playbook_with_grounded_spans() {
    let dir = tempfile::tempdir().unwrap();
    let analyzer = Analyzer::new(tiny(5, dir.path()), AnalyzerConfig::default()).unwrap();
    let version = analyzer.playbook().map(|p| p.version().to_string());
    assert_eq!(version.as_deref(), Some(Playbook::builtin().version()));
    for v in analyzer.analyze_batch(&entries()) {
        let v = v.unwrap();
        assert_eq!(v.narrative_source.as_deref(), Some("playbook"), "{}", v.id);
        // The model stopped after the structured fields.
        assert!(!v.raw_output.contains("EVIDENCE:"), "{}", v.raw_output);
        assert!(!v.evidence_spans.is_empty(), "{}", v.id);
        for s in &v.evidence_spans {
            assert!(is_grounded(&v.input, s), "{}: {s:?}", v.id);
        }
        assert!(v.evidence.is_some(), "{}", v.id);
        if v.category.is_some() {
            let rec = v.recommendation.as_deref().unwrap();
            assert!(rec.starts_with("1) "), "{}: {rec}", v.id);
            assert!(v.impact.is_some());
        }
    }
    // The SQL injection's evidence quotes the decoded payload and the real address.
    let v = analyzer.analyze("e0", ENTRIES[0]).unwrap();
    let evidence = v.evidence.unwrap();
    assert!(
        evidence.contains("\"7 UNION SELECT username,password FROM users--\" (decoded)")
            && evidence.contains("203.0.113.45"),
        "{evidence}"
    );
}

#[test]
fn model_and_none_modes() {
    let dir = tempfile::tempdir().unwrap();
    let model = Analyzer::new(
        tiny(6, dir.path()),
        AnalyzerConfig {
            narrative: Some(NarrativeLimits {
                evidence: 4,
                impact: 4,
                recommendation: 4,
            }),
            playbook: None,
            ..AnalyzerConfig::default()
        },
    )
    .unwrap();
    assert!(model.playbook().is_none());
    let v = model.analyze("e1", ENTRIES[1]).unwrap();
    assert_eq!(v.narrative_source.as_deref(), Some("model"));
    assert!(v.raw_output.contains("EVIDENCE:"), "{}", v.raw_output);
    assert!(v.evidence_spans.iter().any(|s| s.text == "185.220.101.4"));

    let none = Analyzer::new(
        tiny(6, dir.path()),
        AnalyzerConfig {
            narrative: None,
            playbook: None,
            ..AnalyzerConfig::default()
        },
    )
    .unwrap();
    for v in none.analyze_batch(&entries()) {
        let v = v.unwrap();
        assert_eq!(
            (
                &v.evidence,
                &v.impact,
                &v.recommendation,
                &v.narrative_source
            ),
            (&None, &None, &None, &None),
            "{}",
            v.id
        );
        assert!(!v.evidence_spans.is_empty(), "{}", v.id);
    }
}

/// What the verdict cache needs: a cached verdict, rebound to the same entry, gives the
/// whole verdict back, spans and playbook text included.
#[test]
fn a_cached_verdict_rebuilds_the_whole_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let analyzer = Analyzer::new(
        tiny(7, dir.path()),
        AnalyzerConfig {
            min_confidence: Some(0.99),
            ..AnalyzerConfig::default()
        },
    )
    .unwrap();
    let mut rebuilt = 0;
    for (id, text) in entries() {
        let v = analyzer.analyze(&id, &text).unwrap();
        if v.decided_by.as_deref() != Some("model") {
            continue;
        }
        let mut cached = v.clone();
        // What the cache must not rely on: everything entry-specific.
        cached.evidence = None;
        cached.impact = None;
        cached.recommendation = None;
        cached.evidence_spans.clear();
        cached.signals.clear();
        let again = verdict_from_cached(
            &id,
            &text,
            &cached,
            &Triage::builtin().assess(&text),
            Some(0.99),
            analyzer.playbook(),
        );
        assert_eq!(again, v, "{id}");
        rebuilt += 1;
    }
    assert_eq!(rebuilt, 3, "the three attacks go to the model");
}

#[test]
fn narrate_replaces_model_words_with_the_playbooks() {
    let mut v = opensoc_verdict::Verdict::from_answer(
        "x:1".into(),
        "Nov 12 09:20:01 web01 sshd[2211]: Failed password for root from 185.220.101.4 port 51122 ssh2".into(),
        String::new(),
        Default::default(),
    );
    v.threat_type = Some("SSH Brute Force Attack".into());
    v.category = Some("SSH BRUTE FORCE".into());
    v.technique_id = Some("T1110.001".into());
    v.evidence = Some("6 failed SSH login attempts from 185.220.4".into());
    v.recommendation = Some("Enable password auth over SSH".into());
    let book = Arc::new(Playbook::builtin().clone());
    narrate(&mut v, Some(&book));
    let rec = v.recommendation.clone().unwrap();
    assert!(rec.starts_with("1) Block 185.220.101.4 "), "{rec}");
    let evidence = v.evidence.clone().unwrap();
    assert!(evidence.contains("from: 185.220.101.4;"), "{evidence}");
    narrate(&mut v, None);
    assert!(v.evidence.is_none() && v.recommendation.is_none());
}
