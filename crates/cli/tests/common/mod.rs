//! A tiny random Llama model written by the tests themselves as a GGUF file: it loads in
//! milliseconds and analyses fast, so tests of the pipeline around the model (intake,
//! signals, output) do not need the real model. Its answers are noise, but valid noise:
//! the grammar still decides every structured field.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};

const HIDDEN: usize = 32;
const INTER: usize = 64;
const LAYERS: usize = 1;
const HEADS: usize = 2;
const KV_HEADS: usize = 1;

/// GPT-2's byte-to-character map: a byte-level vocabulary needs no merges.
fn byte_symbols() -> Vec<char> {
    let printable = |b: u32| (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || b >= 0xae;
    let mut extra = 0;
    (0..256u32)
        .map(|b| {
            if printable(b) {
                char::from_u32(b).unwrap_or('?')
            } else {
                extra += 1;
                char::from_u32(255 + extra).unwrap_or('?')
            }
        })
        .collect()
}

/// Writes the model to `dir/tiny.gguf` and returns its path.
pub fn tiny_model(dir: &Path) -> PathBuf {
    let path = dir.join("tiny.gguf");
    let mut tokens: Vec<Value> = byte_symbols()
        .into_iter()
        .map(|c| Value::String(c.to_string()))
        .collect();
    tokens.push(Value::String("<|im_start|>".into()));
    tokens.push(Value::String("<|im_end|>".into()));
    let vocab = tokens.len();
    let mut types = vec![Value::I32(1); 256];
    types.extend([Value::I32(3), Value::I32(3)]);

    let mut state = 0x5eed_u64;
    let mut random = |shape: &[usize], scale: f32| -> QTensor {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 2.0 * scale
            })
            .collect();
        let t = Tensor::from_vec(data, shape, &Device::Cpu).expect("tensor");
        QTensor::quantize(&t, GgmlDType::F32).expect("tensor")
    };
    let hd = HIDDEN / HEADS;
    let mut tensors: Vec<(String, QTensor)> = vec![
        ("token_embd.weight".into(), random(&[vocab, HIDDEN], 1.0)),
        ("output_norm.weight".into(), random(&[HIDDEN], 0.1)),
    ];
    for l in 0..LAYERS {
        let p = |n: &str| format!("blk.{l}.{n}.weight");
        tensors.push((p("attn_q"), random(&[HEADS * hd, HIDDEN], 0.2)));
        tensors.push((p("attn_k"), random(&[KV_HEADS * hd, HIDDEN], 0.2)));
        tensors.push((p("attn_v"), random(&[KV_HEADS * hd, HIDDEN], 0.2)));
        tensors.push((p("attn_output"), random(&[HIDDEN, HEADS * hd], 0.2)));
        tensors.push((p("ffn_gate"), random(&[INTER, HIDDEN], 0.2)));
        tensors.push((p("ffn_up"), random(&[INTER, HIDDEN], 0.2)));
        tensors.push((p("ffn_down"), random(&[HIDDEN, INTER], 0.2)));
        tensors.push((p("attn_norm"), random(&[HIDDEN], 0.1)));
        tensors.push((p("ffn_norm"), random(&[HIDDEN], 0.1)));
    }
    let u = |n: usize| Value::U32(n as u32);
    let metadata: Vec<(&str, Value)> = vec![
        ("general.architecture", Value::String("llama".into())),
        ("llama.block_count", u(LAYERS)),
        ("llama.embedding_length", u(HIDDEN)),
        ("llama.feed_forward_length", u(INTER)),
        ("llama.attention.head_count", u(HEADS)),
        ("llama.attention.head_count_kv", u(KV_HEADS)),
        ("llama.rope.dimension_count", u(hd)),
        ("llama.rope.freq_base", Value::F32(10000.0)),
        ("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5)),
        ("llama.context_length", u(8192)),
        ("tokenizer.ggml.model", Value::String("gpt2".into())),
        ("tokenizer.ggml.pre", Value::String("default".into())),
        ("tokenizer.ggml.tokens", Value::Array(tokens)),
        ("tokenizer.ggml.token_type", Value::Array(types)),
        ("tokenizer.ggml.merges", Value::Array(vec![])),
        ("tokenizer.ggml.eos_token_id", u(257)),
        ("tokenizer.ggml.add_bos_token", Value::Bool(false)),
    ];
    let md: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (*k, v)).collect();
    let ts: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut f = std::fs::File::create(&path).expect("create model");
    gguf_file::write(&mut f, &md, &ts).expect("write model");
    path
}

pub fn opensoc() -> Command {
    Command::new(env!("CARGO_BIN_EXE_opensoc"))
}

/// `opensoc analyze` with the tiny model and fast settings, plus `args`.
pub fn analyze_tiny(model: &Path, args: &[&str]) -> Command {
    let mut cmd = opensoc();
    cmd.arg("analyze")
        .arg("--model")
        .arg(model)
        .args([
            "--weights",
            "as-stored",
            "--no-narrative",
            "--max-new-tokens",
            "48",
            "--max-input-tokens",
            "256",
        ])
        .args(args);
    // Tests never write the user's verdict cache; those that test it give their own.
    if !args.contains(&"--cache") {
        cmd.arg("--no-cache");
    }
    cmd
}

pub fn run_with_stdin(mut cmd: Command, stdin: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn opensoc");
    let mut pipe = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        let _ = pipe.write_all(&data);
    });
    let out = child.wait_with_output().expect("wait");
    writer.join().expect("writer");
    out
}

pub fn verdicts(stdout: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("invalid JSON line {l:?}: {e}")))
        .collect()
}

/// Lines of a child's pipe, collected by a thread as they come.
#[derive(Clone, Default)]
pub struct Lines(pub Arc<Mutex<Vec<String>>>);

impl Lines {
    pub fn collect(pipe: impl Read + Send + 'static) -> Lines {
        let lines = Lines::default();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if let Ok(mut v) = sink.0.lock() {
                    v.push(line);
                }
            }
        });
        lines
    }

    pub fn snapshot(&self) -> Vec<String> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

/// Sends SIGTERM to a child (through `kill`, to keep the tests free of `libc`).
pub fn terminate(child: &Child) {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .expect("kill");
    assert!(status.success());
}

/// The number after `key ` in the counters line (`received 5000`).
pub fn counter(line: &str, key: &str) -> u64 {
    let at = line
        .find(&format!("{key} "))
        .unwrap_or_else(|| panic!("no {key:?} in {line}"));
    line[at + key.len() + 1..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("no number after {key:?} in {line}"))
}

/// The number in the parentheses after `key`: the events of `analysed 12 entries (30 events)`.
pub fn events_of(line: &str, key: &str) -> u64 {
    let at = line
        .find(&format!("{key} "))
        .unwrap_or_else(|| panic!("no {key:?} in {line}"));
    let rest = &line[at..];
    let open = rest
        .find('(')
        .unwrap_or_else(|| panic!("no events after {key:?}"));
    rest[open + 1..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("no events after {key:?} in {line}"))
}
