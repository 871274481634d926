//! `opensoc export`: verdicts in the formats of other tools.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Subcommand;
use opensoc_sinks::navigator::{read_verdicts, LayerBuilder};

use crate::Outcome;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: ExportCommand,
}

#[derive(Subcommand)]
enum ExportCommand {
    /// An ATT&CK Navigator layer (Enterprise, layer format 4.5) scoring each technique by
    /// its alerts: the sum of their level weights (low 1, medium 2, high 3, critical 4).
    Navigator {
        /// Verdicts as `opensoc analyze --format jsonl` writes them; `-` for standard input.
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
        /// The layer file to write; standard output when absent or `-`.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// The layer's name in the Navigator.
        #[arg(long, default_value = "OpenSOC alerts")]
        name: String,
    },
}

pub fn run(args: Args) -> Result<Outcome> {
    match args.command {
        ExportCommand::Navigator { from, out, name } => navigator(&from, out.as_ref(), &name),
    }
}

fn navigator(from: &Path, out: Option<&PathBuf>, name: &str) -> Result<Outcome> {
    let path = from.display().to_string();
    let reader: Box<dyn BufRead> = if path == "-" {
        Box::new(io::stdin().lock())
    } else {
        Box::new(BufReader::new(
            File::open(from).with_context(|| format!("opening {path}"))?,
        ))
    };
    let mut layer = LayerBuilder::new();
    let mut bad = 0usize;
    for verdict in read_verdicts(reader, &path) {
        match verdict {
            // Verdicts without an alert level or a known technique are counted by the builder.
            Ok(v) => {
                let _ = layer.add(&v);
            }
            Err(err) => {
                tracing::warn!("{err}");
                bad += 1;
            }
        }
    }
    let mut json = serde_json::to_string_pretty(&layer.build(name))?;
    json.push('\n');
    match out.filter(|p| p.as_os_str() != "-") {
        Some(p) => std::fs::write(p, json).with_context(|| format!("writing {}", p.display()))?,
        None => io::stdout().lock().write_all(json.as_bytes())?,
    }
    let (added, not_alerts, unknown) = layer.counts();
    eprintln!(
        "{added} alerts in the layer; skipped {not_alerts} informational, {unknown} without a known technique, {bad} unreadable lines"
    );
    Ok(if bad > 0 {
        Outcome::Partial
    } else {
        Outcome::Ok
    })
}
