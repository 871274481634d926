//! Detection figures on small real-log fixtures (`tests/fixtures/`), every number counted
//! by hand from the files:
//!
//! * `real-logs.jsonl`: nine records with `source`, `format` and `split` keys, one
//!   without `source` and `format`; two of them incidents (`[...N total ...]`).
//! * `real-logs-model.jsonl`: a model's answers keyed by index, with a benign false
//!   positive (record 0 called DDoS), an attack miss (record 2, XSS, called benign) and
//!   an alert of the wrong category (record 8, LFI, called path traversal).
//! * `real-logs-crs.jsonl`: a web application firewall's answers, web entries only.
//! * `alpaca.json` + `alpaca-model.jsonl`: the paper's shape, without the new keys.
//!
//! Set `UPDATE_GOLDEN=1` to rewrite `golden/real-logs.md` after an intended change.

use std::path::{Path, PathBuf};

use opensoc_attack::{Catalog, Taxonomy};
use opensoc_eval::{
    dataset, evaluate, evaluate_selected, render, Evaluation, GroupScore, Proportion, Scope,
    Selection, System, SystemReport,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn examples(name: &str) -> Vec<dataset::Example> {
    match dataset::load_examples(fixture(name)) {
        Ok(e) => e,
        Err(e) => panic!("{e}"),
    }
}

fn system(name: &str, file: &str, scope: Scope) -> System {
    match System::load(name, fixture(file)) {
        Ok(s) => s.with_scope(scope),
        Err(e) => panic!("{e}"),
    }
}

fn run(data: &str, selection: &Selection, systems: &[System]) -> Evaluation {
    match evaluate_selected(
        &examples(data),
        selection,
        systems,
        Taxonomy::builtin(),
        Catalog::enterprise(),
    ) {
        Ok(e) => e,
        Err(e) => panic!("{e}"),
    }
}

fn validation() -> Selection {
    Selection {
        split: Some("validation".into()),
        ..Selection::default()
    }
}

/// `(successes, trials)` of a proportion.
fn counts(p: Proportion) -> (u64, u64) {
    (p.successes, p.trials)
}

fn group<'a>(groups: &'a [GroupScore], name: &str) -> &'a GroupScore {
    match groups.iter().find(|g| g.group == name) {
        Some(g) => g,
        None => panic!("no group {name} in {groups:?}"),
    }
}

fn by_name<'a>(eval: &'a Evaluation, name: &str) -> &'a SystemReport {
    match eval.report.systems.iter().find(|s| s.name == name) {
        Some(s) => s,
        None => panic!("no system {name}"),
    }
}

#[test]
fn corpus_keys_are_read_and_optional() {
    let ex = examples("real-logs.jsonl");
    assert_eq!(ex.len(), 9);
    assert_eq!(ex[0].source.as_deref(), Some("site-a"));
    assert_eq!(ex[3].format.as_deref(), Some("w3c"));
    assert_eq!(ex[3].split.as_deref(), Some("train"));
    assert_eq!(
        (ex[8].source.as_deref(), ex[8].format.as_deref()),
        (None, None)
    );
    // Web: access-log and W3C formats, not syslog or Windows, nor a record without one.
    let web: Vec<usize> = ex.iter().filter(|e| e.is_web()).map(|e| e.index).collect();
    assert_eq!(web, [0, 1, 2, 3, 6]);
    let lines: Vec<u64> = ex.iter().map(|e| e.lines_behind()).collect();
    assert_eq!(lines, [1, 1, 1, 1, 40, 1, 25, 1, 1]);

    let alpaca = examples("alpaca.json");
    assert_eq!(alpaca.len(), 4);
    assert!(alpaca
        .iter()
        .all(|e| e.source.is_none() && e.format.is_none() && e.split.is_none()));
}

#[test]
fn detection_figures_on_the_whole_file() {
    let eval = run(
        "real-logs.jsonl",
        &Selection::default(),
        &[system("model", "real-logs-model.jsonl", Scope::All)],
    );
    let r = &eval.report.systems[0];
    assert_eq!((r.answered, r.unanswered), (9, 0));
    assert_eq!(counts(r.soc_bench.category_accuracy), (6, 9));
    let d = &r.detection;
    // Benign: 0 (false alarm), 3, 5, 6. Attacks: 1, 2 (missed), 4, 7, 8 (wrong category,
    // still an alert).
    assert_eq!(counts(d.benign_false_positive_rate), (1, 4));
    assert_eq!(counts(d.attack_recall), (4, 5));
    // Benign lines 1 + 1 + 1 + 25 (an incident); the false alarm is on a single line.
    assert_eq!(counts(d.benign_line_alerts.lines), (1, 28));
    assert!((d.benign_line_alerts.per_10k - 1e4 / 28.0).abs() < 1e-9);
    assert!(d.benign_line_alerts.per_10k_low < d.benign_line_alerts.per_10k);
    assert!(d.benign_line_alerts.per_10k_high > d.benign_line_alerts.per_10k);
    // Web entries 0, 1, 2, 3, 6: right on 1, 3, 6.
    assert_eq!(counts(d.web_category_accuracy), (3, 5));

    let sources: Vec<&str> = r.per_source.iter().map(|g| g.group.as_str()).collect();
    assert_eq!(
        sources,
        [
            "(unspecified)",
            "scanner-b",
            "site-a",
            "site-c",
            "sshd-bf",
            "sys-d",
            "win-e"
        ]
    );
    let site_a = group(&r.per_source, "site-a");
    assert_eq!(site_a.examples, 2);
    assert_eq!(counts(site_a.category_accuracy), (1, 2));
    assert_eq!(counts(site_a.benign_false_positive_rate), (1, 2));
    assert_eq!(counts(site_a.attack_recall), (0, 0));
    let scanner = group(&r.per_source, "scanner-b");
    assert_eq!(counts(scanner.category_accuracy), (1, 2));
    assert_eq!(counts(scanner.attack_recall), (1, 2));
    let unspecified = group(&r.per_source, GroupScore::UNSPECIFIED);
    assert_eq!(counts(unspecified.category_accuracy), (0, 1));
    assert_eq!(counts(unspecified.attack_recall), (1, 1));

    let access = group(&r.per_format, "access-combined");
    assert_eq!(access.examples, 4);
    assert_eq!(counts(access.category_accuracy), (2, 4));
    assert_eq!(
        counts(group(&r.per_format, "syslog-3164").category_accuracy),
        (2, 2)
    );
    assert_eq!(r.per_format.len(), 5);
}

#[test]
fn split_selection_keeps_prediction_keys_of_the_whole_file() {
    let eval = run(
        "real-logs.jsonl",
        &validation(),
        &[system("model", "real-logs-model.jsonl", Scope::All)],
    );
    assert_eq!((eval.report.examples, eval.report.file_examples), (8, 9));
    assert_eq!(eval.report.selection.as_deref(), Some("split validation"));
    // Record 3 (train) is left out; record 4 still gets prediction 4, not 5.
    let indices: Vec<usize> = eval.records.iter().map(|r| r.index).collect();
    assert_eq!(indices, [0, 1, 2, 4, 5, 6, 7, 8]);
    assert_eq!(
        eval.records[3].systems[0].predicted.category.as_deref(),
        Some("SSH BRUTE FORCE")
    );
    let r = &eval.report.systems[0];
    assert_eq!((r.answered, r.unanswered), (8, 0));
    assert_eq!(counts(r.soc_bench.category_accuracy), (5, 8));
    assert_eq!(counts(r.detection.benign_false_positive_rate), (1, 3));
    assert_eq!(counts(r.detection.benign_line_alerts.lines), (1, 27));
    assert_eq!(counts(r.detection.web_category_accuracy), (2, 4));
    assert!(r.per_source.iter().all(|g| g.group != "site-c"));

    // A limit applies after the split.
    let first = run(
        "real-logs.jsonl",
        &Selection {
            limit: Some(4),
            ..validation()
        },
        &[system("model", "real-logs-model.jsonl", Scope::All)],
    );
    let indices: Vec<usize> = first.records.iter().map(|r| r.index).collect();
    assert_eq!(indices, [0, 1, 2, 4]);
}

#[test]
fn a_web_only_system_is_scored_on_the_entries_it_answered() {
    let eval = run(
        "real-logs.jsonl",
        &validation(),
        &[
            system("model", "real-logs-model.jsonl", Scope::All),
            system("crs", "real-logs-crs.jsonl", Scope::Answered),
        ],
    );
    let crs = by_name(&eval, "crs");
    // Validation web entries 0, 1, 2, 6; the sshd, cron, Windows and keyless records are
    // neither misses nor correct "no threat" answers.
    assert_eq!((crs.answered, crs.unanswered), (4, 0));
    assert_eq!(counts(crs.soc_bench.category_accuracy), (4, 4));
    assert_eq!(counts(crs.detection.benign_false_positive_rate), (0, 2));
    assert_eq!(counts(crs.detection.attack_recall), (2, 2));
    assert_eq!(counts(crs.detection.benign_line_alerts.lines), (0, 26));
    // The web figure covers the same entries for both systems.
    let model = by_name(&eval, "model");
    assert_eq!(
        crs.detection.web_category_accuracy.trials,
        model.detection.web_category_accuracy.trials
    );
    assert_eq!(counts(crs.detection.web_category_accuracy), (4, 4));
    let sshd = eval.records.iter().find(|r| r.index == 4);
    let outcome = sshd.map(|r| (r.systems[1].answered, r.systems[1].scored));
    assert_eq!(outcome, Some((false, false)));

    // Scored on everything, the same answers leave four examples unanswered and wrong.
    let all = run(
        "real-logs.jsonl",
        &validation(),
        &[system("crs", "real-logs-crs.jsonl", Scope::All)],
    );
    let crs = &all.report.systems[0];
    assert_eq!((crs.answered, crs.unanswered), (4, 4));
    assert_eq!(counts(crs.soc_bench.category_accuracy), (4, 8));
    assert_eq!(counts(crs.detection.attack_recall), (2, 5));

    // The comparison row says the firewall raised fewer benign alarms.
    let row = eval.report.comparisons[0]
        .rows
        .iter()
        .find(|r| r.key == "detection.benign_false_positive_rate");
    let row = row.map(|r| (r.baseline, r.candidate, r.higher_is_better));
    assert_eq!(row, Some((Some(1.0 / 3.0), Some(0.0), false)));
}

#[test]
fn a_file_without_corpus_keys_still_gets_detection_figures() {
    let examples = examples("alpaca.json");
    let model = system("model", "alpaca-model.jsonl", Scope::All);
    let eval = match evaluate(
        &examples,
        &[model],
        Taxonomy::builtin(),
        Catalog::enterprise(),
    ) {
        Ok(e) => e,
        Err(e) => panic!("{e}"),
    };
    let r = &eval.report.systems[0];
    assert!(r.per_source.is_empty() && r.per_format.is_empty());
    assert_eq!(counts(r.soc_bench.category_accuracy), (2, 4));
    // Benign: the intranet page (called reconnaissance) and a 12-login incident.
    assert_eq!(counts(r.detection.benign_false_positive_rate), (1, 2));
    assert_eq!(counts(r.detection.benign_line_alerts.lines), (1, 13));
    // "Brute Force" for SSH brute force: the wrong category, but an alert.
    assert_eq!(counts(r.detection.attack_recall), (2, 2));
    assert_eq!(counts(r.detection.web_category_accuracy), (0, 0));
    let web = r
        .headlines()
        .into_iter()
        .find(|h| h.key == "detection.web_category_accuracy");
    assert_eq!(web.map(|h| h.value), Some(None));

    let md = render::markdown(&eval.report);
    assert!(md.contains("### Detection"), "{md}");
    assert!(!md.contains("### Per source"), "{md}");
    assert!(md.contains("| Web category accuracy | – | – |"), "{md}");
    assert!(md.contains("Alerts per 10,000 benign lines: 769.2 (1 of 13 benign lines"));
}

#[test]
fn real_logs_markdown_matches_golden_file_and_html_shows_the_same() {
    let eval = run(
        "real-logs.jsonl",
        &validation(),
        &[
            system("model", "real-logs-model.jsonl", Scope::All),
            system("crs", "real-logs-crs.jsonl", Scope::Answered),
        ],
    );
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/real-logs.md");
    let got = render::markdown(&eval.report);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        if let Err(e) = std::fs::write(&golden, &got) {
            panic!("cannot write {}: {e}", golden.display());
        }
    }
    let want = std::fs::read_to_string(&golden).unwrap_or_default();
    assert!(
        got == want,
        "Markdown differs from {} (UPDATE_GOLDEN=1 rewrites it):\n{got}",
        golden.display()
    );

    let page = render::html(&eval.report);
    assert!(page.contains("<h3>Per source</h3>") && page.contains("<h3>Per format</h3>"));
    assert!(page.contains("<td>scanner-b</td><td>2</td><td>50.0 % (1/2)</td>"));
    assert!(page.contains("(split validation of 9 in the file)"));
    assert!(page.contains("<strong>crs</strong> (4 answered, scored on those only)"));

    let mut json = Vec::new();
    if let Err(e) = render::write_json(&eval.report, &mut json) {
        panic!("{e}");
    }
    let value: serde_json::Value = serde_json::from_slice(&json).unwrap_or_default();
    let crs = &value["systems"][1];
    assert_eq!(crs["scope"], "answered");
    assert_eq!(crs["detection"]["benign_false_positive_rate"]["trials"], 2);
    assert_eq!(
        value["systems"][0]["per_format"][0]["group"],
        "(unspecified)"
    );
}
