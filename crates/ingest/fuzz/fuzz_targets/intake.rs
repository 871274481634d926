#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Whole pipeline on arbitrary bytes: line splitting with a small cap, binary and
    // UTF-8 checks, framing, detection, grouping, rendering; line and block modes.
    for blocks in [false, true] {
        let cfg = opensoc_ingest::IntakeConfig {
            blocks,
            max_entry_bytes: 256,
            syslog_year: Some(2025),
            ..opensoc_ingest::IntakeConfig::default()
        };
        let (entries, stats) = opensoc_ingest::ingest_reader("fuzz", data, &cfg);
        assert_eq!(entries.len() as u64, stats.entries);
    }
});
