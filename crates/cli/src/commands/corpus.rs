//! `opensoc corpus build`: the labelled training corpus from the pinned public sources
//! (docs/DATA.md), rendered by the ingest code `opensoc analyze` runs.

use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use opensoc_corpus::{build, write_jsonl, BuildConfig, Split};

use crate::Outcome;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: CorpusCommand,
}

#[derive(Subcommand)]
enum CorpusCommand {
    /// Build train.jsonl and validation.jsonl from a sources directory laid out by
    /// scripts/fetch-corpus-sources.sh.
    Build {
        /// Directory holding one folder per source (coreruleset, libinjection, ...).
        #[arg(long, value_name = "DIR")]
        sources: PathBuf,
        /// Output directory for train.jsonl and validation.jsonl.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Seed of every draw (surroundings, samples); the same seed rebuilds the same bytes.
        #[arg(long, default_value_t = BuildConfig::default().seed)]
        seed: u64,
        /// No per-source summary on stderr.
        #[arg(long)]
        quiet: bool,
    },
}

pub fn run(args: Args) -> Result<Outcome> {
    match args.command {
        CorpusCommand::Build {
            sources,
            out,
            seed,
            quiet,
        } => {
            let cfg = BuildConfig {
                seed,
                ..BuildConfig::default()
            };
            let corpus = build(&sources, &cfg)?;
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            for split in [Split::Train, Split::Validation] {
                let path = out.join(format!("{}.jsonl", split.name()));
                let file =
                    File::create(&path).with_context(|| format!("creating {}", path.display()))?;
                write_jsonl(corpus.split(split), BufWriter::new(file))
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            for p in &corpus.problems {
                eprintln!("skipped {p}");
            }
            if !quiet {
                eprintln!("split\tsource\tcategory\trecords");
                for ((split, source, category), n) in corpus.counts() {
                    eprintln!("{}\t{source}\t{category}\t{n}", split.name());
                }
                eprintln!(
                    "{} records ({} train, {} validation), {} near-duplicates and {} over-long entries dropped, {} inputs skipped; sources: {}",
                    corpus.records.len(),
                    corpus.split(Split::Train).count(),
                    corpus.split(Split::Validation).count(),
                    corpus.duplicates,
                    corpus.too_long,
                    corpus.problems.len(),
                    corpus.sources_read.join(", ")
                );
            }
            Ok(if corpus.problems.is_empty() {
                Outcome::Ok
            } else {
                Outcome::Partial
            })
        }
    }
}
