#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(events) = opensoc_ingest::parse::parse_json(s) {
            for ev in events {
                let _ = ev.text();
            }
        }
    }
});
