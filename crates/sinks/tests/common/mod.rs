//! Verdicts the schema tests render: the sample log's kinds of entries plus hostile and
//! sparse ones.

#![allow(dead_code)] // each test file uses its own subset

use std::path::PathBuf;

use opensoc_verdict::{Severity, Verdict};

pub fn schemas_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/schemas")
}

fn verdict(id: &str, input: &str) -> Verdict {
    Verdict::from_answer(id.into(), input.into(), String::new(), Default::default())
}

#[allow(clippy::too_many_arguments)]
fn full(
    id: &str,
    input: &str,
    threat: &str,
    category: &str,
    technique: &str,
    tactic: &str,
    severity: Severity,
    risk: u8,
) -> Verdict {
    let mut v = verdict(id, input);
    v.threat_type = Some(threat.into());
    v.category = Some(category.into());
    v.technique_id = Some(technique.into());
    v.tactic = Some(tactic.into());
    v.severity = Some(severity);
    v.risk_score = Some(risk);
    v.evidence = Some(format!("{threat} seen in {id}"));
    v.impact = Some("Possible compromise.".into());
    v.recommendation = Some("1) IMMEDIATE: Block IP".into());
    v.confidence = Some(0.5);
    v
}

/// Verdicts covering every branch of the writers: sub-technique and technique, IPv4,
/// IPv6 and host-name sources, no parsed fields, no ATT&CK at all, NO THREAT, an unknown
/// technique, and fields full of CEF, JSON and syslog metacharacters.
pub fn verdicts() -> Vec<Verdict> {
    let mut out = vec![
        full(
            "examples/sample.log:1",
            "203.0.113.45 - - [12/Nov/2026:09:14:02 +0000] \"GET /products.php?id=7%20UNION%20SELECT HTTP/1.1\" 200 5120 \"-\" \"sqlmap/1.7.2#stable\"",
            "SQL Injection — Union/Boolean SQLi",
            "SQL INJECTION",
            "T1190",
            "Initial Access",
            Severity::Critical,
            92,
        ),
        full(
            "examples/sample.log:5-10",
            "Nov 12 09:20:01 web01 sshd[2211]: Failed password for root from 185.220.101.4 port 51122 ssh2\n[...6 total attempts...]",
            "SSH Brute Force Attack",
            "SSH BRUTE FORCE",
            "T1110.001",
            "Credential Access",
            Severity::High,
            75,
        ),
        full(
            "v6.log:3",
            "Nov 12 09:20:01 db01 sshd[22]: Failed password for invalid user admin from 2001:db8::7 port 4242 ssh2",
            "SSH Brute Force Attack",
            "SSH BRUTE FORCE",
            "T1110",
            "credential-access",
            Severity::Medium,
            55,
        ),
        full(
            "host.log:9",
            "Nov 12 09:20:01 web01 sshd[22]: Failed password for bob from scanner.example.net port 4242 ssh2",
            "SSH Brute Force Attack",
            "SSH BRUTE FORCE",
            "T1110.001",
            "Credential Access",
            Severity::Low,
            20,
        ),
    ];
    let mut bare = verdict("bare.log:1", "something happened");
    bare.severity = Some(Severity::Low);
    out.push(bare);
    let mut benign = full(
        "benign.log:4",
        "GET /index.html 200",
        "Normal Traffic",
        "NO THREAT",
        "T1190",
        "Initial Access",
        Severity::Low,
        3,
    );
    benign.evidence = None;
    out.push(benign);
    let mut unknown = full(
        "odd.log:2",
        "x",
        "Odd",
        "RECONNAISSANCE",
        "T9999.999",
        "Nowhere",
        Severity::Medium,
        40,
    );
    unknown.warnings = vec!["unknown technique T9999.999".into()];
    out.push(unknown);
    out.push(hostile());
    out
}

/// Every field holds the characters the formats must escape.
pub fn hostile() -> Verdict {
    let nasty = "a|b\\c=d\"e]f\ng\rh\u{0}<!channel>&\u{1b}[31m";
    let mut v = full(
        "evil|log=1\\.log:1",
        &format!("Nov 12 09:20:01 web01 sshd[1]: Failed password for root from 198.51.100.9 port 1 ssh2 {nasty}\n{nasty}"),
        nasty,
        nasty,
        "T1059.004",
        "Execution",
        Severity::Critical,
        100,
    );
    v.evidence = Some(nasty.into());
    v.impact = Some(nasty.into());
    v.recommendation = Some(nasty.into());
    v.raw_output = nasty.into();
    v
}
