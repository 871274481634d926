//! Grammar-constrained decoding of the verdict: fields in a fixed order, each structured
//! value chosen at the token level among valid strings (taxonomy threat types, ATT&CK
//! techniques that exist and are not revoked, that technique's tactics, the four
//! severities, integers 0-100), free-text fields bounded. A run of tokens with only one
//! possible continuation is appended in a single forward pass.

use std::collections::{BTreeMap, HashSet};

use candle_core::{Device, Tensor};
use opensoc_attack::{Catalog, Taxonomy};
use opensoc_model::{KvCache, Model, ModelError};
use opensoc_verdict::{Answer, Severity};

/// Prefix tree over the token sequences of a field's complete lines.
#[derive(Debug, Default)]
struct Trie {
    /// `children[node]`: `(token, child)` pairs, sorted by token.
    children: Vec<Vec<(u32, usize)>>,
    /// `terminal[node]`: index of the value whose line ends here.
    terminal: Vec<Option<usize>>,
}

impl Trie {
    fn new() -> Self {
        Trie {
            children: vec![Vec::new()],
            terminal: vec![None],
        }
    }

    fn insert(&mut self, tokens: &[u32], value: usize) {
        let mut node = 0;
        for &t in tokens {
            node = match self.children[node].binary_search_by_key(&t, |&(tok, _)| tok) {
                Ok(i) => self.children[node][i].1,
                Err(i) => {
                    let child = self.children.len();
                    self.children.push(Vec::new());
                    self.terminal.push(None);
                    self.children[node].insert(i, (t, child));
                    child
                }
            };
        }
        // The first value wins when two spell the same tokens.
        self.terminal[node].get_or_insert(value);
    }
}

/// A field whose value is one of a closed set of strings.
#[derive(Debug)]
struct Choice {
    trie: Trie,
    values: Vec<String>,
}

/// A technique line's value and what it implies for the tactic line.
#[derive(Debug, Clone)]
struct TechniqueValue {
    id: Option<String>,
    name: Option<String>,
    tactics: Vec<String>,
}

/// Bounds of the free-text fields, in tokens.
#[derive(Debug, Clone, Copy)]
pub struct NarrativeLimits {
    pub evidence: usize,
    pub impact: usize,
    pub recommendation: usize,
}

impl Default for NarrativeLimits {
    fn default() -> Self {
        NarrativeLimits {
            evidence: 64,
            impact: 48,
            recommendation: 96,
        }
    }
}

/// Token-level grammar of the verdict, precomputed once per model.
#[derive(Debug)]
pub struct Grammar {
    threat_type: Choice,
    technique: Choice,
    technique_values: Vec<TechniqueValue>,
    /// Tactic choices per distinct tactic list.
    tactics: BTreeMap<Vec<String>, Choice>,
    severity: Choice,
    risk_score: Choice,
    evidence_key: Vec<u32>,
    impact_key: Vec<u32>,
    recommendation_key: Vec<u32>,
    /// Tokens whose text contains a newline: they end a free-text field.
    newline_tokens: HashSet<u32>,
    newline: Vec<u32>,
    eos: Vec<u32>,
}

/// Placeholder the training data uses where no technique applies (benign traffic).
const NOT_APPLICABLE: &str = "N/A";

/// Tokens of `line` as they appear after a newline in a longer text: SentencePiece
/// vocabularies would otherwise add a word-start marker to a line encoded on its own.
fn line_tokens(model: &Model, line: &str) -> Result<Vec<u32>, ModelError> {
    let anchor = model.tokenizer.encode("\n", false)?;
    let full = model.tokenizer.encode(&format!("\n{line}"), false)?;
    Ok(match full.strip_prefix(anchor.as_slice()) {
        Some(rest) => rest.to_vec(),
        None => model.tokenizer.encode(line, false)?,
    })
}

fn choice(model: &Model, key: &str, values: Vec<String>) -> Result<Choice, ModelError> {
    let mut trie = Trie::new();
    for (i, v) in values.iter().enumerate() {
        trie.insert(&line_tokens(model, &format!("{key}: {v}\n"))?, i);
    }
    Ok(Choice { trie, values })
}

impl Grammar {
    /// Builds the tries for `model`'s vocabulary from the taxonomy and the catalog.
    pub fn new(
        model: &Model,
        taxonomy: &Taxonomy,
        catalog: &Catalog,
    ) -> Result<Grammar, ModelError> {
        let mut threat_types: Vec<String> = taxonomy
            .fine_types()
            .iter()
            .map(|f| f.name.clone())
            .collect();
        // Categories without a fine type of their own (e.g. malware C2) stay reachable.
        for category in taxonomy.categories() {
            if !taxonomy
                .fine_types()
                .iter()
                .any(|f| &f.category == category)
            {
                threat_types.push(title_case(category));
            }
        }

        let mut technique_values = vec![TechniqueValue {
            id: None,
            name: None,
            tactics: vec![NOT_APPLICABLE.to_string()],
        }];
        let mut technique_lines = vec![format!("{NOT_APPLICABLE} ({NOT_APPLICABLE})")];
        for t in catalog.techniques().filter(|t| t.is_active()) {
            technique_lines.push(format!("{} ({})", t.id, t.name));
            let mut tactics: Vec<String> = t.tactics.iter().map(|x| x.name.to_string()).collect();
            if tactics.is_empty() {
                tactics.push(NOT_APPLICABLE.to_string());
            }
            technique_values.push(TechniqueValue {
                id: Some(t.id.to_string()),
                name: Some(t.name.to_string()),
                tactics,
            });
        }
        let mut tactics = BTreeMap::new();
        for v in &technique_values {
            if !tactics.contains_key(&v.tactics) {
                tactics.insert(
                    v.tactics.clone(),
                    choice(model, "MITRE_TACTIC", v.tactics.clone())?,
                );
            }
        }

        let vocab = model.tokenizer.vocab_size() as u32;
        let mut newline_tokens = HashSet::new();
        for id in 0..vocab {
            if model
                .tokenizer
                .decode(&[id])
                .is_ok_and(|s| s.contains('\n'))
            {
                newline_tokens.insert(id);
            }
        }
        Ok(Grammar {
            threat_type: choice(model, "THREAT_TYPE", threat_types)?,
            technique: choice(model, "MITRE_TECHNIQUE", technique_lines)?,
            technique_values,
            tactics,
            severity: choice(
                model,
                "SEVERITY",
                Severity::ALL.iter().map(|s| s.to_string()).collect(),
            )?,
            risk_score: choice(
                model,
                "RISK_SCORE",
                (0..=100).map(|n| n.to_string()).collect(),
            )?,
            evidence_key: line_tokens(model, "EVIDENCE:")?,
            impact_key: line_tokens(model, "IMPACT:")?,
            recommendation_key: line_tokens(model, "RECOMMENDATION:")?,
            newline_tokens,
            newline: line_tokens(model, "\n")?,
            eos: model.tokenizer.eos_ids().to_vec(),
        })
    }
}

fn title_case(s: &str) -> String {
    s.split(' ')
        .map(|w| {
            if w.len() <= 2 {
                w.to_string()
            } else {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_string() + &c.as_str().to_lowercase())
                    .unwrap_or_default()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Probability the model gives each constrained field's value against the alternatives.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldConfidence {
    pub threat_type: f32,
    pub technique: f32,
    pub tactic: f32,
    pub severity: f32,
    pub risk_score: f32,
}

impl FieldConfidence {
    /// The verdict's confidence: that of its least certain categorical field (the risk
    /// score spreads its mass over neighbouring numbers, so it is left out).
    pub fn overall(&self) -> f32 {
        self.threat_type
            .min(self.technique)
            .min(self.tactic)
            .min(self.severity)
    }
}

pub struct Decoded {
    pub answer: Answer,
    pub text: String,
    pub tokens: Vec<u32>,
    pub confidence: FieldConfidence,
}

/// Decoding state: the cache, tokens appended but not yet run, and the last logits.
struct Decoder<'a> {
    model: &'a Model,
    cache: KvCache,
    pending: Vec<u32>,
    logits: Option<Vec<f32>>,
    out: Vec<u32>,
    /// Run forced tokens one forward pass each (the slow reference path, for tests).
    token_by_token: bool,
}

impl Decoder<'_> {
    fn push(&mut self, tokens: &[u32]) {
        self.pending.extend_from_slice(tokens);
        self.out.extend_from_slice(tokens);
    }

    fn run(&mut self, tokens: &[u32]) -> Result<(), ModelError> {
        let input = Tensor::new(tokens, &Device::Cpu)?.unsqueeze(0)?;
        let logits = self.model.llama.forward(&input, &mut self.cache, false)?;
        self.logits = Some(logits.squeeze(0)?.to_vec1::<f32>()?);
        Ok(())
    }

    fn logits(&mut self) -> Result<&[f32], ModelError> {
        if !self.pending.is_empty() {
            let pending = std::mem::take(&mut self.pending);
            if self.token_by_token {
                for t in pending {
                    self.run(&[t])?;
                }
            } else {
                self.run(&pending)?;
            }
        }
        self.logits
            .as_deref()
            .ok_or_else(|| ModelError::Tokenizer("decoding started without a prompt".into()))
    }

    /// Walks `choice`'s trie: forced tokens are appended, branches go to the model.
    fn choose(&mut self, choice: &Choice) -> Result<(usize, f32), ModelError> {
        let trie = &choice.trie;
        let mut node = 0;
        let mut prob = 1.0f32;
        loop {
            if let Some(value) = trie.terminal[node] {
                return Ok((value, prob));
            }
            let children = &trie.children[node];
            let next = match children.as_slice() {
                [] => return Err(ModelError::Tokenizer("grammar has a dead end".into())),
                [(t, child)] => (*t, *child),
                _ => {
                    let logits = self.logits()?;
                    let max = children
                        .iter()
                        .map(|&(t, _)| logits.get(t as usize).copied().unwrap_or(f32::NEG_INFINITY))
                        .fold(f32::NEG_INFINITY, f32::max);
                    let mut best = (children[0], f32::NEG_INFINITY);
                    let mut total = 0.0f32;
                    for &(t, child) in children {
                        let l = logits.get(t as usize).copied().unwrap_or(f32::NEG_INFINITY);
                        total += (l - max).exp();
                        if l > best.1 {
                            best = ((t, child), l);
                        }
                    }
                    prob *= (best.1 - max).exp() / total;
                    best.0
                }
            };
            self.push(&[next.0]);
            node = next.1;
        }
    }

    /// `KEY:` then model text up to a newline or `max` tokens.
    fn free_text(
        &mut self,
        key: &[u32],
        max: usize,
        grammar: &Grammar,
    ) -> Result<String, ModelError> {
        self.push(key);
        let mut text_tokens = Vec::new();
        for _ in 0..max {
            let logits = self.logits()?;
            let next = argmax(logits);
            if grammar.eos.contains(&next) {
                break;
            }
            self.push(&[next]);
            if grammar.newline_tokens.contains(&next) {
                let text = self.model.tokenizer.decode(&text_tokens)?;
                let tail = self.model.tokenizer.decode(&[next])?;
                let before_newline = tail.split('\n').next().unwrap_or("");
                return Ok(format!("{text}{before_newline}").trim().to_string());
            }
            text_tokens.push(next);
        }
        self.push(&grammar.newline);
        Ok(self
            .model
            .tokenizer
            .decode(&text_tokens)?
            .trim()
            .to_string())
    }
}

fn argmax(logits: &[f32]) -> u32 {
    let mut best = (0usize, f32::NEG_INFINITY);
    for (i, &l) in logits.iter().enumerate() {
        if l > best.1 {
            best = (i, l);
        }
    }
    best.0 as u32
}

/// Decodes a verdict under `grammar`. `cache` holds the prompt's first tokens (possibly
/// none) and `prompt_rest` the others. `token_by_token` runs forced tokens one forward
/// pass each instead of in one batch (a reference path for tests; same output, slower).
pub fn decode(
    model: &Model,
    grammar: &Grammar,
    cache: KvCache,
    prompt_rest: &[u32],
    narrative: Option<NarrativeLimits>,
    token_by_token: bool,
) -> Result<Decoded, ModelError> {
    let mut d = Decoder {
        model,
        cache,
        pending: Vec::new(),
        logits: None,
        out: Vec::new(),
        token_by_token: false,
    };
    d.pending.extend_from_slice(prompt_rest);
    d.logits()?;
    d.token_by_token = token_by_token;

    let mut conf = FieldConfidence::default();
    let (t, p) = d.choose(&grammar.threat_type)?;
    conf.threat_type = p;
    let threat_type = grammar.threat_type.values[t].clone();
    let (t, p) = d.choose(&grammar.technique)?;
    conf.technique = p;
    let technique = grammar.technique_values[t].clone();
    let tactic_choice = grammar
        .tactics
        .get(&technique.tactics)
        .ok_or_else(|| ModelError::Tokenizer("no tactic grammar for technique".into()))?;
    let (t, p) = d.choose(tactic_choice)?;
    conf.tactic = p;
    let tactic = tactic_choice.values[t].clone();
    let (t, p) = d.choose(&grammar.severity)?;
    conf.severity = p;
    let severity = grammar.severity.values[t].parse::<Severity>().ok();
    let (t, p) = d.choose(&grammar.risk_score)?;
    conf.risk_score = p;
    let risk_score = grammar.risk_score.values[t].parse::<u8>().ok();

    let mut answer = Answer {
        threat_type: Some(threat_type),
        technique_id: technique.id,
        technique_name: technique.name,
        tactic: (tactic != NOT_APPLICABLE).then_some(tactic),
        severity,
        risk_score,
        ..Answer::default()
    };
    if let Some(limits) = narrative {
        let evidence = d.free_text(&grammar.evidence_key, limits.evidence, grammar)?;
        let impact = d.free_text(&grammar.impact_key, limits.impact, grammar)?;
        let recommendation =
            d.free_text(&grammar.recommendation_key, limits.recommendation, grammar)?;
        answer.evidence = Some(evidence).filter(|s| !s.is_empty());
        answer.impact = Some(impact).filter(|s| !s.is_empty());
        answer.recommendation = Some(recommendation).filter(|s| !s.is_empty());
    }
    let text = model.tokenizer.decode(&d.out)?;
    Ok(Decoded {
        answer,
        text,
        tokens: d.out,
        confidence: conf,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trie_shares_prefixes_and_marks_values() {
        let mut t = Trie::new();
        t.insert(&[1, 2, 3], 0);
        t.insert(&[1, 2, 4], 1);
        t.insert(&[5], 2);
        assert_eq!(t.children[0].len(), 2);
        let n1 = t.children[0][0].1;
        let n2 = t.children[n1][0].1;
        assert_eq!(t.children[n2].len(), 2);
        let leaf = t.children[n2][1].1;
        assert_eq!(t.terminal[leaf], Some(1));
    }

    #[test]
    fn title_case_keeps_short_words() {
        assert_eq!(title_case("MALWARE C2"), "Malware C2");
        assert_eq!(title_case("LATERAL MOVEMENT"), "Lateral Movement");
    }
}
