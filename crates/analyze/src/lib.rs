//! From one log entry (or a rendered burst of lines) to a [`Verdict`]: build the prompt
//! around the neutralised log text, decode the answer under the verdict grammar (or
//! generate freely and read it tolerantly), and check the technique against the embedded
//! ATT&CK catalog. Evidence is quoted from the entry ([`narrate`]) and, by default,
//! impact and recommendation come from the reviewed playbook (`opensoc-narrative`).

mod batch;
mod grammar;

use std::sync::Arc;

use opensoc_attack::{parse_technique_field, Catalog, Taxonomy};
use opensoc_model::{GenerateOptions, Kernels, Model, ModelError, PrefixCache};
use opensoc_narrative::ground;
use opensoc_triage::{Assessment, Bounds, Route, Triage};
use opensoc_verdict::prompt::{Prompt, INSTRUCTION, STOP_MARKERS};
use opensoc_verdict::{parse_answer, Answer, DetectorHit, Severity, Verdict};

pub use grammar::{decode, Decoded, FieldConfidence, Grammar, NarrativeLimits, BENIGN_MAX_RISK};
pub use opensoc_narrative::{Playbook, PlaybookError};

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
    /// The model also writes evidence, impact and recommendation (bounded; under the
    /// grammar or free). `None`: decoding stops after the structured fields, and
    /// `playbook` (if any) writes them.
    pub narrative: Option<NarrativeLimits>,
    /// Where the model writes no narrative: evidence read from the spans, impact and
    /// recommendation from this playbook. `None` with no model narrative: those fields
    /// are null. Evidence spans are on every verdict either way.
    pub playbook: Option<Arc<Playbook>>,
    /// Verdicts whose confidence is below this are marked `needs_review`.
    pub min_confidence: Option<f32>,
    /// Under the grammar: beam width of the technique line (1: greedy, token by token).
    pub technique_beam: usize,
    /// Under the grammar: the technique is the one the taxonomy assigns the chosen threat
    /// type, where it assigns one; `false` lets the model choose it for every type.
    pub technique_follows_type: bool,
    /// Under the grammar: the severity is the one the taxonomy assigns the chosen threat
    /// type (and the outcome the records show), where it assigns one.
    pub severity_follows_type: bool,
    /// Detectors and the benign fast path, before the model.
    pub triage: Triage,
    /// Under the grammar: keep the verdict within what the detector signals allow (a
    /// payload is never "No Threat"; a web request's category is one its signals name).
    /// `false` only for measuring what the bounds change.
    pub signal_bounds: bool,
}

impl Default for AnalyzerConfig {
    fn default() -> Self {
        AnalyzerConfig {
            max_new_tokens: 256,
            max_input_tokens: 1024,
            instruction: INSTRUCTION.to_string(),
            constrained: true,
            // The playbook's narrative: grounded, reviewed, and about 2.8x faster than
            // decoding the model's (docs/BENCHMARKS.md).
            narrative: None,
            playbook: Some(Arc::new(Playbook::builtin().clone())),
            min_confidence: None,
            technique_beam: 1,
            technique_follows_type: true,
            severity_follows_type: true,
            triage: Triage::builtin(),
            signal_bounds: true,
        }
    }
}

/// The fine type of a fast-path verdict.
pub const NO_THREAT_TYPE: &str = "No Threat Detected — Normal Traffic";

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
                    .with_technique_following_type(config.technique_follows_type)
                    .with_severity_following_type(config.severity_follows_type),
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

    /// The triage step (detectors and fast-path rules) this analyzer applies.
    pub fn triage(&self) -> &Triage {
        &self.config.triage
    }

    /// Shortens `text` to at most `max_input_tokens` tokens. Where detectors hit, the
    /// cut keeps the text around the hits (and the record's start and end) and drops what
    /// lies between, so padding cannot push a payload out of what the model reads; else
    /// the middle goes. Every cut is marked in the text and reported in the warning.
    fn fit_input(
        &self,
        text: &str,
        assessment: &Assessment,
    ) -> Result<(String, Option<String>), ModelError> {
        let max_tokens = self.config.max_input_tokens;
        let max_bytes = max_tokens * MAX_BYTES_PER_TOKEN;
        let fits = |t: &str| -> Result<bool, ModelError> {
            Ok(t.len() <= max_bytes && self.model.tokenizer.encode(t, false)?.len() <= max_tokens)
        };
        if fits(text)? {
            return Ok((text.to_string(), None));
        }
        let hits = assessment
            .signals
            .iter()
            .filter(|s| s.class != opensoc_triage::Class::LogInjection);
        let focus = hits.fold(None, |acc: Option<(usize, usize)>, s| {
            Some(acc.map_or((s.start, s.end), |(a, b)| (a.min(s.start), b.max(s.end))))
        });
        if let Some((start, end)) = focus {
            // A few bytes per token is typical of log text; halve until it fits.
            let mut budget = max_tokens * 4;
            while budget >= 64 {
                let shown = keep_around(text, start, end, budget);
                if fits(&shown.0)? {
                    let warning = format!(
                        "input shortened to {max_tokens} tokens around the detector hits ({} bytes cut)",
                        shown.1
                    );
                    return Ok((shown.0, Some(warning)));
                }
                budget /= 2;
            }
        }
        self.cut_middle(text)
    }

    /// Shortens `text` in the middle to at most `max_input_tokens` tokens.
    fn cut_middle(&self, text: &str) -> Result<(String, Option<String>), ModelError> {
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
        let assessment = self.config.triage.assess(log_text);
        if let Some(v) = self.fast_path(id, log_text, &assessment) {
            return Ok(v);
        }
        let direct = batch::Direct {
            llama: &self.model.llama,
            kernels: Kernels::ByRows,
        };
        self.analyze_via(&direct, id, log_text, &assessment)
    }

    /// Analyses `(id, text)` entries together: triage decides what it can first, and
    /// under the grammar the model steps of the rest run in shared passes (see `batch`),
    /// which is faster on a CPU than one entry after another; verdicts come back in
    /// order, each with its own error if it failed. Every pass takes the f32 weights, so
    /// an entry's verdict does not depend on the other entries, nor on whether it came
    /// alone. Without the grammar, entries run one after another.
    pub fn analyze_batch(
        &self,
        entries: &[(String, String)],
    ) -> Vec<Result<Verdict, AnalyzeError>> {
        let mut results: Vec<Option<Result<Verdict, AnalyzeError>>> = Vec::new();
        let mut for_model = Vec::new();
        for (i, (id, text)) in entries.iter().enumerate() {
            let assessment = self.config.triage.assess(text);
            match self.fast_path(id, text, &assessment) {
                Some(v) => results.push(Some(Ok(v))),
                None => {
                    results.push(None);
                    for_model.push((i, assessment));
                }
            }
        }
        let run = |(i, assessment): &(usize, Assessment), step: &dyn batch::Step| {
            let (id, text) = &entries[*i];
            self.analyze_via(step, id, text, assessment)
        };
        let verdicts: Vec<_> = if self.grammar.is_none() || for_model.len() < 2 {
            let direct = batch::Direct {
                llama: &self.model.llama,
                kernels: Kernels::Dense,
            };
            for_model.iter().map(|item| run(item, &direct)).collect()
        } else {
            batch::run_batched(&self.model.llama, &for_model, run)
        };
        for ((i, _), v) in for_model.iter().zip(verdicts) {
            results[*i] = Some(v);
        }
        results.into_iter().flatten().collect()
    }

    /// The verdict of an entry that a fast-path rule decides, without the model; `None`
    /// when `assessment` routes it to the model.
    pub fn fast_path(&self, id: &str, text: &str, assessment: &Assessment) -> Option<Verdict> {
        let mut v = fast_path_verdict_of(self.taxonomy, id, text, assessment)?;
        narrate(&mut v, self.config.playbook.as_deref());
        Some(v)
    }

    fn analyze_via(
        &self,
        step: &dyn batch::Step,
        id: &str,
        log_text: &str,
        assessment: &Assessment,
    ) -> Result<Verdict, AnalyzeError> {
        let err = |source| AnalyzeError::Model {
            id: id.to_string(),
            source,
        };
        let (input, shortened) = self.fit_input(log_text, assessment).map_err(err)?;
        let prompt = Prompt::new(&self.config.instruction, &input);
        let ids = self
            .model
            .tokenizer
            .encode_prompt(&prompt.text())
            .map_err(err)?;
        let bounds = match &assessment.route {
            Route::Model(b) if self.config.signal_bounds => b.clone(),
            _ => Bounds::ANY,
        };
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
                    &bounds,
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
        verdict.decided_by = Some("model".to_string());
        verdict.warnings.extend(shortened);
        if input == log_text {
            annotate(&mut verdict, assessment);
        } else {
            // Offsets must point into the text the verdict shows.
            annotate(&mut verdict, &self.config.triage.assess(&input));
        }
        if self.config.narrative.is_some() {
            // The model wrote the narrative: say so, and still show what it can check.
            verdict.evidence_spans = ground(&verdict.input, &verdict.signals).spans;
            verdict.narrative_source = Some("model".to_string());
        } else {
            narrate(&mut verdict, self.config.playbook.as_deref());
        }
        Ok(verdict)
    }

    /// The playbook in force, if the playbook writes the narrative; its
    /// [`version`](Playbook::version) names it (for caches of verdicts).
    pub fn playbook(&self) -> Option<&Playbook> {
        match self.config.narrative {
            Some(_) => None,
            None => self.config.playbook.as_deref(),
        }
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

/// The verdict of entry `id` (`text`, assessed as `assessment`) from the decided fields
/// of a verdict the model gave an equivalent entry (the verdict cache): the new entry's id
/// and input, its own detector signals, its own evidence spans and, where the playbook
/// wrote the narrative, the playbook's text for this entry's facts (`playbook`: the
/// analyzer's, [`Analyzer::playbook`]); `needs_review` by the caller's threshold.
pub fn verdict_from_cached(
    id: &str,
    text: &str,
    cached: &Verdict,
    assessment: &Assessment,
    min_confidence: Option<f32>,
    playbook: Option<&Playbook>,
) -> Verdict {
    let mut v = cached.clone();
    v.id = id.to_string();
    v.input = text.to_string();
    v.signals.clear();
    // Re-derived below for this entry's text.
    v.warnings
        .retain(|w| !w.starts_with("evidence quotes ") && !w.contains("imitates the analyst"));
    v.needs_review = matches!((min_confidence, v.confidence), (Some(min), Some(c)) if c < min);
    annotate(&mut v, assessment);
    if v.narrative_source.as_deref() == Some("model") {
        check_grounding(&mut v);
        v.evidence_spans = ground(&v.input, &v.signals).spans;
    } else {
        narrate(&mut v, playbook);
    }
    v
}

/// Quotes the evidence of a verdict from its `input` and `signals` (`evidence_spans`,
/// every verdict) and, given a playbook, writes `evidence` (the spans in one line),
/// `impact` and `recommendation` (the playbook's play for the verdict's threat type,
/// technique and category, with the entry's facts), `narrative_source: "playbook"`.
/// Without a playbook the three fields are null.
pub fn narrate(v: &mut Verdict, playbook: Option<&Playbook>) {
    let grounding = ground(&v.input, &v.signals);
    v.evidence = None;
    v.impact = None;
    v.recommendation = None;
    v.narrative_source = None;
    if let Some(book) = playbook {
        v.evidence = grounding.evidence_line();
        if let Some(advice) = book.advise(
            v.threat_type.as_deref(),
            v.technique_id.as_deref(),
            v.category.as_deref(),
            &grounding.facts,
        ) {
            v.impact = Some(advice.impact.clone());
            v.recommendation = Some(advice.recommendation());
        }
        v.narrative_source = Some("playbook".to_string());
    }
    v.evidence_spans = grounding.spans;
}

/// Adds triage's detector hits to a verdict; text that imitates the analyst's prompt or
/// answer marks it for review (it never changes the decision: see `opensoc-triage`).
fn annotate(v: &mut Verdict, assessment: &Assessment) {
    v.signals = assessment
        .signals
        .iter()
        .map(|s| DetectorHit {
            class: s.class.name().to_string(),
            rule: s.rule.to_string(),
            start: s.start,
            end: s.end,
            text: s.text.clone(),
            decoded: s.decoded,
        })
        .collect();
    if assessment.injection_attempt() {
        v.needs_review = true;
        v.warnings.push(
            "the log text imitates the analyst's prompt or answer format (possible attempt to steer the verdict)"
                .to_string(),
        );
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

/// `text` with only its first and last bytes and the bytes around `start..end` kept,
/// about `budget` bytes in all, cuts marked; and how many bytes were cut.
fn keep_around(text: &str, start: usize, end: usize, budget: usize) -> (String, usize) {
    let focus_len = (end - start).min(budget / 2);
    let end = floor_char_boundary(text, start + focus_len);
    let start = floor_char_boundary(text, start);
    let edge = (budget - focus_len) / 2;
    let head = floor_char_boundary(text, edge.min(start));
    let tail = ceil_char_boundary(text, text.len().saturating_sub(edge).max(end));
    let mut out = String::with_capacity(budget + 64);
    let mut cut = 0;
    out.push_str(&text[..head]);
    if start > head {
        cut += start - head;
        out.push_str(&format!("\n[... {} bytes cut ...]\n", start - head));
    }
    out.push_str(&text[start..end]);
    if tail > end {
        cut += tail - end;
        out.push_str(&format!("\n[... {} bytes cut ...]\n", tail - end));
    }
    out.push_str(&text[tail..]);
    (out, cut)
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

/// The fast-path verdict of an entry, without a model: for a coordinator that keeps
/// triage on the collecting machine and sends only the rest to workers
/// (`opensoc analyze --publish`). `None` when the entry needs the model.
pub fn fast_path_verdict(triage: &Triage, id: &str, text: &str) -> Option<Verdict> {
    fast_path_verdict_of(Taxonomy::builtin(), id, text, &triage.assess(text))
}

fn fast_path_verdict_of(
    taxonomy: &Taxonomy,
    id: &str,
    text: &str,
    assessment: &Assessment,
) -> Option<Verdict> {
    let Route::FastPath { rule } = &assessment.route else {
        return None;
    };
    // The answer the grammar would write for it, so readers of `raw_output` (the
    // paper's strict protocol, other tools) see the same verdict.
    let raw = format!(
        "THREAT_TYPE: {NO_THREAT_TYPE}\nMITRE_TECHNIQUE: N/A (N/A)\nMITRE_TACTIC: N/A\nSEVERITY: LOW\nRISK_SCORE: 0"
    );
    let mut v = Verdict::from_answer(id.to_string(), text.to_string(), raw, Answer::default());
    v.threat_type = Some(NO_THREAT_TYPE.to_string());
    v.category = taxonomy.category_of(NO_THREAT_TYPE).map(str::to_string);
    v.severity = Some(Severity::Low);
    v.risk_score = Some(0);
    v.decided_by = Some("fast-path".to_string());
    v.fast_path_rule = Some(rule.clone());
    annotate(&mut v, assessment);
    Some(v)
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
    fn the_cut_keeps_the_hits_and_the_edges() {
        let pad = "A".repeat(4000);
        let text = format!("10.0.0.1 GET /x?{pad}&id=1%27%20OR%201=1--&{pad} HTTP/1.1 200");
        let start = text.find("1%27").unwrap();
        let end = start + "1%27%20OR%201=1--".len();
        let (kept, cut) = keep_around(&text, start, end, 512);
        assert!(cut > 7000, "{cut}");
        assert!(kept.starts_with("10.0.0.1 GET"), "{kept}");
        assert!(kept.contains("1%27%20OR%201=1--"), "{kept}");
        assert!(kept.ends_with("HTTP/1.1 200"), "{kept}");
        assert_eq!(kept.matches("bytes cut").count(), 2);
        assert!(kept.len() < 700, "{}", kept.len());
        // A hit longer than half the budget is itself shortened, never the edges lost.
        let (kept, _) = keep_around(&text, 0, text.len(), 256);
        assert!(kept.len() < 400);
    }

    #[test]
    fn a_cached_verdict_is_rebound_to_the_new_entry() {
        let line = |ip: &str| {
            format!(
                r#"{ip} - - [12/Nov/2026:09:14:02 +0000] "GET /p.php?id=1%27%20OR%201=1-- HTTP/1.1" 200 51 "-" "curl/8""#
            )
        };
        let (old, new) = (line("203.0.113.5"), line("198.51.100.77"));
        let triage = Triage::builtin();
        let mut cached = Verdict::from_answer(
            "a.log:1".into(),
            old.clone(),
            "raw".into(),
            Answer::default(),
        );
        cached.threat_type = Some("SQL Injection — Boolean-based SQLi".into());
        cached.category = Some("SQL INJECTION".into());
        cached.technique_id = Some("T1190".into());
        cached.severity = Some(Severity::High);
        cached.risk_score = Some(80);
        cached.confidence = Some(0.6);
        cached.decided_by = Some("model".into());
        // Evidence the model wrote, quoting the old client: grounded there, not in the
        // new entry.
        cached.evidence = Some("request \"203.0.113.5\" sent a tautology".into());
        cached.narrative_source = Some("model".into());
        annotate(&mut cached, &triage.assess(&old));
        let a = triage.assess(&new);
        let v = verdict_from_cached("b.log:9", &new, &cached, &a, Some(0.8), None);
        assert_eq!((v.id.as_str(), v.input.as_str()), ("b.log:9", new.as_str()));
        assert_eq!(v.threat_type, cached.threat_type);
        assert_eq!((v.severity, v.risk_score), (Some(Severity::High), Some(80)));
        assert!(v.needs_review, "confidence 0.6 is under 0.8");
        // Signals point into the new input.
        assert!(!v.signals.is_empty());
        let starts = |hits: &[DetectorHit]| hits.iter().map(|s| s.start).collect::<Vec<_>>();
        let expected: Vec<usize> = a.signals.iter().map(|s| s.start).collect();
        assert_eq!(starts(&v.signals), expected);
        assert_ne!(v.signals[0].start, cached.signals[0].start);
        assert!(
            v.warnings.iter().any(|w| w.contains("203.0.113.5")),
            "{:?}",
            v.warnings
        );
        // The evidence spans quote the new entry.
        assert!(v.evidence_spans.iter().any(|s| s.text == "198.51.100.77"));
        assert!(v.evidence_spans.iter().all(|s| s.text != "203.0.113.5"));
    }

    #[test]
    fn char_boundaries() {
        let s = "aé€b";
        assert_eq!(floor_char_boundary(s, 2), 1);
        assert_eq!(ceil_char_boundary(s, 2), 3);
    }
}
