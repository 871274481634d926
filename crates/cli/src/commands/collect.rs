//! `opensoc collect`: the workers' verdicts from NATS JetStream on standard output, each
//! entry once (docs/SCALE-OUT.md).

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::{Context, Result};
use opensoc_report::{Format, VerdictWriter};
use opensoc_scale::{connect, CollectOptions, Collector, Settings};
use opensoc_sinks::{SiemFormat, SiemWriter, VerdictSink};

use super::analyze::OutputFormat;
use crate::Outcome;

#[derive(clap::Args)]
pub struct Args {
    /// NATS server with JetStream, `nats://HOST:PORT`.
    #[arg(long, value_name = "URL", env = "OPENSOC_NATS")]
    nats: String,
    /// Stop after this many distinct verdicts (what `analyze --publish` reported sending).
    /// Without it, stop at the last verdict stored when the collection started.
    #[arg(long, value_name = "N")]
    expect: Option<usize>,
    /// Keep waiting for new verdicts (without `--expect`).
    #[arg(long)]
    follow: bool,
    /// Give up when no verdict arrived for this many seconds (exit code 1).
    #[arg(long, value_name = "SECS")]
    timeout: Option<u64>,
    /// Output format (default: table on a terminal, jsonl otherwise), as `analyze`.
    #[arg(long, value_enum)]
    format: Option<OutputFormat>,
    /// No summary on stderr.
    #[arg(long, short)]
    quiet: bool,
}

pub fn run(args: Args) -> Result<Outcome> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let stdout = std::io::stdout();
    let report =
        |format| -> Box<dyn VerdictSink> { Box::new(VerdictWriter::new(stdout.lock(), format)) };
    let siem =
        |format| -> Box<dyn VerdictSink> { Box::new(SiemWriter::new(stdout.lock(), format)) };
    let mut sink = match args.format {
        Some(OutputFormat::Jsonl) => report(Format::Jsonl),
        Some(OutputFormat::Table) => report(Format::Table),
        Some(OutputFormat::Csv) => report(Format::Csv),
        Some(OutputFormat::Ecs) => siem(SiemFormat::Ecs),
        Some(OutputFormat::Ocsf) => siem(SiemFormat::Ocsf),
        Some(OutputFormat::Cef) => siem(SiemFormat::Cef),
        None if stdout.is_terminal() => report(Format::Table),
        None => report(Format::Jsonl),
    };
    let options = CollectOptions {
        expect: args.expect,
        follow: args.follow,
        idle_timeout: args.timeout.map(Duration::from_secs),
    };
    let summary = runtime.block_on(async {
        let js = connect(&args.nats).await?;
        let mut collector = Collector::new(js, &Settings::default()).await?;
        let summary = collector
            .run(&options, |verdict| {
                sink.write(&verdict)?;
                Ok(())
            })
            .await?;
        anyhow::Ok(summary)
    })?;
    sink.finish()?;
    if !args.quiet {
        eprintln!(
            "{} verdicts collected ({} repeated, {} unreadable messages skipped){}",
            summary.verdicts,
            summary.duplicates,
            summary.malformed,
            if summary.timed_out {
                "; stopped waiting: no verdict within --timeout"
            } else {
                ""
            }
        );
    }
    Ok(if summary.timed_out || summary.malformed > 0 {
        Outcome::Partial
    } else {
        Outcome::Ok
    })
}
