//! Training records (the paper's Alpaca JSON list, or JSONL) and their token sequences.

use std::path::{Path, PathBuf};

use opensoc_model::Tokenizer;
use opensoc_verdict::prompt::Prompt;
use serde::Deserialize;

use crate::error::{io_err, Result, TrainError};

/// One labelled example: `instruction` may be empty (the default instruction is used).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Record {
    #[serde(default)]
    pub instruction: String,
    pub input: String,
    pub output: String,
}

/// A record that could not be used, with where it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub path: PathBuf,
    /// 0-based index in the JSON list, or 1-based line number in JSONL.
    pub index: usize,
    pub reason: String,
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} record {}: {}",
            self.path.display(),
            self.index,
            self.reason
        )
    }
}

/// Reads a JSON list of records (starts with `[`) or one JSON record per line.
/// Malformed records are returned as [`Skipped`], not errors.
pub fn load_records(path: &Path) -> Result<(Vec<Record>, Vec<Skipped>)> {
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    parse_records(&text, path)
}

/// [`load_records`] on text already read.
pub fn parse_records(text: &str, path: &Path) -> Result<(Vec<Record>, Vec<Skipped>)> {
    let mut records = Vec::new();
    let mut skipped = Vec::new();
    let skip = |index, reason: String| Skipped {
        path: path.to_path_buf(),
        index,
        reason,
    };
    if text.trim_start().starts_with('[') {
        let items: Vec<serde_json::Value> =
            serde_json::from_str(text).map_err(|e| TrainError::Data {
                path: path.to_path_buf(),
                reason: format!("not a JSON list of records: {e}"),
            })?;
        for (i, item) in items.into_iter().enumerate() {
            match serde_json::from_value::<Record>(item) {
                Ok(r) => records.push(r),
                Err(e) => skipped.push(skip(i, e.to_string())),
            }
        }
    } else {
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Record>(line) {
                Ok(r) => records.push(r),
                Err(e) => skipped.push(skip(i + 1, e.to_string())),
            }
        }
    }
    Ok((records, skipped))
}

/// A tokenized example: `tokens = prompt ++ response ++ [eos]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    pub tokens: Vec<u32>,
    pub prompt_len: usize,
    /// Tokens of the log text cut in the middle to fit the length limit.
    pub cut_tokens: usize,
}

impl Example {
    /// Flat positions whose next token is scored, and those next tokens.
    pub fn targets(&self, loss_on_prompt: bool) -> (Vec<u32>, Vec<u32>) {
        let start = if loss_on_prompt {
            0
        } else {
            self.prompt_len.saturating_sub(1)
        };
        let end = self.tokens.len().saturating_sub(1);
        let positions: Vec<u32> = (start..end).map(|p| p as u32).collect();
        let labels = self.tokens[start + 1..=end].to_vec();
        (positions, labels)
    }

    /// Number of scored tokens.
    pub fn loss_tokens(&self, loss_on_prompt: bool) -> usize {
        self.targets(loss_on_prompt).0.len()
    }
}

/// The record with its output cut right before the first narrative field (`EVIDENCE:`), for
/// [`crate::TrainConfig::fields_only`]. An output without one is kept whole.
pub fn fields_only(record: &Record) -> Record {
    let output = match record.output.find("\nEVIDENCE") {
        // Keep the newline: it ends the risk score, and the grammar decodes it.
        Some(end) => record.output[..=end].to_string(),
        None => record.output.clone(),
    };
    Record {
        output,
        ..record.clone()
    }
}

/// Builds the token sequence of a record with the inference prompt template. The
/// response is never truncated: when the whole does not fit `max_len`, the log text is
/// shortened in the middle with a visible `[... N tokens cut ...]` marker, and a record
/// whose response alone does not fit is an error (the caller skips it).
pub fn encode(
    tokenizer: &Tokenizer,
    record: &Record,
    default_instruction: &str,
    max_len: usize,
) -> std::result::Result<Example, String> {
    let instruction = if record.instruction.trim().is_empty() {
        default_instruction
    } else {
        record.instruction.as_str()
    };
    let err = |e: opensoc_model::ModelError| e.to_string();
    let eos = *tokenizer
        .eos_ids()
        .first()
        .ok_or("the tokenizer has no end-of-sequence token")?;
    let mut response = tokenizer.encode(&record.output, false).map_err(err)?;
    response.push(eos);
    let build = |input: &str| -> std::result::Result<Vec<u32>, String> {
        tokenizer
            .encode_prompt(&Prompt::new(instruction, input).text())
            .map_err(err)
    };
    let prompt = build(&record.input)?;
    if prompt.len() + response.len() <= max_len {
        return Ok(join(prompt, response, 0));
    }
    let input_ids = tokenizer.encode(&record.input, false).map_err(err)?;
    let template = build("")?.len();
    // Room for the kept log tokens, leaving some for the marker and re-tokenisation.
    let mut keep = max_len
        .checked_sub(template + response.len() + 16)
        .ok_or_else(|| {
            format!(
                "the response ({} tokens) and the prompt template ({template}) do not fit max length {max_len}",
                response.len()
            )
        })?;
    keep = keep.min(input_ids.len());
    loop {
        let half = keep / 2;
        let cut = input_ids.len() - 2 * half;
        let head = tokenizer.decode(&input_ids[..half]).map_err(err)?;
        let tail = tokenizer
            .decode(&input_ids[input_ids.len() - half..])
            .map_err(err)?;
        let prompt = build(&format!("{head}\n[... {cut} tokens cut ...]\n{tail}"))?;
        if prompt.len() + response.len() <= max_len {
            return Ok(join(prompt, response, cut));
        }
        let over = prompt.len() + response.len() - max_len;
        if keep == 0 {
            return Err(format!(
                "the response ({} tokens) does not fit max length {max_len}",
                response.len()
            ));
        }
        keep = keep.saturating_sub(over.max(2));
    }
}

fn join(prompt: Vec<u32>, response: Vec<u32>, cut_tokens: usize) -> Example {
    let prompt_len = prompt.len();
    let mut tokens = prompt;
    tokens.extend(response);
    Example {
        tokens,
        prompt_len,
        cut_tokens,
    }
}

/// A seeded permutation of `0..n` (Fisher-Yates with splitmix64).
pub fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut rng = SplitMix(seed);
    let mut v: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = (rng.next() % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
    v
}

/// Splits indices `0..n` into (train, validation), seeded; `fraction` of them validate.
pub fn split(n: usize, fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let order = shuffled(n, seed ^ 0x5EED_5EED);
    let mut val = if fraction > 0.0 && n > 1 {
        ((n as f64 * fraction).round() as usize).clamp(1, n - 1)
    } else {
        0
    };
    val = val.min(n);
    let mut valid = order[..val].to_vec();
    let mut train = order[val..].to_vec();
    valid.sort_unstable();
    train.sort_unstable();
    (train, valid)
}

/// splitmix64.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix(pub u64);

impl SplitMix {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[-1, 1)`.
    pub fn symmetric(&mut self) -> f32 {
        ((self.next() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_formats_and_bad_records() {
        let p = Path::new("x.json");
        let (r, s) = parse_records(
            r#"[{"instruction":"i","input":"a","output":"b"}, {"input":"x"}, {"input":"c","output":"d"}]"#,
            p,
        )
        .unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].index, 1);
        let (r, s) = parse_records("{\"input\":\"a\",\"output\":\"b\"}\n\nnot json\n", p).unwrap();
        assert_eq!((r.len(), s.len(), s[0].index), (1, 1, 3));
    }

    #[test]
    fn split_is_seeded_and_disjoint() {
        let (t, v) = split(100, 0.1, 3);
        assert_eq!((t.len(), v.len()), (90, 10));
        assert!(v.iter().all(|i| !t.contains(i)));
        assert_eq!(split(100, 0.1, 3), (t, v.clone()));
        assert_ne!(split(100, 0.1, 4).1, v);
    }
}
