//! Markdown tables (GitHub-flavoured) for the README and docs.

use std::fmt::Write;

use super::{
    delta_of, escape_markdown, format_delta, format_value, interval, line_alerts, scope_note,
    share, shorten,
};
use crate::metrics::ConfusionMatrix;
use crate::report::{GroupScore, Report, SystemReport, Unit};

/// A cell: shortened, then escaped.
fn cell(text: &str) -> String {
    escape_markdown(&shorten(text))
}

/// Renders the report as Markdown: the Table II summary, then per system the
/// per-category accuracy with Wilson intervals and the category and severity confusions.
pub fn markdown(report: &Report) -> String {
    let mut md = String::new();
    // Writing to a String cannot fail; the results are ignored for that reason.
    let _ = writeln!(md, "# OpenSOC evaluation report\n");
    let systems: Vec<String> = report
        .systems
        .iter()
        .map(|s| {
            format!(
                "**{}** ({} answered{})",
                cell(&s.name),
                s.answered,
                scope_note(s)
            )
        })
        .collect();
    let selection = report
        .selection
        .as_deref()
        .map(|s| {
            format!(
                " ({} of {} in the file)",
                escape_markdown(s),
                report.file_examples
            )
        })
        .unwrap_or_default();
    let _ = writeln!(
        md,
        "{} labelled examples{selection}; ATT&CK Enterprise {}. Systems: {}.\n",
        report.examples,
        escape_markdown(report.attack_version),
        systems.join(", ")
    );
    summary(&mut md, report);
    for system in &report.systems {
        details(&mut md, system);
    }
    let _ = writeln!(
        md,
        "Strict: the paper's regex `KEY[:\\s]+([^\\n,]+)`, upper-cased, exact match. \
         SOC-Bench v0: tolerant parsing, output cut at `### ` loop markers, fine types \
         mapped to canonical categories. Technique and tactic accuracy count only examples \
         whose label names an ATT&CK technique or tactic; the valid-ID rate counts \
         predictions that name an ID. Unanswered examples count as wrong, except for a \
         system scored on the examples it answered. Detection: an alert is any attack \
         category (anything but NO THREAT); an incident entry counts the lines its summary \
         names."
    );
    md
}

fn summary(md: &mut String, report: &Report) {
    let Some(first) = report.systems.first() else {
        let _ = writeln!(md, "No systems were scored.\n");
        return;
    };
    let others = &report.systems[1..];
    let _ = writeln!(md, "## Summary\n");
    let mut header = String::from("| Protocol | Metric |");
    let mut rule = String::from("|---|---|");
    for s in &report.systems {
        let _ = write!(header, " {} |", cell(&s.name));
        rule.push_str("---:|");
    }
    for s in others {
        let _ = write!(header, " Δ {} |", cell(&s.name));
        rule.push_str("---:|");
    }
    let _ = writeln!(md, "{header}\n{rule}");

    let columns: Vec<_> = report.systems.iter().map(SystemReport::headlines).collect();
    for (i, h) in first.headlines().iter().enumerate() {
        let _ = write!(
            md,
            "| {} | {} |",
            h.protocol.title(),
            escape_markdown(h.metric)
        );
        for column in &columns {
            let value = column.get(i).and_then(|c| c.value);
            let _ = write!(md, " {} |", format_value(h.unit, value));
        }
        for s in others {
            let _ = write!(
                md,
                " {} |",
                format_delta(h.unit, delta_of(report, &s.name, h.key))
            );
        }
        md.push('\n');
    }
    md.push('\n');
}

fn details(md: &mut String, system: &SystemReport) {
    let b = &system.soc_bench;
    let _ = writeln!(md, "## {}\n", cell(&system.name));
    let _ = writeln!(
        md,
        "Answered {} of {} examples. Strict threat type P/R/F1: macro {} / {} / {}, \
         weighted {} / {} / {}.\n",
        system.answered,
        system.answered + system.unanswered,
        format_value(Unit::Score, Some(system.strict.threat_type.macro_precision)),
        format_value(Unit::Score, Some(system.strict.threat_type.macro_recall)),
        format_value(Unit::Score, Some(system.strict.threat_type.macro_f1)),
        format_value(
            Unit::Score,
            Some(system.strict.threat_type.weighted_precision)
        ),
        format_value(Unit::Score, Some(system.strict.threat_type.weighted_recall)),
        format_value(Unit::Score, Some(system.strict.threat_type.weighted_f1)),
    );

    if let Some(cal) = &system.calibration {
        let _ = writeln!(
            md,
            "Calibration: {} verdicts with a confidence, mean confidence {}, fully correct \
             (fine type, severity, technique) {}, expected calibration error {} ({} bins).\n",
            cal.verdicts,
            format_value(Unit::Rate, Some(cal.mean_confidence)),
            format_value(Unit::Rate, Some(cal.accuracy)),
            format_value(Unit::Score, Some(cal.ece)),
            cal.bins.len(),
        );
    }

    let _ = writeln!(md, "### Per-category accuracy (SOC-Bench v0)\n");
    let _ = writeln!(
        md,
        "| Category | Labelled | Correct | Accuracy | 95 % Wilson interval | Precision | Recall | F1 |\n\
         |---|---:|---:|---:|---|---:|---:|---:|"
    );
    for c in &b.per_category {
        let accuracy = if c.support > 0 {
            (
                format_value(Unit::Rate, Some(c.accuracy.value)),
                format!(
                    "{} – {}",
                    format_value(Unit::Rate, Some(c.accuracy.low)),
                    format_value(Unit::Rate, Some(c.accuracy.high))
                ),
            )
        } else {
            ("–".to_string(), "–".to_string())
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            cell(&c.class),
            c.support,
            c.true_positives,
            accuracy.0,
            accuracy.1,
            format_value(Unit::Score, Some(c.precision)),
            format_value(Unit::Score, Some(c.recall)),
            format_value(Unit::Score, Some(c.f1)),
        );
    }
    md.push('\n');

    detection(md, system);

    let _ = writeln!(
        md,
        "### Category confusion (rows: label, columns: prediction)\n"
    );
    confusion(md, &b.confusion.category);
    let _ = writeln!(
        md,
        "### Severity confusion (rows: label, columns: prediction)\n"
    );
    confusion(md, &b.confusion.severity);
}

fn detection(md: &mut String, system: &SystemReport) {
    let d = &system.detection;
    let _ = writeln!(md, "### Detection\n");
    let _ = writeln!(
        md,
        "| Metric | Value | 95 % Wilson interval |\n|---|---:|---|\n\
         | Benign false-positive rate (benign entries alerted) | {} | {} |\n\
         | Attack recall (attack entries alerted) | {} | {} |\n\
         | Web category accuracy | {} | {} |\n",
        share(d.benign_false_positive_rate),
        interval(d.benign_false_positive_rate),
        share(d.attack_recall),
        interval(d.attack_recall),
        share(d.web_category_accuracy),
        interval(d.web_category_accuracy),
    );
    let _ = writeln!(
        md,
        "Alerts per 10,000 benign lines: {}.\n",
        line_alerts(&d.benign_line_alerts)
    );
    groups(md, ("source", "Source"), &system.per_source);
    groups(md, ("format", "Format"), &system.per_format);
}

/// The per-`source` or per-`format` table; `key` is the name in the heading and in the
/// column header.
fn groups(md: &mut String, key: (&str, &str), groups: &[GroupScore]) {
    if groups.is_empty() {
        return;
    }
    let (heading, column) = key;
    let _ = writeln!(
        md,
        "### Per {heading}\n\n\
         | {column} | Examples | Category accuracy | 95 % Wilson interval | Benign false positives | Attack recall |\n\
         |---|---:|---:|---|---:|---:|"
    );
    for g in groups {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} |",
            cell(&g.group),
            g.examples,
            share(g.category_accuracy),
            interval(g.category_accuracy),
            share(g.benign_false_positive_rate),
            share(g.attack_recall),
        );
    }
    md.push('\n');
}

fn confusion(md: &mut String, m: &ConfusionMatrix) {
    if m.classes.is_empty() {
        let _ = writeln!(md, "No labelled examples.\n");
        return;
    }
    let mut header = String::from("| Label \\\\ Prediction |");
    let mut rule = String::from("|---|");
    for class in &m.classes {
        let _ = write!(header, " {} |", cell(class));
        rule.push_str("---:|");
    }
    header.push_str(" No answer |");
    rule.push_str("---:|");
    let _ = writeln!(md, "{header}\n{rule}");
    for (i, class) in m.classes.iter().enumerate() {
        let _ = write!(md, "| {} |", cell(class));
        for count in &m.counts[i] {
            let _ = write!(md, " {count} |");
        }
        let _ = writeln!(md, " {} |", m.no_answer[i]);
    }
    md.push('\n');
}
