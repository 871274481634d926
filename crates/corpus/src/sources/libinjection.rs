//! libinjection's test data: URL-encoded user input known to be SQL injection
//! (`sqli-*.txt`, many from real attacks), XSS (`xss-*.txt`), and inputs once falsely
//! flagged as SQLi (`false_positives.txt`), the hardest benign cases. Each line is
//! replayed as a query value (sometimes path, user agent or referer) of an application
//! request.

use std::path::Path;

use super::{
    draw_placement, files, format_for, read_text, rel, sample_k, web_evidence, web_sample,
};
use crate::build::{Sample, Split};
use crate::compose::hard_benign_request;
use crate::error::Problem;
use crate::label::{fine, sqli_subtype};
use crate::rng::Rng;
use crate::web::{attack_request, attack_request_encoded, decode, Placement, WebFormat};

pub const DIR: &str = "libinjection";

/// A line of a data file: decoded text, or the encoded form when it does not decode to
/// UTF-8.
enum Payload {
    Text(String),
    Encoded(String),
}
const SOURCE: &str = "libinjection";

/// Files the pinned snapshot lists but does not hold (stored elsewhere upstream): skipped
/// by name so a rebuild from a full checkout reads the same inputs.
const ABSENT: &[&str] = &[
    "sqli-sqlmap-20130419.txt",
    "sqli-sqlmap.txt",
    "xss-shazzer.txt",
];

/// Lines taken per file (seeded sample): the forum and XSS collections are large.
fn cap(name: &str) -> usize {
    match name {
        "false_positives.txt" => usize::MAX,
        "sqli-forums.txt" => 40,
        "xss-xenotix.txt" | "xss-html5secorg.txt" => 40,
        n if n.starts_with("xss-") => 16,
        _ => 7,
    }
}

pub fn read(root: &Path, seed: u64, out: &mut Vec<Sample>, problems: &mut Vec<Problem>) {
    let data = root.join("data");
    let all = files(&data, &|p| p.extension().is_some_and(|e| e == "txt"));
    for path in all {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if ABSENT.contains(&name.as_str()) {
            continue;
        }
        let kind = if name == "false_positives.txt" {
            fine::BENIGN
        } else if name.starts_with("sqli-") {
            fine::SQLI_BOOLEAN
        } else if name.starts_with("xss-") {
            fine::XSS
        } else {
            continue;
        };
        let Some(text) = read_text(root, &path, problems) else {
            continue;
        };
        if text.starts_with("version https://git-lfs") {
            problems.push(Problem {
                path: rel(root, &path),
                line: 0,
                reason: "Git LFS pointer, not data".into(),
            });
            continue;
        }
        let mut lines = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let raw = decode(line, true);
            // Payloads with bytes that are not UTF-8 (multi-byte quote tricks) cannot be
            // decoded to text: they are replayed exactly as the file encodes them.
            let item = if raw.contains('\u{fffd}') {
                Payload::Encoded(line.to_owned())
            } else {
                Payload::Text(raw)
            };
            lines.push((format!("{}:{}", rel(root, &path), n + 1), item));
        }
        for (key, item) in sample_k(lines, cap(&name), seed) {
            let mut rng = Rng::for_item(seed, &key);
            let raw = match item {
                Payload::Text(t) => t,
                Payload::Encoded(e) if kind != fine::BENIGN => {
                    let (req, shown) = attack_request_encoded(&e, &mut rng);
                    let format = WebFormat::draw(&mut rng);
                    let (fine_type, rule) = if kind == fine::XSS {
                        (fine::XSS, "libinjection-xss-file")
                    } else {
                        (
                            sqli_subtype(&decode(&e, true)),
                            "libinjection-sqli-file+sqli-subtype",
                        )
                    };
                    let evidence = web_evidence(fine_type, Placement::Query, &shown, &req);
                    out.push(web_sample(
                        key,
                        &req,
                        format,
                        &mut rng,
                        fine_type,
                        rule.into(),
                        SOURCE,
                        Split::Train,
                        evidence,
                    ));
                    continue;
                }
                Payload::Encoded(_) => continue,
            };
            if kind == fine::BENIGN {
                let req = hard_benign_request(&raw, &mut rng);
                let format = WebFormat::draw(&mut rng);
                let evidence = format!(
                    "Plain text in a search parameter: `{}` from {}; words and punctuation, no SQL or script syntax ({}).",
                    crate::label::clip(&raw, 100),
                    req.client,
                    req.status
                );
                out.push(web_sample(
                    key,
                    &req,
                    format,
                    &mut rng,
                    fine::BENIGN,
                    "libinjection-false-positive".into(),
                    SOURCE,
                    Split::Train,
                    evidence,
                ));
                continue;
            }
            let placement = draw_placement(&mut rng, !raw.contains('/'));
            let (req, shown) = attack_request(&raw, placement, &mut rng);
            let format = format_for(placement, &mut rng);
            let (fine_type, rule) = if kind == fine::XSS {
                (fine::XSS, "libinjection-xss-file")
            } else {
                (sqli_subtype(&raw), "libinjection-sqli-file+sqli-subtype")
            };
            let evidence = web_evidence(fine_type, placement, &shown, &req);
            out.push(web_sample(
                key,
                &req,
                format,
                &mut rng,
                fine_type,
                rule.into(),
                SOURCE,
                Split::Train,
                evidence,
            ));
        }
    }
}
