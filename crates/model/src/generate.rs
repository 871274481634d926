//! Text generation: prefill, then one token at a time with the key-value cache.

use candle_core::{Device, Tensor};

use crate::error::{ModelError, Result};
use crate::layers::{argmax, softmax_last_dim};
use crate::llama::KvCache;
use crate::Model;

#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub max_new_tokens: usize,
    /// 0 means greedy decoding.
    pub temperature: f64,
    /// Nucleus sampling threshold, used when `temperature > 0`.
    pub top_p: f64,
    pub seed: u64,
    /// Generation ends before the first occurrence of any of these strings.
    pub stop: Vec<String>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            max_new_tokens: 256,
            temperature: 0.0,
            top_p: 1.0,
            seed: 0,
            stop: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// The model wrote an end-of-sequence token.
    Eos,
    /// A stop string appeared.
    Stop,
    /// `max_new_tokens` or the context length was reached.
    Length,
}

#[derive(Debug, Clone)]
pub struct Generation {
    /// Decoded text, cut before any stop string.
    pub text: String,
    pub tokens: Vec<u32>,
    pub prompt_tokens: usize,
    pub finish: Finish,
}

/// The key-value cache of a prompt prefix shared by many prompts, computed once.
#[derive(Debug, Clone)]
pub struct PrefixCache {
    tokens: Vec<u32>,
    cache: KvCache,
}

impl PrefixCache {
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// A cache to continue `prompt` from, and the tokens still to run: the prefix's
    /// cache when `prompt` starts with it, else an empty one.
    pub fn resume<'p>(&self, model: &Model, prompt: &'p [u32]) -> (KvCache, &'p [u32]) {
        if prompt.len() > self.tokens.len() && prompt.starts_with(&self.tokens) {
            (self.cache.clone(), &prompt[self.tokens.len()..])
        } else {
            (model.llama.new_cache(), prompt)
        }
    }
}

/// SplitMix64: a small, seedable generator; sampling needs nothing stronger.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn sample(logits: &Tensor, opts: &GenerateOptions, rng: &mut SplitMix64) -> Result<u32> {
    if opts.temperature <= 0.0 {
        return argmax(logits);
    }
    let probs: Vec<f32> = softmax_last_dim(&(logits / opts.temperature)?)?.to_vec1()?;
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_unstable_by(|&a, &b| probs[b].total_cmp(&probs[a]));
    let mut kept = Vec::new();
    let mut mass = 0.0f64;
    for i in order {
        kept.push(i);
        mass += probs[i] as f64;
        if mass >= opts.top_p {
            break;
        }
    }
    let mut target = rng.next_f64() * mass;
    for &i in &kept {
        target -= probs[i] as f64;
        if target <= 0.0 {
            return Ok(i as u32);
        }
    }
    Ok(kept.last().copied().unwrap_or(0) as u32)
}

impl Model {
    /// Runs a prefix once; [`Model::generate`] reuses it for prompts that start with it.
    pub fn prefill_prefix(&self, tokens: &[u32]) -> Result<PrefixCache> {
        let mut cache = self.llama.new_cache();
        if !tokens.is_empty() {
            let input = Tensor::new(tokens, &Device::Cpu)?.unsqueeze(0)?;
            self.llama.forward(&input, &mut cache, false)?;
        }
        Ok(PrefixCache {
            tokens: tokens.to_vec(),
            cache,
        })
    }

    /// Generates a continuation of `prompt`.
    pub fn generate(
        &self,
        prompt: &[u32],
        opts: &GenerateOptions,
        prefix: Option<&PrefixCache>,
    ) -> Result<Generation> {
        if prompt.is_empty() {
            return Err(ModelError::Tokenizer("empty prompt".into()));
        }
        let room = self.llama.max_len().saturating_sub(prompt.len());
        if room == 0 {
            return Err(ModelError::Tokenizer(format!(
                "prompt of {} tokens leaves no room in the model's {} positions",
                prompt.len(),
                self.llama.max_len()
            )));
        }
        let (mut cache, rest) = match prefix {
            Some(p) => p.resume(self, prompt),
            None => (self.llama.new_cache(), prompt),
        };
        let input = Tensor::new(rest, &Device::Cpu)?.unsqueeze(0)?;
        let mut logits = self.llama.forward(&input, &mut cache, false)?.squeeze(0)?;

        let mut rng = SplitMix64(opts.seed);
        let mut tokens = Vec::new();
        let mut finish = Finish::Length;
        let mut text = String::new();
        let limit = opts.max_new_tokens.min(room);
        while tokens.len() < limit {
            let next = sample(&logits, opts, &mut rng)?;
            if self.tokenizer.eos_ids().contains(&next) {
                finish = Finish::Eos;
                break;
            }
            tokens.push(next);
            if !opts.stop.is_empty() {
                text = self.tokenizer.decode(&tokens)?;
                if let Some(cut) = opts.stop.iter().filter_map(|s| text.find(s.as_str())).min() {
                    text.truncate(cut);
                    finish = Finish::Stop;
                    break;
                }
            }
            if tokens.len() == limit {
                break;
            }
            let input = Tensor::new(&[next], &Device::Cpu)?.unsqueeze(0)?;
            logits = self.llama.forward(&input, &mut cache, false)?.squeeze(0)?;
        }
        if finish != Finish::Stop {
            text = self.tokenizer.decode(&tokens)?;
        }
        Ok(Generation {
            text,
            tokens,
            prompt_tokens: prompt.len(),
            finish,
        })
    }
}
