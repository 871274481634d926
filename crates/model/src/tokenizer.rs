//! Tokenizers built from GGUF metadata (`gpt2` byte-level BPE, `llama` SentencePiece) or
//! read from a Hugging Face `tokenizer.json`.

use std::collections::HashSet;
use std::path::Path;

use candle_core::quantized::gguf_file;
use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::normalizers::{Prepend, Replace, Sequence as NormalizerSequence};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence as PreSequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{
    AddedToken, DecoderWrapper, NormalizerWrapper, PreTokenizerWrapper, SplitDelimiterBehavior,
};

use crate::error::{ModelError, Result};

/// GGUF `tokenizer.ggml.token_type` values (llama.cpp's `llama_token_type`).
const TOKEN_CONTROL: i32 = 3;
const TOKEN_USER_DEFINED: i32 = 4;
const TOKEN_BYTE: i32 = 6;

/// Pre-tokenizer regex of Llama 3 style BPE vocabularies (`llama-bpe` in GGUF).
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Names of end-of-turn tokens that also end generation when the vocabulary has them.
const END_TOKENS: [&str; 4] = ["<|im_end|>", "<|endoftext|>", "</s>", "<|eot_id|>"];

#[derive(Clone)]
pub struct Tokenizer {
    /// Honours special tokens written in the text (template text, fixtures).
    special: tokenizers::Tokenizer,
    /// Encodes special-token text as ordinary text: used for anything a log can contain.
    plain: tokenizers::Tokenizer,
    /// Prepended by [`Tokenizer::encode_prompt`] (GGUF tokenizers have no post-processor).
    bos: Option<u32>,
    /// `tokenizer.json` post-processors add their own BOS.
    post_process: bool,
    eos: Vec<u32>,
}

fn tok_err(e: impl std::fmt::Display) -> ModelError {
    ModelError::Tokenizer(e.to_string())
}

impl Tokenizer {
    fn new(
        special: tokenizers::Tokenizer,
        bos: Option<u32>,
        post_process: bool,
        eos: Option<u32>,
    ) -> Self {
        let mut plain = special.clone();
        plain.set_encode_special_tokens(true);
        let mut eos: Vec<u32> = eos.into_iter().collect();
        for name in END_TOKENS {
            if let Some(id) = special.token_to_id(name) {
                if !eos.contains(&id) {
                    eos.push(id);
                }
            }
        }
        Tokenizer {
            special,
            plain,
            bos,
            post_process,
            eos,
        }
    }

    /// Builds the tokenizer described by a GGUF file's `tokenizer.ggml.*` metadata.
    pub fn from_gguf(content: &gguf_file::Content, path: &Path) -> Result<Self> {
        let md = &content.metadata;
        let bad = |reason: String| ModelError::BadGguf {
            path: path.to_path_buf(),
            reason,
        };
        let strings = |key: &str| -> Result<Vec<String>> {
            let values = md
                .get(key)
                .and_then(|v| v.to_vec().ok())
                .ok_or_else(|| bad(format!("metadata {key} is missing")))?;
            values
                .iter()
                .map(|v| v.to_string().cloned())
                .collect::<candle_core::Result<Vec<_>>>()
                .map_err(|e| bad(format!("metadata {key}: {e}")))
        };
        let id = |key: &str| md.get(key).and_then(|v| v.to_u32().ok());
        let tokens = strings("tokenizer.ggml.tokens")?;
        let types: Vec<i32> = match md
            .get("tokenizer.ggml.token_type")
            .and_then(|v| v.to_vec().ok())
        {
            Some(vs) => vs.iter().map(|v| v.to_i32().unwrap_or(1)).collect(),
            None => vec![1; tokens.len()],
        };
        let model = md
            .get("tokenizer.ggml.model")
            .and_then(|v| v.to_string().ok())
            .map(String::as_str)
            .unwrap_or("");
        let mut tk = match model {
            "gpt2" => {
                let merges = strings("tokenizer.ggml.merges")?
                    .into_iter()
                    .map(|m| match m.split_once(' ') {
                        Some((a, b)) => Ok((a.to_string(), b.to_string())),
                        None => Err(bad(format!("malformed merge {m:?}"))),
                    })
                    .collect::<Result<Vec<_>>>()?;
                let bpe = BPE::builder()
                    .vocab_and_merges(vocab_map(&tokens), merges)
                    .build()
                    .map_err(tok_err)?;
                let mut tk = tokenizers::Tokenizer::new(bpe);
                let pre = md
                    .get("tokenizer.ggml.pre")
                    .and_then(|v| v.to_string().ok())
                    .map(String::as_str)
                    .unwrap_or("default");
                tk.with_pre_tokenizer(Some(byte_level_pre_tokenizer(pre)?));
                tk.with_decoder(Some(ByteLevelDecoder::default()));
                tk
            }
            "llama" => {
                let scores: Vec<f32> = match md
                    .get("tokenizer.ggml.scores")
                    .and_then(|v| v.to_vec().ok())
                {
                    Some(vs) => vs.iter().map(|v| v.to_f32().unwrap_or(0.0)).collect(),
                    None => (0..tokens.len()).map(|i| -(i as f32)).collect(),
                };
                sentencepiece_bpe(&tokens, &types, &scores)?
            }
            other => {
                return Err(bad(format!(
                    "tokenizer model {other:?} is not supported (gpt2 or llama)"
                )))
            }
        };

        let added: Vec<AddedToken> = tokens
            .iter()
            .zip(&types)
            .filter(|(_, &t)| t == TOKEN_CONTROL || t == TOKEN_USER_DEFINED)
            .map(|(tok, &t)| AddedToken::from(tok.clone(), t == TOKEN_CONTROL).normalized(false))
            .collect();
        tk.add_special_tokens(&added);

        let add_bos = md
            .get("tokenizer.ggml.add_bos_token")
            .and_then(|v| v.to_bool().ok())
            .unwrap_or(model == "llama");
        let bos = id("tokenizer.ggml.bos_token_id").filter(|_| add_bos);
        Ok(Tokenizer::new(
            tk,
            bos,
            false,
            id("tokenizer.ggml.eos_token_id"),
        ))
    }

    /// Reads `tokenizer.json`; `eos` comes from the model's `config.json`.
    pub fn from_file(path: &Path, eos: Option<u32>) -> Result<Self> {
        let tk = tokenizers::Tokenizer::from_file(path)
            .map_err(|e| ModelError::Tokenizer(format!("{}: {e}", path.display())))?;
        Ok(Tokenizer::new(tk, None, true, eos))
    }

    /// Token ids of `text`, without BOS. With `parse_special`, special-token text such as
    /// `<|im_start|>` becomes the special token; otherwise it is ordinary text.
    pub fn encode(&self, text: &str, parse_special: bool) -> Result<Vec<u32>> {
        let tk = if parse_special {
            &self.special
        } else {
            &self.plain
        };
        Ok(tk.encode(text, false).map_err(tok_err)?.get_ids().to_vec())
    }

    /// A prompt as the model expects it: BOS where the model wants one, and no special
    /// tokens from the text (prompts carry attacker-controlled log text).
    pub fn encode_prompt(&self, text: &str) -> Result<Vec<u32>> {
        let mut ids = Vec::new();
        ids.extend(self.bos);
        let enc = self
            .plain
            .encode(text, self.post_process)
            .map_err(tok_err)?;
        ids.extend_from_slice(enc.get_ids());
        Ok(ids)
    }

    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.special.decode(ids, true).map_err(tok_err)
    }

    /// Tokens that end generation.
    pub fn eos_ids(&self) -> &[u32] {
        &self.eos
    }

    pub fn vocab_size(&self) -> usize {
        self.special.get_vocab_size(true)
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.special.token_to_id(token)
    }
}

fn vocab_map(tokens: &[String]) -> Vocab {
    tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i as u32))
        .collect()
}

/// Byte-level pre-tokenization for GGUF `tokenizer.ggml.pre` names.
fn byte_level_pre_tokenizer(pre: &str) -> Result<PreTokenizerWrapper> {
    let gpt2_regex = ByteLevel::new(false, true, true);
    Ok(match pre {
        // llama.cpp splits digits one by one, then applies the GPT-2 pattern.
        "smollm" | "starcoder" | "refact" | "codeshell" | "command-r" | "exaone" | "minerva-7b" => {
            PreSequence::new(vec![Digits::new(true).into(), gpt2_regex.into()]).into()
        }
        "llama-bpe" | "llama3" | "smaug-bpe" => {
            let split = Split::new(
                SplitPattern::Regex(LLAMA3_SPLIT.to_string()),
                SplitDelimiterBehavior::Isolated,
                false,
            )
            .map_err(tok_err)?;
            PreSequence::new(vec![
                split.into(),
                ByteLevel::new(false, true, false).into(),
            ])
            .into()
        }
        "default" | "gpt2" | "gpt-2" => gpt2_regex.into(),
        other => {
            tracing::warn!(pre = other, "Unknown GGUF pre-tokenizer, using GPT-2's.");
            gpt2_regex.into()
        }
    })
}

/// SentencePiece BPE vocabularies ship pieces and scores, not merges. The merges are
/// recovered as every split of a piece into two pieces, ranked by the merged piece's
/// score, which is how SentencePiece's own BPE orders them.
fn sentencepiece_bpe(
    tokens: &[String],
    types: &[i32],
    scores: &[f32],
) -> Result<tokenizers::Tokenizer> {
    let vocab = vocab_map(tokens);
    let mergeable: HashSet<&str> = tokens
        .iter()
        .zip(types)
        .filter(|(_, &t)| t != TOKEN_CONTROL && t != TOKEN_BYTE)
        .map(|(s, _)| s.as_str())
        .collect();
    let mut ranked: Vec<(f32, u32, u32, String, String)> = Vec::new();
    for (id, piece) in tokens.iter().enumerate() {
        if !mergeable.contains(piece.as_str()) {
            continue;
        }
        let score = scores.get(id).copied().unwrap_or(0.0);
        for (k, _) in piece.char_indices().skip(1) {
            let (l, r) = piece.split_at(k);
            if let (true, true, Some(&li), Some(&ri)) = (
                mergeable.contains(l),
                mergeable.contains(r),
                vocab.get(l),
                vocab.get(r),
            ) {
                ranked.push((score, li, ri, l.to_string(), r.to_string()));
            }
        }
    }
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let merges = ranked.into_iter().map(|(_, _, _, l, r)| (l, r)).collect();
    let unk = tokens
        .iter()
        .position(|t| t == "<unk>")
        .map(|_| "<unk>".to_string());
    let mut builder = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .byte_fallback(true)
        .fuse_unk(true);
    if let Some(unk) = unk {
        builder = builder.unk_token(unk);
    }
    let mut tk = tokenizers::Tokenizer::new(builder.build().map_err(tok_err)?);
    let normalizer: NormalizerWrapper = NormalizerSequence::new(vec![
        Prepend::new("▁".to_string()).into(),
        Replace::new(" ", "▁").map_err(tok_err)?.into(),
    ])
    .into();
    tk.with_normalizer(Some(normalizer));
    let decoder: DecoderWrapper = DecoderSequence::new(vec![
        tokenizers::decoders::DecoderWrapper::Replace(Replace::new("▁", " ").map_err(tok_err)?),
        ByteFallback::new().into(),
        Fuse::new().into(),
        Strip::new(' ', 1, 0).into(),
    ])
    .into();
    tk.with_decoder(Some(decoder));
    Ok(tk)
}
