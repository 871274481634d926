//! CEF output read back by a parser written from the CEF Implementation Standard's
//! rules (header: `\|` and `\\`; extension: `\=`, `\\`, `\n`, `\r`; a value runs to the
//! next unescaped `key=`), with fields full of `|`, `=`, `\`, line breaks and other
//! control characters.

mod common;

use std::collections::BTreeMap;

use opensoc_ingest::Timestamp;
use opensoc_sinks::{cef, Alert};

struct Event {
    header: Vec<String>,
    extension: BTreeMap<String, String>,
}

/// Splits the seven header fields after `CEF:0` on unescaped pipes.
fn parse(line: &str) -> Result<Event, String> {
    let body = line.strip_prefix("CEF:").ok_or("no CEF: prefix")?;
    let mut header = Vec::new();
    let mut field = String::new();
    let mut chars = body.chars();
    while header.len() < 7 {
        match chars.next().ok_or("header ends early")? {
            '\\' => match chars.next() {
                Some(c @ ('\\' | '|')) => field.push(c),
                other => return Err(format!("bad header escape \\{other:?}")),
            },
            '|' => header.push(std::mem::take(&mut field)),
            c if c.is_control() => return Err(format!("control character {c:?} in header")),
            c => field.push(c),
        }
    }
    let rest: String = chars.collect();
    Ok(Event {
        header,
        extension: parse_extension(&rest)?,
    })
}

fn parse_extension(text: &str) -> Result<BTreeMap<String, String>, String> {
    // Positions of unescaped '=': each is preceded by a key that starts after a space.
    let bytes: Vec<char> = text.chars().collect();
    let mut eqs = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            '\\' => i += 2,
            '=' => {
                eqs.push(i);
                i += 1;
            }
            c if c.is_control() => return Err(format!("control character {c:?} in extension")),
            _ => i += 1,
        }
    }
    let mut out = BTreeMap::new();
    let mut key_start = 0;
    for (n, &eq) in eqs.iter().enumerate() {
        let key: String = bytes[key_start..eq].iter().collect();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("bad key {key:?}"));
        }
        let value_end = match eqs.get(n + 1) {
            Some(&next) => {
                // The next key is the word before the next '='.
                let space = bytes[..next]
                    .iter()
                    .rposition(|&c| c == ' ')
                    .ok_or("no space before key")?;
                key_start = space + 1;
                space
            }
            None => bytes.len(),
        };
        let raw: String = bytes[eq + 1..value_end].iter().collect();
        out.insert(key, unescape(&raw)?);
    }
    Ok(out)
}

fn unescape(v: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('=') => out.push('='),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            other => return Err(format!("bad extension escape \\{other:?}")),
        }
    }
    Ok(out)
}

/// What a field is expected to read back as: control characters other than line
/// breaks (extension) or all of them (header) become spaces.
fn expected(s: &str, keep_breaks: bool) -> String {
    s.chars()
        .map(|c| match c {
            '\n' | '\r' if keep_breaks => c,
            c if c.is_control() => ' ',
            c => c,
        })
        .collect()
}

#[test]
fn hostile_fields_round_trip() {
    let v = common::hostile();
    let line = cef::line(&Alert::new(&v, Timestamp(1_764_500_000_000)));
    assert!(
        !line.contains('\n') && !line.contains('\r'),
        "one event, one line"
    );
    let event = parse(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(event.header[0], "0");
    let threat = v.threat_type.as_deref().unwrap();
    assert_eq!(event.header[4], "T1059.004");
    assert_eq!(event.header[5], expected(threat, false));
    assert_eq!(event.header[6], "10");
    let ext = &event.extension;
    assert_eq!(ext["msg"], expected(v.evidence.as_deref().unwrap(), true));
    assert_eq!(
        ext["cs3"],
        expected(v.recommendation.as_deref().unwrap(), true)
    );
    assert_eq!(ext["cs4"], expected(&v.input, true));
    assert_eq!(ext["cat"], expected(v.category.as_deref().unwrap(), true));
    assert_eq!(ext["externalId"], v.id);
    assert_eq!(ext["cs4Label"], "rawEvent");
    assert_eq!(ext["src"], "198.51.100.9");
    assert_eq!(ext["suser"], "root");
}

#[test]
fn every_verdict_parses_with_a_valid_severity() {
    for v in common::verdicts() {
        let line = cef::line(&Alert::new(&v, Timestamp(1_764_500_000_000)));
        let event = parse(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(event.header.len(), 7);
        assert_eq!(&event.header[1..3], ["OpenSOC", "OpenSOC"]);
        let severity: u8 = event.header[6].parse().expect("numeric severity");
        assert!(severity <= 10);
        assert_eq!(event.extension["externalId"], v.id);
        assert!(event.extension["rt"].parse::<i64>().is_ok());
    }
}

#[test]
fn the_parser_rejects_unescaped_metacharacters() {
    // Controls for the parser itself: raw pipes, equals signs and line breaks written
    // without escaping must not read back as the intended fields.
    assert!(!matches!(
        parse("CEF:0|a|b|1|x|name with | pipe|5|msg=a"),
        Ok(e) if e.header[5] == "name with | pipe"
    ));
    assert!(!matches!(
        parse("CEF:0|a|b|1|x|n|5|msg=a=b cs1=c"),
        Ok(e) if e.extension.get("msg").map(String::as_str) == Some("a=b")
    ));
    let e = parse("CEF:0|a|b|1|x|n|5|msg=a\\=b cs1=c").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(e.extension["msg"], "a=b");
    assert!(parse("CEF:0|a|b|1|x|n|5|msg=line\nbreak").is_err());
    assert!(parse("CEF:0|a|b|1|x|n|5|msg=bad\\q").is_err());
}
