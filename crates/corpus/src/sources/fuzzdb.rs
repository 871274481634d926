//! fuzzdb-project/fuzzdb `attack/` lists: SQL injection, XSS, OS command injection,
//! traversal, local and remote file inclusion payloads. Held out whole as validation
//! (docs/DATA.md): a source none of the detector rules or label rules was written from,
//! added after them, so its figures measure how the rules carry over to payloads they
//! were not shaped on. Label by folder, through the same shape rules as the other
//! payload sources.

use std::path::Path;

use super::{
    crs, format_for, read_text, rel, replay_list_line, sample_k, web_evidence, web_sample,
};
use crate::build::{Sample, Split};
use crate::error::Problem;
use crate::label::{fine, sqli_subtype};
use crate::rng::Rng;
use crate::web::{attack_request, decode, Placement};

pub const DIR: &str = "fuzzdb";
const SOURCE: &str = "fuzzdb";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Sqli,
    Xss,
    Command,
    Traversal,
    Inclusion,
    RemoteInclusion,
}

/// Lists of each class, and how many payloads to take from the class's pooled lines
/// (seeded sample).
const CLASSES: &[(Class, &[&str], usize)] = &[
    (
        Class::Sqli,
        &[
            "attack/sql-injection/detect/GenericBlind.txt",
            "attack/sql-injection/detect/MSSQL.txt",
            "attack/sql-injection/detect/MSSQL_blind.txt",
            "attack/sql-injection/detect/MySQL.txt",
            "attack/sql-injection/detect/MySQL_MSSQL.txt",
            "attack/sql-injection/detect/oracle.txt",
            "attack/sql-injection/detect/xplatform.txt",
            "attack/sql-injection/exploit/db2-enumeration.txt",
            "attack/sql-injection/exploit/ms-sql-enumeration.txt",
            "attack/sql-injection/exploit/mysql-injection-login-bypass.txt",
            "attack/sql-injection/exploit/mysql-read-local-files.txt",
            "attack/sql-injection/exploit/postgres-enumeration.txt",
            "attack/sql-injection/payloads-sql-blind/payloads-sql-blind-MSSQL-INSERT.txt",
            "attack/sql-injection/payloads-sql-blind/payloads-sql-blind-MSSQL-WHERE.txt",
            "attack/sql-injection/payloads-sql-blind/payloads-sql-blind-MySQL-INSERT.txt",
            "attack/sql-injection/payloads-sql-blind/payloads-sql-blind-MySQL-ORDER_BY.txt",
            "attack/sql-injection/payloads-sql-blind/payloads-sql-blind-MySQL-WHERE.txt",
        ],
        60,
    ),
    (
        Class::Xss,
        &[
            "attack/xss/XSSPolyglot.txt",
            "attack/xss/xss-other.txt",
            "attack/xss/xss-rsnake.txt",
            "attack/xss/xss-uri.txt",
        ],
        60,
    ),
    (
        Class::Command,
        &[
            "attack/os-cmd-execution/OSCommandInject.Windows.txt",
            "attack/os-cmd-execution/command-execution-unix.txt",
            "attack/os-cmd-execution/command-injection-template.txt",
            "attack/os-cmd-execution/source-disc-cmd-exec-traversal.txt",
        ],
        100,
    ),
    (
        Class::Traversal,
        &[
            "attack/path-traversal/path-traversal-windows.txt",
            "attack/path-traversal/traversals-8-deep-exotic-encoding.txt",
        ],
        40,
    ),
    (Class::Inclusion, &["attack/lfi/JHADDIX_LFI.txt"], 40),
    (Class::RemoteInclusion, &["attack/rfi/rfi.txt"], 20),
];

/// The lists' template placeholders, filled the way a tester fills them.
const PLACEHOLDERS: &[(&str, &str)] = &[
    ("{FILE}", "etc/passwd"),
    ("{cmd}", "id"),
    ("XXpathXX", "http://203.0.113.50/shell.txt?"),
    ("__TIME__", "5"),
    ("<username>", "admin"),
    ("<user-fieldname>", "user"),
    ("<pass-fieldname>", "pass"),
];

fn fill(line: &str) -> String {
    PLACEHOLDERS
        .iter()
        .fold(line.to_owned(), |l, (from, to)| l.replace(from, to))
}

/// Threat type of a payload of `class`, or `None` when the payload shows too little of
/// its class to be called an attack from a log line (rule `crs-visible-syntax`).
fn class_label(
    class: Class,
    decoded: &str,
    placement: Placement,
) -> Option<(&'static str, &'static str)> {
    match class {
        Class::Sqli if crs::shows_class_syntax(942, decoded) => {
            Some((sqli_subtype(decoded), "fuzzdb-folder+sqli-subtype"))
        }
        Class::Xss if crs::shows_class_syntax(941, decoded) => Some((fine::XSS, "fuzzdb-folder")),
        Class::Command if crs::shows_class_syntax(932, decoded) => {
            Some((fine::CMDI, "fuzzdb-folder"))
        }
        // The inclusion list also holds shell commands (`'/bin/cat /etc/shadow'`): those
        // are neither class's, and left out.
        Class::Inclusion if decoded.contains("/bin/") => None,
        Class::Traversal | Class::Inclusion => {
            let (t, _) = crs::lfi_or_traversal(decoded, placement);
            Some((t, "fuzzdb-folder+lfi-or-traversal"))
        }
        Class::RemoteInclusion => Some((fine::LFI, "fuzzdb-rfi-as-inclusion")),
        _ => None,
    }
}

pub fn read(root: &Path, seed: u64, out: &mut Vec<Sample>, problems: &mut Vec<Problem>) {
    for (class, lists, cap) in CLASSES {
        let mut lines = Vec::new();
        for file in *lists {
            let path = root.join(file);
            if !path.is_file() {
                continue;
            }
            let Some(text) = read_text(root, &path, problems) else {
                continue;
            };
            for (n, l) in text.lines().enumerate() {
                let l = l.trim_end_matches('\r');
                // Comments and notes: fuzzdb lists start those with `#`; a tab starts an
                // explanation after the payload.
                let l = l.split('\t').next().unwrap_or_default().trim();
                if l.len() < 3 || l.len() > 400 || l.starts_with('#') {
                    continue;
                }
                lines.push((format!("{}:{}", rel(root, &path), n + 1), fill(l)));
            }
        }
        for (key, line) in sample_k(lines, *cap, seed) {
            let mut rng = Rng::for_item(seed, &key);
            // Remote inclusion lists hold the vulnerable path with its parameter.
            let (req, shown, placement) = if *class == Class::RemoteInclusion {
                let (mut req, _) = attack_request("x", Placement::Query, &mut rng);
                let target = line.replace(' ', "%20");
                req.target = if target.starts_with('/') {
                    target
                } else {
                    format!("/{target}")
                };
                (req, line.clone(), Placement::Query)
            } else {
                replay_list_line(&line, *class == Class::Traversal, &mut rng)
            };
            let decoded = decode(&decode(&shown, false), false);
            let Some((fine_type, rule)) = class_label(*class, &decoded, placement) else {
                continue;
            };
            let evidence = web_evidence(fine_type, placement, &shown, &req);
            let format = format_for(placement, &mut rng);
            out.push(web_sample(
                key,
                &req,
                format,
                &mut rng,
                fine_type,
                rule.into(),
                SOURCE,
                Split::Validation,
                evidence,
            ));
        }
    }
}
