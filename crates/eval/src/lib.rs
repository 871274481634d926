//! Scoring OpenSOC's answers against labelled data, and the reports that show it.
//!
//! The no-ML half of `opensoc eval`: it takes a labelled Alpaca data set and the
//! predictions of one or more systems (say, the base model and the LoRA adapter) and
//! measures them under two protocols:
//!
//! * **Strict**, the paper's Table II protocol ([`protocol::strict_field`]): the regex
//!   `KEY[:\s]+([^\n,]+)`, upper-cased, exact match. Kept so our numbers compare with the
//!   paper's; it scores free text 0 however right it is.
//! * **SOC-Bench v0** ([`protocol::Fields`]): tolerant parsing, output cut at `### `
//!   loop markers, fine threat types mapped to canonical categories, overall and macro
//!   accuracy with Wilson 95 % intervals, plus the ATT&CK checks the paper skipped
//!   (exact and parent technique, valid-ID rate, tactic), risk-score error and parse rate.
//!
//! Beside both, the **detection** figures that decide whether a tool is usable on real,
//! mostly benign logs ([`report::DetectionScores`]): benign false-positive rate, attack
//! recall, alerts per 10,000 benign lines, and web category accuracy, plus category
//! accuracy per `source` and per `format` when the examples carry those keys. A system
//! that covers one kind of log (a WAF) can be scored on the entries it answered only
//! ([`Scope::Answered`]), and a corpus split scored alone ([`Selection`]).
//!
//! Modules follow the flow: [`dataset`] loads and aligns, [`protocol`] reads answers,
//! [`metrics`] holds the arithmetic, [`report`] scores, [`render`] writes JSON, JSONL,
//! Markdown and a self-contained HTML page. Nothing here needs a model.
//!
//! ```
//! use opensoc_attack::{Catalog, Taxonomy};
//! use opensoc_eval::{dataset, evaluate, render, Scope, System};
//!
//! let examples = dataset::parse_examples(
//!     r#"[{"instruction": "Analyze this log.", "input": "GET /?id=1' OR 1=1--",
//!          "output": "THREAT_TYPE: SQL Injection — Union/Boolean SQLi\nSEVERITY: CRITICAL"}]"#,
//!     "labels.json",
//! )?;
//! // A chat model that answers in prose: right, but not in the paper's format.
//! let base = System {
//!     name: "base".into(),
//!     origin: "base.jsonl".into(),
//!     predictions: dataset::parse_predictions(
//!         r#"{"id": 0, "output": "Threat type: SQL injection. Severity: critical."}"#,
//!         "base.jsonl",
//!     )?,
//!     scope: Scope::All,
//! };
//! let eval = evaluate(&examples, &[base], Taxonomy::builtin(), Catalog::enterprise())?;
//! let scores = &eval.report.systems[0];
//! assert_eq!(scores.strict.threat_type_accuracy.value, 0.0);
//! assert_eq!(scores.soc_bench.category_accuracy.value, 1.0);
//!
//! let markdown = render::markdown(&eval.report);
//! assert!(markdown.contains("| Strict (paper) | Threat type accuracy (exact fine type) | 0.0 % |"));
//! let html = render::html(&eval.report);
//! assert!(html.starts_with("<!DOCTYPE html>") && !html.contains("http://"));
//! # Ok::<(), opensoc_eval::DatasetError>(())
//! ```

pub mod dataset;
pub mod metrics;
pub mod protocol;
pub mod render;
pub mod report;

pub use dataset::{
    align, is_web_format, lines_behind, load_examples, load_predictions, DatasetError, Example,
    Location, Prediction, PredictionBody,
};
pub use metrics::{
    ece_of, expected_calibration_error, mean_absolute_error, reliability, wilson_interval,
    Averages, ClassScore, ConfusionMatrix, MeanError, Proportion, ReliabilityBin,
};
pub use protocol::{cut_at_loop_marker, strict_field, Fields};
pub use render::RenderError;
pub use report::{
    evaluate, evaluate_selected, Calibration, Comparison, ComparisonRow, Confusions, Correct,
    DetectionScores, Evaluation, ExampleRecord, GroupScore, Headline, LineAlerts, Protocol, Report,
    Scope, Selection, SocBenchScores, StrictScores, System, SystemOutcome, SystemReport, Unit,
    BENIGN_CATEGORY,
};
