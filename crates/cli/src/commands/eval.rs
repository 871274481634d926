use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use opensoc_analyze::{Analyzer, AnalyzerConfig, NarrativeLimits};
use opensoc_attack::{Catalog, Taxonomy};
use opensoc_eval::{evaluate, load_examples, render, Example, System};
use opensoc_model::Model;
use opensoc_report::{Format, VerdictWriter};

use super::{load_model, progress_bar, Weights};
use crate::Outcome;

#[derive(clap::Args)]
pub struct Args {
    /// Labelled examples: Alpaca JSON (list of instruction/input/output) or JSONL.
    #[arg(long)]
    data: PathBuf,
    /// Score a prediction file instead of running a model: JSONL of verdicts (as written
    /// by `opensoc analyze`) or of `{id, output}` raw text. `NAME=FILE` names the system.
    /// Repeat to compare systems; the first is the baseline.
    #[arg(long = "predictions", value_name = "[NAME=]FILE")]
    predictions: Vec<String>,
    /// Model to run (default: the default model).
    #[arg(long, env = "OPENSOC_MODEL")]
    model: Option<String>,
    /// LoRA adapter directory (PEFT layout).
    #[arg(long, value_name = "DIR")]
    adapter: Option<PathBuf>,
    /// Also run the model without the adapter, side by side (the paper's Table II).
    #[arg(long)]
    baseline: bool,
    /// Generate freely and parse the text, as the paper does, instead of the grammar.
    #[arg(long)]
    unconstrained: bool,
    /// Also decode evidence, impact and recommendation (not scored; slower).
    #[arg(long)]
    narrative: bool,
    /// Evaluate the first N examples only.
    #[arg(long)]
    limit: Option<usize>,
    #[arg(long, value_enum, default_value_t = Weights::Q8)]
    weights: Weights,
    /// Directory for report.json, report.md, report.html, records.jsonl and predictions.
    #[arg(long, default_value = "eval-report")]
    out: PathBuf,
    /// No progress bar on stderr.
    #[arg(long, short)]
    quiet: bool,
}

/// Runs `model` (plus `adapter`) over the examples; `model` is a clone of the one loaded
/// once for every system (cheap: the weight tensors are shared).
fn run_system(
    args: &Args,
    examples: &[Example],
    mut model: Model,
    adapter: Option<&Path>,
    name: &str,
) -> Result<System> {
    if let Some(dir) = adapter {
        model
            .apply_adapter(dir, false)
            .with_context(|| format!("applying adapter {}", dir.display()))?;
    }
    let analyzer = Analyzer::new(
        model,
        AnalyzerConfig {
            constrained: !args.unconstrained,
            narrative: args.narrative.then(NarrativeLimits::default),
            ..AnalyzerConfig::default()
        },
    )?;
    let path = args.out.join(format!("predictions-{name}.jsonl"));
    let file =
        std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    let mut writer = VerdictWriter::new(std::io::BufWriter::new(file), Format::Jsonl);
    let progress = progress_bar(Some(examples.len() as u64), args.quiet);
    progress.set_message(name.to_string());
    for ex in examples {
        // The example's index as id: the scorer matches predictions by it.
        let verdict = analyzer.analyze(&ex.index.to_string(), &ex.input)?;
        progress.suspend(|| writer.write(&verdict))?;
        progress.inc(1);
    }
    writer.finish()?;
    progress.finish_and_clear();
    Ok(System::load(name, &path)?)
}

pub fn run(args: Args) -> Result<Outcome> {
    let mut examples = load_examples(&args.data)?;
    if let Some(n) = args.limit {
        examples.truncate(n);
    }
    if examples.is_empty() {
        bail!("{}: no examples", args.data.display());
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;

    let mut systems = Vec::new();
    if args.predictions.is_empty() {
        let model = load_model(args.model.as_deref(), args.weights.into(), args.quiet)?;
        if args.baseline || args.adapter.is_none() {
            systems.push(run_system(&args, &examples, model.clone(), None, "base")?);
        }
        if let Some(dir) = &args.adapter {
            systems.push(run_system(&args, &examples, model, Some(dir), "adapter")?);
        }
    } else {
        for spec in &args.predictions {
            let (name, path) = match spec.split_once('=') {
                Some((n, p)) => (n.to_string(), PathBuf::from(p)),
                None => {
                    let p = PathBuf::from(spec);
                    let stem = p
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    (stem, p)
                }
            };
            systems.push(System::load(name, &path)?);
        }
    }

    let evaluation = evaluate(
        &examples,
        &systems,
        Taxonomy::builtin(),
        Catalog::enterprise(),
    )?;
    let report = &evaluation.report;
    let write = |file: &str, f: &dyn Fn(&mut dyn Write) -> Result<()>| -> Result<()> {
        let path = args.out.join(file);
        let mut out = std::io::BufWriter::new(
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?,
        );
        f(&mut out)?;
        out.flush()?;
        Ok(())
    };
    write("report.json", &|w| Ok(render::write_json(report, w)?))?;
    write("records.jsonl", &|w| {
        Ok(render::write_records_jsonl(&evaluation.records, w)?)
    })?;
    let markdown = render::markdown(report);
    write("report.md", &|w| Ok(w.write_all(markdown.as_bytes())?))?;
    write("report.html", &|w| {
        Ok(w.write_all(render::html(report).as_bytes())?)
    })?;
    println!("{markdown}");
    if !args.quiet {
        eprintln!("Reports written to {}", args.out.display());
    }
    Ok(Outcome::Ok)
}
