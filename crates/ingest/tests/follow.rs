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
fn pending_multi_line_record_comes_out_when_the_writer_pauses_but_a_partial_line_waits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("events.txt");
    append(&log, "EventID: 4625\nUser: bob\npartial without");
    let cfg = IntakeConfig {
        follow: true,
        grouping: GroupingConfig::disabled(),
        poll_interval: Duration::from_millis(20),
        ..IntakeConfig::new(vec![Source::Path(log.clone())])
    };
    let intake = Intake::start(cfg).expect("start");
    assert_eq!(next_texts(&intake, 1), vec!["EventID: 4625\nUser: bob"]);
    // The writer paused mid-line for many polls: the fragment is not an entry.
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        intake.next_timeout(Duration::from_millis(50)).is_err(),
        "a partial line came out"
    );
    append(&log, " newline\n");
    assert_eq!(next_texts(&intake, 1), vec!["partial without newline"]);
    intake.shutdown();
}

/// Regression: a file truncated and at once rewritten past its old size was read on from
/// the old offset, losing the new lines' starts and analysing a fragment as an entry.
#[test]
fn truncate_and_rewrite_past_the_old_size_is_read_from_the_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("app.log");
    append(&log, "old one\nold two\n");
    let cfg = IntakeConfig {
        follow: true,
        grouping: GroupingConfig::disabled(),
        poll_interval: Duration::from_millis(20),
        ..IntakeConfig::new(vec![Source::Path(log.clone())])
    };
    let intake = Intake::start(cfg).expect("start");
    assert_eq!(next_texts(&intake, 2), vec!["old one", "old two"]);
    let inode = |p: &std::path::Path| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(p).expect("metadata").ino()
    };
    let before = inode(&log);
    // Same inode, truncated and longer at once, with the same first bytes as before.
    let mut f = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&log)
        .expect("open");
    f.write_all(b"old one\nnew line after the rewrite\nanother new line\n")
        .expect("write");
    drop(f);
    assert_eq!(inode(&log), before);
    assert_eq!(
        next_texts(&intake, 3),
        vec!["old one", "new line after the rewrite", "another new line"]
    );
    // Nothing more: no fragment of the old offset's line.
    assert!(intake.next_timeout(Duration::from_millis(200)).is_err());
    intake.shutdown();
}
