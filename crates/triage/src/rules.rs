//! The benign fast path's rules: data, not code. A rule names the formats it covers and,
//! optionally, the programs, Windows event IDs and message shapes; a single record that
//! raised no detector signal and matches a rule is decided "No Threat" without the model.

use std::path::Path;

use opensoc_ingest::{Format, LogEvent};
use serde::Deserialize;

/// The rules shipped with OpenSOC (`crates/triage/data/fast-path.toml`).
pub const BUILTIN_RULES: &str = include_str!("../data/fast-path.toml");

/// Why a rules file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// `toml`'s message names the line and column.
    #[error("{path}: {message}")]
    Syntax { path: String, message: String },
    #[error("{path}:{line}: rule {rule:?}: {message}")]
    Invalid {
        path: String,
        line: usize,
        rule: String,
        message: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    version: u32,
    /// A user file extends the built-in rules, or replaces them with `replace = true`.
    #[serde(default)]
    replace: bool,
    #[serde(default, rename = "rule")]
    rules: Vec<Rule>,
}

/// One fast-path rule; every condition given must hold.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub name: String,
    /// Ingest format names (`access-combined`, `syslog-3164`, `evtx`, ...).
    pub formats: Vec<String>,
    #[serde(default)]
    pub programs: Vec<String>,
    #[serde(default)]
    pub programs_not: Vec<String>,
    #[serde(default)]
    pub event_ids: Vec<String>,
    #[serde(default)]
    pub event_ids_not: Vec<String>,
    #[serde(default)]
    pub messages_starting: Vec<String>,
    #[serde(default)]
    pub messages_containing: Vec<String>,
}

impl Rule {
    fn matches(&self, ev: &LogEvent) -> bool {
        let in_list =
            |list: &[String], v: Option<&str>| v.is_some_and(|v| list.iter().any(|x| x == v));
        if !self.formats.iter().any(|f| f == ev.format.name()) {
            return false;
        }
        let program = ev.field("program");
        let event_id = ev.field("event_id");
        let message = ev.field("message").unwrap_or(&ev.raw);
        (self.programs.is_empty() || in_list(&self.programs, program))
            && !in_list(&self.programs_not, program)
            && (self.event_ids.is_empty() || in_list(&self.event_ids, event_id))
            && !in_list(&self.event_ids_not, event_id)
            && (self.messages_starting.is_empty()
                || self
                    .messages_starting
                    .iter()
                    .any(|m| message.starts_with(m.as_str())))
            && (self.messages_containing.is_empty()
                || self
                    .messages_containing
                    .iter()
                    .any(|m| message.contains(m.as_str())))
    }
}

/// The rule set in force.
#[derive(Debug, Clone)]
pub struct FastPathRules {
    rules: Vec<Rule>,
}

/// Every format name the rules may use.
const FORMATS: &[Format] = &[
    Format::AccessCombined,
    Format::AccessCommon,
    Format::W3c,
    Format::Syslog3164,
    Format::Syslog5424,
    Format::WindowsText,
    Format::WindowsXml,
    Format::Evtx,
    Format::Ecs,
    Format::SuricataEve,
    Format::ZeekJson,
    Format::CloudTrail,
    Format::Json,
    Format::Plain,
];

impl FastPathRules {
    /// The built-in rules.
    pub fn builtin() -> FastPathRules {
        // Tested to parse; an empty set (no fast path) is the safe fallback regardless.
        FastPathRules::parse("built-in fast-path rules", BUILTIN_RULES)
            .map(|(f, _)| FastPathRules { rules: f })
            .unwrap_or(FastPathRules { rules: Vec::new() })
    }

    /// No rule: every entry goes to the model.
    pub fn none() -> FastPathRules {
        FastPathRules { rules: Vec::new() }
    }

    /// The built-in rules extended (or replaced) by the file at `path`.
    pub fn with_file(path: &Path) -> Result<FastPathRules, RulesError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| RulesError::Read {
            path: name.clone(),
            source,
        })?;
        let (rules, replace) = FastPathRules::parse(&name, &text)?;
        let mut set = if replace {
            FastPathRules::none()
        } else {
            FastPathRules::builtin()
        };
        set.rules.extend(rules);
        Ok(set)
    }

    fn parse(path: &str, text: &str) -> Result<(Vec<Rule>, bool), RulesError> {
        let file: RulesFile = toml::from_str(text).map_err(|e| RulesError::Syntax {
            path: path.to_string(),
            message: e.to_string(),
        })?;
        let invalid = |rule: &Rule, message: String| RulesError::Invalid {
            path: path.to_string(),
            line: line_of(text, &rule.name),
            rule: rule.name.clone(),
            message,
        };
        if file.version != 1 {
            return Err(RulesError::Syntax {
                path: path.to_string(),
                message: format!("version {} is not supported (1 is)", file.version),
            });
        }
        for rule in &file.rules {
            if rule.formats.is_empty() {
                return Err(invalid(rule, "names no format".into()));
            }
            for f in &rule.formats {
                if !FORMATS.iter().any(|k| k.name() == f) {
                    let known: Vec<&str> = FORMATS.iter().map(|k| k.name()).collect();
                    return Err(invalid(
                        rule,
                        format!("unknown format {f:?} (known: {})", known.join(", ")),
                    ));
                }
            }
        }
        Ok((file.rules, file.replace))
    }

    /// The first rule that decides `ev` benign.
    pub fn decide(&self, ev: &LogEvent) -> Option<&Rule> {
        self.rules.iter().find(|r| r.matches(ev))
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// 1-based line of the rule named `name` (its `name = ...` line), for error messages.
fn line_of(text: &str, name: &str) -> usize {
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            l.starts_with("name") && l.contains(&format!("\"{name}\""))
        })
        .map_or(0, |i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_rules_parse() {
        let (rules, replace) = FastPathRules::parse("builtin", BUILTIN_RULES).unwrap();
        assert!(!replace);
        assert!(rules.len() >= 4, "{rules:?}");
    }

    #[test]
    fn errors_name_the_line() {
        let text = "version = 1\n\n[[rule]]\nname = \"a\"\nformats = [\"syslog-3164\"]\n\n[[rule]]\nname = \"typo\"\nformats = [\"sislog\"]\n";
        let err = FastPathRules::parse("user.toml", text)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("user.toml:8: rule \"typo\": unknown format \"sislog\""),
            "{err}"
        );
        let err = FastPathRules::parse(
            "user.toml",
            "version = 1\n[[rule]]\nname = \"x\"\nformat = []\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("line 4"), "{err}");
    }

    #[test]
    fn a_user_file_extends_or_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rules.toml");
        let builtin = FastPathRules::builtin().len();
        std::fs::write(
            &path,
            "version = 1\n[[rule]]\nname = \"mine\"\nformats = [\"plain\"]\n",
        )
        .unwrap();
        assert_eq!(FastPathRules::with_file(&path).unwrap().len(), builtin + 1);
        std::fs::write(
            &path,
            "version = 1\nreplace = true\n[[rule]]\nname = \"mine\"\nformats = [\"plain\"]\n",
        )
        .unwrap();
        assert_eq!(FastPathRules::with_file(&path).unwrap().len(), 1);
    }
}
