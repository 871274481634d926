//! Labels and the answer text of a record: the taxonomy's fine type with that type's
//! technique, tactic and severity, a risk score by a fixed rule, and short evidence,
//! impact and recommendation lines.

use opensoc_attack::Taxonomy;

use crate::error::CorpusError;

/// Fine threat types of `crates/attack/data/taxonomy.json` that the corpus uses.
pub mod fine {
    pub const BENIGN: &str = "No Threat Detected — Normal Traffic";
    pub const SQLI_BOOLEAN: &str = "SQL Injection — Union/Boolean SQLi";
    pub const SQLI_UNION: &str = "SQL Injection — UNION-based SQLi";
    pub const SQLI_ERROR: &str = "SQL Injection — Error-based SQLi";
    pub const SQLI_TIME: &str = "SQL Injection — Time-based Blind SQLi";
    pub const SQLI_AUTH: &str = "SQL Injection — Authentication Bypass SQLi";
    pub const SQLI_DESTRUCTIVE: &str = "SQL Injection — Destructive SQLi";
    pub const SQLI_OS: &str = "SQL Injection — OS Command via SQLi";
    pub const XSS: &str = "Cross-Site Scripting (XSS) Attempt";
    pub const CMDI: &str = "OS Command Injection Attempt";
    pub const TRAVERSAL: &str = "Path Traversal / Directory Traversal Attack";
    pub const LFI: &str = "Local File Inclusion (LFI) Attack";
    pub const SSH_BRUTE_FORCE: &str = "SSH Brute Force Attack";
    pub const SSH_BRUTE_FORCE_SUCCESS: &str = "SSH Brute Force Attack — SUCCESSFUL LOGIN";
    pub const RECON: &str = "Automated Reconnaissance / Vulnerability Scanning";
    pub const WIN_FAILED_LOGIN: &str = "Windows Threat: Failed Login";
    pub const WIN_EXPLICIT_CREDS: &str = "Windows Threat: Explicit Credential Logon";
    pub const WIN_SCHEDULED_TASK: &str = "Windows Threat: Scheduled Task Created";
    pub const WIN_PROCESS: &str = "Windows Threat: Process Creation — Suspicious";
    pub const WIN_SERVICE: &str = "Windows Threat: New Service Installed";
    pub const WIN_USER_CREATED: &str = "Windows Threat: User Account Created";
}

/// The SQL injection sub-type a payload shows, by keywords of its decoded text, most
/// specific first (rule `sqli-subtype`, docs/DATA.md).
pub fn sqli_subtype(decoded: &str) -> &'static str {
    let p = decoded.to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| p.contains(w));
    if has(&[
        "xp_cmdshell",
        "into outfile",
        "into dumpfile",
        "load_file",
        "sys_exec",
        "exec master",
    ]) {
        fine::SQLI_OS
    } else if has(&[
        "drop table",
        "drop database",
        "truncate table",
        "delete from",
        "shutdown",
    ]) {
        fine::SQLI_DESTRUCTIVE
    } else if has(&[
        "sleep(",
        "benchmark(",
        "waitfor delay",
        "pg_sleep",
        "dbms_pipe",
        "randomblob",
    ]) {
        fine::SQLI_TIME
    } else if has(&[
        "extractvalue",
        "updatexml",
        "convert(int",
        "cast(",
        "exp(~",
        "geometrycollection",
        "floor(rand",
    ]) {
        fine::SQLI_ERROR
    } else if p.contains("union") && p.contains("select") {
        fine::SQLI_UNION
    } else if (p.contains("admin'") || p.contains("admin\""))
        && (p.contains("--") || p.contains('#'))
    {
        fine::SQLI_AUTH
    } else {
        fine::SQLI_BOOLEAN
    }
}

/// Facts a source knows about one record, for the risk rule and the evidence line.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// HTTP status the server answered, for web records.
    pub status: Option<u16>,
    /// Events behind the entry (an incident's count).
    pub events: usize,
    /// The evidence sentence: quotes what in the input shows the threat (or its absence).
    pub evidence: String,
}

/// The risk score rule (docs/DATA.md): by severity, lower when the server refused or did
/// not find the target (4xx), higher when it answered 2xx; bursts add up to 5; threats
/// never go below 11, benign records stay within 0-10.
pub fn risk_score(severity: &str, benign: bool, facts: &Facts) -> u32 {
    let status_class = facts.status.map(|s| s / 100);
    if benign {
        return match status_class {
            Some(4) | Some(5) => 6,
            _ => 2,
        };
    }
    let base: i32 = match severity {
        "CRITICAL" => 90,
        "HIGH" => 75,
        "MEDIUM" => 55,
        _ => 35,
    };
    let status_adj = match status_class {
        Some(2) => 5,
        Some(4) => -15,
        _ => 0,
    };
    let burst = if facts.events > 1 {
        (facts.events / 10).min(5) as i32
    } else {
        0
    };
    (base + status_adj + burst).clamp(11, 100) as u32
}

/// One sentence of impact per category.
fn impact(category: &str) -> &'static str {
    match category {
        "SQL INJECTION" => "If the query reached the database, records can be read, changed or deleted and credentials stolen.",
        "XSS" => "Script run in a visitor's browser can steal sessions or act on the site in the visitor's name.",
        "COMMAND INJECTION" => "If the command ran, the attacker executes code on the server with the web service's rights.",
        "PATH TRAVERSAL" => "Files outside the web root, such as configuration and password files, can be read.",
        "LFI" => "An included file can expose secrets or, with a writable file or remote URL, run attacker code.",
        "SSH BRUTE FORCE" => "A guessed password gives the attacker a shell on the server.",
        "RECONNAISSANCE" => "The scan maps software and weaknesses for a targeted attack that may follow.",
        "WINDOWS THREAT" => "The event matches a step attackers use on Windows hosts for access, execution or persistence.",
        _ => "No security impact; normal operation.",
    }
}

/// Recommendation steps per category.
fn recommendation(category: &str) -> &'static str {
    match category {
        "SQL INJECTION" => "1) Block the source address at the WAF 2) Use parameterised queries for this endpoint 3) Check database logs for queries from this request",
        "XSS" => "1) Block the source address 2) Encode output and validate this parameter 3) Set a strict Content-Security-Policy",
        "COMMAND INJECTION" => "1) Block the source address 2) Never pass request data to a shell 3) Check the host for new processes and files",
        "PATH TRAVERSAL" => "1) Block the source address 2) Normalise paths and reject ../ sequences 3) Check whether the response exposed file contents",
        "LFI" => "1) Block the source address 2) Include files only from an allow-list 3) Disable allow_url_include and check the response size",
        "SSH BRUTE FORCE" => "1) Block the source address (fail2ban) 2) Disable password logins, use keys 3) Check for a successful login from this address",
        "RECONNAISSANCE" => "1) Rate-limit or block the scanner 2) Remove exposed files and default pages 3) Patch the software the scan looked for",
        "WINDOWS THREAT" => "1) Check whether the account and host activity was expected 2) Review the command line and parent process 3) Isolate the host if not authorised",
        _ => "No action required; keep monitoring.",
    }
}

/// Builds the answer block of a record for `fine_type` (a name of the taxonomy).
pub fn answer(fine_type: &str, facts: &Facts) -> Result<(String, &'static str), CorpusError> {
    let tax = Taxonomy::builtin();
    let ft = tax
        .fine_type(fine_type)
        .ok_or_else(|| CorpusError::UnknownType(fine_type.to_owned()))?;
    let benign = fine_type == fine::BENIGN;
    let severity = ft.severity.as_deref().unwrap_or("LOW");
    let technique = ft.technique.as_deref().unwrap_or("N/A (N/A)");
    let tactic = ft.tactic.as_deref().unwrap_or("N/A");
    let risk = risk_score(severity, benign, facts);
    let category = category_static(&ft.category);
    let text = format!(
        "THREAT_TYPE: {fine_type}\nMITRE_TECHNIQUE: {technique}\nMITRE_TACTIC: {tactic}\nSEVERITY: {severity}\nRISK_SCORE: {risk}\nEVIDENCE: {}\nIMPACT: {}\nRECOMMENDATION: {}",
        one_line(&facts.evidence),
        impact(category),
        recommendation(category),
    );
    Ok((text, category))
}

/// The taxonomy's category as a `'static` name (for counting).
fn category_static(c: &str) -> &'static str {
    Taxonomy::builtin()
        .categories()
        .iter()
        .map(String::as_str)
        .find(|a| *a == c)
        .unwrap_or("OTHER")
}

/// Evidence stays on one line and short: the answer format is line-based.
fn one_line(s: &str) -> String {
    let flat: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    clip(&flat, 220)
}

/// At most `max` bytes, cut on a character boundary, with `...` when cut.
pub fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fine_type_used_is_in_the_taxonomy() {
        let all = [
            fine::BENIGN,
            fine::SQLI_BOOLEAN,
            fine::SQLI_UNION,
            fine::SQLI_ERROR,
            fine::SQLI_TIME,
            fine::SQLI_AUTH,
            fine::SQLI_DESTRUCTIVE,
            fine::SQLI_OS,
            fine::XSS,
            fine::CMDI,
            fine::TRAVERSAL,
            fine::LFI,
            fine::SSH_BRUTE_FORCE,
            fine::SSH_BRUTE_FORCE_SUCCESS,
            fine::RECON,
            fine::WIN_FAILED_LOGIN,
            fine::WIN_EXPLICIT_CREDS,
            fine::WIN_SCHEDULED_TASK,
            fine::WIN_PROCESS,
            fine::WIN_SERVICE,
            fine::WIN_USER_CREATED,
        ];
        for t in all {
            assert!(answer(t, &Facts::default()).is_ok(), "{t}");
        }
        assert!(answer("Made Up", &Facts::default()).is_err());
    }

    #[test]
    fn benign_answer_is_low_na_and_at_most_ten() {
        let facts = Facts {
            status: Some(404),
            events: 1,
            evidence: "GET /favicon.ico".into(),
        };
        let (text, cat) = answer(fine::BENIGN, &facts).unwrap();
        assert_eq!(cat, "NO THREAT");
        assert!(text.contains(
            "MITRE_TECHNIQUE: N/A (N/A)\nMITRE_TACTIC: N/A\nSEVERITY: LOW\nRISK_SCORE: 6\n"
        ));
    }

    #[test]
    fn risk_rule_by_severity_and_status() {
        let f = |status| Facts {
            status,
            events: 1,
            evidence: String::new(),
        };
        assert_eq!(risk_score("CRITICAL", false, &f(Some(200))), 95);
        assert_eq!(risk_score("CRITICAL", false, &f(Some(403))), 75);
        assert_eq!(risk_score("HIGH", false, &f(None)), 75);
        assert_eq!(risk_score("MEDIUM", false, &f(Some(404))), 40);
        let burst = Facts {
            status: None,
            events: 37,
            evidence: String::new(),
        };
        assert_eq!(risk_score("HIGH", false, &burst), 78);
        assert!(risk_score("LOW", true, &f(Some(500))) <= 10);
    }

    #[test]
    fn sqli_subtypes_by_keyword() {
        assert_eq!(sqli_subtype("1 AND SLEEP(5)"), fine::SQLI_TIME);
        assert_eq!(sqli_subtype("1 union all select 1,2"), fine::SQLI_UNION);
        assert_eq!(sqli_subtype("admin'--"), fine::SQLI_AUTH);
        assert_eq!(sqli_subtype("1;DROP TABLE users"), fine::SQLI_DESTRUCTIVE);
        assert_eq!(
            sqli_subtype("1' and extractvalue(1,0x7e)"),
            fine::SQLI_ERROR
        );
        assert_eq!(sqli_subtype("1' or '1'='1"), fine::SQLI_BOOLEAN);
        assert_eq!(
            sqli_subtype("1;exec master..xp_cmdshell 'dir'"),
            fine::SQLI_OS
        );
    }
}
