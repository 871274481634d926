//! Turning bytes into records and events for one stream: line splitting with a size cap,
//! binary and UTF-8 checks, multi-line framing, parsing, and counting. Every problem is
//! counted and warned with the stream name and line; none stops the stream.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::Arc;

use tracing::warn;

use crate::event::LogEvent;
use crate::group::Location;
use crate::intake::{Entry, IntakeConfig};
use crate::parse::{detect_format, Framer, Parsed, Parser, Record};
use crate::stats::{add, inc, Counters};

/// Messages from reader threads to the grouping thread.
#[derive(Debug)]
pub(crate) enum Msg {
    Event(LogEvent, Location),
    // Boxed: blocks are rare, and the common `Event` message should stay small.
    Entry(Box<Entry>),
    /// A stream ended: its open groups can close.
    End(Arc<str>),
}

impl Msg {
    /// Events this message carries, for the accounting of a message that was lost.
    pub fn events(&self) -> u64 {
        match self {
            Msg::Event(..) => 1,
            Msg::Entry(e) => e.events as u64,
            Msg::End(_) => 0,
        }
    }
}

/// Where a stream's output goes.
#[derive(Clone)]
pub(crate) struct Sink {
    pub tx: SyncSender<Msg>,
    pub counters: Arc<Counters>,
    pub shutdown: Arc<AtomicBool>,
}

impl Sink {
    /// Blocking send: backpressure for files, stdin and TCP. False when the consumer left.
    pub fn send(&self, msg: Msg) -> bool {
        match self.tx.send(msg) {
            Ok(()) => true,
            Err(e) => {
                // The pipeline stopped (shutdown) after this was read: account for it.
                add(&self.counters.abandoned, e.0.events());
                false
            }
        }
    }

    /// Non-blocking send for UDP, which cannot push back: a full queue drops and counts.
    pub fn try_send(&self, msg: Msg) -> bool {
        match self.tx.try_send(msg) {
            Ok(()) => true,
            Err(TrySendError::Full(m)) => {
                add(&self.counters.dropped, m.events());
                true
            }
            Err(TrySendError::Disconnected(m)) => {
                add(&self.counters.abandoned, m.events());
                false
            }
        }
    }

    pub fn stopped(&self) -> bool {
        self.shutdown.load(Ordering::Relaxed)
    }
}

/// Splits a byte stream into lines, keeping at most `max` bytes of each: a longer line
/// keeps its first and last `max / 2` bytes and reports how many were cut in between, so a
/// 10 MB line costs `max` bytes of memory, not 10 MB.
#[derive(Debug)]
pub(crate) struct LineSplitter {
    buf: Vec<u8>,
    cut: usize,
    max: usize,
    line_no: u64,
}

/// One line from [`LineSplitter`]: when `cut > 0`, the text was cut at byte `max / 2`.
pub(crate) struct RawLine<'a> {
    pub no: u64,
    pub bytes: &'a [u8],
    pub cut: usize,
}

impl LineSplitter {
    pub fn new(max: usize) -> LineSplitter {
        LineSplitter {
            buf: Vec::new(),
            cut: 0,
            max: max.max(16),
            line_no: 0,
        }
    }

    pub fn line_no(&self) -> u64 {
        self.line_no
    }

    pub fn has_partial(&self) -> bool {
        !self.buf.is_empty() || self.cut > 0
    }

    /// Restarts numbering (a truncated or rotated file).
    pub fn reset(&mut self) {
        self.buf.clear();
        self.cut = 0;
        self.line_no = 0;
    }

    fn append(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() > 2 * self.max {
            self.shrink();
        }
    }

    /// Drops the middle so `buf` holds the first and last `max / 2` bytes.
    fn shrink(&mut self) {
        if self.buf.len() > self.max {
            let half = self.max / 2;
            let excess = self.buf.len() - self.max;
            self.buf.drain(half..half + excess);
            self.cut += excess;
        }
    }

    /// Feeds bytes; complete lines go to `emit`, which returns false to stop.
    pub fn feed(&mut self, mut chunk: &[u8], emit: &mut impl FnMut(RawLine<'_>) -> bool) -> bool {
        while let Some(i) = chunk.iter().position(|&b| b == b'\n') {
            self.line_no += 1;
            let keep_going = if self.buf.is_empty() && self.cut == 0 && i <= self.max {
                // Fast path: the whole line is in this chunk.
                emit(RawLine {
                    no: self.line_no,
                    bytes: &chunk[..i],
                    cut: 0,
                })
            } else {
                self.append(&chunk[..i]);
                self.shrink();
                let ok = emit(RawLine {
                    no: self.line_no,
                    bytes: &self.buf,
                    cut: self.cut,
                });
                self.buf.clear();
                self.cut = 0;
                ok
            };
            if !keep_going {
                return false;
            }
            chunk = &chunk[i + 1..];
        }
        self.append(chunk);
        true
    }

    /// Emits a last line that has no terminator.
    pub fn finish(&mut self, emit: &mut impl FnMut(RawLine<'_>) -> bool) -> bool {
        if !self.has_partial() {
            return true;
        }
        self.line_no += 1;
        self.shrink();
        let ok = emit(RawLine {
            no: self.line_no,
            bytes: &self.buf,
            cut: self.cut,
        });
        self.buf.clear();
        self.cut = 0;
        ok
    }
}

/// Largest part of an input's first read that is examined for binary content.
const SNIFF_BYTES: usize = 8 * 1024;

/// Share of the first block, in percent, that must be NUL, other control bytes or invalid
/// UTF-8 for the input to count as binary. Text logs have almost none (a Latin-1 file a
/// few percent); random or compressed data over half. High on purpose: an attacker who
/// writes one log line must not get a whole text file skipped, so a few NULs or control
/// characters in a line never do it.
const BINARY_PERCENT: usize = 30;

/// Why `block` (the start of an input) is binary rather than text, or `None`. Like grep,
/// only the first block is examined; unlike grep, a single NUL is not enough.
pub(crate) fn binary_block(block: &[u8]) -> Option<String> {
    let block = &block[..block.len().min(SNIFF_BYTES)];
    if block.is_empty() {
        return None;
    }
    let nul = block.iter().filter(|&&c| c == 0).count();
    let control = block
        .iter()
        .filter(|&&c| c != 0 && c < 0x20 && !matches!(c, b'\t' | b'\n' | b'\r' | 0x0c | 0x1b))
        .count();
    let invalid = invalid_utf8_bytes(block);
    let bad = nul + control + invalid;
    (bad * 100 > block.len() * BINARY_PERCENT).then(|| {
        format!(
            "binary data: {bad} of the first {} bytes are NUL ({nul}), control ({control}) or invalid UTF-8 ({invalid})",
            block.len()
        )
    })
}

/// Bytes of `b` that are not part of valid UTF-8 (a character cut at the block's end is
/// not counted).
fn invalid_utf8_bytes(mut b: &[u8]) -> usize {
    let mut bad = 0;
    loop {
        match std::str::from_utf8(b) {
            Ok(_) => return bad,
            Err(e) => match e.error_len() {
                Some(n) => {
                    bad += n;
                    b = &b[e.valid_up_to() + n..];
                }
                None => return bad,
            },
        }
    }
}

/// Decodes a line, cutting marker included; counts invalid UTF-8.
fn decode(
    bytes: &[u8],
    cut: usize,
    max: usize,
    counters: &Counters,
    origin: &str,
    no: u64,
) -> String {
    let decode_part = |b: &[u8]| -> (String, bool) {
        match std::str::from_utf8(b) {
            Ok(s) => (s.to_owned(), false),
            Err(_) => (String::from_utf8_lossy(b).into_owned(), true),
        }
    };
    if cut == 0 {
        let (s, lossy) = decode_part(bytes);
        if lossy {
            inc(&counters.invalid_utf8);
            warn!(path = %origin, line = no, reason = "invalid UTF-8", "Converted log line lossily.");
        }
        return s;
    }
    let half = (max / 2).min(bytes.len());
    let (head, tail) = bytes.split_at(half);
    // A cut can split a multi-byte character: trim the partial pieces rather than
    // reporting them as invalid input.
    let head = match std::str::from_utf8(head) {
        Err(e) if e.error_len().is_none() => &head[..e.valid_up_to()],
        _ => head,
    };
    let skip = tail
        .iter()
        .take(3)
        .take_while(|&&b| (0x80..0xc0).contains(&b))
        .count();
    let tail = &tail[skip..];
    let (h, l1) = decode_part(head);
    let (t, l2) = decode_part(tail);
    if l1 || l2 {
        inc(&counters.invalid_utf8);
        warn!(path = %origin, line = no, reason = "invalid UTF-8", "Converted log line lossily.");
    }
    format!(
        "{h}{}{t}",
        cut_marker(cut + (bytes.len() - head.len() - tail.len()))
    )
}

/// The visible marker left where an oversized record was cut.
pub fn cut_marker(bytes: usize) -> String {
    format!("[... {bytes} bytes cut ...]")
}

/// Bytes reported cut by the [`cut_marker`]s in `text`. Log text could imitate a marker;
/// that only makes a verdict report a cut that did not happen, never hide one.
pub(crate) fn cut_markers_total(text: &str) -> u64 {
    const OPEN: &str = "[... ";
    const CLOSE: &str = " bytes cut ...]";
    let mut total = 0u64;
    let mut rest = text;
    while let Some(i) = rest.find(OPEN) {
        rest = &rest[i + OPEN.len()..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && rest[digits..].starts_with(CLOSE) {
            if let Ok(n) = rest[..digits].parse::<u64>() {
                total = total.saturating_add(n);
            }
            rest = &rest[digits + CLOSE.len()..];
        }
    }
    total
}

/// Room for a cut marker: a record already cut while reading is not cut again.
const MARKER_SLACK: usize = 64;

/// Cuts `text` to `max` bytes plus a marker, keeping both ends. Returns the bytes removed.
pub(crate) fn cut_middle(text: &mut String, max: usize) -> usize {
    if text.len() <= max + MARKER_SLACK {
        return 0;
    }
    let half = max / 2;
    let mut head_end = half;
    while !text.is_char_boundary(head_end) {
        head_end -= 1;
    }
    let mut tail_start = text.len() - half;
    while !text.is_char_boundary(tail_start) {
        tail_start += 1;
    }
    let removed = tail_start - head_end;
    text.replace_range(head_end..tail_start, &cut_marker(removed));
    removed
}

/// Per-stream state: parser, framer, block being built.
pub(crate) struct Stream {
    pub origin: Arc<str>,
    parser: Parser,
    framer: Framer,
    block: Option<Record>,
    blocks: bool,
    max: usize,
    sink: Sink,
    /// UDP: drop instead of waiting when the queue is full.
    lossy: bool,
    pending: Vec<Record>,
}

impl Stream {
    pub fn new(origin: Arc<str>, cfg: &IntakeConfig, sink: Sink) -> Stream {
        Stream {
            origin,
            parser: cfg.syslog_year.map_or_else(Parser::new, Parser::with_year),
            framer: Framer::new(),
            block: None,
            blocks: cfg.blocks,
            max: cfg.max_entry_bytes,
            sink,
            lossy: false,
            pending: Vec::new(),
        }
    }

    pub fn lossy(mut self) -> Stream {
        self.lossy = true;
        self
    }

    pub fn stopped(&self) -> bool {
        self.sink.stopped()
    }

    pub fn counters(&self) -> &Counters {
        &self.sink.counters
    }

    fn send(&self, msg: Msg) -> bool {
        if self.lossy {
            self.sink.try_send(msg)
        } else {
            self.sink.send(msg)
        }
    }

    /// One line of a file or stdin. Returns false when the consumer has gone.
    pub fn line(&mut self, line: RawLine<'_>) -> bool {
        let c = &self.sink.counters;
        if line.cut > 0 {
            inc(&c.oversized);
            warn!(path = %self.origin, line = line.no, reason = "oversized", cut = line.cut, "Cut long log line.");
        }
        let mut bytes = line.bytes;
        if let [rest @ .., b'\r'] = bytes {
            bytes = rest;
        }
        let mut text = decode(bytes, line.cut, self.max, c, &self.origin, line.no);
        self.replace_nul(&mut text, line.no);
        if self.blocks {
            return self.block_line(line.no, text);
        }
        let mut pending = std::mem::take(&mut self.pending);
        self.framer.push(line.no, &text, &mut |r| pending.push(r));
        let mut ok = true;
        for rec in pending.drain(..) {
            ok = ok && self.record(rec);
        }
        self.pending = pending;
        ok
    }

    fn block_line(&mut self, no: u64, text: String) -> bool {
        if text.trim().is_empty() {
            return self.flush_block();
        }
        match &mut self.block {
            Some(b) => {
                b.text.push('\n');
                b.text.push_str(&text);
                b.last_line = no;
                if b.text.len() > 4 * self.max {
                    // Keep memory bounded for a huge block; it is cut to `max` on output.
                    cut_middle(&mut b.text, 2 * self.max);
                }
            }
            None => {
                self.block = Some(Record {
                    first_line: no,
                    last_line: no,
                    text,
                })
            }
        }
        true
    }

    fn flush_block(&mut self) -> bool {
        let Some(mut rec) = self.block.take() else {
            return true;
        };
        let c = &self.sink.counters;
        inc(&c.read);
        if cut_middle(&mut rec.text, self.max) > 0 {
            inc(&c.oversized);
            warn!(path = %self.origin, line = rec.first_line, reason = "oversized", "Cut long log block.");
        }
        let format = detect_format(&rec.text);
        if format.is_structured() {
            inc(&c.parsed);
        } else {
            inc(&c.plain);
        }
        let location = Location {
            origin: self.origin.clone(),
            first_line: rec.first_line,
            last_line: rec.last_line,
        };
        let entry = Entry {
            id: location.id(),
            text: rec.text,
            events: 1,
            format,
            location,
            event: None,
            incident: None,
            cut_bytes: 0,
        };
        self.send(Msg::Entry(Box::new(entry)))
    }

    /// One complete record (a framed line group, a syslog message, an EVTX record's XML).
    pub fn record(&mut self, mut rec: Record) -> bool {
        let c = self.sink.counters.clone();
        inc(&c.read);
        if cut_middle(&mut rec.text, self.max) > 0 {
            inc(&c.oversized);
            warn!(path = %self.origin, line = rec.first_line, reason = "oversized", "Cut long log record.");
        }
        let loc = Location {
            origin: self.origin.clone(),
            first_line: rec.first_line,
            last_line: rec.last_line,
        };
        match self.parser.parse(&rec.text) {
            Parsed::Event(ev) => self.event(ev, loc),
            Parsed::Many(evs) => evs.into_iter().all(|ev| self.event(ev, loc.clone())),
            Parsed::Directive => true,
            Parsed::Malformed { event, reason } => {
                inc(&c.malformed);
                warn!(path = %self.origin, line = rec.first_line, reason = %reason, "Malformed log record kept as plain text.");
                self.event(event, loc)
            }
        }
    }

    /// A parsed event, counted and sent on.
    pub fn event(&mut self, ev: LogEvent, loc: Location) -> bool {
        let c = &self.sink.counters;
        if ev.format.is_structured() {
            inc(&c.parsed);
        } else {
            inc(&c.plain);
        }
        self.send(Msg::Event(ev, loc))
    }

    /// A syslog message: one record, whatever newlines it holds.
    pub fn message(&mut self, no: u64, bytes: &[u8]) -> bool {
        let c = self.sink.counters.clone();
        let mut bytes = bytes;
        while let [rest @ .., b'\n' | b'\r' | 0] = bytes {
            bytes = rest;
        }
        if bytes.is_empty() {
            return true;
        }
        let mut text = decode(bytes, 0, self.max, &c, &self.origin, no);
        self.replace_nul(&mut text, no);
        self.record(Record {
            first_line: no,
            last_line: no,
            text,
        })
    }

    /// Emits an open multi-line record now (a pause in a followed file).
    pub fn flush_pending(&mut self) -> bool {
        let mut pending = std::mem::take(&mut self.pending);
        self.framer.flush(&mut |r| pending.push(r));
        let mut ok = true;
        for rec in pending.drain(..) {
            ok = ok && self.record(rec);
        }
        self.pending = pending;
        ok && self.flush_block()
    }

    /// End of the stream: flush records and let its groups close.
    pub fn finish(&mut self) -> bool {
        self.flush_pending() && self.send(Msg::End(self.origin.clone()))
    }

    /// NUL bytes become U+FFFD: they are no reason to lose a record (an attacker could
    /// hide a line behind one), but they have no place in the model's input or a terminal.
    fn replace_nul(&self, text: &mut String, no: u64) {
        if text.contains('\0') {
            *text = text.replace('\0', "\u{FFFD}");
            inc(&self.sink.counters.nul);
            warn!(path = %self.origin, line = no, reason = "NUL bytes", "Replaced NUL bytes in log record.");
        }
    }

    /// Counts and warns an input skipped whole because it is binary.
    pub fn skip_binary(&self, why: &str) {
        inc(&self.sink.counters.skipped);
        warn!(path = %self.origin, reason = %why, "Skipped binary input.");
    }

    /// Counts input lost to a read error (the rest of a truncated file).
    pub fn lost(&self, line: u64, reason: &str) {
        add(&self.sink.counters.skipped, 1);
        warn!(path = %self.origin, line, reason, "Stopped reading log input early.");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(input: &[&[u8]], max: usize) -> Vec<(u64, Vec<u8>, usize)> {
        let mut s = LineSplitter::new(max);
        let mut out = Vec::new();
        let mut emit = |l: RawLine<'_>| {
            out.push((l.no, l.bytes.to_vec(), l.cut));
            true
        };
        for chunk in input {
            s.feed(chunk, &mut emit);
        }
        s.finish(&mut emit);
        out
    }

    #[test]
    fn splits_across_chunks() {
        let got = split(&[b"ab", b"c\nde", b"f\n\ng"], 64);
        assert_eq!(
            got,
            vec![
                (1, b"abc".to_vec(), 0),
                (2, b"def".to_vec(), 0),
                (3, b"".to_vec(), 0),
                (4, b"g".to_vec(), 0)
            ]
        );
    }

    #[test]
    fn cuts_long_lines_keeping_both_ends() {
        let mut long = vec![b'a'; 10];
        long.extend(vec![b'x'; 100_000]);
        long.extend(vec![b'z'; 10]);
        long.push(b'\n');
        let chunks: Vec<&[u8]> = long.chunks(777).collect();
        let got = split(&chunks, 64);
        assert_eq!(got.len(), 1);
        let (no, bytes, cut) = &got[0];
        assert_eq!(*no, 1);
        assert_eq!(bytes.len(), 64);
        assert_eq!(*cut, 100_020 - 64);
        assert!(bytes.starts_with(b"aaaaaaaaaax"));
        assert!(bytes.ends_with(b"xzzzzzzzzzz"));
    }

    #[test]
    fn cut_middle_respects_char_boundaries() {
        let mut s = "é".repeat(100);
        assert_eq!(
            cut_middle(&mut "é".repeat(40), 21),
            0,
            "within the marker slack"
        );
        let removed = cut_middle(&mut s, 21);
        assert_eq!(s.len(), "é".len() * 10 + cut_marker(removed).len());
        assert!(removed > 0);
        assert!(s.contains("bytes cut"));
        assert!(s.starts_with("éééé"));
        assert!(s.ends_with("éééé"));
    }

    #[test]
    fn binary_detection_looks_at_the_share_of_bad_bytes() {
        // Random bytes: far over the threshold.
        let mut state = 7u64;
        let random: Vec<u8> = (0..8192)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                (state >> 56) as u8
            })
            .collect();
        assert!(binary_block(&random).is_some());
        assert!(binary_block(b"\x01\x02\x03\x04abc").is_some());
        assert!(binary_block(&[0u8; 100]).is_some());
        // One attacker line with NULs and controls in an otherwise text block: text.
        let mut text = b"GET /a\0\x01\x02 HTTP/1.1\n".to_vec();
        text.extend(b"ordinary log line\n".repeat(20));
        assert!(binary_block(&text).is_none());
        assert!(binary_block(b"plain text\twith tab").is_none());
        assert!(binary_block("ünïcödé".as_bytes()).is_none());
        assert!(binary_block(b"caf\xe9 latin-1 line from host 192.0.2.9\n").is_none());
        // A multi-byte character cut by the end of the block is not invalid.
        assert!(binary_block(&"é".as_bytes()[..1]).is_none());
        assert!(binary_block(b"").is_none());
    }

    #[test]
    fn cut_markers_are_summed() {
        let t = format!(
            "a{}b{}c[... x bytes cut ...]",
            cut_marker(10),
            cut_marker(5)
        );
        assert_eq!(cut_markers_total(&t), 15);
        assert_eq!(cut_markers_total("[... 3 bytes cut ..."), 0);
    }
}
