//! Lines per second of triage alone (detectors and fast-path rules) on one thread, over
//! the lines of the given files: `cargo run --release -p opensoc-triage --example
//! throughput -- FILE...`. `opensoc bench --logs` reports the same figure.

use std::io::BufRead;
use std::time::Instant;

use opensoc_triage::{Route, Triage};

fn main() -> std::io::Result<()> {
    let mut lines = Vec::new();
    for path in std::env::args().skip(1) {
        for line in std::io::BufReader::new(std::fs::File::open(&path)?).lines() {
            lines.push(line?);
        }
    }
    let triage = Triage::builtin();
    triage.assess("warm-up: compiles the detectors' expressions once");
    for round in 0..3 {
        let started = Instant::now();
        let mut fast = 0usize;
        for l in &lines {
            fast += usize::from(matches!(triage.assess(l).route, Route::FastPath { .. }));
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "round {round}: {} lines in {secs:.2} s: {:.0} lines/s on one core; {fast} on the fast path",
            lines.len(),
            lines.len() as f64 / secs
        );
    }
    Ok(())
}
