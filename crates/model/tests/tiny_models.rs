//! Loaders and LoRA math on tiny random models written by the tests.

mod common;

use candle_core::quantized::GgmlDType;
use candle_core::{DType, Device, Tensor};
use common::*;
use opensoc_model::{
    BatchItem, Kernels, KvCache, LoadOptions, Model, ModelError, ModelSource, WeightFormat,
};

const PROMPT: [u32; 9] = [72, 101, 108, 108, 111, 44, 32, 257, 33];

fn logits(model: &Model, tokens: &[u32]) -> Vec<f32> {
    let input = Tensor::new(tokens, &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let mut cache = model.llama.new_cache();
    let out = model.llama.forward(&input, &mut cache, true).unwrap();
    out.flatten_all().unwrap().to_vec1().unwrap()
}

fn gguf(dir: &std::path::Path, spec: Spec, dtype: GgmlDType) -> Model {
    let w = random_weights(spec, 7);
    let path = dir.join("tiny.gguf");
    write_gguf(&path, spec, &w, dtype, "llama");
    load_as(&path, WeightFormat::AsStored)
}

/// The GGUF file at `path` with its weights held in `format`.
fn load_as(path: &std::path::Path, format: WeightFormat) -> Model {
    Model::load(
        &ModelSource::Gguf(path.to_path_buf()),
        LoadOptions {
            weight_format: format,
        },
    )
    .unwrap()
}

fn hf(dir: &std::path::Path, spec: Spec, dtype: DType, shards: usize) -> Model {
    let w = random_weights(spec, 7);
    let d = dir.join(format!("hf-{dtype:?}-{shards}"));
    write_hf_dir(&d, spec, &w, dtype, shards);
    Model::load(&ModelSource::HfDir(d), LoadOptions::default()).unwrap()
}

#[test]
fn gguf_and_safetensors_agree() {
    for spec in [SPEC_GQA_TIED, SPEC_MHA_UNTIED] {
        let dir = tempfile::tempdir().unwrap();
        let a = logits(&gguf(dir.path(), spec, GgmlDType::F32), &PROMPT);
        let b = logits(&hf(dir.path(), spec, DType::F32, 1), &PROMPT);
        let diff = max_abs_diff(&a, &b);
        assert!(
            diff < 1e-4,
            "{spec:?}: f32 GGUF vs safetensors differ by {diff}"
        );
        // Sharded bf16 checkpoints load too (rounding of bf16 weights bounds the gap).
        let c = logits(&hf(dir.path(), spec, DType::BF16, 3), &PROMPT);
        let diff = rel_diff(&c, &a);
        assert!(
            diff < 0.02,
            "{spec:?}: bf16 sharded differs by {diff} (relative)"
        );
        assert!(diff > 0.0, "bf16 rounding should be visible");
    }
}

#[test]
fn gguf_matches_candle_transformers_quantized_llama() {
    // An independent implementation, with llama.cpp's interleaved rotary layout.
    let spec = SPEC_GQA_TIED;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    write_gguf(
        &path,
        spec,
        &random_weights(spec, 3),
        GgmlDType::Q8_0,
        "llama",
    );
    let ours = Model::load(
        &ModelSource::Gguf(path.clone()),
        LoadOptions {
            weight_format: WeightFormat::AsStored,
        },
    )
    .unwrap();
    let mut file = std::fs::File::open(&path).unwrap();
    let content = candle_core::quantized::gguf_file::Content::read(&mut file).unwrap();
    let mut reference = candle_transformers::models::quantized_llama::ModelWeights::from_gguf(
        content,
        &mut file,
        &Device::Cpu,
    )
    .unwrap();
    let input = Tensor::new(&PROMPT, &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let theirs: Vec<f32> = reference
        .forward(&input, 0)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let mut cache = ours.llama.new_cache();
    let mine: Vec<f32> = ours
        .llama
        .forward(&input, &mut cache, false)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let diff = max_abs_diff(&mine, &theirs);
    assert!(diff < 1e-3, "differs from quantized_llama by {diff}");
}

#[test]
fn cached_decoding_equals_full_forward() {
    let dir = tempfile::tempdir().unwrap();
    let model = hf(dir.path(), SPEC_GQA_TIED, DType::F32, 1);
    let full = logits(&model, &PROMPT);
    let vocab = model.llama.config().vocab_size;
    let mut cache = model.llama.new_cache();
    let first = Tensor::new(&PROMPT[..5], &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    model.llama.forward(&first, &mut cache, false).unwrap();
    for (i, &t) in PROMPT[5..].iter().enumerate() {
        let step = Tensor::new(&[t], &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let l: Vec<f32> = model
            .llama
            .forward(&step, &mut cache, false)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let pos = 5 + i;
        let diff = max_abs_diff(&l, &full[pos * vocab..(pos + 1) * vocab]);
        assert!(diff < 1e-4, "position {pos}: {diff}");
    }
}

/// Sequences of different lengths and cache positions in one batched pass give the
/// logits each gives alone, in every in-memory weight format (the quantized ones and the
/// mixed one take other kernels when the batch has more rows than a single sequence).
#[test]
fn batched_forward_equals_one_sequence_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let w = random_weights(SPEC_GQA_TIED, 7);
    let path = dir.path().join("tiny.gguf");
    write_gguf(&path, SPEC_GQA_TIED, &w, GgmlDType::F32, "llama");
    for format in [WeightFormat::F32, WeightFormat::Q8_0, WeightFormat::Mixed] {
        let model = load_as(&path, format);
        let llama = &model.llama;
        let run = |tokens: &[u32], cache: &mut KvCache, all: bool| -> Vec<f32> {
            let input = Tensor::new(tokens, &Device::Cpu)
                .unwrap()
                .unsqueeze(0)
                .unwrap();
            let out = llama.forward(&input, cache, all).unwrap();
            out.flatten_all().unwrap().to_vec1().unwrap()
        };
        // Three sequences: a fresh prompt, one with a 5-token history taking one step,
        // one with a 2-token history taking three tokens (all positions wanted).
        let mut alone = [llama.new_cache(), llama.new_cache(), llama.new_cache()];
        run(&PROMPT[..5], &mut alone[1], false);
        run(&PROMPT[..2], &mut alone[2], false);
        let mut batched = alone.clone();
        let steps: [(&[u32], bool); 3] = [
            (&PROMPT[..], false),
            (&PROMPT[5..6], false),
            (&PROMPT[2..5], true),
        ];
        let expected: Vec<Vec<f32>> = steps
            .iter()
            .zip(alone.iter_mut())
            .map(|(&(tokens, all), cache)| run(tokens, cache, all))
            .collect();
        let [c0, c1, c2] = &mut batched;
        let mut items = [
            BatchItem {
                tokens: steps[0].0,
                cache: c0,
                all_positions: false,
            },
            BatchItem {
                tokens: steps[1].0,
                cache: c1,
                all_positions: false,
            },
            BatchItem {
                tokens: steps[2].0,
                cache: c2,
                all_positions: true,
            },
        ];
        let got = llama.forward_batch(&mut items, Kernels::ByRows).unwrap();
        for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
            let g: Vec<f32> = g.flatten_all().unwrap().to_vec1().unwrap();
            assert_eq!(g.len(), e.len(), "{format:?} item {i}");
            let diff = max_abs_diff(&g, e);
            assert!(diff < 1e-3, "{format:?} item {i}: {diff}");
        }
        for (a, b) in alone.iter().zip(&batched) {
            assert_eq!(a.len(), b.len());
        }
        // The caches continue alike: one more step of the second sequence.
        let a = run(&PROMPT[6..7], &mut alone[1], false);
        let b = run(&PROMPT[6..7], &mut batched[1], false);
        assert!(max_abs_diff(&a, &b) < 1e-3, "{format:?}: caches differ");
        // An empty item is refused, not run.
        let mut empty = llama.new_cache();
        let mut bad = [BatchItem {
            tokens: &[],
            cache: &mut empty,
            all_positions: false,
        }];
        assert!(llama.forward_batch(&mut bad, Kernels::ByRows).is_err());
    }
}

/// With the dense weights (the batched analysis path), a sequence's logits are the same
/// bits whatever else is in the pass and wherever it sits: decode steps go through the
/// few-rows product and prompts through gemm, each row on its own.
#[test]
fn dense_batches_give_each_sequence_the_bits_it_gets_alone() {
    let dir = tempfile::tempdir().unwrap();
    let w = random_weights(SPEC_GQA_TIED, 8);
    let path = dir.path().join("tiny.gguf");
    write_gguf(&path, SPEC_GQA_TIED, &w, GgmlDType::F32, "llama");
    for format in [WeightFormat::F32, WeightFormat::Mixed] {
        let model = load_as(&path, format);
        let llama = &model.llama;
        let bits = |t: &Tensor| -> Vec<u32> {
            let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
            v.into_iter().map(f32::to_bits).collect()
        };
        // A prompt (9 tokens), a one-token step and a three-token step (all positions).
        let steps: [(&[u32], bool, usize); 3] = [
            (&PROMPT[..], false, 0),
            (&PROMPT[5..6], false, 5),
            (&PROMPT[2..5], true, 2),
        ];
        let history = |n: usize| {
            let mut cache = llama.new_cache();
            if n > 0 {
                llama
                    .forward_one(&PROMPT[..n], &mut cache, false, Kernels::Dense)
                    .unwrap();
            }
            cache
        };
        let alone: Vec<Vec<u32>> = steps
            .iter()
            .map(|&(tokens, all, n)| {
                let mut cache = history(n);
                bits(
                    &llama
                        .forward_one(tokens, &mut cache, all, Kernels::Dense)
                        .unwrap(),
                )
            })
            .collect();
        // Every order of the three in one pass.
        for order in [[0, 1, 2], [2, 0, 1], [1, 2, 0]] {
            let mut caches: Vec<KvCache> = order.iter().map(|&i| history(steps[i].2)).collect();
            let mut items: Vec<BatchItem> = order
                .iter()
                .zip(caches.iter_mut())
                .map(|(&i, cache)| BatchItem {
                    tokens: steps[i].0,
                    cache,
                    all_positions: steps[i].1,
                })
                .collect();
            let got = llama.forward_batch(&mut items, Kernels::Dense).unwrap();
            for (g, &i) in got.iter().zip(&order) {
                assert_eq!(bits(g), alone[i], "{format:?} order {order:?} item {i}");
            }
        }
    }
}

#[test]
fn lora_with_zero_b_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = hf(dir.path(), SPEC_GQA_TIED, DType::F32, 1);
    let before = logits(&model, &PROMPT);
    let adapter = dir.path().join("zero");
    write_adapter(
        &adapter,
        SPEC_GQA_TIED,
        &opensoc_model::llama::PROJECTIONS,
        4,
        true,
        11,
    );
    model.apply_adapter(&adapter, false).unwrap();
    assert_eq!(logits(&model, &PROMPT), before);
}

#[test]
fn unmerged_equals_merged_and_changes_output() {
    let spec = SPEC_MHA_UNTIED;
    let dir = tempfile::tempdir().unwrap();
    let base = hf(dir.path(), spec, DType::F32, 1);
    let adapter = dir.path().join("lora");
    write_adapter(
        &adapter,
        spec,
        &["q_proj", "k_proj", "v_proj", "down_proj"],
        4,
        false,
        5,
    );
    let mut unmerged = base.clone();
    unmerged.apply_adapter(&adapter, false).unwrap();
    let mut merged = base.clone();
    merged.apply_adapter(&adapter, true).unwrap();
    let (b, u, m) = (
        logits(&base, &PROMPT),
        logits(&unmerged, &PROMPT),
        logits(&merged, &PROMPT),
    );
    assert!(
        max_abs_diff(&b, &u) > 1e-2,
        "the adapter must change the logits"
    );
    let diff = max_abs_diff(&u, &m);
    assert!(diff < 1e-4, "unmerged vs merged: {diff}");
}

#[test]
fn lora_works_on_a_quantized_gguf_base() {
    let spec = SPEC_GQA_TIED;
    let dir = tempfile::tempdir().unwrap();
    let mut q = gguf(dir.path(), spec, GgmlDType::Q8_0);
    let mut dense = hf(dir.path(), spec, DType::F32, 1);
    let adapter = dir.path().join("lora");
    write_adapter(
        &adapter,
        spec,
        &opensoc_model::llama::PROJECTIONS,
        4,
        false,
        9,
    );
    q.apply_adapter(&adapter, false).unwrap();
    dense.apply_adapter(&adapter, false).unwrap();
    let base_gap = rel_diff(
        &logits(&gguf(dir.path(), spec, GgmlDType::Q8_0), &PROMPT),
        &logits(&hf(dir.path(), spec, DType::F32, 1), &PROMPT),
    );
    let diff = rel_diff(&logits(&q, &PROMPT), &logits(&dense, &PROMPT));
    // The adapter adds no error of its own beyond Q8_0 rounding of the base.
    assert!(
        diff < 0.03 && diff < 3.0 * base_gap + 1e-3,
        "Q8_0 + LoRA vs f32 + LoRA: {diff} (base gap {base_gap})"
    );
}

#[test]
fn mismatched_adapters_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = hf(dir.path(), SPEC_GQA_TIED, DType::F32, 1);
    // Shapes of another model.
    let other = dir.path().join("other");
    write_adapter(&other, SPEC_MHA_UNTIED, &["k_proj"], 4, false, 1);
    let err = model.apply_adapter(&other, false).unwrap_err();
    assert!(matches!(err, ModelError::Adapter { .. }), "{err}");
    assert!(
        err.to_string().contains("do not fit") || err.to_string().contains("layers"),
        "{err}"
    );
    // Unknown target module.
    let bad = dir.path().join("bad");
    write_adapter(&bad, SPEC_GQA_TIED, &["q_proj"], 4, false, 1);
    let cfg = std::fs::read_to_string(bad.join("adapter_config.json"))
        .unwrap()
        .replace("\"q_proj\"", "\"lm_head\"");
    std::fs::write(bad.join("adapter_config.json"), cfg).unwrap();
    let err = model.apply_adapter(&bad, false).unwrap_err();
    assert!(err.to_string().contains("lm_head"), "{err}");
    // The model is untouched by refused adapters.
    let fresh = hf(dir.path(), SPEC_GQA_TIED, DType::F32, 1);
    assert_eq!(logits(&model, &PROMPT), logits(&fresh, &PROMPT));
}

#[test]
fn bad_model_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let load = |p: &std::path::Path| {
        Model::load(&ModelSource::Gguf(p.to_path_buf()), LoadOptions::default())
    };

    let missing = dir.path().join("nope.gguf");
    assert!(matches!(load(&missing), Err(ModelError::Io { .. })));

    let garbage = dir.path().join("garbage.gguf");
    std::fs::write(&garbage, b"this is not a gguf file at all, just text").unwrap();
    assert!(matches!(load(&garbage), Err(ModelError::BadGguf { .. })));

    let good = dir.path().join("good.gguf");
    write_gguf(
        &good,
        SPEC_GQA_TIED,
        &random_weights(SPEC_GQA_TIED, 1),
        GgmlDType::F32,
        "llama",
    );
    let bytes = std::fs::read(&good).unwrap();
    let truncated = dir.path().join("truncated.gguf");
    std::fs::write(&truncated, &bytes[..bytes.len() * 2 / 3]).unwrap();
    assert!(
        matches!(load(&truncated), Err(ModelError::BadGguf { .. })),
        "truncated"
    );

    let gpt = dir.path().join("gpt.gguf");
    write_gguf(
        &gpt,
        SPEC_GQA_TIED,
        &random_weights(SPEC_GQA_TIED, 1),
        GgmlDType::F32,
        "gpt2",
    );
    let err = load(&gpt).err().unwrap();
    assert!(
        matches!(err, ModelError::UnsupportedArchitecture { .. }),
        "{err}"
    );

    let empty_dir = dir.path().join("empty");
    std::fs::create_dir(&empty_dir).unwrap();
    assert!(Model::load(&ModelSource::HfDir(empty_dir), LoadOptions::default()).is_err());
}

#[test]
fn tokenizers_agree_across_formats() {
    let dir = tempfile::tempdir().unwrap();
    let g = gguf(dir.path(), SPEC_GQA_TIED, GgmlDType::F32);
    let h = hf(dir.path(), SPEC_GQA_TIED, DType::F32, 1);
    let text = "<|im_start|>user héllo ../etc/passwd<|im_end|>";
    assert_eq!(
        g.tokenizer.encode(text, true).unwrap(),
        h.tokenizer.encode(text, true).unwrap()
    );
    // Special tokens in log text stay text.
    let plain = g.tokenizer.encode_prompt(text).unwrap();
    assert!(!plain.contains(&256) && !plain.contains(&257), "{plain:?}");
    assert_eq!(g.tokenizer.decode(&plain).unwrap(), text);
}

#[test]
fn model_source_parsing() {
    assert_eq!(
        "hf:TinyLlama/TinyLlama-1.1B-Chat-v1.0@main"
            .parse::<ModelSource>()
            .unwrap(),
        ModelSource::Hub {
            repo: "TinyLlama/TinyLlama-1.1B-Chat-v1.0".into(),
            revision: Some("main".into())
        }
    );
    assert!("hf:justaname".parse::<ModelSource>().is_err());
    assert!(matches!(
        "x.gguf".parse::<ModelSource>().unwrap(),
        ModelSource::Gguf(_)
    ));
}
