//! Triage between intake and the model: what deterministic code knows about an entry
//! before a language model reads it.
//!
//! * [`decode`]: percent (double), `%u`, `+`, HTML-entity and `\x` decoding, as a server
//!   would decode a payload before it runs.
//! * [`signals`]: detector hits on the decoded parts of each record (request path, every
//!   query value, user agent, referer; a syslog message; a Windows event): SQL injection
//!   (own rules and libinjection), XSS, command and code injection, traversal, file
//!   inclusion, malicious command lines, scanner agents, probe paths, large responses,
//!   auth failures, and log text that imitates the analyst's own prompt or answer.
//! * [`rules`]: the benign fast path, as data (`data/fast-path.toml`).
//!
//! [`Triage::assess`] turns these into a [`Route`]: decided benign by a fast-path rule,
//! or the model within [`Bounds`]: a request that carries a payload can never be called
//! "No Threat", and a single web request's category is one its signals allow. A detector
//! cannot be talked out of its hits by text in the log; the model still chooses the fine
//! type, severity and score, and decides everything no detector covers.
//!
//! ```
//! use opensoc_triage::{Route, Triage};
//! let triage = Triage::builtin();
//! let a = triage.assess(r#"10.0.0.5 - - [12/Nov/2026:09:14:02 +0000] "GET /index.html HTTP/1.1" 200 512 "-" "Mozilla/5.0""#);
//! assert!(matches!(a.route, Route::FastPath { .. }));
//! let a = triage.assess(r#"10.0.0.5 - - [12/Nov/2026:09:14:02 +0000] "GET /p.php?id=1%2527%2520OR%25201=1-- HTTP/1.1" 200 512 "-" "Mozilla/5.0""#);
//! let Route::Model(bounds) = a.route else { panic!() };
//! assert!(!bounds.benign_allowed);
//! assert_eq!(bounds.categories.as_deref(), Some(&["SQL INJECTION"][..]));
//! ```

pub mod decode;
pub mod rules;
pub mod signals;

use opensoc_ingest::Format;

pub use rules::{FastPathRules, RulesError};

/// Longest entry text the fast path decides (16 KiB: an ordinary record, request or
/// event is a few hundred bytes to a few KiB).
pub const MAX_FAST_PATH_BYTES: usize = 16 * 1024;
pub use signals::{Class, Signal};

/// Where an entry goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Decided "No Threat" without the model by the named rule.
    FastPath { rule: String },
    /// The model decides, within these bounds.
    Model(Bounds),
}

/// What the model's verdict may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bounds {
    /// Taxonomy categories the threat type must be among; `None`: any.
    pub categories: Option<Vec<&'static str>>,
    /// Whether "No Threat" is possible.
    pub benign_allowed: bool,
    /// Whether the attack evidently succeeded; severity may follow it (see the
    /// taxonomy's `severity_if_succeeded`).
    pub outcome: Outcome,
}

impl Bounds {
    pub const ANY: Bounds = Bounds {
        categories: None,
        benign_allowed: true,
        outcome: Outcome::Unknown,
    };
}

/// Whether the server or the system let the attempt through, as the records show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Outcome {
    /// A 2xx answer to a single web request; a successful login in a burst of failures.
    Succeeded,
    /// A 4xx or 5xx answer to a single web request; a burst of failures with no success.
    Failed,
    /// Nothing in the records says.
    #[default]
    Unknown,
}

/// What triage found in one entry.
#[derive(Debug, Clone)]
pub struct Assessment {
    pub signals: Vec<Signal>,
    /// Records in the entry (1 for a single line or event; more for incidents and blocks).
    pub records: usize,
    /// Format of the first record.
    pub format: Format,
    pub route: Route,
}

impl Assessment {
    /// Whether some text in the entry imitates the analyst's prompt or answer.
    pub fn injection_attempt(&self) -> bool {
        self.signals.iter().any(|s| s.class == Class::LogInjection)
    }
}

/// The triage step: detectors plus fast-path rules.
#[derive(Debug, Clone)]
pub struct Triage {
    rules: FastPathRules,
}

/// Lines of an incident's rendering that summarise rather than record an event.
fn is_summary_line(line: &str) -> bool {
    let t = line.trim_start();
    t.starts_with("[...") || t.starts_with("[... ")
}

impl Triage {
    /// Detectors with the built-in fast-path rules.
    pub fn builtin() -> Triage {
        Triage {
            rules: FastPathRules::builtin(),
        }
    }

    pub fn new(rules: FastPathRules) -> Triage {
        Triage { rules }
    }

    /// Assesses one entry's text (what the model would read: a record, a block, or an
    /// incident's rendering).
    pub fn assess(&self, text: &str) -> Assessment {
        let mut signals = Vec::new();
        let mut records = 0usize;
        let mut first = None;
        // (any success, any failure) among the records.
        let mut outcomes = (false, false);
        let mut elided = false;
        let mut own_summary = false;
        let mut note = |ev: &opensoc_ingest::LogEvent| match ev.succeeded() {
            Some(true) => outcomes.0 = true,
            Some(false) => outcomes.1 = true,
            None => {}
        };
        let trimmed = text.trim_start();
        // Multi-line Windows records are one record; everything else is one per line.
        if trimmed.starts_with("EventID:") || trimmed.starts_with("<Event") {
            let ev = signals::record_signals(text.len() - trimmed.len(), trimmed, &mut signals);
            note(&ev);
            records = 1;
            first = Some(ev);
        } else {
            let mut base = 0usize;
            for line in text.split('\n') {
                let at = base;
                base += line.len() + 1;
                if line.trim().is_empty() {
                    continue;
                }
                if is_summary_line(line) {
                    // An incident: more than one event, whatever was shown.
                    records = records.max(2);
                    // OpenSOC's own summary names the source, and its incidents always
                    // show the success that ended a burst; other renderings (the paper's
                    // `[...29 total attempts...]`) may have left one out.
                    if opensoc_ingest::is_incident_summary(line) {
                        own_summary = true;
                    } else {
                        elided = true;
                    }
                    continue;
                }
                let ev = signals::record_signals(at, line, &mut signals);
                note(&ev);
                records += 1;
                first.get_or_insert(ev);
            }
        }
        let format = first.as_ref().map_or(Format::Plain, |e| e.format);
        let elided = elided && !own_summary;
        // A record far longer than any ordinary line (padding that pushes a payload out
        // of sight is an evasion) is never decided without the model, which reads it cut
        // around the detector hits.
        let oversized = text.len() > MAX_FAST_PATH_BYTES;
        let route = self.route(
            &signals,
            records,
            format,
            first.as_ref().filter(|_| !oversized),
            outcomes,
            elided,
        );
        Assessment {
            signals,
            records,
            format,
            route,
        }
    }

    fn route(
        &self,
        signals: &[Signal],
        records: usize,
        format: Format,
        first: Option<&opensoc_ingest::LogEvent>,
        (any_success, any_failure): (bool, bool),
        elided: bool,
    ) -> Route {
        let has = |c: Class| signals.iter().any(|s| s.class == c);
        // Text that imitates the analyst is flagged on the verdict, but neither raises
        // nor lowers the decision: otherwise an attacker could force either.
        let decisive = signals.iter().any(|s| s.class != Class::LogInjection);
        if records == 1 && !decisive {
            if let Some(rule) = first.and_then(|ev| self.rules.decide(ev)) {
                return Route::FastPath {
                    rule: rule.name.clone(),
                };
            }
        }
        let payload: Vec<&Signal> = signals.iter().filter(|s| s.class.is_payload()).collect();
        let web = matches!(
            format,
            Format::AccessCombined | Format::AccessCommon | Format::W3c
        );
        let recon = has(Class::Scanner) || has(Class::Probe);
        let mut bounds = Bounds {
            categories: None,
            benign_allowed: payload.is_empty() && !(records == 1 && recon),
            outcome: Outcome::Unknown,
        };
        if records == 1 {
            bounds.outcome = match (any_success, any_failure) {
                (true, _) => Outcome::Succeeded,
                (false, true) => Outcome::Failed,
                _ => Outcome::Unknown,
            };
        }
        // A burst of failed logins is a guessing attack whatever the user names say; a
        // success among them is what matters most.
        let auth_failures = signals
            .iter()
            .filter(|s| s.class == Class::AuthFailure)
            .count();
        let web_denials = records > 1 && web && any_failure;
        if records > 1 && (auth_failures >= 2 || web_denials) {
            // Lines left out of a rendering could hide a success: then nobody knows.
            bounds.outcome = match (any_success, elided) {
                (true, _) => Outcome::Succeeded,
                (false, false) => Outcome::Failed,
                (false, true) => Outcome::Unknown,
            };
        }
        if records > 1 && auth_failures >= 2 && payload.is_empty() {
            bounds.benign_allowed = false;
            bounds.categories = Some(Class::AuthFailure.categories().to_vec());
        }
        if records == 1 && web {
            let mut cats: Vec<&'static str> = Vec::new();
            let mut add = |c: &[&'static str]| {
                for x in c {
                    if !cats.contains(x) {
                        cats.push(x);
                    }
                }
            };
            if !payload.is_empty() {
                // A file named in a command is the command's argument (`;cat /etc/shadow`
                // is command injection); a file reached by `../` is a traversal.
                let has = |c: Class| payload.iter().any(|s| s.class == c);
                let command = has(Class::CommandInjection) || has(Class::MaliciousCommand);
                let dotdot = has(Class::PathTraversal);
                // libinjection reads SQL into quoted script and script into SQL: a class
                // only it raised yields to a class one of the rules raised.
                let by_rule = |c: Class| {
                    payload
                        .iter()
                        .any(|s| s.class == c && !s.rule.starts_with("libinjection"))
                };
                let any_rule = payload.iter().any(|s| !s.rule.starts_with("libinjection"));
                for s in &payload {
                    let subsumed = match s.class {
                        Class::FileInclusion => command || dotdot,
                        Class::PathTraversal => command,
                        _ => false,
                    } || (any_rule && !by_rule(s.class));
                    if !subsumed {
                        add(s.class.categories());
                    }
                }
                // libinjection alone also flags some ordinary text (quoted search
                // terms, lists of numbers): the model may still call those benign.
                if payload.iter().all(|s| s.rule.starts_with("libinjection")) {
                    add(&["NO THREAT"]);
                    bounds.benign_allowed = !(records == 1 && recon);
                }
            } else if recon {
                add(Class::Probe.categories());
            } else if has(Class::LargeResponse) {
                add(Class::LargeResponse.categories());
                add(&["NO THREAT"]);
            }
            if !cats.is_empty() {
                bounds.categories = Some(cats);
            }
        }
        Route::Model(bounds)
    }
}

#[cfg(test)]
mod tests;
