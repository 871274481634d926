//! Apache/nginx access logs: common (`host ident user [date] "request" status bytes`) and
//! combined (common plus `"referer" "user-agent"`). Extra trailing fields (nginx
//! `$http_x_forwarded_for`, timings) are kept as `extra`.

use crate::event::{intern, non_placeholder, Format, LogEvent, Timestamp};

// Most requests use a handful of methods, protocols and statuses: share them instead of
// allocating a copy per line.
const METHODS: &[&str] = &[
    "GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT",
];
const PROTOCOLS: &[&str] = &["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/2", "HTTP/3"];
const STATUSES: &[&str] = &[
    "200", "304", "404", "301", "302", "401", "403", "500", "204", "206", "400", "405", "408",
    "429", "499", "502", "503", "504",
];

/// Parses one access-log line, or `None` when the line does not have the shape.
pub fn parse_access(line: &str) -> Option<LogEvent> {
    let mut cur = Cursor { s: line, pos: 0 };
    let client = cur.token()?;
    let ident = cur.token()?;
    let user = cur.token()?;
    cur.skip_spaces();
    let date = cur.bracketed()?;
    cur.skip_spaces();
    let request = cur.quoted()?;
    cur.skip_spaces();
    let status = cur.token()?;
    if !(status == "-" || (status.len() == 3 && status.bytes().all(|b| b.is_ascii_digit()))) {
        return None;
    }
    let bytes = cur.token_or_end()?;
    cur.skip_spaces();
    let mut referer = None;
    let mut agent = None;
    if !cur.at_end() {
        referer = Some(cur.quoted()?);
        cur.skip_spaces();
        if !cur.at_end() {
            agent = Some(cur.quoted()?);
        }
    }
    cur.skip_spaces();
    let extra = cur.rest();

    let format = if agent.is_some() {
        Format::AccessCombined
    } else {
        Format::AccessCommon
    };
    let mut ev = LogEvent::with_fields(format, line.to_owned(), 10);
    ev.timestamp = Timestamp::parse_clf(date);
    ev.source = non_placeholder(client);
    ev.user = non_placeholder(user);
    // `source` already holds the client and `timestamp` the date; keep fields lean, this
    // is the hot path for big web logs.
    ev.set("ident", ident);
    // `METHOD TARGET PROTOCOL`; attack payloads often leave spaces in TARGET unencoded, so
    // the protocol is taken from the end.
    if let Some((method, rest)) = request.split_once(' ') {
        if !method.is_empty() && method.bytes().all(|b| b.is_ascii_alphabetic()) {
            let (target, proto) = match rest.rsplit_once(' ') {
                Some((t, p)) if p.starts_with("HTTP/") => (t, Some(p)),
                _ => (rest, None),
            };
            match intern(method, METHODS) {
                Some(m) => ev.set_static("method", m),
                None => ev.set("method", method),
            }
            let path = target.split('?').next().unwrap_or(target);
            ev.set("path", path);
            if path.len() != target.len() {
                ev.set("url", target);
            }
            if let Some(p) = proto {
                match intern(p, PROTOCOLS) {
                    Some(p) => ev.set_static("protocol", p),
                    None => ev.set("protocol", p),
                }
            }
        }
    }
    if ev.field("method").is_none() {
        ev.set("request", request.as_ref());
    }
    if ev.timestamp.is_none() {
        ev.set("time", date);
    }
    match intern(status, STATUSES) {
        Some(s) => ev.set_static("status", s),
        None => ev.set("status", status),
    }
    ev.set("bytes", bytes);
    if let Some(r) = referer {
        ev.set("referer", r.as_ref());
    }
    if let Some(a) = agent {
        ev.set("user_agent", a.as_ref());
    }
    if !extra.is_empty() {
        ev.set("extra", extra);
    }
    Some(ev)
}

/// A tiny scanner over the line; every method returns `None` instead of panicking when the
/// line ends early.
struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    fn rest(&self) -> &'a str {
        self.s.get(self.pos..).unwrap_or("")
    }

    fn skip_spaces(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start_matches(' ').len();
    }

    /// A space-terminated token followed by at least one space.
    fn token(&mut self) -> Option<&'a str> {
        let rest = self.rest();
        let end = rest.find(' ')?;
        if end == 0 {
            return None;
        }
        self.pos += end;
        self.skip_spaces();
        Some(&rest[..end])
    }

    /// A token that may end the line.
    fn token_or_end(&mut self) -> Option<&'a str> {
        let rest = self.rest();
        let end = rest.find(' ').unwrap_or(rest.len());
        if end == 0 {
            return None;
        }
        self.pos += end;
        Some(&rest[..end])
    }

    fn bracketed(&mut self) -> Option<&'a str> {
        let rest = self.rest().strip_prefix('[')?;
        let end = rest.find(']')?;
        self.pos += end + 2;
        Some(&rest[..end])
    }

    /// A double-quoted string; `\"` and `\\` are unescaped (Apache and nginx escape them).
    fn quoted(&mut self) -> Option<std::borrow::Cow<'a, str>> {
        let rest = self.rest().strip_prefix('"')?;
        let bytes = rest.as_bytes();
        let mut i = 0;
        let mut escaped = false;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' => {
                    escaped = true;
                    i += 2;
                    continue;
                }
                b'"' => break,
                _ => i += 1,
            }
        }
        if i >= bytes.len() {
            return None;
        }
        self.pos += i + 2;
        let inner = &rest[..i];
        if escaped {
            let mut out = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    match chars.next() {
                        Some('"') => out.push('"'),
                        Some('\\') => out.push('\\'),
                        Some(other) => {
                            out.push('\\');
                            out.push(other);
                        }
                        None => out.push('\\'),
                    }
                } else {
                    out.push(c);
                }
            }
            Some(std::borrow::Cow::Owned(out))
        } else {
            Some(std::borrow::Cow::Borrowed(inner))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Case {
        line: &'static str,
        format: Format,
        source: Option<&'static str>,
        fields: &'static [(&'static str, &'static str)],
        time: Option<&'static str>,
    }

    #[test]
    fn access_lines() {
        let cases = [
            Case {
                line: r#"91.108.4.20 - - [16/Mar/2025:01:05:33] "GET /profile?id=1 OR 1=1-- HTTP/1.1" 403 12466 "-" "burpsuite""#,
                format: Format::AccessCombined,
                source: Some("91.108.4.20"),
                fields: &[
                    ("method", "GET"),
                    ("path", "/profile"),
                    ("url", "/profile?id=1 OR 1=1--"),
                    ("status", "403"),
                    ("user_agent", "burpsuite"),
                ],
                time: Some("2025-03-16T01:05:33Z"),
            },
            Case {
                line: r#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326"#,
                format: Format::AccessCommon,
                source: Some("127.0.0.1"),
                fields: &[
                    ("path", "/apache_pb.gif"),
                    ("status", "200"),
                    ("bytes", "2326"),
                    ("protocol", "HTTP/1.0"),
                ],
                time: Some("2000-10-10T20:55:36Z"),
            },
            Case {
                line: r#"2001:db8::1 - - [16/Mar/2025:01:05:33 +0000] "POST /login HTTP/2.0" 401 0 "https://x/" "curl/8.0""#,
                format: Format::AccessCombined,
                source: Some("2001:db8::1"),
                fields: &[
                    ("method", "POST"),
                    ("status", "401"),
                    ("referer", "https://x/"),
                ],
                time: Some("2025-03-16T01:05:33Z"),
            },
            Case {
                // Escaped quotes inside the request and the user agent.
                line: r#"10.0.0.1 - - [16/Mar/2025:01:05:33 +0200] "GET /q?x=\"1\" HTTP/1.1" 200 5 "-" "Agent \"quoted\" v1""#,
                format: Format::AccessCombined,
                source: Some("10.0.0.1"),
                fields: &[
                    ("url", r#"/q?x="1""#),
                    ("user_agent", r#"Agent "quoted" v1"#),
                ],
                time: Some("2025-03-15T23:05:33Z"),
            },
            Case {
                // Garbage request (TLS handshake against a plain port) and missing size.
                line: r#"45.33.32.156 - - [16/Mar/2025:22:47:12 +0000] "\x16\x03\x01" 400 - "-" "-""#,
                format: Format::AccessCombined,
                source: Some("45.33.32.156"),
                fields: &[("status", "400"), ("request", r"\x16\x03\x01")],
                time: Some("2025-03-16T22:47:12Z"),
            },
            Case {
                // nginx with a trailing forwarded-for field.
                line: r#"10.1.1.1 - alice [16/Mar/2025:01:05:33 +0000] "GET / HTTP/1.1" 304 0 "-" "Mozilla/5.0" "203.0.113.9""#,
                format: Format::AccessCombined,
                source: Some("10.1.1.1"),
                fields: &[("extra", "\"203.0.113.9\""), ("path", "/")],
                time: Some("2025-03-16T01:05:33Z"),
            },
        ];
        for c in cases {
            let ev = parse_access(c.line).unwrap_or_else(|| panic!("not parsed: {}", c.line));
            assert_eq!(ev.format, c.format, "{}", c.line);
            assert_eq!(ev.source.as_deref(), c.source, "{}", c.line);
            assert_eq!(
                ev.timestamp.map(|t| t.to_string()).as_deref(),
                c.time,
                "{}",
                c.line
            );
            for (k, v) in c.fields {
                assert_eq!(ev.field(k), Some(*v), "field {k} of {}", c.line);
            }
            assert_eq!(ev.raw, c.line);
        }
    }

    #[test]
    fn user_is_kept_and_missing_user_is_none() {
        let ev = parse_access(r#"1.2.3.4 - bob [16/Mar/2025:01:05:33] "GET / HTTP/1.1" 200 1"#);
        assert_eq!(ev.and_then(|e| e.user), Some("bob".to_owned()));
        let ev = parse_access(r#"1.2.3.4 - - [16/Mar/2025:01:05:33] "GET / HTTP/1.1" 200 1"#);
        assert_eq!(ev.map(|e| e.user), Some(None));
    }

    #[test]
    fn rejects_other_shapes() {
        for line in [
            "",
            "hello world",
            "1.2.3.4 - - [unterminated",
            r#"1.2.3.4 - - [16/Mar/2025:01:05:33] "GET / HTTP/1.1"#,
            r#"1.2.3.4 - - [16/Mar/2025:01:05:33] "GET / HTTP/1.1" abc 5"#,
            "Mar 15 01:05:33 server sshd[1234]: Failed password",
        ] {
            assert_eq!(parse_access(line), None, "{line:?}");
        }
    }
}
