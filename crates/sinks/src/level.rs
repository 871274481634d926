//! The one severity table: OpenSOC's severities as Sigma levels and as each output
//! format's number.

use opensoc_verdict::{Severity, Verdict};

/// The canonical category of verdicts that found nothing.
pub const NO_THREAT: &str = "NO THREAT";

/// A Sigma rule level (`informational`, `low`, `medium`, `high`, `critical`): the common
/// scale the formats below are mapped from. Ordered, `Informational` lowest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Informational,
    Low,
    Medium,
    High,
    Critical,
}

/// One row of the table. Every format reads its severity from here and nowhere else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LevelRow {
    pub level: Level,
    /// Sigma's level name.
    pub sigma: &'static str,
    /// OCSF `severity_id` and its caption (`severity`).
    pub ocsf_severity_id: u8,
    pub ocsf_severity: &'static str,
    /// OCSF `risk_level_id` and its caption (`risk_level`).
    pub ocsf_risk_level_id: u8,
    pub ocsf_risk_level: &'static str,
    /// ECS `event.severity`: the values Elastic's detection rules use (21/47/73/99).
    pub ecs_severity: u8,
    /// CEF header severity, 0-10 (ArcSight: 0-3 low, 4-6 medium, 7-8 high, 9-10 very high).
    pub cef_severity: u8,
    /// RFC 5424 severity code (2 critical, 3 error, 4 warning, 5 notice, 6 informational).
    pub syslog_severity: u8,
    /// Weight in an ATT&CK Navigator layer's score.
    pub navigator_weight: u32,
}

/// The table, lowest level first.
pub const LEVELS: [LevelRow; 5] = [
    LevelRow {
        level: Level::Informational,
        sigma: "informational",
        ocsf_severity_id: 1,
        ocsf_severity: "Informational",
        ocsf_risk_level_id: 0,
        ocsf_risk_level: "Info",
        ecs_severity: 0,
        cef_severity: 1,
        syslog_severity: 6,
        navigator_weight: 0,
    },
    LevelRow {
        level: Level::Low,
        sigma: "low",
        ocsf_severity_id: 2,
        ocsf_severity: "Low",
        ocsf_risk_level_id: 1,
        ocsf_risk_level: "Low",
        ecs_severity: 21,
        cef_severity: 3,
        syslog_severity: 5,
        navigator_weight: 1,
    },
    LevelRow {
        level: Level::Medium,
        sigma: "medium",
        ocsf_severity_id: 3,
        ocsf_severity: "Medium",
        ocsf_risk_level_id: 2,
        ocsf_risk_level: "Medium",
        ecs_severity: 47,
        cef_severity: 5,
        syslog_severity: 4,
        navigator_weight: 2,
    },
    LevelRow {
        level: Level::High,
        sigma: "high",
        ocsf_severity_id: 4,
        ocsf_severity: "High",
        ocsf_risk_level_id: 3,
        ocsf_risk_level: "High",
        ecs_severity: 73,
        cef_severity: 8,
        syslog_severity: 3,
        navigator_weight: 3,
    },
    LevelRow {
        level: Level::Critical,
        sigma: "critical",
        ocsf_severity_id: 5,
        ocsf_severity: "Critical",
        ocsf_risk_level_id: 4,
        ocsf_risk_level: "Critical",
        ecs_severity: 99,
        cef_severity: 10,
        syslog_severity: 2,
        navigator_weight: 4,
    },
];

impl Level {
    /// The level of a verdict: a `NO THREAT` verdict, or one without a severity, is
    /// informational (Sigma has no "unknown"); otherwise the severity's own level.
    pub fn of(verdict: &Verdict) -> Level {
        if verdict.category.as_deref() == Some(NO_THREAT) {
            return Level::Informational;
        }
        verdict.severity.map_or(Level::Informational, Level::from)
    }

    /// This level's row of [`LEVELS`].
    pub fn row(self) -> &'static LevelRow {
        // The table is indexed by the enum's order, which a test pins.
        &LEVELS[self as usize]
    }

    /// Sigma's name for the level.
    pub fn sigma(self) -> &'static str {
        self.row().sigma
    }
}

impl From<Severity> for Level {
    fn from(s: Severity) -> Level {
        match s {
            Severity::Low => Level::Low,
            Severity::Medium => Level::Medium,
            Severity::High => Level::High,
            Severity::Critical => Level::Critical,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_rows_are_in_enum_order_and_monotonic() {
        for (i, row) in LEVELS.iter().enumerate() {
            assert_eq!(row.level as usize, i);
            assert_eq!(row.level.row(), row);
        }
        for w in LEVELS.windows(2) {
            let (a, b) = (&w[0], &w[1]);
            assert!(a.ocsf_severity_id < b.ocsf_severity_id);
            assert!(a.ocsf_risk_level_id < b.ocsf_risk_level_id);
            assert!(a.ecs_severity < b.ecs_severity);
            assert!(a.cef_severity < b.cef_severity);
            // Syslog counts down: 0 is an emergency.
            assert!(a.syslog_severity > b.syslog_severity);
            assert!(a.navigator_weight < b.navigator_weight);
        }
        assert!(LEVELS
            .iter()
            .all(|r| r.cef_severity <= 10 && r.syslog_severity <= 7));
    }

    #[test]
    fn verdict_levels() {
        let mut v =
            Verdict::from_answer("a:1".into(), "x".into(), String::new(), Default::default());
        assert_eq!(Level::of(&v), Level::Informational);
        v.severity = Some(Severity::High);
        assert_eq!(Level::of(&v).sigma(), "high");
        v.category = Some(NO_THREAT.into());
        assert_eq!(Level::of(&v), Level::Informational);
    }
}
