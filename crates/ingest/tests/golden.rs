//! Golden tests of incident rendering: each fixture in `tests/golden/` goes through the
//! intake with default grouping; the entries must match `<fixture>.out` byte for byte.
//! Set `UPDATE_GOLDEN=1` to rewrite the expected files after an intended change.

use std::path::Path;

use opensoc_ingest::{ingest_reader, Entry, IntakeConfig};

fn render(entries: &[Entry]) -> String {
    let mut out = String::new();
    for e in entries {
        out.push_str(&format!(
            "=== {} | {} | {} event(s)\n{}\n",
            e.id, e.format, e.events, e.text
        ));
    }
    out
}

fn check(fixture: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let input = std::fs::read(dir.join(fixture)).expect("fixture");
    let cfg = IntakeConfig {
        syslog_year: Some(2025),
        ..IntakeConfig::default()
    };
    let (entries, _) = ingest_reader(fixture, input.as_slice(), &cfg);
    let got = render(&entries);
    // Same input, same output: run twice.
    let (again, _) = ingest_reader(fixture, input.as_slice(), &cfg);
    assert_eq!(render(&again), got, "output is not deterministic");
    let expected_path = dir.join(format!("{fixture}.out"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&expected_path, &got).expect("write golden");
        return;
    }
    let expected =
        std::fs::read_to_string(&expected_path).expect("golden file (run with UPDATE_GOLDEN=1)");
    assert_eq!(got, expected, "{fixture} rendering changed");
}

#[test]
fn ssh_bruteforce() {
    check("ssh_bruteforce.log");
}

#[test]
fn web_scan() {
    check("web_scan.log");
}

#[test]
fn windows_failed_logons() {
    check("windows_4625.txt");
}

#[test]
fn flood() {
    check("flood.log");
}

/// Every input of the paper's training data through the intake in line mode: no event is
/// lost, and each brute-force burst (5 or more failed logins from one client) becomes
/// exactly one incident holding all its lines, with the success that ended it.
#[test]
fn paper_bursts_become_single_incidents() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/data/opensoc-ai/soc_train.json"
    );
    let Ok(json) = std::fs::read_to_string(path) else {
        eprintln!("skipped: {path} not present");
        return;
    };
    let data: serde_json::Value = serde_json::from_str(&json).expect("valid dataset");
    let cfg = IntakeConfig {
        syslog_year: Some(2025),
        ..IntakeConfig::default()
    };
    let mut bursts = 0;
    for (i, record) in data.as_array().expect("array").iter().enumerate() {
        let Some(input) = record["input"].as_str() else {
            continue;
        };
        let (entries, stats) = ingest_reader("input", input.as_bytes(), &cfg);
        let events: usize = entries.iter().map(|e| e.events).sum();
        assert_eq!(events as u64, stats.parsed + stats.plain, "input {i}");
        let failures = input
            .lines()
            .filter(|l| l.contains("Failed password") || l.contains("\" 401 "))
            .count();
        if failures >= 5 {
            bursts += 1;
            let incidents: Vec<_> = entries.iter().filter(|e| e.incident.is_some()).collect();
            assert_eq!(incidents.len(), 1, "input {i}");
            // A login that worked right after the failures (same client, same path, within
            // the 60 s gap) joins them; the paper's inputs write such a success in the
            // failures' own second, and one `Accepted` line an hour later, which stays apart.
            let stamp = |l: &str| l.get(..15).map(str::to_owned);
            let last_failure = input
                .lines()
                .rfind(|l| l.contains("Failed password"))
                .and_then(stamp);
            let success = input.lines().any(|l| {
                l.contains("\" 200 ") || (l.contains("Accepted ") && stamp(l) == last_failure)
            });
            assert_eq!(
                incidents[0].events,
                failures + usize::from(success),
                "input {i}"
            );
            assert_eq!(
                incidents[0]
                    .text
                    .contains("then a success from the same source"),
                success,
                "input {i}"
            );
        }
    }
    assert!(bursts > 10, "the dataset has brute-force examples");
}
