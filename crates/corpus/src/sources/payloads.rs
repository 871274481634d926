//! swisskyrepo/PayloadsAllTheThings Intruder lists: command injection, directory
//! traversal and file inclusion payloads, the classes the other training sources hold
//! least of. Label by folder; traversal and inclusion lists go through the
//! `lfi-or-traversal` shape rule, command lists through `crs-visible-syntax`.

use std::path::Path;

use super::{
    crs, format_for, read_text, rel, replay_list_line, sample_k, web_evidence, web_sample,
};
use crate::build::{Sample, Split};
use crate::error::Problem;
use crate::label::fine;
use crate::rng::Rng;
use crate::web::{decode, Placement};

pub const DIR: &str = "payloadsallthethings";
const SOURCE: &str = "payloadsallthethings";

/// List, class and how many lines to take (seeded sample).
const LISTS: &[(&str, Class, usize)] = &[
    (
        "Command Injection/Intruder/command-execution-unix.txt",
        Class::Command,
        40,
    ),
    (
        "Command Injection/Intruder/command_exec.txt",
        Class::Command,
        70,
    ),
    (
        "Directory Traversal/Intruder/directory_traversal.txt",
        Class::Traversal,
        60,
    ),
    (
        "Directory Traversal/Intruder/deep_traversal.txt",
        Class::Traversal,
        15,
    ),
    (
        "Directory Traversal/Intruder/dotdotpwn.txt",
        Class::Traversal,
        40,
    ),
    (
        "File Inclusion/Intruders/JHADDIX_LFI.txt",
        Class::Inclusion,
        60,
    ),
    (
        "File Inclusion/Intruders/Linux-files.txt",
        Class::Inclusion,
        15,
    ),
    (
        "File Inclusion/Intruders/Windows-files.txt",
        Class::Inclusion,
        15,
    ),
    (
        "File Inclusion/Intruders/simple-check.txt",
        Class::Inclusion,
        20,
    ),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Command,
    Traversal,
    Inclusion,
}

pub fn read(root: &Path, seed: u64, out: &mut Vec<Sample>, problems: &mut Vec<Problem>) {
    for (file, class, cap) in LISTS {
        let path = root.join(file);
        if !path.is_file() {
            continue;
        }
        let Some(text) = read_text(root, &path, problems) else {
            continue;
        };
        let lines: Vec<(String, String)> = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty() && l.len() <= 400 && !l.contains("{FILE}"))
            .map(|(n, l)| {
                (
                    format!("{}:{}", rel(root, &path), n + 1),
                    l.trim_end_matches('\r').to_owned(),
                )
            })
            .collect();
        for (key, line) in sample_k(lines, *cap, seed) {
            let mut rng = Rng::for_item(seed, &key);
            let decoded = decode(&decode(&line, false), false);
            let (fine_type, rule) = match class {
                Class::Command if crs::shows_class_syntax(932, &decoded) => {
                    (fine::CMDI, "payloads-folder")
                }
                Class::Command => continue,
                Class::Traversal => (fine::TRAVERSAL, "payloads-folder"),
                Class::Inclusion => {
                    let (t, _) = crs::lfi_or_traversal(&decoded, Placement::Query);
                    (t, "payloads-folder+lfi-or-traversal")
                }
            };
            let (req, shown, placement) =
                replay_list_line(&line, *class == Class::Traversal, &mut rng);
            let format = format_for(placement, &mut rng);
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
