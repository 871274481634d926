//! One self-contained HTML page: inline CSS and hand-made inline SVG, no scripts, no
//! external URLs, so it opens offline and from an e-mail attachment.

use std::collections::BTreeSet;
use std::fmt::Write;

use super::{
    delta_of, escape_html, format_delta, format_value, interval, line_alerts, scope_note, share,
    shorten,
};
use crate::metrics::ConfusionMatrix;
use crate::report::{Calibration, GroupScore, Report, SystemReport, Unit};

/// Series colours, one per system (colour-blind safe palette).
const PALETTE: [&str; 6] = [
    "#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00",
];

/// Blocks scripts, external loads and forms even if escaping ever failed; only the inline
/// stylesheet is allowed.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'none'";

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;\
margin:2rem auto;max-width:70rem;padding:0 1rem;color:#1b1b1b;line-height:1.4}\
h1,h2,h3{line-height:1.2}h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2.5rem}\
table{border-collapse:collapse;margin:1rem 0;font-size:.9rem}\
th,td{border:1px solid #ddd;padding:.25rem .55rem;text-align:right}\
th:first-child,td:first-child,td.text{text-align:left}thead th{background:#f4f4f4}\
.pos{color:#0a7a3a}.neg{color:#b3261e}.note{color:#555;font-size:.85rem}\
svg{display:block;margin:1rem 0;max-width:100%;height:auto}\
svg text{font-family:inherit;font-size:11px;fill:#1b1b1b}";

fn text(s: &str) -> String {
    escape_html(&shorten(s))
}

/// Renders the report as one HTML page with the Table II summary, per-category accuracy
/// bars with Wilson intervals for every system, and per system the category and
/// severity confusion heatmaps and the per-category table.
pub fn html(report: &Report) -> String {
    let mut h = String::new();
    // Writing to a String cannot fail; the results are ignored for that reason.
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>OpenSOC evaluation report</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <h1>OpenSOC evaluation report</h1>\n"
    );
    let systems: Vec<String> = report
        .systems
        .iter()
        .map(|s| {
            format!(
                "<strong>{}</strong> ({} answered{})",
                text(&s.name),
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
                escape_html(s),
                report.file_examples
            )
        })
        .unwrap_or_default();
    let _ = writeln!(
        h,
        "<p>{} labelled examples{selection}; ATT&amp;CK Enterprise {}. Systems: {}.</p>",
        report.examples,
        escape_html(report.attack_version),
        systems.join(", ")
    );
    summary(&mut h, report);
    if !report.systems.is_empty() {
        let _ = writeln!(h, "<h2>Per-category accuracy (SOC-Bench v0)</h2>");
        let _ = writeln!(
            h,
            "<p class=\"note\">Bars: accuracy on the examples labelled with each category; \
             whiskers: Wilson 95&nbsp;% interval.</p>"
        );
        accuracy_chart(&mut h, report);
    }
    for (i, system) in report.systems.iter().enumerate() {
        details(&mut h, system, PALETTE[i % PALETTE.len()]);
    }
    let _ = writeln!(
        h,
        "<p class=\"note\">Strict: the paper&#39;s regex <code>KEY[:\\s]+([^\\n,]+)</code>, \
         upper-cased, exact match. SOC-Bench v0: tolerant parsing, output cut at \
         <code>###</code> loop markers, fine types mapped to canonical categories. Technique \
         and tactic accuracy count only examples whose label names an ATT&amp;CK technique or \
         tactic; the valid-ID rate counts predictions that name an ID. Unanswered examples \
         count as wrong, except for a system scored on the examples it answered. Detection: \
         an alert is any attack category (anything but NO THREAT); an incident entry counts \
         the lines its summary names.</p>\n</body>\n</html>"
    );
    h
}

fn summary(h: &mut String, report: &Report) {
    let Some(first) = report.systems.first() else {
        let _ = writeln!(h, "<p>No systems were scored.</p>");
        return;
    };
    let others = &report.systems[1..];
    let _ = write!(
        h,
        "<h2>Summary</h2>\n<table>\n<thead><tr><th>Protocol</th><th>Metric</th>"
    );
    for s in &report.systems {
        let _ = write!(h, "<th>{}</th>", text(&s.name));
    }
    for s in others {
        let _ = write!(h, "<th>Δ {}</th>", text(&s.name));
    }
    let _ = writeln!(h, "</tr></thead>\n<tbody>");
    let columns: Vec<_> = report.systems.iter().map(SystemReport::headlines).collect();
    for (i, row) in first.headlines().iter().enumerate() {
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"text\">{}</td>",
            row.protocol.title(),
            escape_html(row.metric)
        );
        for column in &columns {
            let value = column.get(i).and_then(|c| c.value);
            let _ = write!(h, "<td>{}</td>", format_value(row.unit, value));
        }
        for s in others {
            let delta = delta_of(report, &s.name, row.key);
            // Colour by whether the change is an improvement, not by its sign.
            let better = delta.map(|d| if row.higher_is_better { d } else { -d });
            let class = match better {
                Some(d) if d > 1e-9 => " class=\"pos\"",
                Some(d) if d < -1e-9 => " class=\"neg\"",
                _ => "",
            };
            let _ = write!(h, "<td{class}>{}</td>", format_delta(row.unit, delta));
        }
        let _ = writeln!(h, "</tr>");
    }
    let _ = writeln!(h, "</tbody>\n</table>");
}

/// Horizontal bars: one group per labelled category, one bar per system, with the
/// Wilson interval as a whisker.
fn accuracy_chart(h: &mut String, report: &Report) {
    // Categories labelled in any system's run (labels are shared, so normally one set),
    // in the first system's order.
    let mut categories: Vec<&str> = Vec::new();
    let mut seen = BTreeSet::new();
    for s in &report.systems {
        for c in s.soc_bench.per_category.iter().filter(|c| c.support > 0) {
            if seen.insert(c.class.as_str()) {
                categories.push(&c.class);
            }
        }
    }
    if categories.is_empty() {
        let _ = writeln!(h, "<p>No labelled categories.</p>");
        return;
    }
    let n = report.systems.len();
    let (left, plot_w, bar_h, gap, top) = (210.0, 440.0, 12.0, 10.0, 24.0);
    let group_h = bar_h * n as f64 + gap;
    let legend_h = 18.0;
    let height = top + group_h * categories.len() as f64 + 22.0 + legend_h;
    let width = left + plot_w + 30.0;
    let _ = writeln!(
        h,
        "<svg viewBox=\"0 0 {width} {height}\" width=\"{width}\" \
         height=\"{height}\" role=\"img\" aria-label=\"Per-category accuracy with Wilson intervals\">"
    );
    // Grid and axis labels.
    for tick in 0..=4 {
        let x = left + plot_w * f64::from(tick) / 4.0;
        let bottom = top + group_h * categories.len() as f64;
        let _ = writeln!(
            h,
            "<line x1=\"{x}\" y1=\"{top}\" x2=\"{x}\" y2=\"{bottom}\" stroke=\"#ddd\"/>\
             <text x=\"{x}\" y=\"{}\" text-anchor=\"middle\">{} %</text>",
            bottom + 14.0,
            tick * 25
        );
    }
    for (gi, category) in categories.iter().enumerate() {
        let y0 = top + group_h * gi as f64;
        let _ = writeln!(
            h,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            left - 6.0,
            y0 + bar_h * n as f64 / 2.0 + 4.0,
            text(category)
        );
        for (si, system) in report.systems.iter().enumerate() {
            let Some(score) = system
                .soc_bench
                .per_category
                .iter()
                .find(|c| c.class == *category)
            else {
                continue;
            };
            let a = score.accuracy;
            let y = y0 + bar_h * si as f64;
            let colour = PALETTE[si % PALETTE.len()];
            let mid = y + bar_h / 2.0;
            let _ = writeln!(
                h,
                "<g><title>{}: {}/{} = {} (95 % {} – {})</title>\
                 <rect x=\"{left}\" y=\"{y}\" width=\"{:.1}\" height=\"{}\" fill=\"{colour}\"/>\
                 <line x1=\"{:.1}\" y1=\"{mid}\" x2=\"{:.1}\" y2=\"{mid}\" stroke=\"#222\"/>\
                 <line x1=\"{:.1}\" y1=\"{}\" x2=\"{:.1}\" y2=\"{}\" stroke=\"#222\"/>\
                 <line x1=\"{:.1}\" y1=\"{}\" x2=\"{:.1}\" y2=\"{}\" stroke=\"#222\"/></g>",
                text(&system.name),
                a.successes,
                a.trials,
                format_value(Unit::Rate, Some(a.value)),
                format_value(Unit::Rate, Some(a.low)),
                format_value(Unit::Rate, Some(a.high)),
                plot_w * a.value,
                bar_h - 2.0,
                left + plot_w * a.low,
                left + plot_w * a.high,
                left + plot_w * a.low,
                y + 2.0,
                left + plot_w * a.low,
                y + bar_h - 4.0,
                left + plot_w * a.high,
                y + 2.0,
                left + plot_w * a.high,
                y + bar_h - 4.0,
            );
        }
    }
    // Legend.
    let ly = height - legend_h + 4.0;
    let mut lx = left;
    for (si, system) in report.systems.iter().enumerate() {
        let name = text(&system.name);
        let _ = writeln!(
            h,
            "<rect x=\"{lx}\" y=\"{ly}\" width=\"10\" height=\"10\" fill=\"{}\"/>\
             <text x=\"{}\" y=\"{}\">{name}</text>",
            PALETTE[si % PALETTE.len()],
            lx + 14.0,
            ly + 9.0
        );
        lx += 14.0 + 7.0 * shorten(&system.name).chars().count() as f64 + 20.0;
    }
    let _ = writeln!(h, "</svg>");
}

fn details(h: &mut String, system: &SystemReport, colour: &str) {
    let b = &system.soc_bench;
    let _ = writeln!(h, "<h2>{}</h2>", text(&system.name));
    let _ = writeln!(
        h,
        "<p>Answered {} of {} examples. Parse rate {}.</p>",
        system.answered,
        system.answered + system.unanswered,
        format_value(Unit::Rate, Some(b.parse_rate.value))
    );
    let _ = writeln!(h, "<h3>Category confusion</h3>");
    heatmap(h, &b.confusion.category, colour, "Category confusion");
    let _ = writeln!(h, "<h3>Severity confusion</h3>");
    heatmap(h, &b.confusion.severity, colour, "Severity confusion");
    if let Some(cal) = &system.calibration {
        let _ = writeln!(
            h,
            "<h3>Calibration</h3>\n<p>{} verdicts with a confidence: mean confidence {}, \
             share fully correct (fine type, severity, technique) {}, expected calibration \
             error {}.</p>",
            cal.verdicts,
            format_value(Unit::Rate, Some(cal.mean_confidence)),
            format_value(Unit::Rate, Some(cal.accuracy)),
            format_value(Unit::Score, Some(cal.ece)),
        );
        reliability_diagram(h, cal, colour);
    }

    let _ = writeln!(
        h,
        "<h3>Per-category scores</h3>\n<table>\n<thead><tr><th>Category</th><th>Labelled</th>\
         <th>Correct</th><th>Accuracy</th><th>95 % Wilson interval</th><th>Precision</th>\
         <th>Recall</th><th>F1</th></tr></thead>\n<tbody>"
    );
    for c in &b.per_category {
        let (accuracy, interval) = if c.support > 0 {
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
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{accuracy}</td><td>{interval}</td>\
             <td>{}</td><td>{}</td><td>{}</td></tr>",
            text(&c.class),
            c.support,
            c.true_positives,
            format_value(Unit::Score, Some(c.precision)),
            format_value(Unit::Score, Some(c.recall)),
            format_value(Unit::Score, Some(c.f1)),
        );
    }
    let _ = writeln!(h, "</tbody>\n</table>");
    detection(h, system);
}

fn detection(h: &mut String, system: &SystemReport) {
    let d = &system.detection;
    let _ = writeln!(
        h,
        "<h3>Detection</h3>\n<table>\n<thead><tr><th>Metric</th><th>Value</th>\
         <th>95 % Wilson interval</th></tr></thead>\n<tbody>"
    );
    for (metric, p) in [
        (
            "Benign false-positive rate (benign entries alerted)",
            d.benign_false_positive_rate,
        ),
        ("Attack recall (attack entries alerted)", d.attack_recall),
        ("Web category accuracy", d.web_category_accuracy),
    ] {
        let _ = writeln!(
            h,
            "<tr><td>{metric}</td><td>{}</td><td>{}</td></tr>",
            share(p),
            interval(p)
        );
    }
    let _ = writeln!(
        h,
        "</tbody>\n</table>\n<p>Alerts per 10,000 benign lines: {}.</p>",
        line_alerts(&d.benign_line_alerts)
    );
    groups(h, ("source", "Source"), &system.per_source);
    groups(h, ("format", "Format"), &system.per_format);
}

/// The per-`source` or per-`format` table; `key` is the name in the heading and in the
/// column header.
fn groups(h: &mut String, key: (&str, &str), groups: &[GroupScore]) {
    if groups.is_empty() {
        return;
    }
    let (heading, column) = key;
    let _ = writeln!(
        h,
        "<h3>Per {heading}</h3>\n<table>\n<thead><tr><th>{column}</th><th>Examples</th>\
         <th>Category accuracy</th><th>95 % Wilson interval</th>\
         <th>Benign false positives</th><th>Attack recall</th></tr></thead>\n<tbody>"
    );
    for g in groups {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            text(&g.group),
            g.examples,
            share(g.category_accuracy),
            interval(g.category_accuracy),
            share(g.benign_false_positive_rate),
            share(g.attack_recall),
        );
    }
    let _ = writeln!(h, "</tbody>\n</table>");
}

/// Reliability diagram: per confidence bin, a bar of the share correct, over the
/// diagonal a perfectly calibrated model would follow; bar width shows nothing, the
/// count is in each bar's tooltip and under it.
fn reliability_diagram(h: &mut String, cal: &Calibration, colour: &str) {
    let (left, top, side) = (40.0, 10.0, 240.0);
    let (width, height) = (left + side + 20.0, top + side + 46.0);
    let _ = writeln!(
        h,
        "<svg viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" \
         role=\"img\" aria-label=\"Reliability diagram\">\
         <rect x=\"{left}\" y=\"{top}\" width=\"{side}\" height=\"{side}\" fill=\"none\" stroke=\"#ccc\"/>\
         <line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{top}\" stroke=\"#999\" stroke-dasharray=\"4 3\"/>",
        top + side,
        left + side
    );
    let bins = cal.bins.len().max(1) as f64;
    let bar_w = side / bins;
    for b in cal.bins.iter().filter(|b| b.count > 0) {
        let x = left + side * b.lower;
        let bar_h = side * b.accuracy;
        let _ = writeln!(
            h,
            "<g><title>confidence {}–{}: {} verdicts, mean confidence {}, correct {}</title>\
             <rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bar_h:.1}\" \
             fill=\"{colour}\" fill-opacity=\"0.8\"/>\
             <text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text></g>",
            format_value(Unit::Rate, Some(b.lower)),
            format_value(Unit::Rate, Some(b.upper)),
            b.count,
            format_value(Unit::Rate, Some(b.mean_confidence)),
            format_value(Unit::Rate, Some(b.accuracy)),
            x + 1.0,
            top + side - bar_h,
            bar_w - 2.0,
            x + bar_w / 2.0,
            top + side + 12.0,
            b.count,
        );
    }
    let _ = writeln!(
        h,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">confidence (count per bin above)</text>\
         <text x=\"12\" y=\"{}\" transform=\"rotate(-90 12 {})\" text-anchor=\"middle\">share correct</text>\
         </svg>",
        left + side / 2.0,
        top + side + 34.0,
        top + side / 2.0,
        top + side / 2.0,
    );
}

/// A confusion heatmap: rows are labels, columns predictions plus "no answer"; cell
/// shading is the share of the row, so rare classes are as readable as common ones.
fn heatmap(h: &mut String, m: &ConfusionMatrix, colour: &str, title: &str) {
    if m.classes.is_empty() {
        let _ = writeln!(h, "<p>No labelled examples.</p>");
        return;
    }
    let k = m.classes.len();
    let (cell, left) = (30.0, 210.0);
    // Rotated column labels lean right by about their length times cos 45°.
    let longest = m
        .classes
        .iter()
        .map(|c| shorten(c).chars().count())
        .max()
        .unwrap_or(0)
        .max("no answer".len());
    let width = (left + cell * (k + 1) as f64 + 5.0 * longest as f64 + 10.0).max(left + 240.0);
    let top = 5.0 * longest as f64 + 30.0;
    let height = top + cell * k as f64 + 36.0;
    let _ = writeln!(
        h,
        "<svg viewBox=\"0 0 {width} {height}\" width=\"{width}\" \
         height=\"{height}\" role=\"img\" aria-label=\"{}\">",
        escape_html(title)
    );
    let mut columns: Vec<String> = m.classes.iter().map(|c| text(c)).collect();
    columns.push("no answer".to_string());
    for (j, name) in columns.iter().enumerate() {
        let x = left + cell * j as f64 + cell / 2.0;
        let y = top - 6.0;
        let _ = writeln!(
            h,
            "<text transform=\"translate({x},{y}) rotate(-45)\">{name}</text>"
        );
    }
    for (i, class) in m.classes.iter().enumerate() {
        let y = top + cell * i as f64;
        let _ = writeln!(
            h,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            left - 6.0,
            y + cell / 2.0 + 4.0,
            text(class)
        );
        let row_total: u64 = m.counts[i].iter().sum::<u64>() + m.no_answer[i];
        let cells = m.counts[i]
            .iter()
            .copied()
            .chain(std::iter::once(m.no_answer[i]));
        for (j, count) in cells.enumerate() {
            let x = left + cell * j as f64;
            let share = if row_total == 0 {
                0.0
            } else {
                count as f64 / row_total as f64
            };
            let fill = if count == 0 { "#f7f7f7" } else { colour };
            let opacity = if count == 0 { 1.0 } else { 0.15 + 0.85 * share };
            let stroke = if i == j { "#222" } else { "#fff" };
            let ink = if share > 0.55 { "#fff" } else { "#1b1b1b" };
            let _ = writeln!(
                h,
                "<g><title>{} → {}: {count}</title><rect x=\"{x}\" y=\"{y}\" width=\"{cell}\" \
                 height=\"{cell}\" fill=\"{fill}\" fill-opacity=\"{opacity:.3}\" stroke=\"{stroke}\"/>\
                 <text x=\"{}\" y=\"{}\" text-anchor=\"middle\" style=\"fill:{ink}\">{}</text></g>",
                text(class),
                columns[j],
                x + cell / 2.0,
                y + cell / 2.0 + 4.0,
                if count == 0 { String::new() } else { count.to_string() },
            );
        }
    }
    let _ = writeln!(
        h,
        "<text x=\"{left}\" y=\"{}\">rows: label · columns: prediction</text>\n</svg>",
        height - 8.0
    );
}
