//! The verdict grammar on tiny random models: whatever the weights, the decoder can only
//! write lines of the grammar, and the forced-token fast path changes nothing.

#[path = "../../model/tests/common/mod.rs"]
mod common;

use opensoc_analyze::{decode, Grammar, NarrativeLimits};
use opensoc_attack::{Catalog, Taxonomy, TechniqueId};
use opensoc_model::Model;
use opensoc_verdict::parse_answer;

fn tiny(seed: u64, dir: &std::path::Path) -> Model {
    common::tiny_gguf_model(&dir.join(format!("tiny-{seed}.gguf")), seed)
}

#[test]
fn random_models_only_write_grammatical_verdicts() {
    let dir = tempfile::tempdir().unwrap();
    let taxonomy = Taxonomy::builtin();
    let catalog = Catalog::enterprise();
    let limits = NarrativeLimits {
        evidence: 6,
        impact: 4,
        recommendation: 6,
    };
    for seed in 0..6 {
        let model = tiny(seed, dir.path());
        let grammar = Grammar::new(&model, taxonomy, catalog).unwrap();
        let prompt = model
            .tokenizer
            .encode_prompt(&format!("### Input:\nlog line {seed}\n\n### Response:\n"))
            .unwrap();
        let out = decode(
            &model,
            &grammar,
            model.llama.new_cache(),
            &prompt,
            Some(limits),
            false,
        )
        .unwrap();

        // The text is exactly the grammar's lines, and the tolerant parser reads back the
        // same fields the decoder returned.
        let lines: Vec<&str> = out.text.lines().collect();
        let keys: Vec<&str> = lines.iter().map(|l| l.split(':').next().unwrap()).collect();
        assert_eq!(
            keys,
            [
                "THREAT_TYPE",
                "MITRE_TECHNIQUE",
                "MITRE_TACTIC",
                "SEVERITY",
                "RISK_SCORE",
                "EVIDENCE",
                "IMPACT",
                "RECOMMENDATION"
            ],
            "seed {seed}: {}",
            out.text
        );
        let a = &out.answer;
        let parsed = parse_answer(&out.text);
        assert_eq!(parsed.threat_type, a.threat_type);
        assert_eq!(parsed.severity, a.severity);
        assert_eq!(parsed.risk_score, a.risk_score);

        let tt = a.threat_type.as_deref().unwrap();
        assert!(
            taxonomy.category_of(tt).is_some(),
            "seed {seed}: threat type {tt:?} outside the taxonomy"
        );
        assert!(a.severity.is_some() && a.risk_score.is_some_and(|r| r <= 100));
        match &a.technique_id {
            Some(id) => {
                let t = catalog
                    .get(&id.parse::<TechniqueId>().unwrap())
                    .expect("technique exists");
                assert!(t.is_active(), "{id} is revoked or deprecated");
                assert_eq!(a.technique_name.as_deref(), Some(t.name));
                let tactic = a.tactic.as_deref().unwrap();
                assert!(
                    t.tactics.iter().any(|x| x.name == tactic),
                    "{tactic} is not a tactic of {id}"
                );
            }
            None => assert_eq!(lines[1], "MITRE_TECHNIQUE: N/A (N/A)"),
        }
        for c in [
            out.confidence.threat_type,
            out.confidence.technique,
            out.confidence.severity,
        ] {
            assert!(c > 0.0 && c <= 1.0, "confidence {c}");
        }
    }
}

#[test]
fn forced_token_fast_path_matches_token_by_token() {
    let dir = tempfile::tempdir().unwrap();
    for seed in [11, 12] {
        let model = tiny(seed, dir.path());
        let grammar = Grammar::new(&model, Taxonomy::builtin(), Catalog::enterprise()).unwrap();
        let prompt = model.tokenizer.encode_prompt("### Response:\n").unwrap();
        let limits = Some(NarrativeLimits {
            evidence: 4,
            impact: 4,
            recommendation: 4,
        });
        let fast = decode(
            &model,
            &grammar,
            model.llama.new_cache(),
            &prompt,
            limits,
            false,
        )
        .unwrap();
        let slow = decode(
            &model,
            &grammar,
            model.llama.new_cache(),
            &prompt,
            limits,
            true,
        )
        .unwrap();
        assert_eq!(fast.tokens, slow.tokens, "seed {seed}");
        assert!((fast.confidence.overall() - slow.confidence.overall()).abs() < 1e-4);
    }
}
