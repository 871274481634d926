//! `opensoc bench`: engine speed (prefill, decode, batched decode) per weight format and
//! entries per minute on labelled inputs, with medians over repeats and the machine it
//! ran on. Speed is measured here, never in tests.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use opensoc_analyze::{Analyzer, AnalyzerConfig};
use opensoc_eval::load_examples;
use opensoc_model::{bench, WeightFormat};
use serde::Serialize;

use super::{load_model, prepare_for_analysis, AdapterArgs, NarrativeArgs, Weights};
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
