//! Evidence spans: the slices of an entry a verdict rests on, chosen by deterministic code
//! (the parsers' fields, the incident summary line, the detectors' hits), never written by
//! a model. Every span is checked against the entry when it is made: its text is
//! `input[start..end]`, or that slice decoded as a server would decode it (`decoded`).

use std::sync::LazyLock;

use opensoc_ingest::{parse_line, Format, LogEvent};
use opensoc_triage::decode::decode;
use opensoc_verdict::{DetectorHit, EvidenceSpan};
use regex::Regex;

/// At most this many spans per verdict: evidence, not a copy of the entry.
pub const MAX_SPANS: usize = 12;
/// At most this many distinct values of one kind (users, paths) per verdict.
const MAX_PER_KIND: usize = 3;
/// Longest quotation of one span in the one-line `evidence`.
const MAX_QUOTE_CHARS: usize = 100;

/// The facts of an entry a playbook is parameterised with, read by the parsers. Each is
/// the text of an evidence span, so a rendered playbook never names what the log lacks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// Source (client, attacker) address.
    pub address: Option<String>,
    /// Account names, in order of appearance.
    pub users: Vec<String>,
    /// Request path (without the query).
    pub path: Option<String>,
    /// The program or service that logged it (`sshd`, `web server`, `Windows`).
    pub service: Option<String>,
    /// The host that logged it.
    pub host: Option<String>,
    /// Windows event ID.
    pub event_id: Option<String>,
    /// Events in the entry (the incident's count where a summary line says it).
    pub count: usize,
    /// Whether the entry itself shows a successful login.
    pub login_accepted: bool,
}

/// Evidence spans and facts of one entry.
#[derive(Debug, Clone, Default)]
pub struct Grounding {
    pub spans: Vec<EvidenceSpan>,
    pub facts: Facts,
}

impl Grounding {
    /// The one-line readable `evidence`: the spans in order of weight, grouped by kind.
    pub fn evidence_line(&self) -> Option<String> {
        evidence_line(&self.spans, self.facts.count)
    }
}

/// Order of weight of the kinds of span: what makes the verdict first.
fn weight(what: &str) -> u8 {
    match what {
        "sqli" | "xss" | "command-injection" | "path-traversal" | "file-inclusion"
        | "malicious-command" => 0,
        "login-accepted" => 1,
        "incident-count" | "incident-time" | "incident-summary" => 2,
        "auth-failure" | "scanner" | "probe" | "large-response" => 3,
        "event-id" | "event" => 4,
        "source-address" => 5,
        "user" => 6,
        "request-path" | "status" => 7,
        _ => 8,
    }
}

fn label(what: &str) -> &str {
    match what {
        "sqli" => "SQL injection",
        "xss" => "cross-site scripting",
        "command-injection" => "command injection",
        "path-traversal" => "path traversal",
        "file-inclusion" => "file inclusion",
        "malicious-command" => "malicious command",
        "login-accepted" => "accepted login",
        "incident-count" => "incident",
        "incident-time" => "time",
        "incident-summary" => "summary",
        "auth-failure" => "failed login",
        "scanner" => "scanner",
        "probe" => "probe path",
        "large-response" => "response bytes",
        "event-id" => "event ID",
        "event" => "event",
        "source-address" => "from",
        "user" => "user",
        "request-path" => "path",
        "status" => "status",
        "log-injection" => "text imitating the analyst",
        other => other,
    }
}

/// Kinds quoted in the line (attacker-chosen text); the rest are plain facts.
fn quoted(what: &str) -> bool {
    weight(what) == 0
        || matches!(
            what,
            "scanner" | "probe" | "log-injection" | "login-accepted" | "event"
        )
}

/// Builds the evidence of an entry from its text and the detector hits on it (offsets in
/// the same text).
pub fn ground(input: &str, signals: &[DetectorHit]) -> Grounding {
    let mut b = Builder {
        input,
        spans: Vec::new(),
        facts: Facts::default(),
    };
    for hit in signals {
        b.signal(hit);
    }
    let mut records = 0usize;
    for (at, record) in records_of(input) {
        if let Some(summary) = record.strip_prefix('[') {
            b.summary_line(at + 1, summary);
            continue;
        }
        records += 1;
        let ev = parse_line(record);
        b.record(at, record, &ev);
    }
    if b.facts.count == 0 {
        b.facts.count = records;
    }
    let mut spans = b.spans;
    // Stable: within a weight, the order the entry has.
    spans.sort_by_key(|s| (weight(&s.what), s.start));
    spans.truncate(MAX_SPANS);
    Grounding {
        spans,
        facts: b.facts,
    }
}

/// The records of an entry with their byte offsets: one multi-line Windows record, or
/// one per non-empty line (bracketed summary lines included, marked by their `[`).
fn records_of(input: &str) -> Vec<(usize, &str)> {
    let trimmed = input.trim_start();
    if trimmed.starts_with("EventID:") || trimmed.starts_with("<Event") {
        return vec![(input.len() - trimmed.len(), trimmed)];
    }
    let mut out = Vec::new();
    let mut base = 0usize;
    for line in input.split('\n') {
        let at = base;
        base += line.len() + 1;
        let line = line.trim_end_matches('\r');
        if !line.trim().is_empty() {
            let lead = line.len() - line.trim_start().len();
            out.push((at + lead, line.trim()));
        }
    }
    out
}

struct Builder<'a> {
    input: &'a str,
    spans: Vec<EvidenceSpan>,
    facts: Facts,
}

/// Grouper summary: `[...6 total failed auth attempts from 1.2.3.4 over 11s (~33/minute),
/// T1 to T2; users (4): ...]` (see `opensoc_ingest::Incident::render`).
static INCIDENT: LazyLock<Regex> = LazyLock::new(|| {
    #[allow(clippy::expect_used)] // a constant pattern, exercised by the tests
    Regex::new(r"^\.\.\.(\d+) total [^,;\]]*? from \S+?(?: within 1s| over \S+ \(~\d+/minute\))?, (\S+ to \S+?)(?:;|\.\.\.\]|$)")
        .expect("valid pattern")
});

/// A successful SSH login, the sign that a guessing attack worked.
static ACCEPTED: LazyLock<Regex> = LazyLock::new(|| {
    #[allow(clippy::expect_used)] // a constant pattern, exercised by the tests
    Regex::new(r"Accepted (?:password|publickey|keyboard-interactive(?:/pam)?|gssapi-with-mic|hostbased) for \S+ from \S+")
        .expect("valid pattern")
});

impl<'a> Builder<'a> {
    /// Adds `input[start..end]` as a span, if it is a non-empty slice on char boundaries
    /// not already shown for the same kind.
    fn raw(&mut self, start: usize, end: usize, what: &str) -> bool {
        if start >= end
            || self
                .spans
                .iter()
                .any(|s| s.what == what && s.start == start)
        {
            return false;
        }
        let Some(text) = self.input.get(start..end) else {
            return false;
        };
        self.spans.push(EvidenceSpan {
            start,
            end,
            text: text.to_string(),
            what: what.to_string(),
            decoded: false,
        });
        true
    }

    /// How many spans of a kind there are.
    fn count(&self, what: &str) -> usize {
        self.spans.iter().filter(|s| s.what == what).count()
    }

    /// A detector hit, re-checked against the entry: a hit whose text is neither its slice
    /// nor the slice decoded is anchored where its text really is, or left out.
    fn signal(&mut self, hit: &DetectorHit) {
        // One span per place: several rules on one value say the same thing.
        if self
            .spans
            .iter()
            .any(|s| s.start == hit.start && s.end == hit.end && weight(&s.what) == 0)
        {
            return;
        }
        // The same text on every line of a burst (a scanner's agent) is one piece of
        // evidence, and a few of a kind say enough.
        if self
            .spans
            .iter()
            .any(|s| s.what == hit.class && s.text.starts_with(hit.text.as_str()))
            || self.count(&hit.class) >= MAX_PER_KIND
        {
            return;
        }
        let Some(slice) = self.input.get(hit.start..hit.end) else {
            return;
        };
        if slice == hit.text {
            self.raw(hit.start, hit.end, &hit.class);
            return;
        }
        if hit.decoded {
            // The detector keeps at most 200 bytes of the decoded text: take it whole.
            for plus_is_space in [true, false] {
                let full = decode(slice, plus_is_space);
                if full != slice && full.starts_with(hit.text.as_str()) {
                    self.spans.push(EvidenceSpan {
                        start: hit.start,
                        end: hit.end,
                        text: full,
                        what: hit.class.clone(),
                        decoded: true,
                    });
                    return;
                }
            }
        }
        // A hit on the slice's own text that the slice does not start with (a match
        // inside a longer field): point at the match itself.
        if !hit.text.is_empty() {
            if let Some(at) = slice.find(hit.text.as_str()) {
                let start = hit.start + at;
                self.raw(start, start + hit.text.len(), &hit.class);
            }
        }
    }

    /// A bracketed line: the grouper's incident summary, or a summary the log writer put
    /// there (`[10000 requests/second from this IP — 16 minute duration]`).
    fn summary_line(&mut self, at: usize, inner: &'a str) {
        if inner.starts_with("... ") || inner.starts_with("...]") {
            // `[... N more ...]`, `[... N bytes cut ...]`: markers, not evidence.
            return;
        }
        if let Some(c) = INCIDENT.captures(inner) {
            if let (Some(count), Some(times)) = (c.get(1), c.get(2)) {
                let whole_count = inner[count.start()..]
                    .find(" from ")
                    .map_or(count.end(), |i| count.start() + i);
                self.raw(at + count.start(), at + whole_count, "incident-count");
                self.raw(at + times.start(), at + times.end(), "incident-time");
                if let Ok(n) = count.as_str().parse::<usize>() {
                    self.facts.count = n;
                }
                self.summary_users(at, inner);
                return;
            }
        }
        let inner = inner.strip_suffix(']').unwrap_or(inner).trim();
        if !inner.is_empty() && self.count("incident-summary") < MAX_PER_KIND {
            // `inner` is a slice of the input: its offset is the pointers' distance.
            let start = inner.as_ptr() as usize - self.input.as_ptr() as usize;
            self.raw(start, start + inner.len(), "incident-summary");
        }
    }

    /// The `; users (N): a, b, c` list of a grouper summary: every user of the incident,
    /// not only those of the lines shown.
    fn summary_users(&mut self, at: usize, inner: &str) {
        let Some(i) = inner.find("; users (") else {
            return;
        };
        let Some(colon) = inner[i..].find("): ").map(|c| i + c + 3) else {
            return;
        };
        let end = inner[colon..]
            .find([';', ']'])
            .map_or(inner.len(), |e| colon + e);
        let end = if inner[..end].ends_with("...") {
            end - 3
        } else {
            end
        };
        let mut pos = colon;
        for name in inner[colon..end].split(", ") {
            let start = pos;
            pos += name.len() + 2;
            // `+3 more` is a count, not a user.
            if name.is_empty() || (name.starts_with('+') && name.ends_with(" more")) {
                continue;
            }
            if !self.facts.users.iter().any(|u| u == name) {
                self.facts.users.push(name.to_string());
                if self.count("user") < MAX_PER_KIND {
                    self.raw(at + start, at + start + name.len(), "user");
                }
            }
        }
    }

    /// Offset in the input of `value` as a whole token of `record` (which starts at
    /// `at`), searching from byte `from` of the record.
    fn token(record: &str, value: &str, from: usize) -> Option<usize> {
        if value.is_empty() {
            return None;
        }
        let hay = record.get(from..)?;
        let edge = |c: Option<char>| c.is_none_or(|c| !(c.is_alphanumeric() || "._-@".contains(c)));
        hay.match_indices(value).map(|(i, _)| from + i).find(|&i| {
            edge(record[..i].chars().next_back()) && edge(record[i + value.len()..].chars().next())
        })
    }

    fn field_span(
        &mut self,
        at: usize,
        record: &str,
        value: &str,
        from: usize,
        what: &str,
    ) -> Option<usize> {
        let i = Self::token(record, value, from)?;
        self.raw(at + i, at + i + value.len(), what);
        Some(i + value.len())
    }

    fn record(&mut self, at: usize, record: &str, ev: &LogEvent) {
        if let Some(src) = ev.source.as_deref() {
            if self.facts.address.is_none() {
                self.facts.address = Some(src.to_string());
            }
            if !self
                .spans
                .iter()
                .any(|s| s.what == "source-address" && s.text == src)
                && self.count("source-address") < MAX_PER_KIND
            {
                self.field_span(at, record, src, 0, "source-address");
            }
        }
        if let Some(user) = ev.user.as_deref() {
            if !self.facts.users.iter().any(|u| u == user) {
                self.facts.users.push(user.to_string());
                if self.count("user") < MAX_PER_KIND {
                    // After the source: `Failed password for root from ...` names the
                    // user later than a host called `root-server` might.
                    let from = record.find(" for ").map_or(0, |i| i + 5);
                    if self.field_span(at, record, user, from, "user").is_none() {
                        self.field_span(at, record, user, 0, "user");
                    }
                }
            }
        }
        if self.facts.host.is_none() {
            self.facts.host = ev.host.clone();
        }
        match ev.format {
            Format::AccessCombined | Format::AccessCommon | Format::W3c => {
                self.facts
                    .service
                    .get_or_insert_with(|| "web server".to_string());
                let target = ev.field("url").or(ev.field("path")).unwrap_or("");
                let path = target.split_once('?').map_or(target, |(p, _)| p);
                let mut after = 0;
                if !path.is_empty() {
                    if self.facts.path.is_none() {
                        self.facts.path = Some(path.to_string());
                    }
                    let known = self
                        .spans
                        .iter()
                        .any(|s| s.what == "request-path" && s.text == path);
                    if !known && self.count("request-path") < MAX_PER_KIND {
                        if let Some(end) = self.field_span(at, record, path, 0, "request-path") {
                            after = end;
                        }
                    } else if let Some(i) = Self::token(record, path, 0) {
                        after = i + path.len();
                    }
                }
                if let Some(status) = ev.field("status") {
                    let known = self
                        .spans
                        .iter()
                        .any(|s| s.what == "status" && s.text == status);
                    if !known && self.count("status") < MAX_PER_KIND {
                        self.field_span(at, record, status, after, "status");
                    }
                }
            }
            Format::WindowsText | Format::WindowsXml | Format::Evtx | Format::Ecs => {
                self.facts
                    .service
                    .get_or_insert_with(|| "Windows".to_string());
                if let Some(id) = ev.field("event_id") {
                    self.facts.event_id.get_or_insert_with(|| id.to_string());
                    let from = record.find("EventID").unwrap_or(0);
                    self.field_span(at, record, id, from, "event-id");
                }
                if let Some(d) = ev.field("description") {
                    let from = record.find("Description").unwrap_or(0);
                    self.field_span(at, record, d, from, "event");
                }
            }
            _ => {
                if let Some(program) = ev.field("program") {
                    self.facts
                        .service
                        .get_or_insert_with(|| program.to_string());
                }
            }
        }
        if let Some(m) = ACCEPTED.find(record) {
            self.facts.login_accepted = true;
            self.raw(at + m.start(), at + m.end(), "login-accepted");
        }
    }
}

/// `label: value, value; label: "quoted"; ...` in the spans' order.
fn evidence_line(spans: &[EvidenceSpan], records: usize) -> Option<String> {
    let mut groups: Vec<(&str, Vec<String>)> = Vec::new();
    for s in spans {
        let mut text = one_line(&s.text);
        if quoted(&s.what) {
            text = format!("\"{text}\"");
        }
        if s.decoded {
            text.push_str(" (decoded)");
        }
        match groups.iter_mut().find(|(w, _)| *w == s.what) {
            Some((_, v)) => {
                if !v.contains(&text) {
                    v.push(text)
                }
            }
            None => groups.push((&s.what, vec![text])),
        }
    }
    if groups.is_empty() {
        return None;
    }
    let mut parts: Vec<String> = groups
        .iter()
        .map(|(what, values)| format!("{}: {}", label(what), values.join(", ")))
        .collect();
    let has_count = spans.iter().any(|s| s.what == "incident-count");
    if records > 1 && !has_count {
        parts.push(format!("{records} records"));
    }
    Some(parts.join("; "))
}

/// Control characters and line breaks as spaces, long text shortened with `…`.
fn one_line(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_QUOTE_CHARS + 1)
        .collect();
    if out.chars().count() > MAX_QUOTE_CHARS {
        out = out.chars().take(MAX_QUOTE_CHARS).collect();
        out.push('…');
    }
    out
}

/// Whether a span is grounded in `input`: its text is the slice, or (when marked
/// decoded) the slice decoded. The property the tests check over every fixture.
pub fn is_grounded(input: &str, span: &EvidenceSpan) -> bool {
    let Some(slice) = input.get(span.start..span.end) else {
        return false;
    };
    if span.decoded {
        span.text != slice
            && (decode(slice, true) == span.text || decode(slice, false) == span.text)
    } else {
        span.text == slice
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(class: &str, input: &str, raw: &str, text: &str, decoded: bool) -> DetectorHit {
        let start = input.find(raw).unwrap();
        DetectorHit {
            class: class.into(),
            rule: "r".into(),
            start,
            end: start + raw.len(),
            text: text.into(),
            decoded,
        }
    }

    #[test]
    fn web_request_quotes_the_decoded_payload_and_the_real_address() {
        let input = r#"203.0.113.45 - - [12/Nov/2026:09:14:02 +0000] "GET /products.php?id=7%20UNION%20SELECT%20username,password%20FROM%20users-- HTTP/1.1" 200 5120 "-" "sqlmap/1.7.2#stable""#;
        let payload = "7 UNION SELECT username,password FROM users--";
        let hits = [
            hit(
                "sqli",
                input,
                "7%20UNION%20SELECT%20username,password%20FROM%20users--",
                payload,
                true,
            ),
            hit(
                "sqli",
                input,
                "7%20UNION%20SELECT%20username,password%20FROM%20users--",
                payload,
                true,
            ),
            hit(
                "scanner",
                input,
                "sqlmap/1.7.2#stable",
                "sqlmap/1.7.2#stable",
                false,
            ),
        ];
        let g = ground(input, &hits);
        for s in &g.spans {
            assert!(is_grounded(input, s), "{s:?}");
        }
        let whats: Vec<&str> = g.spans.iter().map(|s| s.what.as_str()).collect();
        assert_eq!(
            whats,
            [
                "sqli",
                "scanner",
                "source-address",
                "request-path",
                "status"
            ]
        );
        assert_eq!(g.spans[0].text, payload);
        assert_eq!(g.facts.address.as_deref(), Some("203.0.113.45"));
        assert_eq!(g.facts.path.as_deref(), Some("/products.php"));
        // The status is the response's, not a `200` elsewhere in the line.
        let status = &g.spans[4];
        assert_eq!(&input[status.start - 2..status.end], "\" 200");
        let line = g.evidence_line().unwrap();
        assert!(line.starts_with("SQL injection: \"7 UNION SELECT username,password FROM users--\" (decoded); scanner: \"sqlmap/1.7.2#stable\"; from: 203.0.113.45"), "{line}");
    }

    #[test]
    fn incident_summary_gives_count_time_users_and_address() {
        let input = "Nov 12 09:20:01 web01 sshd[2211]: Failed password for root from 185.220.101.4 port 51122 ssh2\n\
Nov 12 09:20:05 web01 sshd[2215]: Failed password for invalid user admin from 185.220.101.4 port 51138 ssh2\n\
[... 3 more ...]\n\
Nov 12 09:20:12 web01 sshd[2221]: Failed password for invalid user test from 185.220.101.4 port 51158 ssh2\n\
[...6 total failed auth attempts from 185.220.101.4 over 11s (~33/minute), 2026-11-12T09:20:01Z to 2026-11-12T09:20:12Z; users (4): root, admin, oracle, test...]";
        let hits = [hit(
            "auth-failure",
            input,
            "Failed password",
            "Failed password",
            false,
        )];
        let g = ground(input, &hits);
        for s in &g.spans {
            assert!(is_grounded(input, s), "{s:?}");
        }
        let text = |what: &str| -> Vec<&str> {
            g.spans
                .iter()
                .filter(|s| s.what == what)
                .map(|s| s.text.as_str())
                .collect()
        };
        assert_eq!(text("incident-count"), ["6 total failed auth attempts"]);
        assert_eq!(
            text("incident-time"),
            ["2026-11-12T09:20:01Z to 2026-11-12T09:20:12Z"]
        );
        assert_eq!(text("source-address"), ["185.220.101.4"]);
        assert_eq!(text("user"), ["root", "admin", "test"]);
        // Users only the summary names are facts too.
        assert_eq!(g.facts.users, ["root", "admin", "test", "oracle"]);
        assert_eq!(g.facts.count, 6);
        assert_eq!(g.facts.service.as_deref(), Some("sshd"));
        assert!(!g.facts.login_accepted);
    }

    #[test]
    fn an_accepted_login_after_failures_is_evidence() {
        let input = "Mar 15 02:14:01 server sshd[1234]: Failed password for deploy from 192.168.1.200 port 22 ssh2\n\
Mar 15 02:14:09 server sshd[1234]: Accepted password for deploy from 192.168.1.200 port 22 ssh2";
        let g = ground(input, &[]);
        assert!(g.facts.login_accepted);
        assert_eq!(g.spans[0].what, "login-accepted");
        assert_eq!(
            g.spans[0].text,
            "Accepted password for deploy from 192.168.1.200"
        );
        assert!(g.evidence_line().unwrap().ends_with("2 records"));
    }

    #[test]
    fn windows_event_id_and_writer_summary() {
        let input = "EventID: 4648\nTimestamp: 15-Mar-2025:03:00:01\nSource IP: 192.168.0.99\nUser: NETWORK SERVICE\nDescription: Explicit Credential Logon\nAdditional: Workstation DESKTOP-A1B2";
        let g = ground(input, &[]);
        let whats: Vec<(&str, &str)> = g
            .spans
            .iter()
            .map(|s| (s.what.as_str(), s.text.as_str()))
            .collect();
        assert!(whats.contains(&("event-id", "4648")), "{whats:?}");
        assert!(
            whats.contains(&("event", "Explicit Credential Logon")),
            "{whats:?}"
        );
        assert!(
            whats.contains(&("source-address", "192.168.0.99")),
            "{whats:?}"
        );
        assert!(whats.contains(&("user", "NETWORK SERVICE")), "{whats:?}");
        let input = "66.77.88.99 - - [15/Mar/2025:03:00:01] \"GET /search HTTP/1.1\" 503 0 \"-\" \"Mozilla/5.0\"\n[10000 requests/second from this IP — 16 minute duration]";
        let g = ground(input, &[]);
        let s = g
            .spans
            .iter()
            .find(|s| s.what == "incident-summary")
            .unwrap();
        assert_eq!(
            s.text,
            "10000 requests/second from this IP — 16 minute duration"
        );
        assert!(is_grounded(input, s));
    }

    #[test]
    fn a_hit_whose_text_is_not_its_slice_is_reanchored_or_dropped() {
        let input = "GET /a?x=1 HTTP/1.1 curl";
        let wrong = DetectorHit {
            class: "sqli".into(),
            rule: "r".into(),
            start: 0,
            end: input.len(),
            text: "x=1".into(),
            decoded: false,
        };
        let g = ground(input, std::slice::from_ref(&wrong));
        let s = g.spans.iter().find(|s| s.what == "sqli").unwrap();
        assert_eq!((&input[s.start..s.end], s.decoded), ("x=1", false));
        let invented = DetectorHit {
            text: "DROP TABLE".into(),
            ..wrong.clone()
        };
        assert!(ground(input, &[invented])
            .spans
            .iter()
            .all(|s| s.what != "sqli"));
        let out_of_range = DetectorHit {
            start: 3,
            end: 999,
            ..wrong
        };
        assert!(ground(input, &[out_of_range])
            .spans
            .iter()
            .all(|s| s.what != "sqli"));
    }

    #[test]
    fn a_truncated_decoded_hit_becomes_the_whole_decoded_slice() {
        let raw = format!("q={}", "%41".repeat(300));
        let input = format!("GET /s?{raw} HTTP/1.1");
        let value = &raw[2..];
        let h = hit("xss", &input, value, &"A".repeat(200), true);
        let g = ground(&input, &[h]);
        let s = g.spans.iter().find(|s| s.what == "xss").unwrap();
        assert_eq!(s.text.len(), 300);
        assert!(is_grounded(&input, s));
        // The line shortens it, the span does not.
        assert!(g.evidence_line().unwrap().contains('…'));
    }
}
