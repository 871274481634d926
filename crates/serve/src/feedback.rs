//! The analyst's reviews as training records: `{instruction, input, output}` in the
//! format `opensoc train` reads, the output an answer block written the way the corpus
//! writes them (`THREAT_TYPE: ...` to `RECOMMENDATION: ...`).
//!
//! - **confirmed**: the verdict as the model gave it (fields it left out take the
//!   taxonomy's values for its threat type);
//! - **false positive**: "No Threat Detected — Normal Traffic", so the adapter learns this
//!   site's normal;
//! - **relabelled**: the analyst's threat type with its taxonomy technique and tactic, the
//!   analyst's severity when given.

use std::io::Write;

use opensoc_attack::Taxonomy;
use opensoc_corpus::label::{self, fine, Facts};
use opensoc_verdict::{parse_answer, Answer, Severity};
use serde::Serialize;

use crate::store::{Alert, Review};

/// One record for `opensoc train --data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrainingRecord {
    /// Empty: the trainer uses the default instruction, as for the corpus.
    pub instruction: String,
    /// The entry text as the model reads it.
    pub input: String,
    pub output: String,
}

/// Why a reviewed alert gave no record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unusable {
    pub alert: i64,
    pub reason: String,
}

/// Evidence stays one short line: the answer format is line-based.
fn one_line(s: &str) -> String {
    let joined = s.split_whitespace().collect::<Vec<_>>().join(" ");
    joined.chars().take(300).collect()
}

fn severity_word(s: Severity) -> &'static str {
    s.as_str()
}

/// The answer block for `fields`.
fn render(a: &Answer) -> String {
    let technique = match (&a.technique_id, &a.technique_name) {
        (Some(id), Some(name)) => format!("{id} ({name})"),
        (Some(id), None) => id.clone(),
        _ => "N/A (N/A)".to_owned(),
    };
    format!(
        "THREAT_TYPE: {}\nMITRE_TECHNIQUE: {technique}\nMITRE_TACTIC: {}\nSEVERITY: {}\nRISK_SCORE: {}\nEVIDENCE: {}\nIMPACT: {}\nRECOMMENDATION: {}",
        a.threat_type.as_deref().unwrap_or("Unknown"),
        a.tactic.as_deref().unwrap_or("N/A"),
        a.severity.map(severity_word).unwrap_or("LOW"),
        a.risk_score.unwrap_or(0),
        one_line(a.evidence.as_deref().unwrap_or("")),
        one_line(a.impact.as_deref().unwrap_or("")),
        one_line(a.recommendation.as_deref().unwrap_or("")),
    )
}

/// The corpus answer for a taxonomy type, parsed back into fields.
fn taxonomy_answer(fine_type: &str, facts: &Facts) -> Result<Answer, String> {
    let (text, _) = label::answer(fine_type, facts).map_err(|e| e.to_string())?;
    Ok(parse_answer(&text))
}

/// The training record for one reviewed alert.
pub fn record(alert: &Alert) -> Result<TrainingRecord, String> {
    let verdict = alert
        .verdict
        .as_ref()
        .ok_or_else(|| "no verdict stored".to_owned())?;
    let facts = |evidence: String| Facts {
        status: None,
        events: alert.events.max(1) as usize,
        evidence,
    };
    let answer = match alert.status {
        Review::New => return Err("not reviewed".to_owned()),
        Review::FalsePositive => {
            let evidence = match &alert.note {
                Some(note) => format!("Expected activity at this site (analyst: {note})."),
                None => "Expected activity at this site, as its analyst confirmed.".to_owned(),
            };
            taxonomy_answer(fine::BENIGN, &facts(evidence))?
        }
        Review::Relabelled => {
            let ty = alert
                .label_type
                .as_deref()
                .ok_or_else(|| "relabelled without a threat type".to_owned())?;
            let evidence = verdict
                .evidence
                .clone()
                .unwrap_or_else(|| format!("The entry shows {ty}."));
            let f = facts(evidence);
            let mut a = taxonomy_answer(ty, &f)?;
            if let Some(sev) = alert.label_severity {
                a.severity = Some(sev);
                let benign = ty == fine::BENIGN;
                a.risk_score = Some(label::risk_score(sev.as_str(), benign, &f).min(100) as u8);
            }
            a
        }
        Review::Confirmed => {
            let mut a = Answer {
                threat_type: verdict.threat_type.clone(),
                technique_id: verdict.technique_id.clone(),
                technique_name: verdict.technique_name.clone(),
                tactic: verdict.tactic.clone(),
                severity: verdict.severity,
                risk_score: verdict.risk_score,
                evidence: verdict.evidence.clone(),
                impact: verdict.impact.clone(),
                recommendation: verdict.recommendation.clone(),
            };
            let ty = a
                .threat_type
                .clone()
                .ok_or_else(|| "the verdict has no threat type".to_owned())?;
            // Fields the model left out (a run with --no-narrative) from the taxonomy.
            if let Some(ft) = Taxonomy::builtin().fine_type(&ty) {
                let d = taxonomy_answer(&ft.name, &facts(a.evidence.clone().unwrap_or_default()))?;
                a.technique_id = a.technique_id.or(d.technique_id);
                a.technique_name = a.technique_name.or(d.technique_name);
                a.tactic = a.tactic.or(d.tactic);
                a.severity = a.severity.or(d.severity);
                a.risk_score = a.risk_score.or(d.risk_score);
                a.evidence = a.evidence.or(d.evidence);
                a.impact = a.impact.or(d.impact);
                a.recommendation = a.recommendation.or(d.recommendation);
            }
            a
        }
    };
    Ok(TrainingRecord {
        instruction: String::new(),
        input: alert.text.clone(),
        output: render(&answer),
    })
}

/// Writes one JSONL record per usable reviewed alert, each `repeat` times (corrections
/// are few beside a corpus: repeating them weighs them up). Returns how many alerts gave
/// records and the ones that could not.
pub fn write_jsonl(
    alerts: &[Alert],
    repeat: usize,
    mut out: impl Write,
) -> std::io::Result<(usize, Vec<Unusable>)> {
    let mut written = 0;
    let mut unusable = Vec::new();
    for alert in alerts {
        match record(alert) {
            Ok(rec) => {
                let line = serde_json::to_string(&rec).map_err(std::io::Error::other)?;
                for _ in 0..repeat.max(1) {
                    writeln!(out, "{line}")?;
                }
                written += 1;
            }
            Err(reason) => unusable.push(Unusable {
                alert: alert.id,
                reason,
            }),
        }
    }
    Ok((written, unusable))
}

#[cfg(test)]
mod tests {
    use super::*;
    use opensoc_verdict::Verdict;

    fn alert(status: Review, text: &str) -> Alert {
        let mut v = Verdict::from_answer(
            "a.log:1".into(),
            text.into(),
            String::new(),
            parse_answer(
                "THREAT_TYPE: SQL Injection — Union/Boolean SQLi\nMITRE_TECHNIQUE: T1190 (Exploit Public-Facing Application)\nMITRE_TACTIC: Initial Access\nSEVERITY: HIGH\nRISK_SCORE: 80\nEVIDENCE: UNION SELECT in the id parameter\nIMPACT: Data theft.\nRECOMMENDATION: Block it.",
            ),
        );
        v.category = Some("SQL INJECTION".into());
        Alert {
            id: 7,
            received_at: 0,
            source: "api:test".into(),
            entry_id: "a.log:1".into(),
            text: text.into(),
            events: 1,
            state: "analysed".into(),
            error: None,
            threat_type: v.threat_type.clone(),
            category: v.category.clone(),
            technique_id: v.technique_id.clone(),
            tactic: v.tactic.clone(),
            severity: v.severity,
            risk_score: Some(80),
            confidence: None,
            status,
            label_type: None,
            label_severity: None,
            note: None,
            reviewed_at: Some(1),
            verdict: Some(v),
        }
    }

    #[test]
    fn a_confirmed_alert_teaches_its_verdict() {
        let rec = record(&alert(Review::Confirmed, "GET /?id=1 UNION SELECT 1")).unwrap();
        assert_eq!(rec.input, "GET /?id=1 UNION SELECT 1");
        let back = parse_answer(&rec.output);
        assert_eq!(
            back.threat_type.as_deref(),
            Some("SQL Injection — Union/Boolean SQLi")
        );
        assert_eq!(back.technique_id.as_deref(), Some("T1190"));
        assert_eq!(back.severity, Some(Severity::High));
        assert_eq!(back.risk_score, Some(80));
    }

    #[test]
    fn a_false_positive_teaches_no_threat_with_the_note() {
        let mut a = alert(Review::FalsePositive, "GET /health?q=select");
        a.note = Some("our monitoring probe".into());
        let rec = record(&a).unwrap();
        let back = parse_answer(&rec.output);
        assert_eq!(back.threat_type.as_deref(), Some(fine::BENIGN));
        assert_eq!(back.technique_id, None);
        assert_eq!(back.severity, Some(Severity::Low));
        assert!(back.risk_score.unwrap() <= 10);
        assert!(rec.output.contains("our monitoring probe"));
        // The record reads back as a training record.
        let json = serde_json::to_string(&rec).unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["instruction"], "");
    }

    #[test]
    fn a_relabel_takes_the_new_types_technique_and_the_analysts_severity() {
        let mut a = alert(Review::Relabelled, "GET /?cmd=;cat /etc/passwd");
        a.label_type = Some("OS Command Injection Attempt".into());
        a.label_severity = Some(Severity::Critical);
        let rec = record(&a).unwrap();
        let back = parse_answer(&rec.output);
        assert_eq!(
            back.threat_type.as_deref(),
            Some("OS Command Injection Attempt")
        );
        assert_eq!(back.technique_id.as_deref(), Some("T1059.004"));
        assert_eq!(back.severity, Some(Severity::Critical));
    }

    #[test]
    fn unreviewed_or_verdictless_alerts_give_no_record() {
        assert!(record(&alert(Review::New, "x")).is_err());
        let mut a = alert(Review::Confirmed, "x");
        a.verdict = None;
        let (n, bad) = write_jsonl(&[a, alert(Review::Confirmed, "y")], 3, Vec::new()).unwrap();
        assert_eq!(n, 1);
        assert_eq!(bad.len(), 1);
        let mut buf = Vec::new();
        write_jsonl(&[alert(Review::Confirmed, "y")], 3, &mut buf).unwrap();
        assert_eq!(String::from_utf8(buf).unwrap().lines().count(), 3);
    }
}
