use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::ValueEnum;
use opensoc_analyze::{Analyzer, AnalyzerConfig, NarrativeLimits};
use opensoc_ingest::{GroupingConfig, Intake, IntakeConfig, Source, Timeout};
use opensoc_report::{Format, VerdictWriter};
use opensoc_sinks::{ForwardConfig, ForwardTarget, Outputs, SiemFormat, SiemWriter, VerdictSink};

use super::{load_model, prepare_for_analysis, progress_bar, AdapterArgs, TechniqueArgs, Weights};
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
    #[command(flatten)]
    adapter: AdapterArgs,
    /// In-memory format of GGUF weights.
    #[arg(long, value_enum, default_value_t = Weights::Mixed)]
    weights: Weights,
    /// Output format (default: table on a terminal, jsonl otherwise); ecs, ocsf and cef
    /// are SIEM events, one per line (docs/SIEM.md).
    #[arg(long, value_enum)]
    format: Option<OutputFormat>,
    /// Also send each verdict to `syslog+tcp://HOST:PORT[?format=cef|ecs|ocsf|jsonl]`
    /// (RFC 5424, octet counting) or `webhook=URL` (JSON POST with a Slack/Teams `text`);
    /// repeatable. A bounded queue per target; drops are counted (docs/SIEM.md).
    #[arg(long, value_name = "TARGET")]
    forward: Vec<ForwardTarget>,
    /// Most tokens generated per entry.
    #[arg(long, default_value_t = 256)]
    max_new_tokens: usize,
    /// Log text beyond this many tokens is cut in the middle (with a marker).
    #[arg(long, default_value_t = 1024)]
    max_input_tokens: usize,
    #[command(flatten)]
    technique: TechniqueArgs,
    /// Generate freely and parse the text (the paper's way) instead of decoding under the
    /// verdict grammar, which always yields valid fields.
    #[arg(long)]
    unconstrained: bool,
    /// Stop after the structured fields (no evidence, impact, recommendation): faster.
    #[arg(long)]
    no_narrative: bool,
    /// Entries analysed together: their model steps share passes over the weights, which
    /// is faster on a CPU. Only entries already read are joined (a followed file or a
    /// syslog stream is not held back waiting for more); 1 analyses one at a time.
    #[arg(long, default_value_t = 8, value_name = "N")]
    batch: usize,
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
    /// Elastic Common Schema JSON.
    Ecs,
    /// OCSF Detection Finding JSON.
    Ocsf,
    /// ArcSight CEF.
    Cef,
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

/// How long a batch waits for one more entry before it runs without it.
const BATCH_WAIT: Duration = Duration::from_millis(20);

pub fn run(args: Args) -> Result<Outcome> {
    // Open the inputs first: a typo in a path should not wait for the model to load.
    let mut intake = Intake::start(intake_config(&args))?;
    let adapter = args.adapter.select(args.model.as_deref())?;
    let mut model = load_model(args.model.as_deref(), args.weights.into(), args.quiet)?;
    prepare_for_analysis(&mut model, !args.unconstrained);
    args.adapter.apply(&mut model, adapter.as_ref())?;
    let analyzer = Analyzer::new(
        model,
        AnalyzerConfig {
            max_new_tokens: args.max_new_tokens,
            max_input_tokens: args.max_input_tokens,
            constrained: !args.unconstrained,
            technique_beam: args.technique.beam,
            technique_follows_type: !args.technique.free,
            narrative: (!args.no_narrative).then(NarrativeLimits::default),
            min_confidence: args.min_confidence,
            ..AnalyzerConfig::default()
        },
    )?;

    let stdout = std::io::stdout();
    let siem =
        |format| -> Box<dyn VerdictSink> { Box::new(SiemWriter::new(stdout.lock(), format)) };
    let report =
        |format| -> Box<dyn VerdictSink> { Box::new(VerdictWriter::new(stdout.lock(), format)) };
    let primary = match args.format {
        Some(OutputFormat::Jsonl) => report(Format::Jsonl),
        Some(OutputFormat::Table) => report(Format::Table),
        Some(OutputFormat::Csv) => report(Format::Csv),
        Some(OutputFormat::Ecs) => siem(SiemFormat::Ecs),
        Some(OutputFormat::Ocsf) => siem(SiemFormat::Ocsf),
        Some(OutputFormat::Cef) => siem(SiemFormat::Cef),
        None if stdout.is_terminal() => report(Format::Table),
        None => report(Format::Jsonl),
    };
    let mut writer = Outputs::new(primary, &args.forward, &ForwardConfig::default())?;

    let progress = progress_bar(None, args.quiet);

    let started = Instant::now();
    let (mut analysed, mut failed) = (0usize, 0usize);
    let batch_size = args.batch.max(1);
    let mut ended = false;
    while !ended {
        let Some(first) = intake.next() else { break };
        let mut entries = vec![(first.id, first.text)];
        // Join what is queued, waiting only briefly: a quiet stream is not held back.
        while entries.len() < batch_size {
            match intake.next_timeout(BATCH_WAIT) {
                Ok(Some(entry)) => entries.push((entry.id, entry.text)),
                Ok(None) => {
                    ended = true;
                    break;
                }
                Err(Timeout) => break,
            }
        }
        progress.set_message(entries[0].0.clone());
        for result in analyzer.analyze_batch(&entries) {
            match result {
                Ok(verdict) => {
                    progress.suspend(|| {
                        for w in &verdict.warnings {
                            tracing::warn!(id = %verdict.id, "{w}");
                        }
                        writer.write(&verdict)
                    })?;
                    analysed += 1;
                }
                Err(err) => {
                    progress.suspend(|| tracing::warn!("{err}"));
                    failed += 1;
                }
            }
            progress.inc(1);
        }
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
