#![no_main]

use libfuzzer_sys::fuzz_target;

/// The smallest file the `evtx` crate reads records from is a 4 KiB file header and one
/// 64 KiB chunk. The header is fixed and valid (random bytes would never get past it);
/// the fuzz input fills the chunk after its magic: chunk header, string and template
/// tables, records.
const HEADER: usize = 4096;
const CHUNK: usize = 65536;

fuzz_target!(|data: &[u8]| {
    let mut buf = vec![0u8; HEADER + CHUNK];
    buf[..8].copy_from_slice(b"ElfFile\0");
    buf[32..36].copy_from_slice(&128u32.to_le_bytes());
    buf[36..38].copy_from_slice(&1u16.to_le_bytes());
    buf[38..40].copy_from_slice(&3u16.to_le_bytes());
    buf[40..42].copy_from_slice(&(HEADER as u16).to_le_bytes());
    buf[42..44].copy_from_slice(&1u16.to_le_bytes());
    buf[HEADER..HEADER + 8].copy_from_slice(b"ElfChnk\0");
    let n = data.len().min(CHUNK - 8);
    buf[HEADER + 8..HEADER + 8 + n].copy_from_slice(&data[..n]);
    let _ = opensoc_ingest::parse_evtx(buf);
});
