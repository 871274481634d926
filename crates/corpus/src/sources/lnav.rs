//! tstack/lnav test logs: real access-log lines of an online shop and a real IIS W3C log.
//! Ordinary traffic (crawlers, shoppers, 404s for missing images) is benign; lines with
//! attack syntax are left out rather than guessed; a client that draws at least
//! [`SCANNER_404S`] not-found answers, nearly all its requests, is a scanner (the IIS log
//! holds a CMS fingerprinting run): its lines go in as one burst, grouped by the ingest
//! code into probe incidents, labelled reconnaissance. The shop log trains, the IIS log is
//! held out (docs/DATA.md).

use std::path::Path;

use super::{looks_like_attack, read_text, rel, sample_k};
use crate::build::{Sample, Split, Take};
use crate::error::Problem;
use crate::label::fine;
use crate::web::decode;

pub const DIR: &str = "lnav";
const SOURCE: &str = "lnav-real";

/// File, split and how many lines to take (seeded sample).
const FILES: &[(&str, Split, usize)] = &[
    ("test/logfile_shop_access_log.0", Split::Train, 260),
    ("test/logfile_w3c_big.0", Split::Validation, 120),
];

/// Not-found answers that make a client a scanner (with at least 80 % of its requests).
pub const SCANNER_404S: usize = 20;

/// Client address and status of a raw access-log or W3C line (`fields`: the W3C header's
/// column names, empty for access logs).
fn client_status(line: &str, fields: &[&str]) -> Option<(String, String)> {
    if fields.is_empty() {
        let client = line.split_whitespace().next()?;
        let status = line.split('"').nth(2)?.split_whitespace().next()?;
        Some((client.to_owned(), status.to_owned()))
    } else {
        let values: Vec<&str> = line.split_whitespace().collect();
        let at = |name: &str| {
            fields
                .iter()
                .position(|f| *f == name)
                .and_then(|i| values.get(i))
        };
        Some((at("c-ip")?.to_string(), at("sc-status")?.to_string()))
    }
}

/// Clients that look like scanners: many 404s, and 404s for nearly all their requests.
fn scanners(lines: &[(String, String)]) -> std::collections::BTreeSet<String> {
    let mut per: std::collections::BTreeMap<&str, (usize, usize)> = Default::default();
    for (client, status) in lines {
        let e = per.entry(client.as_str()).or_default();
        e.0 += 1;
        if status == "404" {
            e.1 += 1;
        }
    }
    per.into_iter()
        .filter(|(_, (all, nf))| *nf >= SCANNER_404S && nf * 5 >= all * 4)
        .map(|(c, _)| c.to_owned())
        .collect()
}

pub fn read(root: &Path, seed: u64, out: &mut Vec<Sample>, problems: &mut Vec<Problem>) {
    for (file, split, cap) in FILES {
        let path = root.join(file);
        if !path.is_file() {
            continue;
        }
        let Some(text) = read_text(root, &path, problems) else {
            continue;
        };
        // Who is a scanner, from the whole file first.
        let mut fields_line = String::new();
        let mut seen = Vec::new();
        for line in text.lines() {
            if let Some(f) = line.strip_prefix("#Fields:") {
                fields_line = f.to_owned();
            } else if !line.starts_with('#') {
                let fields: Vec<&str> = fields_line.split_whitespace().collect();
                if let Some(cs) = client_status(line, &fields) {
                    seen.push(cs);
                }
            }
        }
        let scanners = scanners(&seen);
        let mut bursts: std::collections::BTreeMap<String, String> = Default::default();
        // W3C lines mean nothing without the `#` directives above them.
        let mut header = String::new();
        let mut lines = Vec::new();
        for (n, line) in text.lines().enumerate() {
            if line.starts_with('#') {
                if line.starts_with("#Software") {
                    header.clear();
                }
                header.push_str(line);
                header.push('\n');
                continue;
            }
            if line.trim().is_empty() {
                continue;
            }
            // Rule `lnav-real-benign`: lines with attack syntax are left out, not guessed.
            if looks_like_attack(&decode(&decode(line, false), true)) {
                continue;
            }
            let fields: Vec<&str> = header
                .lines()
                .find_map(|l| l.strip_prefix("#Fields:"))
                .unwrap_or_default()
                .split_whitespace()
                .collect();
            if let Some((client, _)) = client_status(line, &fields) {
                if scanners.contains(&client) {
                    let burst = bursts.entry(client).or_insert_with(|| header.clone());
                    burst.push_str(line);
                    burst.push('\n');
                    continue;
                }
            }
            lines.push((
                format!("{}:{}", rel(root, &path), n + 1),
                format!("{header}{line}\n"),
            ));
        }
        for (client, text) in bursts {
            out.push(Sample {
                key: format!("{}#scanner-{client}", rel(root, &path)),
                text,
                fine_type: fine::RECON,
                rule: "lnav-scanner-404-burst".into(),
                source: SOURCE,
                split: *split,
                status: None,
                evidence: String::new(),
                take: Take::Incidents,
                rendered: None,
            });
        }
        for (key, text) in sample_k(lines, *cap, seed) {
            out.push(Sample {
                key,
                text,
                fine_type: fine::BENIGN,
                rule: "lnav-real-benign".into(),
                source: SOURCE,
                split: *split,
                status: None,
                evidence: String::new(),
                take: Take::Single,
                rendered: None,
            });
        }
    }
}
