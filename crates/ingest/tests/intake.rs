//! The intake end to end on real files: line and block modes, ids, counts, bad input.

use std::io::Write;
use std::path::{Path, PathBuf};

use opensoc_ingest::{
    Entry, Format, GroupingConfig, IngestError, Intake, IntakeConfig, Source, Stats,
};

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(&p, bytes).expect("write");
    p
}

fn run(cfg: IntakeConfig) -> (Vec<Entry>, Stats) {
    let mut intake = Intake::start(cfg).expect("start");
    let entries: Vec<Entry> = intake.by_ref().collect();
    (entries, intake.stats())
}

fn ungrouped(sources: Vec<Source>) -> IntakeConfig {
    IntakeConfig {
        grouping: GroupingConfig::disabled(),
        ..IntakeConfig::new(sources)
    }
}

#[test]
fn line_mode_ids_formats_and_skipped_empty_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write(
        dir.path(),
        "mixed.log",
        b"91.108.4.20 - - [16/Mar/2025:01:05:33] \"GET /a HTTP/1.1\" 403 1 \"-\" \"x\"\n\n\
Mar 15 01:05:33 server sshd[1]: Accepted password for bob from 10.0.0.1 port 22 ssh2\r\n\
EventID: 4625\nTimestamp: 15-Mar-2025:02:14:01\nUser: SYSTEM\n\
just text",
    );
    let (entries, stats) = run(ungrouped(vec![Source::Path(p.clone())]));
    let name = p.display().to_string();
    let got: Vec<(String, Format, &str)> = entries
        .iter()
        .map(|e| (e.id.clone(), e.format, e.text.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (format!("{name}:1"), Format::AccessCombined, "91.108.4.20 - - [16/Mar/2025:01:05:33] \"GET /a HTTP/1.1\" 403 1 \"-\" \"x\""),
            (format!("{name}:3"), Format::Syslog3164, "Mar 15 01:05:33 server sshd[1]: Accepted password for bob from 10.0.0.1 port 22 ssh2"),
            (format!("{name}:4-6"), Format::WindowsText, "EventID: 4625\nTimestamp: 15-Mar-2025:02:14:01\nUser: SYSTEM"),
            (format!("{name}:7"), Format::Plain, "just text"),
        ]
    );
    assert!(entries.iter().all(|e| e.events == 1));
    assert_eq!(
        (stats.read, stats.parsed, stats.plain, stats.entries),
        (4, 3, 1, 4)
    );
    assert_eq!(
        stats.skipped + stats.malformed + stats.dropped + stats.oversized,
        0
    );
}

#[test]
fn blocks_mode_keeps_blank_line_separated_entries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write(
        dir.path(),
        "blocks.txt",
        b"EventID: 4688\nUser: john\n\n\n1.2.3.4 - - [16/Mar/2025:01:05:33] \"GET / HTTP/1.1\" 404 0\n1.2.3.4 - - [16/Mar/2025:01:05:34] \"GET /x HTTP/1.1\" 404 0\n\nsingle\n",
    );
    let cfg = IntakeConfig {
        blocks: true,
        ..IntakeConfig::new(vec![Source::Path(p.clone())])
    };
    let (entries, stats) = run(cfg);
    let name = p.display().to_string();
    let ids: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(
        ids,
        vec![
            format!("{name}:1-2"),
            format!("{name}:5-6"),
            format!("{name}:8")
        ]
    );
    assert_eq!(entries[0].text, "EventID: 4688\nUser: john");
    assert_eq!(entries[0].format, Format::WindowsText);
    assert_eq!(entries[1].format, Format::AccessCommon);
    assert_eq!(entries[1].text.lines().count(), 2);
    assert_eq!(entries[2].format, Format::Plain);
    assert_eq!(stats.read, 3);
    assert_eq!(stats.entries, 3);
}

#[test]
fn paper_inputs_as_blocks_come_back_verbatim() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/data/opensoc-ai/soc_train.json"
    );
    let Ok(json) = std::fs::read_to_string(path) else {
        eprintln!("skipped: {path} not present");
        return;
    };
    let data: serde_json::Value = serde_json::from_str(&json).expect("valid dataset");
    let inputs: Vec<String> = data
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|r| r["input"].as_str().map(|s| s.trim().to_owned()))
        .filter(|s| !s.is_empty() && !s.contains("\n\n"))
        .take(200)
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write(dir.path(), "inputs.txt", inputs.join("\n\n").as_bytes());
    let cfg = IntakeConfig {
        blocks: true,
        ..IntakeConfig::new(vec![Source::Path(p)])
    };
    let (entries, _) = run(cfg);
    let texts: Vec<&str> = entries.iter().map(|e| e.text.as_str()).collect();
    assert_eq!(texts, inputs.iter().map(String::as_str).collect::<Vec<_>>());
}

#[test]
fn missing_path_is_an_error_naming_it() {
    let err = Intake::start(IntakeConfig::new(vec![Source::Path(
        "/nonexistent/dir/x.log".into(),
    )]))
    .unwrap_err();
    assert!(matches!(err, IngestError::NotFound { .. }));
    assert!(err.to_string().contains("/nonexistent/dir/x.log"), "{err}");
    let err = Intake::start(IntakeConfig::new(vec![Source::Path(
        "/nonexistent/*.log".into(),
    )]))
    .unwrap_err();
    assert!(err.to_string().contains("/nonexistent/*.log"), "{err}");
}

#[test]
fn directories_recurse_in_name_order_and_globs_match() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "b.log", b"b1\n");
    write(dir.path(), "a/z.log", b"az1\naz2\n");
    write(dir.path(), "a/y.txt", b"ay1\n");
    let (entries, _) = run(ungrouped(vec![Source::Path(dir.path().to_path_buf())]));
    let texts: Vec<&str> = entries.iter().map(|e| e.text.as_str()).collect();
    assert_eq!(texts, vec!["ay1", "az1", "az2", "b1"]);

    let pattern = dir.path().join("**/*.log");
    let (entries, _) = run(ungrouped(vec![Source::Path(pattern)]));
    let texts: Vec<&str> = entries.iter().map(|e| e.text.as_str()).collect();
    assert_eq!(texts, vec!["az1", "az2", "b1"]);
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).expect("gzip");
    enc.finish().expect("gzip")
}

#[test]
fn gzip_files_and_truncated_gzip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text: String = (0..2000)
        .map(|i| format!("line number {i} with some padding text\n"))
        .collect();
    let gz = gzip(text.as_bytes());
    let good = write(dir.path(), "a.log.gz", &gz);
    let bad = write(dir.path(), "b.log.gz", &gz[..gz.len() / 2]);
    let after = write(dir.path(), "c.log", b"after the broken file\n");
    let (entries, stats) = run(ungrouped(vec![
        Source::Path(good),
        Source::Path(bad),
        Source::Path(after),
    ]));
    let from_good = entries.iter().filter(|e| e.id.contains("a.log.gz")).count();
    let from_bad = entries.iter().filter(|e| e.id.contains("b.log.gz")).count();
    assert_eq!(from_good, 2000);
    assert!(from_bad > 0 && from_bad < 2000, "{from_bad}");
    assert_eq!(
        entries.last().map(|e| e.text.as_str()),
        Some("after the broken file")
    );
    assert_eq!(stats.skipped, 1, "{stats}");
}

#[test]
fn bad_input_is_counted_and_the_rest_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut bytes = Vec::new();
    bytes.extend_from_slice(b"first good line\n");
    bytes.extend_from_slice(b"\x00\x01\x02binary\x00junk\n");
    bytes.extend_from_slice(b"caf\xe9 latin-1 line\n");
    bytes.extend_from_slice(b"{\"event_type\": \"alert\", broken json\n");
    bytes.extend_from_slice(b"<Event><System><EventID>4625</EventID></System>\n");
    bytes.extend_from_slice(b"</Event-not>\n");
    bytes.extend(std::iter::repeat_n(b'A', 10 * 1024 * 1024));
    bytes.extend_from_slice(b"\nlast good line\n");
    let p = write(dir.path(), "bad.log", &bytes);
    let (entries, stats) = run(ungrouped(vec![Source::Path(p)]));
    // Short views only: a failing assertion must not print 64 KiB.
    let texts: Vec<String> = entries
        .iter()
        .map(|e| e.text.chars().take(60).collect())
        .collect();
    assert_eq!(
        texts
            .iter()
            .filter(|t| !t.starts_with("AAAA"))
            .collect::<Vec<_>>(),
        vec![
            "first good line",
            "\u{fffd}\x01\x02binary\u{fffd}junk",
            "caf\u{fffd} latin-1 line",
            "{\"event_type\": \"alert\", broken json",
            "<Event><System><EventID>4625</EventID></System>\n</Event-not>",
            "last good line"
        ]
    );
    let big = entries
        .iter()
        .find(|e| e.text.starts_with("AAAA"))
        .expect("cut line");
    assert!(big.text.len() <= 64 * 1024 + 64, "{}", big.text.len());
    assert!(
        big.text.contains(&format!(
            "[... {} bytes cut ...]",
            10 * 1024 * 1024 - 64 * 1024
        )),
        "no cut marker"
    );
    assert!(big.text.ends_with("AAAA"), "tail kept");
    assert_eq!(big.cut_bytes, 10 * 1024 * 1024 - 64 * 1024);
    assert!(entries.iter().filter(|e| e.cut_bytes > 0).count() == 1);
    // NUL bytes are replaced, the line kept: nothing skipped.
    assert_eq!(stats.skipped, 0, "{stats}");
    assert_eq!(stats.nul, 1, "{stats}");
    assert_eq!(stats.invalid_utf8, 1, "{stats}");
    assert_eq!(stats.oversized, 1, "{stats}");
    // Broken JSON, and the unclosed XML event (its markup lines, then the record fails to
    // parse and is kept as plain text).
    assert_eq!(stats.malformed, 2, "{stats}");
}

#[test]
fn stats_display_is_one_line() {
    let s = Stats {
        read: 3,
        ..Stats::default()
    };
    let text = s.to_string();
    assert!(text.starts_with("received 3, parsed 0"), "{text}");
    assert!(!text.contains('\n'));
}

#[test]
fn malformed_evtx_is_counted_and_the_next_file_is_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    // An EVTX magic with a garbage header, and one with a plausible size but random body.
    let mut bad = b"ElfFile\0".to_vec();
    bad.extend((0..5000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    let a = write(dir.path(), "a.evtx", &bad);
    let b = write(dir.path(), "b.evtx", b"ElfFile\0short");
    let c = write(dir.path(), "c.log", b"still read\n");
    let (entries, stats) = run(ungrouped(vec![
        Source::Path(a),
        Source::Path(b),
        Source::Path(c),
    ]));
    let texts: Vec<&str> = entries.iter().map(|e| e.text.as_str()).collect();
    assert_eq!(texts, vec!["still read"]);
    assert!(stats.unreadable + stats.skipped >= 2, "{stats}");

    assert!(opensoc_ingest::parse_evtx(b"ElfFile\0short".to_vec()).is_err());
    assert!(opensoc_ingest::parse_evtx(b"not evtx".to_vec()).is_err());
}

#[test]
fn unreadable_file_among_many_is_counted_and_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "a.log", b"from a\n");
    std::os::unix::fs::symlink(dir.path().join("missing-target"), dir.path().join("b.log"))
        .expect("symlink");
    write(dir.path(), "c.log", b"from c\n");
    let (entries, stats) = run(ungrouped(vec![Source::Path(dir.path().join("*.log"))]));
    let texts: Vec<&str> = entries.iter().map(|e| e.text.as_str()).collect();
    assert_eq!(texts, vec!["from a", "from c"]);
    assert_eq!(stats.unreadable, 1, "{stats}");
}

#[test]
fn windows_xml_export_file_is_parsed_per_event() {
    let dir = tempfile::tempdir().expect("tempdir");
    let xml = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<Events>\n<Event xmlns=\"http://schemas.microsoft.com/win/2004/08/events/event\">\n  <System>\n    <EventID>4625</EventID>\n    <TimeCreated SystemTime=\"2025-03-15T02:14:01Z\"/>\n    <Computer>DC-01</Computer>\n  </System>\n  <EventData>\n    <Data Name=\"TargetUserName\">admin</Data>\n    <Data Name=\"IpAddress\">203.0.113.42</Data>\n  </EventData>\n</Event>\n<Event xmlns=\"http://schemas.microsoft.com/win/2004/08/events/event\"><System><EventID>4624</EventID><Computer>DC-01</Computer></System></Event>\n</Events>\n";
    let p = write(dir.path(), "export.xml", xml.as_bytes());
    let (entries, stats) = run(ungrouped(vec![Source::Path(p.clone())]));
    let name = p.display().to_string();
    let ids: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, vec![format!("{name}:3-13"), format!("{name}:14")]);
    assert!(entries.iter().all(|e| e.format == Format::WindowsXml));
    assert_eq!(
        entries[0].text,
        "EventID: 4625\nTimestamp: 2025-03-15T02:14:01Z\nSource IP: 203.0.113.42\nUser: admin\nDescription: Failed Login\nComputer: DC-01"
    );
    assert_eq!(stats.malformed, 0, "{stats}");
}

#[test]
fn sources_parse_from_cli_strings() {
    let cases: [(&str, Source); 4] = [
        ("-", Source::Stdin),
        (
            "udp://127.0.0.1:5514",
            Source::SyslogUdp("127.0.0.1:5514".parse().expect("addr")),
        ),
        (
            "tcp://[::1]:601",
            Source::SyslogTcp("[::1]:601".parse().expect("addr")),
        ),
        ("logs/**/*.log", Source::Path("logs/**/*.log".into())),
    ];
    for (text, want) in cases {
        assert_eq!(text.parse::<Source>().expect(text), want);
    }
    assert!("udp://nonsense".parse::<Source>().is_err());
}

#[test]
fn grouping_config_deserialises_with_defaults() {
    let cfg: GroupingConfig =
        serde_json::from_str(r#"{"gap_secs": 30, "auth_failures": 3}"#).expect("config");
    assert_eq!(cfg.gap_secs, 30);
    assert_eq!(cfg.auth_failures, 3);
    assert_eq!(cfg.probes, GroupingConfig::default().probes);
    assert!(serde_json::from_str::<GroupingConfig>(r#"{"gap": 30}"#).is_err());
}

/// Regression: one NUL byte dropped the whole line, attack included.
#[test]
fn nul_bytes_are_replaced_and_the_line_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write(
        dir.path(),
        "nul.log",
        b"GET /a?id=1%27%20OR%201=1\0-- HTTP/1.1\nnext line\n",
    );
    let (entries, stats) = run(ungrouped(vec![Source::Path(p)]));
    let texts: Vec<&str> = entries.iter().map(|e| e.text.as_str()).collect();
    assert_eq!(
        texts,
        vec!["GET /a?id=1%27%20OR%201=1\u{fffd}-- HTTP/1.1", "next line"]
    );
    assert_eq!((stats.nul, stats.skipped), (1, 0), "{stats}");
}

/// Regression: a megabyte of random bytes was analysed line by line for half an hour.
#[test]
fn binary_file_is_skipped_whole_and_the_next_file_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut state = 42u64;
    let random: Vec<u8> = (0..1024 * 1024)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 56) as u8
        })
        .collect();
    let bin = write(dir.path(), "a.bin", &random);
    let gz = write(dir.path(), "b.bin.gz", &gzip(&random));
    let text = write(dir.path(), "c.log", b"text after the binary files\n");
    let (entries, stats) = run(ungrouped(vec![
        Source::Path(bin),
        Source::Path(gz),
        Source::Path(text),
    ]));
    let texts: Vec<&str> = entries.iter().map(|e| e.text.as_str()).collect();
    assert_eq!(texts, vec!["text after the binary files"]);
    assert_eq!((stats.skipped, stats.read), (2, 1), "{stats}");
}

#[test]
fn dangling_symlinks_loops_and_unreadable_subdirectories_are_counted() {
    use std::os::unix::fs::{symlink, PermissionsExt};
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "a.log", b"from a\n");
    symlink(dir.path().join("gone"), dir.path().join("b-dangling.log")).expect("symlink");
    symlink(dir.path().join("c-loop.log"), dir.path().join("c-loop.log")).expect("symlink");
    symlink(dir.path().join("d2.log"), dir.path().join("d1.log")).expect("symlink");
    symlink(dir.path().join("d1.log"), dir.path().join("d2.log")).expect("symlink");
    write(dir.path(), "locked/x.log", b"hidden\n");
    let locked = dir.path().join("locked");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    // Root reads a mode-000 directory anyway: then there is nothing unreadable to test.
    let root = std::fs::read_dir(&locked).is_ok();
    let (entries, stats) = run(ungrouped(vec![Source::Path(dir.path().to_path_buf())]));
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let texts: Vec<&str> = entries.iter().map(|e| e.text.as_str()).collect();
    if root {
        assert_eq!(texts, vec!["from a", "hidden"]);
        assert_eq!(stats.unreadable, 4, "{stats}");
    } else {
        assert_eq!(texts, vec!["from a"]);
        assert_eq!(stats.unreadable, 5, "{stats}");
    }
}

#[test]
fn a_symlink_loop_given_directly_is_named_a_loop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let link = dir.path().join("loop.log");
    std::os::unix::fs::symlink(&link, &link).expect("symlink");
    let err = Intake::start(IntakeConfig::new(vec![Source::Path(link.clone())])).unwrap_err();
    assert!(matches!(err, IngestError::SymlinkLoop { .. }), "{err}");
    assert!(err.to_string().contains("symlink loop"), "{err}");
    assert!(!err.to_string().contains("no such file"), "{err}");
    let dangling = dir.path().join("dangling.log");
    std::os::unix::fs::symlink(dir.path().join("gone"), &dangling).expect("symlink");
    let err = Intake::start(IntakeConfig::new(vec![Source::Path(dangling)])).unwrap_err();
    assert!(matches!(err, IngestError::DanglingSymlink { .. }), "{err}");
}

#[test]
fn stop_accounts_for_every_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text: String = (0..5000).map(|i| format!("line {i}\n")).collect();
    let p = write(dir.path(), "many.log", text.as_bytes());
    let cfg = IntakeConfig {
        queue_capacity: 16,
        ..ungrouped(vec![Source::Path(p)])
    };
    let mut intake = Intake::start(cfg).expect("start");
    let taken = intake.by_ref().take(10).count() as u64;
    let stats = intake.stop(std::time::Duration::from_secs(5));
    assert_eq!(stats.entries, taken, "{stats}");
    assert!(stats.abandoned > 0, "{stats}");
    assert_eq!(stats.read, stats.entries + stats.abandoned, "{stats}");
    assert!(stats.lost_anything());
}
