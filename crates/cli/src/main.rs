//! `opensoc`: the command line. Each subcommand lives in `commands/`; this file only
//! parses arguments, sets up logging and maps outcomes to exit codes.

mod commands;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Raw logs in, triaged threats out: a local LLM reads each log entry and returns threat
/// type, MITRE ATT&CK technique and tactic, severity, risk score, evidence, impact and a
/// recommendation. No data leaves the machine.
#[derive(Parser)]
#[command(name = "opensoc", version, propagate_version = true)]
struct Cli {
    /// Log level for diagnostics on stderr (error, warn, info, debug, trace).
    #[arg(long, global = true, default_value = "warn", env = "OPENSOC_LOG")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Analyse log entries and print one verdict per entry.
    Analyze(commands::analyze::Args),
    /// Fetch, list or locate models.
    Models(commands::models::Args),
    /// Fine-tune a LoRA adapter on labelled examples (PEFT layout).
    Train(commands::train::Args),
    /// Score a model (or prediction files) on labelled examples: the paper's protocol and
    /// SOC-Bench v0, with JSON, Markdown and HTML reports.
    Eval(commands::eval::Args),
    /// Look up MITRE ATT&CK techniques in the embedded catalog.
    Attack(commands::attack::Args),
    /// Measure engine speed (prefill, decode, batched decode) and entries per minute.
    Bench(commands::bench::Args),
    /// Build the labelled training corpus from the pinned public sources (docs/DATA.md).
    Corpus(commands::corpus::Args),
    /// Export verdicts for other tools: an ATT&CK Navigator layer.
    Export(commands::export::Args),
    /// The analyst's console: web page, HTTP API and SQLite alert store (docs/API.md).
    Serve(commands::serve::Args),
    /// The console's reviews (confirmed, relabelled, false positive) as training records.
    Feedback(commands::serve::FeedbackArgs),
    /// Analyse entries from NATS JetStream that `analyze --publish` sent (docs/SCALE-OUT.md).
    Worker(commands::worker::Args),
    /// Read the workers' verdicts from NATS JetStream, once per entry (docs/SCALE-OUT.md).
    Collect(commands::collect::Args),
}

/// candle works its default thread count out anew on every call (on Linux from
/// `/proc/cpuinfo`: the physical cores) and asks for it on every matrix product: tens of
/// thousands of `/proc` reads per log entry, about a tenth of a decode step's time. Fixing
/// the count once in the variable it reads first keeps candle's choice and drops the reads.
fn pin_thread_count() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let threads = candle_core::utils::get_num_threads();
        // At the top of `main`, before any other thread exists to read the environment.
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    }
}

/// What a command reports back, mapped to the exit code.
pub enum Outcome {
    /// Everything was processed.
    Ok,
    /// Finished, but some input was skipped or some entries could not be analysed.
    Partial,
}

fn main() -> ExitCode {
    pin_thread_count();
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(colour_on_stderr())
        .fmt_fields(terminal_safe_fields())
        .init();

    let result = match cli.command {
        Command::Analyze(args) => commands::analyze::run(args),
        Command::Models(args) => commands::models::run(args),
        Command::Train(args) => commands::train::run(args),
        Command::Eval(args) => commands::eval::run(args),
        Command::Attack(args) => commands::attack::run(args),
        Command::Bench(args) => commands::bench::run(args),
        Command::Corpus(args) => commands::corpus::run(args),
        Command::Export(args) => commands::export::run(args),
        Command::Serve(args) => commands::serve::run(args),
        Command::Feedback(args) => commands::serve::export_feedback(args),
        Command::Worker(args) => commands::worker::run(args),
        Command::Collect(args) => commands::collect::run(args),
    };
    match result {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::Partial) => ExitCode::from(1),
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            // Paths in errors come from directory listings and globs: input, too.
            eprintln!("error: {}", opensoc_report::terminal_safe(&message(&err)));
            ExitCode::from(2)
        }
    }
}

/// Colour only for a person at a terminal: never in a redirected stderr, nor with
/// `NO_COLOR` set.
fn colour_on_stderr() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// Diagnostics quote log text and file names (a malformed record, a path from a
/// directory): every field value goes through `terminal_safe`, so an escape sequence in a
/// log cannot recolour, retitle or rewrite the analyst's terminal.
fn terminal_safe_fields() -> impl for<'w> tracing_subscriber::fmt::FormatFields<'w> {
    use tracing_subscriber::field::MakeExt;
    tracing_subscriber::fmt::format::debug_fn(|w, field, value| {
        // `%x` fields arrive here through their `Display`, `?x` through `Debug`.
        let text = format!("{value:?}");
        let text = opensoc_report::terminal_safe(&text);
        if field.name() == "message" {
            w.write_str(&text)
        } else {
            write!(w, "{}={}", field.name(), text)
        }
    })
    .delimited(" ")
}

/// The error and its causes, joined by ": ". A cause the message before it already ends
/// with is skipped: the libraries' errors name their source in their own text too.
fn message(err: &anyhow::Error) -> String {
    let mut text = err.to_string();
    for cause in err.chain().skip(1) {
        let cause = cause.to_string();
        if !text.ends_with(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

/// `opensoc analyze ... | head` closing the pipe is a normal end, not an error.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_is_printed_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        // A library error that names its source in its text and also returns it.
        #[derive(Debug)]
        struct Wrapped(std::io::Error);
        impl std::fmt::Display for Wrapped {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "data.json: {}", self.0)
            }
        }
        impl std::error::Error for Wrapped {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let err = anyhow::Error::new(Wrapped(io)).context("reading the training data");
        assert_eq!(
            message(&err),
            "reading the training data: data.json: no such file"
        );
        let plain = anyhow::anyhow!("inner").context("outer");
        assert_eq!(message(&plain), "outer: inner");
    }
}
