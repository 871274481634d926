//! The embedded ATT&CK Enterprise mitigations (course-of-action objects) and the
//! techniques each one mitigates.

use std::sync::OnceLock;

use crate::id::TechniqueId;

/// The generated table; see `scripts/gen-attack-catalog.py` for its format.
const MITIGATIONS_TSV: &str = include_str!("../data/enterprise-mitigations.tsv");

/// One ATT&CK mitigation, such as `M1032` Multi-factor Authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Mitigation {
    /// `M1032`.
    pub id: &'static str,
    /// ATT&CK's official name, `Multi-factor Authentication`.
    pub name: &'static str,
    /// Techniques and sub-techniques it mitigates, in ID order.
    pub techniques: Vec<TechniqueId>,
}

/// The current ATT&CK Enterprise mitigations, sorted by ID.
#[derive(Debug)]
pub struct Mitigations {
    all: Vec<Mitigation>,
}

#[derive(Debug, thiserror::Error)]
#[error("embedded ATT&CK mitigations, line {line}: {reason}")]
struct MitigationsError {
    line: usize,
    reason: String,
}

impl Mitigations {
    /// The embedded table, parsed on first use.
    pub fn enterprise() -> &'static Mitigations {
        static TABLE: OnceLock<Mitigations> = OnceLock::new();
        TABLE.get_or_init(|| {
            // Compiled in and checked by the tests: a failure is a build defect.
            Mitigations::parse(MITIGATIONS_TSV).unwrap_or_else(|e| panic!("{e}"))
        })
    }

    /// A mitigation by ID (`M1032`, case-insensitive).
    pub fn get(&self, id: &str) -> Option<&Mitigation> {
        let id = id.trim().to_ascii_uppercase();
        self.all
            .binary_search_by(|m| m.id.cmp(id.as_str()))
            .ok()
            .map(|i| &self.all[i])
    }

    /// Whether `mitigation` is linked to `technique` in ATT&CK, directly or through the
    /// parent technique of a sub-technique (ATT&CK links many mitigations to the parent
    /// only).
    pub fn mitigates(&self, mitigation: &str, technique: &TechniqueId) -> bool {
        self.get(mitigation).is_some_and(|m| {
            m.techniques
                .iter()
                .any(|t| t == technique || Some(*t) == technique.parent())
        })
    }

    /// The mitigations ATT&CK links to `technique` (or, for a sub-technique with none of
    /// its own, to its parent), in ID order.
    pub fn for_technique(&self, technique: &TechniqueId) -> Vec<&Mitigation> {
        let direct: Vec<&Mitigation> = self
            .all
            .iter()
            .filter(|m| m.techniques.contains(technique))
            .collect();
        match technique.parent() {
            Some(parent) if direct.is_empty() => self
                .all
                .iter()
                .filter(|m| m.techniques.contains(&parent))
                .collect(),
            _ => direct,
        }
    }

    /// All mitigations in ID order.
    pub fn iter(&self) -> std::slice::Iter<'_, Mitigation> {
        self.all.iter()
    }

    fn parse(text: &'static str) -> Result<Mitigations, MitigationsError> {
        let mut all = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let err = |reason: String| MitigationsError {
                line: i + 1,
                reason,
            };
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let cols: Vec<&'static str> = line.split('\t').collect();
            let [kind, id, name, techniques] = cols[..] else {
                return Err(err(format!("expected 4 columns, found {}", cols.len())));
            };
            if kind != "mitigation" {
                return Err(err(format!("unknown record {kind:?}")));
            }
            let techniques = if techniques == "-" {
                Vec::new()
            } else {
                techniques
                    .split(',')
                    .map(|t| t.parse().map_err(|e| err(format!("{t}: {e}"))))
                    .collect::<Result<Vec<TechniqueId>, _>>()?
            };
            all.push(Mitigation {
                id,
                name,
                techniques,
            });
        }
        all.sort_by(|a, b| a.id.cmp(b.id));
        Ok(Mitigations { all })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Catalog;

    #[test]
    fn table_parses_and_links_known_techniques() {
        let m = Mitigations::enterprise();
        assert_eq!(m.iter().count(), 44);
        let mfa = m.get("m1032").unwrap();
        assert_eq!(mfa.name, "Multi-factor Authentication");
        let t1110: TechniqueId = "T1110".parse().unwrap();
        assert!(mfa.techniques.contains(&t1110));
        assert!(m.get("M9999").is_none());
        // Every linked technique exists in the catalog of the same release.
        for mit in m.iter() {
            for t in &mit.techniques {
                assert!(Catalog::enterprise().get(t).is_some(), "{} -> {t}", mit.id);
            }
        }
    }

    #[test]
    fn sub_techniques_fall_back_to_the_parent() {
        let m = Mitigations::enterprise();
        let guessing: TechniqueId = "T1110.001".parse().unwrap();
        let ids: Vec<&str> = m.for_technique(&guessing).iter().map(|x| x.id).collect();
        assert!(ids.contains(&"M1032") && ids.contains(&"M1027"), "{ids:?}");
        // T1190 has its own list, in ID order.
        let exploit: TechniqueId = "T1190".parse().unwrap();
        let ids: Vec<&str> = m.for_technique(&exploit).iter().map(|x| x.id).collect();
        assert_eq!(ids.first(), Some(&"M1016"));
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        // M1018 is linked to T1110 itself, not to T1110.001: accepted through the parent.
        assert!(m.mitigates("M1018", &guessing));
        assert!(!m.mitigates("M1013", &guessing));
    }
}
