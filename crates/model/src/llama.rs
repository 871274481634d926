//! The one Llama implementation: RMSNorm, rotary embeddings with the model's theta,
//! grouped-query attention, SwiGLU, tied or untied output. Every projection is a
//! [`Linear`] that can carry a LoRA update.

use candle_core::{DType, Device, Tensor};

use crate::config::LlamaConfig;
use crate::error::{ModelError, Result};
use crate::layers::{
    causal_mask, causal_softmax_train, softmax_last_dim, Kernels, Linear, RmsNorm, Rotary,
    TrainCtx, DENSE_MIN_ROWS,
};
use crate::weights::Weights;

/// The seven projections of a block, by their Hugging Face / PEFT module names.
pub const PROJECTIONS: [&str; 7] = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];

#[derive(Debug, Clone)]
struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    num_heads: usize,
    num_kv_heads: usize,
    head_dim: usize,
}

impl Attention {
    fn load(w: &mut Weights, cfg: &LlamaConfig, prefix: &str) -> Result<Self> {
        let (h, hd) = (cfg.hidden_size, cfg.head_dim);
        let q_out = cfg.num_heads * hd;
        let kv_out = cfg.num_kv_heads * hd;
        // GGUF stores q and k for interleaved rotary; the loader restores the HF order.
        let gguf = w.gguf().is_some();
        let rot = |heads| gguf.then_some((heads, hd));
        Ok(Attention {
            q_proj: w.linear(
                &format!("{prefix}.q_proj.weight"),
                (q_out, h),
                rot(cfg.num_heads),
            )?,
            k_proj: w.linear(
                &format!("{prefix}.k_proj.weight"),
                (kv_out, h),
                rot(cfg.num_kv_heads),
            )?,
            v_proj: w.linear(&format!("{prefix}.v_proj.weight"), (kv_out, h), None)?,
            o_proj: w.linear(&format!("{prefix}.o_proj.weight"), (h, q_out), None)?,
            num_heads: cfg.num_heads,
            num_kv_heads: cfg.num_kv_heads,
            head_dim: hd,
        })
    }

    /// Rotary embedding, cache append and attention of one sequence's projected `q`, `k`,
    /// `v` (`[b, t, heads * head_dim]`) at position `offset`; returns `[b, t, heads *
    /// head_dim]`, before `o_proj`.
    fn attend(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        rotary: &Rotary,
        offset: usize,
        cache: &mut Option<(Tensor, Tensor)>,
    ) -> Result<Tensor> {
        let (b, t, _) = q.dims3()?;
        let heads = |x: &Tensor, n: usize| -> Result<Tensor> {
            Ok(x.reshape((b, t, n, self.head_dim))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        let q = rotary.apply(&heads(q, self.num_heads)?, offset)?;
        let k = rotary.apply(&heads(k, self.num_kv_heads)?, offset)?;
        let v = heads(v, self.num_kv_heads)?;
        let (k, v) = match cache.take() {
            Some((pk, pv)) => (Tensor::cat(&[&pk, &k], 2)?, Tensor::cat(&[&pv, &v], 2)?),
            None => (k, v),
        };
        *cache = Some((k.clone(), v.clone()));
        let total = k.dim(2)?;
        // The query heads that share a key-value head are consecutive: stacking their
        // rows gives one product per key-value head, and K and V are never copied.
        let (kv_heads, rep) = (self.num_kv_heads, self.num_heads / self.num_kv_heads);
        let q = q.reshape((b, kv_heads, rep * t, self.head_dim))?;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let mut att = (q.matmul(&k.t()?)? * scale)?;
        if t > 1 {
            att = att
                .reshape((b, kv_heads, rep, t, total))?
                .broadcast_add(&causal_mask(t, total, q.device())?)?
                .reshape((b, kv_heads, rep * t, total))?;
        }
        let att = softmax_last_dim(&att)?;
        let ys = att
            .matmul(&v)?
            .reshape((b, self.num_heads, t, self.head_dim))?;
        Ok(ys
            .transpose(1, 2)?
            .reshape((b, t, self.num_heads * self.head_dim))?)
    }
}

impl Attention {
    /// Differentiable forward pass over a whole sequence from position 0 (no cache).
    fn forward_train(&self, xs: &Tensor, rotary: &Rotary, ctx: &TrainCtx) -> Result<Tensor> {
        let (b, t, _) = xs.dims3()?;
        let heads = |x: Tensor, n: usize| -> Result<Tensor> {
            Ok(x.reshape((b, t, n, self.head_dim))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        let q = heads(self.q_proj.forward_train(xs, ctx)?, self.num_heads)?;
        let k = heads(self.k_proj.forward_train(xs, ctx)?, self.num_kv_heads)?;
        let v = heads(self.v_proj.forward_train(xs, ctx)?, self.num_kv_heads)?;
        let q = rotary.apply_train(&q, 0)?;
        let k = rotary.apply_train(&k, 0)?;
        let rep = self.num_heads / self.num_kv_heads;
        let k = repeat_kv(&k, rep)?;
        let v = repeat_kv(&v, rep)?;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let att = causal_softmax_train(&q.matmul(&k.t()?)?, scale)?;
        let ys = att.matmul(&v.contiguous()?)?;
        let ys = ys
            .transpose(1, 2)?
            .reshape((b, t, self.num_heads * self.head_dim))?;
        self.o_proj.forward_train(&ys, ctx)
    }
}

fn repeat_kv(x: &Tensor, rep: usize) -> Result<Tensor> {
    if rep == 1 {
        return Ok(x.clone());
    }
    let (b, n, t, d) = x.dims4()?;
    Ok(x.unsqueeze(2)?
        .expand((b, n, rep, t, d))?
        .reshape((b, n * rep, t, d))?)
}

#[derive(Debug, Clone)]
struct Mlp {
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
}

impl Mlp {
    fn load(w: &mut Weights, cfg: &LlamaConfig, prefix: &str) -> Result<Self> {
        let (h, f) = (cfg.hidden_size, cfg.intermediate_size);
        Ok(Mlp {
            gate_proj: w.linear(&format!("{prefix}.gate_proj.weight"), (f, h), None)?,
            up_proj: w.linear(&format!("{prefix}.up_proj.weight"), (f, h), None)?,
            down_proj: w.linear(&format!("{prefix}.down_proj.weight"), (h, f), None)?,
        })
    }

    fn forward(&self, xs: &Tensor, kernels: Kernels) -> Result<Tensor> {
        let gate = candle_nn::ops::silu(&self.gate_proj.forward_with(xs, kernels)?)?;
        self.down_proj
            .forward_with(&(gate * self.up_proj.forward_with(xs, kernels)?)?, kernels)
    }
}

impl Mlp {
    fn forward_train(&self, xs: &Tensor, ctx: &TrainCtx) -> Result<Tensor> {
        let gate = self.gate_proj.forward_train(xs, ctx)?.silu()?;
        self.down_proj
            .forward_train(&(gate * self.up_proj.forward_train(xs, ctx)?)?, ctx)
    }
}

#[derive(Debug, Clone)]
struct Block {
    input_layernorm: RmsNorm,
    self_attn: Attention,
    post_attention_layernorm: RmsNorm,
    mlp: Mlp,
}

impl Block {
    fn load(w: &mut Weights, cfg: &LlamaConfig, i: usize) -> Result<Self> {
        let p = format!("model.layers.{i}");
        let h = cfg.hidden_size;
        Ok(Block {
            input_layernorm: RmsNorm::new(
                w.dense(&format!("{p}.input_layernorm.weight"), &[h])?,
                cfg.rms_norm_eps,
            ),
            self_attn: Attention::load(w, cfg, &format!("{p}.self_attn"))?,
            post_attention_layernorm: RmsNorm::new(
                w.dense(&format!("{p}.post_attention_layernorm.weight"), &[h])?,
                cfg.rms_norm_eps,
            ),
            mlp: Mlp::load(w, cfg, &format!("{p}.mlp"))?,
        })
    }
}

/// One sequence's part of [`Llama::forward_batch`]: its new tokens and its cache.
pub struct BatchItem<'a> {
    pub tokens: &'a [u32],
    pub cache: &'a mut KvCache,
    /// Logits of every new position, not only of the last.
    pub all_positions: bool,
}

/// Key-value cache of one sequence. Cloning is cheap (tensors are shared), which is how
/// the cache of a shared prompt prefix is reused for many entries.
#[derive(Debug, Clone)]
pub struct KvCache {
    layers: Vec<Option<(Tensor, Tensor)>>,
    len: usize,
}

impl KvCache {
    /// Number of positions already processed.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[derive(Debug, Clone)]
pub struct Llama {
    embed_tokens: Tensor,
    layers: Vec<Block>,
    norm: RmsNorm,
    lm_head: Linear,
    rotary: Rotary,
    config: LlamaConfig,
}

impl Llama {
    pub(crate) fn load(w: &mut Weights, config: LlamaConfig) -> Result<Self> {
        let (v, h) = (config.vocab_size, config.hidden_size);
        let embed_tokens = w.dense("model.embed_tokens.weight", &[v, h])?;
        let layers = (0..config.num_layers)
            .map(|i| Block::load(w, &config, i))
            .collect::<Result<Vec<_>>>()?;
        let norm = RmsNorm::new(w.dense("model.norm.weight", &[h])?, config.rms_norm_eps);
        let mut lm_head = if config.tie_word_embeddings {
            match w.gguf() {
                // Keep the tied head in the file's (quantized) format: much faster matvec.
                Some(_) => w.linear("model.embed_tokens.weight", (v, h), None)?,
                None => Linear::from_dense(embed_tokens.clone())?,
            }
        } else {
            w.linear("lm_head.weight", (v, h), None)?
        };
        // Inference runs the head on one position per step: a dense copy would only
        // cost memory (the largest matrix).
        lm_head.set_dense_copy(None)?;
        // Rotary tables beyond a few thousand positions only cost memory here.
        let max_len = config.max_position_embeddings.clamp(1, 8192);
        let rotary = Rotary::new(config.head_dim, config.rope_theta, max_len, &Device::Cpu)?;
        Ok(Llama {
            embed_tokens,
            layers,
            norm,
            lm_head,
            rotary,
            config,
        })
    }

    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }

    /// Longest sequence the model can process (prompt plus generated tokens).
    pub fn max_len(&self) -> usize {
        self.rotary.max_len()
    }

    pub fn new_cache(&self) -> KvCache {
        KvCache {
            layers: vec![None; self.layers.len()],
            len: 0,
        }
    }

    /// Runs `tokens` (`[1, seq]`) after what `cache` holds. Returns logits of the last
    /// position (`[1, vocab]`), or of every position (`[1, seq, vocab]`) when
    /// `all_positions`; the head is the largest matmul, so skip it where unneeded.
    /// Several sequences at once: [`Llama::forward_batch`].
    pub fn forward(
        &self,
        tokens: &Tensor,
        cache: &mut KvCache,
        all_positions: bool,
    ) -> Result<Tensor> {
        let (b, t) = tokens.dims2()?;
        if b != 1 {
            return Err(ModelError::InvalidInput(format!(
                "forward takes one sequence, got a batch of {b}; use forward_batch"
            )));
        }
        let tokens = tokens.flatten_all()?.to_vec1::<u32>()?;
        let logits = self.forward_one(&tokens, cache, all_positions, Kernels::ByRows)?;
        if all_positions {
            Ok(logits.reshape((1, t, ()))?)
        } else {
            Ok(logits.unsqueeze(0)?)
        }
    }

    /// One sequence's new `tokens` as a batch of one ([`Llama::forward_batch`]): logits
    /// `[vocab]` of the last position, or `[t, vocab]` with `all_positions`.
    pub fn forward_one(
        &self,
        tokens: &[u32],
        cache: &mut KvCache,
        all_positions: bool,
        kernels: Kernels,
    ) -> Result<Tensor> {
        let mut items = [BatchItem {
            tokens,
            cache,
            all_positions,
        }];
        self.forward_batch(&mut items, kernels)?
            .pop()
            .ok_or_else(|| ModelError::InvalidInput("empty batch".into()))
    }

    /// Runs several sequences, each after what its own cache holds, in one pass: the
    /// projections and the MLP see the new tokens of all sequences as one matrix, so each
    /// weight is read once per pass rather than once per sequence (many one-token decode
    /// steps become one matrix product); rotary positions and attention are per sequence.
    /// Returns per item the logits of its last position (`[vocab]`), or of every new
    /// position (`[t, vocab]`) when it asks for `all_positions`. `kernels` chooses between
    /// the quantized weights and their f32 copies where a layer holds both.
    pub fn forward_batch(
        &self,
        items: &mut [BatchItem<'_>],
        kernels: Kernels,
    ) -> Result<Vec<Tensor>> {
        // With the dense weights, the items of few new tokens (decode steps) go first, so
        // that their rows form one block for the few-rows product; the order is stable and
        // the outputs are put back in the items' order.
        let mut order: Vec<usize> = (0..items.len()).collect();
        let few_tokens = |t: usize| t < DENSE_MIN_ROWS;
        if kernels == Kernels::Dense {
            order.sort_by_key(|&i| !few_tokens(items[i].tokens.len()));
        }
        let mut spans = Vec::with_capacity(items.len());
        let mut tokens = Vec::new();
        let (mut few_rows, mut few_head_rows) = (0, 0);
        for &i in &order {
            let item = &items[i];
            let (offset, t) = (item.cache.len, item.tokens.len());
            if t == 0 {
                return Err(ModelError::InvalidInput(
                    "a batch item has no tokens".into(),
                ));
            }
            if item.cache.layers.len() != self.layers.len() {
                return Err(ModelError::InvalidInput(
                    "a batch item's cache belongs to another model".into(),
                ));
            }
            if offset + t > self.max_len() {
                return Err(ModelError::ContextOverflow {
                    tokens: offset + t,
                    max: self.max_len(),
                });
            }
            spans.push((tokens.len(), t));
            tokens.extend_from_slice(item.tokens);
            if few_tokens(t) {
                few_rows += t;
                few_head_rows += if item.all_positions { t } else { 1 };
            }
        }
        let (kernels, head_kernels) = match kernels {
            Kernels::Dense => (Kernels::Split(few_rows), Kernels::Split(few_head_rows)),
            other => (other, other),
        };
        let n = tokens.len();
        let ids = Tensor::from_vec(tokens, n, &Device::Cpu)?;
        let mut xs =
            self.embed_tokens
                .index_select(&ids, 0)?
                .reshape((1, n, self.config.hidden_size))?;
        for (li, block) in self.layers.iter().enumerate() {
            let h = block.input_layernorm.forward(&xs)?;
            let attn = &block.self_attn;
            let q = attn.q_proj.forward_with(&h, kernels)?;
            let k = attn.k_proj.forward_with(&h, kernels)?;
            let v = attn.v_proj.forward_with(&h, kernels)?;
            let mut outs = Vec::with_capacity(items.len());
            for (&i, &(start, t)) in order.iter().zip(&spans) {
                let item = &mut items[i];
                let rows = |x: &Tensor| x.narrow(1, start, t);
                outs.push(attn.attend(
                    &rows(&q)?,
                    &rows(&k)?,
                    &rows(&v)?,
                    &self.rotary,
                    item.cache.len,
                    &mut item.cache.layers[li],
                )?);
            }
            let ys = if outs.len() == 1 {
                outs.swap_remove(0)
            } else {
                Tensor::cat(&outs, 1)?
            };
            let h = (attn.o_proj.forward_with(&ys, kernels)? + &xs)?;
            let m = block
                .mlp
                .forward(&block.post_attention_layernorm.forward(&h)?, kernels)?;
            xs = (m + h)?;
        }
        for (&i, &(_, t)) in order.iter().zip(&spans) {
            items[i].cache.len += t;
        }
        // The head only on the rows whose logits are wanted.
        let mut picked = Vec::new();
        for (&i, &(start, t)) in order.iter().zip(&spans) {
            let item = &items[i];
            let first = if item.all_positions {
                start
            } else {
                start + t - 1
            };
            picked.extend((first..start + t).map(|r| r as u32));
        }
        let rows = picked.len();
        let picked = Tensor::from_vec(picked, rows, &Device::Cpu)?;
        let hidden = xs.squeeze(0)?.index_select(&picked, 0)?.unsqueeze(0)?;
        let logits = self
            .lm_head
            .forward_with(&self.norm.forward(&hidden)?, head_kernels)?
            .squeeze(0)?;
        let mut out = vec![None; items.len()];
        let mut row = 0;
        for (&i, &(_, t)) in order.iter().zip(&spans) {
            if items[i].all_positions {
                out[i] = Some(logits.narrow(0, row, t)?);
                row += t;
            } else {
                out[i] = Some(logits.get(row)?);
                row += 1;
            }
        }
        Ok(out.into_iter().flatten().collect())
    }

    /// Training forward pass: differentiable with respect to LoRA `Var`s, base weights
    /// frozen, whole sequences from position 0 (no cache, no padding). Returns logits
    /// (`[n, vocab]`) only at the flat positions `positions` of the `[batch * seq]`
    /// tokens: the head is the largest matmul, and a loss on the response needs no
    /// logits for the prompt.
    pub fn forward_train(
        &self,
        tokens: &Tensor,
        positions: &Tensor,
        ctx: &TrainCtx,
    ) -> Result<Tensor> {
        let mut xs = self.embed_train(tokens)?;
        for i in 0..self.layers.len() {
            xs = self.block_train(i, &xs, ctx)?;
        }
        self.head_train(&xs, positions, ctx)
    }

    /// The first piece of [`Llama::forward_train`]: `[batch, seq]` tokens to hidden states.
    /// The pieces exist so a trainer can keep only block inputs and recompute each
    /// block during the backward pass (activation checkpointing).
    pub fn embed_train(&self, tokens: &Tensor) -> Result<Tensor> {
        let (b, t) = tokens.dims2()?;
        if t > self.max_len() {
            return Err(ModelError::ContextOverflow {
                tokens: t,
                max: self.max_len(),
            });
        }
        Ok(self
            .embed_tokens
            .index_select(&tokens.flatten_all()?, 0)?
            .reshape((b, t, self.config.hidden_size))?)
    }

    /// Transformer block `i` of the training pass.
    pub fn block_train(&self, i: usize, xs: &Tensor, ctx: &TrainCtx) -> Result<Tensor> {
        let block = &self.layers[i];
        let a = block.self_attn.forward_train(
            &block.input_layernorm.forward_train(xs)?,
            &self.rotary,
            ctx,
        )?;
        let hs = (a + xs)?;
        let m = block
            .mlp
            .forward_train(&block.post_attention_layernorm.forward_train(&hs)?, ctx)?;
        Ok((m + hs)?)
    }

    /// Final norm and output head at the flat positions `positions`.
    pub fn head_train(&self, xs: &Tensor, positions: &Tensor, ctx: &TrainCtx) -> Result<Tensor> {
        let (b, t, h) = xs.dims3()?;
        let picked = xs.reshape((b * t, h))?.index_select(positions, 0)?;
        self.lm_head
            .forward_train(&self.norm.forward_train(&picked)?, ctx)
    }

    /// Where the weights are.
    pub fn device(&self) -> &Device {
        self.embed_tokens.device()
    }

    /// The model on `device`, every weight as a dense f32 tensor, for training there (a
    /// GPU); inference keeps the CPU model and its quantized and few-rows kernels.
    pub fn to_device(&self, device: &Device) -> Result<Llama> {
        let mut moved = self.clone();
        for block in &mut moved.layers {
            block.input_layernorm = block.input_layernorm.to_device(device)?;
            block.post_attention_layernorm = block.post_attention_layernorm.to_device(device)?;
        }
        for (_, _, linear) in moved.projections_mut() {
            *linear = linear.to_device(device)?;
        }
        moved.embed_tokens = self.embed_tokens.to_device(device)?;
        moved.norm = self.norm.to_device(device)?;
        moved.lm_head = self.lm_head.to_device(device)?;
        moved.rotary = self.rotary.to_device(device)?;
        Ok(moved)
    }

    /// Every projection, by `(layer, module name)`.
    pub fn projections(&self) -> impl Iterator<Item = (usize, &'static str, &Linear)> {
        self.layers.iter().enumerate().flat_map(|(i, b)| {
            let (a, m) = (&b.self_attn, &b.mlp);
            [
                ("q_proj", &a.q_proj),
                ("k_proj", &a.k_proj),
                ("v_proj", &a.v_proj),
                ("o_proj", &a.o_proj),
                ("gate_proj", &m.gate_proj),
                ("up_proj", &m.up_proj),
                ("down_proj", &m.down_proj),
            ]
            .into_iter()
            .map(move |(n, l)| (i, n, l))
        })
    }

    /// Mutable access to every projection, by `(layer, module name)`, for adapters.
    pub fn projections_mut(&mut self) -> impl Iterator<Item = (usize, &'static str, &mut Linear)> {
        self.layers.iter_mut().enumerate().flat_map(|(i, b)| {
            let Block {
                self_attn: a,
                mlp: m,
                ..
            } = b;
            [
                ("q_proj", &mut a.q_proj),
                ("k_proj", &mut a.k_proj),
                ("v_proj", &mut a.v_proj),
                ("o_proj", &mut a.o_proj),
                ("gate_proj", &mut m.gate_proj),
                ("up_proj", &mut m.up_proj),
                ("down_proj", &mut m.down_proj),
            ]
            .into_iter()
            .map(move |(n, l)| (i, n, l))
        })
    }

    /// Frees the quantized copies of projections that also hold an f32 copy (mixed
    /// weights), for callers that run every pass with [`Kernels::Dense`]; the output
    /// head keeps its quantized weight. About 65 MB less for the default model.
    pub fn drop_quantized_copies(&mut self) {
        for (_, _, linear) in self.projections_mut() {
            linear.drop_quantized();
        }
    }

    /// Logits in f32 as a flat vector (tests, evaluation).
    pub fn logits_vec(logits: &Tensor) -> Result<Vec<f32>> {
        Ok(logits
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?)
    }
}
