//! Parse + grouping throughput on synthetic access-log lines.
//!
//! `cargo run --release -p opensoc-ingest --example bench [-- LINES REPEATS]`
//!
//! Generates its own lines (normal traffic, scanners, brute force, a flood), then times
//! two things and prints the median over the repeats:
//! * one core: split lines, parse, group, render entries, all on the calling thread;
//! * the threaded intake (`ingest_reader`: reader thread + grouping thread).

use std::sync::Arc;
use std::time::Instant;

use opensoc_ingest::{
    ingest_reader, Grouped, Grouper, GroupingConfig, IntakeConfig, Location, Parsed, Parser,
};

/// A small deterministic generator (64-bit LCG), so every run times the same input.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

fn synthetic(lines: usize) -> String {
    let mut rng = Lcg(42);
    let paths = [
        "/",
        "/index.html",
        "/login",
        "/api/items",
        "/static/app.js",
        "/.env",
        "/wp-admin",
        "/search?q=shoes",
    ];
    let agents = [
        "Mozilla/5.0 (X11; Linux x86_64)",
        "curl/8.0",
        "python-requests/2.28",
        "nmap scripting engine",
    ];
    let mut out = String::with_capacity(lines * 130);
    for i in 0..lines {
        let sec = i / 50; // 50 lines per second of log time
        let (h, m, s) = (sec / 3600 % 24, sec / 60 % 60, sec % 60);
        let r = rng.next();
        let (ip, path, status) = match r % 100 {
            // Brute force and scanning from a few sources.
            0..=4 => (format!("45.33.32.{}", r % 3), "/login", 401),
            5..=9 => (
                format!("198.51.100.{}", r % 4),
                paths[(r / 7) as usize % paths.len()],
                404,
            ),
            _ => (
                format!("10.{}.{}.{}", r % 7, (r / 7) % 250, (r / 1750) % 250),
                paths[(r / 11) as usize % paths.len()],
                [200, 200, 200, 304, 302, 404][(r / 13) as usize % 6],
            ),
        };
        let agent = agents[(r / 17) as usize % agents.len()];
        out.push_str(&format!(
            "{ip} - - [16/Mar/2025:{h:02}:{m:02}:{s:02} +0000] \"GET {path} HTTP/1.1\" {status} {} \"-\" \"{agent}\"\n",
            r % 50_000
        ));
    }
    out
}

/// Everything the intake does per line, on one thread.
fn one_core(input: &str) -> (usize, usize) {
    let origin: Arc<str> = Arc::from("bench.log");
    let mut parser = Parser::with_year(2025);
    let mut grouper = Grouper::new(GroupingConfig::default());
    let mut out = Vec::new();
    let (mut entries, mut bytes) = (0, 0);
    let mut drain = |out: &mut Vec<Grouped>| {
        for g in out.drain(..) {
            let text = match g {
                Grouped::Single(ev, _) => ev.text().into_owned(),
                Grouped::Incident(inc) => inc.render(),
            };
            entries += 1;
            bytes += text.len();
        }
    };
    for (i, line) in input.lines().enumerate() {
        if let Parsed::Event(ev) = parser.parse(line) {
            grouper.push(ev, Location::line(origin.clone(), i as u64 + 1), &mut out);
            drain(&mut out);
        }
    }
    grouper.flush_all(&mut out);
    drain(&mut out);
    (entries, bytes)
}

/// CPU time of the calling thread (Linux `schedstat`, nanoseconds), so a figure taken on a
/// busy machine still says what one core does. `None` elsewhere.
fn thread_cpu_secs() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: f64 = s.split_whitespace().next()?.parse().ok()?;
    Some(ns / 1e9)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let lines = args.first().copied().unwrap_or(500_000);
    let repeats = args.get(1).copied().unwrap_or(7).max(1);
    let input = synthetic(lines);
    println!(
        "{lines} synthetic access-log lines ({:.1} MB), {repeats} repeats",
        input.len() as f64 / 1e6
    );

    let mut rates = Vec::new();
    let mut cpu_rates = Vec::new();
    let mut summary = (0, 0);
    for _ in 0..repeats {
        let t = Instant::now();
        let cpu = thread_cpu_secs();
        summary = one_core(&input);
        rates.push(lines as f64 / t.elapsed().as_secs_f64());
        if let (Some(a), Some(b)) = (cpu, thread_cpu_secs()) {
            cpu_rates.push(lines as f64 / (b - a));
        }
    }
    println!(
        "one core, parse + group + render: median {:.0} lines/s wall-clock (min {:.0}, max {:.0}); {} entries",
        median(rates.clone()),
        rates.iter().copied().fold(f64::INFINITY, f64::min),
        rates.iter().copied().fold(0.0, f64::max),
        summary.0
    );
    if !cpu_rates.is_empty() {
        println!(
            "one core, per CPU-second of the thread: median {:.0} lines/s",
            median(cpu_rates)
        );
    }

    let cfg = IntakeConfig::default();
    let mut rates = Vec::new();
    let mut stats = None;
    for _ in 0..repeats {
        let t = Instant::now();
        let (entries, s) = ingest_reader("bench.log", input.as_bytes(), &cfg);
        rates.push(lines as f64 / t.elapsed().as_secs_f64());
        assert_eq!(entries.len() as u64, s.entries);
        stats = Some(s);
    }
    println!(
        "threaded intake (reader + grouping thread): median {:.0} lines/s",
        median(rates)
    );
    if let Some(s) = stats {
        println!("stats: {s}");
    }
}
