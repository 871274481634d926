//! Training on tiny random models written by the tests: gradients, loss, save/load,
//! resume, and the never-truncated response.

#[path = "../../model/tests/common/mod.rs"]
mod common;

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use common::*;
use opensoc_model::layers::TrainCtx;
use opensoc_model::{LoadOptions, Model, ModelSource};
use opensoc_train::data::{self, Example, Record};
use opensoc_train::optim::AdamW;
use opensoc_train::{
    block_activation_bytes, recomputed_blocks, sequence_grads, sequence_loss, TrainConfig, Trainer,
};

fn tiny(dir: &Path, spec: Spec) -> Model {
    let d = dir.join("base");
    write_hf_dir(&d, spec, &random_weights(spec, 11), DType::F32, 1);
    Model::load(&ModelSource::HfDir(d), LoadOptions::default()).unwrap()
}

fn record(i: usize) -> Record {
    Record {
        instruction: String::new(),
        input: format!("10.0.0.{i} GET /x?id={i} 403"),
        output: format!("THREAT_TYPE: T{}\nSEVERITY: LOW", i % 3),
    }
}

fn config() -> TrainConfig {
    TrainConfig {
        rank: 4,
        alpha: 8.0,
        dropout: 0.0,
        epochs: 2,
        lr: 1e-2,
        batch_size: 2,
        max_len: 400,
        val_fraction: 0.25,
        save_every: 0,
        base_name: "tiny".into(),
        save_dtype: DType::F32,
        ..TrainConfig::default()
    }
}

/// Random non-zero `B` so every gradient is non-zero from the first step (PEFT's zero
/// `B` gives `A` a zero gradient at initialisation, by design).
fn randomize_b(trainer: &Trainer) {
    for v in trainer.params.vars.iter().skip(1).step_by(2) {
        let b = (Tensor::randn(0f32, 1.0, v.shape(), &Device::Cpu).unwrap() * 0.1).unwrap();
        v.set(&b).unwrap();
    }
}

fn example(model: &Model, i: usize) -> Example {
    data::encode(
        &model.tokenizer,
        &record(i),
        opensoc_verdict::prompt::INSTRUCTION,
        400,
    )
    .unwrap()
}

#[test]
fn training_forward_matches_inference_forward() {
    for spec in [SPEC_GQA_TIED, SPEC_MHA_UNTIED] {
        let dir = tempfile::tempdir().unwrap();
        let trainer = Trainer::new(tiny(dir.path(), spec), config(), dir.path()).unwrap();
        randomize_b(&trainer);
        let e = example(&trainer.model, 1);
        let tokens = Tensor::new(e.tokens.as_slice(), &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let mut cache = trainer.model.llama.new_cache();
        let reference = trainer
            .model
            .llama
            .forward(&tokens, &mut cache, true)
            .unwrap();
        let positions: Vec<u32> = (0..e.tokens.len() as u32).collect();
        let positions = Tensor::new(positions.as_slice(), &Device::Cpu).unwrap();
        let train = trainer
            .model
            .llama
            .forward_train(&tokens, &positions, &TrainCtx::eval())
            .unwrap();
        let a: Vec<f32> = reference.flatten_all().unwrap().to_vec1().unwrap();
        let b: Vec<f32> = train.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(a.len(), b.len());
        let diff = max_abs_diff(&a, &b);
        assert!(
            diff < 1e-4,
            "{spec:?}: training and inference logits differ by {diff}"
        );
    }
}

#[test]
fn every_lora_variable_gets_a_nonzero_gradient() {
    let dir = tempfile::tempdir().unwrap();
    let trainer = Trainer::new(tiny(dir.path(), SPEC_GQA_TIED), config(), dir.path()).unwrap();
    randomize_b(&trainer);
    let e = example(&trainer.model, 2);
    let (loss, _) = sequence_loss(&trainer.model, &e, false, &TrainCtx::eval()).unwrap();
    let grads = loss.backward().unwrap();
    assert_eq!(trainer.params.vars.len(), 2 * 2 * 7);
    for (i, v) in trainer.params.vars.iter().enumerate() {
        let g = grads
            .get(v.as_tensor())
            .unwrap_or_else(|| panic!("{} has no gradient", trainer.params.var_name(i)));
        let norm = g
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(
            norm > 0.0,
            "{} has a zero gradient",
            trainer.params.var_name(i)
        );
    }
}

#[test]
fn checkpointed_gradients_equal_plain_ones() {
    for spec in [SPEC_GQA_TIED, SPEC_MHA_UNTIED] {
        let dir = tempfile::tempdir().unwrap();
        let trainer = Trainer::new(tiny(dir.path(), spec), config(), dir.path()).unwrap();
        randomize_b(&trainer);
        let e = example(&trainer.model, 3);
        // Dropout on: the recomputed blocks must replay the first pass's masks.
        let run = |recompute: usize| {
            let ctx = TrainCtx::new(0.3, 7);
            sequence_grads(
                &trainer.model,
                &trainer.params,
                &e,
                false,
                0.5,
                recompute,
                &ctx,
            )
            .unwrap()
        };
        let layers = trainer.model.llama.config().num_layers;
        assert!(layers >= 2, "the test needs a kept and a recomputed block");
        let (plain_loss, plain) = run(0);
        // Every block recomputed, and only the lowest one.
        for recompute in [layers, 1] {
            let (ckpt_loss, ckpt) = run(recompute);
            assert!((plain_loss - ckpt_loss).abs() < 1e-5 * plain_loss.abs().max(1.0));
            assert_eq!(plain.len(), trainer.params.vars.len());
            for (i, (p, c)) in plain.iter().zip(&ckpt).enumerate() {
                let p: Vec<f32> = p.flatten_all().unwrap().to_vec1().unwrap();
                let c: Vec<f32> = c.flatten_all().unwrap().to_vec1().unwrap();
                let scale = p.iter().fold(0f32, |m, x| m.max(x.abs()));
                assert!(
                    scale > 0.0,
                    "{} has a zero gradient",
                    trainer.params.var_name(i)
                );
                let diff = max_abs_diff(&p, &c);
                assert!(
                    diff <= 1e-5 * scale,
                    "{spec:?}, {recompute} recomputed: {} differs by {diff} (scale {scale})",
                    trainer.params.var_name(i)
                );
            }
        }
    }
}

/// The memory budget decides how many blocks are recomputed: none without a budget or
/// for a short sequence, all for a zero budget, more for a longer sequence.
#[test]
fn activation_budget_picks_the_recomputed_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny(dir.path(), SPEC_GQA_TIED);
    let cfg = model.llama.config();
    let layers = cfg.num_layers;
    assert_eq!(recomputed_blocks(cfg, 512, None), 0);
    assert_eq!(recomputed_blocks(cfg, 512, Some(0)), layers);
    assert_eq!(recomputed_blocks(cfg, 8, Some(1)), 0);
    assert_eq!(recomputed_blocks(cfg, 512, Some(u64::MAX)), 0);
    // A budget for exactly one block at 512 tokens keeps one block.
    let one = block_activation_bytes(cfg, 512).div_ceil(1024 * 1024);
    assert_eq!(recomputed_blocks(cfg, 512, Some(one)), layers - 1);
    assert!(recomputed_blocks(cfg, 4096, Some(one)) == layers);
    assert!(block_activation_bytes(cfg, 1024) > 2 * block_activation_bytes(cfg, 512));
}

#[test]
fn lora_gradients_match_finite_differences() {
    let dir = tempfile::tempdir().unwrap();
    let trainer = Trainer::new(tiny(dir.path(), SPEC_MHA_UNTIED), config(), dir.path()).unwrap();
    randomize_b(&trainer);
    let e = example(&trainer.model, 0);
    let ctx = TrainCtx::eval();
    let loss_of = || {
        let (l, _) = sequence_loss(&trainer.model, &e, false, &ctx).unwrap();
        l.to_scalar::<f32>().unwrap() as f64
    };
    let (loss, _) = sequence_loss(&trainer.model, &e, false, &ctx).unwrap();
    let grads = loss.backward().unwrap();
    let mut checked = 0;
    // A and B of the first and last projections of different layers.
    for vi in [0, 1, 12, 13, 40, 41] {
        let var = &trainer.params.vars[vi];
        let g: Vec<f32> = grads
            .get(var.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let base: Vec<f32> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        // The element with the largest gradient, so the difference is well above noise.
        let (j, _) = g
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
            .unwrap();
        let h = 1e-2f32;
        let at = |delta: f32| {
            let mut w = base.clone();
            w[j] += delta;
            var.set(&Tensor::from_vec(w, var.shape(), &Device::Cpu).unwrap())
                .unwrap();
            loss_of()
        };
        let numeric = (at(h) - at(-h)) / (2.0 * h as f64);
        var.set(&Tensor::from_vec(base.clone(), var.shape(), &Device::Cpu).unwrap())
            .unwrap();
        let analytic = g[j] as f64;
        let rel = (numeric - analytic).abs() / analytic.abs().max(1e-3);
        assert!(
            rel < 0.02,
            "{}[{j}]: analytic {analytic} vs numeric {numeric}",
            trainer.params.var_name(vi)
        );
        checked += 1;
    }
    assert_eq!(checked, 6);
}

#[test]
fn loss_falls_on_a_fixed_batch() {
    let dir = tempfile::tempdir().unwrap();
    let trainer = Trainer::new(tiny(dir.path(), SPEC_GQA_TIED), config(), dir.path()).unwrap();
    let batch = [example(&trainer.model, 0), example(&trainer.model, 1)];
    let mut opt = AdamW::new(&trainer.params.vars, 0.0).unwrap();
    let ctx = TrainCtx::eval();
    let mut losses = Vec::new();
    for _ in 0..15 {
        let mut total = 0.0;
        let mut acc: Option<Vec<Tensor>> = None;
        for e in &batch {
            let (loss, n) = sequence_loss(&trainer.model, e, false, &ctx).unwrap();
            let loss = (loss / n as f64).unwrap();
            total += loss.to_scalar::<f32>().unwrap();
            let g = loss.backward().unwrap();
            let these: Vec<Tensor> = trainer
                .params
                .vars
                .iter()
                .map(|v| g.get(v.as_tensor()).unwrap().clone())
                .collect();
            acc = Some(match acc {
                None => these,
                Some(a) => a
                    .iter()
                    .zip(&these)
                    .map(|(x, y)| (x + y).unwrap())
                    .collect(),
            });
        }
        opt.update(&trainer.params.vars, &acc.unwrap(), 2e-2)
            .unwrap();
        losses.push(total / 2.0);
    }
    let (first, last) = (losses[0], losses[losses.len() - 1]);
    assert!(
        last < 0.5 * first,
        "loss went {first} -> {last}: {losses:?}"
    );
}

fn records(n: usize) -> Vec<Record> {
    (0..n).map(record).collect()
}

fn train_run(dir: &Path, cfg: TrainConfig, resume: bool) -> opensoc_train::Summary {
    let model = tiny(dir, SPEC_GQA_TIED);
    let recs = records(10);
    let prepared =
        opensoc_train::prepare(&model, &recs, vec![], Path::new("t.json"), &cfg).unwrap();
    let mut trainer = Trainer::new(model, cfg, &dir.join("out")).unwrap();
    trainer.run(&prepared, resume, |_| {}).unwrap()
}

fn adapter_bytes(dir: &Path) -> Vec<u8> {
    std::fs::read(
        dir.join("out")
            .join(opensoc_model::adapter::ADAPTER_WEIGHTS_FILE),
    )
    .unwrap()
}

#[test]
fn resume_continues_the_schedule_exactly() {
    let mut cfg = config();
    cfg.dropout = 0.1; // dropout masks must also replay exactly
    let straight = tempfile::tempdir().unwrap();
    let s = train_run(straight.path(), cfg.clone(), false);
    assert!(s.finished);
    assert_eq!(s.steps, 8); // 8 training examples, batch 2, 2 epochs

    let broken = tempfile::tempdir().unwrap();
    let mut first = cfg.clone();
    first.max_steps = Some(3);
    let s1 = train_run(broken.path(), first, false);
    assert!(!s1.finished);
    assert_eq!(s1.steps, 3);
    assert!(broken.path().join("out/checkpoint/state.json").is_file());
    let s2 = train_run(broken.path(), cfg, true);
    assert!(s2.finished);
    assert_eq!(s2.steps, 8);
    assert_eq!(s2.best_val_loss, s.best_val_loss);
    assert_eq!(adapter_bytes(broken.path()), adapter_bytes(straight.path()));

    // The log has a line per step across both invocations.
    let log = std::fs::read_to_string(broken.path().join("out/train_log.jsonl")).unwrap();
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("\"step\"") && l.contains("\"type\":\"step\""))
            .count(),
        8
    );
}

#[test]
fn saved_adapter_loads_with_identical_logits_and_peft_layout() {
    let dir = tempfile::tempdir().unwrap();
    train_run(dir.path(), config(), false);
    let out = dir.path().join("out");
    // Trained model: reload the saved f32 adapter into the trainer's own graph.
    let mut fresh = tiny(dir.path(), SPEC_GQA_TIED);
    fresh.apply_adapter(&out, false).unwrap();
    let mut trained = tiny(dir.path(), SPEC_GQA_TIED);
    let cfg = config();
    let trainer_model = {
        let t = Trainer::new(trained.clone(), cfg, &dir.path().join("unused")).unwrap();
        let tensors =
            candle_core::safetensors::load(out.join("adapter_model.safetensors"), &Device::Cpu)
                .unwrap();
        let values: Vec<Tensor> = (0..t.params.vars.len())
            .map(|i| tensors[&t.params.var_name(i)].clone())
            .collect();
        t.params.set(&values).unwrap();
        t.model
    };
    trained = trainer_model;
    let e = example(&fresh, 3);
    let tokens = Tensor::new(e.tokens.as_slice(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let run = |m: &Model| -> Vec<f32> {
        let mut c = m.llama.new_cache();
        m.llama
            .forward(&tokens, &mut c, true)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    };
    let base = run(&tiny(dir.path(), SPEC_GQA_TIED));
    let (a, b) = (run(&fresh), run(&trained));
    assert_eq!(a, b, "loaded adapter gives different logits");
    assert!(
        max_abs_diff(&a, &base) > 1e-3,
        "the adapter changed nothing"
    );

    // PEFT's format: config fields and key names / shapes as in a real PEFT adapter.
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("adapter_config.json")).unwrap())
            .unwrap();
    assert_eq!(cfg["r"], 4);
    assert_eq!(cfg["lora_alpha"], 8.0);
    assert_eq!(cfg["task_type"], "CAUSAL_LM");
    assert_eq!(cfg["bias"], "none");
    assert_eq!(cfg["peft_type"], "LORA");
    assert_eq!(cfg["base_model_name_or_path"], "tiny");
    assert_eq!(cfg["target_modules"].as_array().unwrap().len(), 7);
    let tensors =
        candle_core::safetensors::load(out.join("adapter_model.safetensors"), &Device::Cpu)
            .unwrap();
    assert_eq!(tensors.len(), 2 * 7 * SPEC_GQA_TIED.layers);
    let q_a = &tensors["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"];
    assert_eq!(q_a.dims(), [4, SPEC_GQA_TIED.hidden]);
    let d_b = &tensors["base_model.model.model.layers.1.mlp.down_proj.lora_B.weight"];
    assert_eq!(d_b.dims(), [SPEC_GQA_TIED.hidden, 4]);
}

#[test]
fn long_input_is_cut_in_the_middle_and_the_response_never() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny(dir.path(), SPEC_GQA_TIED);
    let tok = &model.tokenizer;
    let rec = Record {
        instruction: String::new(),
        input: (0..200)
            .map(|i| format!("line {i} failed login\n"))
            .collect(),
        output: "THREAT_TYPE: Brute Force\nSEVERITY: HIGH".into(),
    };
    let e = data::encode(tok, &rec, opensoc_verdict::prompt::INSTRUCTION, 300).unwrap();
    assert!(e.tokens.len() <= 300);
    assert!(e.cut_tokens > 0);
    let mut response = tok.encode(&rec.output, false).unwrap();
    response.push(tok.eos_ids()[0]);
    assert_eq!(&e.tokens[e.prompt_len..], response.as_slice());
    let prompt = tok.decode(&e.tokens[..e.prompt_len]).unwrap();
    assert!(prompt.contains("line 0 failed"), "{prompt}");
    assert!(prompt.contains("line 199 failed"), "{prompt}");
    assert!(prompt.contains(&format!("[... {} tokens cut ...]", e.cut_tokens)));
    assert!(prompt.ends_with("### Response:\n"));
    // Loss positions score exactly the response and the end of sequence.
    let (pos, labels) = e.targets(false);
    assert_eq!(labels, response);
    assert_eq!(pos[0] as usize, e.prompt_len - 1);

    // A response that cannot fit is refused, never cut.
    let long = Record {
        output: "x".repeat(400),
        ..rec
    };
    assert!(data::encode(tok, &long, opensoc_verdict::prompt::INSTRUCTION, 300).is_err());
}

#[test]
fn second_stage_starts_from_the_adapter_and_scores_only_the_fields() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = TrainConfig {
        epochs: 1,
        ..config()
    };
    train_run(dir.path(), cfg.clone(), false);
    let first = dir.path().join("out");
    let saved = opensoc_model::Adapter::load(&first).unwrap();

    let stage2 = TrainConfig {
        init_adapter: Some(first.clone()),
        fields_only: true,
        ..cfg
    };
    let model = tiny(dir.path(), SPEC_GQA_TIED);
    let trainer = Trainer::new(model, stage2.clone(), &dir.path().join("out2")).unwrap();
    for (i, v) in trainer.params.vars.iter().enumerate() {
        let (a, b) = &saved.weights[&trainer.params.keys[i / 2]];
        let expected = if i % 2 == 0 { a } else { b };
        let diff = (v.as_tensor() - expected)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert_eq!(diff, 0.0, "{}", trainer.params.var_name(i));
    }

    // The response stops after the risk score's line, without an end of sequence.
    let rec = Record {
        instruction: String::new(),
        input: "GET /?id=1' OR 1=1--".into(),
        output: "THREAT_TYPE: SQLi\nRISK_SCORE: 80\nEVIDENCE: quote\nIMPACT: x".into(),
    };
    assert_eq!(
        data::fields_only(&rec).output,
        "THREAT_TYPE: SQLi\nRISK_SCORE: 80\n"
    );
    let model = &trainer.model;
    let prepared = opensoc_train::prepare(
        model,
        &[rec.clone(), rec],
        vec![],
        Path::new("t.json"),
        &stage2,
    )
    .unwrap();
    let e = &prepared.train[0];
    let response = model.tokenizer.decode(&e.tokens[e.prompt_len..]).unwrap();
    assert_eq!(response, "THREAT_TYPE: SQLi\nRISK_SCORE: 80\n");

    // A mismatched initial adapter is refused.
    let other = TrainConfig {
        rank: 2,
        init_adapter: Some(first),
        ..config()
    };
    assert!(Trainer::new(tiny(dir.path(), SPEC_GQA_TIED), other, dir.path()).is_err());
}
