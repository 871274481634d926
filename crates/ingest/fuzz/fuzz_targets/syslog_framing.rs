#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut framer = opensoc_ingest::SyslogFramer::new(128);
    for chunk in data.chunks(7) {
        framer.feed(chunk);
        while let Some(frame) = framer.next_frame() {
            if frame.is_err() {
                return;
            }
        }
    }
    let _ = framer.finish();
});
