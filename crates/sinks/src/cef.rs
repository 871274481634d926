//! ArcSight Common Event Format (CEF:0) lines, escaped as the CEF Implementation
//! Standard defines: in the header `\` and `|`, in extension values `\`, `=` and line
//! breaks (as `\n`, `\r`).

use crate::alert::{Alert, PRODUCT, PRODUCT_VERSION};

/// Extension values the ArcSight dictionary gives a length limit.
const MSG_MAX_CHARS: usize = 1023;
const CUSTOM_STRING_MAX_CHARS: usize = 4000;

/// One CEF line (without a line terminator) for an alert.
pub fn line(alert: &Alert<'_>) -> String {
    let v = alert.verdict;
    // The event class: what a SIEM rule keys on. The technique when known.
    let class_id = alert
        .technique_id()
        .or_else(|| v.category.clone())
        .unwrap_or_else(|| "unclassified".into());
    let name = v
        .threat_type
        .as_deref()
        .or(v.category.as_deref())
        .unwrap_or("Unclassified entry");
    let mut out = format!(
        "CEF:0|{}|{}|{}|{}|{}|{}|",
        header(PRODUCT),
        header(PRODUCT),
        header(PRODUCT_VERSION),
        header(&class_id),
        header(name),
        alert.level.row().cef_severity
    );

    let mut ext: Vec<(&str, String)> = vec![
        ("rt", alert.event_time().0.to_string()),
        ("externalId", v.id.clone()),
    ];
    let observed = &alert.observed;
    if let Some(source) = &observed.source {
        match observed.source_ip() {
            Some(ip) => ext.push(("src", ip.to_string())),
            None => ext.push(("shost", source.clone())),
        }
    }
    if let Some(user) = &observed.user {
        ext.push(("suser", user.clone()));
    }
    if let Some(host) = &observed.host {
        ext.push(("dhost", host.clone()));
    }
    if let Some(c) = &v.category {
        ext.push(("cat", c.clone()));
    }
    let msg = v.evidence.clone().unwrap_or_else(|| alert.summary());
    ext.push(("msg", clip(&msg, MSG_MAX_CHARS)));
    if let Some(id) = alert.technique_id() {
        ext.push(("cs1Label", "mitreTechnique".into()));
        let named = alert
            .technique_full_name()
            .map_or(id.clone(), |n| format!("{id} ({n})"));
        ext.push(("cs1", named));
    }
    if let Some(t) = alert.tactic {
        ext.push(("cs2Label", "mitreTactic".into()));
        ext.push(("cs2", format!("{} ({})", t.id, t.name)));
    }
    if let Some(r) = &v.recommendation {
        ext.push(("cs3Label", "recommendation".into()));
        ext.push(("cs3", clip(r, CUSTOM_STRING_MAX_CHARS)));
    }
    ext.push(("cs4Label", "rawEvent".into()));
    ext.push(("cs4", clip(&v.input, CUSTOM_STRING_MAX_CHARS)));
    ext.push(("cs5Label", "level".into()));
    ext.push(("cs5", alert.level.sigma().into()));
    if let Some(r) = v.risk_score {
        ext.push(("cn1Label", "riskScore".into()));
        ext.push(("cn1", r.to_string()));
    }
    if let Some(c) = v.confidence {
        ext.push(("cfp1Label", "confidence".into()));
        ext.push(("cfp1", format!("{c:.4}")));
    }

    for (i, (key, value)) in ext.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(key);
        out.push('=');
        out.push_str(&extension_value(value));
    }
    out
}

/// A header field: `\` and `|` escaped; line breaks and other control characters,
/// which the header cannot carry, become spaces.
pub fn header(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    for c in field.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '|' => out.push_str("\\|"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// An extension value: `\`, `=` and line breaks escaped; other control characters
/// become spaces so that one event stays one line.
pub fn extension_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '=' => out.push_str("\\="),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// The first `max` characters of `s`.
fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((cut, _)) => s[..cut].to_string(),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::tests::brute_force;
    use opensoc_ingest::Timestamp;

    #[test]
    fn escapes_each_part_by_its_own_rules() {
        assert_eq!(header(r"a|b\c=d"), r"a\|b\\c=d");
        assert_eq!(header("two\nlines"), "two lines");
        assert_eq!(extension_value("a|b\\c=d\r\ne"), r"a|b\\c\=d\r\ne");
        assert_eq!(extension_value("bell\u{7}"), "bell ");
    }

    #[test]
    fn brute_force_line() {
        let v = brute_force();
        let line = line(&Alert::new(&v, Timestamp(0)));
        assert!(
            line.starts_with("CEF:0|OpenSOC|OpenSOC|0.1.0|T1110.001|SSH Brute Force Attack|8|rt="),
            "{line}"
        );
        assert!(
            line.contains(" src=185.220.101.4 suser=root dhost=web01 "),
            "{line}"
        );
        assert!(line.contains(r"cs4=Nov 12 09:20:01 web01 sshd[2211]: Failed password for root from 185.220.101.4 port 51122 ssh2\n[...6 total attempts...]"), "{line}");
        assert!(!line.contains('\n'));
    }

    #[test]
    fn clip_counts_characters() {
        assert_eq!(clip("héllo", 2), "hé");
        assert_eq!(clip("hé", 5), "hé");
    }
}
