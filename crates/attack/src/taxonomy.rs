//! Threat taxonomy: fine threat types, the canonical categories they score under, and
//! keyword rules for wording the model invents.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::id::{parse_technique_field, TechniqueId};
use crate::text::{fold, has_phrase};

/// The builtin taxonomy, derived from the OpenSOC-AI training split.
const BUILTIN_JSON: &str = include_str!("../data/taxonomy.json");

/// A fine threat type as the training data writes it, with its canonical category and
/// the technique, tactic and severity most often seen with it in training.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FineType {
    /// `SQL Injection — Union/Boolean SQLi`.
    pub name: String,
    /// Canonical category, spelled as in the taxonomy's category list: `SQL INJECTION`.
    pub category: String,
    /// Technique label as written in training: `T1190 (Exploit Public-Facing
    /// Application)`; may name a technique the way ATT&CK does not, or be `N/A (N/A)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub technique: Option<String>,
    /// Tactic as written in training: `Initial Access`, or `N/A`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tactic: Option<String>,
    /// Severity as written in training: `CRITICAL`, `HIGH`, `MEDIUM` or `LOW`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// Severity instead of `severity` when the attack evidently succeeded (the server
    /// answered the attack request with 2xx; a login succeeded after failures).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity_if_succeeded: Option<String>,
    /// The type says the attack worked (`SSH Brute Force Attack — SUCCESSFUL LOGIN`): it
    /// fits only where the records do not show failure alone, and where they show a
    /// success it is the one type of its category that fits.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub requires_success: bool,
}

impl FineType {
    /// The technique ID of the training label, if it has one (`N/A` has none).
    pub fn technique_id(&self) -> Option<TechniqueId> {
        parse_technique_field(self.technique.as_deref()?).map(|(id, _)| id)
    }
}

/// Errors from loading a taxonomy file.
#[derive(Debug, thiserror::Error)]
pub enum TaxonomyError {
    #[error("cannot read taxonomy file {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("taxonomy {origin} is not valid taxonomy JSON")]
    Json {
        origin: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("taxonomy {origin}: {what} {name:?} names unknown category {category:?}")]
    UnknownCategory {
        origin: String,
        what: &'static str,
        name: String,
        category: String,
    },
    #[error("taxonomy {origin}: {what} {name:?} is listed twice")]
    Duplicate {
        origin: String,
        what: &'static str,
        name: String,
    },
    #[error("taxonomy {origin}: empty {what}")]
    Empty { origin: String, what: &'static str },
}

/// The file layout of `data/taxonomy.json` and of user taxonomy files.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TaxonomyFile {
    /// Free text for humans; JSON has no comments.
    #[serde(default)]
    #[allow(dead_code)]
    about: Option<String>,
    /// A user file replaces the builtin taxonomy instead of extending it.
    #[serde(default)]
    replace: bool,
    #[serde(default)]
    categories: Vec<String>,
    #[serde(default)]
    fine_types: Vec<FineType>,
    #[serde(default)]
    rules: Vec<RuleFile>,
}

/// A keyword rule: matches when every `all` phrase and at least one `any` phrase (if
/// any are given) occur as whole words in the folded text.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    category: String,
    #[serde(default)]
    all: Vec<String>,
    #[serde(default)]
    any: Vec<String>,
}

#[derive(Debug, Clone)]
struct Rule {
    category: usize,
    all: Vec<String>,
    any: Vec<String>,
}

impl Rule {
    fn matches(&self, folded: &str) -> bool {
        self.all.iter().all(|k| has_phrase(folded, k))
            && (self.any.is_empty() || self.any.iter().any(|k| has_phrase(folded, k)))
    }
}

/// Fine threat types, canonical categories and the rules between them.
///
/// [`category_of`](Self::category_of) maps any threat-type text to a category: an
/// exact fine type (ignoring case and punctuation) first, then a category name, then
/// the keyword rules in file order (first match wins, so specific rules such as SSH
/// brute force come before generic ones).
#[derive(Debug, Clone)]
pub struct Taxonomy {
    categories: Vec<String>,
    fine_types: Vec<FineType>,
    rules: Vec<Rule>,
    /// Folded fine-type name -> index into `fine_types`.
    by_fine_type: HashMap<String, usize>,
    /// Folded category name -> index into `categories`.
    by_category: HashMap<String, usize>,
}

impl Taxonomy {
    /// The builtin taxonomy: the 25 fine types of the OpenSOC-AI training set and the
    /// 15 canonical categories (SQL INJECTION ... WINDOWS THREAT).
    pub fn builtin() -> &'static Taxonomy {
        static BUILTIN: OnceLock<Taxonomy> = OnceLock::new();
        BUILTIN.get_or_init(|| {
            // Compiled in and checked by the tests: failing here is a build defect.
            Self::parse_file(BUILTIN_JSON, "builtin")
                .and_then(|file| Self::build(file, "builtin"))
                .unwrap_or_else(|e| panic!("{e}"))
        })
    }

    /// Loads a user taxonomy file. It extends the builtin taxonomy (its categories are
    /// added, its fine types override builtin ones of the same name, its rules are
    /// tried first) unless it sets `"replace": true`.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Taxonomy, TaxonomyError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| TaxonomyError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::load_user(&text, &path.display().to_string())
    }

    /// Like [`from_path`](Self::from_path), for JSON text already in memory.
    pub fn from_json_str(text: &str) -> Result<Taxonomy, TaxonomyError> {
        Self::load_user(text, "<string>")
    }

    /// The canonical category of a threat type, or `None` when nothing matches.
    ///
    /// Accepts training fine types in any case (`SQL INJECTION — UNION/BOOLEAN SQLI`),
    /// category names, and unseen wording that a keyword rule covers (`SQLi`,
    /// `Cross-Site Scripting`, `SSH password guessing`).
    pub fn category_of(&self, fine_type: &str) -> Option<&str> {
        let folded = fold(fine_type);
        if folded.is_empty() {
            return None;
        }
        if let Some(&i) = self.by_fine_type.get(&folded) {
            return Some(&self.fine_types[i].category);
        }
        let index = match self.by_category.get(&folded) {
            Some(&i) => i,
            None => self.rules.iter().find(|r| r.matches(&folded))?.category,
        };
        Some(&self.categories[index])
    }

    /// A known fine type by name, ignoring case and punctuation.
    pub fn fine_type(&self, name: &str) -> Option<&FineType> {
        self.by_fine_type
            .get(&fold(name))
            .map(|&i| &self.fine_types[i])
    }

    /// All fine types with their categories, in file order.
    pub fn fine_types(&self) -> &[FineType] {
        &self.fine_types
    }

    /// The canonical categories, in file order.
    pub fn categories(&self) -> &[String] {
        &self.categories
    }

    fn parse_file(text: &str, origin: &str) -> Result<TaxonomyFile, TaxonomyError> {
        serde_json::from_str(text).map_err(|source| TaxonomyError::Json {
            origin: origin.to_owned(),
            source,
        })
    }

    fn load_user(text: &str, origin: &str) -> Result<Taxonomy, TaxonomyError> {
        let user = Self::parse_file(text, origin)?;
        // Duplicates inside one file are mistakes; across files they are overrides.
        check_unique(&user, origin)?;
        if user.replace {
            return Self::build(user, origin);
        }
        let mut merged = Self::parse_file(BUILTIN_JSON, "builtin")?;
        for category in user.categories {
            if !merged.categories.iter().any(|c| fold(c) == fold(&category)) {
                merged.categories.push(category);
            }
        }
        for fine in user.fine_types {
            let key = fold(&fine.name);
            match merged.fine_types.iter_mut().find(|f| fold(&f.name) == key) {
                Some(existing) => *existing = fine,
                None => merged.fine_types.push(fine),
            }
        }
        // The user's rules are more specific to their logs: try them first.
        let builtin_rules = std::mem::replace(&mut merged.rules, user.rules);
        merged.rules.extend(builtin_rules);
        Self::build(merged, origin)
    }

    fn build(file: TaxonomyFile, origin: &str) -> Result<Taxonomy, TaxonomyError> {
        check_unique(&file, origin)?;
        let empty = |what| TaxonomyError::Empty {
            origin: origin.to_owned(),
            what,
        };
        let mut by_category = HashMap::new();
        for (i, category) in file.categories.iter().enumerate() {
            let key = fold(category);
            if key.is_empty() {
                return Err(empty("category name"));
            }
            by_category.insert(key, i);
        }
        let resolve = |what: &'static str, name: &str, category: &str| {
            by_category.get(&fold(category)).copied().ok_or_else(|| {
                TaxonomyError::UnknownCategory {
                    origin: origin.to_owned(),
                    what,
                    name: name.to_owned(),
                    category: category.to_owned(),
                }
            })
        };

        let mut fine_types = file.fine_types;
        let mut by_fine_type = HashMap::new();
        for (i, fine) in fine_types.iter_mut().enumerate() {
            let key = fold(&fine.name);
            if key.is_empty() {
                return Err(empty("fine type name"));
            }
            let category = resolve("fine type", &fine.name, &fine.category)?;
            // Report one spelling of each category, whatever case the file used.
            fine.category = file.categories[category].clone();
            by_fine_type.insert(key, i);
        }

        let mut rules = Vec::with_capacity(file.rules.len());
        for rule in file.rules {
            let category = resolve("rule", &rule.category, &rule.category)?;
            let fold_all = |words: Vec<String>| -> Vec<String> {
                words
                    .iter()
                    .map(|w| fold(w))
                    .filter(|w| !w.is_empty())
                    .collect()
            };
            let (all, any) = (fold_all(rule.all), fold_all(rule.any));
            if all.is_empty() && any.is_empty() {
                return Err(empty("keyword list in a rule"));
            }
            rules.push(Rule { category, all, any });
        }

        Ok(Taxonomy {
            categories: file.categories,
            fine_types,
            rules,
            by_fine_type,
            by_category,
        })
    }
}

fn check_unique(file: &TaxonomyFile, origin: &str) -> Result<(), TaxonomyError> {
    let duplicate = |what, name: &str| TaxonomyError::Duplicate {
        origin: origin.to_owned(),
        what,
        name: name.to_owned(),
    };
    let mut seen = std::collections::HashSet::new();
    for category in &file.categories {
        if !seen.insert(fold(category)) {
            return Err(duplicate("category", category));
        }
    }
    seen.clear();
    for fine in &file.fine_types {
        if !seen.insert(fold(&fine.name)) {
            return Err(duplicate("fine type", &fine.name));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;
    use crate::Catalog;

    const TRAIN_JSON: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/data/opensoc-ai/soc_train.json"
    );

    /// The `output` blocks of the training split, or `None` (with a note) when the
    /// dataset is not checked out beside the repository.
    /// (input, output) of every training record.
    fn training_records() -> Option<Vec<(String, String)>> {
        let Ok(text) = std::fs::read_to_string(TRAIN_JSON) else {
            eprintln!("note: {TRAIN_JSON} not found; skipping the training-data check");
            return None;
        };
        let rows: Vec<serde_json::Value> = serde_json::from_str(&text).expect("training JSON");
        let text =
            |r: &serde_json::Value, k: &str| r[k].as_str().expect("a string field").to_owned();
        Some(
            rows.iter()
                .map(|r| (text(r, "input"), text(r, "output")))
                .collect(),
        )
    }

    fn field<'a>(output: &'a str, key: &str) -> &'a str {
        output
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no {key} in {output:?}"))
    }

    #[test]
    fn builtin_has_the_fifteen_categories() {
        let tax = Taxonomy::builtin();
        let want = [
            "SQL INJECTION",
            "XSS",
            "COMMAND INJECTION",
            "PATH TRAVERSAL",
            "LFI",
            "BRUTE FORCE",
            "SSH BRUTE FORCE",
            "CREDENTIAL STUFFING",
            "RECONNAISSANCE",
            "DDOS",
            "DATA EXFILTRATION",
            "LATERAL MOVEMENT",
            "MALWARE C2",
            "NO THREAT",
            "WINDOWS THREAT",
        ];
        assert_eq!(tax.categories(), want);
        assert_eq!(tax.fine_types().len(), 25);
        for category in want {
            assert_eq!(tax.category_of(category), Some(category));
            assert_eq!(tax.category_of(&category.to_lowercase()), Some(category));
        }
    }

    #[test]
    fn builtin_fine_types_are_exactly_the_training_types() {
        let Some(records) = training_records() else {
            return;
        };
        let tax = Taxonomy::builtin();
        let seen: BTreeSet<&str> = records
            .iter()
            .map(|(_, o)| field(o, "THREAT_TYPE"))
            .collect();
        let listed: BTreeSet<&str> = tax.fine_types().iter().map(|f| f.name.as_str()).collect();
        assert_eq!(seen, listed);
        for name in seen {
            let fine = tax.fine_type(name).expect("listed");
            assert_eq!(tax.category_of(name), Some(fine.category.as_str()));
            // The strict protocol upper-cases answers: still the same fine type.
            assert_eq!(
                tax.category_of(&name.to_uppercase()),
                Some(fine.category.as_str())
            );
        }
    }

    /// Whether a training input shows the attack succeeding: a 2xx answer among its
    /// access-log lines.
    fn succeeded(input: &str) -> bool {
        input.split('\n').any(|l| {
            l.split("\" ")
                .nth(1)
                .is_some_and(|rest| rest.starts_with('2'))
        })
    }

    #[test]
    fn builtin_metadata_is_the_most_common_in_training() {
        let Some(records) = training_records() else {
            return;
        };
        type Counts<'a> = BTreeMap<&'a str, BTreeMap<&'a str, usize>>;
        let mut counts: [Counts; 3] = Default::default();
        let keys = ["MITRE_TECHNIQUE", "MITRE_TACTIC", "SEVERITY"];
        let tax = Taxonomy::builtin();
        for (input, o) in &records {
            let fine = field(o, "THREAT_TYPE");
            for (k, c) in keys.iter().zip(counts.iter_mut()) {
                *c.entry(fine).or_default().entry(field(o, k)).or_default() += 1;
            }
            // A type with two severities has the higher one exactly on success.
            let f = tax.fine_type(fine).expect("training type in the taxonomy");
            if let Some(high) = &f.severity_if_succeeded {
                let want = if succeeded(input) {
                    high
                } else {
                    f.severity.as_ref().unwrap()
                };
                assert_eq!(field(o, "SEVERITY"), want, "{fine}: {input}");
            }
        }
        let rank = |s: &str| {
            ["LOW", "MEDIUM", "HIGH", "CRITICAL"]
                .iter()
                .position(|x| *x == s)
        };
        for fine in tax.fine_types() {
            if fine.severity_if_succeeded.is_some() {
                continue;
            }
            let stored = [&fine.technique, &fine.tactic, &fine.severity];
            for ((k, c), value) in keys.iter().zip(&counts).zip(stored) {
                let seen = &c[fine.name.as_str()];
                let value = value.as_deref().expect("metadata present");
                let best = seen.values().max().copied().unwrap_or(0);
                assert_eq!(
                    seen.get(value),
                    Some(&best),
                    "{k} of {}: {seen:?}",
                    fine.name
                );
                if *k == "SEVERITY" {
                    // Ties go to the higher severity.
                    let top = seen
                        .iter()
                        .filter(|(_, n)| **n == best)
                        .filter_map(|(s, _)| rank(s))
                        .max();
                    assert_eq!(rank(value), top, "{}", fine.name);
                }
            }
        }
    }

    #[test]
    fn training_techniques_exist_in_the_catalog() {
        let catalog = Catalog::enterprise();
        for fine in Taxonomy::builtin().fine_types() {
            match fine.technique_id() {
                Some(id) => assert!(catalog.get(&id).is_some_and(|t| t.is_active()), "{id}"),
                None => assert_eq!(fine.category, "NO THREAT"),
            }
        }
    }

    #[test]
    fn keywords_map_unseen_wording() {
        let cases: &[(&str, Option<&str>)] = &[
            ("SQLi", Some("SQL INJECTION")),
            ("Blind SQL injection", Some("SQL INJECTION")),
            ("SQL Injection - Union based", Some("SQL INJECTION")),
            ("SQL Injection — OS Command via SQLi", Some("SQL INJECTION")),
            ("Cross-Site Scripting", Some("XSS")),
            ("Stored XSS", Some("XSS")),
            ("Remote Code Execution", Some("COMMAND INJECTION")),
            ("Command Injection", Some("COMMAND INJECTION")),
            ("Directory traversal", Some("PATH TRAVERSAL")),
            ("Local File Inclusion", Some("LFI")),
            ("RFI attempt", Some("LFI")),
            ("SSH brute-force", Some("SSH BRUTE FORCE")),
            ("SSH password guessing", Some("SSH BRUTE FORCE")),
            ("Brute-force login", Some("BRUTE FORCE")),
            ("Password spraying", Some("BRUTE FORCE")),
            ("Credential stuffing", Some("CREDENTIAL STUFFING")),
            ("HTTP flood", Some("DDOS")),
            ("DoS", Some("DDOS")),
            ("Port scan", Some("RECONNAISSANCE")),
            ("Nikto vulnerability scanning", Some("RECONNAISSANCE")),
            ("Data exfil", Some("DATA EXFILTRATION")),
            ("Pass-the-Hash", Some("LATERAL MOVEMENT")),
            ("Cobalt Strike beacon", Some("MALWARE C2")),
            ("C&C traffic", Some("MALWARE C2")),
            ("Command and Control", Some("MALWARE C2")),
            ("Benign", Some("NO THREAT")),
            ("No threat", Some("NO THREAT")),
            ("Windows Event 4625", Some("WINDOWS THREAT")),
            ("windows threat: failed login", Some("WINDOWS THREAT")),
            ("NoSQL query", None),
            ("SSH session opened", None),
            ("Suspicious activity", None),
            ("", None),
            ("—", None),
        ];
        let tax = Taxonomy::builtin();
        for (input, want) in cases {
            assert_eq!(tax.category_of(input), *want, "{input:?}");
        }
    }

    #[test]
    fn user_file_extends_the_builtin() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("taxonomy.json");
        let user = r#"{
            "categories": ["SUPPLY CHAIN", "sql injection"],
            "fine_types": [
                {"name": "Dependency Confusion", "category": "supply chain"},
                {"name": "Potential Data Exfiltration", "category": "MALWARE C2"}
            ],
            "rules": [{"category": "SUPPLY CHAIN", "any": ["typosquat", "typosquatting"]},
                      {"category": "XSS", "all": ["svg"], "any": ["onload"]}]
        }"#;
        std::fs::write(&path, user).expect("write");
        let tax = Taxonomy::from_path(&path).expect("valid user file");
        assert_eq!(
            tax.categories().len(),
            16,
            "a differently-cased builtin is not added twice"
        );
        assert_eq!(
            tax.category_of("dependency confusion"),
            Some("SUPPLY CHAIN")
        );
        assert_eq!(
            tax.fine_type("Dependency Confusion")
                .map(|f| f.category.as_str()),
            Some("SUPPLY CHAIN")
        );
        assert_eq!(tax.category_of("npm typosquatting"), Some("SUPPLY CHAIN"));
        assert_eq!(tax.category_of("SVG onload payload"), Some("XSS"));
        // The user's entry overrides the builtin one of the same name.
        assert_eq!(
            tax.category_of("Potential Data Exfiltration"),
            Some("MALWARE C2")
        );
        // Everything else of the builtin still works.
        assert_eq!(tax.category_of("Brute Force Attack"), Some("BRUTE FORCE"));
        assert_eq!(tax.category_of("SQLi"), Some("SQL INJECTION"));
        assert_eq!(tax.fine_types().len(), 26);
    }

    #[test]
    fn user_file_can_replace_the_builtin() {
        let user = r#"{
            "replace": true,
            "categories": ["WEB", "AUTH"],
            "fine_types": [{"name": "Web attack", "category": "WEB", "severity": "HIGH"}],
            "rules": [{"category": "AUTH", "any": ["login"]}]
        }"#;
        let tax = Taxonomy::from_json_str(user).expect("valid");
        assert_eq!(tax.categories(), ["WEB", "AUTH"]);
        assert_eq!(tax.category_of("web attack"), Some("WEB"));
        assert_eq!(tax.category_of("failed login"), Some("AUTH"));
        assert_eq!(tax.category_of("SQLi"), None);
        assert_eq!(tax.category_of("Brute Force Attack"), None);
    }

    #[test]
    fn bad_user_files_are_typed_errors() {
        let unknown = r#"{"fine_types": [{"name": "X", "category": "NOPE"}]}"#;
        assert!(matches!(
            Taxonomy::from_json_str(unknown),
            Err(TaxonomyError::UnknownCategory { ref category, .. }) if category == "NOPE"
        ));
        let rule = r#"{"rules": [{"category": "NOPE", "any": ["x"]}]}"#;
        assert!(matches!(
            Taxonomy::from_json_str(rule),
            Err(TaxonomyError::UnknownCategory { .. })
        ));
        let dup = r#"{"fine_types": [{"name": "X", "category": "XSS"}, {"name": "x", "category": "XSS"}]}"#;
        assert!(matches!(
            Taxonomy::from_json_str(dup),
            Err(TaxonomyError::Duplicate { .. })
        ));
        let empty_rule = r#"{"rules": [{"category": "XSS", "any": ["--"]}]}"#;
        assert!(matches!(
            Taxonomy::from_json_str(empty_rule),
            Err(TaxonomyError::Empty { .. })
        ));
        let typo = r#"{"fine_type": []}"#;
        assert!(matches!(
            Taxonomy::from_json_str(typo),
            Err(TaxonomyError::Json { .. })
        ));
        assert!(matches!(
            Taxonomy::from_json_str("{"),
            Err(TaxonomyError::Json { .. })
        ));
        let missing = Taxonomy::from_path("/nonexistent/taxonomy.json");
        assert!(matches!(missing, Err(TaxonomyError::Io { .. })));
        let msg = missing.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.contains("/nonexistent/taxonomy.json"), "{msg}");
    }
}
