//! From one log entry (or a rendered burst of lines) to a [`Verdict`]: build the prompt
//! around the neutralised log text, decode the answer under the verdict grammar (or
//! generate freely and read it tolerantly), and check the technique against the embedded
//! ATT&CK catalog.

mod batch;
mod grammar;

use opensoc_attack::{parse_technique_field, Catalog, Taxonomy};
use opensoc_model::{GenerateOptions, Kernels, Model, ModelError, PrefixCache};
use opensoc_verdict::prompt::{Prompt, INSTRUCTION, STOP_MARKERS};
use opensoc_verdict::{parse_answer, Answer, Verdict};

pub use grammar::{decode, Decoded, FieldConfidence, Grammar, NarrativeLimits};

#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    #[error("{id}: {source}")]
    Model {
        id: String,
        #[source]
        source: ModelError,
    },
}

#[derive(Debug, Clone)]
pub struct AnalyzerConfig {
    pub max_new_tokens: usize,
    /// Log text beyond this many tokens is cut in the middle, with a visible marker.
    pub max_input_tokens: usize,
    pub instruction: String,
    /// Decode under the verdict grammar (always-valid fields); `false` generates freely
    /// and parses the text, as the paper does.
    pub constrained: bool,
    /// Under the grammar: also write evidence, impact and recommendation (bounded).
    /// Without, decoding stops after the structured fields.
    pub narrative: Option<NarrativeLimits>,
    /// Verdicts whose confidence is below this are marked `needs_review`.
    pub min_confidence: Option<f32>,
    /// Under the grammar: beam width of the technique line (1: greedy, token by token).
    pub technique_beam: usize,
    /// Under the grammar: the technique is the one the taxonomy assigns the chosen threat
    /// type, where it assigns one; `false` lets the model choose it for every type.
    pub technique_follows_type: bool,
}

impl Default for AnalyzerConfig {
    fn default() -> Self {
        AnalyzerConfig {
            max_new_tokens: 256,
            max_input_tokens: 1024,
            instruction: INSTRUCTION.to_string(),
            constrained: true,
            narrative: Some(NarrativeLimits::default()),
            min_confidence: None,
            technique_beam: 1,
            technique_follows_type: true,
        }
    }
}

pub struct Analyzer {
    model: Model,
    config: AnalyzerConfig,
    prefix: PrefixCache,
    taxonomy: &'static Taxonomy,
    grammar: Option<Grammar>,
}

/// Roughly the most bytes one token covers; text beyond `max_input_tokens` times this is
/// cut before tokenizing, so a 10 MB line does not cost a 10 MB tokenization.
const MAX_BYTES_PER_TOKEN: usize = 16;

/// The first narrative field of an answer, after the structured ones.
const NARRATIVE_START: &str = "\nEVIDENCE";

impl Analyzer {
    /// Computes the key-value cache of the prompt text before the log entry once.
    pub fn new(model: Model, config: AnalyzerConfig) -> Result<Self, ModelError> {
        let prefix_text = Prompt::new(&config.instruction, "").prefix;
        let prefix_ids = model.tokenizer.encode_prompt(&prefix_text)?;
        let prefix = model.prefill_prefix(&prefix_ids)?;
        let taxonomy = Taxonomy::builtin();
        let grammar = if config.constrained {
            Some(
                Grammar::new(&model, taxonomy, Catalog::enterprise())?
                    .with_technique_beam(config.technique_beam)
                    .with_technique_following_type(config.technique_follows_type),
            )
        } else {
            None
        };
        Ok(Analyzer {
            model,
            config,
            prefix,
            taxonomy,
            grammar,
        })
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Shortens `text` in the middle to at most `max_input_tokens` tokens.
    fn fit_input(&self, text: &str) -> Result<(String, Option<String>), ModelError> {
        let max_tokens = self.config.max_input_tokens;
        let max_bytes = max_tokens * MAX_BYTES_PER_TOKEN;
        let mut cut_bytes = 0;
        let mut text = if text.len() > max_bytes {
            let head = floor_char_boundary(text, max_bytes / 2);
            let tail = ceil_char_boundary(text, text.len() - max_bytes / 2);
            cut_bytes = tail - head;
            format!("{}{}", &text[..head], &text[tail..])
        } else {
            text.to_string()
        };
        let ids = self.model.tokenizer.encode(&text, false)?;
        let mut cut_tokens = 0;
        if ids.len() > max_tokens {
            let half = max_tokens / 2;
            let head = self.model.tokenizer.decode(&ids[..half])?;
            let tail = self.model.tokenizer.decode(&ids[ids.len() - half..])?;
            cut_tokens = ids.len() - 2 * half;
            text = format!("{head}\n[... {cut_tokens} tokens cut ...]\n{tail}");
        } else if cut_bytes > 0 {
            let mid = floor_char_boundary(&text, text.len() / 2);
            text = format!(
                "{}\n[... {cut_bytes} bytes cut ...]\n{}",
                &text[..mid],
                &text[mid..]
            );
        }
        let warning = (cut_bytes > 0 || cut_tokens > 0).then(|| {
            format!(
                "input shortened in the middle for the model, to {} tokens ({cut_bytes} bytes and {cut_tokens} tokens cut there, after any cut at intake)",
                max_tokens
            )
        });
        Ok((text, warning))
    }

    /// Analyses one entry. `id` names it in the verdict and in errors. Where the weights
    /// are mixed, one-token steps take the quantized copies (fastest for one entry).
    pub fn analyze(&self, id: &str, log_text: &str) -> Result<Verdict, AnalyzeError> {
        let direct = batch::Direct {
            llama: &self.model.llama,
            kernels: Kernels::ByRows,
        };
        self.analyze_via(&direct, id, log_text)
    }

    /// Analyses `(id, text)` entries together: under the grammar their model steps run
    /// in shared passes (see `batch`), which is faster on a CPU than one entry after
    /// another; verdicts come back in order, each with its own error if it failed.
    /// Every pass takes the f32 weights, so an entry's verdict does not depend on the
    /// other entries, nor on whether it came alone. Without the grammar, entries run one
    /// after another.
    pub fn analyze_batch(
        &self,
        entries: &[(String, String)],
    ) -> Vec<Result<Verdict, AnalyzeError>> {
        if self.grammar.is_none() || entries.len() < 2 {
            let direct = batch::Direct {
                llama: &self.model.llama,
                kernels: Kernels::Dense,
            };
            return entries
                .iter()
                .map(|(id, text)| self.analyze_via(&direct, id, text))
                .collect();
        }
        batch::run_batched(&self.model.llama, entries, |(id, text), step| {
            self.analyze_via(step, id, text)
        })
    }

    fn analyze_via(
        &self,
        step: &dyn batch::Step,
        id: &str,
        log_text: &str,
    ) -> Result<Verdict, AnalyzeError> {
        let err = |source| AnalyzeError::Model {
            id: id.to_string(),
            source,
        };
        let (input, shortened) = self.fit_input(log_text).map_err(err)?;
        let prompt = Prompt::new(&self.config.instruction, &input);
        let ids = self
            .model
            .tokenizer
            .encode_prompt(&prompt.text())
            .map_err(err)?;
        let mut verdict = match &self.grammar {
            Some(grammar) => {
                let (cache, rest) = self.prefix.resume(&self.model, &ids);
                let decoded = grammar::decode_via(
                    step,
                    &self.model,
                    grammar,
                    cache,
                    rest,
                    self.config.narrative,
                    false,
                )
                .map_err(err)?;
                let mut v = self.verdict(
                    id,
                    &input,
                    decoded.text.trim_end().to_string(),
                    decoded.answer,
                );
                let confidence = decoded.confidence.overall();
                v.confidence = Some(confidence);
                v.needs_review = self
                    .config
                    .min_confidence
                    .is_some_and(|min| confidence < min);
                v
            }
            None => {
                let mut stop: Vec<String> = STOP_MARKERS.iter().map(|s| s.to_string()).collect();
                if self.config.narrative.is_none() {
                    // Structured fields only, as under the grammar: stop where the
                    // narrative would begin.
                    stop.push(NARRATIVE_START.to_string());
                }
                let opts = GenerateOptions {
                    max_new_tokens: self.config.max_new_tokens,
                    stop,
                    ..Default::default()
                };
                let generation = self
                    .model
                    .generate(&ids, &opts, Some(&self.prefix))
                    .map_err(err)?;
                let raw = generation.text.trim_end().to_string();
                let answer = parse_answer(&raw);
                self.verdict(id, &input, raw, answer)
            }
        };
        verdict.warnings.extend(shortened);
        Ok(verdict)
    }

    fn verdict(&self, id: &str, input: &str, raw: String, answer: Answer) -> Verdict {
        let mut v = Verdict::from_answer(id.to_string(), input.to_string(), raw, answer);
        v.category = v
            .threat_type
            .as_deref()
            .and_then(|t| self.taxonomy.category_of(t))
            .map(str::to_string);
        check_technique(&mut v);
        check_grounding(&mut v);
        v
    }
}

/// Replaces the model's technique text with the catalog's ID and official name, or
/// flags an ID that ATT&CK does not have.
fn check_technique(v: &mut Verdict) {
    let Some(written) = v.technique_id.clone() else {
        return;
    };
    let field = match &v.technique_name {
        Some(name) => format!("{written} ({name})"),
        None => written.clone(),
    };
    let catalog = Catalog::enterprise();
    match parse_technique_field(&field).and_then(|(tid, _)| catalog.get(&tid).map(|t| (tid, t))) {
        Some((tid, technique)) => {
            v.technique_id = Some(tid.to_string());
            v.technique_name = Some(technique.name.to_string());
            if technique.revoked || technique.deprecated {
                v.warnings.push(format!(
                    "technique {tid} is revoked or deprecated in ATT&CK {}",
                    catalog.version()
                ));
            }
        }
        None => v.warnings.push(format!(
            "technique {written} is not in ATT&CK Enterprise {}",
            catalog.version()
        )),
    }
}

/// Quoted text in the evidence (`"..."` or `` `...` ``) must appear in the log entry: a
/// quote the model made up is flagged, so nobody acts on invented evidence. (Single
/// quotes are left alone: they are apostrophes as often as quotation marks.)
fn check_grounding(v: &mut Verdict) {
    let Some(evidence) = v.evidence.as_deref() else {
        return;
    };
    let input = v.input.to_lowercase();
    let mut ungrounded = Vec::new();
    for mark in ['"', '`'] {
        let pieces: Vec<&str> = evidence.split(mark).collect();
        let marks = pieces.len() - 1;
        // Quotations are the pieces between pairs of marks; an unclosed last mark opens none.
        for i in (1..marks).step_by(2) {
            let quote = pieces[i].trim();
            // Short fragments ("a", "/") prove nothing either way.
            if quote.chars().count() >= 4 && !input.contains(&quote.to_lowercase()) {
                ungrounded.push(quote.to_string());
            }
        }
    }
    for quote in ungrounded {
        v.warnings.push(format!(
            "evidence quotes {quote:?}, which is not in the log entry"
        ));
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_char_boundary(s: &str, mut i: usize) -> usize {
    while i < s.len() && !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict_with(id: &str, name: Option<&str>) -> Verdict {
        let mut v = Verdict::from_answer("x:1".into(), "".into(), "".into(), Default::default());
        v.technique_id = Some(id.into());
        v.technique_name = name.map(String::from);
        v
    }

    #[test]
    fn known_technique_gets_official_name() {
        let mut v = verdict_with("T1110", Some("Failed Login"));
        check_technique(&mut v);
        assert_eq!(v.technique_name.as_deref(), Some("Brute Force"));
        assert!(v.warnings.is_empty());
    }

    #[test]
    fn invented_technique_is_flagged() {
        let mut v = verdict_with("T1555.000000", None);
        check_technique(&mut v);
        assert_eq!(v.warnings.len(), 1, "{:?}", v.warnings);
    }

    #[test]
    fn invented_quotes_are_flagged() {
        let mut v = Verdict::from_answer(
            "x:1".into(),
            "GET /login?user=admin' OR 1=1--".into(),
            "".into(),
            Default::default(),
        );
        v.evidence = Some("Payload \"admin' OR 1=1\" and `DROP TABLE users` seen".into());
        check_grounding(&mut v);
        assert_eq!(v.warnings.len(), 1, "{:?}", v.warnings);
        assert!(v.warnings[0].contains("DROP TABLE users"));
        // Unbalanced quote marks are not quotations.
        let mut w = Verdict::from_answer("x:1".into(), "abc".into(), "".into(), Default::default());
        w.evidence = Some("the user's login \"failed".into());
        check_grounding(&mut w);
        assert!(w.warnings.is_empty(), "{:?}", w.warnings);
    }

    #[test]
    fn char_boundaries() {
        let s = "aé€b";
        assert_eq!(floor_char_boundary(s, 2), 1);
        assert_eq!(ceil_char_boundary(s, 2), 3);
    }
}
