//! The embedded ATT&CK Enterprise catalog: techniques, sub-techniques and tactics.

use std::sync::OnceLock;

use crate::id::TechniqueId;
use crate::text::fold;

/// The generated table; see `scripts/gen-attack-catalog.py` for its format.
const ENTERPRISE_TSV: &str = include_str!("../data/enterprise-attack.tsv");

/// An ATT&CK tactic: the adversary's goal, such as Initial Access (`TA0001`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tactic {
    /// `TA0001`.
    pub id: &'static str,
    /// Display name, `Initial Access`.
    pub name: &'static str,
    /// STIX kill-chain phase name, `initial-access`.
    pub shortname: &'static str,
}

/// One technique or sub-technique of the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Technique {
    pub id: TechniqueId,
    /// ATT&CK's name; for a sub-technique only its own part (`Password Guessing`).
    pub name: &'static str,
    /// Tactics in kill-chain order (Reconnaissance first, Impact last).
    pub tactics: Vec<Tactic>,
    /// Withdrawn and replaced: see `revoked_by`.
    pub revoked: bool,
    /// Withdrawn without replacement.
    pub deprecated: bool,
    /// The technique that replaced a revoked one.
    pub revoked_by: Option<TechniqueId>,
}

impl Technique {
    /// The parent technique's ID for a sub-technique (`T1110.001` -> `T1110`).
    pub fn parent(&self) -> Option<TechniqueId> {
        self.id.parent()
    }

    /// Neither revoked nor deprecated: a current part of ATT&CK.
    pub fn is_active(&self) -> bool {
        !self.revoked && !self.deprecated
    }
}

/// An ATT&CK matrix's techniques and tactics, sorted by ID.
#[derive(Debug)]
pub struct Catalog {
    version: &'static str,
    tactics: Vec<Tactic>,
    techniques: Vec<Technique>,
}

/// A defect in the embedded table; only reachable if the generated file is broken,
/// which the tests catch.
#[derive(Debug, thiserror::Error)]
#[error("embedded ATT&CK catalog, line {line}: {reason}")]
struct CatalogError {
    line: usize,
    reason: String,
}

impl Catalog {
    /// The embedded ATT&CK Enterprise catalog, parsed on first use.
    pub fn enterprise() -> &'static Catalog {
        static CATALOG: OnceLock<Catalog> = OnceLock::new();
        CATALOG.get_or_init(|| {
            // The text is compiled in and checked by the tests, so a failure here is
            // a build defect, not bad input.
            Catalog::parse(ENTERPRISE_TSV).unwrap_or_else(|e| panic!("{e}"))
        })
    }

    /// The ATT&CK release, e.g. `18.1`.
    pub fn version(&self) -> &'static str {
        self.version
    }

    /// Looks a technique or sub-technique up by ID, revoked and deprecated included.
    pub fn get(&self, id: &TechniqueId) -> Option<&Technique> {
        self.techniques
            .binary_search_by(|t| t.id.cmp(id))
            .ok()
            .map(|i| &self.techniques[i])
    }

    /// Like [`get`](Self::get), but follows `revoked_by` to the technique that replaced
    /// a revoked one.
    pub fn resolve(&self, id: &TechniqueId) -> Option<&Technique> {
        let mut technique = self.get(id)?;
        // Bounded: replacement chains are short, and a cycle must not hang the caller.
        for _ in 0..8 {
            match technique.revoked_by.and_then(|next| self.get(&next)) {
                Some(next) => technique = next,
                None => break,
            }
        }
        Some(technique)
    }

    /// All techniques and sub-techniques in ID order (`T1001`, `T1001.001`, ...).
    pub fn techniques(&self) -> std::slice::Iter<'_, Technique> {
        self.techniques.iter()
    }

    /// The sub-techniques of a technique, in ID order.
    pub fn subtechniques(&self, parent: &TechniqueId) -> impl Iterator<Item = &Technique> + '_ {
        let parent = *parent;
        let start = self.techniques.partition_point(|t| t.id <= parent);
        self.techniques[start..]
            .iter()
            .take_while(move |t| t.id.parent() == Some(parent))
    }

    /// Finds a technique by its ATT&CK name, ignoring case and spacing, preferring a
    /// current technique over a revoked one of the same name. A sub-technique is
    /// found by its own name (`Password Guessing`) or as `Parent: Child`
    /// (`Brute Force: Password Guessing`).
    pub fn find_by_name(&self, name: &str) -> Option<&Technique> {
        let wanted = fold(name);
        if wanted.is_empty() {
            return None;
        }
        let matches = |t: &&Technique| {
            fold(t.name) == wanted
                || t.parent()
                    .and_then(|p| self.get(&p))
                    .is_some_and(|p| fold(&format!("{}: {}", p.name, t.name)) == wanted)
        };
        let mut found = self.techniques.iter().filter(matches);
        let first = found.next()?;
        if first.is_active() {
            return Some(first);
        }
        found.find(|t| t.is_active()).or(Some(first))
    }

    /// Tactics in kill-chain order, Reconnaissance to Impact.
    pub fn tactics(&self) -> &[Tactic] {
        &self.tactics
    }

    /// Looks a tactic up by name, shortname or ID, ignoring case, hyphens,
    /// underscores and `&` for `and`: `Initial Access`, `initial-access`,
    /// `INITIAL_ACCESS`, `TA0001` and `Command & Control` all work.
    pub fn tactic(&self, name: &str) -> Option<&Tactic> {
        let wanted = fold(name);
        if wanted.is_empty() {
            return None;
        }
        self.tactics.iter().find(|t| {
            fold(t.name) == wanted
                || fold(t.shortname) == wanted
                || t.id.eq_ignore_ascii_case(name.trim())
        })
    }

    fn parse(text: &'static str) -> Result<Catalog, CatalogError> {
        let mut version = None;
        let mut tactics: Vec<Tactic> = Vec::new();
        let mut rows = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line_no = index + 1;
            let err = |reason: String| CatalogError {
                line: line_no,
                reason,
            };
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&'static str> = line.split('\t').collect();
            match fields.as_slice() {
                ["attack_version", v] => version = Some(*v),
                ["tactic", id, shortname, name] => tactics.push(Tactic {
                    id,
                    name,
                    shortname,
                }),
                // Techniques come after all tactics, so resolve them in a second pass.
                ["technique", ..] => rows.push((line_no, fields)),
                _ => return Err(err(format!("unrecognised record {line:?}"))),
            }
        }

        let mut techniques = Vec::with_capacity(rows.len());
        for (line, fields) in rows {
            let err = |reason: String| CatalogError { line, reason };
            let ["technique", id, name, tactic_list, flags, revoked_by] = fields.as_slice() else {
                return Err(err(format!("expected 6 fields, found {}", fields.len())));
            };
            let id: TechniqueId = id.parse().map_err(|e| err(format!("{e}")))?;
            let mut technique_tactics = Vec::new();
            if *tactic_list != "-" {
                for short in tactic_list.split(',') {
                    let tactic = tactics
                        .iter()
                        .find(|t| t.shortname == short)
                        .ok_or_else(|| err(format!("unknown tactic {short:?}")))?;
                    technique_tactics.push(*tactic);
                }
            }
            let revoked_by = match *revoked_by {
                "-" => None,
                other => Some(other.parse().map_err(|e| err(format!("{e}")))?),
            };
            techniques.push(Technique {
                id,
                name,
                tactics: technique_tactics,
                revoked: flags.contains('r'),
                deprecated: flags.contains('d'),
                revoked_by,
            });
        }
        // Lookups binary-search, so the order must hold whatever the file says.
        techniques.sort_by_key(|t| t.id);
        if let Some(pair) = techniques.windows(2).find(|w| w[0].id == w[1].id) {
            return Err(CatalogError {
                line: 0,
                reason: format!("duplicate technique {}", pair[0].id),
            });
        }
        Ok(Catalog {
            version: version.ok_or_else(|| CatalogError {
                line: 0,
                reason: "no attack_version record".into(),
            })?,
            tactics,
            techniques,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tid(s: &str) -> TechniqueId {
        s.parse().expect("valid test ID")
    }

    #[test]
    fn embedded_catalog_parses_and_is_v18_1() {
        let cat = Catalog::enterprise();
        assert_eq!(cat.version(), "18.1");
        assert_eq!(cat.tactics().len(), 14);
        assert!(cat.techniques().len() > 800);
    }

    #[test]
    fn counts_match_the_generated_table() {
        let cat = Catalog::enterprise();
        let total = cat.techniques().count();
        let subs = cat.techniques().filter(|t| t.id.is_subtechnique()).count();
        let revoked = cat.techniques().filter(|t| t.revoked).count();
        let deprecated = cat.techniques().filter(|t| t.deprecated).count();
        assert_eq!((total, subs, revoked, deprecated), (835, 479, 132, 12));
    }

    #[test]
    fn every_id_round_trips_and_looks_up() {
        let cat = Catalog::enterprise();
        for t in cat.techniques() {
            let shown = t.id.to_string();
            let back: TechniqueId = shown.parse().expect("display form parses");
            assert_eq!(back, t.id);
            assert_eq!(cat.get(&back).map(|x| x.id), Some(t.id), "{shown}");
            // The lower-case and "name as written" forms a model emits resolve too.
            let written = format!("{} ({})", shown.to_lowercase(), t.name);
            assert_eq!(written.parse::<TechniqueId>(), Ok(t.id), "{written}");
        }
    }

    #[test]
    fn structure_is_consistent() {
        let cat = Catalog::enterprise();
        for t in cat.techniques() {
            assert!(!t.name.is_empty(), "{}", t.id);
            if let Some(parent) = t.parent() {
                assert!(cat.get(&parent).is_some(), "{} has no parent", t.id);
            }
            if t.is_active() {
                assert!(!t.tactics.is_empty(), "{} has no tactic", t.id);
            }
            // Kill-chain order: tactic positions strictly increase.
            let pos: Vec<usize> = t
                .tactics
                .iter()
                .map(|x| {
                    cat.tactics()
                        .iter()
                        .position(|y| y == x)
                        .expect("known tactic")
                })
                .collect();
            assert!(
                pos.windows(2).all(|w| w[0] < w[1]),
                "{} tactics out of order",
                t.id
            );
            if t.revoked {
                let by = t
                    .revoked_by
                    .expect("revoked technique names its replacement");
                assert!(cat.get(&by).is_some(), "{} revoked by unknown {by}", t.id);
            } else {
                assert_eq!(t.revoked_by, None, "{}", t.id);
            }
        }
    }

    #[test]
    fn known_facts() {
        let cat = Catalog::enterprise();
        let t1190 = cat.get(&tid("T1190")).expect("T1190");
        assert_eq!(t1190.name, "Exploit Public-Facing Application");
        assert_eq!(
            t1190.tactics.iter().map(|t| t.name).collect::<Vec<_>>(),
            ["Initial Access"]
        );
        assert!(t1190.is_active());

        let guessing = cat.get(&tid("T1110.001")).expect("T1110.001");
        assert_eq!(guessing.name, "Password Guessing");
        assert_eq!(guessing.parent(), Some(tid("T1110")));
        assert_eq!(guessing.tactics[0].name, "Credential Access");

        // T1002 Data Compressed was revoked in favour of T1560 Archive Collected Data.
        let compressed = cat.get(&tid("T1002")).expect("T1002");
        assert!(compressed.revoked && !compressed.is_active());
        assert_eq!(compressed.revoked_by, Some(tid("T1560")));
        assert_eq!(
            cat.resolve(&tid("T1002")).map(|t| t.name),
            Some("Archive Collected Data")
        );

        let scripting = cat.get(&tid("T1064")).expect("T1064");
        assert!(scripting.deprecated && !scripting.revoked);

        // T1078 Valid Accounts spans four tactics, listed in kill-chain order.
        let valid = cat.get(&tid("T1078")).expect("T1078");
        let names: Vec<&str> = valid.tactics.iter().map(|t| t.name).collect();
        assert_eq!(
            names,
            [
                "Initial Access",
                "Persistence",
                "Privilege Escalation",
                "Defense Evasion"
            ]
        );

        assert!(cat.get(&tid("T9999")).is_none());
        assert!(cat.get(&tid("T1190.999")).is_none());
    }

    #[test]
    fn subtechniques_of_brute_force() {
        let cat = Catalog::enterprise();
        let subs: Vec<String> = cat
            .subtechniques(&tid("T1110"))
            .map(|t| t.id.to_string())
            .collect();
        assert_eq!(subs, ["T1110.001", "T1110.002", "T1110.003", "T1110.004"]);
        assert_eq!(cat.subtechniques(&tid("T1190")).count(), 0);
    }

    #[test]
    fn tactics_in_kill_chain_order_and_tolerant_lookup() {
        let cat = Catalog::enterprise();
        let ids: Vec<&str> = cat.tactics().iter().map(|t| t.id).collect();
        assert_eq!(ids.first(), Some(&"TA0043"));
        assert_eq!(ids.get(2), Some(&"TA0001"));
        assert_eq!(ids.last(), Some(&"TA0040"));
        for name in [
            "Initial Access",
            "initial-access",
            "INITIAL_ACCESS",
            " initial access ",
            "TA0001",
            "ta0001",
        ] {
            assert_eq!(cat.tactic(name).map(|t| t.id), Some("TA0001"), "{name:?}");
        }
        assert_eq!(
            cat.tactic("Command & Control").map(|t| t.id),
            Some("TA0011")
        );
        assert_eq!(
            cat.tactic("command-and-control").map(|t| t.name),
            Some("Command and Control")
        );
        for bad in ["", "N/A", "Initial", "Access"] {
            assert!(cat.tactic(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn find_by_name_prefers_current_techniques() {
        let cat = Catalog::enterprise();
        let find = |n| cat.find_by_name(n).map(|t| t.id.to_string());
        assert_eq!(
            find("exploit public-facing application").as_deref(),
            Some("T1190")
        );
        assert_eq!(
            find("Brute Force: Password Guessing").as_deref(),
            Some("T1110.001")
        );
        // "Scheduled Task" exists as a current sub-technique and a revoked technique.
        let task = cat.find_by_name("Scheduled Task").expect("found");
        assert!(task.is_active(), "{}", task.id);
        assert_eq!(find("Failed Login"), None);
        assert_eq!(find(""), None);
    }

    #[test]
    fn malformed_tables_are_errors() {
        let bad = [
            "attack_version\t1\ntechnique\tT1\tx\t-\t-\t-\n",
            "attack_version\t1\ntechnique\tT1001\tx\tnope\t-\t-\n",
            "attack_version\t1\nsomething else\n",
            "tactic\tTA0001\tinitial-access\tInitial Access\n",
            "attack_version\t1\ntechnique\tT1001\tx\t-\t-\t-\ntechnique\tT1001\ty\t-\t-\t-\n",
        ];
        for text in bad {
            assert!(Catalog::parse(text).is_err(), "{text:?}");
        }
    }
}
