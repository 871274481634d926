//! The training loop: epochs of shuffled examples, one sequence per micro-batch (no
//! padding is ever computed), gradient accumulation into optimizer steps, validation per
//! epoch, best / last adapters and a resumable checkpoint.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use opensoc_model::adapter::TargetModules;
use opensoc_model::layers::TrainCtx;
use opensoc_model::{AdapterConfig, LlamaConfig, Model};
use serde::{Deserialize, Serialize};

use crate::data::{self, Example, Record, Skipped};
use crate::error::{io_err, Result, TrainError};
use crate::lora::LoraParams;
use crate::optim::{clip_grad_norm, AdamW, Schedule};

/// Sub-directory of the output holding the resumable state.
pub const CHECKPOINT_DIR: &str = "checkpoint";
/// Sub-directory with the adapter of the lowest validation loss.
pub const BEST_DIR: &str = "best";
/// Sub-directory with the adapter after the last step.
pub const LAST_DIR: &str = "last";
/// JSONL log of steps and epochs.
pub const LOG_FILE: &str = "train_log.jsonl";
const STATE_FILE: &str = "state.json";
const TENSORS_FILE: &str = "state.safetensors";

/// Everything that defines a run. Stored in the checkpoint: `--resume` refuses a
/// different recipe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub rank: usize,
    pub alpha: f64,
    pub dropout: f64,
    pub target_modules: Vec<String>,
    pub rslora: bool,
    pub epochs: usize,
    pub lr: f64,
    pub weight_decay: f64,
    pub warmup_ratio: f64,
    /// Sequences per optimizer step (each is its own micro-batch: no padding).
    pub batch_size: usize,
    pub grad_accum: usize,
    pub max_grad_norm: f64,
    pub max_len: usize,
    pub val_fraction: f64,
    pub loss_on_prompt: bool,
    pub seed: u64,
    /// Stop (leaving a checkpoint) after this many optimizer steps in total.
    #[serde(default)]
    pub max_steps: Option<usize>,
    /// Write the checkpoint every this many steps (0: at epoch ends and on stop only).
    pub save_every: usize,
    /// Name written to `base_model_name_or_path`.
    pub base_name: String,
    /// Data type of the saved adapter tensors.
    #[serde(with = "dtype_name")]
    pub save_dtype: DType,
    /// Memory for the activations kept for the backward pass, in MiB; `None`: no limit.
    /// Blocks whose activations do not fit keep only their input and are recomputed in
    /// the backward pass (activation checkpointing), so a long sequence costs one more
    /// forward pass through those blocks instead of memory. The gradients are the same
    /// either way, so a run may resume with another budget.
    #[serde(default)]
    pub activation_memory_mb: Option<u64>,
    /// Start from this adapter's matrices instead of PEFT's initialisation (same rank
    /// and modules): a second stage on top of a finished run.
    #[serde(default)]
    pub init_adapter: Option<PathBuf>,
    /// Keep and score only the structured fields of each response (threat type to risk
    /// score): shorter sequences, and every gradient on the decisions the verdict is
    /// judged by. Meant for a second stage after a run on whole responses, which taught
    /// the narrative fields.
    #[serde(default)]
    pub fields_only: bool,
}

mod dtype_name {
    use candle_core::DType;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &DType, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(d.as_str())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DType, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "f16" => Ok(DType::F16),
            "bf16" => Ok(DType::BF16),
            "f32" => Ok(DType::F32),
            _ => Err(serde::de::Error::custom(format!("unknown dtype {s}"))),
        }
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            rank: 16,
            alpha: 32.0,
            dropout: 0.05,
            target_modules: opensoc_model::llama::PROJECTIONS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            rslora: false,
            epochs: 3,
            lr: 2e-4,
            weight_decay: 0.01,
            warmup_ratio: 0.05,
            batch_size: 16,
            grad_accum: 1,
            max_grad_norm: 1.0,
            max_len: 512,
            val_fraction: 0.1,
            loss_on_prompt: false,
            seed: 42,
            max_steps: None,
            save_every: 25,
            activation_memory_mb: Some(DEFAULT_ACTIVATION_MEMORY_MB),
            init_adapter: None,
            fields_only: false,
            base_name: String::new(),
            save_dtype: DType::F16,
        }
    }
}

impl TrainConfig {
    fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(TrainError::Config(m.to_string()));
        if self.rank == 0 {
            return bad("rank must be at least 1");
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad("dropout must be in [0, 1)");
        }
        if self.epochs == 0 || self.batch_size == 0 || self.grad_accum == 0 {
            return bad("epochs, batch size and gradient accumulation must be at least 1");
        }
        if !(0.0..1.0).contains(&self.val_fraction) {
            return bad("validation fraction must be in [0, 1)");
        }
        if self.lr.is_nan() || self.lr <= 0.0 {
            return bad("learning rate must be positive");
        }
        if let Some(m) = self
            .target_modules
            .iter()
            .find(|m| !opensoc_model::llama::PROJECTIONS.contains(&m.as_str()))
        {
            return Err(TrainError::Config(format!(
                "target module {m:?} is not one of {}",
                opensoc_model::llama::PROJECTIONS.join(", ")
            )));
        }
        Ok(())
    }

    fn adapter_config(&self) -> AdapterConfig {
        AdapterConfig {
            rank: self.rank,
            alpha: self.alpha,
            lora_dropout: self.dropout,
            target_modules: TargetModules::List(self.target_modules.clone()),
            use_rslora: self.rslora,
            base_model_name_or_path: Some(self.base_name.clone()),
            task_type: Some("CAUSAL_LM".into()),
            bias: "none".into(),
            peft_type: Some("LORA".into()),
            use_dora: false,
            fan_in_fan_out: false,
            rank_pattern: Default::default(),
            alpha_pattern: Default::default(),
            modules_to_save: None,
        }
    }

    /// Sequences per optimizer step.
    pub fn effective_batch(&self) -> usize {
        self.batch_size * self.grad_accum
    }
}

/// Progress reports for a progress bar.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Prepared {
        train: usize,
        valid: usize,
        skipped: usize,
        shortened: usize,
        total_steps: usize,
        trainable: usize,
        start_step: usize,
    },
    Step {
        step: usize,
        total_steps: usize,
        epoch: usize,
        loss: f64,
        lr: f64,
        grad_norm: f64,
        tokens_per_s: f64,
        eta_s: f64,
    },
    Epoch {
        epoch: usize,
        train_loss: f64,
        val_loss: Option<f64>,
        best: bool,
    },
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub steps: usize,
    pub total_steps: usize,
    /// False when stopped early (Ctrl-C or `max_steps`); the checkpoint resumes it.
    pub finished: bool,
    pub best_val_loss: Option<f64>,
    pub last_val_loss: Option<f64>,
    pub train_tokens: usize,
    pub seconds: f64,
    pub skipped: Vec<Skipped>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    config: TrainConfig,
    step: usize,
    best_val_loss: Option<f64>,
    last_val_loss: Option<f64>,
    train_tokens: usize,
    seconds: f64,
}

/// Set by the Ctrl-C handler; the loop stops at the next optimizer-step boundary.
pub static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Makes Ctrl-C (SIGINT) request a clean stop that leaves a resumable checkpoint. A
/// second Ctrl-C while stopping still stops at the step boundary.
pub fn install_ctrlc_handler() {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    #[cfg(unix)]
    unsafe {
        libc::signal(
            libc::SIGINT,
            on_sigint as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
    }
}

/// Tokenized data of a run.
pub struct Prepared {
    pub train: Vec<Example>,
    pub valid: Vec<Example>,
    pub skipped: Vec<Skipped>,
}

/// Tokenizes `records` and splits them (seeded) into training and validation examples.
pub fn prepare(
    model: &Model,
    records: &[Record],
    mut skipped: Vec<Skipped>,
    path: &Path,
    config: &TrainConfig,
) -> Result<Prepared> {
    let max_len = config.max_len.min(model.llama.max_len());
    let (train_idx, valid_idx) = data::split(records.len(), config.val_fraction, config.seed);
    let mut encode = |idx: &[usize]| -> Vec<Example> {
        let mut out = Vec::new();
        for &i in idx {
            let fields;
            let record = if config.fields_only {
                fields = data::fields_only(&records[i]);
                &fields
            } else {
                &records[i]
            };
            match data::encode(
                &model.tokenizer,
                record,
                opensoc_verdict::prompt::INSTRUCTION,
                max_len,
            ) {
                Ok(mut e) => {
                    if config.fields_only {
                        // The answer goes on after the fields: no end of sequence here.
                        e.tokens.pop();
                    }
                    out.push(e)
                }
                Err(reason) => skipped.push(Skipped {
                    path: path.to_path_buf(),
                    index: i,
                    reason,
                }),
            }
        }
        out
    };
    let train = encode(&train_idx);
    let valid = encode(&valid_idx);
    if train.is_empty() {
        return Err(TrainError::Data {
            path: path.to_path_buf(),
            reason: "no usable training record".into(),
        });
    }
    Ok(Prepared {
        train,
        valid,
        skipped,
    })
}

/// Loss of one sequence: sum of the scored tokens' negative log-likelihoods, as a
/// differentiable scalar, and the number of scored tokens.
pub fn sequence_loss(
    model: &Model,
    example: &Example,
    loss_on_prompt: bool,
    ctx: &TrainCtx,
) -> Result<(Tensor, usize)> {
    let (tokens, positions, labels, n) =
        sequence_tensors(example, loss_on_prompt, model.llama.device())?;
    let logits = model.llama.forward_train(&tokens, &positions, ctx)?;
    Ok((summed_nll(&logits, &labels)?, n))
}

/// `[1, seq]` tokens, the flat positions whose next token is scored, those tokens, and
/// how many there are.
fn sequence_tensors(
    example: &Example,
    loss_on_prompt: bool,
    dev: &Device,
) -> Result<(Tensor, Tensor, Tensor, usize)> {
    let (positions, labels) = example.targets(loss_on_prompt);
    Ok((
        Tensor::new(example.tokens.as_slice(), dev)?.unsqueeze(0)?,
        Tensor::new(positions.as_slice(), dev)?,
        Tensor::new(labels.as_slice(), dev)?,
        positions.len(),
    ))
}

/// Summed negative log-likelihood of `labels` under `logits` (`[n, vocab]`).
fn summed_nll(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let logp = candle_nn::ops::log_softmax(logits, candle_core::D::Minus1)?;
    Ok(logp.gather(&labels.unsqueeze(1)?, 1)?.sum_all()?.neg()?)
}

/// Default [`TrainConfig::activation_memory_mb`]: with the f32 base (about 0.6 GB for the
/// default model) and the optimizer, training stays within 4 GB.
pub const DEFAULT_ACTIVATION_MEMORY_MB: u64 = 2048;

/// Estimated bytes of the activations one block keeps for the backward pass over a
/// sequence of `tokens`: per token, a few hidden-size and intermediate-size vectors (the
/// fused training ops keep little else) and two rows of attention weights per head. A
/// rough upper estimate, calibrated on peak RSS with the default model.
pub fn block_activation_bytes(cfg: &LlamaConfig, tokens: usize) -> u64 {
    let per_token = 10 * cfg.hidden_size + 5 * cfg.intermediate_size + 2 * cfg.num_heads * tokens;
    4u64.saturating_mul(tokens as u64)
        .saturating_mul(per_token as u64)
}

/// How many of the lowest blocks to recompute rather than keep, so that the kept blocks
/// fit `budget_mb` (`None`: keep them all).
pub fn recomputed_blocks(cfg: &LlamaConfig, tokens: usize, budget_mb: Option<u64>) -> usize {
    let Some(budget) = budget_mb else {
        return 0;
    };
    let per_block = block_activation_bytes(cfg, tokens).max(1);
    let kept = budget.saturating_mul(1024 * 1024) / per_block;
    cfg.num_layers
        .saturating_sub(usize::try_from(kept).unwrap_or(usize::MAX))
}

/// The summed loss of one sequence and the gradient of `scale` times it for every LoRA
/// variable (in `params.vars` order).
///
/// The lowest `recompute` blocks are checkpointed: the forward pass keeps only their
/// inputs (and where the dropout stream was); after the backward pass through the upper
/// blocks, it runs block by block down through them, recomputing each with the same
/// dropout masks and back-propagating the incoming gradient `g` as the gradient of
/// `sum(block(x) * g)`. Peak memory is then the upper blocks' activations and one
/// recomputed block's.
pub fn sequence_grads(
    model: &Model,
    params: &LoraParams,
    example: &Example,
    loss_on_prompt: bool,
    scale: f64,
    recompute: usize,
    ctx: &TrainCtx,
) -> Result<(f64, Vec<Tensor>)> {
    let mut grads: Vec<Tensor> = params
        .vars
        .iter()
        .map(|v| v.as_tensor().zeros_like())
        .collect::<candle_core::Result<_>>()?;
    let mut collect = |store: &candle_core::backprop::GradStore| -> Result<()> {
        for (g, v) in grads.iter_mut().zip(&params.vars) {
            if let Some(d) = store.get(v.as_tensor()) {
                *g = (&*g + d)?;
            }
        }
        Ok(())
    };
    if recompute == 0 {
        let (loss, _) = sequence_loss(model, example, loss_on_prompt, ctx)?;
        let value = loss.to_scalar::<f32>()? as f64;
        collect(&(loss * scale)?.backward()?)?;
        return Ok((value, grads));
    }

    let llama = &model.llama;
    let (tokens, positions, labels, _) =
        sequence_tensors(example, loss_on_prompt, model.llama.device())?;

    // Forward: detaching each checkpointed output drops the block's graph and activations.
    let layers = llama.config().num_layers;
    let recompute = recompute.min(layers);
    let mut inputs = Vec::with_capacity(recompute);
    let mut xs = llama.embed_train(&tokens)?;
    for i in 0..recompute {
        inputs.push((xs.clone(), ctx.rng_state()));
        xs = llama.block_train(i, &xs, ctx)?.detach();
    }
    let top = candle_core::Var::from_tensor(&xs)?;
    let mut xs = top.as_tensor().clone();
    for i in recompute..layers {
        xs = llama.block_train(i, &xs, ctx)?;
    }
    let loss = summed_nll(&llama.head_train(&xs, &positions, ctx)?, &labels)?;
    let value = loss.to_scalar::<f32>()? as f64;
    let store = (loss * scale)?.backward()?;
    collect(&store)?;
    let mut g = store
        .get(top.as_tensor())
        .cloned()
        .ok_or_else(|| candle_core::Error::Msg("no gradient reached the kept blocks".into()))?;
    drop(store);

    // Backward through the checkpointed blocks, one at a time from the top.
    for i in (0..recompute).rev() {
        let (input, rng) = &inputs[i];
        let x = candle_core::Var::from_tensor(input)?;
        ctx.set_rng_state(*rng);
        let out = llama.block_train(i, x.as_tensor(), ctx)?;
        let store = (out * &g)?.sum_all()?.backward()?;
        collect(&store)?;
        g = store
            .get(x.as_tensor())
            .cloned()
            .ok_or_else(|| candle_core::Error::Msg(format!("no gradient reached block {i}")))?;
    }
    Ok((value, grads))
}

/// Mean validation loss per scored token (no dropout, no gradients kept).
pub fn validation_loss(model: &Model, examples: &[Example], loss_on_prompt: bool) -> Result<f64> {
    let ctx = TrainCtx::eval();
    let (mut sum, mut n) = (0f64, 0usize);
    for e in examples {
        let (loss, k) = sequence_loss(model, e, loss_on_prompt, &ctx)?;
        sum += loss.to_scalar::<f32>()? as f64;
        n += k;
    }
    Ok(if n == 0 { f64::NAN } else { sum / n as f64 })
}

/// A run in progress: the model with trainable LoRA matrices and the optimizer.
pub struct Trainer {
    pub model: Model,
    pub params: LoraParams,
    pub optim: AdamW,
    pub config: TrainConfig,
    pub out: PathBuf,
}

impl Trainer {
    /// Attaches fresh LoRA matrices to `model` (which must carry no adapter).
    pub fn new(mut model: Model, config: TrainConfig, out: &Path) -> Result<Self> {
        config.validate()?;
        let params = LoraParams::attach(&mut model.llama, config.adapter_config(), config.seed)?;
        if let Some(dir) = &config.init_adapter {
            params.init_from(&opensoc_model::Adapter::load(dir)?)?;
        }
        let optim = AdamW::new(&params.vars, config.weight_decay)?;
        Ok(Trainer {
            model,
            params,
            optim,
            config,
            out: out.to_path_buf(),
        })
    }

    fn checkpoint_dir(&self) -> PathBuf {
        self.out.join(CHECKPOINT_DIR)
    }

    /// Writes parameters, optimizer moments and counters; atomically (temp dir + rename).
    fn save_checkpoint(&self, state: &State) -> Result<()> {
        let dir = self.checkpoint_dir();
        let tmp = self.out.join(format!("{CHECKPOINT_DIR}.tmp"));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(io_err(&tmp))?;
        }
        std::fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
        let mut tensors = std::collections::HashMap::new();
        for (i, v) in self.params.vars.iter().enumerate() {
            let name = self.params.var_name(i);
            tensors.insert(format!("param.{name}"), v.as_tensor().clone());
            tensors.insert(format!("m.{name}"), self.optim.m[i].clone());
            tensors.insert(format!("v.{name}"), self.optim.v[i].clone());
        }
        candle_core::safetensors::save(&tensors, tmp.join(TENSORS_FILE))?;
        let json = serde_json::to_string_pretty(state).map_err(|e| TrainError::Checkpoint {
            path: tmp.clone(),
            reason: e.to_string(),
        })?;
        std::fs::write(tmp.join(STATE_FILE), json).map_err(io_err(&tmp))?;
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
        }
        std::fs::rename(&tmp, &dir).map_err(io_err(&dir))?;
        Ok(())
    }

    fn load_checkpoint(&mut self) -> Result<State> {
        let dir = self.checkpoint_dir();
        let bad = |reason: String| TrainError::Checkpoint {
            path: dir.clone(),
            reason,
        };
        let text = std::fs::read_to_string(dir.join(STATE_FILE)).map_err(io_err(&dir))?;
        let state: State = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let mut mine = self.config.clone();
        let mut theirs = state.config.clone();
        // Where to stop and how often to save may change between invocations.
        mine.max_steps = None;
        theirs.max_steps = None;
        mine.save_every = 0;
        theirs.save_every = 0;
        mine.activation_memory_mb = None;
        theirs.activation_memory_mb = None;
        if mine != theirs {
            return Err(bad(format!(
                "it was made with different options: {theirs:?}"
            )));
        }
        let tensors = candle_core::safetensors::load(dir.join(TENSORS_FILE), &Device::Cpu)?;
        let get = |k: String| {
            tensors
                .get(&k)
                .cloned()
                .ok_or_else(|| bad(format!("{k} is missing")))
        };
        let mut values = Vec::new();
        for i in 0..self.params.vars.len() {
            let name = self.params.var_name(i);
            values.push(get(format!("param.{name}"))?);
            let dev = self.params.vars[i].device();
            self.optim.m[i] = get(format!("m.{name}"))?.to_device(dev)?;
            self.optim.v[i] = get(format!("v.{name}"))?.to_device(dev)?;
        }
        self.params.set(&values)?;
        self.optim.step = state.step;
        Ok(state)
    }

    /// Runs (or, with `resume`, continues) training. `on_event` sees progress.
    pub fn run(
        &mut self,
        data: &Prepared,
        resume: bool,
        mut on_event: impl FnMut(&Event),
    ) -> Result<Summary> {
        let cfg = self.config.clone();
        let eff = cfg.effective_batch();
        let n = data.train.len();
        let steps_per_epoch = n.div_ceil(eff);
        let total_steps = steps_per_epoch * cfg.epochs;
        let schedule = Schedule {
            peak: cfg.lr,
            warmup: ((total_steps as f64 * cfg.warmup_ratio).ceil() as usize).max(1),
            total: total_steps,
        };
        std::fs::create_dir_all(&self.out).map_err(io_err(&self.out))?;
        let mut state = if resume {
            self.load_checkpoint()?
        } else {
            State {
                config: cfg.clone(),
                step: 0,
                best_val_loss: None,
                last_val_loss: None,
                train_tokens: 0,
                seconds: 0.0,
            }
        };
        let log_path = self.out.join(LOG_FILE);
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io_err(&log_path))?;
        let mut write_log = |v: serde_json::Value| -> Result<()> {
            writeln!(log, "{v}").map_err(io_err(&log_path))
        };
        on_event(&Event::Prepared {
            train: n,
            valid: data.valid.len(),
            skipped: data.skipped.len(),
            shortened: data
                .train
                .iter()
                .chain(&data.valid)
                .filter(|e| e.cut_tokens > 0)
                .count(),
            total_steps,
            trainable: self.params.num_params(),
            start_step: state.step,
        });
        let started = Instant::now();
        let start_step = state.step;
        let seconds_before = state.seconds;
        let tokens_before = state.train_tokens;
        let mut finished = state.step >= total_steps;
        let mut epoch_loss = (0f64, 0usize);
        while state.step < total_steps {
            if STOP.load(Ordering::SeqCst) || cfg.max_steps.is_some_and(|m| state.step >= m) {
                break;
            }
            let epoch = state.step / steps_per_epoch;
            let in_epoch = state.step % steps_per_epoch;
            // The order of an epoch depends only on the seed and the epoch: resumable.
            let order = data::shuffled(n, cfg.seed.wrapping_add(1000 + epoch as u64));
            let batch: Vec<&Example> = order[in_epoch * eff..((in_epoch + 1) * eff).min(n)]
                .iter()
                .map(|&i| &data.train[i])
                .collect();
            let scored: usize = batch
                .iter()
                .map(|e| e.loss_tokens(cfg.loss_on_prompt))
                .sum();
            let mut grads: Option<Vec<Tensor>> = None;
            let mut loss_sum = 0f64;
            for (k, example) in batch.iter().enumerate() {
                let ctx = TrainCtx::new(
                    cfg.dropout as f32,
                    cfg.seed ^ ((state.step as u64) << 20) ^ k as u64,
                );
                // Token-weighted mean over the whole optimizer step.
                let (loss, these) = sequence_grads(
                    &self.model,
                    &self.params,
                    example,
                    cfg.loss_on_prompt,
                    1.0 / scored.max(1) as f64,
                    recomputed_blocks(
                        self.model.llama.config(),
                        example.tokens.len(),
                        cfg.activation_memory_mb,
                    ),
                    &ctx,
                )?;
                loss_sum += loss;
                grads = Some(match grads {
                    None => these,
                    Some(acc) => acc
                        .iter()
                        .zip(&these)
                        .map(|(a, b)| a + b)
                        .collect::<candle_core::Result<_>>()?,
                });
                state.train_tokens += example.tokens.len();
            }
            let Some(mut grads) = grads else { break };
            let grad_norm = clip_grad_norm(&mut grads, cfg.max_grad_norm)?;
            let lr = schedule.lr(state.step);
            self.optim.update(&self.params.vars, &grads, lr)?;
            state.step += 1;
            let loss = loss_sum / scored.max(1) as f64;
            epoch_loss.0 += loss_sum;
            epoch_loss.1 += scored;
            let elapsed = started.elapsed().as_secs_f64();
            state.seconds = seconds_before + elapsed;
            let tokens_per_s = (state.train_tokens - tokens_before) as f64 / elapsed.max(1e-9);
            let done_here = (state.step - start_step).max(1) as f64;
            let eta_s = elapsed / done_here * (total_steps - state.step) as f64;
            write_log(serde_json::json!({
                "type": "step", "step": state.step, "epoch": epoch, "loss": loss, "lr": lr,
                "grad_norm": grad_norm, "tokens": state.train_tokens,
                "tokens_per_s": tokens_per_s, "seconds": state.seconds,
            }))?;
            on_event(&Event::Step {
                step: state.step,
                total_steps,
                epoch,
                loss,
                lr,
                grad_norm,
                tokens_per_s,
                eta_s,
            });
            let epoch_done = state.step % steps_per_epoch == 0;
            if epoch_done {
                let val_loss = if data.valid.is_empty() {
                    None
                } else {
                    Some(validation_loss(
                        &self.model,
                        &data.valid,
                        cfg.loss_on_prompt,
                    )?)
                };
                let train_loss = epoch_loss.0 / epoch_loss.1.max(1) as f64;
                epoch_loss = (0.0, 0);
                let best = match (val_loss, state.best_val_loss) {
                    (Some(v), Some(b)) => v < b,
                    (Some(_), None) => true,
                    (None, _) => false,
                };
                if best {
                    state.best_val_loss = val_loss;
                    self.params.save(&self.out.join(BEST_DIR), cfg.save_dtype)?;
                }
                state.last_val_loss = val_loss;
                write_log(serde_json::json!({
                    "type": "epoch", "epoch": epoch, "step": state.step,
                    "train_loss": train_loss, "val_loss": val_loss, "best": best,
                    "seconds": seconds_before + started.elapsed().as_secs_f64(),
                }))?;
                on_event(&Event::Epoch {
                    epoch,
                    train_loss,
                    val_loss,
                    best,
                });
            }
            if epoch_done || (cfg.save_every > 0 && state.step % cfg.save_every == 0) {
                self.save_checkpoint(&state)?;
            }
        }
        if state.step >= total_steps {
            finished = true;
        }
        state.seconds = seconds_before + started.elapsed().as_secs_f64();
        self.save_checkpoint(&state)?;
        self.params.save(&self.out.join(LAST_DIR), cfg.save_dtype)?;
        if finished {
            // The output directory itself holds the adapter to use: the best by
            // validation loss, or the last one without a validation split.
            let chosen = if state.best_val_loss.is_some() {
                BEST_DIR
            } else {
                LAST_DIR
            };
            for f in [
                opensoc_model::adapter::ADAPTER_CONFIG_FILE,
                opensoc_model::adapter::ADAPTER_WEIGHTS_FILE,
            ] {
                let from = self.out.join(chosen).join(f);
                std::fs::copy(&from, self.out.join(f)).map_err(io_err(&from))?;
            }
        }
        Ok(Summary {
            steps: state.step,
            total_steps,
            finished,
            best_val_loss: state.best_val_loss,
            last_val_loss: state.last_val_loss,
            train_tokens: state.train_tokens,
            seconds: state.seconds,
            skipped: data.skipped.clone(),
        })
    }
}
