//! The verdict grammar on tiny random models: whatever the weights, the decoder can only
//! write lines of the grammar, and the forced-token fast path changes nothing.

#[path = "../../model/tests/common/mod.rs"]
mod common;

use opensoc_analyze::{decode, Analyzer, AnalyzerConfig, Grammar, NarrativeLimits};
use opensoc_attack::{Catalog, Taxonomy, TechniqueId};
use opensoc_model::Model;
use opensoc_triage::{Bounds, Outcome};
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
            &Bounds::ANY,
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

/// By default the technique is the one the taxonomy assigns the chosen threat type;
/// with following turned off, the model chooses it (and a random model rarely agrees).
#[test]
fn technique_follows_the_chosen_threat_type() {
    let dir = tempfile::tempdir().unwrap();
    let taxonomy = Taxonomy::builtin();
    let catalog = Catalog::enterprise();
    let (mut checked, mut free_disagreed) = (0, 0);
    for seed in 20..28 {
        let model = tiny(seed, dir.path());
        let prompt = model
            .tokenizer
            .encode_prompt(&format!("### Input:\nevent {seed}\n\n### Response:\n"))
            .unwrap();
        let run = |follow: bool| {
            let grammar = Grammar::new(&model, taxonomy, catalog)
                .unwrap()
                .with_technique_following_type(follow);
            decode(
                &model,
                &grammar,
                model.llama.new_cache(),
                &prompt,
                None,
                false,
                &Bounds::ANY,
            )
            .unwrap()
        };
        let implied = |a: &opensoc_verdict::Answer| {
            let tt = a.threat_type.as_deref().unwrap();
            let fine = taxonomy.fine_type(tt)?;
            fine.technique.as_ref()?;
            Some(fine.technique_id().map(|id| id.to_string()))
        };

        let followed = run(true);
        let a = &followed.answer;
        if let Some(expected) = implied(a) {
            assert_eq!(a.technique_id, expected, "seed {seed}: {}", followed.text);
            assert_eq!(
                followed.confidence.technique,
                followed.confidence.threat_type
            );
            checked += 1;
        }

        let free = run(false);
        assert_eq!(
            free.answer.threat_type, a.threat_type,
            "the type comes first"
        );
        if implied(&free.answer).is_some_and(|t| t != free.answer.technique_id) {
            free_disagreed += 1;
        }
    }
    assert!(checked > 0, "no seed chose a type with a technique");
    assert!(free_disagreed > 0, "following the type changed nothing");
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
            &Bounds::ANY,
        )
        .unwrap();
        let slow = decode(
            &model,
            &grammar,
            model.llama.new_cache(),
            &prompt,
            limits,
            true,
            &Bounds::ANY,
        )
        .unwrap();
        assert_eq!(fast.tokens, slow.tokens, "seed {seed}");
        assert!((fast.confidence.overall() - slow.confidence.overall()).abs() < 1e-4);
    }
}

/// Entries analysed together (their model steps joined into shared passes) get exactly
/// the verdicts they get one at a time, and an entry that cannot run fails alone.
#[test]
fn batched_analysis_equals_one_entry_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny(3, dir.path());
    let analyzer = Analyzer::new(
        model,
        AnalyzerConfig {
            narrative: Some(NarrativeLimits {
                evidence: 6,
                impact: 4,
                recommendation: 6,
            }),
            // Let the long entry through to the model, past its 1024 positions.
            max_input_tokens: 4096,
            // Every entry to the model: the plain ones would take the fast path.
            triage: opensoc_triage::Triage::new(opensoc_triage::FastPathRules::none()),
            ..AnalyzerConfig::default()
        },
    )
    .unwrap();
    let texts = [
        "Failed password for root from 10.0.0.1 port 22 ssh2".to_string(),
        "GET /index.php?id=1' OR '1'='1 HTTP/1.1 200".to_string(),
        "x".to_string(),
        "A".repeat(1500),
        "EventID: 4625 / User: admin / Source: 192.168.1.9".to_string(),
    ];
    let entries: Vec<(String, String)> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| (format!("e{i}"), t.clone()))
        .collect();
    let batched = analyzer.analyze_batch(&entries);
    assert_eq!(batched.len(), entries.len());
    for ((id, text), got) in entries.iter().zip(&batched) {
        match (analyzer.analyze(id, text), got) {
            (Ok(alone), Ok(together)) => {
                assert_eq!(alone.id, together.id);
                assert_eq!(alone.raw_output, together.raw_output, "{id}");
                let (a, b) = (alone.confidence.unwrap(), together.confidence.unwrap());
                assert!((a - b).abs() < 1e-4, "{id}: confidence {a} vs {b}");
            }
            (Err(_), Err(_)) => {}
            (alone, together) => panic!("{id}: alone {alone:?}, together {together:?}"),
        }
    }
    assert!(
        batched[3].is_err(),
        "1,500 tokens exceed the tiny model's 1,024"
    );
    assert_eq!(batched.iter().filter(|r| r.is_ok()).count(), 4);
}

/// With mixed weights (quantized, plus f32 copies for long passes) an entry's verdict
/// does not depend on which entries share its batch: batched passes always take the f32
/// copies, whatever their number of rows.
#[test]
fn batched_verdicts_do_not_depend_on_the_neighbours() {
    use opensoc_model::{LoadOptions, ModelSource, WeightFormat};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    let spec = common::SPEC_GQA_TIED;
    common::write_gguf(
        &path,
        spec,
        &common::random_weights(spec, 11),
        // Quantized in the file: the mixed format then holds Q8_0 and f32 copies.
        candle_core::quantized::GgmlDType::Q8_0,
        "llama",
    );
    let model = Model::load(
        &ModelSource::Gguf(path),
        LoadOptions {
            weight_format: WeightFormat::Mixed,
        },
    )
    .unwrap();
    let analyzer = Analyzer::new(model, AnalyzerConfig::default()).unwrap();
    let entry = |text: &str| (text.to_string(), text.to_string());
    let x = entry("sshd[811]: Failed password for invalid user oracle from 203.0.113.7");
    let others = [
        entry("GET /wp-login.php HTTP/1.1 404"),
        entry("EventID: 4688 / NewProcessName: C:\\Windows\\System32\\cmd.exe"),
        entry("kernel: UFW BLOCK SRC=198.51.100.23 DST=10.0.0.5 DPT=3389"),
        entry("y"),
    ];
    // Two rows per decode pass, nine (where the row rule would switch kernels), two.
    let mut crowd: Vec<_> = others.iter().chain(&others).cloned().collect();
    crowd.insert(3, x.clone());
    let batches = [
        vec![x.clone(), others[0].clone()],
        crowd,
        vec![others[3].clone(), x.clone()],
    ];
    let verdicts: Vec<_> = batches
        .iter()
        .map(|batch| {
            let results = analyzer.analyze_batch(batch);
            let at = batch.iter().position(|e| e == &x).unwrap();
            results.into_iter().nth(at).unwrap().unwrap()
        })
        .collect();
    for v in &verdicts[1..] {
        assert_eq!(v.raw_output, verdicts[0].raw_output);
        // Equal up to the f32 kernels' rounding, which depends on the matrix sizes;
        // the quantized kernels would differ by about 1e-2.
        let (a, b) = (v.confidence.unwrap(), verdicts[0].confidence.unwrap());
        assert!((a - b).abs() < 1e-5, "confidence {a} vs {b}");
    }
}

/// Whatever the weights and the bounds: the category is one the bounds allow, "No Threat"
/// comes with no technique or tactic, LOW and a risk of at most 10, and a threat with a
/// technique and a risk above 0.
#[test]
fn verdicts_stay_within_bounds_and_benign_verdicts_are_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let taxonomy = Taxonomy::builtin();
    let catalog = Catalog::enterprise();
    let bounds = [
        Bounds::ANY,
        Bounds {
            categories: Some(vec!["NO THREAT"]),
            benign_allowed: true,
            outcome: Outcome::Unknown,
        },
        Bounds {
            categories: None,
            benign_allowed: false,
            outcome: Outcome::Failed,
        },
        Bounds {
            categories: Some(vec!["SQL INJECTION", "NO THREAT"]),
            benign_allowed: true,
            outcome: Outcome::Succeeded,
        },
        Bounds {
            categories: Some(vec!["PATH TRAVERSAL", "LFI"]),
            benign_allowed: false,
            outcome: Outcome::Succeeded,
        },
        Bounds {
            categories: Some(vec!["PATH TRAVERSAL", "LFI", "BRUTE FORCE"]),
            benign_allowed: false,
            outcome: Outcome::Failed,
        },
        Bounds {
            categories: Some(vec!["SSH BRUTE FORCE"]),
            benign_allowed: false,
            outcome: Outcome::Succeeded,
        },
        Bounds {
            categories: Some(vec!["SSH BRUTE FORCE"]),
            benign_allowed: false,
            outcome: Outcome::Failed,
        },
    ];
    // The severity the taxonomy's policy gives a threat type under an outcome.
    let policy = |fine: &str, outcome: Outcome| {
        let f = taxonomy.fine_type(fine).unwrap();
        let s = match outcome {
            Outcome::Succeeded => f.severity_if_succeeded.as_ref().or(f.severity.as_ref()),
            _ => f.severity.as_ref(),
        };
        s.unwrap().parse::<opensoc_verdict::Severity>().unwrap()
    };
    let mut raised = 0;
    let (mut benign, mut threats) = (0, 0);
    for seed in 40..46 {
        let model = tiny(seed, dir.path());
        for free in [false, true] {
            let grammar = Grammar::new(&model, taxonomy, catalog)
                .unwrap()
                .with_technique_following_type(!free)
                .with_severity_following_type(!free);
            let prompt = model
                .tokenizer
                .encode_prompt(&format!("### Input:\nline {seed}\n\n### Response:\n"))
                .unwrap();
            for b in &bounds {
                let out = decode(
                    &model,
                    &grammar,
                    model.llama.new_cache(),
                    &prompt,
                    None,
                    false,
                    b,
                )
                .unwrap();
                let a = &out.answer;
                let category = taxonomy
                    .category_of(a.threat_type.as_deref().unwrap())
                    .unwrap();
                if let Some(allowed) = &b.categories {
                    assert!(
                        allowed.contains(&category),
                        "{category} outside {allowed:?}"
                    );
                }
                if category == "NO THREAT" {
                    benign += 1;
                    assert!(b.benign_allowed, "{}", out.text);
                    assert_eq!(a.technique_id, None, "{}", out.text);
                    assert_eq!(a.tactic, None, "{}", out.text);
                    assert_eq!(
                        a.severity,
                        Some(opensoc_verdict::Severity::Low),
                        "{}",
                        out.text
                    );
                    assert!(a.risk_score.unwrap() <= 10, "{}", out.text);
                } else {
                    threats += 1;
                    assert!(a.technique_id.is_some(), "{}", out.text);
                    assert!(a.risk_score.unwrap() > 0, "{}", out.text);
                    let fine = a.threat_type.as_deref().unwrap();
                    // A type that names a success follows the records' outcome.
                    let names_success = taxonomy.fine_type(fine).unwrap().requires_success;
                    match b.outcome {
                        Outcome::Failed => assert!(!names_success, "{}", out.text),
                        Outcome::Succeeded if category == "SSH BRUTE FORCE" => {
                            assert!(names_success, "{}", out.text)
                        }
                        _ => {}
                    }
                    if !free {
                        assert_eq!(a.severity, Some(policy(fine, b.outcome)), "{}", out.text);
                        raised +=
                            usize::from(policy(fine, b.outcome) != policy(fine, Outcome::Failed));
                    }
                }
            }
        }
    }
    // Both kinds were seen, so both rules were exercised; and some success raised a
    // severity.
    assert!(
        benign >= 12 && threats >= 24,
        "{benign} benign, {threats} threats"
    );
    assert!(raised > 0, "no severity raised by a success");
}
