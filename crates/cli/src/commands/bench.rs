//! `opensoc bench`: engine speed (prefill, decode, batched decode) per weight format and
//! entries per minute on labelled inputs, with medians over repeats and the machine it
//! ran on; with `--log`, a whole log analysed end to end (fast path, cache, model) with
//! lines per second, who decided what, model calls and peak memory. Speed is measured
//! here, never in tests.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use opensoc_analyze::{Analyzer, AnalyzerConfig};
use opensoc_eval::load_examples;
use opensoc_ingest::{Intake, IntakeConfig, Source};
use opensoc_model::{bench, WeightFormat};
use opensoc_report::{Format, VerdictWriter};
use opensoc_sinks::VerdictSink;
use opensoc_triage::Route;
use serde::Serialize;

use super::pipeline::{self, By, CacheArgs, Pipeline};
use super::{
    load_model, prepare_for_analysis, progress_bar, AdapterArgs, NarrativeArgs, TriageArgs, Weights,
};
use crate::Outcome;

#[derive(clap::Args)]
pub struct Args {
    /// Model: a GGUF file, a Hugging Face directory, or hf:ORG/NAME[@REV] (default: the
    /// default model, fetched on first use).
    #[arg(long, env = "OPENSOC_MODEL")]
    model: Option<String>,
    /// In-memory weight formats to measure; repeat to compare them in one run.
    #[arg(long, value_enum, default_values_t = [Weights::Mixed])]
    weights: Vec<Weights>,
    /// Timed runs of each engine measurement.
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// Sequences decoded together in the batched-decode measurement.
    #[arg(long, default_value_t = 8)]
    sequences: usize,
    /// Also time `opensoc analyze` (the grammar, `--narrative` as given; default: the
    /// playbook's) over the inputs of these labelled examples (Alpaca JSON or JSONL), with
    /// the first weight format.
    #[arg(long, value_name = "FILE")]
    data: Option<PathBuf>,
    /// Runs over the --data inputs.
    #[arg(long, default_value_t = 1)]
    entry_runs: usize,
    /// Only the first N --data inputs.
    #[arg(long)]
    limit: Option<usize>,
    /// Entries analysed together (as `opensoc analyze --batch`).
    #[arg(long, default_value_t = 8)]
    batch: usize,
    #[command(flatten)]
    adapter: AdapterArgs,
    #[command(flatten)]
    narrative: NarrativeArgs,
    /// One JSON object on stdout instead of the Markdown table.
    #[arg(long)]
    json: bool,
    /// Analyse this log file (or directory) end to end as `opensoc analyze` does, and
    /// report lines/s, who decided (fast path, cache, model), model calls per 1,000 lines,
    /// wall time and peak memory; the engine measurements are skipped. docs/BENCHMARKS.md.
    /// (`--log` is taken: the global log level.)
    #[arg(long, value_name = "PATH")]
    logs: Option<PathBuf>,
    /// With --log: also write the verdicts here (JSON lines).
    #[arg(long, value_name = "FILE", requires = "logs")]
    verdicts: Option<PathBuf>,
    /// With --log: structured fields only, as `opensoc analyze --no-narrative`.
    #[arg(long, requires = "logs")]
    no_narrative: bool,
    #[command(flatten)]
    triage: TriageArgs,
    #[command(flatten)]
    cache: CacheArgs,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Serialize)]
struct Machine {
    cpu: String,
    logical_cpus: usize,
    /// Instruction-set extensions that matter to the kernels.
    features: Vec<&'static str>,
    threads: usize,
}

#[derive(Serialize)]
struct Stat {
    name: String,
    /// Tokens per second (engine) or entries per minute (analyze), one per run.
    samples: Vec<f64>,
    median: f64,
    min: f64,
    max: f64,
}

impl Stat {
    fn new(name: impl Into<String>, mut samples: Vec<f64>) -> Stat {
        samples.sort_by(f64::total_cmp);
        let n = samples.len();
        let median = match n {
            0 => f64::NAN,
            _ if n % 2 == 1 => samples[n / 2],
            _ => (samples[n / 2 - 1] + samples[n / 2]) / 2.0,
        };
        Stat {
            name: name.into(),
            median,
            min: samples.first().copied().unwrap_or(f64::NAN),
            max: samples.last().copied().unwrap_or(f64::NAN),
            samples,
        }
    }

    fn cell(&self) -> String {
        format!("{:.1} [{:.1}-{:.1}]", self.median, self.min, self.max)
    }
}

#[derive(Serialize)]
struct Engine {
    weights: String,
    load_seconds: f64,
    /// `name`: "prefill 128", "prefill 512", "decode 128", "batched decode 8x32".
    measurements: Vec<Stat>,
}

#[derive(Serialize)]
struct Entries {
    data: PathBuf,
    entries: usize,
    batch: usize,
    adapter: bool,
    /// Who wrote the narrative: `playbook`, `model` or `none`.
    narrative: String,
    entries_per_minute: Stat,
}

#[derive(Serialize)]
struct Report {
    machine: Machine,
    model: String,
    engine: Vec<Engine>,
    entries: Option<Entries>,
}

fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |key: &str| {
        cpuinfo
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    let flags = field("flags").unwrap_or_default();
    let flags: Vec<&str> = flags.split_whitespace().collect();
    let features = [
        "avx2",
        "fma",
        "f16c",
        "avx512f",
        "avx512_vnni",
        "avx512_bf16",
        "avx_vnni",
        "amx_int8",
        "amx_bf16",
    ]
    .into_iter()
    .filter(|f| flags.contains(f))
    .collect();
    Machine {
        cpu: field("model name").unwrap_or_else(|| std::env::consts::ARCH.to_string()),
        logical_cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        features,
        threads: candle_core::utils::get_num_threads(),
    }
}

fn weights_name(w: Weights) -> &'static str {
    match w {
        Weights::AsStored => "as-stored",
        Weights::Q8 => "q8",
        Weights::F32 => "f32",
        Weights::Mixed => "mixed",
    }
}

pub fn run(args: Args) -> Result<Outcome> {
    if let Some(log) = args.logs.clone() {
        return run_log(&args, &log);
    }
    if args.repeats == 0 || args.entry_runs == 0 || args.sequences == 0 {
        bail!("--repeats, --entry-runs and --sequences must be at least 1");
    }
    let examples = match &args.data {
        Some(path) => {
            let mut examples = load_examples(path)?;
            if let Some(n) = args.limit {
                examples.truncate(n);
            }
            if examples.is_empty() {
                bail!("{}: no examples", path.display());
            }
            examples
        }
        None => Vec::new(),
    };
    let machine = machine();
    if !args.json {
        eprintln!(
            "{} ({} logical CPUs; {}), {} threads",
            machine.cpu,
            machine.logical_cpus,
            machine.features.join(" "),
            machine.threads
        );
    }

    let mut engine = Vec::new();
    let mut entries = None;
    for (i, &weights) in args.weights.iter().enumerate() {
        let format: WeightFormat = weights.into();
        let started = Instant::now();
        let model = load_model(args.model.as_deref(), format, args.json)?;
        let load_seconds = started.elapsed().as_secs_f64();
        bench::prefill(&model, 16)?; // warm-up: page in the weights
        let seqs = args.sequences;
        let runs: [(String, &dyn Fn() -> opensoc_model::Result<f64>); 4] = [
            ("prefill 128".into(), &|| bench::prefill(&model, 128)),
            ("prefill 512".into(), &|| bench::prefill(&model, 512)),
            ("decode 128".into(), &|| bench::decode(&model, 128)),
            (format!("batched decode {seqs}x32"), &|| {
                bench::batched_decode(&model, seqs, 32)
            }),
        ];
        let mut measurements = Vec::new();
        for (name, f) in runs {
            if !args.json {
                eprintln!("{}: {name}...", weights_name(weights));
            }
            let samples = (0..args.repeats)
                .map(|_| f())
                .collect::<opensoc_model::Result<Vec<f64>>>()
                .with_context(|| format!("measuring {name}"))?;
            measurements.push(Stat::new(name, samples));
        }
        engine.push(Engine {
            weights: weights_name(weights).to_string(),
            load_seconds,
            measurements,
        });

        if i == 0 && !examples.is_empty() {
            let mut model = model;
            prepare_for_analysis(&mut model, true);
            let adapter = args.adapter.select(args.model.as_deref())?;
            args.adapter.apply(&mut model, adapter.as_ref())?;
            let (narrative, playbook) = args.narrative.config()?;
            let analyzer = Analyzer::new(
                model,
                AnalyzerConfig {
                    narrative,
                    playbook,
                    ..AnalyzerConfig::default()
                },
            )?;
            let inputs: Vec<(String, String)> = examples
                .iter()
                .enumerate()
                .map(|(i, ex)| (i.to_string(), ex.input.clone()))
                .collect();
            let mut samples = Vec::new();
            for run in 0..args.entry_runs {
                if !args.json {
                    eprintln!("analyze: run {} of {}...", run + 1, args.entry_runs);
                }
                let started = Instant::now();
                for chunk in inputs.chunks(args.batch.max(1)) {
                    for verdict in analyzer.analyze_batch(chunk) {
                        verdict?;
                    }
                }
                samples.push(inputs.len() as f64 * 60.0 / started.elapsed().as_secs_f64());
            }
            entries = Some(Entries {
                data: args.data.clone().unwrap_or_default(),
                entries: inputs.len(),
                batch: args.batch.max(1),
                adapter: adapter.is_some(),
                narrative: format!("{:?}", args.narrative.narrative).to_lowercase(),
                entries_per_minute: Stat::new("entries per minute", samples),
            });
        }
    }

    let report = Report {
        machine,
        model: args.model.clone().unwrap_or_else(|| "default".into()),
        engine,
        entries,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(Outcome::Ok);
    }
    println!("Tokens/s, median [min-max] of {} runs:\n", args.repeats);
    let names: Vec<&str> = report.engine[0]
        .measurements
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    println!("| weights | {} | load s |", names.join(" | "));
    println!("|---|{}---|", "---|".repeat(names.len()));
    for e in &report.engine {
        let cells: Vec<String> = e.measurements.iter().map(Stat::cell).collect();
        println!(
            "| {} | {} | {:.1} |",
            e.weights,
            cells.join(" | "),
            e.load_seconds
        );
    }
    if let Some(e) = &report.entries {
        println!(
            "\nopensoc analyze (grammar, narrative {}, {}, batch {}) on {} entries of {}: {} entries/min, median [min-max] of {} runs",
            e.narrative,
            if e.adapter { "built-in or given adapter" } else { "no adapter" },
            e.batch,
            e.entries,
            e.data.display(),
            e.entries_per_minute.cell(),
            args.entry_runs
        );
    }
    Ok(Outcome::Ok)
}

/// Who decided how much of a log.
#[derive(Serialize, Default)]
struct Share {
    entries: u64,
    /// Log lines (events) behind those entries.
    lines: u64,
}

#[derive(Serialize)]
struct LogReport {
    machine: Machine,
    model: String,
    log: PathBuf,
    /// Lines in the log's files (what the progress bar counts).
    lines: u64,
    /// Entries the intake made of them (incidents group bursts).
    entries: u64,
    /// Seconds from the start to the last verdict, model load included.
    wall_seconds: f64,
    model_load_seconds: f64,
    /// Log lines analysed per second, end to end (wall time).
    lines_per_second: f64,
    fast_path: Share,
    cache: Share,
    #[serde(rename = "model_decided")]
    by_model: Share,
    failed: Share,
    /// Entries sent to the model.
    model_calls: u64,
    model_calls_per_1000_lines: f64,
    /// Verdicts in the cache file before the run (0: a cold cache); null without cache.
    cache_entries_before: Option<u64>,
    /// Triage alone (detectors and fast-path rules) over every line on one thread.
    triage_lines_per_second_per_core: f64,
    /// Lines triage alone sends down the fast path.
    triage_fast_path_lines: u64,
    /// Peak resident memory of the process (VmHWM), MiB.
    peak_rss_mib: f64,
    /// Who wrote the narrative: `playbook`, `model` or `none`.
    narrative: String,
    batch: usize,
}

/// The files under `path` (itself when a file), sorted, as the intake reads them.
fn log_files(path: &Path) -> Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    let mut dirs = vec![path.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let p = e?.path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Peak resident set size of this process in MiB, from `/proc/self/status` (Linux).
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn run_log(args: &Args, log: &Path) -> Result<Outcome> {
    let machine = machine();
    let triage = args.triage.triage()?;
    // Triage alone, one thread: what the fast path costs per line.
    let mut lines = Vec::new();
    for file in log_files(log)? {
        let reader = std::io::BufReader::new(
            std::fs::File::open(&file).with_context(|| format!("opening {}", file.display()))?,
        );
        for line in reader.split(b'\n') {
            lines.push(String::from_utf8_lossy(&line?).into_owned());
        }
    }
    let started = Instant::now();
    let mut triage_fast = 0u64;
    for line in &lines {
        if line.starts_with('#') {
            continue;
        }
        triage_fast += u64::from(matches!(triage.assess(line).route, Route::FastPath { .. }));
    }
    let triage_rate = lines.len() as f64 / started.elapsed().as_secs_f64().max(1e-9);
    let line_count = lines.len() as u64;
    drop(lines);

    // End to end, as `opensoc analyze` runs.
    let started = Instant::now();
    let mut intake = Intake::start(IntakeConfig::new(vec![Source::Path(log.to_path_buf())]))?;
    let weights = args.weights.first().copied().unwrap_or(Weights::Mixed);
    let adapter = args.adapter.select(args.model.as_deref())?;
    let mut model = load_model(args.model.as_deref(), weights.into(), args.quiet)?;
    prepare_for_analysis(&mut model, true);
    args.adapter.apply(&mut model, adapter.as_ref())?;
    let (narrative, playbook) = args.narrative.config_unless(args.no_narrative)?;
    let narrative_mode = match (&narrative, &playbook) {
        (Some(_), _) => "model",
        (None, Some(_)) => "playbook",
        (None, None) => "none",
    };
    let config = AnalyzerConfig {
        narrative,
        playbook,
        triage,
        signal_bounds: !args.triage.no_bounds,
        ..AnalyzerConfig::default()
    };
    let mut cache_entries_before = None;
    let cache = match args.cache.open(args.quiet)? {
        Some(cache) => {
            cache_entries_before = Some(cache.len()?);
            let context = pipeline::cache_context(
                pipeline::model_identity(args.model.as_deref()),
                pipeline::adapter_identity(adapter.as_ref(), args.adapter.merge)?,
                &config,
                &format!("{weights:?}"),
            );
            Some((cache, context))
        }
        None => None,
    };
    let analyzer = Analyzer::new(model, config)?;
    let model_load_seconds = started.elapsed().as_secs_f64();
    let mut out: Option<Box<dyn VerdictSink>> = match &args.verdicts {
        Some(path) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("creating {}", path.display()))?;
            Some(Box::new(VerdictWriter::new(
                std::io::BufWriter::new(file),
                Format::Jsonl,
            )))
        }
        None => None,
    };
    let progress = progress_bar(Some(line_count), args.quiet || args.json);
    let mut pipeline = Pipeline::new(&analyzer, cache, None, args.batch);
    let (mut fast, mut cached, mut by_model, mut failed) = Default::default();
    let mut entries = 0u64;
    let mut count = |done: pipeline::Done, out: &mut Option<Box<dyn VerdictSink>>| -> Result<()> {
        let events = done.entry.events as u64;
        let share: &mut Share = match (&done.result, done.by) {
            (Err(_), _) => &mut failed,
            (Ok(_), By::FastPath) => &mut fast,
            (Ok(_), By::Cache) => &mut cached,
            (Ok(_), By::Model) => &mut by_model,
        };
        share.entries += 1;
        share.lines += events;
        entries += 1;
        progress.inc(events);
        match (&done.result, out.as_mut()) {
            (Ok(v), Some(w)) => w.write(v)?,
            (Err(e), _) => progress.suspend(|| tracing::warn!("{e}")),
            _ => {}
        }
        Ok(())
    };
    for entry in intake.by_ref() {
        if let Some(done) = pipeline.push(entry) {
            count(done, &mut out)?;
        }
        if pipeline.batch_full() {
            for done in pipeline.run_model() {
                count(done, &mut out)?;
            }
        }
    }
    while pipeline.queued() > 0 {
        for done in pipeline.run_model() {
            count(done, &mut out)?;
        }
    }
    pipeline.finish();
    if let Some(mut w) = out {
        w.finish()?;
    }
    let wall = started.elapsed().as_secs_f64();
    progress.finish_and_clear();
    let stats = intake.stop(std::time::Duration::from_secs(3));
    if stats.lost_anything() && !args.quiet {
        eprintln!("intake: {stats}");
    }
    let report = LogReport {
        machine,
        model: args.model.clone().unwrap_or_else(|| "default".into()),
        log: log.to_path_buf(),
        lines: line_count,
        entries,
        wall_seconds: wall,
        model_load_seconds,
        lines_per_second: line_count as f64 / wall.max(1e-9),
        fast_path: fast,
        cache: cached,
        by_model,
        failed,
        model_calls: pipeline.model_calls,
        model_calls_per_1000_lines: pipeline.model_calls as f64 * 1000.0 / line_count.max(1) as f64,
        cache_entries_before,
        triage_lines_per_second_per_core: triage_rate,
        triage_fast_path_lines: triage_fast,
        peak_rss_mib: peak_rss_mib(),
        narrative: narrative_mode.to_string(),
        batch: args.batch.max(1),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let mut o = std::io::stdout().lock();
        let pct = |n: u64| 100.0 * n as f64 / report.lines.max(1) as f64;
        writeln!(
            o,
            "{} ({} logical CPUs; {})",
            report.machine.cpu,
            report.machine.logical_cpus,
            report.machine.features.join(" ")
        )?;
        writeln!(
            o,
            "{}: {} lines, {} entries, {:.1} s wall ({:.1} s model load): {:.0} lines/s",
            log.display(),
            report.lines,
            report.entries,
            wall,
            model_load_seconds,
            report.lines_per_second
        )?;
        writeln!(o, "decided by the fast path {:.2} % of lines, the cache {:.2} %, the model {:.2} % ({} model calls, {:.2} per 1,000 lines); failed {}", pct(report.fast_path.lines), pct(report.cache.lines), pct(report.by_model.lines), report.model_calls, report.model_calls_per_1000_lines, report.failed.entries)?;
        writeln!(
            o,
            "triage alone: {:.0} lines/s on one core; peak RSS {:.0} MiB",
            report.triage_lines_per_second_per_core, report.peak_rss_mib
        )?;
    }
    Ok(if report.failed.entries > 0 {
        Outcome::Partial
    } else {
        Outcome::Ok
    })
}
