#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Some(ev) = opensoc_ingest::parse::parse_windows_text(s) {
            let _ = ev.text();
        }
    }
});
