//! `opensoc serve`: the analyst's console (crate `opensoc-serve`) on the real pipeline;
//! `opensoc feedback`: the console's reviews as training records.

use std::io::{BufWriter, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use opensoc_analyze::Analyzer;
use opensoc_ingest::{Intake, IntakeConfig, Source};
use opensoc_serve::{check_bind, read_token_file, Analyze, Console, ServeConfig, Store};
use opensoc_verdict::Verdict;

use super::{load_model, prepare_for_analysis, AdapterArgs, VerdictArgs, Weights};
use crate::Outcome;

#[derive(clap::Args)]
pub struct Args {
    /// Address of the web page and the API. Any address but loopback needs --token-file.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    listen: SocketAddr,
    /// Alert database (SQLite, created when missing).
    #[arg(long, default_value = "opensoc.db", value_name = "PATH")]
    db: PathBuf,
    /// File whose first line is the access token every request must carry (at least 16
    /// characters); required to listen beyond loopback.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Largest upload or API request body, in MiB.
    #[arg(long, default_value_t = 16, value_name = "MIB")]
    max_body_mib: usize,
    /// Also analyse these files as they grow (like `analyze --follow`).
    #[arg(long, value_name = "PATH")]
    follow: Vec<PathBuf>,
    /// Receive syslog over UDP on this address (e.g. 127.0.0.1:5514).
    #[arg(long, value_name = "ADDR")]
    syslog_udp: Option<SocketAddr>,
    /// Receive syslog over TCP on this address.
    #[arg(long, value_name = "ADDR")]
    syslog_tcp: Option<SocketAddr>,
    /// Analyse every event on its own instead of grouping bursts into incidents.
    #[arg(long)]
    no_group: bool,
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
    /// Entries analysed together.
    #[arg(long, default_value_t = 8, value_name = "N")]
    batch: usize,
}

/// The real pipeline behind the console's trait.
struct Pipeline(Analyzer);

impl Analyze for Pipeline {
    fn analyze(&self, entries: Vec<(String, String)>) -> Vec<Result<Verdict, String>> {
        self.0
            .analyze_batch(&entries)
            .into_iter()
            .map(|r| r.map_err(|e| e.to_string()))
            .collect()
    }
}

fn intake_config(args: &Args) -> IntakeConfig {
    let mut cfg = IntakeConfig::default();
    if args.no_group {
        cfg.grouping = opensoc_ingest::GroupingConfig::disabled();
    }
    cfg
}

pub fn run(args: Args) -> Result<Outcome> {
    let token = args
        .token_file
        .as_deref()
        .map(read_token_file)
        .transpose()?;
    check_bind(args.listen, token.as_deref())?;
    if args.max_body_mib == 0 {
        bail!("--max-body-mib must be at least 1");
    }
    // Bound before the model loads: a port in use is reported at once.
    let listener = std::net::TcpListener::bind(args.listen)
        .with_context(|| format!("listening on {}", args.listen))?;
    listener.set_nonblocking(true)?;

    let adapter = args.adapter.select(args.model.as_deref())?;
    let mut model = load_model(args.model.as_deref(), args.weights.into(), false)?;
    prepare_for_analysis(&mut model, !args.verdict.unconstrained);
    args.adapter.apply(&mut model, adapter.as_ref())?;
    let analyzer = Analyzer::new(model, args.verdict.config()?)?;

    let mut config = ServeConfig::new(&args.db);
    config.token = token;
    config.max_body = args.max_body_mib << 20;
    config.batch = args.batch.max(1);
    config.intake = intake_config(&args);
    let console = Console::open(config, Arc::new(Pipeline(analyzer)))
        .with_context(|| format!("opening {}", args.db.display()))?;

    // Live sources, as `analyze` has them, feed the same store.
    let mut sources: Vec<Source> = args.follow.iter().cloned().map(Source::Path).collect();
    sources.extend(args.syslog_udp.map(Source::SyslogUdp));
    sources.extend(args.syslog_tcp.map(Source::SyslogTcp));
    let intake = if sources.is_empty() {
        None
    } else {
        let mut cfg = intake_config(&args);
        cfg.sources = sources;
        cfg.follow = !args.follow.is_empty();
        let intake = Intake::start(cfg)?;
        for (source, addr) in intake.listeners() {
            let proto = match source {
                Source::SyslogTcp(_) => "tcp",
                _ => "udp",
            };
            eprintln!("Listening for syslog on {proto}://{addr}");
        }
        Some(intake)
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let stop = Arc::new(AtomicBool::new(false));
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let addr = listener.local_addr()?;
        eprintln!(
            "OpenSOC console on http://{addr}/ (alerts in {}); Ctrl-C stops",
            args.db.display()
        );
        let console = Arc::new(console);
        let pump = intake.map(|intake| {
            let (console, stop) = (console.clone(), stop.clone());
            tokio::task::spawn_blocking(move || {
                if let Err(e) = opensoc_serve::pump_intake(&console, &intake, &stop) {
                    tracing::error!("live intake: {e}");
                }
                intake.stop(std::time::Duration::from_secs(3));
            })
        });
        let shutdown = {
            let stop = stop.clone();
            async move {
                wait_for_stop_signal().await;
                stop.store(true, Ordering::Relaxed);
            }
        };
        let served = console.serve(listener, shutdown).await;
        stop.store(true, Ordering::Relaxed);
        if let Some(p) = pump {
            let _ = p.await;
        }
        // The worker finishes its batch off the async threads.
        let _ = tokio::task::spawn_blocking(move || drop(console)).await;
        served.context("serving")
    })?;
    Ok(Outcome::Ok)
}

/// SIGINT or SIGTERM: stop serving, let the worker finish its batch.
async fn wait_for_stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

#[derive(clap::Args)]
pub struct FeedbackArgs {
    /// The console's alert database.
    #[arg(long, value_name = "PATH")]
    db: PathBuf,
    /// Training records (JSONL) for `opensoc train --data`.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Labelled records to put beside the reviews (e.g. data/corpus/train.jsonl), so an
    /// adapter keeps what it knew; repeatable. Each is checked as training data.
    #[arg(long, value_name = "FILE")]
    combine: Vec<PathBuf>,
    /// Write each review this many times: a few corrections beside a corpus of thousands
    /// would teach little.
    #[arg(long, default_value_t = 1, value_name = "N")]
    repeat: usize,
}

/// `opensoc feedback`: confirmed, relabelled and false-positive alerts as training records.
pub fn export_feedback(args: FeedbackArgs) -> Result<Outcome> {
    if !args.db.is_file() {
        bail!("no alert database at {}", args.db.display());
    }
    let store = Store::open(&args.db).with_context(|| format!("opening {}", args.db.display()))?;
    let reviewed = store.reviewed()?;
    let file = std::fs::File::create(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let mut out = BufWriter::new(file);
    let (written, unusable) =
        opensoc_serve::feedback::write_jsonl(&reviewed, args.repeat, &mut out)
            .with_context(|| format!("writing {}", args.out.display()))?;
    for u in &unusable {
        eprintln!("alert {}: no training record ({})", u.alert, u.reason);
    }
    let mut combined = 0;
    for path in &args.combine {
        let (records, skipped) = opensoc_train::data::load_records(path)
            .with_context(|| format!("reading {}", path.display()))?;
        for s in &skipped {
            eprintln!("{s}");
        }
        for r in records {
            let line = serde_json::json!({
                "instruction": r.instruction, "input": r.input, "output": r.output,
            });
            writeln!(out, "{line}")?;
            combined += 1;
        }
    }
    out.flush()?;
    eprintln!(
        "{written} reviewed alerts ({} records) and {combined} combined records written to {}",
        written * args.repeat.max(1),
        args.out.display()
    );
    Ok(if unusable.is_empty() {
        Outcome::Ok
    } else {
        Outcome::Partial
    })
}
