//! Runs the `opensoc train` subcommand's code on its own, for benchmarking this crate
//! without building the whole CLI: `cargo run --release -p opensoc-train --example
//! train_cli -- --data FILE --out DIR`.

#[path = "../../cli/src/commands/train.rs"]
mod train;

/// Mirrors the CLI's outcome type that the subcommand returns.
pub enum Outcome {
    Ok,
    Partial,
}

use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: train::Args,
}

fn main() -> anyhow::Result<()> {
    match train::run(Cli::parse().args)? {
        Outcome::Ok => Ok(()),
        Outcome::Partial => std::process::exit(1),
    }
}
