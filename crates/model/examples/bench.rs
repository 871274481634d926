//! Prefill and decode speed of a GGUF model, in every in-memory weight format, measured
//! in one run so the ratios are comparable on a noisy machine.
//!
//! `cargo run --release -p opensoc-model --example bench -- [MODEL.gguf] [REPEATS]`
//! (default: the default model, 5 repeats). Prints median [min-max] tokens/s.

use std::time::Instant;

use candle_core::{Device, Tensor};
use opensoc_model::{fetch, LoadOptions, Model, ModelSource, WeightFormat};

fn median_min_max(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn prefill(model: &Model, n: usize) -> f64 {
    let tokens: Vec<u32> = (0..n as u32).map(|i| 200 + (i * 7919) % 40000).collect();
    let input = Tensor::new(tokens.as_slice(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let mut cache = model.llama.new_cache();
    let t = Instant::now();
    model.llama.forward(&input, &mut cache, false).unwrap();
    n as f64 / t.elapsed().as_secs_f64()
}

fn decode(model: &Model, n: usize) -> f64 {
    let mut cache = model.llama.new_cache();
    let first = Tensor::new(&[1u32, 2, 3, 4][..], &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let mut logits = model.llama.forward(&first, &mut cache, false).unwrap();
    let t = Instant::now();
    for _ in 0..n {
        let next = logits
            .squeeze(0)
            .unwrap()
            .argmax(0)
            .unwrap()
            .to_scalar::<u32>()
            .unwrap();
        let step = Tensor::new(&[next], &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        logits = model.llama.forward(&step, &mut cache, false).unwrap();
    }
    n as f64 / t.elapsed().as_secs_f64()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| fetch::ensure_default_model().expect("default model"));
    let repeats: usize = args.next().and_then(|r| r.parse().ok()).unwrap_or(5);
    println!(
        "model {} | threads {} | repeats {repeats}",
        path.display(),
        candle_core::utils::get_num_threads()
    );
    println!("| weights | prefill 128 tok/s | prefill 512 tok/s | decode 128 tok/s | load s |");
    println!("|---|---|---|---|---|");
    for format in [
        WeightFormat::AsStored,
        WeightFormat::Q8_0,
        WeightFormat::F32,
    ] {
        let t = Instant::now();
        let model = Model::load(
            &ModelSource::Gguf(path.clone()),
            LoadOptions {
                weight_format: format,
            },
        )
        .unwrap();
        let load = t.elapsed().as_secs_f64();
        prefill(&model, 16); // warm-up
        let mut cells = Vec::new();
        for run in [
            &|m: &Model| prefill(m, 128),
            &|m: &Model| prefill(m, 512),
            &|m: &Model| decode(m, 128),
        ] as [&dyn Fn(&Model) -> f64; 3]
        {
            let (med, lo, hi) = median_min_max((0..repeats).map(|_| run(&model)).collect());
            cells.push(format!("{med:.0} [{lo:.0}-{hi:.0}]"));
        }
        println!("| {format:?} | {} | {load:.1} |", cells.join(" | "));
    }
}
