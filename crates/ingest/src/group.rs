//! Incident grouping: a burst of similar events from one source becomes one [`Incident`].
//!
//! Brute force and scanning show only as many lines from one client, so the model should
//! see them together. Each event that can be part of a burst gets a [`BurstKind`]:
//!
//! * `AuthFailure`: `outcome=failure` (sshd, PAM, sudo, su, Windows 4625/4771,
//!   CloudTrail console logins, Zeek SSH) or HTTP 401/407;
//! * `Probe`: any other HTTP 4xx (404s of a scanner, 403s of a fuzzer);
//! * `Request`: any other HTTP request (floods).
//!
//! Events are grouped by (stream, kind, source address; for auth failures without an
//! address, `user@host`). A group stays open while consecutive events are at most
//! [`GroupingConfig::gap_secs`] apart (by the events' own timestamps) and the group spans
//! at most [`GroupingConfig::max_span_secs`]. When it closes, it becomes an incident if it
//! reached the kind's threshold; otherwise its events pass through one by one. Events that
//! cannot burst (no kind, no source or no timestamp) pass through at once.
//!
//! Output is deterministic: it depends only on the input order, never on hash order or
//! timing, except in live mode where [`Grouper::expire_idle`] also closes groups that got
//! no event for `gap_secs` of wall-clock time.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::event::{Format, LogEvent, Timestamp};

/// Windows and thresholds of incident grouping. Deserialises from e.g. TOML or JSON with
/// every field optional (missing fields take the defaults).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GroupingConfig {
    /// Off: every event is its own entry.
    pub enabled: bool,
    /// Largest gap, in seconds, between consecutive events of one incident.
    pub gap_secs: u64,
    /// Longest time, in seconds, one incident may span; a longer burst is split.
    pub max_span_secs: u64,
    /// Auth failures from one source that make an incident.
    pub auth_failures: usize,
    /// HTTP 4xx responses (other than 401/407) to one client that make an incident.
    pub probes: usize,
    /// Other HTTP requests from one client that make an incident (a flood).
    pub requests: usize,
    /// Events shown verbatim at the start of an incident's rendering.
    pub head_lines: usize,
    /// Distinct values listed per field in the summary line.
    pub max_distinct: usize,
    /// Open groups kept at most; beyond it the least recently active are closed.
    pub max_open_groups: usize,
}

impl Default for GroupingConfig {
    fn default() -> Self {
        GroupingConfig {
            enabled: true,
            gap_secs: 60,
            max_span_secs: 3600,
            auth_failures: 5,
            probes: 10,
            requests: 120,
            head_lines: 3,
            max_distinct: 8,
            max_open_groups: 100_000,
        }
    }
}

impl GroupingConfig {
    /// A config with grouping switched off.
    pub fn disabled() -> GroupingConfig {
        GroupingConfig {
            enabled: false,
            ..GroupingConfig::default()
        }
    }

    fn threshold(&self, kind: BurstKind) -> usize {
        match kind {
            BurstKind::AuthFailure => self.auth_failures,
            BurstKind::Probe => self.probes,
            BurstKind::Request => self.requests,
        }
        .max(2)
    }
}

/// What kind of burst an event can belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BurstKind {
    /// Failed logins.
    AuthFailure,
    /// HTTP client errors: scanning, probing, fuzzing.
    Probe,
    /// Other HTTP requests: floods.
    Request,
}

impl BurstKind {
    fn noun(self) -> &'static str {
        match self {
            BurstKind::AuthFailure => "failed auth attempts",
            BurstKind::Probe => "probes (HTTP 4xx)",
            BurstKind::Request => "requests",
        }
    }
}

/// The burst kind of an event, if it can be part of one.
pub fn burst_kind(ev: &LogEvent) -> Option<BurstKind> {
    if ev.field("outcome") == Some("failure") {
        return Some(BurstKind::AuthFailure);
    }
    let status = ev.field("status")?;
    match status.as_bytes() {
        b"401" | b"407" => Some(BurstKind::AuthFailure),
        [b'4', _, _] => Some(BurstKind::Probe),
        [b'1'..=b'5', _, _] => Some(BurstKind::Request),
        _ => None,
    }
}

/// Where an event or incident came from: stream name and line range.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Location {
    /// File path, `-` for stdin, `syslog/udp/ADDR` for a listener.
    pub origin: Arc<str>,
    /// First line (or message/record number), 1-based.
    pub first_line: u64,
    /// Last line.
    pub last_line: u64,
}

impl Location {
    /// A location of one line.
    pub fn line(origin: Arc<str>, line: u64) -> Location {
        Location {
            origin,
            first_line: line,
            last_line: line,
        }
    }

    /// `origin:LINE` or `origin:FIRST-LAST`.
    pub fn id(&self) -> String {
        if self.first_line == self.last_line {
            format!("{}:{}", self.origin, self.first_line)
        } else {
            format!("{}:{}-{}", self.origin, self.first_line, self.last_line)
        }
    }
}

/// Counts of the distinct values of one field, capped so a scan of a million paths stays
/// small.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Distinct {
    /// Value → occurrences, for at most [`Distinct::CAP`] values.
    pub counts: BTreeMap<String, usize>,
    /// Occurrences of values beyond the cap.
    pub overflow: usize,
}

impl Distinct {
    /// Distinct values tracked per field.
    pub const CAP: usize = 1000;

    fn add(&mut self, value: Option<&str>) {
        let Some(v) = value else {
            return;
        };
        if let Some(n) = self.counts.get_mut(v) {
            *n += 1;
        } else if self.counts.len() < Self::CAP {
            self.counts.insert(v.to_owned(), 1);
        } else {
            self.overflow += 1;
        }
    }

    /// Number of distinct values seen (a lower bound past the cap).
    pub fn len(&self) -> usize {
        self.counts.len() + usize::from(self.overflow > 0)
    }

    /// True when no value was seen.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty() && self.overflow == 0
    }

    /// Values by count descending, then by value.
    fn ranked(&self) -> Vec<(&str, usize)> {
        let mut v: Vec<(&str, usize)> = self.counts.iter().map(|(k, n)| (k.as_str(), *n)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        v
    }
}

/// A burst of events from one source, summarised for the model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Incident {
    /// What kind of burst.
    pub kind: BurstKind,
    /// The source the events share (address, or `user@host`).
    pub source: String,
    /// Format of the first event.
    pub format: Format,
    /// Number of events.
    pub count: usize,
    /// Time of the first event.
    pub first: Timestamp,
    /// Time of the last event.
    pub last: Timestamp,
    /// Where the first event is.
    pub first_location: Location,
    /// Where the last event is.
    pub last_location: Location,
    /// Text of the first events (up to `head_lines`).
    pub head: Vec<String>,
    /// Text of the last event, when it is not among `head`.
    pub tail: Option<String>,
    /// Users seen.
    pub users: Distinct,
    /// Request paths seen.
    pub paths: Distinct,
    /// HTTP statuses seen.
    pub statuses: Distinct,
    /// Windows event ids seen.
    pub event_ids: Distinct,
    /// A success from the same source that ended the burst of failures (an sshd
    /// `Accepted` line, a 2xx answer to a path of a 401 burst): the attempt worked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub success: Option<String>,
    #[serde(skip)]
    max_distinct: usize,
    #[serde(skip)]
    head_lines: usize,
}

impl Incident {
    fn new(
        kind: BurstKind,
        source: String,
        ev: &LogEvent,
        loc: Location,
        cfg: &GroupingConfig,
    ) -> Incident {
        let t = ev.timestamp.unwrap_or(Timestamp(0));
        Incident {
            kind,
            source,
            format: ev.format,
            count: 0,
            first: t,
            last: t,
            first_location: loc.clone(),
            last_location: loc,
            head: Vec::new(),
            tail: None,
            users: Distinct::default(),
            paths: Distinct::default(),
            statuses: Distinct::default(),
            event_ids: Distinct::default(),
            success: None,
            max_distinct: cfg.max_distinct,
            head_lines: cfg.head_lines.max(1),
        }
    }

    fn add(&mut self, ev: &LogEvent, loc: Location) {
        self.count += 1;
        if let Some(t) = ev.timestamp {
            self.first = self.first.min(t);
            self.last = self.last.max(t);
        }
        if self.head.len() < self.head_lines {
            self.head.push(ev.text().into_owned());
        } else {
            self.tail = Some(ev.text().into_owned());
        }
        self.last_location = loc;
        self.users.add(ev.user.as_deref());
        self.paths.add(ev.field("path"));
        self.statuses.add(ev.field("status"));
        self.event_ids.add(ev.field("event_id"));
    }

    /// Events the incident holds: the burst's and the success that ended it.
    pub fn events(&self) -> usize {
        self.count + usize::from(self.success.is_some())
    }

    /// Records the success that ends a burst of failures.
    fn add_success(&mut self, ev: &LogEvent, loc: Location) {
        if let Some(t) = ev.timestamp {
            self.last = self.last.max(t);
        }
        self.last_location = loc;
        self.success = Some(ev.text().into_owned());
    }

    /// Entry id: `origin:FIRST-LAST` (with both origins when a burst spans streams).
    pub fn id(&self) -> String {
        if self.first_location.origin == self.last_location.origin {
            format!(
                "{}:{}-{}",
                self.first_location.origin,
                self.first_location.first_line,
                self.last_location.last_line
            )
        } else {
            format!("{}..{}", self.first_location.id(), self.last_location.id())
        }
    }

    /// The compact text the model reads: the first events verbatim, an elision marker, the
    /// last event, then one summary line in the style of the paper's
    /// `[...29 total attempts...]`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for line in &self.head {
            out.push_str(line);
            out.push('\n');
        }
        let omitted = self
            .count
            .saturating_sub(self.head.len() + usize::from(self.tail.is_some()));
        if omitted > 0 {
            let _ = writeln!(out, "[... {omitted} more ...]");
        }
        if let Some(t) = &self.tail {
            out.push_str(t);
            out.push('\n');
        }
        if let Some(s) = &self.success {
            out.push_str(s);
            out.push('\n');
        }
        let span = (self.last.0 - self.first.0).max(0) / 1000;
        let _ = write!(
            out,
            "[...{} total {} from {}",
            self.count,
            self.kind.noun(),
            self.source
        );
        if span == 0 {
            out.push_str(" within 1s");
        } else {
            let per_min = (self.count as f64) * 60.0 / (span as f64);
            let _ = write!(
                out,
                " over {} (~{}/minute)",
                human_span(span),
                per_min.round() as u64
            );
        }
        let _ = write!(out, ", {} to {}", self.first, self.last);
        self.summary(&mut out, "users", &self.users, false);
        self.summary(&mut out, "paths", &self.paths, false);
        self.summary(&mut out, "statuses", &self.statuses, true);
        self.summary(&mut out, "event ids", &self.event_ids, true);
        if self.success.is_some() {
            out.push_str("; then a success from the same source");
        }
        out.push_str("...]");
        out
    }

    fn summary(&self, out: &mut String, name: &str, d: &Distinct, with_counts: bool) {
        if d.is_empty() {
            return;
        }
        let _ = write!(out, "; {name} ({}): ", d.len());
        let ranked = d.ranked();
        for (i, (v, n)) in ranked.iter().take(self.max_distinct).enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str(v);
            if with_counts {
                let _ = write!(out, " x{n}");
            }
        }
        let hidden = ranked.len().saturating_sub(self.max_distinct) + usize::from(d.overflow > 0);
        if hidden > 0 {
            let _ = write!(out, ", +{hidden} more");
        }
    }
}

/// Whether `line` is the summary line [`Incident::render`] writes (`[...N total ... from
/// SOURCE ...]`): an incident rendered so always shows the success that ended its burst.
pub fn is_incident_summary(line: &str) -> bool {
    line.trim_start().starts_with("[...") && line.contains(" total ") && line.contains(" from ")
}

/// Seconds from the config to milliseconds, saturating: a huge window means "never".
fn secs_to_ms(secs: u64) -> i64 {
    i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX / 4)
}

/// `45s`, `2m15s`, `1h02m`.
fn human_span(secs: i64) -> String {
    if secs < 60 {
        format!("{secs}s")
    } else if secs < 3600 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{}h{:02}m", secs / 3600, secs % 3600 / 60)
    }
}

/// What the grouper hands on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grouped {
    /// An event on its own.
    Single(LogEvent, Location),
    /// A burst.
    Incident(Box<Incident>),
}

/// Groups are looked up per (stream, kind) bucket, then by source: the inner map is keyed
/// by `String` so a lookup borrows the event's source instead of allocating a key.
type Bucket = (Arc<str>, BurstKind);

#[derive(Debug)]
struct Group {
    seq: u64,
    first_ts: i64,
    last_ts: i64,
    last_wall: Instant,
    /// Events held back until the group either reaches its threshold or closes. The
    /// first is kept inline: most groups (one client's ordinary requests) never get a
    /// second event, and this spares them an allocation.
    first: Option<(LogEvent, Location)>,
    held: Vec<(LogEvent, Location)>,
    // Boxed: groups are moved when maps grow and when they close, most never become
    // incidents, and an inline `Incident` would make every move several times larger.
    incident: Option<Box<Incident>>,
}

impl Group {
    fn empty(now: Instant) -> Group {
        Group {
            seq: 0,
            first_ts: 0,
            last_ts: 0,
            last_wall: now,
            first: None,
            held: Vec::new(),
            incident: None,
        }
    }
}

/// Groups a stream of events into incidents. See the module docs for the rules.
#[derive(Debug)]
pub struct Grouper {
    cfg: GroupingConfig,
    groups: HashMap<Bucket, HashMap<String, Group>>,
    open: usize,
    /// Per stream: latest event time seen, and when to look for idle groups next.
    clocks: HashMap<Arc<str>, (i64, i64)>,
    seq: u64,
}

impl Grouper {
    /// A grouper with the given windows and thresholds.
    pub fn new(cfg: GroupingConfig) -> Grouper {
        Grouper {
            cfg,
            groups: HashMap::new(),
            open: 0,
            clocks: HashMap::new(),
            seq: 0,
        }
    }

    /// Groups still open.
    pub fn open_groups(&self) -> usize {
        self.open
    }

    /// Feeds one event; whatever is ready goes to `out`.
    pub fn push(&mut self, ev: LogEvent, loc: Location, out: &mut Vec<Grouped>) {
        self.seq += 1;
        if !self.cfg.enabled {
            out.push(Grouped::Single(ev, loc));
            return;
        }
        if self.ends_failure_burst(&ev, &loc, out) {
            return;
        }
        let Some(kind) = burst_kind(&ev) else {
            out.push(Grouped::Single(ev, loc));
            return;
        };
        let (Some(ts), Some(source)) = (ev.timestamp.map(|t| t.0), group_source(&ev, kind)) else {
            out.push(Grouped::Single(ev, loc));
            return;
        };
        let gap = secs_to_ms(self.cfg.gap_secs);
        let span = secs_to_ms(self.cfg.max_span_secs);
        let now = Instant::now();
        let threshold = self.cfg.threshold(kind);
        let origin = loc.origin.clone();
        let bucket = self.groups.entry((origin.clone(), kind)).or_default();
        let fits = bucket
            .get(source.as_ref())
            .map(|g| (ts - g.last_ts).abs() <= gap && ts - g.first_ts <= span);
        match fits {
            Some(true) => {
                let g = bucket.get_mut(source.as_ref());
                drop(source);
                if let Some(g) = g {
                    g.last_ts = g.last_ts.max(ts);
                    g.last_wall = now;
                    add_to_group(g, kind, ev, loc, threshold, &self.cfg);
                }
            }
            fits => {
                let key = source.into_owned();
                if fits == Some(false) {
                    // The burst is over (or too long): close it; this event opens the next.
                    if let Some(g) = bucket.remove(&key) {
                        self.open -= 1;
                        close(g, out);
                    }
                }
                let mut g = Group {
                    seq: self.seq,
                    first_ts: ts,
                    last_ts: ts,
                    last_wall: now,
                    first: None,
                    held: Vec::new(),
                    incident: None,
                };
                add_to_group(&mut g, kind, ev, loc, threshold, &self.cfg);
                bucket.insert(key, g);
                self.open += 1;
                if self.open > self.cfg.max_open_groups {
                    self.evict(out);
                }
            }
        }
        self.tick_clock(&origin, ts, out);
    }

    /// A success right after a burst of failures from the same source (within the gap)
    /// joins that burst and closes it: an sshd or PAM success (`outcome=success`), or a
    /// 2xx answer to one of the burst's paths. Returns whether `ev` was taken.
    fn ends_failure_burst(
        &mut self,
        ev: &LogEvent,
        loc: &Location,
        out: &mut Vec<Grouped>,
    ) -> bool {
        if ev.succeeded() != Some(true) {
            return false;
        }
        // A web success must be on one of the burst's paths.
        let web = ev.field("status").is_some();
        let (Some(ts), Some(source)) = (
            ev.timestamp.map(|t| t.0),
            group_source(ev, BurstKind::AuthFailure),
        ) else {
            return false;
        };
        let gap = secs_to_ms(self.cfg.gap_secs);
        let Some(bucket) = self
            .groups
            .get_mut(&(loc.origin.clone(), BurstKind::AuthFailure))
        else {
            return false;
        };
        let joins = bucket.get(source.as_ref()).is_some_and(|g| {
            (ts - g.last_ts).abs() <= gap
                && g.incident.as_ref().is_some_and(|inc| {
                    !web || ev
                        .field("path")
                        .is_some_and(|p| inc.paths.counts.contains_key(p))
                })
        });
        if !joins {
            return false;
        }
        let Some(mut g) = bucket.remove(source.as_ref()) else {
            return false;
        };
        self.open -= 1;
        if let Some(inc) = g.incident.as_mut() {
            inc.add_success(ev, loc.clone());
        }
        close(g, out);
        true
    }

    /// Advances the stream's clock; every half gap, closes its groups that went quiet.
    fn tick_clock(&mut self, origin: &Arc<str>, ts: i64, out: &mut Vec<Grouped>) {
        let gap = secs_to_ms(self.cfg.gap_secs);
        let clock = match self.clocks.get_mut(origin) {
            Some(c) => c,
            None => self
                .clocks
                .entry(origin.clone())
                .or_insert((ts, ts + gap / 2)),
        };
        clock.0 = clock.0.max(ts);
        if clock.0 < clock.1 {
            return;
        }
        let now = clock.0;
        clock.1 = now + (gap / 2).max(1);
        self.close_where(out, |b, g| &b.0 == origin && now - g.last_ts > gap);
    }

    fn evict(&mut self, out: &mut Vec<Grouped>) {
        let mut ages: Vec<(i64, u64)> = self
            .groups
            .values()
            .flat_map(|m| m.values().map(|g| (g.last_ts, g.seq)))
            .collect();
        ages.sort_unstable();
        let cut = ages.len() / 10;
        if let Some(&limit) = ages.get(cut) {
            self.close_where(out, |_, g| (g.last_ts, g.seq) < limit);
        }
    }

    /// Closes the groups matching `pred`, in the order they opened.
    fn close_where(&mut self, out: &mut Vec<Grouped>, pred: impl Fn(&Bucket, &Group) -> bool) {
        let mut closing: Vec<Group> = Vec::new();
        let now = Instant::now();
        for (bucket, groups) in &mut self.groups {
            // `retain` hands out `&mut Group`: swap in an empty one to move the group out
            // without cloning its key.
            groups.retain(|_, g| {
                if pred(bucket, g) {
                    closing.push(std::mem::replace(g, Group::empty(now)));
                    false
                } else {
                    true
                }
            });
        }
        self.open -= closing.len();
        // Sort indices, not groups: a group holds its first event inline and is large.
        let mut order: Vec<(u64, usize)> = closing
            .iter()
            .enumerate()
            .map(|(i, g)| (g.seq, i))
            .collect();
        order.sort_unstable();
        for (_, i) in order {
            if let Some(slot) = closing.get_mut(i) {
                close(std::mem::replace(slot, Group::empty(now)), out);
            }
        }
    }

    /// Closes every group of one stream (its end of input).
    pub fn end_stream(&mut self, origin: &str, out: &mut Vec<Grouped>) {
        self.close_where(out, |b, _| &*b.0 == origin);
        self.groups.retain(|b, _| &*b.0 != origin);
        self.clocks.remove(origin);
    }

    /// Closes every group.
    pub fn flush_all(&mut self, out: &mut Vec<Grouped>) {
        self.close_where(out, |_, _| true);
        self.groups.clear();
        self.clocks.clear();
    }

    /// Live mode: closes groups that got no event for `gap_secs` of wall-clock time.
    pub fn expire_idle(&mut self, now: Instant, out: &mut Vec<Grouped>) {
        let gap = Duration::from_secs(self.cfg.gap_secs);
        self.close_where(out, |_, g| {
            now.saturating_duration_since(g.last_wall) >= gap
        });
    }
}

/// The source a burst is keyed by: the address, or for auth failures without one (sudo,
/// su), `user@host`.
fn group_source(ev: &LogEvent, kind: BurstKind) -> Option<Cow<'_, str>> {
    match (&ev.source, &ev.user, &ev.host) {
        (Some(s), _, _) => Some(Cow::Borrowed(s.as_str())),
        (None, Some(u), Some(h)) if kind == BurstKind::AuthFailure => {
            Some(Cow::Owned(format!("{u}@{h}")))
        }
        (None, Some(u), None) if kind == BurstKind::AuthFailure => Some(Cow::Borrowed(u.as_str())),
        _ => None,
    }
}

fn add_to_group(
    g: &mut Group,
    kind: BurstKind,
    ev: LogEvent,
    loc: Location,
    threshold: usize,
    cfg: &GroupingConfig,
) {
    if let Some(inc) = &mut g.incident {
        inc.add(&ev, loc);
        return;
    }
    if g.first.is_none() {
        g.first = Some((ev, loc));
    } else {
        g.held.push((ev, loc));
    }
    if usize::from(g.first.is_some()) + g.held.len() >= threshold {
        let Some((first, first_loc)) = &g.first else {
            return;
        };
        let source = group_source(first, kind)
            .map(Cow::into_owned)
            .unwrap_or_default();
        let mut inc = Incident::new(kind, source, first, first_loc.clone(), cfg);
        for (e, l) in g.first.take().into_iter().chain(g.held.drain(..)) {
            inc.add(&e, l);
        }
        g.incident = Some(Box::new(inc));
    }
}

fn close(g: Group, out: &mut Vec<Grouped>) {
    match g.incident {
        Some(inc) => out.push(Grouped::Incident(inc)),
        None => out.extend(
            g.first
                .into_iter()
                .chain(g.held)
                .map(|(e, l)| Grouped::Single(e, l)),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_line;

    fn run(lines: &[String], cfg: GroupingConfig) -> Vec<Grouped> {
        let origin: Arc<str> = Arc::from("access.log");
        let mut g = Grouper::new(cfg);
        let mut out = Vec::new();
        for (i, l) in lines.iter().enumerate() {
            g.push(
                parse_line(l),
                Location::line(origin.clone(), i as u64 + 1),
                &mut out,
            );
        }
        g.flush_all(&mut out);
        out
    }

    fn access(ip: &str, sec: u32, path: &str, status: u16) -> String {
        format!(
            r#"{ip} - - [15/Mar/2025:02:{:02}:{:02} +0000] "POST {path} HTTP/1.1" {status} 0 "-" "custom-bot""#,
            14 + sec / 60,
            sec % 60
        )
    }

    #[test]
    fn a_success_after_failures_joins_and_ends_the_burst() {
        let mut lines: Vec<String> = (0..12)
            .map(|i| access("45.33.32.156", i * 3, "/signin", 401))
            .collect();
        // Another client's success on the same path stays apart; the attacker's own ends
        // the burst; its next request is ordinary again.
        lines.push(access("10.0.0.3", 37, "/signin", 200));
        lines.push(access("45.33.32.156", 38, "/signin", 200));
        lines.push(access("45.33.32.156", 39, "/account", 200));
        let out = run(&lines, GroupingConfig::default());
        let incidents: Vec<&Incident> = out
            .iter()
            .filter_map(|g| match g {
                Grouped::Incident(i) => Some(i.as_ref()),
                _ => None,
            })
            .collect();
        assert_eq!(incidents.len(), 1, "{out:#?}");
        let inc = incidents[0];
        assert_eq!(inc.count, 12);
        assert!(inc
            .success
            .as_deref()
            .is_some_and(|s| s.contains("45.33.32.156")));
        assert_eq!(inc.last_location.first_line, 14);
        let text = inc.render();
        assert!(text.contains("\" 200 0 "), "{text}");
        assert!(
            text.contains("then a success from the same source"),
            "{text}"
        );
        assert!(
            text.lines().last().is_some_and(is_incident_summary),
            "{text}"
        );
        assert_eq!(out.len(), 3, "{out:#?}");

        // sshd: failures then `Accepted` from the same address.
        let mut ssh: Vec<String> = (0..8)
            .map(|i| format!("Mar 15 02:14:{i:02} srv sshd[1{i}]: Failed password for root from 185.220.101.4 port 4{i}22 ssh2"))
            .collect();
        ssh.push("Mar 15 02:14:20 srv sshd[99]: Accepted password for root from 185.220.101.4 port 4999 ssh2".into());
        let out = run(&ssh, GroupingConfig::default());
        assert_eq!(out.len(), 1, "{out:#?}");
        let Grouped::Incident(inc) = &out[0] else {
            panic!("{out:#?}")
        };
        assert!(inc.render().contains("Accepted password for root"));
    }

    #[test]
    fn burst_becomes_one_incident_and_singles_pass_through() {
        let mut lines: Vec<String> = (0..40)
            .map(|i| access("45.33.32.156", i * 3, "/signin", 401))
            .collect();
        lines.insert(5, access("10.0.0.3", 7, "/contact", 200));
        let out = run(&lines, GroupingConfig::default());
        assert_eq!(out.len(), 2, "{out:#?}");
        let Grouped::Incident(inc) = &out[1] else {
            panic!("{:?}", out[1])
        };
        assert_eq!(inc.count, 40);
        assert_eq!(inc.kind, BurstKind::AuthFailure);
        assert_eq!(inc.id(), "access.log:1-41");
        assert!(
            matches!(&out[0], Grouped::Single(ev, loc) if loc.first_line == 6 && ev.source.as_deref() == Some("10.0.0.3"))
        );
    }

    #[test]
    fn below_threshold_events_pass_through_in_order() {
        let lines: Vec<String> = (0..4)
            .map(|i| access("1.2.3.4", i, "/login", 401))
            .collect();
        let out = run(&lines, GroupingConfig::default());
        let lines_out: Vec<u64> = out
            .iter()
            .map(|g| match g {
                Grouped::Single(_, l) => l.first_line,
                Grouped::Incident(_) => 0,
            })
            .collect();
        assert_eq!(lines_out, vec![1, 2, 3, 4]);
    }

    #[test]
    fn gap_splits_bursts() {
        let mut lines: Vec<String> = (0..6)
            .map(|i| access("1.2.3.4", i, "/login", 401))
            .collect();
        // 3 minutes later: a new burst.
        lines.extend((0..6).map(|i| access("1.2.3.4", 200 + i, "/login", 401)));
        let out = run(&lines, GroupingConfig::default());
        let counts: Vec<usize> = out
            .iter()
            .map(|g| match g {
                Grouped::Incident(i) => i.count,
                Grouped::Single(..) => 1,
            })
            .collect();
        assert_eq!(counts, vec![6, 6]);
    }

    #[test]
    fn disabled_grouping_passes_everything() {
        let lines: Vec<String> = (0..30)
            .map(|i| access("1.2.3.4", i, "/login", 401))
            .collect();
        let out = run(&lines, GroupingConfig::disabled());
        assert_eq!(out.len(), 30);
        assert!(out.iter().all(|g| matches!(g, Grouped::Single(..))));
    }

    #[test]
    fn output_is_deterministic_across_many_sources() {
        let lines: Vec<String> = (0..600)
            .map(|i| {
                access(
                    &format!("10.0.{}.{}", i % 7, i % 13),
                    i / 3,
                    &format!("/p{}", i % 5),
                    [404, 401, 200][i as usize % 3],
                )
            })
            .collect();
        let a = run(&lines, GroupingConfig::default());
        for _ in 0..3 {
            assert_eq!(run(&lines, GroupingConfig::default()), a);
        }
    }

    #[test]
    fn eviction_keeps_memory_bounded() {
        let lines: Vec<String> = (0..500)
            .map(|i| access(&format!("10.1.{}.{}", i / 250, i % 250), 1, "/x", 404))
            .collect();
        let cfg = GroupingConfig {
            max_open_groups: 50,
            ..GroupingConfig::default()
        };
        let origin: Arc<str> = Arc::from("a");
        let mut g = Grouper::new(cfg);
        let mut out = Vec::new();
        for (i, l) in lines.iter().enumerate() {
            g.push(
                parse_line(l),
                Location::line(origin.clone(), i as u64 + 1),
                &mut out,
            );
            assert!(g.open_groups() <= 51);
        }
        g.flush_all(&mut out);
        assert_eq!(out.len(), 500);
    }

    #[test]
    fn burst_kinds() {
        let k = |l: &str| burst_kind(&parse_line(l));
        assert_eq!(
            k(&access("1.1.1.1", 0, "/", 401)),
            Some(BurstKind::AuthFailure)
        );
        assert_eq!(k(&access("1.1.1.1", 0, "/", 404)), Some(BurstKind::Probe));
        assert_eq!(k(&access("1.1.1.1", 0, "/", 200)), Some(BurstKind::Request));
        assert_eq!(
            k("Mar 15 01:05:33 s sshd[1]: Failed password for root from 1.2.3.4 port 22 ssh2"),
            Some(BurstKind::AuthFailure)
        );
        assert_eq!(
            k("Mar 15 01:05:33 s sshd[1]: Accepted password for root from 1.2.3.4 port 22 ssh2"),
            None
        );
        assert_eq!(k("EventID: 4625\nUser: x"), Some(BurstKind::AuthFailure));
        assert_eq!(k("plain"), None);
    }

    #[test]
    fn huge_windows_do_not_overflow() {
        let lines: Vec<String> = (0..12)
            .map(|i| access("1.2.3.4", i, "/login", 401))
            .collect();
        let cfg = GroupingConfig {
            gap_secs: u64::MAX,
            max_span_secs: u64::MAX,
            ..GroupingConfig::default()
        };
        let out = run(&lines, cfg);
        assert!(matches!(&out[..], [Grouped::Incident(i)] if i.count == 12));
    }

    #[test]
    fn human_spans() {
        assert_eq!(human_span(5), "5s");
        assert_eq!(human_span(135), "2m15s");
        assert_eq!(human_span(3720), "1h02m");
    }
}
