//! `opensoc worker`: pulls entries from NATS JetStream, runs the model on them in
//! batches as `analyze` does, publishes the verdicts (docs/SCALE-OUT.md).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use opensoc_analyze::Analyzer;
use opensoc_scale::{connect, Settings, StepResult, WorkItem, Worker};

use super::{load_model, prepare_for_analysis, AdapterArgs, VerdictArgs, Weights};
use crate::Outcome;

#[derive(clap::Args)]
pub struct Args {
    /// NATS server with JetStream, `nats://HOST:PORT`.
    #[arg(long, value_name = "URL", env = "OPENSOC_NATS")]
    nats: String,
    /// Entries analysed together (their model steps share passes over the weights).
    #[arg(long, default_value_t = 8, value_name = "N")]
    batch: usize,
    /// Seconds before an entry a worker took but did not acknowledge goes to another
    /// worker (a dead worker's entries wait this long). Applies when this worker creates
    /// the consumer; an existing consumer keeps its own.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    ack_wait: u64,
    /// Deliveries of an entry whose analysis fails before it goes to the dead-letter
    /// stream. Applies when this worker creates the consumer.
    #[arg(long, default_value_t = 5, value_name = "N")]
    max_deliver: i64,
    /// Model: a GGUF file, a Hugging Face directory, or hf:ORG/NAME[@REV]. Default: the
    /// SmolLM2-135M-Instruct GGUF, fetched on first use.
    #[arg(long, env = "OPENSOC_MODEL")]
    model: Option<String>,
    #[command(flatten)]
    adapter: AdapterArgs,
    /// In-memory format of GGUF weights.
    #[arg(long, value_enum, default_value_t = Weights::Mixed)]
    weights: Weights,
    #[command(flatten)]
    verdict: VerdictArgs,
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
    // Connect first: a wrong URL should not wait for the model to load.
    let js = runtime.block_on(connect(&args.nats))?;

    let adapter = args.adapter.select(args.model.as_deref())?;
    let mut model = load_model(args.model.as_deref(), args.weights.into(), args.quiet)?;
    prepare_for_analysis(&mut model, !args.verdict.unconstrained);
    args.adapter.apply(&mut model, adapter.as_ref())?;
    let analyzer = Analyzer::new(model, args.verdict.config()?)?;
    let step = move |items: &[WorkItem]| -> Vec<StepResult> {
        let entries: Vec<(String, String)> = items
            .iter()
            .map(|i| (i.id.clone(), i.text.clone()))
            .collect();
        analyzer
            .analyze_batch(&entries)
            .into_iter()
            .zip(items)
            .map(|(result, item)| {
                let mut verdict = result.map_err(|e| e.to_string())?;
                if item.cut_bytes > 0 {
                    verdict.warnings.insert(
                        0,
                        format!(
                            "input cut at intake: {} bytes removed from the middle of the record",
                            item.cut_bytes
                        ),
                    );
                }
                Ok(verdict)
            })
            .collect()
    };

    let settings = Settings {
        ack_wait: Duration::from_secs(args.ack_wait.max(1)),
        max_deliver: args.max_deliver.max(1),
        ..Settings::default()
    };
    let stats = runtime.block_on(async {
        let worker = Worker::new(js, &settings, Arc::new(step), args.batch).await?;
        if !args.quiet {
            let s = worker.settings();
            eprintln!(
                "Working on {} (consumer {}: ack wait {} s, {} deliveries at most); stop with Ctrl-C.",
                s.entries_stream,
                s.consumer,
                s.ack_wait.as_secs(),
                s.max_deliver
            );
        }
        anyhow::Ok(worker.run(stop_signal()).await)
    })?;
    if !args.quiet {
        eprintln!(
            "{} verdicts published ({} already there), {} redelivered entries, {} failures retried, {} dead letters",
            stats.done, stats.duplicates, stats.redelivered, stats.retried, stats.dead_lettered
        );
    }
    Ok(if stats.dead_lettered > 0 {
        Outcome::Partial
    } else {
        Outcome::Ok
    })
}

/// SIGINT or SIGTERM: the batch in progress is finished and acknowledged, then the
/// worker stops. Entries it had not taken stay for the others.
async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    match term {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(e) => {
            tracing::warn!("no SIGTERM handler: {e}");
            tokio::signal::ctrl_c().await.ok();
        }
    }
}
