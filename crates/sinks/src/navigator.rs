//! ATT&CK Navigator layers (layer format 4.5, Enterprise domain) that score techniques
//! by how many alerts name them and how severe those are.

use std::collections::BTreeMap;
use std::io::BufRead;

use opensoc_attack::{Catalog, TechniqueId};
use opensoc_verdict::Verdict;
use serde_json::{json, Value};

use crate::level::{Level, LEVELS};
use crate::SinkError;

/// Layer format and Navigator versions the layer declares.
pub const LAYER_FORMAT: &str = "4.5";
pub const NAVIGATOR_VERSION: &str = "5.1.0";
pub const DOMAIN: &str = "enterprise-attack";

/// Alerts counted for one technique (under one tactic, or all of its tactics).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Tally {
    /// Alerts per level, indexed like [`LEVELS`].
    by_level: [u32; 5],
    max_risk: Option<u8>,
}

impl Tally {
    fn alerts(&self) -> u32 {
        self.by_level.iter().sum()
    }

    /// The sum of the alerts' level weights: a critical alert counts four low ones.
    fn score(&self) -> u32 {
        self.by_level
            .iter()
            .zip(LEVELS.iter())
            .map(|(n, row)| n * row.navigator_weight)
            .sum()
    }

    fn comment(&self) -> String {
        let parts: Vec<String> = LEVELS
            .iter()
            .rev()
            .zip(self.by_level.iter().rev())
            .filter(|(_, &n)| n > 0)
            .map(|(row, n)| format!("{n} {}", row.sigma))
            .collect();
        let alerts = self.alerts();
        let mut text = format!(
            "{alerts} alert{}: {}",
            if alerts == 1 { "" } else { "s" },
            parts.join(", ")
        );
        if let Some(r) = self.max_risk {
            text.push_str(&format!("; highest risk score {r}"));
        }
        text
    }
}

/// Why a verdict added nothing to a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Informational: a `NO THREAT` verdict or one without a severity.
    NotAnAlert,
    /// No technique, or one ATT&CK Enterprise does not have.
    UnknownTechnique,
}

/// Collects verdicts into a layer.
#[derive(Debug, Default)]
pub struct LayerBuilder {
    /// Keyed by technique and the tactic shortname the verdict placed it under (`None`:
    /// under every tactic of the technique).
    tallies: BTreeMap<(TechniqueId, Option<&'static str>), Tally>,
    added: usize,
    not_alerts: usize,
    unknown: usize,
}

impl LayerBuilder {
    pub fn new() -> Self {
        LayerBuilder::default()
    }

    /// Counts one verdict.
    pub fn add(&mut self, verdict: &Verdict) -> Result<(), Skip> {
        let level = Level::of(verdict);
        if level == Level::Informational {
            self.not_alerts += 1;
            return Err(Skip::NotAnAlert);
        }
        let catalog = Catalog::enterprise();
        let Some(technique) = verdict
            .technique_id
            .as_deref()
            .and_then(|id| id.parse::<TechniqueId>().ok())
            .and_then(|id| catalog.resolve(&id))
        else {
            self.unknown += 1;
            return Err(Skip::UnknownTechnique);
        };
        // The verdict's tactic when it is one of the technique's; otherwise the score
        // shows under all of them.
        let tactic = verdict
            .tactic
            .as_deref()
            .and_then(|name| catalog.tactic(name))
            .filter(|t| technique.tactics.contains(t))
            .map(|t| t.shortname);
        let tally = self.tallies.entry((technique.id, tactic)).or_default();
        tally.by_level[level as usize] += 1;
        tally.max_risk = tally.max_risk.max(verdict.risk_score);
        self.added += 1;
        Ok(())
    }

    /// Verdicts counted, and those skipped as not alerts or for an unknown technique.
    pub fn counts(&self) -> (usize, usize, usize) {
        (self.added, self.not_alerts, self.unknown)
    }

    /// The layer document.
    pub fn build(&self, name: &str) -> Value {
        let attack_version = Catalog::enterprise().version();
        let major = attack_version.split('.').next().unwrap_or(attack_version);
        let techniques: Vec<Value> = self
            .tallies
            .iter()
            .map(|((id, tactic), tally)| {
                let mut t = json!({
                    "techniqueID": id.to_string(),
                    "score": tally.score(),
                    "comment": tally.comment(),
                    "enabled": true,
                    "metadata": [{ "name": "alerts", "value": tally.alerts().to_string() }],
                });
                if let Some(tactic) = tactic {
                    t["tactic"] = json!(tactic);
                }
                t
            })
            .collect();
        let max_score = self
            .tallies
            .values()
            .map(Tally::score)
            .max()
            .unwrap_or(0)
            .max(1);
        json!({
            "name": name,
            "versions": { "attack": major, "navigator": NAVIGATOR_VERSION, "layer": LAYER_FORMAT },
            "domain": DOMAIN,
            "description": format!(
                "OpenSOC alerts by ATT&CK technique: score = sum over alerts of the level weight (low 1, medium 2, high 3, critical 4); {} alerts.",
                self.added
            ),
            "sorting": 3,
            "layout": {
                "layout": "side",
                "showID": true,
                "showName": true,
                "expandedSubtechniques": "annotated",
            },
            "hideDisabled": false,
            "techniques": techniques,
            "gradient": { "colors": ["#ffffff", "#ffe766", "#ff6666"], "minValue": 0, "maxValue": max_score },
            "legendItems": [],
            "metadata": [{ "name": "generated by", "value": "opensoc export navigator" }],
        })
    }
}

/// Reads a JSONL file of verdicts: each line is a verdict, or an error that names the
/// file and line (blank lines are skipped).
pub fn read_verdicts<'a, R: BufRead + 'a>(
    reader: R,
    path: &'a str,
) -> impl Iterator<Item = Result<Verdict, SinkError>> + 'a {
    reader.lines().enumerate().filter_map(move |(i, line)| {
        let line_no = i + 1;
        let bad = |reason: String| SinkError::BadVerdict {
            path: path.to_string(),
            line: line_no,
            reason,
        };
        match line {
            Err(e) => Some(Err(bad(e.to_string()))),
            Ok(l) if l.trim().is_empty() => None,
            Ok(l) => Some(serde_json::from_str::<Verdict>(&l).map_err(|e| bad(e.to_string()))),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::tests::brute_force;
    use opensoc_verdict::Severity;

    #[test]
    fn scores_by_count_and_severity() {
        let mut b = LayerBuilder::new();
        let mut v = brute_force();
        b.add(&v).unwrap();
        v.severity = Some(Severity::Critical);
        v.risk_score = Some(92);
        b.add(&v).unwrap();
        v.technique_id = Some("T1190".into());
        v.tactic = Some("Credential Access".into()); // not a tactic of T1190
        v.severity = Some(Severity::Low);
        b.add(&v).unwrap();
        v.category = Some("NO THREAT".into());
        assert_eq!(b.add(&v), Err(Skip::NotAnAlert));
        v.category = None;
        v.technique_id = Some("T0000".into());
        assert_eq!(b.add(&v), Err(Skip::UnknownTechnique));
        assert_eq!(b.counts(), (3, 1, 1));

        let layer = b.build("test");
        let t = layer["techniques"].as_array().unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0]["techniqueID"], "T1110.001");
        assert_eq!(t[0]["tactic"], "credential-access");
        assert_eq!(t[0]["score"], 3 + 4);
        assert_eq!(
            t[0]["comment"],
            "2 alerts: 1 critical, 1 high; highest risk score 92"
        );
        assert_eq!(t[1]["techniqueID"], "T1190");
        assert!(t[1].get("tactic").is_none());
        assert_eq!(t[1]["score"], 1);
        assert_eq!(layer["gradient"]["maxValue"], 7);
        assert_eq!(layer["versions"]["attack"], "18");
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        let good = serde_json::to_string(&brute_force()).unwrap();
        let text = format!("{good}\n\nnot json\n{good}\n");
        let results: Vec<_> = read_verdicts(text.as_bytes(), "v.jsonl").collect();
        assert_eq!(results.len(), 3);
        assert!(results[0].is_ok() && results[2].is_ok());
        let err = results[1].as_ref().unwrap_err().to_string();
        assert!(err.starts_with("v.jsonl:3: not a verdict"), "{err}");
    }
}
