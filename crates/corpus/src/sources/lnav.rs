//! tstack/lnav test logs: real access-log lines of an online shop and a real IIS W3C log.
//! Ordinary traffic (crawlers, shoppers, 404s for missing images): benign, except lines
//! with attack syntax, which are left out rather than guessed. The shop log trains, the
//! IIS log is held out (docs/DATA.md).

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

pub fn read(root: &Path, seed: u64, out: &mut Vec<Sample>, problems: &mut Vec<Problem>) {
    for (file, split, cap) in FILES {
        let path = root.join(file);
        if !path.is_file() {
            continue;
        }
        let Some(text) = read_text(root, &path, problems) else {
            continue;
        };
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
            lines.push((
                format!("{}:{}", rel(root, &path), n + 1),
                format!("{header}{line}\n"),
            ));
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
