//! Readers of the pinned sources. Each turns the files of one source directory into
//! [`Sample`]s (raw log text plus label); the build renders and labels them. Layout of
//! the sources directory and the label rules: docs/DATA.md.

use std::path::{Path, PathBuf};

use crate::build::{Sample, Split, Take};
use crate::error::Problem;
use crate::label::fine;
use crate::rng::{hash, Rng};
use crate::web::{Placement, Request, WebFormat};

pub mod composed;
pub mod crowdsec;
pub mod crs;
pub mod evtx;
pub mod fuzzdb;
pub mod libinjection;
pub mod lnav;
pub mod payloads;
pub mod wafbypass;

/// A source: its directory under the sources directory and its reader.
pub struct SourceDef {
    pub dir: &'static str,
    pub read: fn(&Path, u64, &mut Vec<Sample>, &mut Vec<Problem>),
}

/// Every source, in build order.
pub const ALL: &[SourceDef] = &[
    SourceDef {
        dir: crs::DIR,
        read: crs::read,
    },
    SourceDef {
        dir: libinjection::DIR,
        read: libinjection::read,
    },
    SourceDef {
        dir: payloads::DIR,
        read: payloads::read,
    },
    SourceDef {
        dir: wafbypass::DIR,
        read: wafbypass::read,
    },
    SourceDef {
        dir: fuzzdb::DIR,
        read: fuzzdb::read,
    },
    SourceDef {
        dir: crowdsec::DIR,
        read: crowdsec::read,
    },
    SourceDef {
        dir: lnav::DIR,
        read: lnav::read,
    },
    SourceDef {
        dir: evtx::MITRE_DIR,
        read: evtx::read_attacks,
    },
    SourceDef {
        dir: evtx::SAMPLES_DIR,
        read: evtx::read_normal,
    },
];

/// Files under `dir` (recursively) whose names satisfy `keep`, in name order.
pub(crate) fn files(dir: &Path, keep: &dyn Fn(&Path) -> bool) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if keep(&p) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// `path` relative to the sources directory (two levels above a source's own files is
/// not assumed: `root` is the source directory).
pub(crate) fn rel(root: &Path, path: &Path) -> String {
    let name = root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let inner = path.strip_prefix(root).unwrap_or(path);
    format!("{name}/{}", inner.to_string_lossy())
}

/// One line of a payload list as a request: a line that already holds `%XX` escapes is
/// sent as it is (in the query), plain text encoded the way a client would, in the query
/// or, for traversal lists, in the path three times in ten. The request, the payload as
/// shown, and where it went.
pub(crate) fn replay_list_line(
    line: &str,
    traversal: bool,
    rng: &mut Rng,
) -> (Request, String, Placement) {
    let b = line.as_bytes();
    let pre_encoded = b
        .windows(3)
        .any(|w| w[0] == b'%' && w[1].is_ascii_hexdigit() && w[2].is_ascii_hexdigit());
    if pre_encoded {
        let (req, shown) = crate::web::attack_request_encoded(line, rng);
        return (req, shown, Placement::Query);
    }
    let placement = if traversal && rng.chance(30) {
        Placement::Path
    } else {
        Placement::Query
    };
    let (req, shown) = crate::web::attack_request(line, placement, rng);
    (req, shown, placement)
}

/// Reads a text file; a file that cannot be read is reported and gives `None`.
pub(crate) fn read_text(root: &Path, path: &Path, problems: &mut Vec<Problem>) -> Option<String> {
    match std::fs::read(path) {
        Ok(b) => Some(String::from_utf8_lossy(&b).into_owned()),
        Err(e) => {
            problems.push(Problem {
                path: rel(root, path),
                line: 0,
                reason: format!("cannot read: {e}"),
            });
            None
        }
    }
}

/// The `k` items whose seeded hash is lowest: a deterministic sample that does not
/// change when items are appended elsewhere.
pub(crate) fn sample_k<T>(items: Vec<(String, T)>, k: usize, seed: u64) -> Vec<(String, T)> {
    let mut keyed: Vec<(u64, String, T)> = items
        .into_iter()
        .map(|(key, v)| (hash(&key) ^ seed.rotate_left(17), key, v))
        .collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    keyed.truncate(k);
    keyed.into_iter().map(|(_, k, v)| (k, v)).collect()
}

/// A placement for a payload of a query-parameter source: mostly the query, sometimes
/// the path, the user agent or the referer.
pub(crate) fn draw_placement(rng: &mut Rng, path_ok: bool) -> Placement {
    match rng.below(20) {
        0..=13 => Placement::Query,
        14..=15 if path_ok => Placement::Path,
        16..=17 => Placement::UserAgent,
        18 => Placement::Referer,
        _ => Placement::Query,
    }
}

/// A format for a request whose payload sits in `placement`: common logs have no
/// headers, so header payloads go to a format that records them.
pub(crate) fn format_for(placement: Placement, rng: &mut Rng) -> WebFormat {
    let f = WebFormat::draw(rng);
    if !f.has_headers() && matches!(placement, Placement::UserAgent | Placement::Referer) {
        WebFormat::Combined
    } else {
        f
    }
}

/// A web sample of one request.
#[allow(clippy::too_many_arguments)] // a record's fields, named at every call
pub(crate) fn web_sample(
    key: String,
    req: &Request,
    format: WebFormat,
    rng: &mut Rng,
    fine_type: &'static str,
    rule: String,
    source: &'static str,
    split: Split,
    evidence: String,
) -> Sample {
    Sample {
        text: req.render(format, rng),
        key,
        fine_type,
        rule,
        source,
        split,
        status: Some(req.status),
        evidence,
        take: Take::Single,
        rendered: None,
    }
}

/// Evidence sentence for a web payload labelled `fine_type`.
pub(crate) fn web_evidence(
    fine_type: &str,
    placement: Placement,
    shown: &str,
    req: &Request,
) -> String {
    let what = match fine_type {
        fine::RECON => "Scanner signature",
        fine::TRAVERSAL => "Directory climb (../)",
        fine::LFI => "File inclusion",
        fine::CMDI => "Shell command syntax",
        fine::XSS => "Script/HTML injection",
        _ => "SQL syntax",
    };
    let place = match placement {
        Placement::Query => "query string",
        Placement::Path => "request path",
        Placement::UserAgent => "User-Agent",
        Placement::Referer => "Referer",
    };
    let answered = match req.status / 100 {
        2 => "the server answered 200, so it may have reached the application",
        3 => "the server redirected",
        4 => "the server refused it or found nothing",
        _ => "the server failed with 5xx, a sign the input reached the application",
    };
    format!(
        "{what} in the {place}: `{}` from {}; {answered} ({}).",
        crate::label::clip(shown, 110),
        req.client,
        req.status
    )
}

/// Markers of attacks in decoded text; a "benign" item that shows one is ambiguous and
/// left out rather than labelled.
pub(crate) fn looks_like_attack(decoded: &str) -> bool {
    let p = decoded.to_ascii_lowercase();
    const MARKERS: &[&str] = &[
        "<script",
        "javascript:",
        "onerror",
        "onload",
        "alert(",
        "union select",
        "union all",
        "select ",
        " or 1=1",
        "' or '",
        "sleep(",
        "benchmark(",
        "waitfor",
        "../",
        "..\\",
        "/etc/passwd",
        "/bin/sh",
        "cmd.exe",
        "$(",
        "`",
        ";ls",
        "|id",
        "<?php",
        "etc/shadow",
        "information_schema",
        "xp_cmdshell",
        "@@version",
        "<svg",
        "<img",
        "<iframe",
        "-exec",
        "curl ",
        "wget ",
        "\\;",
        "nc -",
        "whoami",
        "/etc/",
    ];
    MARKERS.iter().any(|m| p.contains(m))
}
