//! The verdict schema and the tolerant parser of the model's answer.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How bad a finding is. Ordered: `Low < Medium < High < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 4] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "LOW",
            Severity::Medium => "MEDIUM",
            Severity::High => "HIGH",
            Severity::Critical => "CRITICAL",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown severity {0:?} (expected CRITICAL, HIGH, MEDIUM or LOW)")]
pub struct ParseSeverityError(pub String);

impl FromStr for Severity {
    type Err = ParseSeverityError;

    /// Case-insensitive; anything but the four levels is an error, never a silent default.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_uppercase().as_str() {
            "CRITICAL" => Ok(Severity::Critical),
            "HIGH" => Ok(Severity::High),
            "MEDIUM" => Ok(Severity::Medium),
            "LOW" => Ok(Severity::Low),
            _ => Err(ParseSeverityError(s.to_string())),
        }
    }
}

/// The keys every verdict object carries (null when unknown): the public JSONL interface
/// of `opensoc analyze`. Later additions (`confidence`, `needs_review`, `warnings`) are
/// optional for readers.
pub const VERDICT_KEYS: [&str; 13] = [
    "id",
    "input",
    "threat_type",
    "category",
    "technique_id",
    "technique_name",
    "tactic",
    "severity",
    "risk_score",
    "evidence",
    "impact",
    "recommendation",
    "raw_output",
];

/// One analysed entry. The field names are the public JSONL interface of `opensoc analyze`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Source and line(s) of the entry, e.g. `access.log:12`.
    pub id: String,
    /// The log text the model read.
    pub input: String,
    /// Fine threat type as the model wrote it, e.g. `SQL Injection — Union/Boolean SQLi`.
    pub threat_type: Option<String>,
    /// Canonical category of the threat type, e.g. `SQL INJECTION`.
    pub category: Option<String>,
    pub technique_id: Option<String>,
    pub technique_name: Option<String>,
    pub tactic: Option<String>,
    pub severity: Option<Severity>,
    /// 0-100.
    pub risk_score: Option<u8>,
    pub evidence: Option<String>,
    pub impact: Option<String>,
    pub recommendation: Option<String>,
    /// The model's text, unedited.
    pub raw_output: String,
    /// Under constrained decoding: the probability the model gave its least certain
    /// categorical field (threat type, technique, tactic, severity) against the alternatives.
    #[serde(default)]
    pub confidence: Option<f32>,
    /// Set when `confidence` is below the user's threshold: a person should look.
    #[serde(default)]
    pub needs_review: bool,
    /// Problems found while producing this verdict (input shortened, unknown technique...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// What decided the verdict: `model`, or `fast-path` (a triage rule, no model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    /// The fast-path rule, when `decided_by` is `fast-path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fast_path_rule: Option<String>,
    /// Detector hits in the entry, with byte offsets in `input`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signals: Vec<DetectorHit>,
    /// Set when the verdict's decided fields were reused from the verdict cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheUse>,
    /// The parts of `input` the verdict rests on, chosen by deterministic code (parsers'
    /// fields, the incident summary, detector hits), never written by the model;
    /// `evidence` is the one-line reading of them unless the model wrote it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence_spans: Vec<EvidenceSpan>,
    /// Who wrote `evidence`, `impact` and `recommendation`: `playbook` (spans and the
    /// reviewed playbook) or `model` (generated text); absent when they are null.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub narrative_source: Option<String>,
}

/// How a verdict came from the verdict cache (`opensoc-cache`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheUse {
    /// Entries that reused this cached verdict so far, this one included.
    pub hits: u64,
}

/// One piece of evidence: a slice of the verdict's `input`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceSpan {
    /// Byte offsets in `input`.
    pub start: usize,
    pub end: usize,
    /// `input[start..end]`, or its decoded form when `decoded`.
    pub text: String,
    /// What the slice is: `source-address`, `user`, `sqli`, `incident-count`, ...
    /// (the list is in `docs/PLAYBOOK.md`).
    pub what: String,
    #[serde(default)]
    pub decoded: bool,
}

/// One detector hit on the entry (see `opensoc-triage`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetectorHit {
    /// Signal class: `sqli`, `xss`, `command-injection`, `path-traversal`,
    /// `file-inclusion`, `malicious-command`, `scanner`, `probe`, `large-response`,
    /// `auth-failure`, `log-injection`.
    pub class: String,
    /// The detector rule that fired.
    pub rule: String,
    /// Byte offsets of the slice of `input` the rule looked at.
    pub start: usize,
    pub end: usize,
    /// What it matched in: the slice, or its decoded form when `decoded`.
    pub text: String,
    #[serde(default)]
    pub decoded: bool,
}

impl Verdict {
    /// A verdict from the parsed answer; `category` is left for the caller's taxonomy.
    pub fn from_answer(id: String, input: String, raw_output: String, answer: Answer) -> Verdict {
        Verdict {
            id,
            input,
            threat_type: answer.threat_type,
            category: None,
            technique_id: answer.technique_id,
            technique_name: answer.technique_name,
            tactic: answer.tactic,
            severity: answer.severity,
            risk_score: answer.risk_score,
            evidence: answer.evidence,
            impact: answer.impact,
            recommendation: answer.recommendation,
            raw_output,
            confidence: None,
            needs_review: false,
            warnings: Vec::new(),
            decided_by: None,
            fast_path_rule: None,
            signals: Vec::new(),
            cache: None,
            evidence_spans: Vec::new(),
            narrative_source: None,
        }
    }
}

/// The fields of the answer format, in the order the model is taught to write them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    ThreatType,
    MitreTechnique,
    MitreTactic,
    Severity,
    RiskScore,
    Evidence,
    Impact,
    Recommendation,
}

impl Field {
    pub const ALL: [Field; 8] = [
        Field::ThreatType,
        Field::MitreTechnique,
        Field::MitreTactic,
        Field::Severity,
        Field::RiskScore,
        Field::Evidence,
        Field::Impact,
        Field::Recommendation,
    ];

    /// The key as the training data writes it.
    pub fn key(self) -> &'static str {
        match self {
            Field::ThreatType => "THREAT_TYPE",
            Field::MitreTechnique => "MITRE_TECHNIQUE",
            Field::MitreTactic => "MITRE_TACTIC",
            Field::Severity => "SEVERITY",
            Field::RiskScore => "RISK_SCORE",
            Field::Evidence => "EVIDENCE",
            Field::Impact => "IMPACT",
            Field::Recommendation => "RECOMMENDATION",
        }
    }

    /// Recognises a key written with any case and any of ` `, `_`, `-` between words,
    /// plus the short forms small models tend to write.
    fn from_key(key: &str) -> Option<Field> {
        let norm: String = key
            .trim()
            .chars()
            .filter(|c| !matches!(c, '*' | '`' | '#'))
            .map(|c| match c {
                ' ' | '-' => '_',
                c => c.to_ascii_uppercase(),
            })
            .collect();
        Some(match norm.trim_matches('_') {
            "THREAT_TYPE" | "THREAT" | "TYPE" => Field::ThreatType,
            "MITRE_TECHNIQUE"
            | "MITRE_ATT&CK_TECHNIQUE"
            | "TECHNIQUE"
            | "MITRE_TECHNIQUE_ID"
            | "TECHNIQUE_ID" => Field::MitreTechnique,
            "MITRE_TACTIC" | "TACTIC" => Field::MitreTactic,
            "SEVERITY" => Field::Severity,
            "RISK_SCORE" | "RISK" => Field::RiskScore,
            "EVIDENCE" => Field::Evidence,
            "IMPACT" => Field::Impact,
            "RECOMMENDATION" | "RECOMMENDATIONS" => Field::Recommendation,
            _ => return None,
        })
    }
}

/// The fields read from a model's answer; `None` where the answer lacks or garbles one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Answer {
    pub threat_type: Option<String>,
    pub technique_id: Option<String>,
    pub technique_name: Option<String>,
    pub tactic: Option<String>,
    pub severity: Option<Severity>,
    pub risk_score: Option<u8>,
    pub evidence: Option<String>,
    pub impact: Option<String>,
    pub recommendation: Option<String>,
}

/// Reads `KEY: value` lines from a model's answer.
///
/// Tolerant by design (the model is small): keys in any case and separator style, `:` or
/// `=` after the key, markdown bullets and bold, values continued on following lines. Reading
/// stops at the first `###` line, where a looping model starts a new prompt section. The
/// first occurrence of a field wins.
pub fn parse_answer(text: &str) -> Answer {
    let mut raw: Vec<(Field, String)> = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("###") {
            break;
        }
        if let Some((field, value)) = split_key(trimmed) {
            raw.push((field, value.to_string()));
        } else if let Some((_, value)) = raw.last_mut() {
            // A continuation line (numbered recommendations, wrapped evidence).
            if !trimmed.is_empty() {
                if !value.is_empty() {
                    value.push(' ');
                }
                value.push_str(trimmed);
            }
        }
    }

    let mut answer = Answer::default();
    for (field, value) in raw {
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        match field {
            Field::ThreatType => set_once(&mut answer.threat_type, value.to_string()),
            Field::MitreTechnique => {
                if answer.technique_id.is_none() {
                    let (id, name) = split_technique(value);
                    answer.technique_id = id;
                    answer.technique_name = name;
                }
            }
            Field::MitreTactic => set_once(&mut answer.tactic, value.to_string()),
            Field::Severity => {
                if answer.severity.is_none() {
                    answer.severity = first_word(value).parse().ok();
                }
            }
            Field::RiskScore => {
                if answer.risk_score.is_none() {
                    answer.risk_score = leading_score(value);
                }
            }
            Field::Evidence => set_once(&mut answer.evidence, value.to_string()),
            Field::Impact => set_once(&mut answer.impact, value.to_string()),
            Field::Recommendation => set_once(&mut answer.recommendation, value.to_string()),
        }
    }
    answer
}

fn set_once(slot: &mut Option<String>, value: String) {
    if slot.is_none() {
        *slot = Some(value);
    }
}

/// Splits `- **Threat Type**: value` into the field and its value.
fn split_key(line: &str) -> Option<(Field, &str)> {
    let line = line.trim_start_matches(['-', '*', ' ']);
    let sep = line.find([':', '='])?;
    // Keys are short; a colon far into the line is part of a sentence.
    if sep > 32 {
        return None;
    }
    let field = Field::from_key(&line[..sep])?;
    let value = line[sep + 1..].trim_start_matches(['*', ' ']).trim_end();
    Some((field, value))
}

fn first_word(value: &str) -> &str {
    value
        .split(|c: char| !c.is_ascii_alphabetic())
        .find(|w| !w.is_empty())
        .unwrap_or("")
}

/// `83`, `83/100`, `83 (high)`; anything over 100 is not a score.
fn leading_score(value: &str) -> Option<u8> {
    let digits: String = value
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse::<u8>().ok().filter(|&s| s <= 100)
}

/// `T1190 (Exploit Public-Facing Application)` -> (`T1190`, `Exploit Public-Facing Application`).
/// The ID is returned as written (upper-cased); checking it against ATT&CK is the caller's job.
fn split_technique(value: &str) -> (Option<String>, Option<String>) {
    let bytes = value.as_bytes();
    let mut id = None;
    let mut after = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !(b == b'T' || b == b't') || (i > 0 && bytes[i - 1].is_ascii_alphanumeric()) {
            continue;
        }
        let digits = bytes[i + 1..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if digits != 4 {
            continue;
        }
        let mut end = i + 1 + digits;
        if bytes.get(end) == Some(&b'.') {
            let sub = bytes[end + 1..]
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .count();
            if sub > 0 {
                end += 1 + sub;
            }
        }
        id = Some(value[i..end].to_ascii_uppercase());
        after = end;
        break;
    }
    let rest = value[after..].trim();
    let name = if let Some(inner) = rest.strip_prefix('(') {
        inner.rsplit_once(')').map_or(inner, |(n, _)| n).trim()
    } else {
        rest.trim_start_matches(['-', ':', '—', ' '])
    };
    let name = (!name.is_empty() && (id.is_some() || !rest.is_empty())).then(|| name.to_string());
    (id, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LABEL: &str = "THREAT_TYPE: SQL Injection — Union/Boolean SQLi\n\
MITRE_TECHNIQUE: T1190 (Exploit Public-Facing Application)\n\
MITRE_TACTIC: Initial Access\n\
SEVERITY: CRITICAL\n\
RISK_SCORE: 83\n\
EVIDENCE: burpsuite executing Union/Boolean SQLi via /profile endpoint. HTTP 403 response.\n\
IMPACT: Potential full database compromise.\n\
RECOMMENDATION: 1) IMMEDIATE: Block IP 2) Implement parameterized queries";

    #[test]
    fn reads_the_training_format() {
        let a = parse_answer(LABEL);
        assert_eq!(
            a.threat_type.as_deref(),
            Some("SQL Injection — Union/Boolean SQLi")
        );
        assert_eq!(a.technique_id.as_deref(), Some("T1190"));
        assert_eq!(
            a.technique_name.as_deref(),
            Some("Exploit Public-Facing Application")
        );
        assert_eq!(a.tactic.as_deref(), Some("Initial Access"));
        assert_eq!(a.severity, Some(Severity::Critical));
        assert_eq!(a.risk_score, Some(83));
        assert_eq!(
            a.recommendation.as_deref(),
            Some("1) IMMEDIATE: Block IP 2) Implement parameterized queries")
        );
    }

    #[test]
    fn tolerates_markdown_case_and_continuations() {
        let text =
            "- **Threat Type**: Cross-Site Scripting\n* severity = high\nRisk score: 71/100\n\
Recommendation:\n1) Encode output\n2) Add CSP\n### Input:\nTHREAT_TYPE: ignored";
        let a = parse_answer(text);
        assert_eq!(a.threat_type.as_deref(), Some("Cross-Site Scripting"));
        assert_eq!(a.severity, Some(Severity::High));
        assert_eq!(a.risk_score, Some(71));
        assert_eq!(
            a.recommendation.as_deref(),
            Some("1) Encode output 2) Add CSP")
        );
    }

    #[test]
    fn free_text_without_keys_yields_nothing() {
        let a = parse_answer("This log looks like an attack. The attacker tried: many things.");
        assert_eq!(a, Answer::default());
    }

    #[test]
    fn garbage_values_are_none_not_defaults() {
        let a = parse_answer("SEVERITY: Urgent\nRISK_SCORE: 450\nMITRE_TECHNIQUE: unknown");
        assert_eq!(a.severity, None);
        assert_eq!(a.risk_score, None);
        assert_eq!(a.technique_id, None);
        assert_eq!(a.technique_name.as_deref(), Some("unknown"));
    }

    #[test]
    fn technique_forms() {
        assert_eq!(
            split_technique("t1059.001 - PowerShell"),
            (Some("T1059.001".into()), Some("PowerShell".into()))
        );
        assert_eq!(split_technique("T1110"), (Some("T1110".into()), None));
        assert_eq!(split_technique("AT12345"), (None, Some("AT12345".into())));
    }

    #[test]
    fn severity_is_ordered_and_strict() {
        assert!(Severity::Critical > Severity::High && Severity::Medium > Severity::Low);
        assert_eq!("medium".parse::<Severity>(), Ok(Severity::Medium));
        assert!("UNDEFINED".parse::<Severity>().is_err());
    }

    #[test]
    fn verdict_json_uses_public_keys() {
        let v = Verdict::from_answer(
            "a.log:1".into(),
            "x".into(),
            LABEL.into(),
            parse_answer(LABEL),
        );
        let json = serde_json::to_value(&v).unwrap();
        for key in VERDICT_KEYS {
            assert!(json.get(key).is_some(), "missing key {key}");
        }
        assert_eq!(json["severity"], "CRITICAL");
        assert!(json["category"].is_null());
    }
}
