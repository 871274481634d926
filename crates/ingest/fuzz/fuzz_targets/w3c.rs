#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // First line: a `#Fields:` header; the rest: data lines.
    if let Ok(s) = std::str::from_utf8(data) {
        let mut lines = s.lines();
        let header = lines.next().unwrap_or("");
        if let Some(fields) = opensoc_ingest::parse::parse_fields_directive(header) {
            for line in lines {
                let _ = opensoc_ingest::parse::parse_w3c(line, &fields);
            }
        }
    }
});
