//! A verdict with what every output format needs worked out once: its level, the ATT&CK
//! technique and tactic from the catalog, and the source, user, host and time read back
//! from the log text.

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use opensoc_attack::{Catalog, Tactic, Technique, TechniqueId};
use opensoc_ingest::{parse_line, Timestamp};
use opensoc_verdict::Verdict;

use crate::level::Level;

/// The product name every format reports.
pub const PRODUCT: &str = "OpenSOC";
/// This crate's version, reported as the product version.
pub const PRODUCT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Base of technique and tactic pages on the ATT&CK site.
const ATTACK_SITE: &str = "https://attack.mitre.org";

/// Fields of the logged event itself, read from the entry's first line by the ingest
/// parsers (an incident's first line is one of its events).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    /// When the event happened, if the record says.
    pub time: Option<Timestamp>,
    /// The client/attacker address as logged (an IP address or a host name).
    pub source: Option<String>,
    pub user: Option<String>,
    /// The host that logged the event.
    pub host: Option<String>,
}

impl Observed {
    pub fn from_input(input: &str) -> Observed {
        let first = input.lines().next().unwrap_or("");
        let event = parse_line(first);
        let clean = |s: Option<String>| s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        Observed {
            time: event.timestamp,
            source: clean(event.source),
            user: clean(event.user),
            host: clean(event.host),
        }
    }

    /// The source as an IP address, when it is one.
    pub fn source_ip(&self) -> Option<IpAddr> {
        self.source.as_deref().and_then(|s| s.parse().ok())
    }
}

/// A verdict ready for a SIEM format.
#[derive(Debug, Clone)]
pub struct Alert<'v> {
    pub verdict: &'v Verdict,
    pub level: Level,
    /// The verdict's technique in the catalog (a revoked ID resolved to its replacement).
    pub technique: Option<&'static Technique>,
    /// The parent of a sub-technique.
    pub parent: Option<&'static Technique>,
    /// The verdict's tactic if the catalog knows it, else the technique's first tactic.
    pub tactic: Option<&'static Tactic>,
    pub observed: Observed,
    /// When the alert was written.
    pub created: Timestamp,
}

impl<'v> Alert<'v> {
    /// The alert for `verdict`, created at `created`.
    pub fn new(verdict: &'v Verdict, created: Timestamp) -> Alert<'v> {
        let catalog = Catalog::enterprise();
        let technique = verdict
            .technique_id
            .as_deref()
            .and_then(|id| id.parse::<TechniqueId>().ok())
            .and_then(|id| catalog.resolve(&id));
        let parent = technique
            .and_then(|t| t.parent())
            .and_then(|p| catalog.get(&p));
        let tactic = verdict
            .tactic
            .as_deref()
            .and_then(|name| catalog.tactic(name))
            .or_else(|| technique.and_then(|t| t.tactics.first()));
        Alert {
            verdict,
            level: Level::of(verdict),
            technique,
            parent,
            tactic,
            observed: Observed::from_input(&verdict.input),
            created,
        }
    }

    /// The alert for `verdict`, created now.
    pub fn now(verdict: &'v Verdict) -> Alert<'v> {
        Alert::new(verdict, now())
    }

    /// When the event happened if known, else when the alert was written.
    pub fn event_time(&self) -> Timestamp {
        self.observed.time.unwrap_or(self.created)
    }

    /// The technique's display name, `Brute Force: Password Guessing` for a
    /// sub-technique, as ATT&CK writes them.
    pub fn technique_full_name(&self) -> Option<String> {
        let t = self.technique?;
        Some(match self.parent {
            Some(p) => format!("{}: {}", p.name, t.name),
            None => t.name.to_string(),
        })
    }

    /// The technique ID as the verdict gave it when the catalog does not know it.
    pub fn technique_id(&self) -> Option<String> {
        self.technique
            .map(|t| t.id.to_string())
            .or_else(|| self.verdict.technique_id.clone())
    }

    /// A one-line summary for people: `SSH Brute Force Attack (T1110.001, high, risk 75)
    /// at auth.log:5-10`.
    pub fn summary(&self) -> String {
        let v = self.verdict;
        let what = v
            .threat_type
            .as_deref()
            .or(v.category.as_deref())
            .unwrap_or("Unclassified entry");
        let mut facts = Vec::new();
        if let Some(id) = self.technique_id() {
            facts.push(id);
        }
        facts.push(self.level.sigma().to_string());
        if let Some(r) = v.risk_score {
            facts.push(format!("risk {r}"));
        }
        format!("{what} ({}) at {}", facts.join(", "), v.id)
    }
}

/// The ATT&CK page of a technique: `https://attack.mitre.org/techniques/T1110/001/`.
pub fn technique_url(id: TechniqueId) -> String {
    match (id.parent(), id.sub()) {
        (Some(parent), Some(sub)) => format!("{ATTACK_SITE}/techniques/{parent}/{sub:03}/"),
        _ => format!("{ATTACK_SITE}/techniques/{id}/"),
    }
}

/// The ATT&CK page of a tactic: `https://attack.mitre.org/tactics/TA0006/`.
pub fn tactic_url(tactic: &Tactic) -> String {
    format!("{ATTACK_SITE}/tactics/{}/", tactic.id)
}

/// The current time as a [`Timestamp`].
pub fn now() -> Timestamp {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    Timestamp(ms)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use opensoc_verdict::Severity;

    /// The brute-force incident of `examples/sample.log`, as `opensoc analyze` writes it.
    pub(crate) fn brute_force() -> Verdict {
        let mut v = Verdict::from_answer(
            "auth.log:5-10".into(),
            "Nov 12 09:20:01 web01 sshd[2211]: Failed password for root from 185.220.101.4 port 51122 ssh2\n[...6 total attempts...]".into(),
            "THREAT_TYPE: SSH Brute Force Attack".into(),
            Default::default(),
        );
        v.threat_type = Some("SSH Brute Force Attack".into());
        v.category = Some("SSH BRUTE FORCE".into());
        v.technique_id = Some("T1110.001".into());
        v.technique_name = Some("Password Guessing".into());
        v.tactic = Some("Credential Access".into());
        v.severity = Some(Severity::High);
        v.risk_score = Some(75);
        v.evidence = Some("6 failed root logins from one address".into());
        v.recommendation = Some("1) Block the address 2) Disable root login".into());
        v.confidence = Some(0.82);
        v
    }

    #[test]
    fn resolves_attack_and_reads_the_event() {
        let v = brute_force();
        let a = Alert::new(&v, Timestamp(0));
        assert_eq!(a.level, Level::High);
        assert_eq!(a.technique.map(|t| t.name), Some("Password Guessing"));
        assert_eq!(
            a.technique_full_name().as_deref(),
            Some("Brute Force: Password Guessing")
        );
        assert_eq!(a.tactic.map(|t| t.id), Some("TA0006"));
        assert_eq!(a.observed.source.as_deref(), Some("185.220.101.4"));
        assert_eq!(a.observed.source_ip(), "185.220.101.4".parse().ok());
        assert_eq!(a.observed.user.as_deref(), Some("root"));
        assert_eq!(a.observed.host.as_deref(), Some("web01"));
        assert!(a.observed.time.is_some());
        assert_eq!(
            a.summary(),
            "SSH Brute Force Attack (T1110.001, high, risk 75) at auth.log:5-10"
        );
    }

    #[test]
    fn attack_urls() {
        let sub: TechniqueId = "T1110.001".parse().unwrap();
        assert_eq!(
            technique_url(sub),
            "https://attack.mitre.org/techniques/T1110/001/"
        );
        let t: TechniqueId = "T1190".parse().unwrap();
        assert_eq!(
            technique_url(t),
            "https://attack.mitre.org/techniques/T1190/"
        );
    }

    #[test]
    fn unknown_technique_and_garbage_input_do_not_panic() {
        let mut v = brute_force();
        v.technique_id = Some("T9999".into());
        v.tactic = Some("Nonsense".into());
        v.input = "\u{0}\u{1b}[31m|=\\".into();
        let a = Alert::new(&v, Timestamp(5));
        assert!(a.technique.is_none() && a.tactic.is_none());
        assert_eq!(a.technique_id().as_deref(), Some("T9999"));
        assert_eq!(a.event_time(), Timestamp(5));
    }
}
