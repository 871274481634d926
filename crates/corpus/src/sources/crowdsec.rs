//! crowdsecurity/hub `.tests/`: small real logs per parser and scenario. A test's
//! scenario names the threat (sshd brute force, HTTP probing); tests of parsers only and
//! false-positive tests hold ordinary lines. Label per test directory (table below).

use std::path::Path;

use super::{read_text, rel};
use crate::build::{Sample, Split, Take};
use crate::error::Problem;
use crate::label::fine;

pub const DIR: &str = "crowdsec-hub";
const SOURCE: &str = "crowdsec-hub";

/// Test directory, its log file, label, split and which entries carry the label.
/// Brute-force tests label incidents only: a single failed login is not a burst.
pub const TESTS: &[(&str, &str, &str, Split, Take)] = &[
    (
        "ssh-bf",
        "ssh-bf.log",
        fine::SSH_BRUTE_FORCE,
        Split::Train,
        Take::Incidents,
    ),
    (
        "sshd-logs",
        "sshd-logs.log",
        fine::SSH_BRUTE_FORCE,
        Split::Train,
        Take::Incidents,
    ),
    (
        "sshd-invalid-bf",
        "sshd-invalid-bf.log",
        fine::SSH_BRUTE_FORCE,
        Split::Validation,
        Take::Incidents,
    ),
    (
        "ssh-slow-bf",
        "ssh-slow-bf.log",
        fine::SSH_BRUTE_FORCE,
        Split::Validation,
        Take::Incidents,
    ),
    (
        "sshd-logs-fp",
        "sshd-logs.log",
        fine::BENIGN,
        Split::Train,
        Take::All,
    ),
    (
        "sshd-success-logs",
        "sshd-success-logs.log",
        fine::BENIGN,
        Split::Validation,
        Take::All,
    ),
    (
        "nginx-http-xss-probing",
        "nginx-http-xss-probing.log",
        fine::XSS,
        Split::Train,
        Take::All,
    ),
    (
        "nginx-http-sqli-probing",
        "nginx-http-sqli-probing.log",
        fine::SQLI_BOOLEAN,
        Split::Validation,
        Take::All,
    ),
    (
        "nginx-http-path-traversal",
        "nginx-http-path-traversal.log",
        fine::TRAVERSAL,
        Split::Train,
        Take::All,
    ),
    (
        "nginx-http-sensitive-files",
        "nginx-http-sensitive-files.log",
        fine::RECON,
        Split::Validation,
        Take::All,
    ),
    (
        "nginx-bad-user-agent",
        "nginx-bad-user-agent.log",
        fine::RECON,
        Split::Train,
        Take::All,
    ),
    (
        "apache-http-probing",
        "apache-http-probing.log",
        fine::RECON,
        Split::Train,
        Take::All,
    ),
    (
        "opnsense-sshd",
        "opnsense-sshd.log",
        fine::SSH_BRUTE_FORCE,
        Split::Validation,
        Take::Incidents,
    ),
    (
        "nginx-http-backdoor",
        "nginx-http-backdoor.log",
        fine::RECON,
        Split::Train,
        Take::All,
    ),
    (
        "nginx-http-w00twoot",
        "nginx-http-w00twoot.log",
        fine::RECON,
        Split::Train,
        Take::All,
    ),
    (
        "apache_log4j2_cve-2021-44228",
        "apache_log4j2_cve-2021-44228.log",
        fine::CMDI,
        Split::Train,
        Take::All,
    ),
    (
        "windows-bf",
        "windows-bf.log",
        fine::WIN_FAILED_LOGIN,
        Split::Validation,
        Take::All,
    ),
];

pub fn read(root: &Path, _seed: u64, out: &mut Vec<Sample>, problems: &mut Vec<Problem>) {
    for (dir, file, fine_type, split, take) in TESTS {
        let path = root.join(".tests").join(dir).join(file);
        if !path.is_file() {
            problems.push(Problem {
                path: rel(root, &path),
                line: 0,
                reason: "missing from the sources".into(),
            });
            continue;
        }
        let Some(text) = read_text(root, &path, problems) else {
            continue;
        };
        let mut text = text.replace("\r\n", "\n");
        if !text.ends_with('\n') {
            text.push('\n');
        }
        out.push(Sample {
            key: rel(root, &path),
            text,
            fine_type,
            rule: format!("crowdsec-test-{dir}"),
            source: SOURCE,
            split: *split,
            status: None,
            evidence: String::new(),
            take: *take,
            rendered: None,
        });
    }
}
