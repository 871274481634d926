//! The playbook: reviewed advice per threat category (and per ATT&CK technique or fine
//! threat type where finer), rendered with the entry's facts. The built-in file is
//! `data/playbook.toml`; a user file extends it, or replaces it with `replace = true`.
//! Format and review rules: `docs/PLAYBOOK.md`.

use std::path::Path;
use std::sync::OnceLock;

use opensoc_attack::{Catalog, Mitigation, Mitigations, Taxonomy, TechniqueId};
use serde::Deserialize;
use toml::Spanned;

use crate::evidence::Facts;

/// The built-in playbook.
const BUILTIN_TOML: &str = include_str!("../data/playbook.toml");
/// How errors name the built-in file.
const BUILTIN_NAME: &str = "built-in playbook (crates/narrative/data/playbook.toml)";

/// The placeholders a play may use, with what they read when the entry lacks the fact.
const PLACEHOLDERS: [(&str, &str); 7] = [
    ("address", "the source address"),
    ("user", "the account"),
    ("path", "the requested page"),
    ("service", "the service"),
    ("host", "the server"),
    ("event_id", "of this kind"),
    ("count", "several"),
];

/// Advice that contradicts basic security hygiene or another play (reviewed list,
/// lower case). No play may contain one: the loader rejects a file that does, and the
/// tests render every play with the facts of every fixture and check the output.
pub const FORBIDDEN_PHRASES: &[&str] = &[
    "enable password auth",
    "passwordauthentication yes",
    "permitrootlogin yes",
    "allow root login",
    "disable the firewall",
    "disable firewall",
    "disable your firewall",
    "turn off the firewall",
    "turn off your firewall",
    "disable antivirus",
    "disable the antivirus",
    "turn off antivirus",
    "disable selinux",
    "setenforce 0",
    "chmod 777",
    "chmod -r 777",
    "disable logging",
    "delete the logs",
    "clear the logs",
    "disable multi-factor",
    "disable mfa",
    "disable two-factor",
    "pay the ransom",
    "share the password",
    "share your password",
    "allow all traffic",
    "0.0.0.0/0",
    "ignore this alert",
    "whitelist the attacker",
    "allowlist the attacker",
    "unblock the address",
];

/// The first forbidden phrase in `text`, if any (case-insensitive).
pub fn forbidden_phrase(text: &str) -> Option<&'static str> {
    let lower = text.to_lowercase();
    FORBIDDEN_PHRASES
        .iter()
        .copied()
        .find(|p| lower.contains(p))
}

/// Most actions a play lists: the first things to do, not a manual.
pub const MAX_ACTIONS: usize = 3;

/// Errors of a playbook file, each naming the file and the line.
#[derive(Debug, thiserror::Error)]
pub enum PlaybookError {
    #[error("cannot read playbook {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}:{line}: {reason}")]
    Invalid {
        file: String,
        line: usize,
        reason: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    version: Spanned<String>,
    #[serde(default)]
    replace: bool,
    #[serde(default)]
    play: Vec<Spanned<PlayConfig>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlayConfig {
    threat_type: Option<String>,
    technique: Option<String>,
    category: Option<String>,
    meaning: String,
    actions: Vec<String>,
    check: String,
    #[serde(default)]
    mitigations: Vec<String>,
    #[serde(default)]
    for_techniques: Vec<String>,
}

/// One play: when it applies, and what it says.
#[derive(Debug, Clone)]
pub struct Play {
    /// A fine threat type it is for (as the taxonomy spells it).
    pub threat_type: Option<String>,
    /// A technique it is for; also matches its sub-techniques.
    pub technique: Option<TechniqueId>,
    /// A taxonomy category it is for.
    pub category: Option<String>,
    /// What the finding means, with placeholders.
    pub meaning: String,
    /// The first things to do (at most three), with placeholders.
    pub actions: Vec<String>,
    /// How to check whether the attack succeeded, with placeholders.
    pub check: String,
    /// ATT&CK mitigations behind the advice.
    pub mitigations: Vec<&'static Mitigation>,
    /// `file:line` of the play.
    pub origin: String,
}

impl Play {
    /// How specific the play is: a threat type beats a technique beats a category.
    fn rank(&self) -> u8 {
        4 * u8::from(self.threat_type.is_some())
            + 2 * u8::from(self.technique.is_some())
            + u8::from(self.category.is_some())
    }

    fn key(&self) -> (Option<String>, Option<TechniqueId>, Option<String>) {
        (
            self.threat_type.as_deref().map(fold),
            self.technique,
            self.category.as_deref().map(fold),
        )
    }

    fn matches(
        &self,
        threat_type: Option<&str>,
        technique: Option<&TechniqueId>,
        category: Option<&str>,
    ) -> bool {
        let same = |want: &Option<String>, got: Option<&str>| {
            want.as_deref()
                .is_none_or(|w| got.is_some_and(|g| fold(g) == fold(w)))
        };
        let technique_ok = self
            .technique
            .is_none_or(|want| technique.is_some_and(|t| *t == want || t.parent() == Some(want)));
        same(&self.threat_type, threat_type) && same(&self.category, category) && technique_ok
    }
}

/// The advice for one verdict, rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advice {
    /// What it means (the verdict's `impact`).
    pub impact: String,
    /// The actions, in order.
    pub actions: Vec<String>,
    /// How to check whether it worked.
    pub check: String,
    /// `(M-ID, official name)`.
    pub mitigations: Vec<(&'static str, &'static str)>,
}

impl Advice {
    /// The verdict's one-line `recommendation`: numbered actions, the check, and the
    /// ATT&CK mitigations with their official names.
    pub fn recommendation(&self) -> String {
        let mut out = String::new();
        for (i, a) in self.actions.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(&format!("{}) {a}", i + 1));
        }
        out.push_str(" Check: ");
        out.push_str(&self.check);
        if !self.mitigations.is_empty() {
            let list: Vec<String> = self
                .mitigations
                .iter()
                .map(|(id, name)| format!("{id} {name}"))
                .collect();
            out.push_str(&format!(" ATT&CK mitigations: {}.", list.join(", ")));
        }
        out
    }
}

/// The plays in force and the version string that names them.
#[derive(Debug, Clone)]
pub struct Playbook {
    version: String,
    plays: Vec<Play>,
}

impl Playbook {
    /// The built-in playbook, parsed on first use.
    pub fn builtin() -> &'static Playbook {
        static BUILTIN: OnceLock<Playbook> = OnceLock::new();
        BUILTIN.get_or_init(|| {
            // Compiled in and loaded by the tests: a failure is a build defect.
            parse(BUILTIN_TOML, BUILTIN_NAME)
                .map(|(p, _)| p)
                .unwrap_or_else(|e| panic!("{e}"))
        })
    }

    /// The built-in playbook extended by (or, with `replace = true`, replaced by) the
    /// user file at `path`.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Playbook, PlaybookError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| PlaybookError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Playbook::with_user_file(&text, &path.display().to_string())
    }

    /// As [`from_path`](Self::from_path), from the file's text; `name` names it in errors.
    pub fn with_user_file(text: &str, name: &str) -> Result<Playbook, PlaybookError> {
        let (user, replace) = parse(text, name)?;
        // The version names the exact text, so a cache keyed on it cannot outlive an edit
        // that forgot to change `version`.
        let tag = format!("user:{}:{:016x}", user.version, fnv1a(text.as_bytes()));
        if replace {
            return Ok(Playbook {
                version: tag,
                plays: user.plays,
            });
        }
        let base = Playbook::builtin();
        let mut plays: Vec<Play> = base
            .plays
            .iter()
            .filter(|b| !user.plays.iter().any(|u| u.key() == b.key()))
            .cloned()
            .collect();
        plays.extend(user.plays);
        Ok(Playbook {
            version: format!("{}+{tag}", base.version),
            plays,
        })
    }

    /// Names the plays in force: the built-in file's `version`, plus the user file's
    /// version and a hash of its text when one is loaded.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// All plays.
    pub fn plays(&self) -> &[Play] {
        &self.plays
    }

    /// The most specific play for a verdict's threat type, technique and category.
    pub fn find(
        &self,
        threat_type: Option<&str>,
        technique: Option<&str>,
        category: Option<&str>,
    ) -> Option<&Play> {
        let technique = technique.and_then(|t| t.parse::<TechniqueId>().ok());
        self.plays
            .iter()
            .filter(|p| p.matches(threat_type, technique.as_ref(), category))
            .max_by_key(|p| p.rank())
    }

    /// The advice for a verdict, rendered with the entry's facts.
    pub fn advise(
        &self,
        threat_type: Option<&str>,
        technique: Option<&str>,
        category: Option<&str>,
        facts: &Facts,
    ) -> Option<Advice> {
        let play = self.find(threat_type, technique, category)?;
        let render = |t: &str| render(t, facts);
        Some(Advice {
            impact: render(&play.meaning),
            actions: play.actions.iter().map(|a| render(a)).collect(),
            check: render(&play.check),
            mitigations: play.mitigations.iter().map(|m| (m.id, m.name)).collect(),
        })
    }
}

/// Case and punctuation folded, for matching names as people write them.
fn fold(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// 64-bit FNV-1a: a stable fingerprint of a user file (not a security boundary).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(1, |t| t.matches('\n').count() + 1)
}

/// Parses and checks one file; `bool`: whether it replaces the built-in plays.
fn parse(text: &str, name: &str) -> Result<(Playbook, bool), PlaybookError> {
    let invalid = |line: usize, reason: String| PlaybookError::Invalid {
        file: name.to_string(),
        line,
        reason,
    };
    let file: FileConfig = toml::from_str(text).map_err(|e| {
        let line = e.span().map_or(1, |s| line_of(text, s.start));
        invalid(line, e.message().to_string())
    })?;
    let version = file.version.get_ref().trim().to_string();
    if version.is_empty() || version.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(
            line_of(text, file.version.span().start),
            "version must be a non-empty word (e.g. 2026-11-30.1)".into(),
        ));
    }
    let mut plays: Vec<Play> = Vec::new();
    for spanned in file.play {
        let line = line_of(text, spanned.span().start);
        let play = check_play(spanned.into_inner(), format!("{name}:{line}"))
            .map_err(|reason| invalid(line, reason))?;
        if let Some(other) = plays.iter().find(|p| p.key() == play.key()) {
            return Err(invalid(
                line,
                format!("the same match as the play at {}", other.origin),
            ));
        }
        plays.push(play);
    }
    Ok((Playbook { version, plays }, file.replace))
}

fn check_play(c: PlayConfig, origin: String) -> Result<Play, String> {
    let taxonomy = Taxonomy::builtin();
    let catalog = Catalog::enterprise();
    if c.threat_type.is_none() && c.technique.is_none() && c.category.is_none() {
        return Err("a play needs threat_type, technique or category".into());
    }
    let threat_type = match c.threat_type {
        Some(t) => Some(
            taxonomy
                .fine_type(&t)
                .map(|f| f.name.clone())
                .ok_or_else(|| format!("threat_type {t:?} is not a fine type of the taxonomy"))?,
        ),
        None => None,
    };
    let category = match c.category {
        Some(cat) => Some(
            taxonomy
                .categories()
                .iter()
                .find(|k| fold(k) == fold(&cat))
                .cloned()
                .ok_or_else(|| format!("category {cat:?} is not a taxonomy category"))?,
        ),
        None => None,
    };
    let technique_of = |t: &str| -> Result<TechniqueId, String> {
        let id: TechniqueId = t.parse().map_err(|e| format!("technique {t:?}: {e}"))?;
        match catalog.get(&id) {
            Some(_) => Ok(id),
            None => Err(format!(
                "technique {id} is not in ATT&CK {}",
                catalog.version()
            )),
        }
    };
    let technique = c.technique.as_deref().map(technique_of).transpose()?;
    for (what, text) in std::iter::once(("meaning", &c.meaning))
        .chain(c.actions.iter().map(|a| ("action", a)))
        .chain(std::iter::once(("check", &c.check)))
    {
        check_text(text).map_err(|e| format!("{what} {text:?}: {e}"))?;
    }
    if c.actions.is_empty() || c.actions.len() > MAX_ACTIONS {
        return Err(format!(
            "a play lists 1 to {MAX_ACTIONS} actions, this one {}",
            c.actions.len()
        ));
    }
    let mut targets: Vec<TechniqueId> = c
        .for_techniques
        .iter()
        .map(|t| technique_of(t))
        .collect::<Result<_, _>>()?;
    targets.extend(technique);
    let table = Mitigations::enterprise();
    let mut mitigations = Vec::new();
    for m in &c.mitigations {
        let mitigation = table
            .get(m)
            .ok_or_else(|| format!("mitigation {m:?} is not in ATT&CK {}", catalog.version()))?;
        if !targets.iter().any(|t| table.mitigates(m, t)) {
            let list: Vec<String> = targets.iter().map(ToString::to_string).collect();
            return Err(format!(
                "ATT&CK does not link {} ({}) to any of the play's techniques [{}]",
                mitigation.id,
                mitigation.name,
                list.join(", ")
            ));
        }
        mitigations.push(mitigation);
    }
    Ok(Play {
        threat_type,
        technique,
        category,
        meaning: c.meaning.trim().to_string(),
        actions: c.actions.iter().map(|a| a.trim().to_string()).collect(),
        check: c.check.trim().to_string(),
        mitigations,
        origin,
    })
}

/// A template's text: one line, known placeholders, balanced braces.
fn check_text(text: &str) -> Result<(), String> {
    if text.trim().is_empty() {
        return Err("is empty".into());
    }
    if text.chars().any(char::is_control) {
        return Err("must be one line without control characters".into());
    }
    if let Some(p) = forbidden_phrase(text) {
        return Err(format!("says {p:?}, which the playbook must never advise"));
    }
    let mut rest = text;
    while let Some(open) = rest.find(['{', '}']) {
        if rest[open..].starts_with('}') {
            return Err("has a `}` without `{`".into());
        }
        let after = &rest[open + 1..];
        let close = after.find('}').ok_or("has a `{` without `}`")?;
        let name = &after[..close];
        if !PLACEHOLDERS.iter().any(|(p, _)| *p == name) {
            let known: Vec<&str> = PLACEHOLDERS.iter().map(|(p, _)| *p).collect();
            return Err(format!(
                "unknown placeholder {{{name}}} (known: {})",
                known.join(", ")
            ));
        }
        rest = &after[close + 1..];
    }
    Ok(())
}

/// The value of a placeholder for an entry, or `None` to use the fallback phrase. Facts
/// come from attacker-controlled text: only short values of the characters addresses,
/// accounts, paths and event IDs are made of are written into advice.
fn fact(name: &str, facts: &Facts) -> Option<String> {
    let value = match name {
        "address" => facts.address.clone(),
        "user" => match facts.users.len() {
            0 => None,
            1..=3 => Some(facts.users.join(", ")),
            n => Some(format!(
                "{} and {} more",
                facts.users[..3].join(", "),
                n - 3
            )),
        },
        "path" => facts.path.clone(),
        "service" => facts.service.clone(),
        "host" => facts.host.clone(),
        "event_id" => facts.event_id.clone(),
        "count" => (facts.count > 1).then(|| facts.count.to_string()),
        _ => None,
    }?;
    // Spaces only in account names (`NETWORK SERVICE`, a list of users), so a log cannot
    // put a sentence of its own into the advice.
    let spaces_ok = name == "user";
    let plain = value.len() <= 120
        && value.chars().all(|c| {
            c.is_alphanumeric() || "._:-@/\\$~+%=".contains(c) || (spaces_ok && " ,".contains(c))
        });
    plain.then_some(value)
}

fn render(template: &str, facts: &Facts) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            // Checked at load time; keep the text as written if it ever happens.
            out.push_str(&rest[open..]);
            return out;
        };
        let name = &after[..close];
        let fallback = PLACEHOLDERS
            .iter()
            .find(|(p, _)| *p == name)
            .map_or("", |(_, f)| f);
        out.push_str(&fact(name, facts).unwrap_or_else(|| fallback.to_string()));
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests;
