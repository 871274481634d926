//! Loading labelled examples and the predictions to score against them.
//!
//! Examples are Alpaca records (`{instruction, input, output}`), as a JSON list or as
//! JSONL, optionally with the keys of a real-log corpus: `source` (the source group an
//! entry came from), `format` (the ingest format name, e.g. `access-combined`, `sshd`)
//! and `split` (`train` or `validation`), which the report groups and selects by.
//! Predictions are JSONL (or a JSON list) of either
//!
//! * verdict objects as `opensoc analyze` writes them (`threat_type`, `technique_id`,
//!   `severity`, ..., `raw_output`), recognised by having `raw_output` or any verdict
//!   field, or
//! * `{"id": ..., "output": "..."}` records holding any system's raw answer text.
//!
//! # Matching predictions to examples
//!
//! A prediction is matched to an example by an explicit key when it has one: an
//! `index` field (a non-negative integer), or else an `id` that is a non-negative
//! integer or a string of digits. Keys are 0-based positions in the example file, also
//! when only part of it is scored ([`crate::Selection`]): predictions are matched against
//! the whole file first.
//! Other ids (`access.log:12`, as `opensoc analyze` writes) are not keys, and such a
//! file is matched by position: the n-th prediction record belongs to the n-th example.
//! A file must use one scheme throughout; mixing them, repeating a key or pointing past
//! the last example is an error, since a silently shifted match would score nonsense.
//! Examples left without a prediction are scored as unanswered.

use std::fmt;
use std::path::{Path, PathBuf};

use opensoc_verdict::{Answer, Severity, Verdict, VERDICT_KEYS};
use serde::Deserialize;
use serde_json::Value;

/// One labelled example of an Alpaca-format data set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    /// 0-based position in the file.
    pub index: usize,
    pub instruction: String,
    /// The log text.
    pub input: String,
    /// The reference answer (`THREAT_TYPE: ...` lines).
    pub output: String,
    /// Source group of a real-log record (`crs-regression`, `honeynet-web`, ...).
    pub source: Option<String>,
    /// Ingest format name of the entry (`access-combined`, `w3c`, `syslog-3164`, ...).
    pub format: Option<String>,
    /// Which part of a corpus the record belongs to (`train`, `validation`).
    pub split: Option<String>,
}

impl Example {
    /// Whether the entry is a web access-log line (or an incident of them): formats named
    /// `access` or `access-*` (Apache/nginx combined and common), `w3c` or `iis*`.
    pub fn is_web(&self) -> bool {
        self.format.as_deref().is_some_and(is_web_format)
    }

    /// How many log lines the entry stands for: the count of an incident entry's summary
    /// (`[...40 total failed auth attempts from ...]`, as `opensoc analyze` renders a
    /// burst, or the paper's `[...29 total attempts...]`), else 1.
    pub fn lines_behind(&self) -> u64 {
        lines_behind(&self.input)
    }
}

/// See [`Example::lines_behind`]. The last summary wins: an incident's head lines are
/// verbatim log text and could hold anything.
pub fn lines_behind(input: &str) -> u64 {
    input
        .match_indices("[...")
        .filter_map(|(at, marker)| {
            let rest = input[at + marker.len()..].trim_start();
            let digits = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            let count: u64 = rest[..digits].parse().ok()?;
            rest[digits..].starts_with(" total").then_some(count)
        })
        .last()
        .map_or(1, |n| n.max(1))
}

/// Whether `format` names a web access-log format (see [`Example::is_web`]).
pub fn is_web_format(format: &str) -> bool {
    let f = format.trim().to_ascii_lowercase();
    f == "access" || f.starts_with("access-") || f == "w3c" || f.starts_with("iis")
}

/// Where in a file a record sits: a line of JSONL or an element of a JSON list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// 1-based line of a JSONL file.
    Line(usize),
    /// 0-based element of a JSON list.
    Element(usize),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Line(n) => write!(f, "line {n}"),
            Location::Element(i) => write!(f, "element {i}"),
        }
    }
}

/// Why a data set or prediction file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("cannot read {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}: not a JSON list")]
    Json {
        origin: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{origin}, {at}: {reason}")]
    Record {
        origin: String,
        at: Location,
        reason: String,
    },
    #[error("{origin}, {at}: prediction key {key} repeats the one at {first}")]
    DuplicateKey {
        origin: String,
        at: Location,
        key: usize,
        first: Location,
    },
    #[error("{origin}, {at}: prediction key {key} is past the last example ({examples} examples)")]
    KeyOutOfRange {
        origin: String,
        at: Location,
        key: usize,
        examples: usize,
    },
    #[error(
        "{origin}, {at}: this record {has} an index/id key but the first record does not \
         agree; use keys on every record or on none"
    )]
    MixedMatching {
        origin: String,
        at: Location,
        has: &'static str,
    },
    #[error(
        "{origin}: {predictions} predictions matched by position, but only {examples} examples"
    )]
    TooManyPredictions {
        origin: String,
        predictions: usize,
        examples: usize,
    },
}

/// The fields of an Alpaca record; unknown fields are allowed (some exports add ids, the
/// corpus adds `label_rule`).
#[derive(Deserialize)]
struct AlpacaRecord {
    #[serde(default)]
    instruction: String,
    input: String,
    output: String,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    split: Option<String>,
}

/// A blank key is an absent one.
fn present(value: Option<String>) -> Option<String> {
    value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// Reads an Alpaca-format data set: a JSON list or JSONL of `{instruction, input, output}`.
pub fn load_examples(path: impl AsRef<Path>) -> Result<Vec<Example>, DatasetError> {
    let path = path.as_ref();
    let text = read(path)?;
    parse_examples(&text, &path.display().to_string())
}

/// Like [`load_examples`] for text in memory; `origin` names it in errors.
pub fn parse_examples(text: &str, origin: &str) -> Result<Vec<Example>, DatasetError> {
    records(text, origin)?
        .into_iter()
        .enumerate()
        .map(|(index, (at, value))| {
            let record: AlpacaRecord =
                serde_json::from_value(value).map_err(|e| DatasetError::Record {
                    origin: origin.to_string(),
                    at,
                    reason: format!("not an Alpaca record: {e}"),
                })?;
            Ok(Example {
                index,
                instruction: record.instruction,
                input: record.input,
                output: record.output,
                source: present(record.source),
                format: present(record.format),
                split: present(record.split),
            })
        })
        .collect()
}

/// What a system answered for one example.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// Where the record sits in its file.
    pub at: Location,
    /// The example key (`index`, or a numeric `id`), when the record has one.
    pub key: Option<usize>,
    /// The record's `id`, as text, for reports.
    pub id: Option<String>,
    pub body: PredictionBody,
}

/// The two prediction shapes.
#[derive(Debug, Clone, PartialEq)]
pub enum PredictionBody {
    /// Raw answer text, to be parsed by each protocol.
    Raw(String),
    /// A structured verdict; `raw_output` (possibly empty) feeds the strict protocol.
    Verdict(Box<Verdict>),
}

impl Prediction {
    /// The answer text: raw text, or a verdict's `raw_output`.
    pub fn text(&self) -> &str {
        match &self.body {
            PredictionBody::Raw(text) => text,
            PredictionBody::Verdict(v) => &v.raw_output,
        }
    }
}

/// Reads a prediction file (JSONL or a JSON list; see the module docs for the shapes).
pub fn load_predictions(path: impl AsRef<Path>) -> Result<Vec<Prediction>, DatasetError> {
    let path = path.as_ref();
    let text = read(path)?;
    parse_predictions(&text, &path.display().to_string())
}

/// Like [`load_predictions`] for text in memory; `origin` names it in errors.
pub fn parse_predictions(text: &str, origin: &str) -> Result<Vec<Prediction>, DatasetError> {
    records(text, origin)?
        .into_iter()
        .map(|(at, value)| prediction(value, at, origin))
        .collect()
}

/// Pairs every example with its prediction, following the matching rules of the module
/// docs. The result has one slot per example, `None` where nothing was predicted.
pub fn align<'p>(
    examples: &[Example],
    predictions: &'p [Prediction],
    origin: &str,
) -> Result<Vec<Option<&'p Prediction>>, DatasetError> {
    let mut slots: Vec<Option<&Prediction>> = vec![None; examples.len()];
    let Some(first) = predictions.first() else {
        return Ok(slots);
    };
    let keyed = first.key.is_some();
    for (position, p) in predictions.iter().enumerate() {
        if p.key.is_some() != keyed {
            return Err(DatasetError::MixedMatching {
                origin: origin.to_string(),
                at: p.at,
                has: if keyed { "lacks" } else { "has" },
            });
        }
        let slot = p.key.unwrap_or(position);
        let Some(target) = slots.get_mut(slot) else {
            return Err(if keyed {
                DatasetError::KeyOutOfRange {
                    origin: origin.to_string(),
                    at: p.at,
                    key: slot,
                    examples: examples.len(),
                }
            } else {
                DatasetError::TooManyPredictions {
                    origin: origin.to_string(),
                    predictions: predictions.len(),
                    examples: examples.len(),
                }
            });
        };
        if let Some(previous) = target {
            return Err(DatasetError::DuplicateKey {
                origin: origin.to_string(),
                at: p.at,
                key: slot,
                first: previous.at,
            });
        }
        *target = Some(p);
    }
    Ok(slots)
}

fn read(path: &Path) -> Result<String, DatasetError> {
    std::fs::read_to_string(path).map_err(|source| DatasetError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Splits a JSON list or JSONL text into located JSON values. Blank JSONL lines are skipped.
fn records(text: &str, origin: &str) -> Result<Vec<(Location, Value)>, DatasetError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim_start().starts_with('[') {
        let list: Vec<Value> = serde_json::from_str(text).map_err(|source| DatasetError::Json {
            origin: origin.to_string(),
            source,
        })?;
        return Ok(list
            .into_iter()
            .enumerate()
            .map(|(i, v)| (Location::Element(i), v))
            .collect());
    }
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = Location::Line(i + 1);
        let value = serde_json::from_str(line).map_err(|e| DatasetError::Record {
            origin: origin.to_string(),
            at,
            reason: format!("not JSON: {e}"),
        })?;
        out.push((at, value));
    }
    Ok(out)
}

fn prediction(value: Value, at: Location, origin: &str) -> Result<Prediction, DatasetError> {
    let bad = |reason: String| DatasetError::Record {
        origin: origin.to_string(),
        at,
        reason,
    };
    let Value::Object(map) = value else {
        return Err(bad("a prediction must be a JSON object".into()));
    };
    let id = map.get("id").and_then(|v| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    });
    let key = match map.get("index") {
        Some(v) => Some(
            v.as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| bad(format!("`index` must be a non-negative integer, not {v}")))?,
        ),
        None => match map.get("id") {
            Some(Value::Number(n)) => n.as_u64().and_then(|n| usize::try_from(n).ok()),
            Some(Value::String(s)) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
                s.parse().ok()
            }
            _ => None,
        },
    };

    let text = |name: &str| -> Result<Option<String>, DatasetError> {
        match map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(bad(format!("`{name}` must be a string, not {other}"))),
        }
    };

    let body =
        // Any verdict key besides `id` and `input` marks a verdict record.
        if VERDICT_KEYS[2..].iter().any(|k| map.contains_key(*k)) {
            // Lenient on values other tools may write differently: an unknown severity or an
            // out-of-range score is an unanswered field, not a broken file.
            let severity = text("severity")?.and_then(|s| s.parse::<Severity>().ok());
            let risk_score = map
                .get("risk_score")
                .and_then(|v| match v {
                    Value::Number(n) => n.as_f64(),
                    Value::String(s) => s.trim().parse().ok(),
                    _ => None,
                })
                .filter(|s| (0.0..=100.0).contains(s))
                .map(|s| s.round() as u8);
            let answer = Answer {
                threat_type: text("threat_type")?,
                technique_id: text("technique_id")?,
                technique_name: text("technique_name")?,
                tactic: text("tactic")?,
                severity,
                risk_score,
                evidence: text("evidence")?,
                impact: text("impact")?,
                recommendation: text("recommendation")?,
            };
            let mut verdict = Verdict::from_answer(
                id.clone().unwrap_or_default(),
                text("input")?.unwrap_or_default(),
                text("raw_output")?.unwrap_or_default(),
                answer,
            );
            verdict.category = text("category")?;
            verdict.confidence = map
                .get("confidence")
                .and_then(Value::as_f64)
                .filter(|c| (0.0..=1.0).contains(c))
                .map(|c| c as f32);
            PredictionBody::Verdict(Box::new(verdict))
        } else {
            match map.get("output") {
                Some(Value::String(s)) => PredictionBody::Raw(s.clone()),
                Some(Value::Null) => PredictionBody::Raw(String::new()),
                Some(other) => return Err(bad(format!("`output` must be a string, not {other}"))),
                None => return Err(bad(
                    "neither a verdict (threat_type, raw_output, ...) nor an {id, output} record"
                        .into(),
                )),
            }
        };
    Ok(Prediction { at, key, id, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples_from_json_list_and_jsonl() {
        let list = r#"[{"instruction": "i", "input": "GET /", "output": "THREAT_TYPE: X"},
                       {"input": "b", "output": "o", "extra": 1}]"#;
        let ex = parse_examples(list, "list.json").unwrap_or_default();
        assert_eq!(ex.len(), 2);
        assert_eq!((ex[1].index, ex[1].instruction.as_str()), (1, ""));
        let jsonl = "{\"instruction\":\"i\",\"input\":\"a\",\"output\":\"o\"}\n\n\
                     {\"instruction\":\"i\",\"input\":\"b\",\"output\":\"p\"}\n";
        let ex = parse_examples(jsonl, "x.jsonl").unwrap_or_default();
        assert_eq!(
            ex.iter().map(|e| e.input.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
    }

    #[test]
    fn corpus_keys_blank_or_wrong() {
        let jsonl = concat!(
            r#"{"input":"a","output":"o","source":" crs ","format":"","split":"validation"}"#,
            "\n",
            r#"{"input":"b","output":"o","source":7}"#,
        );
        let err = parse_examples(jsonl, "c.jsonl").map(|_| ()).unwrap_err();
        assert!(err.to_string().starts_with("c.jsonl, line 2:"), "{err}");
        let ex = parse_examples(jsonl.lines().next().unwrap_or_default(), "c").unwrap_or_default();
        assert_eq!(ex[0].source.as_deref(), Some("crs"));
        assert_eq!(ex[0].format, None);
        assert_eq!(ex[0].split.as_deref(), Some("validation"));
    }

    #[test]
    fn web_formats() {
        for web in [
            "access",
            "access-combined",
            "Access-Common",
            "w3c",
            "iis-w3c",
        ] {
            assert!(is_web_format(web), "{web}");
        }
        for other in [
            "syslog-3164",
            "sshd",
            "windows-xml",
            "accessibility",
            "plain",
            "",
        ] {
            assert!(!is_web_format(other), "{other}");
        }
    }

    #[test]
    fn lines_behind_incident_summaries() {
        assert_eq!(lines_behind("GET / HTTP/1.1 200"), 1);
        assert_eq!(
            lines_behind("a\n[... 36 more ...]\nb\n[...40 total failed auth attempts from x...]"),
            40
        );
        assert_eq!(
            lines_behind("Failed password [...29 total attempts...]"),
            29
        );
        // A head line that quotes a summary does not win over the entry's own.
        assert_eq!(
            lines_behind("GET /?q=[...9 total x] 200\n[...3 total requests from y...]"),
            3
        );
        // Not a count: no digits, no `total`, a zero, an overflow.
        for text in [
            "[...many total...]",
            "[...12 more...]",
            "[...0 total...]",
            "[...99999999999999999999999 total...]",
        ] {
            assert_eq!(lines_behind(text), 1, "{text}");
        }
    }

    #[test]
    fn malformed_examples_say_where() {
        let jsonl = "{\"input\":\"a\",\"output\":\"o\"}\n{\"input\":\"a\"}\n";
        let err = parse_examples(jsonl, "d.jsonl").map(|_| ()).unwrap_err();
        assert!(
            matches!(
                err,
                DatasetError::Record {
                    at: Location::Line(2),
                    ..
                }
            ),
            "{err}"
        );
        assert!(
            err.to_string()
                .starts_with("d.jsonl, line 2: not an Alpaca record"),
            "{err}"
        );
        let err = parse_examples("{\"input\":\"a\",\"output\":\"o\"}\n{oops\n", "d.jsonl")
            .map(|_| ())
            .unwrap_err();
        assert!(
            matches!(
                err,
                DatasetError::Record {
                    at: Location::Line(2),
                    ..
                }
            ),
            "{err}"
        );
        let err = parse_examples(
            r#"[{"input":"a","output":"o"}, {"input": 3, "output": "o"}]"#,
            "l",
        )
        .map(|_| ())
        .unwrap_err();
        assert!(
            matches!(
                err,
                DatasetError::Record {
                    at: Location::Element(1),
                    ..
                }
            ),
            "{err}"
        );
        assert!(matches!(
            parse_examples("[1,", "l"),
            Err(DatasetError::Json { .. })
        ));
        assert!(matches!(
            load_examples("/nonexistent/x.json"),
            Err(DatasetError::Io { .. })
        ));
    }

    #[test]
    fn prediction_shapes() {
        let text = concat!(
            r#"{"id": "access.log:1", "input": "GET /", "threat_type": "XSS", "severity": "high", "#,
            r#""risk_score": 71, "technique_id": "T1059.007", "raw_output": "THREAT_TYPE: XSS"}"#,
            "\n",
            r#"{"id": "b", "output": "SEVERITY: LOW"}"#,
            "\n",
            r#"{"id": "c", "threat_type": null, "severity": "URGENT", "risk_score": 450}"#,
        );
        let p = parse_predictions(text, "p.jsonl").unwrap_or_default();
        assert_eq!(p.len(), 3);
        let PredictionBody::Verdict(v) = &p[0].body else {
            panic!("verdict expected");
        };
        assert_eq!(v.severity, Some(Severity::High));
        assert_eq!(v.risk_score, Some(71));
        assert_eq!(p[0].text(), "THREAT_TYPE: XSS");
        assert_eq!(p[0].key, None);
        assert_eq!(p[1].body, PredictionBody::Raw("SEVERITY: LOW".into()));
        let PredictionBody::Verdict(v) = &p[2].body else {
            panic!("verdict expected");
        };
        assert_eq!(
            (v.severity, v.risk_score, v.threat_type.as_deref()),
            (None, None, None)
        );
    }

    #[test]
    fn malformed_predictions_are_errors() {
        for (text, want) in [
            ("[1]", "must be a JSON object"),
            (r#"{"id": "x"}"#, "neither a verdict"),
            (r#"{"output": 3}"#, "`output` must be a string"),
            (r#"{"index": -1, "output": ""}"#, "`index` must be"),
            (
                r#"{"threat_type": ["a"]}"#,
                "`threat_type` must be a string",
            ),
        ] {
            let err = parse_predictions(text, "p")
                .map(|_| ())
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    fn examples(n: usize) -> Vec<Example> {
        (0..n)
            .map(|index| Example {
                index,
                instruction: String::new(),
                input: format!("log {index}"),
                output: String::new(),
                source: None,
                format: None,
                split: None,
            })
            .collect()
    }

    fn slots(text: &str, n: usize) -> Result<Vec<Option<String>>, DatasetError> {
        let p = parse_predictions(text, "p")?;
        let ex = examples(n);
        Ok(align(&ex, &p, "p")?
            .into_iter()
            .map(|s| s.map(|p| p.text().to_string()))
            .collect())
    }

    #[test]
    fn alignment_by_position_and_by_key() {
        let by_position =
            "{\"id\":\"a.log:1\",\"output\":\"x\"}\n{\"id\":\"a.log:2\",\"output\":\"y\"}";
        let got = slots(by_position, 3).unwrap_or_default();
        assert_eq!(got, [Some("x".into()), Some("y".into()), None]);
        let by_key = "{\"id\":2,\"output\":\"x\"}\n{\"index\":0,\"output\":\"y\"}\n{\"id\":\"1\",\"output\":\"z\"}";
        let got = slots(by_key, 3).unwrap_or_default();
        assert_eq!(got, [Some("y".into()), Some("z".into()), Some("x".into())]);
    }

    #[test]
    fn alignment_errors() {
        let mixed = "{\"id\":0,\"output\":\"x\"}\n{\"id\":\"a\",\"output\":\"y\"}";
        assert!(matches!(
            slots(mixed, 2),
            Err(DatasetError::MixedMatching { .. })
        ));
        let dup = "{\"id\":0,\"output\":\"x\"}\n{\"index\":0,\"output\":\"y\"}";
        assert!(matches!(
            slots(dup, 2),
            Err(DatasetError::DuplicateKey {
                key: 0,
                first: Location::Line(1),
                ..
            })
        ));
        let far = "{\"id\":5,\"output\":\"x\"}";
        assert!(matches!(
            slots(far, 2),
            Err(DatasetError::KeyOutOfRange { key: 5, .. })
        ));
        let many = "{\"output\":\"x\"}\n{\"output\":\"y\"}";
        assert!(matches!(
            slots(many, 1),
            Err(DatasetError::TooManyPredictions { .. })
        ));
    }
}
