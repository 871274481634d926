//! The real default model (fetched on first use): tokenizer oracle, agreement with an
//! independent implementation, and the PEFT interoperability fixture.

use std::path::PathBuf;

use candle_core::{Device, Tensor};
use opensoc_model::{fetch, GenerateOptions, LoadOptions, Model, ModelSource, WeightFormat};
use serde_json::Value;

fn shared(rel: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared")).join(rel)
}

fn fixture(rel: &str) -> Value {
    let path = shared(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

fn load(format: WeightFormat) -> Model {
    let path = fetch::ensure_default_model().expect("the default model can be fetched");
    Model::load(&ModelSource::Gguf(path), LoadOptions { weight_format: format }).unwrap()
}

#[test]
fn tokenizer_reproduces_llama_cpp() {
    let model = load(WeightFormat::AsStored);
    let cases = fixture("fixtures/smollm2/tokens.json");
    let cases = cases["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 27);
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let got = model.tokenizer.encode(text, true).unwrap();
        assert_eq!(got, ids(&case["ids"]), "text {text:?}");
    }
}

#[test]
fn matches_candle_transformers_quantized_llama() {
    let path = fetch::ensure_default_model().unwrap();
    let ours = Model::load(&ModelSource::Gguf(path.clone()), LoadOptions { weight_format: WeightFormat::AsStored }).unwrap();
    let mut file = std::fs::File::open(&path).unwrap();
    let content = candle_core::quantized::gguf_file::Content::read(&mut file).unwrap();
    let mut reference =
        candle_transformers::models::quantized_llama::ModelWeights::from_gguf(content, &mut file, &Device::Cpu).unwrap();

    let prompt = ours
        .tokenizer
        .encode_prompt("### Instruction:\nAnalyze this log.\n\n### Input:\n10.0.0.5 - - \"GET /../../etc/passwd HTTP/1.1\" 404 0\n\n### Response:\n")
        .unwrap();
    let input = Tensor::new(prompt.as_slice(), &Device::Cpu).unwrap().unsqueeze(0).unwrap();
    let theirs: Vec<f32> = reference.forward(&input, 0).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    let mut cache = ours.llama.new_cache();
    let mine: Vec<f32> = ours.llama.forward(&input, &mut cache, false).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    let diff = mine.iter().zip(&theirs).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    // Same quantized kernels; only summation order in attention differs.
    assert!(diff < 1e-2, "max |logit difference| {diff}");

    // 32 greedy tokens, token for token.
    let mut expected = Vec::new();
    let mut logits = reference.forward(&input, 0).unwrap().squeeze(0).unwrap();
    let mut pos = prompt.len();
    for _ in 0..32 {
        let next = logits.argmax(0).unwrap().to_scalar::<u32>().unwrap();
        expected.push(next);
        let step = Tensor::new(&[next], &Device::Cpu).unwrap().unsqueeze(0).unwrap();
        logits = reference.forward(&step, pos).unwrap().squeeze(0).unwrap();
        pos += 1;
    }
    let opts = GenerateOptions { max_new_tokens: 32, ..Default::default() };
    let ours_gen = ours.generate(&prompt, &opts, None).unwrap();
    let n = ours_gen.tokens.len();
    assert_eq!(ours_gen.tokens, expected[..n], "greedy continuation differs");
    assert!(n == 32 || ours.tokenizer.eos_ids().contains(&expected[n]));
}

#[test]
fn peft_adapter_reproduces_pytorch() {
    let mut model = load(WeightFormat::F32);
    model.apply_adapter(&shared("fixtures/peft-smollm2"), false).unwrap();
    let reference = fixture("fixtures/peft-smollm2/reference.json");
    for case in reference["cases"].as_array().unwrap() {
        let prompt = ids(&case["prompt_ids"]);
        let input = Tensor::new(prompt.as_slice(), &Device::Cpu).unwrap().unsqueeze(0).unwrap();
        let mut cache = model.llama.new_cache();
        let logits: Vec<f32> = model.llama.forward(&input, &mut cache, false).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let top = &case["first_step_top5"];
        for (id, want) in ids(&top["ids"]).into_iter().zip(top["logits"].as_array().unwrap()) {
            let got = logits[id as usize];
            let want = want.as_f64().unwrap() as f32;
            assert!((got - want).abs() < 0.05, "case {}: logit of {id}: {got} vs PyTorch {want}", case["eval_index"]);
        }
        let greedy = ids(&case["greedy_ids"]);
        let opts = GenerateOptions { max_new_tokens: greedy.len(), ..Default::default() };
        let out = model.generate(&prompt, &opts, None).unwrap();
        assert_eq!(out.tokens, greedy[..out.tokens.len()], "case {}", case["eval_index"]);
        assert_eq!(out.tokens.len(), greedy.len());
    }
}
