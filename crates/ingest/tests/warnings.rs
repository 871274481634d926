//! Problems in the input are reported with `tracing::warn!` carrying the file and line.
//! A minimal subscriber collects the warnings (set globally: the intake warns from its
//! reader threads).

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use opensoc_ingest::{GroupingConfig, Intake, IntakeConfig, Source};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<String>>>);

struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, "{}={:?} ", field.name(), value);
    }
}

impl Subscriber for Collect {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        *m.level() <= Level::WARN
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, e: &Event<'_>) {
        let mut f = Fields(String::new());
        e.record(&mut f);
        if let Ok(mut v) = self.0.lock() {
            v.push(f.0);
        }
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[test]
fn each_problem_is_warned_with_path_line_and_reason() {
    let collect = Collect::default();
    tracing::subscriber::set_global_default(collect.clone()).expect("subscriber");

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.log");
    let mut bytes = b"ok\nbin\x00ary\ncaf\xe9\n{\"broken\": \n".to_vec();
    bytes.extend(std::iter::repeat_n(b'x', 200_000));
    bytes.extend_from_slice(b"\nok again\n");
    std::fs::write(&path, &bytes).expect("write");
    // A binary file: skipped with one warning, not one per line.
    let bin = dir.path().join("blob.bin");
    let blob: Vec<u8> = (0..64 * 1024u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&bin, &blob).expect("write");
    let cfg = IntakeConfig {
        grouping: GroupingConfig::disabled(),
        ..IntakeConfig::new(vec![Source::Path(path.clone()), Source::Path(bin.clone())])
    };
    let mut intake = Intake::start(cfg).expect("start");
    let n = intake.by_ref().count();
    // The NUL line is kept (its NULs replaced).
    assert_eq!(n, 6);

    let warnings = collect.0.lock().expect("lock").clone();
    let bin_name = bin.display().to_string();
    let about_bin: Vec<&String> = warnings
        .iter()
        .filter(|w| w.contains(&format!("path={bin_name}")))
        .collect();
    assert_eq!(about_bin.len(), 1, "{about_bin:#?}");
    assert!(about_bin[0].contains("binary data"), "{about_bin:#?}");
    let name = path.display().to_string();
    let expect = [
        (2, "NUL bytes"),
        (3, "invalid UTF-8"),
        (4, "malformed JSON"),
        (5, "oversized"),
    ];
    for (line, reason) in expect {
        assert!(
            warnings.iter().any(|w| w.contains(&format!("path={name}"))
                && w.contains(&format!("line={line} "))
                && w.contains(reason)),
            "no warning for line {line} ({reason}) in {warnings:#?}"
        );
    }
}
