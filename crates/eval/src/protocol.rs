//! The two scoring protocols: how fields are read from an answer before comparison.
//!
//! * [`strict_field`]: the paper's protocol (Table II). A field is the first match of
//!   the regex `KEY[:\s]+([^\n,]+)` in the text as written (the key is case-sensitive,
//!   as in the paper's notebook), trimmed and upper-cased, and must equal the label's
//!   value read the same way. An answer that never writes `THREAT_TYPE` scores 0 however
//!   right it is: the paper's untuned 0 %.
//! * [`Fields::from_text`]: SOC-Bench v0. The answer is cut at the first `### ` loop
//!   marker, read with the tolerant [`opensoc_verdict::parse_answer`], fine types are
//!   mapped to canonical categories with the taxonomy, techniques and tactics are checked
//!   against ATT&CK.

use opensoc_attack::{parse_technique_field, Catalog, Taxonomy, TechniqueId};
use opensoc_verdict::{parse_answer, Answer, Severity, Verdict};
use serde::Serialize;

/// The strict protocol's keys for the two fields the paper scores.
pub const STRICT_THREAT_TYPE: &str = "THREAT_TYPE";
pub const STRICT_SEVERITY: &str = "SEVERITY";

/// Python's `\s` for `str` patterns: Unicode whitespace plus the ASCII separators
/// U+001C..U+001F that `str.isspace` counts and Rust's `char::is_whitespace` does not.
fn is_regex_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// The paper's extraction: the first match of `KEY[:\s]+([^\n,]+)`, trimmed and
/// upper-cased. `None` when the regex does not match.
///
/// Hand-written to keep the regex crate out of the build; it follows the regex's
/// backtracking exactly, including its odd corner (`KEY:  ,x` captures a lone space,
/// which trims to the empty string).
pub fn strict_field(text: &str, key: &str) -> Option<String> {
    if key.is_empty() {
        return None;
    }
    let mut from = 0;
    while let Some(found) = text.get(from..).and_then(|rest| rest.find(key)) {
        let after_key = from + found + key.len();
        if let Some(captured) = capture_after_key(&text[after_key..]) {
            return Some(captured.trim().to_uppercase());
        }
        // Leftmost match failed here; a regex search moves on to later occurrences.
        from = from + found + key.chars().next().map_or(1, char::len_utf8);
    }
    None
}

/// Matches `[:\s]+([^\n,]+)` at the start of `s` and returns the group.
fn capture_after_key(s: &str) -> Option<&str> {
    let is_sep = |c: char| c == ':' || is_regex_space(c);
    let is_value = |c: char| c != '\n' && c != ',';
    let run_end = s.find(|c: char| !is_sep(c)).unwrap_or(s.len());
    if run_end == 0 {
        return None;
    }
    if s[run_end..].starts_with(is_value) {
        let len = s[run_end..]
            .find(|c: char| !is_value(c))
            .unwrap_or(s.len() - run_end);
        return Some(&s[run_end..run_end + len]);
    }
    // Backtrack: give separator characters back, longest run first. The group then starts
    // at the last separator that is not a newline (keeping at least one in the run), and
    // since what follows it is only newlines, then `,`/end, it is that one character.
    let (start, c) = s[..run_end]
        .char_indices()
        .skip(1)
        .filter(|&(_, c)| is_value(c))
        .last()?;
    Some(&s[start..start + c.len_utf8()])
}

/// Cuts an answer at its first `### ` line, where a looping model starts a new prompt
/// section (`### Instruction:`); SOC-Bench scores only what comes before.
pub fn cut_at_loop_marker(text: &str) -> &str {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.trim_start().starts_with("### ") || line.trim() == "###" {
            return &text[..offset];
        }
        offset += line.len();
    }
    text
}

/// The fields of one answer (a label or a prediction) as both protocols read them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Fields {
    /// Strict protocol: the `THREAT_TYPE` value, upper-cased.
    pub strict_threat_type: Option<String>,
    /// Strict protocol: the `SEVERITY` value, upper-cased.
    pub strict_severity: Option<String>,
    /// The fine threat type, spelled as the taxonomy does when it knows the type,
    /// otherwise trimmed and upper-cased so that case does not matter.
    pub threat_type: Option<String>,
    /// Canonical category of the threat type.
    pub category: Option<String>,
    /// The technique ID, if the answer names one.
    pub technique_id: Option<TechniqueId>,
    /// The technique field was answered, with an ID or not (`N/A (N/A)` counts).
    pub technique_answered: bool,
    /// The tactic as written.
    pub tactic: Option<String>,
    /// The ATT&CK tactic ID (`TA0001`) the tactic names, if it names one.
    pub tactic_id: Option<&'static str>,
    pub severity: Option<Severity>,
    pub risk_score: Option<u8>,
}

impl Fields {
    /// Reads raw answer text: strict fields from the whole text, tolerant fields from
    /// the text before any loop marker.
    pub fn from_text(text: &str, taxonomy: &Taxonomy, catalog: &Catalog) -> Fields {
        let answer = parse_answer(cut_at_loop_marker(text));
        Fields::from_parts(text, &answer, None, taxonomy, catalog)
    }

    /// Reads a structured verdict: its fields for SOC-Bench, its `raw_output` for the
    /// strict protocol (an empty `raw_output` scores 0 there).
    pub fn from_verdict(v: &Verdict, taxonomy: &Taxonomy, catalog: &Catalog) -> Fields {
        // A verdict leaves technique and tactic null when none applies; its raw text
        // still shows whether the field was answered (`N/A`) or missing.
        let written = parse_answer(cut_at_loop_marker(&v.raw_output));
        let answer = Answer {
            threat_type: v.threat_type.clone(),
            technique_id: v.technique_id.clone(),
            technique_name: v.technique_name.clone().or(written.technique_name),
            tactic: v.tactic.clone().or(written.tactic),
            severity: v.severity,
            risk_score: v.risk_score,
            evidence: None,
            impact: None,
            recommendation: None,
        };
        Fields::from_parts(
            &v.raw_output,
            &answer,
            v.category.as_deref(),
            taxonomy,
            catalog,
        )
    }

    fn from_parts(
        raw: &str,
        answer: &Answer,
        stated_category: Option<&str>,
        taxonomy: &Taxonomy,
        catalog: &Catalog,
    ) -> Fields {
        let threat_type = answer.threat_type.as_deref().map(str::trim);
        let normalised = threat_type.filter(|t| !t.is_empty()).map(|t| {
            taxonomy
                .fine_type(t)
                .map_or_else(|| t.to_uppercase(), |f| f.name.clone())
        });
        // The threat type decides the category; a verdict's own category is the fallback
        // for systems that report only a category.
        let category = threat_type
            .and_then(|t| taxonomy.category_of(t))
            .or_else(|| stated_category.and_then(|c| taxonomy.category_of(c)))
            .map(str::to_string);
        let technique_id = answer.technique_id.as_deref().and_then(|t| {
            parse_technique_field(t)
                .map(|(id, _)| id)
                .or_else(|| t.parse().ok())
        });
        let tactic = answer
            .tactic
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty());
        Fields {
            strict_threat_type: strict_field(raw, STRICT_THREAT_TYPE),
            strict_severity: strict_field(raw, STRICT_SEVERITY),
            threat_type: normalised,
            category,
            technique_id,
            technique_answered: technique_id.is_some() || answer.technique_name.is_some(),
            tactic: tactic.map(str::to_string),
            tactic_id: tactic.and_then(|t| catalog.tactic(t)).map(|t| t.id),
            severity: answer.severity,
            risk_score: answer.risk_score,
        }
    }

    /// SOC-Bench's parse check: threat type, technique, tactic, severity and risk score
    /// are all present.
    pub fn is_complete(&self) -> bool {
        self.threat_type.is_some()
            && self.technique_answered
            && self.tactic.is_some()
            && self.severity.is_some()
            && self.risk_score.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_field_table() {
        let cases: &[(&str, Option<&str>)] = &[
            (
                "THREAT_TYPE: SQL Injection — Union/Boolean SQLi\n",
                Some("SQL INJECTION — UNION/BOOLEAN SQLI"),
            ),
            ("THREAT_TYPE:   xss, reflected", Some("XSS")),
            ("THREAT_TYPE\n\nBrute Force", Some("BRUTE FORCE")),
            ("THREAT_TYPE Brute Force", Some("BRUTE FORCE")),
            ("threat_type: xss", None),
            ("Threat Type: XSS", None),
            ("THREAT_TYPE:XSS", Some("XSS")),
            // No separator right after the key: this occurrence fails, the next one wins.
            ("THREAT_TYPEX\nTHREAT_TYPE: a", Some("A")),
            // Leftmost occurrence anywhere, even inside another word.
            ("MY_THREAT_TYPE: b", Some("B")),
            // Backtracking corners of `[:\s]+([^\n,]+)`.
            ("THREAT_TYPE:  ,x", Some("")),
            ("THREAT_TYPE::\n", Some(":")),
            ("THREAT_TYPE:\n", None),
            ("THREAT_TYPE:", None),
            ("THREAT_TYPE", None),
            ("", None),
        ];
        for (text, want) in cases {
            assert_eq!(
                strict_field(text, STRICT_THREAT_TYPE).as_deref(),
                *want,
                "{text:?}"
            );
        }
        assert_eq!(
            strict_field("SEVERITY: critical\n", STRICT_SEVERITY).as_deref(),
            Some("CRITICAL")
        );
        assert_eq!(
            strict_field("é THREAT_TYPE: é", STRICT_THREAT_TYPE).as_deref(),
            Some("É")
        );
        assert_eq!(strict_field("abc", ""), None);
    }

    /// The paper's documented failure: the untuned chat model answers in prose, right in
    /// substance, and the strict protocol gives it nothing; SOC-Bench reads it.
    #[test]
    fn free_text_scores_nothing_under_the_strict_protocol() {
        let prose = "This log shows a SQL injection attack against the /user endpoint. \
                     The severity is critical and the attacker should be blocked.";
        assert_eq!(strict_field(prose, STRICT_THREAT_TYPE), None);
        assert_eq!(strict_field(prose, STRICT_SEVERITY), None);
        let casual = "Threat type: SQL Injection\nSeverity: Critical";
        assert_eq!(strict_field(casual, STRICT_THREAT_TYPE), None);
        let f = Fields::from_text(casual, Taxonomy::builtin(), Catalog::enterprise());
        assert_eq!(f.strict_threat_type, None);
        assert_eq!(f.category.as_deref(), Some("SQL INJECTION"));
        assert_eq!(f.severity, Some(Severity::Critical));
    }

    #[test]
    fn loop_markers_cut_the_answer() {
        assert_eq!(cut_at_loop_marker("A: 1\n### Instruction:\nB"), "A: 1\n");
        assert_eq!(cut_at_loop_marker("A: 1\n  ### Input:"), "A: 1\n");
        assert_eq!(cut_at_loop_marker("A: 1\n###\nB"), "A: 1\n");
        assert_eq!(
            cut_at_loop_marker("A: ### not a line start"),
            "A: ### not a line start"
        );
        assert_eq!(cut_at_loop_marker("### Response:\nX"), "");
    }

    #[test]
    fn tolerant_fields() {
        let text = "threat type: sql injection — union/boolean sqli\n\
                    mitre technique: t1190 (Exploit Public-Facing Application)\n\
                    tactic: initial-access\nseverity: critical\nrisk: 90/100\n\
                    ### Instruction:\nTHREAT_TYPE: XSS";
        let f = Fields::from_text(text, Taxonomy::builtin(), Catalog::enterprise());
        assert_eq!(
            f.threat_type.as_deref(),
            Some("SQL Injection — Union/Boolean SQLi")
        );
        assert_eq!(f.category.as_deref(), Some("SQL INJECTION"));
        assert_eq!(
            f.technique_id.map(|t| t.to_string()).as_deref(),
            Some("T1190")
        );
        assert_eq!(f.tactic_id, Some("TA0001"));
        assert_eq!(f.risk_score, Some(90));
        assert!(f.is_complete());
        // The strict protocol reads the whole text and finds only the looped section.
        assert_eq!(f.strict_threat_type.as_deref(), Some("XSS"));
    }

    #[test]
    fn no_threat_label_is_complete() {
        let text = "THREAT_TYPE: No Threat Detected — Normal Traffic\nMITRE_TECHNIQUE: N/A (N/A)\n\
                    MITRE_TACTIC: N/A\nSEVERITY: LOW\nRISK_SCORE: 3";
        let f = Fields::from_text(text, Taxonomy::builtin(), Catalog::enterprise());
        assert!(f.is_complete());
        assert_eq!((f.technique_id, f.tactic_id), (None, None));
        assert_eq!(f.category.as_deref(), Some("NO THREAT"));
    }

    #[test]
    fn verdict_fields_and_category_fallback() {
        let mut v = Verdict::from_answer("a".into(), "x".into(), String::new(), Answer::default());
        v.category = Some("xss".into());
        v.technique_id = Some("t1059.007".into());
        let f = Fields::from_verdict(&v, Taxonomy::builtin(), Catalog::enterprise());
        assert_eq!(f.category.as_deref(), Some("XSS"));
        assert_eq!(
            f.technique_id.map(|t| t.to_string()).as_deref(),
            Some("T1059.007")
        );
        assert_eq!(f.strict_threat_type, None);
        assert!(!f.is_complete());
    }
}
