//! Tiny random Llama models written by the tests themselves, in both formats.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::gguf_file::Value;
use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};

#[derive(Clone, Copy, Debug)]
pub struct Spec {
    pub hidden: usize,
    pub inter: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub tied: bool,
}

pub const SPEC_GQA_TIED: Spec = Spec {
    hidden: 64,
    inter: 96,
    layers: 2,
    heads: 4,
    kv_heads: 2,
    tied: true,
};
pub const SPEC_MHA_UNTIED: Spec = Spec {
    hidden: 64,
    inter: 128,
    layers: 3,
    heads: 4,
    kv_heads: 4,
    tied: false,
};

/// Byte-level vocabulary: the 256 byte symbols, two control tokens.
pub fn vocab() -> Vec<String> {
    let mut v: Vec<String> = bytes_to_unicode()
        .into_iter()
        .map(|c| c.to_string())
        .collect();
    v.push("<|im_start|>".into());
    v.push("<|im_end|>".into());
    v
}

/// GPT-2's reversible byte -> printable character map.
pub fn bytes_to_unicode() -> Vec<char> {
    let mut printable: Vec<u32> = (b'!' as u32..=b'~' as u32)
        .chain(0xA1..=0xAC)
        .chain(0xAE..=0xFF)
        .collect();
    let mut map = vec!['\0'; 256];
    for &b in &printable {
        map[b as usize] = char::from_u32(b).unwrap();
    }
    let mut n = 0;
    for b in 0..256u32 {
        if !printable.contains(&b) {
            map[b as usize] = char::from_u32(256 + n).unwrap();
            n += 1;
        }
    }
    printable.clear();
    map
}

/// Random weights under Hugging Face names, q/k in the HF rotary layout.
pub fn random_weights(spec: Spec, seed: u64) -> HashMap<String, Tensor> {
    let dev = Device::Cpu;
    let v = vocab().len();
    let hd = spec.hidden / spec.heads;
    let mut state = seed;
    let mut rnd = |shape: &[usize], scale: f32| -> Tensor {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (((state >> 33) as f32 / (1u64 << 31) as f32) - 0.5) * 2.0 * scale
            })
            .collect();
        Tensor::from_vec(data, shape, &dev).unwrap()
    };
    let mut w = HashMap::new();
    w.insert(
        "model.embed_tokens.weight".into(),
        rnd(&[v, spec.hidden], 1.0),
    );
    w.insert(
        "model.norm.weight".into(),
        (rnd(&[spec.hidden], 0.2) + 1.0).unwrap(),
    );
    if !spec.tied {
        w.insert("lm_head.weight".into(), rnd(&[v, spec.hidden], 0.2));
    }
    for i in 0..spec.layers {
        let p = format!("model.layers.{i}");
        let s = 0.15;
        w.insert(
            format!("{p}.self_attn.q_proj.weight"),
            rnd(&[spec.heads * hd, spec.hidden], s),
        );
        w.insert(
            format!("{p}.self_attn.k_proj.weight"),
            rnd(&[spec.kv_heads * hd, spec.hidden], s),
        );
        w.insert(
            format!("{p}.self_attn.v_proj.weight"),
            rnd(&[spec.kv_heads * hd, spec.hidden], s),
        );
        w.insert(
            format!("{p}.self_attn.o_proj.weight"),
            rnd(&[spec.hidden, spec.heads * hd], s),
        );
        w.insert(
            format!("{p}.mlp.gate_proj.weight"),
            rnd(&[spec.inter, spec.hidden], s),
        );
        w.insert(
            format!("{p}.mlp.up_proj.weight"),
            rnd(&[spec.inter, spec.hidden], s),
        );
        w.insert(
            format!("{p}.mlp.down_proj.weight"),
            rnd(&[spec.hidden, spec.inter], s),
        );
        w.insert(
            format!("{p}.input_layernorm.weight"),
            (rnd(&[spec.hidden], 0.2) + 1.0).unwrap(),
        );
        w.insert(
            format!("{p}.post_attention_layernorm.weight"),
            (rnd(&[spec.hidden], 0.2) + 1.0).unwrap(),
        );
    }
    w
}

pub fn write_hf_dir(
    dir: &Path,
    spec: Spec,
    weights: &HashMap<String, Tensor>,
    dtype: DType,
    shards: usize,
) {
    std::fs::create_dir_all(dir).unwrap();
    let config = serde_json::json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": vocab().len(),
        "hidden_size": spec.hidden,
        "intermediate_size": spec.inter,
        "num_hidden_layers": spec.layers,
        "num_attention_heads": spec.heads,
        "num_key_value_heads": spec.kv_heads,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "max_position_embeddings": 1024,
        "tie_word_embeddings": spec.tied,
        "eos_token_id": 257,
        "rope_scaling": null
    });
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_string_pretty(&config).unwrap(),
    )
    .unwrap();
    let mut names: Vec<&String> = weights.keys().collect();
    names.sort();
    let mut index = serde_json::Map::new();
    let per = names.len().div_ceil(shards);
    for (s, chunk) in names.chunks(per).enumerate() {
        let file = if shards == 1 {
            "model.safetensors".to_string()
        } else {
            format!("model-{:05}-of-{shards:05}.safetensors", s + 1)
        };
        let part: HashMap<String, Tensor> = chunk
            .iter()
            .map(|n| ((*n).clone(), weights[*n].to_dtype(dtype).unwrap()))
            .collect();
        candle_core::safetensors::save(&part, dir.join(&file)).unwrap();
        for n in chunk {
            index.insert((*n).clone(), file.clone().into());
        }
    }
    if shards > 1 {
        let idx = serde_json::json!({"metadata": {}, "weight_map": index});
        std::fs::write(dir.join("model.safetensors.index.json"), idx.to_string()).unwrap();
    }
    write_tokenizer_json(&dir.join("tokenizer.json"));
}

pub fn write_tokenizer_json(path: &Path) {
    use tokenizers::models::bpe::BPE;
    let vocab: tokenizers::models::bpe::Vocab = vocab()
        .into_iter()
        .enumerate()
        .map(|(i, t)| (t, i as u32))
        .collect();
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, vec![])
        .build()
        .unwrap();
    let mut tk = tokenizers::Tokenizer::new(bpe);
    tk.with_pre_tokenizer(Some(
        tokenizers::pre_tokenizers::byte_level::ByteLevel::new(false, true, true),
    ));
    tk.with_decoder(Some(tokenizers::decoders::byte_level::ByteLevel::default()));
    tk.add_special_tokens(&[
        tokenizers::AddedToken::from("<|im_start|>", true),
        tokenizers::AddedToken::from("<|im_end|>", true),
    ]);
    tk.save(path, false).unwrap();
}

/// llama.cpp's converter permutation of q/k rows (HF rotary layout -> interleaved).
pub fn permute_for_gguf(w: &Tensor, heads: usize) -> Tensor {
    let (rows, cols) = w.dims2().unwrap();
    let hd = rows / heads;
    w.reshape((heads, 2, hd / 2, cols))
        .unwrap()
        .transpose(1, 2)
        .unwrap()
        .reshape((rows, cols))
        .unwrap()
        .contiguous()
        .unwrap()
}

pub fn write_gguf(
    path: &Path,
    spec: Spec,
    weights: &HashMap<String, Tensor>,
    dtype: GgmlDType,
    arch: &str,
) {
    let hd = spec.hidden / spec.heads;
    let mut tensors: Vec<(String, QTensor)> = Vec::new();
    let mut names: Vec<&String> = weights.keys().collect();
    names.sort();
    for name in names {
        let mut t = weights[name].clone();
        if name.ends_with("q_proj.weight") {
            t = permute_for_gguf(&t, spec.heads);
        } else if name.ends_with("k_proj.weight") {
            t = permute_for_gguf(&t, spec.kv_heads);
        }
        let is_matrix = t.rank() == 2;
        let q = if is_matrix {
            QTensor::quantize(&t, dtype).unwrap()
        } else {
            QTensor::quantize(&t, GgmlDType::F32).unwrap()
        };
        tensors.push((gguf_name(name), q));
    }
    let tokens: Vec<Value> = vocab().into_iter().map(Value::String).collect();
    let mut types = vec![Value::I32(1); 256];
    types.extend([Value::I32(3), Value::I32(3)]);
    let md: Vec<(&str, Value)> = vec![
        ("general.architecture", Value::String(arch.into())),
        ("llama.block_count", Value::U32(spec.layers as u32)),
        ("llama.embedding_length", Value::U32(spec.hidden as u32)),
        ("llama.feed_forward_length", Value::U32(spec.inter as u32)),
        ("llama.attention.head_count", Value::U32(spec.heads as u32)),
        (
            "llama.attention.head_count_kv",
            Value::U32(spec.kv_heads as u32),
        ),
        ("llama.rope.dimension_count", Value::U32(hd as u32)),
        ("llama.rope.freq_base", Value::F32(10000.0)),
        ("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5)),
        ("llama.context_length", Value::U32(1024)),
        ("tokenizer.ggml.model", Value::String("gpt2".into())),
        ("tokenizer.ggml.pre", Value::String("default".into())),
        ("tokenizer.ggml.tokens", Value::Array(tokens)),
        ("tokenizer.ggml.token_type", Value::Array(types)),
        ("tokenizer.ggml.merges", Value::Array(vec![])),
        ("tokenizer.ggml.eos_token_id", Value::U32(257)),
        ("tokenizer.ggml.add_bos_token", Value::Bool(false)),
    ];
    let md_refs: Vec<(&str, &Value)> = md.iter().map(|(k, v)| (*k, v)).collect();
    let t_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut f = std::fs::File::create(path).unwrap();
    gguf_file::write(&mut f, &md_refs, &t_refs).unwrap();
}

fn gguf_name(hf: &str) -> String {
    let stem = hf.trim_end_matches(".weight");
    let m = match stem {
        "model.embed_tokens" => "token_embd".to_string(),
        "model.norm" => "output_norm".to_string(),
        "lm_head" => "output".to_string(),
        _ => {
            let rest = stem.strip_prefix("model.layers.").unwrap();
            let (n, module) = rest.split_once('.').unwrap();
            let short = match module {
                "self_attn.q_proj" => "attn_q",
                "self_attn.k_proj" => "attn_k",
                "self_attn.v_proj" => "attn_v",
                "self_attn.o_proj" => "attn_output",
                "mlp.gate_proj" => "ffn_gate",
                "mlp.up_proj" => "ffn_up",
                "mlp.down_proj" => "ffn_down",
                "input_layernorm" => "attn_norm",
                "post_attention_layernorm" => "ffn_norm",
                m => panic!("{m}"),
            };
            format!("blk.{n}.{short}")
        }
    };
    format!("{m}.weight")
}

/// A tiny random GQA model with tied embeddings written as an f32 GGUF at `path` and
/// loaded with its weights as stored.
pub fn tiny_gguf_model(path: &Path, seed: u64) -> opensoc_model::Model {
    use opensoc_model::{LoadOptions, Model, ModelSource, WeightFormat};
    write_gguf(
        path,
        SPEC_GQA_TIED,
        &random_weights(SPEC_GQA_TIED, seed),
        GgmlDType::F32,
        "llama",
    );
    Model::load(
        &ModelSource::Gguf(path.to_path_buf()),
        LoadOptions {
            weight_format: WeightFormat::AsStored,
        },
    )
    .unwrap()
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Largest difference relative to the largest magnitude of `b`.
pub fn rel_diff(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().map(|x| x.abs()).fold(0.0, f32::max).max(1e-6);
    max_abs_diff(a, b) / scale
}

/// Writes a PEFT-layout adapter with random A and B (or B = 0) for `modules`.
pub fn write_adapter(
    dir: &Path,
    spec: Spec,
    modules: &[&str],
    rank: usize,
    zero_b: bool,
    seed: u64,
) {
    std::fs::create_dir_all(dir).unwrap();
    let hd = spec.hidden / spec.heads;
    let w = random_weights(
        Spec {
            layers: spec.layers,
            ..spec
        },
        seed,
    );
    let _ = w;
    let mut tensors = HashMap::new();
    let mut state = seed;
    let mut rnd = |shape: (usize, usize)| -> Tensor {
        let n = shape.0 * shape.1;
        let data: Vec<f32> = (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 33) as f32 / (1u64 << 31) as f32 - 0.5) * 0.2
            })
            .collect();
        Tensor::from_vec(data, shape, &Device::Cpu).unwrap()
    };
    for layer in 0..spec.layers {
        for m in modules {
            let (out, inp) = match *m {
                "q_proj" => (spec.heads * hd, spec.hidden),
                "k_proj" | "v_proj" => (spec.kv_heads * hd, spec.hidden),
                "o_proj" => (spec.hidden, spec.heads * hd),
                "gate_proj" | "up_proj" => (spec.inter, spec.hidden),
                "down_proj" => (spec.hidden, spec.inter),
                _ => panic!(),
            };
            let group = if m.ends_with("_proj") && ["gate_proj", "up_proj", "down_proj"].contains(m)
            {
                "mlp"
            } else {
                "self_attn"
            };
            let a = rnd((rank, inp));
            let b = if zero_b {
                Tensor::zeros((out, rank), DType::F32, &Device::Cpu).unwrap()
            } else {
                rnd((out, rank))
            };
            tensors.insert(
                format!("base_model.model.model.layers.{layer}.{group}.{m}.lora_A.weight"),
                a,
            );
            tensors.insert(
                format!("base_model.model.model.layers.{layer}.{group}.{m}.lora_B.weight"),
                b,
            );
        }
    }
    candle_core::safetensors::save(&tensors, dir.join("adapter_model.safetensors")).unwrap();
    let config = serde_json::json!({
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": rank, "lora_alpha": 2 * rank,
        "lora_dropout": 0.0, "target_modules": modules, "bias": "none", "use_rslora": false,
        "base_model_name_or_path": "tiny"
    });
    std::fs::write(dir.join("adapter_config.json"), config.to_string()).unwrap();
}
