use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use opensoc_analyze::{Analyzer, AnalyzerConfig};
use opensoc_attack::{Catalog, Taxonomy};
use opensoc_eval::{evaluate_selected, load_examples, render, Example, Scope, Selection, System};
use opensoc_model::{Adapter, Model};
use opensoc_report::{Format, VerdictWriter};

use super::{
    load_model, prepare_for_analysis, progress_bar, AdapterArgs, NarrativeArgs, TechniqueArgs,
    TriageArgs, Weights,
};
use crate::Outcome;

#[derive(clap::Args)]
pub struct Args {
    /// Labelled examples: Alpaca JSON (list of instruction/input/output) or JSONL; records
    /// may carry `source`, `format` and `split` keys (a real-log corpus), reported per
    /// source and per format.
    #[arg(long)]
    data: PathBuf,
    /// Score only the records whose `split` key is NAME (e.g. `validation`).
    #[arg(long, value_name = "NAME")]
    split: Option<String>,
    /// Score a prediction file instead of running a model: JSONL of verdicts (as written
    /// by `opensoc analyze`) or of `{id, output}` raw text. `NAME=FILE` names the system.
    /// Repeat to compare systems; the first is the baseline.
    #[arg(long = "predictions", value_name = "[NAME=]FILE")]
    predictions: Vec<String>,
    /// Score the system NAME only on the entries it answered (a tool that covers one kind
    /// of log, e.g. OWASP CRS on web requests from `scripts/crs-peer.sh`), instead of
    /// counting its unanswered entries as wrong. Repeatable.
    #[arg(long, value_name = "NAME", requires = "predictions")]
    answered_only: Vec<String>,
    /// Model to run (default: the default model).
    #[arg(long, env = "OPENSOC_MODEL")]
    model: Option<String>,
    #[command(flatten)]
    adapter: AdapterArgs,
    /// Also run the model without the adapter, side by side (the paper's Table II).
    #[arg(long)]
    baseline: bool,
    #[command(flatten)]
    technique: TechniqueArgs,
    #[command(flatten)]
    triage: TriageArgs,
    /// Generate freely and parse the text, as the paper does, instead of the grammar.
    #[arg(long)]
    unconstrained: bool,
    /// Evidence, impact and recommendation (not scored): `model` decodes them (slower).
    #[command(flatten)]
    narrative: NarrativeArgs,
    /// Evaluate only the validation part that `opensoc train --val-fraction F --seed S`
    /// holds out of the same file (F here, S from --seed): how to measure calibration or
    /// tune a threshold without touching a test set.
    #[arg(long, value_name = "F")]
    holdout: Option<f64>,
    /// Seed of the --holdout split (the training seed).
    #[arg(long, default_value_t = 42, requires = "holdout")]
    seed: u64,
    /// Evaluate the first N examples only (after --split and --holdout).
    #[arg(long)]
    limit: Option<usize>,
    #[arg(long, value_enum, default_value_t = Weights::Mixed)]
    weights: Weights,
    /// Examples analysed together (as `opensoc analyze --batch`); 1: one at a time.
    #[arg(long, default_value_t = 8, value_name = "N")]
    batch: usize,
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
    adapter: Option<&Adapter>,
    name: &str,
) -> Result<System> {
    args.adapter.apply(&mut model, adapter)?;
    let (narrative, playbook) = args.narrative.config()?;
    let analyzer = Analyzer::new(
        model,
        AnalyzerConfig {
            constrained: !args.unconstrained,
            technique_beam: args.technique.beam,
            technique_follows_type: !args.technique.free,
            severity_follows_type: !args.technique.free_severity,
            narrative,
            playbook,
            triage: args.triage.triage()?,
            signal_bounds: !args.triage.no_bounds,
            ..AnalyzerConfig::default()
        },
    )?;
    let path = args.out.join(format!("predictions-{name}.jsonl"));
    let file =
        std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    let mut writer = VerdictWriter::new(std::io::BufWriter::new(file), Format::Jsonl);
    let progress = progress_bar(Some(examples.len() as u64), args.quiet);
    progress.set_message(name.to_string());
    let started = std::time::Instant::now();
    // The example's position in the file as id: the scorer matches predictions by it.
    let entries: Vec<(String, String)> = examples
        .iter()
        .map(|ex| (ex.index.to_string(), ex.input.clone()))
        .collect();
    for chunk in entries.chunks(args.batch.max(1)) {
        for verdict in analyzer.analyze_batch(chunk) {
            let verdict = verdict?;
            progress.suspend(|| writer.write(&verdict))?;
            progress.inc(1);
        }
    }
    writer.finish()?;
    progress.finish_and_clear();
    if !args.quiet {
        let seconds = started.elapsed().as_secs_f64();
        eprintln!(
            "{name}: {} examples in {seconds:.1} s ({:.1} per minute)",
            examples.len(),
            examples.len() as f64 * 60.0 / seconds.max(1e-9)
        );
    }
    Ok(System::load(name, &path)?)
}

pub fn run(args: Args) -> Result<Outcome> {
    let examples = load_examples(&args.data)?;
    let mut selection = Selection {
        split: args.split.clone(),
        positions: None,
        limit: args.limit,
    };
    if let Some(fraction) = args.holdout {
        if !(0.0..1.0).contains(&fraction) || fraction == 0.0 {
            bail!("--holdout must be a fraction between 0 and 1, not {fraction}");
        }
        let (_, validation) = opensoc_train::data::split(examples.len(), fraction, args.seed);
        selection.positions = Some(validation.into_iter().collect());
    }
    // Predictions are matched against the whole file; only the selected examples are
    // run and scored.
    let selected: Vec<Example> = selection
        .apply(&examples)
        .into_iter()
        .filter_map(|i| examples.get(i).cloned())
        .collect();
    if selected.is_empty() {
        match &args.split {
            Some(split) => bail!("{}: no examples of split {split}", args.data.display()),
            None => bail!("{}: no examples", args.data.display()),
        }
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;

    let mut systems = Vec::new();
    if args.predictions.is_empty() {
        let adapter = args.adapter.select(args.model.as_deref())?;
        let mut model = load_model(args.model.as_deref(), args.weights.into(), args.quiet)?;
        prepare_for_analysis(&mut model, !args.unconstrained);
        if args.baseline || adapter.is_none() {
            systems.push(run_system(&args, &selected, model.clone(), None, "base")?);
        }
        if let Some(adapter) = &adapter {
            systems.push(run_system(
                &args,
                &selected,
                model,
                Some(adapter),
                "adapter",
            )?);
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
            let scope = if args.answered_only.contains(&name) {
                Scope::Answered
            } else {
                Scope::All
            };
            systems.push(System::load(name, &path)?.with_scope(scope));
        }
        if let Some(unknown) = args
            .answered_only
            .iter()
            .find(|n| !systems.iter().any(|s| &s.name == *n))
        {
            bail!("--answered-only {unknown}: no system of that name among --predictions");
        }
    }

    let evaluation = evaluate_selected(
        &examples,
        &selection,
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
