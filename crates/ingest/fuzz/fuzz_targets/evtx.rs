#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Seed the header magic so the fuzzer spends its time past the first check.
    let mut buf = b"ElfFile\0".to_vec();
    buf.extend_from_slice(data);
    let _ = opensoc_ingest::parse_evtx(buf);
});
