//! Scoring systems against examples: the [`Report`] of both protocols, the detection
//! figures that matter on real logs (benign false-positive rate, attack recall, alerts
//! per 10,000 benign lines, per source and per format), the side-by-side comparison in
//! the shape of the paper's Table II, and per-example records.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use opensoc_attack::{Catalog, Taxonomy, TechniqueId};
use opensoc_verdict::Severity;
use serde::Serialize;

use crate::dataset::{self, DatasetError, Example, Prediction, PredictionBody};
use crate::metrics::{
    ece_of, mean_absolute_error, reliability, Averages, ClassScore, ConfusionMatrix, MeanError,
    Proportion, ReliabilityBin,
};
use crate::protocol::Fields;

/// One system's predictions, e.g. the base model or the adapter.
#[derive(Debug, Clone)]
pub struct System {
    /// Short name shown in reports: `base`, `adapter`.
    pub name: String,
    /// Where the predictions came from, for error messages (usually the file path).
    pub origin: String,
    pub predictions: Vec<Prediction>,
    /// Which examples the system is scored on.
    pub scope: Scope,
}

/// Which of the selected examples a system is scored on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Every selected example; an unanswered one counts as wrong.
    #[default]
    All,
    /// Only the examples the system answered. For a system that covers one kind of log by
    /// design, such as a web application firewall that sees web requests only: its
    /// silence on an sshd line is no verdict, so it should not count as a miss or as a
    /// correct "no threat".
    Answered,
}

impl System {
    /// Loads a prediction file (see [`crate::dataset`] for the accepted shapes), scored on
    /// every selected example.
    pub fn load(name: impl Into<String>, path: impl AsRef<Path>) -> Result<System, DatasetError> {
        let path = path.as_ref();
        Ok(System {
            name: name.into(),
            origin: path.display().to_string(),
            predictions: dataset::load_predictions(path)?,
            scope: Scope::All,
        })
    }

    /// The same system, scored with `scope`.
    pub fn with_scope(self, scope: Scope) -> System {
        System { scope, ..self }
    }
}

/// Which examples of a file are scored. Prediction files always refer to positions in the
/// whole file, so a selection never shifts their matching.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Only records of this split (`validation`); records without a split are left out.
    pub split: Option<String>,
    /// Only these 0-based positions (the validation part `opensoc train --val-fraction`
    /// holds out of an Alpaca file).
    pub positions: Option<BTreeSet<usize>>,
    /// The first N examples left after the other filters.
    pub limit: Option<usize>,
}

impl Selection {
    /// Positions in `examples` of the selected ones, in file order.
    pub fn apply(&self, examples: &[Example]) -> Vec<usize> {
        let mut chosen: Vec<usize> = examples
            .iter()
            .enumerate()
            .filter(|(_, e)| {
                self.split
                    .as_deref()
                    .is_none_or(|want| e.split.as_deref() == Some(want))
            })
            .filter(|(position, _)| self.positions.as_ref().is_none_or(|p| p.contains(position)))
            .map(|(position, _)| position)
            .collect();
        if let Some(n) = self.limit {
            chosen.truncate(n);
        }
        chosen
    }

    /// The filters in words, for the report; `None` when everything is scored.
    pub fn describe(&self) -> Option<String> {
        let mut parts = Vec::new();
        if let Some(split) = &self.split {
            parts.push(format!("split {split}"));
        }
        if let Some(p) = &self.positions {
            parts.push(format!("{} held-out positions", p.len()));
        }
        if let Some(n) = self.limit {
            parts.push(format!("first {n}"));
        }
        (!parts.is_empty()).then(|| parts.join(", "))
    }
}

/// The outcome of [`evaluate`]: the aggregate report and one record per example.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    pub report: Report,
    pub records: Vec<ExampleRecord>,
}

/// Everything measured, for every system, and the comparisons between them.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Number of labelled examples scored (after the selection).
    pub examples: usize,
    /// Number of examples in the file.
    pub file_examples: usize,
    /// What was selected (`split validation`), when not the whole file.
    pub selection: Option<String>,
    /// ATT&CK release the technique IDs were checked against.
    pub attack_version: &'static str,
    pub systems: Vec<SystemReport>,
    /// The first system (the baseline) against each other one.
    pub comparisons: Vec<Comparison>,
}

/// One system's scores under both protocols.
#[derive(Debug, Clone, Serialize)]
pub struct SystemReport {
    pub name: String,
    pub scope: Scope,
    /// Examples that have a prediction.
    pub answered: usize,
    /// Examples without one; they count as wrong everywhere (none under
    /// [`Scope::Answered`], where they are not scored).
    pub unanswered: usize,
    pub strict: StrictScores,
    pub soc_bench: SocBenchScores,
    /// Alerts against labels: what an analyst on real, mostly benign logs lives with.
    pub detection: DetectionScores,
    /// Per `source` key of the examples, by name; empty when no example has one.
    pub per_source: Vec<GroupScore>,
    /// Per `format` key of the examples, by name; empty when no example has one.
    pub per_format: Vec<GroupScore>,
    /// How well the verdicts' `confidence` predicts correctness; `None` when no
    /// prediction carries a confidence (raw text, unconstrained decoding).
    pub calibration: Option<Calibration>,
}

/// Verdict confidence against verdict correctness: a verdict counts as correct when its
/// fine threat type, severity and (where the label names one) ATT&CK technique are all
/// right, the fields an analyst acts on.
#[derive(Debug, Clone, Serialize)]
pub struct Calibration {
    /// Verdicts with a confidence.
    pub verdicts: usize,
    /// Mean confidence and share correct over those verdicts.
    pub mean_confidence: f64,
    pub accuracy: f64,
    /// Expected calibration error over [`Calibration::BINS`] equal-width bins.
    pub ece: f64,
    pub bins: Vec<ReliabilityBin>,
}

impl Calibration {
    pub const BINS: usize = 10;

    fn measure(slots: &[Option<&Prediction>], outcomes: &[Correct]) -> Option<Calibration> {
        let pairs: Vec<(f64, bool)> = slots
            .iter()
            .zip(outcomes)
            .filter_map(|(slot, c)| match slot.map(|p| &p.body) {
                Some(PredictionBody::Verdict(v)) => v.confidence.map(|conf| {
                    let correct = c.fine_type && c.severity && c.technique.unwrap_or(true);
                    (f64::from(conf), correct)
                }),
                _ => None,
            })
            .filter(|(conf, _)| conf.is_finite())
            .collect();
        let bins = reliability(&pairs, Self::BINS);
        let ece = ece_of(&bins)?;
        let n = pairs.len() as f64;
        Some(Calibration {
            verdicts: pairs.len(),
            mean_confidence: pairs.iter().map(|p| p.0.clamp(0.0, 1.0)).sum::<f64>() / n,
            accuracy: pairs.iter().filter(|p| p.1).count() as f64 / n,
            ece,
            bins,
        })
    }
}

/// The paper's protocol (Table II).
#[derive(Debug, Clone, Serialize)]
pub struct StrictScores {
    /// Exact fine threat type.
    pub threat_type_accuracy: Proportion,
    /// Precision/recall/F1 over strict threat-type strings.
    pub threat_type: Averages,
    pub severity_accuracy: Proportion,
}

/// SOC-Bench v0 and the ATT&CK checks.
#[derive(Debug, Clone, Serialize)]
pub struct SocBenchScores {
    /// Canonical category accuracy.
    pub category_accuracy: Proportion,
    /// Mean of the per-category accuracies of the categories in the labels.
    pub category_macro_accuracy: f64,
    /// Accuracy and P/R/F1 of every category seen as a label or prediction.
    pub per_category: Vec<ClassScore>,
    pub category: Averages,
    /// Fine threat type, compared after taxonomy normalisation (case-insensitive).
    pub fine_type_accuracy: Proportion,
    pub fine_type: Averages,
    pub severity_accuracy: Proportion,
    /// Exact technique ID, over examples whose label names one.
    pub technique_accuracy: Proportion,
    /// Same technique family (`T1110.001` matches `T1110` and `T1110.003`).
    pub technique_parent_accuracy: Proportion,
    /// Predicted IDs that exist in ATT&CK and are not revoked, over predictions that
    /// name an ID.
    pub valid_technique_id_rate: Proportion,
    /// Same ATT&CK tactic, over examples whose label names an ATT&CK tactic.
    pub tactic_accuracy: Proportion,
    /// Risk score mean absolute error, over examples where label and prediction have one.
    pub risk_score_error: MeanError,
    /// Answers with threat type, technique, tactic, severity and risk score all present.
    pub parse_rate: Proportion,
    pub confusion: Confusions,
}

/// A verdict is an *alert* when its category is any attack category, i.e. not
/// [`BENIGN_CATEGORY`]; an unanswered or unreadable verdict raises none. Examples whose
/// label maps to no category count in none of these figures.
#[derive(Debug, Clone, Serialize)]
pub struct DetectionScores {
    /// Benign-labelled examples that raised an alert.
    pub benign_false_positive_rate: Proportion,
    /// Attack-labelled examples that raised an alert (of any attack category).
    pub attack_recall: Proportion,
    /// Alerts per 10,000 benign log lines.
    pub benign_line_alerts: LineAlerts,
    /// Category accuracy on web access-log entries ([`Example::is_web`]); no trials when
    /// there are none.
    pub web_category_accuracy: Proportion,
}

/// Alerts per 10,000 benign log lines: what an analyst's alert queue sees. An incident
/// entry stands for the lines its summary counts ([`Example::lines_behind`]), any other
/// entry for one; a false alarm on an incident flags all of its lines.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LineAlerts {
    /// Benign lines inside alerted entries over all benign lines, with its Wilson
    /// interval (optimistic: the lines of one incident are not independent trials).
    pub lines: Proportion,
    /// `lines.value * 10,000`, and its interval likewise scaled.
    pub per_10k: f64,
    pub per_10k_low: f64,
    pub per_10k_high: f64,
}

impl LineAlerts {
    fn new(alerted: u64, total: u64) -> LineAlerts {
        let lines = Proportion::new(alerted, total);
        LineAlerts {
            lines,
            per_10k: lines.value * 1e4,
            per_10k_low: lines.low * 1e4,
            per_10k_high: lines.high * 1e4,
        }
    }
}

/// Scores of the examples sharing a `source` or `format` key.
#[derive(Debug, Clone, Serialize)]
pub struct GroupScore {
    /// The key's value; [`GroupScore::UNSPECIFIED`] for examples without one.
    pub group: String,
    /// Scored examples in the group.
    pub examples: u64,
    pub category_accuracy: Proportion,
    pub benign_false_positive_rate: Proportion,
    pub attack_recall: Proportion,
}

impl GroupScore {
    /// Group of the examples that lack the key while others have it.
    pub const UNSPECIFIED: &'static str = "(unspecified)";
}

/// The category of benign traffic in the taxonomy; every other category is an attack.
pub const BENIGN_CATEGORY: &str = "NO THREAT";

/// Counts behind [`DetectionScores`] and [`GroupScore`].
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    examples: u64,
    labelled: u64,
    correct: u64,
    benign: u64,
    false_alarms: u64,
    attacks: u64,
    detected: u64,
    benign_lines: u64,
    alerted_benign_lines: u64,
}

impl Tally {
    fn add(&mut self, example: &Example, label: &Fields, predicted: &Fields, correct: &Correct) {
        self.examples += 1;
        let Some(category) = label.category.as_deref() else {
            return;
        };
        self.labelled += 1;
        self.correct += u64::from(correct.category);
        let alert = predicted
            .category
            .as_deref()
            .is_some_and(|c| c != BENIGN_CATEGORY);
        if category == BENIGN_CATEGORY {
            let lines = example.lines_behind();
            self.benign += 1;
            self.false_alarms += u64::from(alert);
            self.benign_lines += lines;
            self.alerted_benign_lines += if alert { lines } else { 0 };
        } else {
            self.attacks += 1;
            self.detected += u64::from(alert);
        }
    }

    fn group(&self, group: String) -> GroupScore {
        GroupScore {
            group,
            examples: self.examples,
            category_accuracy: Proportion::new(self.correct, self.labelled),
            benign_false_positive_rate: Proportion::new(self.false_alarms, self.benign),
            attack_recall: Proportion::new(self.detected, self.attacks),
        }
    }
}

/// Tallies per value of one example key (`source`, `format`), by name; examples without
/// the key go to [`GroupScore::UNSPECIFIED`] when any example has it, else nothing.
fn groups(
    examples: &[&Example],
    key: fn(&Example) -> Option<&str>,
    labels: &[Fields],
    predicted: &[Fields],
    outcomes: &[Correct],
) -> Vec<GroupScore> {
    if examples.iter().all(|e| key(e).is_none()) {
        return Vec::new();
    }
    let mut tallies: BTreeMap<&str, Tally> = BTreeMap::new();
    for (((example, label), p), c) in examples.iter().zip(labels).zip(predicted).zip(outcomes) {
        let group = key(example).unwrap_or(GroupScore::UNSPECIFIED);
        tallies.entry(group).or_default().add(example, label, p, c);
    }
    tallies
        .into_iter()
        .map(|(group, tally)| tally.group(group.to_string()))
        .collect()
}

/// Confusion matrices of one system.
#[derive(Debug, Clone, Serialize)]
pub struct Confusions {
    pub fine_type: ConfusionMatrix,
    /// Categories in taxonomy order.
    pub category: ConfusionMatrix,
    /// Severities from CRITICAL down to LOW.
    pub severity: ConfusionMatrix,
}

/// Which protocol a metric belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// The paper's strict regex protocol.
    Strict,
    /// SOC-Bench v0 (tolerant parsing, canonical categories, ATT&CK checks).
    SocBench,
    /// Alerts against labels (benign false positives, attack recall, web logs).
    Detection,
}

impl Protocol {
    pub fn title(self) -> &'static str {
        match self {
            Protocol::Strict => "Strict (paper)",
            Protocol::SocBench => "SOC-Bench v0",
            Protocol::Detection => "Detection",
        }
    }
}

/// How a metric's number reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// A share in [0, 1], shown as a percentage; deltas in percentage points.
    Rate,
    /// A score in [0, 1] such as F1, shown as a decimal.
    Score,
    /// Risk-score points; lower is better.
    Points,
    /// A count per 10,000 (alerts per 10,000 benign lines).
    PerTenThousand,
}

/// One metric of two systems side by side.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComparisonRow {
    pub protocol: Protocol,
    /// Stable machine name, e.g. `strict.threat_type_accuracy`.
    pub key: &'static str,
    /// Human name, e.g. `Threat type accuracy (exact fine type)`.
    pub metric: &'static str,
    pub unit: Unit,
    pub higher_is_better: bool,
    pub baseline: Option<f64>,
    pub candidate: Option<f64>,
    /// `candidate - baseline`.
    pub delta: Option<f64>,
}

/// A baseline and a candidate system, metric by metric (the paper's Table II shape).
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub baseline: String,
    pub candidate: String,
    pub rows: Vec<ComparisonRow>,
}

/// One headline metric of a system.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Headline {
    pub protocol: Protocol,
    pub key: &'static str,
    pub metric: &'static str,
    pub unit: Unit,
    pub higher_is_better: bool,
    pub value: Option<f64>,
}

impl SystemReport {
    /// The headline metrics, in Table II order: the paper's rows, then SOC-Bench's.
    pub fn headlines(&self) -> Vec<Headline> {
        let s = &self.strict;
        let b = &self.soc_bench;
        let d = &self.detection;
        let row = |protocol, key, metric, unit, value: Option<f64>| Headline {
            protocol,
            key,
            metric,
            unit,
            higher_is_better: true,
            value,
        };
        // A rate over no trials is undefined, not 0 % (a model that names no technique
        // has no valid-ID rate).
        let rate = |p: Proportion| (p.trials > 0).then_some(p.value);
        use Protocol::{Detection, SocBench, Strict};
        use Unit::{Rate, Score};
        vec![
            row(
                Strict,
                "strict.threat_type_accuracy",
                "Threat type accuracy (exact fine type)",
                Rate,
                rate(s.threat_type_accuracy),
            ),
            row(
                Strict,
                "strict.threat_type_macro_precision",
                "Threat precision (macro)",
                Score,
                Some(s.threat_type.macro_precision),
            ),
            row(
                Strict,
                "strict.threat_type_macro_recall",
                "Threat recall (macro)",
                Score,
                Some(s.threat_type.macro_recall),
            ),
            row(
                Strict,
                "strict.threat_type_macro_f1",
                "Threat F1 (macro)",
                Score,
                Some(s.threat_type.macro_f1),
            ),
            row(
                Strict,
                "strict.severity_accuracy",
                "Severity accuracy",
                Rate,
                rate(s.severity_accuracy),
            ),
            row(
                SocBench,
                "soc_bench.category_accuracy",
                "Category accuracy",
                Rate,
                rate(b.category_accuracy),
            ),
            row(
                SocBench,
                "soc_bench.category_macro_accuracy",
                "Category macro accuracy",
                Rate,
                rate(b.category_accuracy).map(|_| b.category_macro_accuracy),
            ),
            row(
                SocBench,
                "soc_bench.fine_type_accuracy",
                "Fine threat type accuracy",
                Rate,
                rate(b.fine_type_accuracy),
            ),
            row(
                SocBench,
                "soc_bench.severity_accuracy",
                "Severity accuracy",
                Rate,
                rate(b.severity_accuracy),
            ),
            row(
                SocBench,
                "soc_bench.technique_accuracy",
                "ATT&CK technique accuracy (exact ID)",
                Rate,
                rate(b.technique_accuracy),
            ),
            row(
                SocBench,
                "soc_bench.technique_parent_accuracy",
                "ATT&CK technique accuracy (parent)",
                Rate,
                rate(b.technique_parent_accuracy),
            ),
            row(
                SocBench,
                "soc_bench.valid_technique_id_rate",
                "Valid ATT&CK ID rate",
                Rate,
                rate(b.valid_technique_id_rate),
            ),
            row(
                SocBench,
                "soc_bench.tactic_accuracy",
                "Tactic accuracy",
                Rate,
                rate(b.tactic_accuracy),
            ),
            Headline {
                protocol: SocBench,
                key: "soc_bench.risk_score_mae",
                metric: "Risk score MAE",
                unit: Unit::Points,
                higher_is_better: false,
                value: b.risk_score_error.value,
            },
            row(
                SocBench,
                "soc_bench.parse_rate",
                "Parse rate (all five fields)",
                Rate,
                rate(b.parse_rate),
            ),
            Headline {
                protocol: Detection,
                key: "detection.benign_false_positive_rate",
                metric: "Benign false-positive rate",
                unit: Rate,
                higher_is_better: false,
                value: rate(d.benign_false_positive_rate),
            },
            row(
                Detection,
                "detection.attack_recall",
                "Attack recall (any attack category)",
                Rate,
                rate(d.attack_recall),
            ),
            Headline {
                protocol: Detection,
                key: "detection.alerts_per_10k_benign_lines",
                metric: "Alerts per 10,000 benign lines",
                unit: Unit::PerTenThousand,
                higher_is_better: false,
                value: rate(d.benign_line_alerts.lines).map(|_| d.benign_line_alerts.per_10k),
            },
            row(
                Detection,
                "detection.web_category_accuracy",
                "Web category accuracy",
                Rate,
                rate(d.web_category_accuracy),
            ),
        ]
    }
}

impl Comparison {
    /// Every headline metric of `baseline` and `candidate` with the difference.
    pub fn new(baseline: &SystemReport, candidate: &SystemReport) -> Comparison {
        let rows = baseline
            .headlines()
            .into_iter()
            .zip(candidate.headlines())
            .map(|(b, c)| ComparisonRow {
                protocol: b.protocol,
                key: b.key,
                metric: b.metric,
                unit: b.unit,
                higher_is_better: b.higher_is_better,
                baseline: b.value,
                candidate: c.value,
                delta: b.value.zip(c.value).map(|(b, c)| c - b),
            })
            .collect();
        Comparison {
            baseline: baseline.name.clone(),
            candidate: candidate.name.clone(),
            rows,
        }
    }
}

/// One example with its label and every system's answer.
#[derive(Debug, Clone, Serialize)]
pub struct ExampleRecord {
    pub index: usize,
    pub input: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    pub label: Fields,
    pub systems: Vec<SystemOutcome>,
}

/// One system's answer to one example.
#[derive(Debug, Clone, Serialize)]
pub struct SystemOutcome {
    pub system: String,
    /// The prediction record's `id`, if it had one.
    pub id: Option<String>,
    pub answered: bool,
    /// Whether the example counts in the system's scores (see [`Scope`]).
    pub scored: bool,
    pub predicted: Fields,
    pub correct: Correct,
}

/// Per-example correctness. `None` means the example does not count for that metric
/// (the label names no technique or tactic, the prediction names no ID, a score is missing).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Correct {
    pub strict_threat_type: bool,
    pub strict_severity: bool,
    pub fine_type: bool,
    pub category: bool,
    pub severity: bool,
    pub technique: Option<bool>,
    pub technique_parent: Option<bool>,
    /// The predicted ID exists in ATT&CK and is not revoked.
    pub technique_id_valid: Option<bool>,
    pub tactic: Option<bool>,
    pub risk_score_error: Option<u8>,
    /// Threat type, technique, tactic, severity and risk score all present.
    pub complete: bool,
}

/// Equal and present on both sides.
fn same<T: PartialEq>(label: &Option<T>, predicted: &Option<T>) -> bool {
    label.is_some() && label == predicted
}

/// A technique and its sub-techniques are one family.
fn family(id: TechniqueId) -> TechniqueId {
    id.parent().unwrap_or(id)
}

impl Correct {
    fn judge(label: &Fields, predicted: &Fields, catalog: &Catalog) -> Correct {
        let technique = label
            .technique_id
            .map(|l| predicted.technique_id == Some(l));
        let technique_parent = label
            .technique_id
            .map(|l| predicted.technique_id.map(family) == Some(family(l)));
        Correct {
            strict_threat_type: same(&label.strict_threat_type, &predicted.strict_threat_type),
            strict_severity: same(&label.strict_severity, &predicted.strict_severity),
            fine_type: same(&label.threat_type, &predicted.threat_type),
            category: same(&label.category, &predicted.category),
            severity: same(&label.severity, &predicted.severity),
            technique,
            technique_parent,
            technique_id_valid: predicted
                .technique_id
                .map(|id| catalog.get(&id).is_some_and(|t| !t.revoked)),
            tactic: label.tactic_id.map(|l| predicted.tactic_id == Some(l)),
            risk_score_error: label
                .risk_score
                .zip(predicted.risk_score)
                .map(|(l, p)| l.abs_diff(p)),
            complete: predicted.is_complete(),
        }
    }
}

/// Scores every system against every example.
///
/// The label of an example is its `output` read by both protocols exactly like a raw
/// prediction. Fails only when a system's predictions cannot be matched to the examples
/// (see [`dataset::align`]).
pub fn evaluate(
    examples: &[Example],
    systems: &[System],
    taxonomy: &Taxonomy,
    catalog: &Catalog,
) -> Result<Evaluation, DatasetError> {
    evaluate_selected(examples, &Selection::default(), systems, taxonomy, catalog)
}

/// Like [`evaluate`], scoring only the examples `selection` picks. `examples` is the
/// whole file: predictions are matched against it, so their keys keep their meaning.
pub fn evaluate_selected(
    examples: &[Example],
    selection: &Selection,
    systems: &[System],
    taxonomy: &Taxonomy,
    catalog: &Catalog,
) -> Result<Evaluation, DatasetError> {
    let chosen = selection.apply(examples);
    let picked: Vec<&Example> = chosen.iter().filter_map(|&i| examples.get(i)).collect();
    let labels: Vec<Fields> = picked
        .iter()
        .map(|e| Fields::from_text(&e.output, taxonomy, catalog))
        .collect();
    let mut records: Vec<ExampleRecord> = picked
        .iter()
        .zip(&labels)
        .map(|(e, label)| ExampleRecord {
            index: e.index,
            input: e.input.clone(),
            source: e.source.clone(),
            format: e.format.clone(),
            label: label.clone(),
            systems: Vec::with_capacity(systems.len()),
        })
        .collect();

    let category_order: Vec<&str> = taxonomy.categories().iter().map(String::as_str).collect();
    let mut reports = Vec::with_capacity(systems.len());
    for system in systems {
        let all_slots = dataset::align(examples, &system.predictions, &system.origin)?;
        let slots: Vec<Option<&Prediction>> = chosen
            .iter()
            .map(|&i| all_slots.get(i).copied().flatten())
            .collect();
        let predicted: Vec<Fields> = slots
            .iter()
            .map(|slot| match slot.map(|p| &p.body) {
                Some(PredictionBody::Raw(text)) => Fields::from_text(text, taxonomy, catalog),
                Some(PredictionBody::Verdict(v)) => Fields::from_verdict(v, taxonomy, catalog),
                None => Fields::default(),
            })
            .collect();
        let outcomes: Vec<Correct> = labels
            .iter()
            .zip(&predicted)
            .map(|(l, p)| Correct::judge(l, p, catalog))
            .collect();
        let scored: Vec<bool> = slots
            .iter()
            .map(|slot| system.scope == Scope::All || slot.is_some())
            .collect();
        reports.push(score_system(
            system,
            &ScoredSet {
                examples: &kept(&picked, &scored),
                labels: &kept(&labels, &scored),
                predicted: &kept(&predicted, &scored),
                outcomes: &kept(&outcomes, &scored),
                slots: &kept(&slots, &scored),
            },
            &category_order,
        ));
        for (((record, slot), (fields, correct)), scored) in records
            .iter_mut()
            .zip(&slots)
            .zip(predicted.into_iter().zip(outcomes))
            .zip(scored)
        {
            record.systems.push(SystemOutcome {
                system: system.name.clone(),
                id: slot.and_then(|p| p.id.clone()),
                answered: slot.is_some(),
                scored,
                predicted: fields,
                correct,
            });
        }
    }

    let comparisons = reports
        .split_first()
        .map(|(baseline, others)| {
            others
                .iter()
                .map(|c| Comparison::new(baseline, c))
                .collect()
        })
        .unwrap_or_default();
    Ok(Evaluation {
        report: Report {
            examples: picked.len(),
            file_examples: examples.len(),
            selection: selection.describe(),
            attack_version: catalog.version(),
            systems: reports,
            comparisons,
        },
        records,
    })
}

/// The items whose flag in `keep` is set.
fn kept<T: Clone>(items: &[T], keep: &[bool]) -> Vec<T> {
    items
        .iter()
        .zip(keep)
        .filter(|(_, k)| **k)
        .map(|(item, _)| item.clone())
        .collect()
}

/// The examples one system is scored on, with their labels, its answers and verdicts,
/// index-aligned.
struct ScoredSet<'a, 'p> {
    examples: &'a [&'a Example],
    labels: &'a [Fields],
    predicted: &'a [Fields],
    outcomes: &'a [Correct],
    slots: &'a [Option<&'p Prediction>],
}

/// A confusion matrix over the examples whose label has the field.
fn confusion<'a, T: AsRef<str> + 'a>(
    labels: impl Iterator<Item = Option<T>>,
    predicted: impl Iterator<Item = Option<T>>,
    order: &[&str],
) -> ConfusionMatrix {
    ConfusionMatrix::from_pairs(
        labels.zip(predicted).filter_map(|(l, p)| Some((l?, p))),
        order,
    )
}

fn score_system(system: &System, set: &ScoredSet, category_order: &[&str]) -> SystemReport {
    let ScoredSet {
        examples,
        labels,
        predicted,
        outcomes,
        slots,
    } = *set;
    let strict_threat = confusion(
        labels.iter().map(|f| f.strict_threat_type.as_deref()),
        predicted.iter().map(|f| f.strict_threat_type.as_deref()),
        &[],
    );
    let strict_severity = confusion(
        labels.iter().map(|f| f.strict_severity.as_deref()),
        predicted.iter().map(|f| f.strict_severity.as_deref()),
        &[],
    );
    let fine_type = confusion(
        labels.iter().map(|f| f.threat_type.as_deref()),
        predicted.iter().map(|f| f.threat_type.as_deref()),
        &[],
    );
    let category = confusion(
        labels.iter().map(|f| f.category.as_deref()),
        predicted.iter().map(|f| f.category.as_deref()),
        category_order,
    );
    let severity_order: Vec<&str> = Severity::ALL.iter().map(|s| s.as_str()).collect();
    let severity = confusion(
        labels.iter().map(|f| f.severity.map(Severity::as_str)),
        predicted.iter().map(|f| f.severity.map(Severity::as_str)),
        &severity_order,
    );

    let mut overall = Tally::default();
    let mut web = Tally::default();
    for (((example, label), p), c) in examples.iter().zip(labels).zip(predicted).zip(outcomes) {
        overall.add(example, label, p, c);
        if example.is_web() {
            web.add(example, label, p, c);
        }
    }

    let answered = slots.iter().filter(|s| s.is_some()).count();
    let flags =
        |f: fn(&Correct) -> Option<bool>| Proportion::from_flags(outcomes.iter().filter_map(f));
    SystemReport {
        name: system.name.clone(),
        scope: system.scope,
        answered,
        unanswered: slots.len() - answered,
        strict: StrictScores {
            threat_type_accuracy: strict_threat.accuracy(),
            threat_type: strict_threat.averages(),
            severity_accuracy: strict_severity.accuracy(),
        },
        soc_bench: SocBenchScores {
            category_accuracy: category.accuracy(),
            category_macro_accuracy: category.macro_accuracy(),
            per_category: category.per_class(),
            category: category.averages(),
            fine_type_accuracy: fine_type.accuracy(),
            fine_type: fine_type.averages(),
            severity_accuracy: severity.accuracy(),
            technique_accuracy: flags(|c| c.technique),
            technique_parent_accuracy: flags(|c| c.technique_parent),
            valid_technique_id_rate: flags(|c| c.technique_id_valid),
            tactic_accuracy: flags(|c| c.tactic),
            risk_score_error: mean_absolute_error(
                outcomes
                    .iter()
                    .filter_map(|c| c.risk_score_error)
                    .map(|e| (f64::from(e), 0.0)),
            ),
            parse_rate: Proportion::from_flags(outcomes.iter().map(|c| c.complete)),
            confusion: Confusions {
                fine_type,
                category,
                severity,
            },
        },
        detection: DetectionScores {
            benign_false_positive_rate: Proportion::new(overall.false_alarms, overall.benign),
            attack_recall: Proportion::new(overall.detected, overall.attacks),
            benign_line_alerts: LineAlerts::new(overall.alerted_benign_lines, overall.benign_lines),
            web_category_accuracy: Proportion::new(web.correct, web.labelled),
        },
        per_source: groups(
            examples,
            |e| e.source.as_deref(),
            labels,
            predicted,
            outcomes,
        ),
        per_format: groups(
            examples,
            |e| e.format.as_deref(),
            labels,
            predicted,
            outcomes,
        ),
        calibration: Calibration::measure(slots, outcomes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::parse_predictions;

    const SQLI: &str = "THREAT_TYPE: SQL Injection — Union/Boolean SQLi\n\
        MITRE_TECHNIQUE: T1190 (Exploit Public-Facing Application)\nMITRE_TACTIC: Initial Access\n\
        SEVERITY: CRITICAL\nRISK_SCORE: 90";
    const SSH: &str = "THREAT_TYPE: SSH Brute Force Attack\n\
        MITRE_TECHNIQUE: T1110.001 (Password Guessing)\nMITRE_TACTIC: Credential Access\n\
        SEVERITY: HIGH\nRISK_SCORE: 70";
    const BENIGN: &str = "THREAT_TYPE: No Threat Detected — Normal Traffic\n\
        MITRE_TECHNIQUE: N/A (N/A)\nMITRE_TACTIC: N/A\nSEVERITY: LOW\nRISK_SCORE: 5";

    fn examples() -> Vec<Example> {
        [SQLI, SSH, BENIGN]
            .iter()
            .enumerate()
            .map(|(index, output)| Example {
                index,
                instruction: String::new(),
                input: format!("log {index}"),
                output: (*output).to_string(),
                source: None,
                format: None,
                split: None,
            })
            .collect()
    }

    fn system(name: &str, jsonl: &str) -> System {
        System {
            name: name.into(),
            origin: name.into(),
            predictions: parse_predictions(jsonl, name).unwrap_or_default(),
            scope: Scope::All,
        }
    }

    fn run(systems: &[System]) -> Evaluation {
        match evaluate(
            &examples(),
            systems,
            Taxonomy::builtin(),
            Catalog::enterprise(),
        ) {
            Ok(e) => e,
            Err(e) => panic!("{e}"),
        }
    }

    fn line(output: &str) -> String {
        serde_json::json!({ "output": output }).to_string()
    }

    #[test]
    fn hand_scored_system() {
        // 0: right in prose-ish keys (strict miss, tolerant hit), sub-technique of the family,
        //    wrong tactic spelling still the same tactic.
        // 1: right category, wrong fine type, sibling sub-technique, severity wrong, no score.
        // 2: unanswered.
        let p0 = "Threat Type: sqli\nTechnique: T1190\nTactic: initial-access\nSeverity: critical\nRisk: 80";
        let p1 = "THREAT_TYPE: SSH Brute Force Attack — SUCCESSFUL LOGIN\n\
                  MITRE_TECHNIQUE: T1110.003\nMITRE_TACTIC: Credential Access\nSEVERITY: CRITICAL";
        let eval = run(&[system("m", &format!("{}\n{}", line(p0), line(p1)))]);
        let r = &eval.report.systems[0];
        assert_eq!((r.answered, r.unanswered), (2, 1));
        assert_eq!(r.strict.threat_type_accuracy.successes, 0);
        assert_eq!(r.strict.severity_accuracy.successes, 0);
        let b = &r.soc_bench;
        assert_eq!(
            (b.category_accuracy.successes, b.category_accuracy.trials),
            (2, 3)
        );
        // SQL INJECTION 1/1, SSH BRUTE FORCE 1/1, NO THREAT 0/1.
        assert!((b.category_macro_accuracy - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(b.fine_type_accuracy.successes, 0);
        assert_eq!(
            (b.severity_accuracy.successes, b.severity_accuracy.trials),
            (1, 3)
        );
        // The benign label names no technique or tactic: two examples count.
        assert_eq!(
            (b.technique_accuracy.successes, b.technique_accuracy.trials),
            (1, 2)
        );
        assert_eq!(b.technique_parent_accuracy.successes, 2);
        assert_eq!(
            (
                b.valid_technique_id_rate.successes,
                b.valid_technique_id_rate.trials
            ),
            (2, 2)
        );
        assert_eq!(
            (b.tactic_accuracy.successes, b.tactic_accuracy.trials),
            (2, 2)
        );
        assert_eq!(
            (b.risk_score_error.value, b.risk_score_error.pairs),
            (Some(10.0), 1)
        );
        assert_eq!((b.parse_rate.successes, b.parse_rate.trials), (1, 3));
        assert_eq!(
            b.confusion.category.classes,
            ["SQL INJECTION", "SSH BRUTE FORCE", "NO THREAT"]
        );
        assert_eq!(b.confusion.category.no_answer, [0, 0, 1]);
        assert_eq!(b.confusion.severity.classes, ["CRITICAL", "HIGH", "LOW"]);

        let rec = &eval.records[2].systems[0];
        assert!(!rec.answered);
        assert_eq!(rec.correct, Correct::default());
        assert_eq!(
            eval.records[0].systems[0].correct.technique_id_valid,
            Some(true)
        );
    }

    #[test]
    fn revoked_and_unknown_ids_are_invalid() {
        let p = format!(
            "{}\n{}",
            line("MITRE_TECHNIQUE: T1002 (Data Compressed)"),
            line("MITRE_TECHNIQUE: T9999")
        );
        let eval = run(&[system("m", &p)]);
        let b = &eval.report.systems[0].soc_bench;
        assert_eq!(
            (
                b.valid_technique_id_rate.successes,
                b.valid_technique_id_rate.trials
            ),
            (0, 2)
        );
    }

    #[test]
    fn comparison_rows_have_deltas() {
        let base = system("base", &line("I think this is an attack."));
        let tuned = system("adapter", &[line(SQLI), line(SSH), line(BENIGN)].join("\n"));
        let eval = run(&[base, tuned]);
        let cmp = &eval.report.comparisons[0];
        assert_eq!(
            (cmp.baseline.as_str(), cmp.candidate.as_str()),
            ("base", "adapter")
        );
        let row = |key| cmp.rows.iter().find(|r| r.key == key).cloned();
        let acc = row("strict.threat_type_accuracy");
        assert_eq!(acc.as_ref().and_then(|r| r.delta), Some(1.0));
        assert_eq!(acc.map(|r| r.protocol), Some(Protocol::Strict));
        let mae = row("soc_bench.risk_score_mae");
        assert_eq!(
            mae.as_ref().map(|r| (r.baseline, r.candidate, r.delta)),
            Some((None, Some(0.0), None))
        );
        assert_eq!(mae.map(|r| r.higher_is_better), Some(false));
        assert_eq!(eval.records[1].systems.len(), 2);
    }

    #[test]
    fn calibration_of_verdict_confidences() {
        let verdict = |id: usize, threat: &str, technique: &str, severity: &str, conf: f64| {
            serde_json::json!({"id": id, "threat_type": threat, "technique_id": technique,
                               "severity": severity, "confidence": conf})
            .to_string()
        };
        let lines = [
            // Right on all three fields, 0.95 sure.
            verdict(
                0,
                "SQL Injection — Union/Boolean SQLi",
                "T1190",
                "CRITICAL",
                0.95,
            ),
            // Right type and severity, sibling sub-technique: wrong, 0.85 sure.
            verdict(1, "SSH Brute Force Attack", "T1110.003", "HIGH", 0.85),
            // Benign label names no technique: type and severity decide, 0.15 sure.
            verdict(2, "No Threat Detected — Normal Traffic", "", "LOW", 0.15),
        ];
        let eval = run(&[system("m", &lines.join("\n"))]);
        let Some(cal) = &eval.report.systems[0].calibration else {
            panic!("calibration expected");
        };
        assert_eq!(cal.verdicts, 3);
        assert!((cal.accuracy - 2.0 / 3.0).abs() < 1e-9);
        assert!((cal.mean_confidence - 0.65).abs() < 1e-6);
        // Bins: [0.1,0.2) 1 right at 0.15 -> 0.85; [0.8,0.9) 1 wrong at 0.85 -> 0.85;
        // [0.9,1.0] 1 right at 0.95 -> 0.05. ECE = (0.85 + 0.85 + 0.05) / 3.
        assert!((cal.ece - 1.75 / 3.0).abs() < 1e-6, "{}", cal.ece);
        assert_eq!(cal.bins.len(), Calibration::BINS);
        assert_eq!(cal.bins.iter().map(|b| b.count).sum::<usize>(), 3);

        // Raw text carries no confidence: no calibration.
        let raw = run(&[system("r", &line(SQLI))]);
        assert!(raw.report.systems[0].calibration.is_none());
    }

    #[test]
    fn misaligned_predictions_are_an_error() {
        let many = [line(SQLI), line(SSH), line(BENIGN), line(SQLI)].join("\n");
        let err = evaluate(
            &examples(),
            &[system("m", &many)],
            Taxonomy::builtin(),
            Catalog::enterprise(),
        );
        assert!(matches!(err, Err(DatasetError::TooManyPredictions { .. })));
    }
}
