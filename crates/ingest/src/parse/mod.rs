//! Format detection and parsers.
//!
//! [`Parser`] detects the format of each record and keeps the little state some formats
//! need (the W3C `#Fields:` header). [`Framer`] joins the lines of multi-line records
//! (Windows `Key: value` text, pretty-printed event XML) before parsing. Each format also
//! has a stand-alone function (`parse_access`, `parse_syslog`, ...) for callers and fuzzers
//! that know what they hold.

pub mod access;
pub mod json;
pub mod syslog;
pub mod w3c;
pub mod windows;

use std::time::{SystemTime, UNIX_EPOCH};

use crate::event::{Format, LogEvent, Timestamp};

pub use access::parse_access;
pub use json::{parse_json, JsonError};
pub use syslog::parse_syslog;
pub use w3c::{parse_fields_directive, parse_w3c, W3cError};
pub use windows::{parse_windows_text, parse_windows_xml, XmlError};

/// What one record turned into.
#[derive(Debug)]
pub enum Parsed {
    /// One event (the common case).
    Event(LogEvent),
    /// Several events from one record (a CloudTrail `{"Records": [...]}` document).
    Many(Vec<LogEvent>),
    /// Not an event: a W3C directive, or the `<Events>` wrapper around exported XML.
    Directive,
    /// The record looked like a known format but broke its rules. `event` is the record as
    /// plain text, so the model still sees it; `reason` says what was wrong.
    Malformed {
        /// The record as a plain-text event.
        event: LogEvent,
        /// What was wrong, for the warning.
        reason: String,
    },
}

/// Detects formats record by record, with per-stream state. Use one per file or stream.
#[derive(Debug, Clone)]
pub struct Parser {
    w3c_fields: Option<Vec<String>>,
    year: i32,
}

impl Default for Parser {
    fn default() -> Self {
        Parser::new()
    }
}

impl Parser {
    /// A parser that assumes the current year for RFC 3164 stamps, which carry none.
    pub fn new() -> Parser {
        Parser::with_year(current_year())
    }

    /// A parser with a fixed year for RFC 3164 stamps (reproducible tests and replays).
    pub fn with_year(year: i32) -> Parser {
        Parser {
            w3c_fields: None,
            year,
        }
    }

    /// Parses one record: a line, or a multi-line record joined by [`Framer`].
    pub fn parse(&mut self, record: &str) -> Parsed {
        let text = record.strip_prefix('\u{feff}').unwrap_or(record);
        let trimmed = text.trim_start();
        match trimmed.as_bytes().first() {
            Some(b'{') => match json::parse_json(trimmed) {
                Ok(mut events) if events.len() == 1 => match events.pop() {
                    Some(ev) => Parsed::Event(ev),
                    None => Parsed::Directive,
                },
                Ok(events) if events.is_empty() => {
                    malformed(record, "JSON document holds no records".into())
                }
                Ok(events) => Parsed::Many(events),
                Err(e) => malformed(record, e.to_string()),
            },
            Some(b'<') => {
                if trimmed.starts_with("<Event ") || trimmed.starts_with("<Event>") {
                    match windows::parse_windows_xml(trimmed) {
                        Ok(ev) => Parsed::Event(ev),
                        Err(e) => malformed(record, e.to_string()),
                    }
                } else if let Some(ev) = syslog::parse_syslog(text, self.year) {
                    Parsed::Event(ev)
                } else if trimmed.starts_with("<?xml")
                    || trimmed.starts_with("<Events")
                    || trimmed.starts_with("</Events")
                {
                    Parsed::Directive
                } else {
                    Parsed::Event(LogEvent::plain(record))
                }
            }
            Some(b'#') => {
                if let Some(fields) = w3c::parse_fields_directive(trimmed) {
                    self.w3c_fields = Some(fields);
                    Parsed::Directive
                } else if [
                    "#Software:",
                    "#Version:",
                    "#Date:",
                    "#Remark:",
                    "#Start-Date:",
                    "#End-Date:",
                ]
                .iter()
                .any(|p| trimmed.starts_with(p))
                {
                    Parsed::Directive
                } else {
                    Parsed::Event(LogEvent::plain(record))
                }
            }
            _ => self.parse_text(record, text),
        }
    }

    fn parse_text(&mut self, record: &str, text: &str) -> Parsed {
        if windows::starts_windows_text(text.lines().next().unwrap_or("").trim_end()) {
            if let Some(ev) = windows::parse_windows_text(text) {
                return Parsed::Event(ev);
            }
        }
        if let Some(fields) = &self.w3c_fields {
            if text.starts_with(|c: char| c.is_ascii_digit()) {
                return match w3c::parse_w3c(text, fields) {
                    Ok(ev) => Parsed::Event(ev),
                    Err(e) => malformed(record, e.to_string()),
                };
            }
        }
        if let Some(ev) = access::parse_access(text) {
            return Parsed::Event(ev);
        }
        if self.w3c_fields.is_none() {
            if let Some(ev) = w3c::parse_iis_default(text) {
                return Parsed::Event(ev);
            }
        }
        if let Some(ev) = syslog::parse_syslog(text, self.year) {
            return Parsed::Event(ev);
        }
        Parsed::Event(LogEvent::plain(record))
    }
}

fn malformed(record: &str, reason: String) -> Parsed {
    Parsed::Malformed {
        event: LogEvent::plain(record),
        reason,
    }
}

/// Parses one record without per-stream state; unrecognised or malformed records come
/// back as [`Format::Plain`]. CloudTrail documents yield their first record.
pub fn parse_line(line: &str) -> LogEvent {
    match Parser::new().parse(line) {
        Parsed::Event(ev) => ev,
        Parsed::Many(mut evs) if !evs.is_empty() => evs.swap_remove(0),
        Parsed::Malformed { event, .. } => event,
        Parsed::Many(_) | Parsed::Directive => LogEvent::plain(line),
    }
}

fn current_year() -> i32 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    // Timestamp's Display knows the calendar; its first four characters are the year.
    Timestamp(secs * 1000)
        .to_string()
        .get(..4)
        .and_then(|y| y.parse().ok())
        .unwrap_or(1970)
}

/// One record cut from a stream: its line range and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Line number of the first line (1-based).
    pub first_line: u64,
    /// Line number of the last line.
    pub last_line: u64,
    /// The record's text, lines joined by `\n`.
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    KeyValue,
    Xml,
}

/// Joins multi-line records: a Windows `EventID: N` line and the `Key: value` lines after
/// it, or `<Event>` ... `</Event>` spread over lines. Every other non-empty line is a
/// record by itself. Empty lines end a record and are otherwise dropped.
#[derive(Debug)]
pub struct Framer {
    pending: Option<(Pending, Record)>,
    max_lines: usize,
    lines: usize,
}

impl Default for Framer {
    fn default() -> Self {
        Framer::new()
    }
}

impl Framer {
    /// A framer that gives up on a multi-line record after 2,000 lines.
    pub fn new() -> Framer {
        Framer {
            pending: None,
            max_lines: 2_000,
            lines: 0,
        }
    }

    /// True while a multi-line record is open.
    pub fn is_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Feeds one line (without terminator); completed records go to `out`.
    pub fn push(&mut self, line_no: u64, line: &str, out: &mut impl FnMut(Record)) {
        if let Some((kind, rec)) = &mut self.pending {
            match kind {
                Pending::KeyValue => {
                    if !line.trim().is_empty()
                        && windows::is_key_value_line(line)
                        && !windows::starts_windows_text(line.trim_end())
                        && self.lines < self.max_lines
                    {
                        rec.text.push('\n');
                        rec.text.push_str(line);
                        rec.last_line = line_no;
                        self.lines += 1;
                        return;
                    }
                    self.flush(out);
                }
                Pending::Xml => {
                    // Event XML continues with markup or indented text; anything else means
                    // the event was never closed, and must not swallow the lines after it.
                    let continues = line.trim_start().starts_with('<')
                        || line.starts_with([' ', '\t'])
                        || line.trim().is_empty();
                    if continues && self.lines < self.max_lines {
                        rec.text.push('\n');
                        rec.text.push_str(line);
                        rec.last_line = line_no;
                        self.lines += 1;
                        if line.contains("</Event>") {
                            self.flush(out);
                        }
                        return;
                    }
                    self.flush(out);
                }
            }
        }
        if line.trim().is_empty() {
            return;
        }
        let trimmed = line.trim_start();
        let rec = Record {
            first_line: line_no,
            last_line: line_no,
            text: line.to_owned(),
        };
        if windows::starts_windows_text(line.trim_end()) {
            self.pending = Some((Pending::KeyValue, rec));
            self.lines = 1;
        } else if (trimmed.starts_with("<Event ")
            || trimmed.starts_with("<Event>")
            || trimmed == "<Event")
            && !trimmed.contains("</Event>")
        {
            self.pending = Some((Pending::Xml, rec));
            self.lines = 1;
        } else {
            out(rec);
        }
    }

    /// Emits an open multi-line record (end of input, or a pause in a followed file).
    pub fn flush(&mut self, out: &mut impl FnMut(Record)) {
        if let Some((_, rec)) = self.pending.take() {
            out(rec);
        }
        self.lines = 0;
    }
}

/// The format of a blank-line-separated block: a Windows text or XML record as a whole,
/// otherwise the format of its first line.
pub fn detect_format(block: &str) -> Format {
    let first = block.lines().next().unwrap_or("");
    let whole =
        windows::starts_windows_text(first.trim_end()) || first.trim_start().starts_with("<Event");
    let text = if whole { block } else { first };
    match Parser::new().parse(text) {
        Parsed::Event(ev) => ev.format,
        Parsed::Many(evs) => evs.first().map_or(Format::Plain, |e| e.format),
        Parsed::Directive | Parsed::Malformed { .. } => Format::Plain,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One line per format: auto-detection picks the right parser.
    #[test]
    fn detects_each_format() {
        let cases = [
            (r#"91.108.4.20 - - [16/Mar/2025:01:05:33] "GET /x HTTP/1.1" 403 1 "-" "burpsuite""#, Format::AccessCombined),
            (r#"91.108.4.20 - - [16/Mar/2025:01:05:33 +0000] "GET /x HTTP/1.1" 403 1"#, Format::AccessCommon),
            ("Mar 15 01:05:33 server sshd[1234]: Failed password for root from 1.2.3.4 port 22 ssh2", Format::Syslog3164),
            ("<34>1 2025-03-15T01:05:33Z host app - - - hello", Format::Syslog5424),
            ("<34>Mar 15 01:05:33 host app: hello", Format::Syslog3164),
            ("EventID: 4625\nUser: bob", Format::WindowsText),
            (r#"<Event xmlns="x"><System><EventID>4624</EventID></System></Event>"#, Format::WindowsXml),
            (r#"{"timestamp":"2025-03-15T01:05:33Z","event_type":"alert","src_ip":"1.2.3.4"}"#, Format::SuricataEve),
            (r#"{"ts":1.0,"uid":"C1","id.orig_h":"1.2.3.4"}"#, Format::ZeekJson),
            (r#"{"eventTime":"2025-03-15T01:05:33Z","eventName":"X","eventSource":"y"}"#, Format::CloudTrail),
            (r#"{"@timestamp":"2025-03-15T01:05:33Z","winlog":{"event_id":4625}}"#, Format::Ecs),
            (r#"{"hello":"world"}"#, Format::Json),
            ("just some words", Format::Plain),
            ("", Format::Plain),
            ("\u{feff}Mar 15 01:05:33 server app: bom first", Format::Syslog3164),
        ];
        for (line, want) in cases {
            assert_eq!(parse_line(line).format, want, "{line:?}");
        }
    }

    #[test]
    fn w3c_header_switches_the_stream() {
        let mut p = Parser::with_year(2025);
        assert!(matches!(
            p.parse("#Software: Microsoft Internet Information Services 10.0"),
            Parsed::Directive
        ));
        assert!(matches!(
            p.parse("#Fields: date time c-ip cs-method cs-uri-stem sc-status"),
            Parsed::Directive
        ));
        match p.parse("2025-03-15 02:14:01 1.2.3.4 GET /x 404") {
            Parsed::Event(ev) => {
                assert_eq!(ev.format, Format::W3c);
                assert_eq!(ev.field("status"), Some("404"));
            }
            other => panic!("{other:?}"),
        }
        match p.parse("2025-03-15 02:14:01 1.2.3.4 GET") {
            Parsed::Malformed { event, reason } => {
                assert_eq!(event.format, Format::Plain);
                assert!(reason.contains("4 values"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        // Without the header the same line is plain text.
        assert_eq!(
            parse_line("2025-03-15 02:14:01 1.2.3.4 GET /x 404").format,
            Format::Plain
        );
    }

    #[test]
    fn malformed_json_and_xml_fall_back_to_plain() {
        let mut p = Parser::with_year(2025);
        for bad in [
            r#"{"event_type": "alert", "#,
            "<Event><System><EventID>1</EventID></System>",
        ] {
            match p.parse(bad) {
                Parsed::Malformed { event, .. } => assert_eq!(event.raw, bad),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    fn frame(lines: &[&str]) -> Vec<Record> {
        let mut out = Vec::new();
        let mut f = Framer::new();
        for (i, l) in lines.iter().enumerate() {
            f.push(i as u64 + 1, l, &mut |r| out.push(r));
        }
        f.flush(&mut |r| out.push(r));
        out
    }

    #[test]
    fn framer_joins_multi_line_records() {
        let recs = frame(&[
            "EventID: 4625",
            "Timestamp: 15-Mar-2025:02:14:01",
            "User: SYSTEM",
            "EventID: 4688",
            "User: bob",
            "",
            "plain line",
            "<Event xmlns=\"x\">",
            "  <System><EventID>1</EventID></System>",
            "",
            "</Event>",
            "EventID: 7045",
            "Description: New Service Installed",
            "127.0.0.1 - - [16/Mar/2025:01:05:33] \"GET / HTTP/1.1\" 200 1",
        ]);
        let got: Vec<(u64, u64)> = recs.iter().map(|r| (r.first_line, r.last_line)).collect();
        assert_eq!(
            got,
            vec![(1, 3), (4, 5), (7, 7), (8, 11), (12, 13), (14, 14)]
        );
        assert_eq!(
            recs[0].text,
            "EventID: 4625\nTimestamp: 15-Mar-2025:02:14:01\nUser: SYSTEM"
        );
        assert_eq!(parse_line(&recs[3].text).format, Format::WindowsXml);
    }

    #[test]
    fn framer_flushes_an_unterminated_record_at_the_end() {
        let recs = frame(&["<Event>", "<System>"]);
        assert_eq!(recs.len(), 1);
        assert_eq!((recs[0].first_line, recs[0].last_line), (1, 2));
    }

    #[test]
    fn unclosed_xml_does_not_swallow_following_lines() {
        let recs = frame(&["<Event>", "  <System>", "plain line after", "another"]);
        let got: Vec<(u64, u64)> = recs.iter().map(|r| (r.first_line, r.last_line)).collect();
        assert_eq!(got, vec![(1, 2), (3, 3), (4, 4)]);
    }
}
