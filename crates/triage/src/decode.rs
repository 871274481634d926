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
    String::from_utf8_lossy(&overlong_to_ascii(out)).into_owned()
}

/// Overlong UTF-8 forms of ASCII (`%c0%af` for `/`, `%c0%ae` for `.`, `%e0%80%af`):
/// invalid UTF-8 that old decoders accepted, sent to slip `../` and spaces past filters.
/// They become the character they spell; other invalid bytes are left to the lossy
/// conversion.
fn overlong_to_ascii(b: Vec<u8>) -> Vec<u8> {
    if !b.iter().any(|&c| c == 0xC0 || c == 0xC1 || c == 0xE0) {
        return b;
    }
    let cont = |i: usize| b.get(i).copied().filter(|c| c & 0xC0 == 0x80);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            0xC0 | 0xC1 => {
                if let Some(c1) = cont(i + 1) {
                    out.push(((b[i] & 0x1F) << 6) | (c1 & 0x3F));
                    i += 2;
                    continue;
                }
            }
            0xE0 => {
                if let (Some(c1 @ 0x80..=0x81), Some(c2)) = (cont(i + 1), cont(i + 2)) {
                    out.push(((c1 & 0x3F) << 6) | (c2 & 0x3F));
                    i += 3;
                    continue;
                }
            }
            _ => {}
        }
        out.push(b[i]);
        i += 1;
    }
    out
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

/// `\x3c` and `\u003c` (or `\u{3c}`) escapes, as in payloads aimed at JavaScript or
/// shell contexts.
fn hex_escapes(s: &str) -> String {
    if !s.contains("\\x") && !s.contains("\\u") {
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
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'u') {
            if let Some((c, len)) = js_unicode_escape(&b[i + 2..]) {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                i += 2 + len;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The character of a JavaScript `\u` escape whose body starts `b` (`0065` or `{65}`),
/// and the body's length.
fn js_unicode_escape(b: &[u8]) -> Option<(char, usize)> {
    let (digits, len) = match b.first() {
        Some(b'{') => {
            let end = b.iter().take(8).position(|&c| c == b'}')?;
            (&b[1..end], end + 1)
        }
        _ => (b.get(..4)?, 4),
    };
    if digits.is_empty() {
        return None;
    }
    let code = digits
        .iter()
        .try_fold(0u32, |acc, &c| hex_val(c).map(|v| acc << 4 | u32::from(v)))?;
    char::from_u32(code).map(|c| (c, len))
}

/// Characters with no glyph that browsers and many parsers skip (zero-width space and
/// joiners, bidirectional marks, word joiner, byte order mark, soft hyphen): inserted
/// inside keywords (`un\u{200b}ion`) to break a filter's match.
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{00AD}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}')
}

/// The decoded text in a canonical form for matching: lower case, SQL/C comments and
/// runs of whitespace collapsed to one space (`UNION/**/SELECT` is `union select`), line
/// breaks to one `\n`.
pub fn canonical(decoded: &str) -> String {
    let lower: String = decoded
        .chars()
        .filter(|&c| !is_invisible(c))
        .flat_map(char::to_lowercase)
        .collect();
    let mut out = String::with_capacity(lower.len());
    let mut rest = lower.as_str();
    while let Some(at) = rest.find("/*") {
        out.push_str(&rest[..at]);
        out.push(' ');
        let body = &rest[at + 2..];
        let (inside, after) = match body.find("*/") {
            Some(e) => (&body[..e], &body[e + 2..]),
            None => (body, ""),
        };
        // MySQL runs the text of a `/*!` (or `/*!50000`) comment as SQL.
        if let Some(code) = inside.strip_prefix('!') {
            out.push_str(code.trim_start_matches(|c: char| c.is_ascii_digit()));
            out.push(' ');
        }
        rest = after;
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

/// `canonical` text as a shell reads it, for the command and file rules: characters
/// shells drop inside a word removed (`wh''oami`, `w\\hoami`, `c^md`, `/etc/pa[s]swd`),
/// expansions that stand for nothing removed (`$@`, `$*`, an unset one-letter variable
/// like `$u`), `${IFS}` and brace lists (`{cat,/etc/passwd}`) read as spaces. `None`
/// when the text has none of these.
pub fn squeezed(canon: &str) -> Option<String> {
    const DROPPED: [char; 6] = ['\'', '"', '\\', '^', '[', ']'];
    if !canon.contains(DROPPED) && !canon.contains(['$', '{']) {
        return None;
    }
    let spaced = canon.replace("${ifs}", " ").replace("$ifs", " ");
    let b: Vec<char> = spaced.chars().collect();
    let mut out = String::with_capacity(spaced.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        let after = b.get(i + 2).copied();
        if DROPPED.contains(&c) {
            i += 1;
        } else if c == '$'
            && (matches!(next, Some('@' | '*'))
                || (next.is_some_and(|n| n.is_ascii_lowercase())
                    && !after.is_some_and(|a| a.is_ascii_alphanumeric() || "_{(".contains(a))))
        {
            // `$@`, `$*`, or an unset one-letter variable: nothing.
            i += 2;
        } else if matches!(c, '{' | '}' | ',') {
            out.push(' ');
            i += 1;
        } else {
            out.push(c);
            i += 1;
        }
    }
    let collapsed = out
        .split(' ')
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    (collapsed != canon).then_some(collapsed)
}

/// The text a base64 value (standard or URL-safe alphabet, 12 characters or more)
/// encodes, when that is printable text; `None` for anything else, so tokens and
/// binary blobs are left alone.
pub fn base64_text(v: &str) -> Option<String> {
    let body = v.trim_end_matches('=');
    if body.len() < 12 || v.len() - body.len() > 2 || v.len() > 4096 {
        return None;
    }
    let val = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' | b'-' => Some(62),
        b'/' | b'_' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for &c in body.as_bytes() {
        acc = acc << 6 | u32::from(val(c)?);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    let text = String::from_utf8(out).ok()?;
    let printable = text
        .chars()
        .filter(|c| !c.is_control() || c.is_whitespace())
        .count();
    (printable * 20 >= text.chars().count() * 19).then_some(text)
}

/// Shell globs in a path (`/e??/pa??wd`, `/???/c?t`, `/etc/pa*wd`): the file or program
/// each one matches among those attackers aim at. Shells expand them before running
/// anything, so `cat /e??/p?ss?d` reads `/etc/passwd`.
pub fn glob_targets(canon: &str) -> Vec<&'static str> {
    const TARGETS: &[&str] = &[
        "/etc/passwd",
        "/etc/shadow",
        "/etc/hosts",
        "/etc/group",
        "/bin/sh",
        "/bin/bash",
        "/bin/cat",
        "/bin/nc",
        "/bin/ls",
        "/usr/bin/id",
        "/usr/bin/wget",
        "/usr/bin/curl",
        "/usr/bin/whoami",
        "/usr/bin/nc",
        "/usr/bin/python3",
        "/usr/bin/perl",
    ];
    let mut out = Vec::new();
    for word in canon.split(|c: char| c.is_whitespace() || ";|&`()<>".contains(c)) {
        if !word.contains('/') || !word.contains(['?', '*']) {
            continue;
        }
        for t in TARGETS {
            if glob_match(word.as_bytes(), t.as_bytes()) && !out.contains(t) {
                out.push(*t);
            }
        }
    }
    out
}

/// `?` one character, `*` any run (neither crosses `/`), everything else literal.
/// Dynamic programming over both strings: linear in their product, whatever the stars.
fn glob_match(p: &[u8], t: &[u8]) -> bool {
    // row[j]: the pattern read so far matches t[..j].
    let mut row = vec![false; t.len() + 1];
    row[0] = true;
    for &pc in p {
        let mut next = vec![false; t.len() + 1];
        for j in 0..=t.len() {
            next[j] = match pc {
                b'*' => row[j] || (j > 0 && t[j - 1] != b'/' && next[j - 1]),
                b'?' => j > 0 && t[j - 1] != b'/' && row[j - 1],
                c => j > 0 && t[j - 1] == c && row[j - 1],
            };
        }
        row = next;
    }
    row[t.len()]
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
    fn overlong_utf8_and_js_escapes() {
        assert_eq!(decode("..%c0%af..%c0%afetc", false), "../../etc");
        assert_eq!(decode("%c0%ae%c0%ae/", false), "../");
        assert_eq!(decode("%e0%80%af", false), "/");
        assert_eq!(decode("%3Bcat%c0%a0x", false), ";cat x");
        assert_eq!(decode("al\\u0065rt(1) \\u{3c}b", false), "alert(1) <b");
        assert_eq!(decode("\\u12 \\u{zz}", false), "\\u12 \\u{zz}");
        // A real two-byte character stays itself.
        assert_eq!(decode("caf%c3%a9", false), "café");
    }

    #[test]
    fn invisible_characters_and_versioned_comments() {
        assert_eq!(canonical("UN\u{200b}ION SE\u{feff}LECT"), "union select");
        assert_eq!(
            canonical("/*!50000UNION*/ /*!SELECT*/ 1"),
            " union select 1"
        );
    }

    #[test]
    fn squeezed_reads_like_a_shell() {
        assert_eq!(
            squeezed("c''a\"\"t /etc/pa[s]swd").as_deref(),
            Some("cat /etc/passwd")
        );
        assert_eq!(
            squeezed("cat$u /etc$u/passwd$u").as_deref(),
            Some("cat /etc/passwd")
        );
        assert_eq!(
            squeezed("{cat,/etc/passwd}").as_deref(),
            Some("cat /etc/passwd")
        );
        assert_eq!(
            squeezed("cat${ifs}/etc/passwd").as_deref(),
            Some("cat /etc/passwd")
        );
        assert_eq!(squeezed("who$@ami").as_deref(), Some("whoami"));
        // Variables in use are kept: `$home`, `${x}`, `$(id)`.
        assert_eq!(squeezed("echo $home $(id)"), None);
        assert_eq!(squeezed("plain words"), None);
    }

    #[test]
    fn base64_values() {
        assert_eq!(
            base64_text("L2V0Yy9wYXNzd2Q=").as_deref(),
            Some("/etc/passwd")
        );
        assert_eq!(
            base64_text("O2NhdCAvZXRjL3Bhc3N3ZA").as_deref(),
            Some(";cat /etc/passwd")
        );
        // Binary, short, or not base64 at all.
        assert_eq!(base64_text("/w8AAQIDBAUGBwgJ"), None);
        assert_eq!(base64_text("aGVsbG8="), None);
        assert_eq!(base64_text("hello world!"), None);
    }

    #[test]
    fn globs_match_targets() {
        assert_eq!(glob_targets("cat /e??/pa??wd"), ["/etc/passwd"]);
        assert_eq!(glob_targets(";/???/c?t /etc/hosts"), ["/bin/cat"]);
        assert_eq!(glob_targets("x /etc/pa*wd"), ["/etc/passwd"]);
        assert!(glob_targets("/search?q=a*b").is_empty());
        assert!(glob_targets("/images/*.png").is_empty());
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
