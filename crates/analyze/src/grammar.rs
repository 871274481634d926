//! Grammar-constrained decoding of the verdict: fields in a fixed order, each structured
//! value chosen at the token level among valid strings (taxonomy threat types, ATT&CK
//! techniques that exist and are not revoked, that technique's tactics, the four
//! severities, integers 0-100), free-text fields bounded. By default the technique is the
//! one the taxonomy assigns the chosen threat type, so the two never contradict. A run of tokens with only one
//! possible continuation is appended in a single forward pass.

use std::collections::{BTreeMap, HashSet};

use opensoc_attack::{Catalog, Taxonomy};
use opensoc_model::{Kernels, KvCache, Model, ModelError};
use opensoc_verdict::{Answer, Severity};

use crate::batch::{Direct, Step};
use opensoc_triage::{Bounds, Outcome};

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
    /// Beam width of the technique line; 1 is greedy (see [`Decoder::choose_beam`]).
    technique_beam: usize,
    /// Per threat type (by value index): the technique line the taxonomy assigns it, as
    /// line tokens and an index into `technique_values`.
    type_techniques: Vec<Option<(Vec<u32>, usize)>>,
    /// Write the type's technique instead of letting the model choose one.
    technique_follows_type: bool,
    /// Per threat type (by value index): its taxonomy category.
    type_categories: Vec<String>,
    /// Per threat type (by value index): the severity the taxonomy assigns it (an index
    /// into `severity`), and the one it assigns when the attack succeeded.
    type_severities: Vec<(Option<usize>, Option<usize>)>,
    /// Write the type's severity instead of letting the model choose one.
    severity_follows_type: bool,
    /// Per threat type (by value index): whether it names a success (see
    /// `FineType::requires_success`).
    type_requires_success: Vec<bool>,
    /// Categories that have such a type.
    success_categories: HashSet<String>,
}

/// The category of "No Threat Detected": a benign verdict.
const BENIGN_CATEGORY: &str = "NO THREAT";

/// Highest risk score a benign verdict may carry.
pub const BENIGN_MAX_RISK: u8 = 10;

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
        // The technique each fine type stands for, where the taxonomy names one that the
        // catalog has (the N/A placeholder is the first line).
        let mut type_techniques = Vec::with_capacity(threat_types.len());
        for name in &threat_types {
            let value = taxonomy.fine_type(name).and_then(|f| {
                let label = f.technique.as_deref()?;
                if label.trim_start().starts_with(NOT_APPLICABLE) {
                    return Some(0);
                }
                let id = f.technique_id()?.to_string();
                technique_values
                    .iter()
                    .position(|v| v.id.as_deref() == Some(id.as_str()))
            });
            type_techniques.push(match value {
                Some(i) => Some((
                    line_tokens(model, &format!("MITRE_TECHNIQUE: {}\n", technique_lines[i]))?,
                    i,
                )),
                None => None,
            });
        }
        let type_categories = threat_types
            .iter()
            .map(|t| taxonomy.category_of(t).unwrap_or_default().to_string())
            .collect();
        let type_requires_success: Vec<bool> = threat_types
            .iter()
            .map(|t| taxonomy.fine_type(t).is_some_and(|f| f.requires_success))
            .collect();
        let success_categories = threat_types
            .iter()
            .zip(&type_requires_success)
            .filter(|(_, r)| **r)
            .filter_map(|(t, _)| taxonomy.category_of(t).map(str::to_string))
            .collect();
        let severity_index = |s: Option<&String>| {
            let s = s?.parse::<Severity>().ok()?;
            Severity::ALL.iter().position(|x| *x == s)
        };
        let type_severities = threat_types
            .iter()
            .map(|t| match taxonomy.fine_type(t) {
                Some(f) => (
                    severity_index(f.severity.as_ref()),
                    severity_index(f.severity_if_succeeded.as_ref()),
                ),
                None => (None, None),
            })
            .collect();
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
            technique_beam: 1,
            type_techniques,
            technique_follows_type: true,
            type_categories,
            type_severities,
            severity_follows_type: true,
            type_requires_success,
            success_categories,
        })
    }

    /// Whether the severity follows the chosen threat type (the default): the taxonomy's
    /// severity of the type, or its `severity_if_succeeded` when the records show the
    /// attack succeeding. Severity is then a documented policy, as a rule engine's level
    /// is, and the model chooses it only for types the taxonomy gives none. `false` lets
    /// the model choose it for every type.
    pub fn with_severity_following_type(mut self, follow: bool) -> Grammar {
        self.severity_follows_type = follow;
        self
    }

    /// Whether the technique line follows the chosen threat type (the default): a type
    /// that the taxonomy maps to a technique gets that technique, and the model chooses
    /// among all techniques only for the other types. `false` lets the model choose the
    /// technique for every type.
    pub fn with_technique_following_type(mut self, follow: bool) -> Grammar {
        self.technique_follows_type = follow;
        self
    }

    /// Chooses the technique line by a beam search of this width over whole lines (ID
    /// and official name) instead of token by token; widths below 1 count as 1.
    pub fn with_technique_beam(mut self, width: usize) -> Grammar {
        self.technique_beam = width.max(1);
        self
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
    /// Where the model steps run: the model itself, or the batch runner.
    step: &'a dyn Step,
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
        let logits = self.step.step(tokens, &mut self.cache, false)?;
        self.logits = Some(logits.to_vec1::<f32>()?);
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
        self.choose_among(choice, &|_| true)
    }

    /// [`Decoder::choose`] among the values `allowed` admits: branches that lead to none
    /// of them are closed, so one allowed value is written without asking the model, and
    /// the probability is that of the choice against the allowed alternatives.
    fn choose_among(
        &mut self,
        choice: &Choice,
        allowed: &dyn Fn(usize) -> bool,
    ) -> Result<(usize, f32), ModelError> {
        let trie = &choice.trie;
        let open = open_nodes(trie, allowed);
        if !open[0] {
            return Err(ModelError::Tokenizer("grammar: no value is allowed".into()));
        }
        let mut node = 0;
        let mut prob = 1.0f32;
        loop {
            if let Some(value) = trie.terminal[node] {
                return Ok((value, prob));
            }
            let children: Vec<(u32, usize)> = trie.children[node]
                .iter()
                .copied()
                .filter(|&(_, c)| open[c])
                .collect();
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
                    for &(t, child) in &children {
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

    /// Runs `h`'s pending tokens and adds their log-probabilities (all but the first
    /// when `h.first_scored`) to `h.logp`; `h.logits` becomes the next-token logits.
    fn flush(&self, h: &mut Hyp) -> Result<(), ModelError> {
        if h.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut h.pending);
        if !h.first_scored {
            h.logp += log_prob(&h.logits, pending[0]);
        }
        h.first_scored = false;
        let rows: Vec<Vec<f32>> = if self.token_by_token {
            let mut rows = Vec::with_capacity(pending.len());
            for &t in &pending {
                let l = self.step.step(&[t], &mut h.cache, false)?;
                rows.push(l.to_vec1::<f32>()?);
            }
            rows
        } else {
            let l = self.step.step(&pending, &mut h.cache, true)?;
            l.to_vec2::<f32>()?
        };
        for (row, &t) in rows.iter().zip(&pending[1..]) {
            h.logp += log_prob(row, t);
        }
        if let Some(last) = rows.into_iter().last() {
            h.logits = last;
        }
        Ok(())
    }

    /// Beam search over `choice`'s trie: keeps the `width` likeliest partial lines and
    /// scores every line whole, forced tokens included, so a value's later tokens count
    /// (a technique's name after its ID: a small model knows "Exploit Public-Facing
    /// Application" better than the digits of T1190). Returns the best complete line
    /// and its probability against the other complete lines the search reached.
    fn choose_beam(
        &mut self,
        choice: &Choice,
        width: usize,
        allowed: &dyn Fn(usize) -> bool,
    ) -> Result<(usize, f32), ModelError> {
        let trie = &choice.trie;
        let open = open_nodes(trie, allowed);
        let logits = self.logits()?.to_vec();
        let mut beam = vec![Hyp {
            node: 0,
            cache: self.cache.clone(),
            logits,
            pending: Vec::new(),
            first_scored: false,
            logp: 0.0,
            tokens: Vec::new(),
        }];
        let mut done: Vec<(usize, Hyp)> = Vec::new();
        while !beam.is_empty() {
            // Candidate extensions: (score, parent, token, child).
            let mut candidates: Vec<(f32, usize, u32, usize)> = Vec::new();
            let mut parents = Vec::with_capacity(beam.len());
            for mut h in beam {
                loop {
                    if let Some(value) = trie.terminal[h.node] {
                        self.flush(&mut h)?;
                        done.push((value, h));
                        break;
                    }
                    match trie.children[h.node].as_slice() {
                        [] => return Err(ModelError::Tokenizer("grammar has a dead end".into())),
                        [(t, child)] => {
                            h.pending.push(*t);
                            h.tokens.push(*t);
                            h.node = *child;
                        }
                        children => {
                            self.flush(&mut h)?;
                            for &(t, child) in children.iter().filter(|&&(_, c)| open[c]) {
                                let score = h.logp + log_prob(&h.logits, t);
                                candidates.push((score, parents.len(), t, child));
                            }
                            parents.push(h);
                            break;
                        }
                    }
                }
            }
            // Log-probabilities only fall: a partial line below the best complete one
            // cannot win.
            let floor = done
                .iter()
                .map(|(_, h)| h.logp)
                .fold(f32::NEG_INFINITY, f32::max);
            candidates.retain(|c| c.0 > floor);
            candidates.sort_by(|a, b| b.0.total_cmp(&a.0));
            candidates.truncate(width);
            beam = candidates
                .into_iter()
                .map(|(score, parent, t, child)| {
                    let p = &parents[parent];
                    let mut tokens = p.tokens.clone();
                    tokens.push(t);
                    Hyp {
                        node: child,
                        cache: p.cache.clone(),
                        logits: p.logits.clone(),
                        pending: vec![t],
                        first_scored: true,
                        logp: score,
                        tokens,
                    }
                })
                .collect();
        }
        let best = done
            .iter()
            .enumerate()
            .max_by(|a, b| a.1 .1.logp.total_cmp(&b.1 .1.logp))
            .map(|(i, _)| i)
            .ok_or_else(|| ModelError::Tokenizer("grammar has no complete line".into()))?;
        let top = done[best].1.logp;
        let total: f32 = done.iter().map(|(_, h)| (h.logp - top).exp()).sum();
        let (value, h) = done.swap_remove(best);
        self.cache = h.cache;
        self.logits = Some(h.logits);
        self.out.extend_from_slice(&h.tokens);
        Ok((value, 1.0 / total))
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

/// Marks the nodes of `trie` under which a value that `allowed` admits ends. Nodes are
/// created after their parents, so one backward pass suffices.
fn open_nodes(trie: &Trie, allowed: &dyn Fn(usize) -> bool) -> Vec<bool> {
    let mut open = vec![false; trie.children.len()];
    for node in (0..trie.children.len()).rev() {
        open[node] = trie.terminal[node].is_some_and(allowed)
            || trie.children[node].iter().any(|&(_, c)| open[c]);
    }
    open
}

/// A partial line of [`Decoder::choose_beam`], with its own cache.
struct Hyp {
    node: usize,
    cache: KvCache,
    /// Next-token logits after the cached tokens.
    logits: Vec<f32>,
    /// Tokens appended but not yet run.
    pending: Vec<u32>,
    /// The first pending token's log-probability is already in `logp`.
    first_scored: bool,
    logp: f32,
    tokens: Vec<u32>,
}

fn log_prob(logits: &[f32], token: u32) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = logits.iter().map(|l| (l - max).exp()).sum();
    logits
        .get(token as usize)
        .copied()
        .unwrap_or(f32::NEG_INFINITY)
        - max
        - sum.ln()
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

/// Decodes a verdict under `grammar`, within `bounds` (see [`decode_via`]). `cache` holds
/// the prompt's first tokens (possibly none) and `prompt_rest` the others.
/// `token_by_token` runs forced tokens one forward pass each instead of in one batch (a
/// reference path for tests; same output, slower).
pub fn decode(
    model: &Model,
    grammar: &Grammar,
    cache: KvCache,
    prompt_rest: &[u32],
    narrative: Option<NarrativeLimits>,
    token_by_token: bool,
    bounds: &Bounds,
) -> Result<Decoded, ModelError> {
    let direct = Direct {
        llama: &model.llama,
        kernels: Kernels::ByRows,
    };
    decode_via(
        &direct,
        model,
        grammar,
        cache,
        prompt_rest,
        narrative,
        token_by_token,
        bounds,
    )
}

/// [`decode`] with the model steps run by `step`, the threat type within `bounds`.
///
/// Whatever the bounds, the verdict is consistent: "No Threat" comes with no technique,
/// no tactic, severity LOW and a risk score of at most [`BENIGN_MAX_RISK`]; a threat
/// comes with a technique and a risk score above 0.
#[allow(clippy::too_many_arguments)]
pub(crate) fn decode_via(
    step: &dyn Step,
    model: &Model,
    grammar: &Grammar,
    cache: KvCache,
    prompt_rest: &[u32],
    narrative: Option<NarrativeLimits>,
    token_by_token: bool,
    bounds: &Bounds,
) -> Result<Decoded, ModelError> {
    let mut d = Decoder {
        model,
        step,
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
    let within_bounds = |v: usize| {
        let category = grammar.type_categories[v].as_str();
        (bounds.benign_allowed || category != BENIGN_CATEGORY)
            && bounds
                .categories
                .as_ref()
                .is_none_or(|c| c.contains(&category))
    };
    // A type that names a success needs one in the records, and a success shown there
    // picks that type within its category (unless a user taxonomy leaves no type then).
    let fits_outcome = |v: usize| {
        let names_success = grammar.type_requires_success[v];
        match bounds.outcome {
            Outcome::Failed => !names_success,
            Outcome::Succeeded => {
                names_success
                    || !grammar
                        .success_categories
                        .contains(&grammar.type_categories[v])
            }
            Outcome::Unknown => true,
        }
    };
    let by_outcome =
        (0..grammar.threat_type.values.len()).any(|v| within_bounds(v) && fits_outcome(v));
    let type_allowed = |v: usize| within_bounds(v) && (!by_outcome || fits_outcome(v));
    let (t, p) = d.choose_among(&grammar.threat_type, &type_allowed)?;
    let type_index = t;
    conf.threat_type = p;
    let threat_type = grammar.threat_type.values[t].clone();
    let benign = grammar.type_categories[t] == BENIGN_CATEGORY;
    // Index 0 of the technique values is the N/A placeholder.
    let technique_allowed = |v: usize| (v == 0) == benign;
    let implied = grammar
        .type_techniques
        .get(t)
        .and_then(Option::as_ref)
        .filter(|_| grammar.technique_follows_type);
    // A beam of one makes the greedy choice but would report certainty (one complete
    // line); the greedy walk gives the branch probabilities.
    let (t, p) = if let Some((line, value)) = implied.filter(|(_, v)| technique_allowed(*v)) {
        // As certain as the type it follows.
        d.push(line);
        (*value, conf.threat_type)
    } else if grammar.technique_beam > 1 && !benign {
        d.choose_beam(
            &grammar.technique,
            grammar.technique_beam,
            &technique_allowed,
        )?
    } else {
        d.choose_among(&grammar.technique, &technique_allowed)?
    };
    conf.technique = p;
    let technique = grammar.technique_values[t].clone();
    let tactic_choice = grammar
        .tactics
        .get(&technique.tactics)
        .ok_or_else(|| ModelError::Tokenizer("no tactic grammar for technique".into()))?;
    let (t, p) = d.choose(tactic_choice)?;
    conf.tactic = p;
    let tactic = tactic_choice.values[t].clone();
    let low = |v: usize| grammar.severity.values[v] == Severity::Low.as_str();
    let policy = grammar
        .type_severities
        .get(type_index)
        .filter(|_| grammar.severity_follows_type && !benign)
        .and_then(|&(base, succeeded)| match bounds.outcome {
            Outcome::Succeeded => succeeded.or(base),
            _ => base,
        });
    let severity_allowed = |v: usize| match policy {
        Some(i) => v == i,
        None => !benign || low(v),
    };
    let (t, p) = d.choose_among(&grammar.severity, &severity_allowed)?;
    // A policy severity is as certain as the type it follows.
    conf.severity = if policy.is_some() {
        conf.threat_type
    } else {
        p
    };
    let severity = grammar.severity.values[t].parse::<Severity>().ok();
    // Risk score values are the numbers 0-100 in order.
    let risk_allowed = |v: usize| {
        if benign {
            v <= usize::from(BENIGN_MAX_RISK)
        } else {
            v > 0
        }
    };
    let (t, p) = d.choose_among(&grammar.risk_score, &risk_allowed)?;
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
#[path = "../../model/tests/common/mod.rs"]
mod test_models;

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    fn tiny_model(dir: &std::path::Path) -> Model {
        test_models::tiny_gguf_model(&dir.join("tiny.gguf"), 5)
    }

    fn decoder<'a>(model: &'a Model, step: &'a Direct<'a>, prompt: &[u32]) -> Decoder<'a> {
        let mut d = Decoder {
            model,
            step,
            cache: model.llama.new_cache(),
            pending: prompt.to_vec(),
            logits: None,
            out: Vec::new(),
            token_by_token: false,
        };
        d.logits().unwrap();
        d
    }

    /// Log-probability of `line` after `prompt`, by one full forward pass.
    fn line_logp(model: &Model, prompt: &[u32], line: &[u32]) -> f32 {
        let all: Vec<u32> = prompt.iter().chain(line).copied().collect();
        let input = Tensor::new(all.as_slice(), &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let rows = model
            .llama
            .forward(&input, &mut model.llama.new_cache(), true)
            .unwrap()
            .squeeze(0)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        line.iter()
            .enumerate()
            .map(|(i, &t)| log_prob(&rows[prompt.len() + i - 1], t))
            .sum()
    }

    #[test]
    fn beam_finds_the_likeliest_whole_line() {
        let dir = tempfile::tempdir().unwrap();
        let model = tiny_model(dir.path());
        let direct = Direct {
            llama: &model.llama,
            kernels: Kernels::ByRows,
        };
        // Values that branch early and then run long forced tails: the tails must count.
        let values: Vec<String> = [
            "T1 (Alpha)",
            "T1 (Beta)",
            "T12 (Gamma)",
            "T2 (delta echo foxtrot golf)",
            "T3 (hotel india juliet kilo)",
            "T4 (lima mike november oscar)",
            "N/A",
        ]
        .iter()
        .map(|v| v.to_string())
        .collect();
        let choice = choice(&model, "KEY", values.clone()).unwrap();
        let prompts: Vec<Vec<u32>> = (0..8u32)
            .map(|i| (0..4).map(|j| 40 + (i * 37 + j * 11) % 200).collect())
            .collect();
        for prompt in prompts {
            let scores: Vec<f32> = values
                .iter()
                .map(|v| {
                    let line = line_tokens(&model, &format!("KEY: {v}\n")).unwrap();
                    line_logp(&model, &prompt, &line)
                })
                .collect();
            let best = (0..values.len())
                .max_by(|&a, &b| scores[a].total_cmp(&scores[b]))
                .unwrap();
            let share = 1.0 / scores.iter().map(|s| (s - scores[best]).exp()).sum::<f32>();

            // A partial line's score is the sum of its tokens' log-probabilities.
            for (v, score) in values.iter().zip(&scores) {
                let d = decoder(&model, &direct, &prompt);
                let mut h = Hyp {
                    node: 0,
                    cache: d.cache.clone(),
                    logits: d.logits.clone().unwrap(),
                    pending: line_tokens(&model, &format!("KEY: {v}\n")).unwrap(),
                    first_scored: false,
                    logp: 0.0,
                    tokens: Vec::new(),
                };
                d.flush(&mut h).unwrap();
                assert!((h.logp - score).abs() < 1e-3, "{v}: {} vs {score}", h.logp);
            }

            let mut d = decoder(&model, &direct, &prompt);
            let (value, p) = d.choose_beam(&choice, values.len(), &|_| true).unwrap();
            assert_eq!(value, best, "{prompt:?}: {scores:?}");
            // Lines that could not win may be pruned: the share is at least the exact one.
            assert!(p >= share - 1e-4 && p <= 1.0 + 1e-6, "{p} vs {share}");
            let line = line_tokens(&model, &format!("KEY: {}\n", values[best])).unwrap();
            assert_eq!(d.out, line);
            // The decoder continues after the chosen line with that line's logits.
            let all: Vec<u32> = prompt.iter().chain(&line).copied().collect();
            let mut reference = decoder(&model, &direct, &all);
            let diff = d
                .logits()
                .unwrap()
                .iter()
                .zip(reference.logits().unwrap())
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(diff < 1e-3, "{diff}");
        }
    }

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
