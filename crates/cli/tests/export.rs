//! `opensoc export` and the SIEM options of `analyze` that need no model.

use std::process::Command;

fn opensoc() -> Command {
    Command::new(env!("CARGO_BIN_EXE_opensoc"))
}

fn verdict(id: &str, technique: &str, tactic: &str, severity: &str) -> String {
    serde_json::json!({
        "id": id, "input": "x", "threat_type": "SSH Brute Force Attack", "category": "SSH BRUTE FORCE",
        "technique_id": technique, "technique_name": null, "tactic": tactic, "severity": severity,
        "risk_score": 70, "evidence": null, "impact": null, "recommendation": null, "raw_output": "",
    })
    .to_string()
}

#[test]
fn export_navigator_scores_techniques_and_reports_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let from = dir.path().join("verdicts.jsonl");
    let out = dir.path().join("layer.json");
    let lines = [
        verdict("a:1", "T1110.001", "Credential Access", "HIGH"),
        "{not a verdict".to_string(),
        verdict("a:2", "T1110.001", "Credential Access", "CRITICAL"),
        verdict("a:3", "T1190", "Initial Access", "LOW"),
    ];
    std::fs::write(&from, lines.join("\n")).unwrap();
    let run = opensoc()
        .args(["export", "navigator", "--from"])
        .arg(&from)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    // A bad line is reported with file and line and makes the exit code 1.
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("verdicts.jsonl:2: not a verdict"),
        "{stderr}"
    );
    assert!(stderr.contains("3 alerts in the layer"), "{stderr}");
    let layer: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(layer["domain"], "enterprise-attack");
    assert_eq!(layer["versions"]["layer"], "4.5");
    let techniques = layer["techniques"].as_array().unwrap();
    assert_eq!(techniques.len(), 2);
    assert_eq!(techniques[0]["techniqueID"], "T1110.001");
    assert_eq!(techniques[0]["score"], 3 + 4);
    assert_eq!(techniques[0]["tactic"], "credential-access");
}

#[test]
fn a_bad_forward_target_is_refused_before_anything_loads() {
    let run = opensoc()
        .args(["analyze", "--forward", "syslog+udp://siem:514", "-"])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("bad forward target"), "{stderr}");
}
