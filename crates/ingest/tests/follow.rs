//! `follow`: new lines, truncation and rotation of a followed file.

use std::fs::OpenOptions;
use std::io::Write;
use std::time::{Duration, Instant};

use opensoc_ingest::{Entry, GroupingConfig, Intake, IntakeConfig, Source};

fn next_texts(intake: &Intake, want: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut got = Vec::new();
    while got.len() < want && Instant::now() < deadline {
        if let Ok(Some(Entry { text, .. })) = intake.next_timeout(Duration::from_millis(50)) {
            got.push(text);
        }
    }
    got
}

fn append(path: &std::path::Path, text: &str) {
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .expect("open");
    f.write_all(text.as_bytes()).expect("write");
}

#[test]
fn follows_appends_truncation_and_rotation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("app.log");
    append(&log, "one\ntwo\n");
    let cfg = IntakeConfig {
        follow: true,
        grouping: GroupingConfig::disabled(),
        poll_interval: Duration::from_millis(20),
        ..IntakeConfig::new(vec![Source::Path(log.clone())])
    };
    let intake = Intake::start(cfg).expect("start");
    assert_eq!(next_texts(&intake, 2), vec!["one", "two"]);

    append(&log, "three\n");
    assert_eq!(next_texts(&intake, 1), vec!["three"]);

    // Truncation: copytruncate-style rotation.
    std::fs::write(&log, "").expect("truncate");
    std::thread::sleep(Duration::from_millis(100));
    append(&log, "after truncate\n");
    assert_eq!(next_texts(&intake, 1), vec!["after truncate"]);

    // Rotation: rename, then a new file under the old name. Lines written to the old file
    // just before the rename are still read.
    append(&log, "last of old\n");
    std::fs::rename(&log, dir.path().join("app.log.1")).expect("rename");
    append(&log, "first of new\n");
    assert_eq!(next_texts(&intake, 2), vec!["last of old", "first of new"]);

    intake.shutdown();
}

#[test]
fn pending_multi_line_record_and_partial_line_come_out_when_the_writer_pauses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("events.txt");
    append(&log, "EventID: 4625\nUser: bob\npartial without newline");
    let cfg = IntakeConfig {
        follow: true,
        grouping: GroupingConfig::disabled(),
        poll_interval: Duration::from_millis(20),
        ..IntakeConfig::new(vec![Source::Path(log)])
    };
    let intake = Intake::start(cfg).expect("start");
    assert_eq!(
        next_texts(&intake, 2),
        vec!["EventID: 4625\nUser: bob", "partial without newline"]
    );
    intake.shutdown();
}
