//! Writes verdicts for people (a table) and for programs (JSON lines, CSV).
//!
//! ```
//! use opensoc_report::{Format, VerdictWriter};
//! let mut out = Vec::new();
//! let mut w = VerdictWriter::new(&mut out, Format::Csv);
//! w.finish().unwrap();
//! assert!(String::from_utf8(out).unwrap().starts_with("id,severity"));
//! ```

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

const COLUMNS: [&str; 9] = [
    "id",
    "severity",
    "risk_score",
    "category",
    "threat_type",
    "technique_id",
    "technique_name",
    "tactic",
    "recommendation",
];

/// Writes verdicts as they come; the header (CSV, table) is written before the first.
pub struct VerdictWriter<W: Write> {
    out: W,
    format: Format,
    header_done: bool,
}

impl<W: Write> VerdictWriter<W> {
    pub fn new(out: W, format: Format) -> Self {
        VerdictWriter {
            out,
            format,
            header_done: false,
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
                "{:<22} {:<8} {:>4}  {:<20} {:<10} TACTIC",
                "ID", "SEVERITY", "RISK", "CATEGORY", "TECHNIQUE"
            ),
        }
    }

    pub fn write(&mut self, v: &Verdict) -> io::Result<()> {
        self.header()?;
        match self.format {
            Format::Jsonl => {
                serde_json::to_writer(&mut self.out, v)?;
                writeln!(self.out)
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
                    "{:<22} {:<8} {:>4}  {:<20} {:<10} {}",
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
                    v.technique_id.as_deref().unwrap_or("-"),
                    clip(v.tactic.as_deref().unwrap_or("-"), 24),
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

fn row(v: &Verdict) -> [String; 9] {
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
    ]
}

/// Quotes a cell when needed. Cells that a spreadsheet would run as a formula get a
/// leading apostrophe: log text is attacker-controlled.
fn csv_cell(cell: &str) -> String {
    let cell = if cell.starts_with(['=', '+', '-', '@']) {
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

/// Shortens to `width` characters for the table, and keeps control characters (terminal
/// escapes in log text) out of the terminal.
fn clip(s: &str, width: usize) -> String {
    let clean: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if clean.chars().count() <= width {
        clean
    } else {
        let mut t: String = clean.chars().take(width.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opensoc_verdict::{parse_answer, Verdict};

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
            Some("web.log:3,HIGH,70,XSS,\"XSS, reflected\",T1059.007,JavaScript,Execution,\"'=HYPERLINK(\"\"x\"\")\"")
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
    fn clip_strips_terminal_escapes() {
        assert_eq!(clip("a\u{1b}[2Jb", 10), "a [2Jb");
        assert_eq!(clip("abcdef", 4), "abc…");
    }
}
