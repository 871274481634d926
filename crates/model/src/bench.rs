//! Engine speed measurements for `opensoc bench`: one timed run each, so the caller
//! chooses repeats and statistics. Token ids are fixed and spread over the vocabulary,
//! so runs are repeatable and independent of any tokenizer.

use std::time::Instant;

use candle_core::Tensor;

use crate::error::Result;
use crate::layers::{argmax, Kernels};
use crate::llama::{BatchItem, KvCache};
use crate::Model;

fn tokens(n: usize, vocab: usize, seed: u32) -> Vec<u32> {
    let span = vocab.saturating_sub(200).max(1) as u32;
    (0..n as u32)
        .map(|i| 100 + (i.wrapping_mul(7919).wrapping_add(seed * 104_729)) % span)
        .collect()
}

/// One sequence's step with kernels chosen by rows, as a plain generation loop runs it
/// (with mixed weights: f32 for the prompt, the quantized weights for one-token steps).
fn run(model: &Model, tokens: &[u32], cache: &mut KvCache) -> Result<Tensor> {
    model
        .llama
        .forward_one(tokens, cache, false, Kernels::ByRows)
}

/// Tokens per second of a prefill of `n` tokens into an empty cache.
pub fn prefill(model: &Model, n: usize) -> Result<f64> {
    let prompt = tokens(n, model.llama.config().vocab_size, 1);
    let mut cache = model.llama.new_cache();
    let started = Instant::now();
    run(model, &prompt, &mut cache)?;
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// Tokens per second of `n` greedy one-token steps after a 4-token prompt (the prompt
/// is not timed).
pub fn decode(model: &Model, n: usize) -> Result<f64> {
    let mut cache = model.llama.new_cache();
    let prompt = tokens(4, model.llama.config().vocab_size, 2);
    let mut logits = run(model, &prompt, &mut cache)?;
    let started = Instant::now();
    for _ in 0..n {
        let next = argmax(&logits)?;
        logits = run(model, &[next], &mut cache)?;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// Tokens per second, all sequences counted, of `n` greedy steps of `sequences`
/// sequences decoded together (one batched pass per step, as `opensoc analyze --batch`
/// runs them), after a 4-token prompt each.
pub fn batched_decode(model: &Model, sequences: usize, n: usize) -> Result<f64> {
    let vocab = model.llama.config().vocab_size;
    let mut caches: Vec<KvCache> = (0..sequences).map(|_| model.llama.new_cache()).collect();
    let mut next: Vec<Vec<u32>> = (0..sequences)
        .map(|s| tokens(4, vocab, 3 + s as u32))
        .collect();
    let mut step = |next: &mut Vec<Vec<u32>>| -> Result<()> {
        let mut items: Vec<BatchItem<'_>> = next
            .iter()
            .zip(caches.iter_mut())
            .map(|(tokens, cache)| BatchItem {
                tokens,
                cache,
                all_positions: false,
            })
            .collect();
        let logits = model.llama.forward_batch(&mut items, Kernels::Dense)?;
        for (slot, l) in next.iter_mut().zip(&logits) {
            *slot = vec![argmax(l)?];
        }
        Ok(())
    };
    step(&mut next)?;
    let started = Instant::now();
    for _ in 0..n {
        step(&mut next)?;
    }
    Ok((n * sequences) as f64 / started.elapsed().as_secs_f64())
}
