//! `opensoc train`: LoRA fine-tuning on labelled logs, written as a PEFT adapter.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use opensoc_model::{fetch, LoadOptions, Model, ModelSource, WeightFormat};
use opensoc_train::{data, prepare, Event, TrainConfig, Trainer, DEFAULT_ACTIVATION_MEMORY_MB};

use crate::Outcome;

/// Hugging Face name of the default base, written to `base_model_name_or_path` so PEFT
/// can load the adapter (OpenSOC trains on the dequantized GGUF of this model).
const DEFAULT_BASE_NAME: &str = "HuggingFaceTB/SmolLM2-135M-Instruct";

#[derive(clap::Args)]
pub struct Args {
    /// Labelled examples: a JSON list of {instruction, input, output} (the paper's
    /// Alpaca format) or one such object per line (JSONL).
    #[arg(long, value_name = "FILE")]
    data: PathBuf,
    /// Output directory: the adapter (PEFT layout), best/, last/, checkpoint/, train_log.jsonl.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Base model: a GGUF file (dequantized to f32 for training), a Hugging Face
    /// directory, or hf:ORG/NAME[@REV]. Default: the SmolLM2-135M-Instruct GGUF.
    #[arg(long, env = "OPENSOC_MODEL")]
    base: Option<String>,
    /// Name written to the adapter's base_model_name_or_path (default: the base's name).
    #[arg(long)]
    base_name: Option<String>,
    /// Continue the run whose checkpoint is in --out (same options required).
    #[arg(long)]
    resume: bool,
    /// LoRA rank.
    #[arg(long, default_value_t = 16)]
    rank: usize,
    /// LoRA alpha (the update is scaled by alpha / rank, or alpha / sqrt(rank) with --rslora).
    #[arg(long, default_value_t = 32.0)]
    alpha: f64,
    /// Dropout on the LoRA input.
    #[arg(long, default_value_t = 0.05)]
    dropout: f64,
    /// Projections that get an adapter (comma-separated).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"
    )]
    target_modules: Vec<String>,
    /// Rank-stabilised LoRA scaling (alpha / sqrt(rank)).
    #[arg(long)]
    rslora: bool,
    /// Passes over the training split.
    #[arg(long, default_value_t = 2)]
    epochs: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// AdamW weight decay.
    #[arg(long, default_value_t = 0.01)]
    weight_decay: f64,
    /// Fraction of the steps with linear warmup (then cosine decay).
    #[arg(long, default_value_t = 0.05)]
    warmup_ratio: f64,
    /// Sequences per optimizer step; each runs as its own micro-batch (no padding).
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    /// Gradient accumulation: the optimizer steps every batch-size x this sequences.
    #[arg(long, default_value_t = 1)]
    grad_accum: usize,
    /// Clip the global gradient norm to this (0: off).
    #[arg(long, default_value_t = 1.0)]
    max_grad_norm: f64,
    /// Longest sequence in tokens; longer log text is cut in the middle with a marker,
    /// the response is never cut.
    #[arg(long, default_value_t = 512)]
    max_len: usize,
    /// Fraction of the data held out for validation (seeded).
    #[arg(long, default_value_t = 0.1)]
    val_fraction: f64,
    /// Score the prompt tokens too (the paper's recipe); default: the response only.
    #[arg(long)]
    loss_on_prompt: bool,
    /// Seed of the split, shuffling, initialisation and dropout.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Stop after this many optimizer steps, leaving a resumable checkpoint.
    #[arg(long)]
    max_steps: Option<usize>,
    /// Write the checkpoint every this many steps (it is also written at each epoch end
    /// and on Ctrl-C).
    #[arg(long, default_value_t = 25)]
    save_every: usize,
    /// Save the adapter tensors in f32 instead of f16.
    #[arg(long)]
    save_f32: bool,
    /// Memory for the activations kept for the backward pass, in MiB. Blocks beyond it
    /// are recomputed in the backward pass (slower, same gradients); 0 recomputes every
    /// block (least memory).
    #[arg(long, value_name = "MIB", default_value_t = DEFAULT_ACTIVATION_MEMORY_MB)]
    activation_memory: u64,
    /// Keep every activation, whatever the memory (fastest; about 2.5 GB of activations
    /// at 512 tokens for the default model).
    #[arg(long, conflicts_with = "activation_memory")]
    no_checkpointing: bool,
    /// Start from this adapter (same rank and modules) instead of a fresh one.
    #[arg(long, value_name = "DIR")]
    init_adapter: Option<PathBuf>,
    /// Train on the structured fields of each response only (threat type to risk score);
    /// for a second stage with --init-adapter after a run on whole responses.
    #[arg(long)]
    fields_only: bool,
    /// Where to train: cpu, or cuda[:N] for a GPU (a build with the `cuda` feature).
    #[arg(long, default_value = "cpu", value_parser = parse_device)]
    device: Device,
    /// No progress bar.
    #[arg(short, long)]
    quiet: bool,
}

fn parse_device(s: &str) -> Result<Device> {
    let ordinal = match s {
        "cpu" => return Ok(Device::Cpu),
        "cuda" => 0,
        _ => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => n,
            _ => bail!("{s:?}: expected cpu, cuda or cuda:N"),
        },
    };
    if !cfg!(feature = "cuda") {
        bail!("this opensoc was built without GPU support: build it with `--features cuda`");
    }
    Device::new_cuda(ordinal).with_context(|| format!("opening GPU {ordinal}"))
}

fn load_base(spec: Option<&str>, device: &Device) -> Result<(Model, String)> {
    let (source, name) = match spec {
        Some(s) => (s.parse::<ModelSource>()?, s.to_string()),
        None => (
            ModelSource::Gguf(fetch::ensure_default_model()?),
            DEFAULT_BASE_NAME.to_string(),
        ),
    };
    // Gradients need dense weights: candle's quantized matmul has no backward pass.
    let opts = LoadOptions {
        weight_format: WeightFormat::F32,
    };
    let mut model =
        Model::load(&source, opts).with_context(|| format!("loading model {source}"))?;
    if !device.is_cpu() {
        model.llama = model.llama.to_device(device)?;
    }
    Ok((model, name))
}

pub fn run(args: Args) -> Result<Outcome> {
    let (records, skipped) = data::load_records(&args.data)?;
    for s in &skipped {
        eprintln!("skipped: {s}");
    }
    if records.is_empty() {
        bail!("{}: no usable training record", args.data.display());
    }
    let skipped_count = skipped.len();
    let (model, name) = load_base(args.base.as_deref(), &args.device)?;
    let config = TrainConfig {
        rank: args.rank,
        alpha: args.alpha,
        dropout: args.dropout,
        target_modules: args.target_modules,
        rslora: args.rslora,
        epochs: args.epochs,
        lr: args.lr,
        weight_decay: args.weight_decay,
        warmup_ratio: args.warmup_ratio,
        batch_size: args.batch_size,
        grad_accum: args.grad_accum,
        max_grad_norm: args.max_grad_norm,
        max_len: args.max_len,
        val_fraction: args.val_fraction,
        loss_on_prompt: args.loss_on_prompt,
        seed: args.seed,
        max_steps: args.max_steps,
        save_every: args.save_every,
        base_name: args.base_name.unwrap_or(name),
        save_dtype: if args.save_f32 {
            DType::F32
        } else {
            DType::F16
        },
        activation_memory_mb: (!args.no_checkpointing).then_some(args.activation_memory),
        init_adapter: args.init_adapter,
        fields_only: args.fields_only,
    };
    let prepared = prepare(&model, &records, skipped, &args.data, &config)?;
    // Records that did not tokenize or fit (the file's parse errors were printed above).
    for s in prepared.skipped.iter().skip(skipped_count) {
        eprintln!("skipped: {s}");
    }
    let mut trainer = Trainer::new(model, config, &args.out)?;
    opensoc_train::install_ctrlc_handler();

    let quiet = args.quiet || !std::io::stderr().is_terminal();
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} steps  {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.enable_steady_tick(Duration::from_millis(500));
        bar
    };
    let summary = trainer.run(&prepared, args.resume, |event| match event {
        Event::Prepared {
            train,
            valid,
            skipped,
            shortened,
            total_steps,
            trainable,
            start_step,
        } => {
            bar.set_length(*total_steps as u64);
            bar.set_position(*start_step as u64);
            let line = format!(
                "{train} training / {valid} validation examples, {skipped} skipped, \
                 {shortened} with log text cut to fit; {trainable} trainable parameters; \
                 {total_steps} steps"
            );
            if quiet {
                eprintln!("{line}");
            } else {
                bar.println(line);
            }
        }
        Event::Step {
            step,
            total_steps,
            loss,
            lr,
            tokens_per_s,
            eta_s,
            ..
        } => {
            bar.set_position(*step as u64);
            bar.set_message(format!(
                "loss {loss:.4}  lr {lr:.2e}  {tokens_per_s:.0} tok/s  ETA {}",
                fmt_secs(*eta_s)
            ));
            if quiet && (step % 10 == 0 || step == total_steps) {
                eprintln!("step {step}/{total_steps} loss {loss:.4} {tokens_per_s:.0} tok/s");
            }
        }
        Event::Epoch {
            epoch,
            train_loss,
            val_loss,
            best,
        } => {
            let val = val_loss.map_or("-".to_string(), |v| format!("{v:.4}"));
            let line = format!(
                "epoch {}: train loss {train_loss:.4}, validation loss {val}{}",
                epoch + 1,
                if *best { " (best)" } else { "" }
            );
            if quiet {
                eprintln!("{line}");
            } else {
                bar.println(line);
            }
        }
    })?;
    bar.finish_and_clear();
    let out = args.out.display();
    if summary.finished {
        eprintln!(
            "Done: {} steps, {} tokens in {}, ({:.0} tokens/s). Adapter in {out} \
             (best validation loss {}).",
            summary.steps,
            summary.train_tokens,
            fmt_secs(summary.seconds),
            summary.train_tokens as f64 / summary.seconds.max(1e-9),
            summary
                .best_val_loss
                .map_or("-".to_string(), |v| format!("{v:.4}"))
        );
    } else {
        eprintln!(
            "Stopped after {}/{} steps; continue with the same options and --resume \
             (checkpoint in {out}/{}).",
            summary.steps,
            summary.total_steps,
            opensoc_train::CHECKPOINT_DIR
        );
    }
    Ok(if summary.finished && summary.skipped.is_empty() {
        Outcome::Ok
    } else {
        Outcome::Partial
    })
}

fn fmt_secs(s: f64) -> String {
    let s = s.max(0.0) as u64;
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}
