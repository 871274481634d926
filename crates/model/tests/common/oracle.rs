//! Our engine against candle-transformers' `quantized_llama` on the default GGUF.

use candle_core::{Device, Tensor};
use opensoc_model::{fetch, GenerateOptions, LoadOptions, Model, ModelSource, WeightFormat};

/// Returns the largest logit difference on a fixed prompt, and both greedy continuations
/// of `steps` tokens (ours stops early at end-of-sequence; theirs is cut to the same length).
pub fn compare_with_quantized_llama(steps: usize) -> (f32, Vec<u32>, Vec<u32>) {
    let path = fetch::ensure_default_model().unwrap();
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

    let prompt = ours
        .tokenizer
        .encode_prompt("### Instruction:\nAnalyze this log.\n\n### Input:\n10.0.0.5 - - \"GET /../../etc/passwd HTTP/1.1\" 404 0\n\n### Response:\n")
        .unwrap();
    let input = Tensor::new(prompt.as_slice(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let theirs_logits = reference.forward(&input, 0).unwrap().squeeze(0).unwrap();
    let theirs: Vec<f32> = theirs_logits.to_vec1().unwrap();
    let mut cache = ours.llama.new_cache();
    let mine: Vec<f32> = ours
        .llama
        .forward(&input, &mut cache, false)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let diff = mine
        .iter()
        .zip(&theirs)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);

    let mut expected = Vec::new();
    let mut logits = theirs_logits;
    for pos in prompt.len()..prompt.len() + steps {
        let next = logits.argmax(0).unwrap().to_scalar::<u32>().unwrap();
        expected.push(next);
        let step = Tensor::new(&[next], &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        logits = reference.forward(&step, pos).unwrap().squeeze(0).unwrap();
    }
    let opts = GenerateOptions {
        max_new_tokens: steps,
        ..Default::default()
    };
    let generated = ours.generate(&prompt, &opts, None).unwrap().tokens;
    if generated.len() < steps {
        assert!(ours
            .tokenizer
            .eos_ids()
            .contains(&expected[generated.len()]));
        expected.truncate(generated.len());
    }
    (diff, generated, expected)
}
