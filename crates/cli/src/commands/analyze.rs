use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::ValueEnum;
use opensoc_analyze::Analyzer;
use opensoc_ingest::{Entry, GroupingConfig, Intake, IntakeConfig, Source, Stats, Timeout};
use opensoc_report::{terminal_safe, Format, VerdictWriter};
use opensoc_sinks::{ForwardConfig, ForwardTarget, Outputs, SiemFormat, SiemWriter, VerdictSink};

use super::pipeline::{self, By, CacheArgs, Done, Pipeline, Reorder};
use super::{load_model, prepare_for_analysis, progress_bar, AdapterArgs, VerdictArgs, Weights};
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
    /// Send the entries that need the model to NATS JetStream (`nats://HOST:PORT`) for
    /// `opensoc worker` to analyse, instead of analysing here; fast-path verdicts go
    /// straight to the results, which `opensoc collect` reads (docs/SCALE-OUT.md).
    #[arg(long, value_name = "URL")]
    publish: Option<String>,
    #[command(flatten)]
    verdict: VerdictArgs,
    /// Entries analysed together: their model steps share passes over the weights, which
    /// is faster on a CPU. Only entries already read are joined (a followed file or a
    /// syslog stream is not held back waiting for more); 1 analyses one at a time.
    #[arg(long, default_value_t = 8, value_name = "N")]
    batch: usize,
    /// Print the counters (received, parsed, grouped, queued, analysed, dropped...) on
    /// stderr every `--stats-every` seconds and at the end. They are always printed when
    /// SIGINT or SIGTERM stops the run.
    #[arg(long)]
    stats: bool,
    /// Seconds between two `--stats` prints while running.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    stats_every: u64,
    /// Entries waiting for the model, at most. When syslog arrives faster than the model
    /// analyses, a full queue drops benign-looking messages first and never a suspicious
    /// one in favour of a benign one (counted in `dropped`); files and stdin wait instead.
    #[arg(long, default_value_t = 1024, value_name = "N")]
    queue: usize,
    /// No progress bar or summary on stderr.
    #[arg(long, short)]
    quiet: bool,
    // --- verdict cache (docs/CACHE.md) ---
    #[command(flatten)]
    cache: CacheArgs,
    // --- end verdict cache ---
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum OutputFormat {
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
    cfg.queue_capacity = args.queue.max(1);
    if args.no_group {
        cfg.grouping = GroupingConfig::disabled();
    }
    cfg
}

/// How long a batch waits for one more entry before it runs without it.
const BATCH_WAIT: Duration = Duration::from_millis(20);

/// How often the main loop looks at the stop flag and the stats timer while idle.
const TICK: Duration = Duration::from_millis(200);

/// How long the intake may take to flush and count what it holds after a stop.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// SIGINT, SIGTERM (and SIGHUP) set the returned flag: the run finishes the batch in
/// progress, prints the counters and exits. A second signal exits at once (code 130).
fn stop_on_signals() -> Result<Arc<AtomicBool>> {
    use signal_hook::consts::TERM_SIGNALS;
    use signal_hook::flag;
    let stop = Arc::new(AtomicBool::new(false));
    for &sig in TERM_SIGNALS {
        // Registered first, so it sees the flag as the previous signal left it.
        flag::register_conditional_shutdown(sig, 130, stop.clone())
            .context("installing the signal handlers")?;
        flag::register(sig, stop.clone()).context("installing the signal handlers")?;
    }
    Ok(stop)
}

/// What the model did with the entries it was given.
#[derive(Default)]
struct Tally {
    analysed: u64,
    /// Events behind the analysed entries (an incident counts all of its events).
    analysed_events: u64,
    failed: u64,
    failed_events: u64,
    /// Analysed entries that the fast path decided without the model.
    fast_path: u64,
    /// Analysed entries answered from the verdict cache.
    cache_hits: u64,
}

fn counters_line(stats: &Stats, tally: &Tally) -> String {
    format!(
        "intake: {stats}; analysed {} entries ({} events; {} by the fast path, {} from the cache), failed {} ({} events)",
        tally.analysed,
        tally.analysed_events,
        tally.fast_path,
        tally.cache_hits,
        tally.failed,
        tally.failed_events
    )
}

/// The next entry, waiting in short ticks so that signals and the stats timer are seen.
/// `None` when the intake has ended or a stop was asked.
fn next_entry(intake: &Intake, stop: &AtomicBool, mut on_tick: impl FnMut()) -> Option<Entry> {
    loop {
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        match intake.next_timeout(TICK) {
            Ok(entry) => return entry,
            Err(Timeout) => on_tick(),
        }
    }
}

pub fn run(args: Args) -> Result<Outcome> {
    let stop = stop_on_signals()?;
    // Open the inputs first: a typo in a path should not wait for the model to load.
    let intake = Intake::start(intake_config(&args))?;
    let live = args.follow || !intake.listeners().is_empty();
    if !args.quiet {
        for (source, addr) in intake.listeners() {
            let proto = match source {
                Source::SyslogTcp(_) => "tcp",
                _ => "udp",
            };
            eprintln!("Listening for syslog on {proto}://{addr}");
        }
    }
    if let Some(url) = &args.publish {
        return publish_entries(&args, url, &intake, &stop);
    }
    let started = Instant::now();
    let mut tally = Tally::default();
    let stats_every = Duration::from_secs(args.stats_every.max(1));
    let mut last_stats = Instant::now();
    let mut print_stats = |intake: &Intake, tally: &Tally| {
        if args.stats && last_stats.elapsed() >= stats_every {
            last_stats = Instant::now();
            eprintln!("{}", counters_line(&intake.stats(), tally));
        }
    };

    // Finite input: wait for the first entry before loading the model, so that an empty
    // or wholly skipped input costs no model load. A live source must not wait for the
    // model after its first message, so the model loads at once (the intake queues
    // meanwhile).
    let mut first = None;
    if !live {
        first = next_entry(&intake, &stop, || print_stats(&intake, &tally));
        if first.is_none() {
            return finish(&args, &intake, &tally, &stop, started);
        }
    }

    let adapter = args.adapter.select(args.model.as_deref())?;
    let mut model = load_model(args.model.as_deref(), args.weights.into(), args.quiet)?;
    prepare_for_analysis(&mut model, !args.verdict.unconstrained);
    args.adapter.apply(&mut model, adapter.as_ref())?;
    let config = args.verdict.config()?;
    // --- verdict cache: keyed by everything that decides a model verdict ---
    let cache = match args.cache.open(args.quiet)? {
        Some(cache) => {
            let context = pipeline::cache_context(
                pipeline::model_identity(args.model.as_deref()),
                pipeline::adapter_identity(adapter.as_ref(), args.adapter.merge)?,
                &config,
                &format!("{:?}", args.weights),
            );
            Some((cache, context))
        }
        None => None,
    };
    let analyzer = Analyzer::new(model, config)?;
    // --- end verdict cache ---

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

    // Fast-path and cache answers are written as soon as their entry is read; only
    // model work is batched, and a batch waits at most BATCH_WAIT for more entries.
    // A file's verdicts keep the input's order; a live stream's come as they are ready.
    let mut pipeline = Pipeline::new(&analyzer, cache, args.verdict.min_confidence, args.batch);
    let mut reorder = Reorder::new(!live);
    let mut queued_since: Option<Instant> = None;
    let mut write = |done: Done, tally: &mut Tally| -> Result<()> {
        for d in reorder.push(done) {
            write_done(d, &mut writer, tally, &progress)?;
        }
        Ok(())
    };
    loop {
        let mut ended = false;
        let next = if let Some(e) = first.take() {
            Some(e)
        } else if pipeline.queued() == 0 {
            let e = next_entry(&intake, &stop, || {
                progress.suspend(|| print_stats(&intake, &tally))
            });
            ended = e.is_none();
            e
        } else {
            let waited = queued_since.map_or(BATCH_WAIT, |t| t.elapsed());
            if waited >= BATCH_WAIT || stop.load(Ordering::Relaxed) {
                None
            } else {
                match intake.next_timeout(BATCH_WAIT - waited) {
                    Ok(Some(entry)) => Some(entry),
                    Ok(None) => {
                        ended = true;
                        None
                    }
                    Err(Timeout) => None,
                }
            }
        };
        if let Some(entry) = next {
            progress.set_message(terminal_safe(&entry.id).into_owned());
            match pipeline.push(entry) {
                Some(done) => write(done, &mut tally)?,
                None => {
                    queued_since.get_or_insert_with(Instant::now);
                }
            }
            if !pipeline.batch_full() {
                continue;
            }
        }
        // A full batch, a quiet moment, the end or a stop: run the model on what waits.
        // A signal arriving now lets this batch finish: its verdicts are written below.
        for done in pipeline.run_model() {
            write(done, &mut tally)?;
        }
        queued_since = (pipeline.queued() > 0).then(Instant::now);
        progress.suspend(|| print_stats(&intake, &tally));
        if (ended || stop.load(Ordering::Relaxed)) && pipeline.queued() == 0 {
            break;
        }
    }
    pipeline.finish();
    for d in reorder.drain() {
        write_done(d, &mut writer, &mut tally, &progress)?;
    }
    writer.finish()?;
    progress.finish_and_clear();
    finish(&args, &intake, &tally, &stop, started)
}

/// Writes one answered entry and counts it.
fn write_done(
    done: Done,
    writer: &mut Outputs,
    tally: &mut Tally,
    progress: &indicatif::ProgressBar,
) -> Result<()> {
    let Done {
        entry, result, by, ..
    } = done;
    match result {
        Ok(mut verdict) => {
            if entry.cut_bytes > 0 {
                verdict.warnings.insert(
                    0,
                    format!(
                        "input cut at intake: {} bytes removed from the middle of the record",
                        entry.cut_bytes
                    ),
                );
            }
            progress.suspend(|| {
                for w in &verdict.warnings {
                    tracing::warn!(id = %verdict.id, "{w}");
                }
                writer.write(&verdict)
            })?;
            tally.analysed += 1;
            tally.analysed_events += entry.events as u64;
            tally.fast_path += u64::from(by == By::FastPath);
            tally.cache_hits += u64::from(by == By::Cache);
        }
        Err(err) => {
            progress.suspend(|| tracing::warn!("{err}"));
            tally.failed += 1;
            tally.failed_events += entry.events as u64;
        }
    }
    progress.inc(1);
    Ok(())
}

/// Stops the intake, accounts for what it still held, prints the summary and counters,
/// and maps what was lost to the outcome.
fn finish(
    args: &Args,
    intake: &Intake,
    tally: &Tally,
    stop: &AtomicBool,
    started: Instant,
) -> Result<Outcome> {
    let stopped = stop.load(Ordering::Relaxed);
    let stats = intake.stop(STOP_GRACE);
    if !args.quiet {
        let secs = started.elapsed().as_secs_f64();
        if stopped {
            eprintln!(
                "Stopped by a signal after the batch in progress; {} events received but not analysed.",
                stats.abandoned
            );
        }
        eprintln!(
            "{} entries analysed ({} decided by the fast path, {} from the cache), {} failed, in {secs:.1} s ({:.1} entries/min)",
            tally.analysed,
            tally.fast_path,
            tally.cache_hits,
            tally.failed,
            tally.analysed as f64 * 60.0 / secs.max(1e-9)
        );
    }
    if args.stats || stopped {
        eprintln!("{}", counters_line(&stats, tally));
    }
    std::io::stderr().flush().ok();
    if tally.failed > 0 || stats.lost_anything() {
        Ok(Outcome::Partial)
    } else {
        Ok(Outcome::Ok)
    }
}

/// `--publish`: intake and triage here, the model on the workers (docs/SCALE-OUT.md).
fn publish_entries(args: &Args, url: &str, intake: &Intake, stop: &AtomicBool) -> Result<Outcome> {
    use opensoc_scale::{Publisher, Settings, WorkItem};
    let triage = args.verdict.triage.triage()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let settings = Settings::default();
    let mut publisher = runtime
        .block_on(async { Publisher::new(opensoc_scale::connect(url).await?, &settings).await })?;
    let started = Instant::now();
    let mut last_stats = Instant::now();
    let stats_every = Duration::from_secs(args.stats_every.max(1));
    while let Some(entry) = next_entry(intake, stop, || {
        if args.stats && last_stats.elapsed() >= stats_every {
            last_stats = Instant::now();
            eprintln!("intake: {}", intake.stats());
        }
    }) {
        match opensoc_analyze::fast_path_verdict(&triage, &entry.id, &entry.text) {
            Some(mut verdict) => {
                if entry.cut_bytes > 0 {
                    verdict.warnings.insert(
                        0,
                        format!(
                            "input cut at intake: {} bytes removed from the middle of the record",
                            entry.cut_bytes
                        ),
                    );
                }
                runtime.block_on(publisher.publish_verdict(&verdict))?
            }
            None => {
                let item = WorkItem {
                    source: entry.location.origin.to_string(),
                    id: entry.id,
                    text: entry.text,
                    events: entry.events,
                    cut_bytes: entry.cut_bytes,
                };
                runtime.block_on(publisher.publish_entry(&item))?
            }
        }
    }
    let counts = runtime.block_on(publisher.finish())?;
    let stats = intake.stop(STOP_GRACE);
    if !args.quiet {
        eprintln!(
            "{} entries sent to the workers, {} fast-path verdicts to the results, {} already sent before (duplicates), in {:.1} s; `opensoc collect --nats {url} --expect {}` reads the verdicts",
            counts.entries,
            counts.verdicts,
            counts.duplicates,
            started.elapsed().as_secs_f64(),
            counts.entries + counts.verdicts + counts.duplicates
        );
    }
    if args.stats || stop.load(Ordering::Relaxed) {
        eprintln!("intake: {stats}");
    }
    Ok(if stats.lost_anything() {
        Outcome::Partial
    } else {
        Outcome::Ok
    })
}
