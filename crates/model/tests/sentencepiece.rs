//! The `llama` (SentencePiece) tokenizer of TinyLlama-style GGUF files, rebuilt from
//! pieces and scores, on a small vocabulary written by the test.

use candle_core::quantized::gguf_file::{self, Value};
use opensoc_model::Tokenizer;

fn gguf_tokenizer(pieces: &[(&str, f32, i32)]) -> Tokenizer {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spm.gguf");
    let md: Vec<(&str, Value)> = vec![
        ("general.architecture", Value::String("llama".into())),
        ("tokenizer.ggml.model", Value::String("llama".into())),
        (
            "tokenizer.ggml.tokens",
            Value::Array(pieces.iter().map(|p| Value::String(p.0.into())).collect()),
        ),
        (
            "tokenizer.ggml.scores",
            Value::Array(pieces.iter().map(|p| Value::F32(p.1)).collect()),
        ),
        (
            "tokenizer.ggml.token_type",
            Value::Array(pieces.iter().map(|p| Value::I32(p.2)).collect()),
        ),
        ("tokenizer.ggml.bos_token_id", Value::U32(1)),
        ("tokenizer.ggml.eos_token_id", Value::U32(2)),
    ];
    let refs: Vec<(&str, &Value)> = md.iter().map(|(k, v)| (*k, v)).collect();
    gguf_file::write(&mut std::fs::File::create(&path).unwrap(), &refs, &[]).unwrap();
    let mut f = std::fs::File::open(&path).unwrap();
    let content = gguf_file::Content::read(&mut f).unwrap();
    Tokenizer::from_gguf(&content, &path).unwrap()
}

#[test]
fn sentencepiece_merges_follow_scores_with_byte_fallback() {
    let mut pieces: Vec<(String, f32, i32)> = vec![
        ("<unk>".into(), 0.0, 2),
        ("<s>".into(), 0.0, 3),
        ("</s>".into(), 0.0, 3),
    ];
    for b in 0..=255u8 {
        pieces.push((format!("<0x{b:02X}>"), 0.0, 6));
    }
    let words = [
        "▁", "h", "e", "l", "o", "w", "r", "d", "ll", "▁h", "▁he", "llo", "▁hello", "▁w", "or",
        "▁wor", "ld", "▁world",
    ];
    for (i, w) in words.iter().enumerate() {
        pieces.push((w.to_string(), -(i as f32) - 1.0, 1));
    }
    let refs: Vec<(&str, f32, i32)> = pieces
        .iter()
        .map(|(s, f, t)| (s.as_str(), *f, *t))
        .collect();
    let tk = gguf_tokenizer(&refs);
    let id = |s: &str| tk.token_to_id(s).unwrap();

    assert_eq!(
        tk.encode("hello world", false).unwrap(),
        [id("▁hello"), id("▁world")]
    );
    // BOS is prepended for prompts, as SentencePiece models expect.
    assert_eq!(tk.encode_prompt("hello").unwrap(), [1, id("▁hello")]);
    // Characters outside the vocabulary fall back to their UTF-8 bytes.
    assert_eq!(tk.encode("hi", false).unwrap(), [id("▁h"), id("<0x69>")]);
    assert_eq!(
        tk.encode("é", false).unwrap(),
        [id("▁"), id("<0xC3>"), id("<0xA9>")]
    );
    let ids = tk.encode("hello world hi é", false).unwrap();
    assert_eq!(tk.decode(&ids).unwrap(), "hello world hi é");
    assert_eq!(tk.eos_ids(), [2]);
}
