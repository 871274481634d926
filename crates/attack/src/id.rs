//! Technique IDs: the `T1190` / `T1059.001` newtype and its tolerant parser.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest slice of the input quoted back in an error: model output and log text can
/// be long and attacker-controlled, so errors never echo all of it.
const MAX_ECHO: usize = 64;

/// An ATT&CK technique or sub-technique ID such as `T1190` or `T1059.001`.
///
/// Stored as numbers, so it is `Copy`, orders numerically (`T1059` < `T1059.001` <
/// `T1190`) and always displays in the canonical form. Parsing is tolerant of the
/// ways people and models write IDs; see [`FromStr`](#impl-FromStr-for-TechniqueId).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TechniqueId {
    base: u16,
    sub: Option<u16>,
}

/// Why a string is not a technique ID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TechniqueIdError {
    /// Nothing but whitespace and punctuation.
    #[error("empty technique ID")]
    Empty,
    /// The text does not start with `T<digits>` or `Technique <digits>`.
    #[error("no technique ID (like T1190 or T1059.001) at the start of {input:?}")]
    Missing { input: String },
    /// It starts like an ID but the digits are wrong.
    #[error("malformed technique ID in {input:?}: {reason}")]
    Malformed { input: String, reason: &'static str },
}

impl TechniqueId {
    /// Builds an ID from its numbers; `None` when `base` has more than 4 digits or
    /// `sub` more than 3, which could not be displayed as a valid ID.
    pub const fn new(base: u16, sub: Option<u16>) -> Option<Self> {
        if base > 9999 {
            return None;
        }
        if let Some(s) = sub {
            if s > 999 {
                return None;
            }
        }
        Some(Self { base, sub })
    }

    /// The technique number: 1190 for `T1190.001`.
    pub const fn base(self) -> u16 {
        self.base
    }

    /// The sub-technique number: `Some(1)` for `T1190.001`.
    pub const fn sub(self) -> Option<u16> {
        self.sub
    }

    /// True for sub-techniques (`T1110.001`).
    pub const fn is_subtechnique(self) -> bool {
        self.sub.is_some()
    }

    /// The parent technique of a sub-technique (`T1110.001` -> `T1110`); `None` for a
    /// technique.
    pub const fn parent(self) -> Option<Self> {
        match self.sub {
            Some(_) => Some(Self {
                base: self.base,
                sub: None,
            }),
            None => None,
        }
    }
}

impl fmt::Display for TechniqueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "T{:04}", self.base)?;
        if let Some(sub) = self.sub {
            write!(f, ".{sub:03}")?;
        }
        Ok(())
    }
}

/// Accepts an ID at the start of the text, after any whitespace or punctuation:
/// `t1190`, `T1190.001`, `Technique 1190`, `"T1190"`, `**T1190**`,
/// `T1190 (Exploit Public-Facing Application)`, ` T1059.001 - PowerShell`. Text after
/// the ID is allowed (it is usually the name) but must be separated from it:
/// `T1190abc` and `T11900` are errors, as are `TA0001`, `T19` and `T1059.1`.
impl FromStr for TechniqueId {
    type Err = TechniqueIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        split_id(s).map(|(id, _rest)| id)
    }
}

impl Serialize for TechniqueId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TechniqueId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Splits a model's `MITRE_TECHNIQUE` value into the ID and the name as written.
///
/// `T1190 (Exploit Public-Facing Application)` gives
/// `(T1190, Some("Exploit Public-Facing Application"))`, ` T1059.001 - PowerShell`
/// gives `(T1059.001, Some("PowerShell"))` and `T1046` gives `(T1046, None)`. The name
/// is not checked against the catalog: labels in the training data use names that
/// ATT&CK does not (`T1110 (Failed Login)`), and callers decide what to do with those.
/// Text without a leading ID (`N/A (N/A)`, `none`) gives `None`.
pub fn parse_technique_field(s: &str) -> Option<(TechniqueId, Option<String>)> {
    let (id, rest) = split_id(s).ok()?;
    Some((id, name_after_id(rest).map(str::to_owned)))
}

/// Punctuation that may wrap an ID or separate it from its name.
fn is_wrapping(c: char) -> bool {
    c.is_whitespace()
        || c.is_ascii_punctuation()
        || matches!(
            c,
            '\u{2013}' | '\u{2014}' | '\u{2018}' | '\u{2019}' | '\u{201c}'
        )
        || matches!(c, '\u{201d}' | '\u{2022}' | '\u{00b7}')
}

fn echo(s: &str) -> String {
    let s = s.trim();
    match s.char_indices().nth(MAX_ECHO) {
        Some((cut, _)) => format!("{}...", &s[..cut]),
        None => s.to_owned(),
    }
}

/// Case-insensitive ASCII prefix strip.
fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// Leading ASCII digits and the rest.
fn split_digits(s: &str) -> (&str, &str) {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    s.split_at(end)
}

/// Parses the ID at the start of `s` and returns it with the text after it.
fn split_id(s: &str) -> Result<(TechniqueId, &str), TechniqueIdError> {
    let start = s.trim_start_matches(is_wrapping);
    if start.trim_end_matches(is_wrapping).is_empty() {
        return Err(TechniqueIdError::Empty);
    }
    let malformed = |reason| TechniqueIdError::Malformed {
        input: echo(s),
        reason,
    };

    let after_prefix = if let Some(rest) = strip_prefix_ci(start, "technique") {
        // "Technique 1190", "Technique: T1190", "technique #1190".
        let rest =
            rest.trim_start_matches(|c: char| c.is_whitespace() || matches!(c, ':' | '#' | '-'));
        strip_prefix_ci(rest, "t").unwrap_or(rest)
    } else if let Some(rest) = strip_prefix_ci(start, "t") {
        rest
    } else {
        return Err(TechniqueIdError::Missing { input: echo(s) });
    };

    let (base, mut rest) = split_digits(after_prefix);
    if base.is_empty() {
        return Err(TechniqueIdError::Missing { input: echo(s) });
    }
    if base.len() != 4 {
        return Err(malformed("the technique number must have 4 digits"));
    }
    let base: u16 = base
        .parse()
        .map_err(|_| malformed("the technique number must have 4 digits"))?;

    let mut sub = None;
    if let Some(after_dot) = rest.strip_prefix('.') {
        let (digits, after) = split_digits(after_dot);
        // A '.' with no digits is a full stop ("... was T1190."), not a sub-technique.
        if !digits.is_empty() {
            if digits.len() != 3 {
                return Err(malformed("the sub-technique number must have 3 digits"));
            }
            sub = Some(
                digits
                    .parse()
                    .map_err(|_| malformed("the sub-technique number must have 3 digits"))?,
            );
            rest = after;
        }
    }

    // "T1190abc" is not T1190 followed by a name: demand a word boundary.
    if rest.starts_with(|c: char| c.is_alphanumeric() || c == '_') {
        return Err(malformed("unexpected characters right after the ID"));
    }
    let id = TechniqueId::new(base, sub).ok_or_else(|| malformed("number out of range"))?;
    Ok((id, rest))
}

/// The name written after an ID: `(Name)`, `- Name`, `: Name` or just `Name`.
fn name_after_id(rest: &str) -> Option<&str> {
    // Closers and quotes here belong to a wrapped ID ("[T1190]", "**T1190** - Name").
    let rest = rest.trim_start_matches(|c: char| {
        c.is_whitespace()
            || "-:,;|=.*`\"')]}".contains(c)
            || matches!(c, '\u{2013}' | '\u{2014}' | '\u{201d}' | '\u{2019}')
    });
    let name = match rest.strip_prefix('(') {
        // Balance parentheses: "T1037.001 (Logon Script (Windows))".
        Some(inner) => {
            let mut depth = 1usize;
            let mut end = inner.len();
            for (i, c) in inner.char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            end = i;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            &inner[..end]
        }
        None => rest,
    };
    let mut name = name.trim();
    // Drop trailing punctuation, and a closer only when nothing in the name opened it.
    loop {
        let trimmed = name.trim_end_matches(|c: char| {
            c.is_whitespace() || ".,;:\"'`*".contains(c) || matches!(c, '\u{201d}' | '\u{2019}')
        });
        let unbalanced = |open: char, close: char| {
            trimmed.ends_with(close)
                && trimmed.matches(open).count() < trimmed.matches(close).count()
        };
        if unbalanced('(', ')') || unbalanced('[', ']') {
            name = &trimmed[..trimmed.len() - 1];
        } else {
            name = trimmed;
            break;
        }
    }
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(base: u16, sub: Option<u16>) -> TechniqueId {
        TechniqueId::new(base, sub).expect("valid test ID")
    }

    #[test]
    fn parses_tolerant_forms() {
        let cases: &[(&str, TechniqueId)] = &[
            ("T1190", id(1190, None)),
            ("t1190", id(1190, None)),
            ("T1190.001", id(1190, Some(1))),
            ("t1059.001", id(1059, Some(1))),
            ("Technique 1190", id(1190, None)),
            ("technique: T1190", id(1190, None)),
            ("TECHNIQUE #1059.003", id(1059, Some(3))),
            ("T1190 (Exploit Public-Facing Application)", id(1190, None)),
            (" T1059.001 - PowerShell", id(1059, Some(1))),
            ("  T1046\n", id(1046, None)),
            ("\"T1190\"", id(1190, None)),
            ("'T1190',", id(1190, None)),
            ("(T1190)", id(1190, None)),
            ("[T1110.004]", id(1110, Some(4))),
            ("**T1190**", id(1190, None)),
            ("`T1190`", id(1190, None)),
            ("- T1498", id(1498, None)),
            ("T1190.", id(1190, None)),
            ("T1190: Exploit", id(1190, None)),
            ("T1190, T1059", id(1190, None)),
            ("\u{201c}T1041\u{201d}", id(1041, None)),
            ("T0001", id(1, None)),
        ];
        for (input, want) in cases {
            assert_eq!(
                input.parse::<TechniqueId>().as_ref(),
                Ok(want),
                "input {input:?}"
            );
        }
    }

    #[test]
    fn rejects_garbage_with_typed_errors() {
        let empty = ["", "   ", "()", " ** ", "\"\""];
        for input in empty {
            assert_eq!(
                input.parse::<TechniqueId>(),
                Err(TechniqueIdError::Empty),
                "{input:?}"
            );
        }
        let missing = [
            "N/A",
            "N/A (N/A)",
            "none",
            "1190",
            "Exploit T1190",
            "T",
            "TA0001",
            "Technique",
            "X1190",
        ];
        for input in missing {
            assert!(
                matches!(
                    input.parse::<TechniqueId>(),
                    Err(TechniqueIdError::Missing { .. })
                ),
                "{input:?} gave {:?}",
                input.parse::<TechniqueId>()
            );
        }
        let malformed = [
            "T19",
            "T11900",
            "T1190abc",
            "T1059.1",
            "T1059.0001",
            "T1059.001x",
            "T1190_1",
        ];
        for input in malformed {
            assert!(
                matches!(
                    input.parse::<TechniqueId>(),
                    Err(TechniqueIdError::Malformed { .. })
                ),
                "{input:?} gave {:?}",
                input.parse::<TechniqueId>()
            );
        }
    }

    #[test]
    fn error_echo_is_bounded() {
        let long = format!("X{}", "a".repeat(10_000));
        let msg = long.parse::<TechniqueId>().unwrap_err().to_string();
        assert!(msg.len() < 200, "{msg}");
    }

    #[test]
    fn displays_canonically() {
        assert_eq!(id(1190, None).to_string(), "T1190");
        assert_eq!(id(1059, Some(1)).to_string(), "T1059.001");
        assert_eq!(id(1, Some(12)).to_string(), "T0001.012");
        assert_eq!(TechniqueId::new(10_000, None), None);
        assert_eq!(TechniqueId::new(1059, Some(1000)), None);
    }

    #[test]
    fn orders_numerically_and_knows_its_parent() {
        let mut ids = [
            id(1190, None),
            id(1059, Some(1)),
            id(1059, None),
            id(1003, Some(8)),
        ];
        ids.sort();
        let shown: Vec<String> = ids.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["T1003.008", "T1059", "T1059.001", "T1190"]);
        assert_eq!(id(1110, Some(1)).parent(), Some(id(1110, None)));
        assert_eq!(id(1110, None).parent(), None);
        assert!(id(1110, Some(1)).is_subtechnique());
    }

    #[test]
    fn field_helper_returns_name_as_written() {
        type Case<'a> = (&'a str, Option<(TechniqueId, Option<&'a str>)>);
        let cases: &[Case] = &[
            (
                "T1190 (Exploit Public-Facing Application)",
                Some((id(1190, None), Some("Exploit Public-Facing Application"))),
            ),
            (
                " T1059.001 - PowerShell",
                Some((id(1059, Some(1)), Some("PowerShell"))),
            ),
            (
                "T1110 (Failed Login)",
                Some((id(1110, None), Some("Failed Login"))),
            ),
            (
                "T1059 (Process Creation \u{2014} Suspicious)",
                Some((id(1059, None), Some("Process Creation \u{2014} Suspicious"))),
            ),
            (
                "T1037.001 (Logon Script (Windows))",
                Some((id(1037, Some(1)), Some("Logon Script (Windows)"))),
            ),
            (
                "T1046: Network Service Discovery.",
                Some((id(1046, None), Some("Network Service Discovery"))),
            ),
            (
                "T1190 \u{2014} Exploit Public-Facing Application",
                Some((id(1190, None), Some("Exploit Public-Facing Application"))),
            ),
            ("T1190 (unclosed", Some((id(1190, None), Some("unclosed")))),
            ("T1046", Some((id(1046, None), None))),
            ("T1046 ()", Some((id(1046, None), None))),
            ("[T1046]", Some((id(1046, None), None))),
            (
                "**T1190** - Exploit Public-Facing Application.",
                Some((id(1190, None), Some("Exploit Public-Facing Application"))),
            ),
            (
                "T1602.001 - SNMP (MIB Dump)",
                Some((id(1602, Some(1)), Some("SNMP (MIB Dump)"))),
            ),
            (
                "(T1046 Network Service Discovery)",
                Some((id(1046, None), Some("Network Service Discovery"))),
            ),
            ("N/A (N/A)", None),
            ("", None),
        ];
        for (input, want) in cases {
            let got = parse_technique_field(input);
            let got = got.as_ref().map(|(i, n)| (*i, n.as_deref()));
            assert_eq!(got, *want, "input {input:?}");
        }
    }

    #[test]
    fn serde_uses_the_display_form() {
        let v = serde_json::to_string(&id(1059, Some(1))).expect("serialise");
        assert_eq!(v, "\"T1059.001\"");
        let back: TechniqueId = serde_json::from_str("\"t1059.001\"").expect("deserialise");
        assert_eq!(back, id(1059, Some(1)));
        assert!(serde_json::from_str::<TechniqueId>("\"bogus\"").is_err());
    }
}
