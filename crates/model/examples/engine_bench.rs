//! Prefill and decode speed of a GGUF model, in every in-memory weight format, measured
//! in one run so the ratios are comparable on a noisy machine.
//!
//! `cargo run --release -p opensoc-model --example engine_bench -- [MODEL.gguf] [REPEATS]`
//! (default: the default model, 5 repeats). Prints median [min-max] tokens/s per
//! wall-clock second, and per CPU-second of the process (from `/proc/self/stat`): on a
//! shared machine the wall-clock figure measures the neighbours as much as the engine.
//! Run with `RAYON_NUM_THREADS=1` for a per-CPU-second figure free of the thread pool's
//! busy-waiting.

use std::time::Instant;

use candle_core::{Device, Tensor};
use opensoc_model::{fetch, LoadOptions, Model, ModelSource, WeightFormat};

fn median_min_max(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

/// CPU seconds (user + system) this process has used so far, where Linux tells.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Runs `f` (which returns a token count) and gives (tokens per wall second, per CPU second).
fn measure(f: impl Fn() -> usize) -> (f64, f64) {
    let cpu = cpu_seconds();
    let t = Instant::now();
    let n = f() as f64;
    let wall = t.elapsed().as_secs_f64();
    let cpu = cpu.zip(cpu_seconds()).map_or(f64::NAN, |(a, b)| b - a);
    (n / wall, n / cpu)
}

fn prefill(model: &Model, n: usize) -> usize {
    let tokens: Vec<u32> = (0..n as u32).map(|i| 200 + (i * 7919) % 40000).collect();
    let input = Tensor::new(tokens.as_slice(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let mut cache = model.llama.new_cache();
    model.llama.forward(&input, &mut cache, false).unwrap();
    n
}

fn decode(model: &Model, n: usize) -> usize {
    let mut cache = model.llama.new_cache();
    let first = Tensor::new(&[1u32, 2, 3, 4][..], &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let mut logits = model.llama.forward(&first, &mut cache, false).unwrap();
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
    n
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
    println!(
        "tokens/s: median [min-max] per wall-clock second; median per CPU-second in parentheses"
    );
    println!("| weights | prefill 128 | prefill 512 | decode 128 | load s |");
    println!("|---|---|---|---|---|");
    for format in [
        WeightFormat::AsStored,
        WeightFormat::Q8_0,
        WeightFormat::F32,
        WeightFormat::Mixed,
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
        ] as [&dyn Fn(&Model) -> usize; 3]
        {
            let (wall, cpu): (Vec<f64>, Vec<f64>) =
                (0..repeats).map(|_| measure(|| run(&model))).unzip();
            let (med, lo, hi) = median_min_max(wall);
            let (cpu_med, _, _) = median_min_max(cpu);
            cells.push(format!("{med:.0} [{lo:.0}-{hi:.0}] ({cpu_med:.0})"));
        }
        println!("| {format:?} | {} | {load:.1} |", cells.join(" | "));
    }
}
