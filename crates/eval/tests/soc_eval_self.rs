//! The held-out split scored against itself must be perfect: a check that labels parse
//! under both protocols and that the scoring plumbing pairs every example with itself.
//! This is the only use of the held-out data in this crate; nothing is tuned on it.

use opensoc_attack::{Catalog, Taxonomy};
use opensoc_eval::{dataset, evaluate, System};

const SOC_EVAL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/opensoc-ai/soc_eval.json"
);

#[test]
fn labels_scored_against_themselves_are_perfect() {
    if !std::path::Path::new(SOC_EVAL).exists() {
        eprintln!("note: {SOC_EVAL} not found; skipping the self-scoring check");
        return;
    }
    let examples = match dataset::load_examples(SOC_EVAL) {
        Ok(e) => e,
        Err(e) => panic!("{e}"),
    };
    assert!(!examples.is_empty());
    // Keyed by index, in reverse order, so alignment by key is exercised too.
    let jsonl: Vec<String> = examples
        .iter()
        .rev()
        .map(|e| serde_json::json!({ "index": e.index, "output": e.output }).to_string())
        .collect();
    let predictions = match dataset::parse_predictions(&jsonl.join("\n"), "self") {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    let system = System {
        name: "labels".into(),
        origin: "self".into(),
        predictions,
        scope: opensoc_eval::Scope::All,
    };
    let eval = match evaluate(
        &examples,
        &[system],
        Taxonomy::builtin(),
        Catalog::enterprise(),
    ) {
        Ok(e) => e,
        Err(e) => panic!("{e}"),
    };
    let r = &eval.report.systems[0];
    let n = examples.len() as u64;
    let s = &r.strict;
    let b = &r.soc_bench;
    for (name, p, full) in [
        ("strict threat type", s.threat_type_accuracy, true),
        ("strict severity", s.severity_accuracy, true),
        ("category", b.category_accuracy, true),
        ("fine type", b.fine_type_accuracy, true),
        ("severity", b.severity_accuracy, true),
        ("parse rate", b.parse_rate, true),
        ("technique", b.technique_accuracy, false),
        ("technique parent", b.technique_parent_accuracy, false),
        ("tactic", b.tactic_accuracy, false),
    ] {
        assert_eq!(p.value, 1.0, "{name}: {p:?}");
        assert!(p.trials > 0, "{name}");
        if full {
            assert_eq!(p.trials, n, "{name} must count every example");
        }
    }
    assert_eq!(b.category_macro_accuracy, 1.0);
    for avg in [s.threat_type, b.category, b.fine_type] {
        assert_eq!(
            (avg.macro_precision, avg.macro_recall, avg.macro_f1),
            (1.0, 1.0, 1.0)
        );
        assert_eq!(avg.weighted_f1, 1.0);
    }
    assert_eq!(b.risk_score_error.value, Some(0.0));
    assert_eq!(b.risk_score_error.pairs, n);
    for c in &b.per_category {
        assert_eq!(c.accuracy.value, 1.0, "{}", c.class);
    }
    eprintln!(
        "note: valid ATT&CK ID rate of the labels: {}/{}",
        b.valid_technique_id_rate.successes, b.valid_technique_id_rate.trials
    );
}
