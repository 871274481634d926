//! Writers: JSON for machines, JSONL of per-example records, Markdown tables for docs,
//! one self-contained HTML page with inline SVG plots.
//!
//! Class names, system names and record fields can come from log text or model output,
//! which an attacker controls, so every such string goes through [`escape_html`] or
//! [`escape_markdown`] before it reaches a page.

mod html;
mod markdown;

use std::io::Write;

pub use html::html;
pub use markdown::markdown;

use crate::metrics::Proportion;
use crate::report::{ExampleRecord, LineAlerts, Report, Scope, SystemReport, Unit};

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("cannot write the report")]
    Io(#[from] std::io::Error),
    #[error("cannot serialise the report")]
    Json(#[from] serde_json::Error),
}

/// Writes the report as pretty-printed JSON, with a final newline.
pub fn write_json(report: &Report, mut out: impl Write) -> Result<(), RenderError> {
    serde_json::to_writer_pretty(&mut out, report)?;
    out.write_all(b"\n")?;
    Ok(())
}

/// Writes one JSON object per line: each example's label, every system's prediction
/// fields and correct flags.
pub fn write_records_jsonl(
    records: &[ExampleRecord],
    mut out: impl Write,
) -> Result<(), RenderError> {
    for record in records {
        serde_json::to_writer(&mut out, record)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// Longest class or system name shown in a table or plot; longer ones are shortened with
/// an ellipsis (model output can be arbitrarily long).
const MAX_LABEL_CHARS: usize = 60;

/// `text` cut to [`MAX_LABEL_CHARS`] characters, control characters and line breaks made
/// spaces.
fn shorten(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(MAX_LABEL_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().nth(MAX_LABEL_CHARS).is_some() {
        out.push('…');
    }
    out
}

/// Escapes text for HTML element content and double- or single-quoted attribute values
/// (SVG inside HTML included).
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes text for one cell of a Markdown table (CommonMark/GFM): line breaks become
/// spaces, markup characters are backslash-escaped, `<`, `>` and `&` become entities so
/// no raw HTML gets through, and URLs are defanged (`hxxp`-style: `://` becomes `[://]`,
/// `www.` becomes `www[.]`) because GFM turns them into links after escapes are read.
pub fn escape_markdown(text: &str) -> String {
    let defanged = text
        .replace("://", "[://]")
        .replace("www.", "www[.]")
        .replace("WWW.", "WWW[.]");
    let mut out = String::with_capacity(defanged.len());
    for (i, c) in defanged.char_indices() {
        match c {
            // Only an `&` that starts an entity reference (`&lt;`, `&#60;`) needs escaping;
            // `ATT&CK` stays readable in the Markdown source.
            '&' if starts_entity(&defanged[i + 1..]) => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\n' | '\r' => out.push(' '),
            '\\' | '`' | '*' | '_' | '{' | '}' | '[' | ']' | '#' | '+' | '!' | '|' | '~' | '^' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Whether `rest` (the text after an `&`) would make it an entity reference.
fn starts_entity(rest: &str) -> bool {
    let name_len = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '#'))
        .unwrap_or(rest.len());
    name_len > 0 && rest[name_len..].starts_with(';')
}

/// `-0.0` and values that round to zero print as `0.0`, not `-0.0`.
fn round_to(x: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    let r = (x * scale).round() / scale;
    if r == 0.0 {
        0.0
    } else {
        r
    }
}

/// A metric value for tables: `68.0 %`, `0.71`, `12.4`; `–` when undefined.
fn format_value(unit: Unit, value: Option<f64>) -> String {
    match (unit, value) {
        (_, None) => "–".to_string(),
        (Unit::Rate, Some(v)) => format!("{:.1} %", round_to(v * 100.0, 1)),
        (Unit::Score, Some(v)) => format!("{:.2}", round_to(v, 2)),
        (Unit::Points | Unit::PerTenThousand, Some(v)) => format!("{:.1}", round_to(v, 1)),
    }
}

/// A difference for tables: `+40.0 pp`, `-0.03`, `+1.5`; `–` when undefined.
fn format_delta(unit: Unit, delta: Option<f64>) -> String {
    match (unit, delta) {
        (_, None) => "–".to_string(),
        (Unit::Rate, Some(d)) => format!("{:+.1} pp", round_to(d * 100.0, 1)),
        (Unit::Score, Some(d)) => format!("{:+.2}", round_to(d, 2)),
        (Unit::Points | Unit::PerTenThousand, Some(d)) => format!("{:+.1}", round_to(d, 1)),
    }
}

/// A share with its counts, `75.0 % (3/4)`; `–` over no trials.
fn share(p: Proportion) -> String {
    if p.trials == 0 {
        return "–".to_string();
    }
    format!(
        "{} ({}/{})",
        format_value(Unit::Rate, Some(p.value)),
        p.successes,
        p.trials
    )
}

/// A share's Wilson 95 % interval, `52.1 % – 91.2 %`; `–` over no trials.
fn interval(p: Proportion) -> String {
    if p.trials == 0 {
        return "–".to_string();
    }
    format!(
        "{} – {}",
        format_value(Unit::Rate, Some(p.low)),
        format_value(Unit::Rate, Some(p.high))
    )
}

/// Alerts per 10,000 benign lines with counts and interval; `–` when no benign line.
fn line_alerts(a: &LineAlerts) -> String {
    if a.lines.trials == 0 {
        return "–".to_string();
    }
    let per = |v| format_value(Unit::PerTenThousand, Some(v));
    format!(
        "{} ({} of {} benign lines in alerted entries; 95 % {} – {})",
        per(a.per_10k),
        a.lines.successes,
        a.lines.trials,
        per(a.per_10k_low),
        per(a.per_10k_high)
    )
}

/// How a system's scored examples were chosen, for the report's first line.
fn scope_note(system: &SystemReport) -> &'static str {
    match system.scope {
        Scope::All => "",
        Scope::Answered => ", scored on those only",
    }
}

/// The delta of the `key` metric of `candidate` against the report's baseline.
fn delta_of(report: &Report, candidate: &str, key: &str) -> Option<f64> {
    report
        .comparisons
        .iter()
        .find(|c| c.candidate == candidate)?
        .rows
        .iter()
        .find(|r| r.key == key)?
        .delta
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escaping() {
        assert_eq!(
            escape_html(r#"<script>alert('x')</script> & "q""#),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
    }

    #[test]
    fn markdown_escaping() {
        assert_eq!(
            escape_markdown("a|b\n*c* [x](javascript:y) <img src=x> `z` \\"),
            "a\\|b \\*c\\* \\[x\\](javascript:y) &lt;img src=x&gt; \\`z\\` \\\\"
        );
        assert_eq!(
            escape_markdown("see http://evil.example/x or www.evil.example"),
            "see http\\[://\\]evil.example/x or www\\[.\\]evil.example"
        );
        assert_eq!(
            escape_markdown("SQL Injection — Union/Boolean SQLi"),
            "SQL Injection — Union/Boolean SQLi"
        );
    }

    #[test]
    fn shortening_and_numbers() {
        let long = "x".repeat(100);
        assert_eq!(shorten(&long).chars().count(), MAX_LABEL_CHARS + 1);
        assert_eq!(shorten("a\u{1b}[31mb"), "a [31mb");
        assert_eq!(format_value(Unit::Rate, Some(0.68)), "68.0 %");
        assert_eq!(format_value(Unit::Score, Some(0.7049)), "0.70");
        assert_eq!(format_value(Unit::Points, None), "–");
        assert_eq!(format_delta(Unit::Rate, Some(0.4)), "+40.0 pp");
        assert_eq!(format_delta(Unit::Rate, Some(-0.0001)), "+0.0 pp");
        assert_eq!(format_delta(Unit::Score, Some(-0.031)), "-0.03");
    }
}
