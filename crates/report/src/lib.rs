//! Writes verdicts for people (a table) and for programs (JSON lines, CSV).
//!
//! ```
//! use opensoc_report::{Format, VerdictWriter};
//! let mut out = Vec::new();
//! let mut w = VerdictWriter::new(&mut out, Format::Csv);
//! w.finish().unwrap();
//! assert!(String::from_utf8(out).unwrap().starts_with("id,severity"));
//! ```

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::{self, Write};

use opensoc_verdict::Verdict;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line with every verdict key.
    Jsonl,
    /// Aligned columns for a terminal.
    Table,
    /// RFC 4180 CSV with a header row.
    Csv,
}

const COLUMNS: [&str; 11] = [
    "id",
    "severity",
    "risk_score",
    "category",
    "threat_type",
    "technique_id",
    "technique_name",
    "tactic",
    "recommendation",
    "evidence",
    "evidence_spans",
];

/// Widest evidence cell of the table; the JSON and CSV outputs carry every span whole.
const TABLE_EVIDENCE_WIDTH: usize = 90;
/// Widest quotation of one span in the table.
const TABLE_SPAN_WIDTH: usize = 32;

/// Writes verdicts as they come; the header (CSV, table) is written before the first.
/// Each JSON line is written with one `write_all` of the whole line and flushed, so a
/// reader of a pipe or a followed file never sees half a verdict and every verdict is out
/// as soon as it is made.
pub struct VerdictWriter<W: Write> {
    out: W,
    format: Format,
    header_done: bool,
    /// The JSON line being built, reused.
    line: Vec<u8>,
}

impl<W: Write> VerdictWriter<W> {
    pub fn new(out: W, format: Format) -> Self {
        VerdictWriter {
            out,
            format,
            header_done: false,
            line: Vec::new(),
        }
    }

    fn header(&mut self) -> io::Result<()> {
        if self.header_done {
            return Ok(());
        }
        self.header_done = true;
        match self.format {
            Format::Jsonl => Ok(()),
            Format::Csv => writeln!(self.out, "{}", COLUMNS.join(",")),
            Format::Table => writeln!(
                self.out,
                "{:<22} {:<8} {:>4}  {:<20} {:<10} {:<24} EVIDENCE",
                "ID", "SEVERITY", "RISK", "CATEGORY", "TECHNIQUE", "TACTIC"
            ),
        }
    }

    pub fn write(&mut self, v: &Verdict) -> io::Result<()> {
        self.header()?;
        match self.format {
            Format::Jsonl => {
                self.line.clear();
                serde_json::to_writer(&mut self.line, v)?;
                self.line.push(b'\n');
                self.out.write_all(&self.line)?;
                self.out.flush()
            }
            Format::Csv => {
                let cells = row(v);
                let line: Vec<String> = cells.iter().map(|c| csv_cell(c)).collect();
                writeln!(self.out, "{}", line.join(","))
            }
            Format::Table => {
                let dash = || "-".to_string();
                writeln!(
                    self.out,
                    "{:<22} {:<8} {:>4}  {:<20} {:<10} {:<24} {}",
                    clip(&v.id, 22),
                    v.severity.map_or_else(dash, |s| s.to_string()),
                    v.risk_score.map_or_else(dash, |s| s.to_string()),
                    clip(
                        v.category
                            .as_deref()
                            .or(v.threat_type.as_deref())
                            .unwrap_or("-"),
                        20
                    ),
                    clip(v.technique_id.as_deref().unwrap_or("-"), 10),
                    clip(v.tactic.as_deref().unwrap_or("-"), 24),
                    clip(&table_evidence(v), TABLE_EVIDENCE_WIDTH),
                )
            }
        }
    }

    /// Writes the header if nothing was written (an empty CSV still has its columns).
    pub fn finish(&mut self) -> io::Result<()> {
        self.header()?;
        self.out.flush()
    }
}

/// The evidence spans for a terminal: `what "text"`, each quotation shortened.
fn table_evidence(v: &Verdict) -> String {
    if v.evidence_spans.is_empty() {
        return "-".to_string();
    }
    let cells: Vec<String> = v
        .evidence_spans
        .iter()
        .map(|s| format!("{} \"{}\"", s.what, clip(&s.text, TABLE_SPAN_WIDTH)))
        .collect();
    cells.join(", ")
}

/// The evidence spans for a CSV cell: `what[start..end]: text`, `decoded` marked, `|`
/// between spans; controls escaped so each verdict stays one line.
fn csv_evidence_spans(v: &Verdict) -> String {
    let cells: Vec<String> = v
        .evidence_spans
        .iter()
        .map(|s| {
            let decoded = if s.decoded { ", decoded" } else { "" };
            format!(
                "{}[{}..{}{decoded}]: {}",
                s.what,
                s.start,
                s.end,
                terminal_safe(&s.text)
            )
        })
        .collect();
    cells.join(" | ")
}

fn row(v: &Verdict) -> [String; 11] {
    let s = |o: &Option<String>| o.clone().unwrap_or_default();
    [
        v.id.clone(),
        v.severity.map(|x| x.to_string()).unwrap_or_default(),
        v.risk_score.map(|x| x.to_string()).unwrap_or_default(),
        s(&v.category),
        s(&v.threat_type),
        s(&v.technique_id),
        s(&v.technique_name),
        s(&v.tactic),
        s(&v.recommendation),
        s(&v.evidence),
        csv_evidence_spans(v),
    ]
}

/// Quotes a cell when needed. Cells that a spreadsheet would run as a formula get a
/// leading apostrophe: log text is attacker-controlled. TAB and CR count too: some
/// spreadsheets skip them and read the formula behind.
fn csv_cell(cell: &str) -> String {
    let cell = if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}")
    } else {
        cell.to_string()
    };
    if cell.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", cell.replace('"', "\"\""))
    } else {
        cell
    }
}

/// Whether `c` must not reach a terminal as it is: C0 and C1 controls and DEL (escape
/// sequences: colours, cursor moves, OSC window titles, hyperlinks), bidirectional
/// controls (U+202E and friends reorder what is shown), and invisible separators and
/// zero-width characters that hide text.
fn unsafe_for_terminal(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2069}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
        )
}

/// `s` with every character that could act on a terminal (see [`unsafe_for_terminal`])
/// written as a visible escape (`\x1b`, `\u{202e}`), newlines and tabs included; for
/// every string derived from input that goes to a terminal: warnings, progress messages,
/// table cells.
pub fn terminal_safe(s: &str) -> Cow<'_, str> {
    if !s.chars().any(unsafe_for_terminal) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if !unsafe_for_terminal(c) {
            out.push(c);
        } else if (c as u32) < 0x80 {
            let _ = write!(out, "\\x{:02x}", c as u32);
        } else {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
    Cow::Owned(out)
}

/// Shortens to `width` characters for the table, after [`terminal_safe`].
fn clip(s: &str, width: usize) -> String {
    let clean = terminal_safe(s);
    if clean.chars().count() <= width {
        clean.into_owned()
    } else {
        let mut t: String = clean.chars().take(width.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opensoc_verdict::{parse_answer, EvidenceSpan, Verdict};

    fn verdict() -> Verdict {
        let raw = "THREAT_TYPE: XSS, reflected\nMITRE_TECHNIQUE: T1059.007 (JavaScript)\nMITRE_TACTIC: Execution\nSEVERITY: HIGH\nRISK_SCORE: 70\nRECOMMENDATION: =HYPERLINK(\"x\")";
        let mut v = Verdict::from_answer(
            "web.log:3".into(),
            "GET /?q=<script>".into(),
            raw.into(),
            parse_answer(raw),
        );
        v.category = Some("XSS".into());
        v
    }

    fn render(format: Format) -> String {
        let mut out = Vec::new();
        let mut w = VerdictWriter::new(&mut out, format);
        w.write(&verdict()).unwrap();
        w.finish().unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn jsonl_is_one_object_per_line() {
        let text = render(Format::Jsonl);
        assert_eq!(text.lines().count(), 1);
        let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(v["technique_id"], "T1059.007");
        assert_eq!(v["risk_score"], 70);
    }

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        let text = render(Format::Csv);
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some(COLUMNS.join(",").as_str()));
        assert_eq!(
            lines.next(),
            Some("web.log:3,HIGH,70,XSS,\"XSS, reflected\",T1059.007,JavaScript,Execution,\"'=HYPERLINK(\"\"x\"\")\",,")
        );
    }

    fn with_spans() -> Verdict {
        let mut v = verdict();
        v.input = "GET /?q=%3Cscript%3E HTTP/1.1\" 200".into();
        v.evidence = Some("cross-site scripting: \"<script>\" (decoded)".into());
        v.evidence_spans = vec![
            EvidenceSpan {
                start: 8,
                end: 20,
                text: "<script>".into(),
                what: "xss".into(),
                decoded: true,
            },
            EvidenceSpan {
                start: 31,
                end: 34,
                text: "200".into(),
                what: "status".into(),
                decoded: false,
            },
        ];
        v
    }

    #[test]
    fn csv_and_table_show_the_evidence_spans() {
        let mut out = Vec::new();
        let mut w = VerdictWriter::new(&mut out, Format::Csv);
        w.write(&with_spans()).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.ends_with(",\"cross-site scripting: \"\"<script>\"\" (decoded)\",\"xss[8..20, decoded]: <script> | status[31..34]: 200\"\n"),
            "{text}"
        );
        let mut out = Vec::new();
        let mut w = VerdictWriter::new(&mut out, Format::Table);
        w.write(&with_spans()).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].ends_with("TACTIC                   EVIDENCE"),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].ends_with("xss \"<script>\", status \"200\""),
            "{}",
            lines[1]
        );
        // A long payload is shortened in the table, and the row stays one line.
        let mut v = with_spans();
        v.evidence_spans[0].text = format!("<script>{}\n</script>", "a".repeat(200));
        let mut out = Vec::new();
        VerdictWriter::new(&mut out, Format::Table)
            .write(&v)
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(
            text.contains('…') && !text.contains("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
            "{text}"
        );
    }

    #[test]
    fn table_has_header_and_row() {
        let text = render(Format::Table);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("ID"));
        assert!(
            lines[1].starts_with("web.log:3")
                && lines[1].contains("HIGH")
                && lines[1].contains("T1059.007")
        );
    }

    #[test]
    fn clip_neutralises_terminal_escapes() {
        assert_eq!(clip("a\u{1b}[2Jb", 10), "a\\x1b[2Jb");
        assert_eq!(clip("abcdef", 4), "abc…");
    }

    #[test]
    fn terminal_safe_escapes_controls_bidi_and_osc() {
        assert_eq!(terminal_safe("plain: ünïcödé"), "plain: ünïcödé");
        assert!(matches!(terminal_safe("plain"), Cow::Borrowed(_)));
        assert_eq!(terminal_safe("\u{1b}]0;owned\u{7}x"), "\\x1b]0;owned\\x07x");
        assert_eq!(terminal_safe("a\u{9b}31mb"), "a\\u{9b}31mb");
        assert_eq!(terminal_safe("evil\u{202e}gpj.exe"), "evil\\u{202e}gpj.exe");
        assert_eq!(
            terminal_safe("a\u{2066}b\u{200b}c"),
            "a\\u{2066}b\\u{200b}c"
        );
        assert_eq!(terminal_safe("l1\nl2\r\t"), "l1\\x0al2\\x0d\\x09");
        assert_eq!(terminal_safe("del\u{7f}"), "del\\x7f");
    }

    /// Bounded random property: whatever the text, nothing unsafe is left, and safe text
    /// comes back unchanged.
    #[test]
    fn terminal_safe_leaves_nothing_unsafe() {
        let mut state = 11u64;
        for _ in 0..20_000 {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
            let text: String = (0..(state >> 59))
                .filter_map(|i| {
                    let r = (state.rotate_left(i as u32 * 9) >> 44) as u32;
                    // Mostly the interesting ranges: C0, C1, bidi, then anything.
                    char::from_u32(match r % 4 {
                        0 => r % 0x20,
                        1 => 0x80 + r % 0x20,
                        2 => 0x2000 + r % 0x70,
                        _ => r % 0x3000,
                    })
                })
                .collect();
            let safe = terminal_safe(&text);
            assert!(
                !safe.chars().any(unsafe_for_terminal),
                "{text:?} -> {safe:?}"
            );
            if !text.chars().any(unsafe_for_terminal) {
                assert_eq!(safe, text);
            }
        }
    }

    #[test]
    fn table_neutralises_bidi_controls_in_every_cell() {
        let mut v = verdict();
        v.id = "web\u{202e}gol.exe:3".into();
        v.tactic = Some("Exec\u{1b}[31mution".into());
        let mut out = Vec::new();
        let mut w = VerdictWriter::new(&mut out, Format::Table);
        w.write(&v).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            !text.contains('\u{202e}') && !text.contains('\u{1b}'),
            "{text:?}"
        );
        assert!(text.contains("web\\u{202e}gol"), "{text}");
    }

    #[test]
    fn csv_defuses_every_formula_start() {
        for (cell, want) in [
            ("=1+1", "'=1+1"),
            ("+1", "'+1"),
            ("-1", "'-1"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\t=1", "'\t=1"),
            ("\r=1", "\"'\r=1\""),
            ("ok=1", "ok=1"),
        ] {
            assert_eq!(csv_cell(cell), want, "{cell:?}");
        }
    }

    /// Counts `write` calls, as a pipe would see them.
    struct Writes(Vec<Vec<u8>>);

    impl Write for Writes {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.push(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Regression: JSON lines over about 1 KB reached the output in several writes.
    #[test]
    fn each_jsonl_verdict_is_one_write_of_the_whole_line() {
        let mut w = VerdictWriter::new(Writes(Vec::new()), Format::Jsonl);
        for i in 0..3 {
            let mut v = verdict();
            v.input = format!("{i}{}", "x".repeat(100_000));
            w.write(&v).unwrap();
        }
        let writes = &w.out.0;
        assert_eq!(writes.len(), 3);
        for line in writes {
            assert!(line.len() > 100_000 && line.ends_with(b"\n"));
            let v: serde_json::Value = serde_json::from_slice(line).unwrap();
            assert_eq!(v["technique_id"], "T1059.007");
        }
    }
}
