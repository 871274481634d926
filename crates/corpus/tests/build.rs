//! The corpus build on small fixtures (no network): rendering equals what `opensoc
//! analyze` reads, label rules, determinism, the benign share, malformed files.

use std::io::Write;
use std::path::{Path, PathBuf};

use opensoc_corpus::{build, write_jsonl, BuildConfig, ComposedCounts, Corpus, Record, Split};
use opensoc_ingest::{ingest_reader, Intake, Source};

fn sources() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sources")
}

fn config() -> BuildConfig {
    BuildConfig {
        seed: 7,
        composed: ComposedCounts {
            web_train: 40,
            web_validation: 12,
            syslog_train: 16,
            syslog_validation: 6,
            ssh_bursts_train: 3,
            ssh_bursts_validation: 1,
        },
    }
}

fn corpus() -> Corpus {
    build(&sources(), &config()).expect("fixtures build")
}

fn jsonl(c: &Corpus) -> Vec<u8> {
    let mut out = Vec::new();
    write_jsonl(&c.records, &mut out).expect("write to memory");
    out
}

fn by_rule<'a>(c: &'a Corpus, rule: &str) -> Vec<&'a Record> {
    c.records.iter().filter(|r| r.label_rule == rule).collect()
}

#[test]
fn inputs_are_what_ingest_reader_and_the_file_intake_render() {
    let c = corpus();
    let with_raw: Vec<&Record> = c.records.iter().filter(|r| !r.raw.is_empty()).collect();
    assert!(with_raw.len() > 50);
    let cfg = opensoc_corpus::render::intake_config();
    let dir = tempfile::tempdir().expect("temp dir");
    for (i, r) in with_raw.iter().enumerate() {
        let (entries, _) = ingest_reader("x.log", r.raw.as_bytes(), &cfg);
        assert!(
            entries
                .iter()
                .any(|e| e.text == r.input && e.format.name() == r.format),
            "ingest_reader renders {:?} otherwise than {:?}",
            r.raw,
            r.input
        );
        // `opensoc analyze FILE` reads paths through the intake: the same text again.
        if i % 7 == 0 {
            let path = dir.path().join(format!("{i}.log"));
            std::fs::File::create(&path)
                .and_then(|mut f| f.write_all(r.raw.as_bytes()))
                .expect("write temp log");
            let mut icfg = opensoc_corpus::render::intake_config();
            icfg.sources = vec![Source::Path(path)];
            let intake = Intake::start(icfg).expect("intake starts");
            assert!(intake.into_iter().any(|e| e.text == r.input), "{:?}", r.raw);
        }
    }
}

#[test]
fn label_rules_on_fixtures() {
    let c = corpus();
    let crs = by_rule(&c, "crs-942-sqli+sqli-subtype");
    assert_eq!(
        crs.len(),
        2,
        "two SQLi tests; the JSON-body test is not in access logs"
    );
    assert!(crs
        .iter()
        .all(|r| r.category == "SQL INJECTION" && r.split == Split::Train));
    assert!(crs.iter().any(|r| r
        .output
        .starts_with("THREAT_TYPE: SQL Injection — UNION-based SQLi\n")));
    // The form body moved into the query string, as a GET.
    assert!(crs.iter().any(|r| r.input.contains("user=42%20OR%201%3D1")
        && r.input.contains("\"GET ")
        || r.input.contains(" GET ") && r.input.contains("user=42%20OR%201%3D1")));

    let fp = by_rule(&c, "crs-must-not-fire");
    assert_eq!(fp.len(), 1);
    assert!(fp[0].input.contains("union%20station"));
    assert!(fp[0].output.starts_with("THREAT_TYPE: No Threat Detected — Normal Traffic\nMITRE_TECHNIQUE: N/A (N/A)\nMITRE_TACTIC: N/A\nSEVERITY: LOW\n"));

    assert_eq!(by_rule(&c, "libinjection-false-positive").len(), 3);
    let time = c
        .records
        .iter()
        .find(|r| r.source == "libinjection" && r.output.contains("Time-based Blind"));
    assert!(time.is_some(), "SLEEP( gives the time-based sub-type");
    assert_eq!(by_rule(&c, "libinjection-xss-file").len(), 2);

    let waf: Vec<&Record> = c
        .records
        .iter()
        .filter(|r| r.source == "waf-bypass")
        .collect();
    assert_eq!(waf.len(), 2, "cookie-only payload left out");
    assert!(waf.iter().all(|r| r.split == Split::Validation));
    assert!(waf
        .iter()
        .any(|r| r.category == "NO THREAT" && r.input.contains("/images/summer-collection.png")));

    // Twelve failures from one address: one incident, labelled; no single-line records.
    let bf = by_rule(&c, "crowdsec-test-ssh-bf");
    assert_eq!(bf.len(), 1);
    assert!(bf[0].input.contains("198.51.100.77") && bf[0].category == "SSH BRUTE FORCE");
    assert!(
        bf[0].output.contains("RISK_SCORE: 76\n"),
        "{}",
        bf[0].output
    );
    assert_eq!(by_rule(&c, "crowdsec-test-sshd-logs-fp").len(), 2);

    // The real shop line with SQL syntax is left out; the two ordinary shop lines and the
    // two ordinary IIS lines are kept; the IIS client with 22 not-found answers is a
    // scanner: one probe incident, reconnaissance, held out with its file.
    let real = by_rule(&c, "lnav-real-benign");
    assert_eq!(real.len(), 4);
    let shop: Vec<_> = real
        .iter()
        .filter(|r| r.format == "access-combined")
        .collect();
    assert_eq!(shop.len(), 2);
    let scan = by_rule(&c, "lnav-scanner-404-burst");
    assert_eq!(scan.len(), 1);
    assert!(scan[0].input.contains("198.51.100.99") && scan[0].category == "RECONNAISSANCE");
    assert_eq!(scan[0].split, Split::Validation);
    assert!(real.iter().all(|r| !r.input.contains("198.51.100.99")));
    assert!(shop.iter().all(|r| !r.input.contains("union")));

    for r in &c.records {
        let risk: u32 = r
            .output
            .lines()
            .find_map(|l| l.strip_prefix("RISK_SCORE: "))
            .and_then(|v| v.parse().ok())
            .expect("risk line");
        if r.category == "NO THREAT" {
            assert!(
                risk <= 10 && r.output.contains("SEVERITY: LOW\n"),
                "{}",
                r.output
            );
        } else {
            assert!(risk > 10, "{}", r.output);
        }
        assert_eq!(r.output.lines().count(), 8, "{}", r.output);
        assert!(r.instruction.is_empty());
    }
}

#[test]
fn two_builds_are_byte_identical_and_the_seed_matters() {
    let a = jsonl(&corpus());
    let b = jsonl(&corpus());
    assert_eq!(a, b);
    let other = build(
        &sources(),
        &BuildConfig {
            seed: 8,
            ..config()
        },
    )
    .expect("build");
    assert_ne!(a, jsonl(&other));
}

#[test]
fn at_least_half_benign_in_each_split_and_every_web_format() {
    let c = corpus();
    for split in [Split::Train, Split::Validation] {
        let all: Vec<&Record> = c.split(split).collect();
        let benign = all.iter().filter(|r| r.category == "NO THREAT").count();
        assert!(
            !all.is_empty() && benign * 2 >= all.len(),
            "{split:?}: {benign} of {}",
            all.len()
        );
    }
    for format in [
        "access-combined",
        "access-common",
        "w3c",
        "syslog-3164",
        "syslog-5424",
    ] {
        assert!(
            c.records
                .iter()
                .any(|r| r.format == format && r.category == "NO THREAT"),
            "no benign {format} record"
        );
    }
}

#[test]
fn malformed_source_files_are_reported_and_skipped() {
    let c = corpus();
    let yaml = c.problems.iter().find(|p| p.path.ends_with("941999.yaml"));
    assert!(
        yaml.is_some_and(|p| p.reason.starts_with("invalid YAML")),
        "{:?}",
        c.problems
    );
    let json = c.problems.iter().find(|p| p.path.ends_with("XSS/2.json"));
    assert!(json.is_some_and(|p| p.reason.starts_with("invalid JSON") && p.line > 0));
    // The rest of those sources still went in.
    assert!(c.records.iter().any(|r| r.source == "crs-regression"));
    assert!(c.records.iter().any(|r| r.source == "waf-bypass"));
}

#[test]
fn a_directory_without_sources_is_an_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    assert!(build(dir.path(), &config()).is_err());
    assert!(build(&dir.path().join("missing"), &config()).is_err());
}

#[test]
fn a_burst_that_ends_in_a_success_is_one_incident_labelled_successful() {
    // Enough bursts that some end in a success (one in five, seeded).
    let mut cfg = config();
    cfg.composed.ssh_bursts_train = 30;
    let c = build(&sources(), &cfg).expect("fixtures build");
    let won = by_rule(&c, "composed-ssh-brute-force-success");
    assert!(!won.is_empty());
    for r in won {
        assert!(r.input.contains("Accepted password for "), "{}", r.input);
        assert!(
            r.input.contains("then a success from the same source"),
            "{}",
            r.input
        );
        assert!(r
            .output
            .starts_with("THREAT_TYPE: SSH Brute Force Attack — SUCCESSFUL LOGIN\n"));
        assert!(r.output.contains("SEVERITY: CRITICAL"));
    }
    for r in by_rule(&c, "composed-ssh-brute-force") {
        assert!(!r.input.contains("Accepted password"), "{}", r.input);
        assert!(r
            .output
            .starts_with("THREAT_TYPE: SSH Brute Force Attack\n"));
    }
}
