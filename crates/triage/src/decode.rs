//! What clients encode, decoded the way a server would before a payload runs.
//!
//! Attack payloads in real logs are percent-encoded (often twice), use `+` for spaces in
//! query strings, IIS `%uXXXX` escapes, HTML entities and SQL comments as spaces. The
//! detectors look at the decoded form; the evidence keeps the raw slice as well.

/// Rounds of percent-decoding: enough for double and triple encoding, bounded so a
/// crafted value cannot make decoding loop.
const MAX_ROUNDS: usize = 3;

/// Decodes `s` fully: percent escapes (repeatedly), `%uXXXX`, `+` as space when
/// `plus_is_space` (query strings), HTML entities, then `\xNN` escapes. Invalid UTF-8
/// after decoding is replaced, never an error.
pub fn decode(s: &str, plus_is_space: bool) -> String {
    let mut cur = if plus_is_space {
        s.replace('+', " ")
    } else {
        s.to_string()
    };
    for _ in 0..MAX_ROUNDS {
        let next = percent_decode(&cur);
        if next == cur {
            break;
        }
        cur = next;
    }
    let cur = html_entities(&cur);
    hex_escapes(&cur)
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// One round of `%XX` and `%uXXXX` decoding; malformed escapes stay as they are.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    if !b.contains(&b'%') {
        return s.to_string();
    }
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if let (Some(&h), Some(&l)) = (b.get(i + 1), b.get(i + 2)) {
                if let (Some(h), Some(l)) = (hex_val(h), hex_val(l)) {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
            }
            if matches!(b.get(i + 1), Some(b'u' | b'U')) {
                let code = b
                    .get(i + 2..i + 6)
                    .filter(|h| h.iter().all(|&c| hex_val(c).is_some()))
                    .map(|h| {
                        h.iter().fold(0u32, |acc, &c| {
                            acc << 4 | u32::from(hex_val(c).unwrap_or(0))
                        })
                    });
                if let Some(c) = code.and_then(char::from_u32) {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    i += 6;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `&lt;`, `&#60;`, `&#x3c;` and the few named entities payloads use.
fn html_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let end = tail[1..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '#'))
            .map(|e| e + 1)
            .unwrap_or(tail.len());
        let name = &tail[1..end];
        let decoded = match name {
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            "amp" => Some('&'),
            "sol" => Some('/'),
            "colon" => Some(':'),
            "lpar" => Some('('),
            "rpar" => Some(')'),
            "Tab" => Some('\t'),
            "NewLine" => Some('\n'),
            _ => name.strip_prefix('#').and_then(|n| {
                let code = match n.strip_prefix(['x', 'X']) {
                    Some(h) => u32::from_str_radix(h, 16).ok(),
                    None => n.parse().ok(),
                };
                code.and_then(char::from_u32)
            }),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                // The terminating `;` is optional in browsers.
                let skip = if tail[end..].starts_with(';') {
                    end + 1
                } else {
                    end
                };
                rest = &tail[skip..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// `\x3c` escapes, as in payloads aimed at JavaScript or shell contexts.
fn hex_escapes(s: &str) -> String {
    if !s.contains("\\x") {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && matches!(b.get(i + 1), Some(b'x' | b'X')) {
            if let (Some(h), Some(l)) = (
                b.get(i + 2).copied().and_then(hex_val),
                b.get(i + 3).copied().and_then(hex_val),
            ) {
                out.push(h << 4 | l);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The decoded text in a canonical form for matching: lower case, SQL/C comments and
/// runs of whitespace collapsed to one space (`UNION/**/SELECT` is `union select`), line
/// breaks to one `\n`.
pub fn canonical(decoded: &str) -> String {
    let lower = decoded.to_lowercase();
    let mut out = String::with_capacity(lower.len());
    let mut rest = lower.as_str();
    while let Some(at) = rest.find("/*") {
        out.push_str(&rest[..at]);
        out.push(' ');
        rest = match rest[at + 2..].find("*/") {
            Some(e) => &rest[at + 2 + e + 2..],
            None => "",
        };
    }
    out.push_str(rest);
    let mut collapsed = String::with_capacity(out.len());
    let mut space = false;
    for c in out.chars() {
        // Line breaks separate shell commands: they stay, as one `\n`.
        if c == '\n' || c == '\r' {
            if collapsed.ends_with(' ') {
                collapsed.pop();
            }
            if !collapsed.ends_with('\n') {
                collapsed.push('\n');
            }
            space = true;
        } else if c.is_whitespace() || c == '\u{0}' {
            if !space {
                collapsed.push(' ');
            }
            space = true;
        } else {
            collapsed.push(c);
            space = false;
        }
    }
    collapsed
}

/// `canonical` text with the characters shells ignore inside a word removed (`wh''oami`,
/// `w\hoami`, `c^md`, `/etc/pa[s]swd`), for the command and file rules.
pub fn squeezed(canon: &str) -> Option<String> {
    canon
        .contains(['\'', '"', '\\', '^', '[', ']'])
        .then(|| canon.replace(['\'', '"', '\\', '^', '[', ']'], ""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn double_encoding_and_plus() {
        assert_eq!(decode("%252e%252e%252fetc", false), "../etc");
        assert_eq!(decode("1+union+select", true), "1 union select");
        assert_eq!(decode("1+union", false), "1+union");
        assert_eq!(decode("%u003cscript%u003e", false), "<script>");
    }

    #[test]
    fn entities_and_hex_escapes() {
        assert_eq!(
            decode("&lt;svg onload&#61;alert(1)&#x3e;", false),
            "<svg onload=alert(1)>"
        );
        assert_eq!(decode("\\x3cscript\\x3e", false), "<script>");
        assert_eq!(decode("fish &chips; & more", false), "fish &chips; & more");
    }

    #[test]
    fn malformed_escapes_survive() {
        assert_eq!(decode("100%", false), "100%");
        assert_eq!(decode("%zz%4", false), "%zz%4");
        assert_eq!(decode("%ff%fe", false), "\u{FFFD}\u{FFFD}");
        assert_eq!(decode("%u12", false), "%u12");
    }

    #[test]
    fn canonical_strips_comments_and_case() {
        assert_eq!(
            canonical("1 UNION/**/SELECT\t\tpassword"),
            "1 union select password"
        );
        assert_eq!(canonical("a/*unterminated"), "a ");
        assert_eq!(canonical("x \r\n\n id"), "x\nid");
    }
}
