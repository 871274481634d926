//! Syslog: RFC 5424, RFC 3164 (with or without `<PRI>`, as in `/var/log/auth.log`, also with
//! the ISO stamps of rsyslog's high-precision template), and the auth messages of sshd,
//! PAM, sudo and su that matter for triage.

use crate::event::{non_placeholder, Format, LogEvent, Timestamp};

/// Parses one syslog message. `year` fills in RFC 3164's missing year.
pub fn parse_syslog(line: &str, year: i32) -> Option<LogEvent> {
    let (pri, rest) = split_pri(line);
    if let Some(body) = rest.strip_prefix("1 ") {
        if pri.is_some() {
            return parse_5424(line, pri, body);
        }
    }
    parse_3164(line, pri, rest, year)
}

/// `<13>rest` → (Some(13), rest). No or malformed PRI → (None, line).
fn split_pri(line: &str) -> (Option<u8>, &str) {
    let Some(after) = line.strip_prefix('<') else {
        return (None, line);
    };
    let Some(end) = after.find('>') else {
        return (None, line);
    };
    let digits = &after[..end];
    if digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return (None, line);
    }
    match digits.parse::<u8>() {
        Ok(p) if p <= 191 => (Some(p), &after[end + 1..]),
        _ => (None, line),
    }
}

fn set_pri(ev: &mut LogEvent, pri: Option<u8>) {
    if let Some(p) = pri {
        ev.set("facility", (p >> 3).to_string());
        ev.set("severity", (p & 7).to_string());
    }
}

fn parse_5424(line: &str, pri: Option<u8>, body: &str) -> Option<LogEvent> {
    let mut parts = body.splitn(5, ' ');
    let ts = parts.next()?;
    let host = parts.next()?;
    let app = parts.next()?;
    let procid = parts.next()?;
    let rest = parts.next()?;
    let (msgid, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    let timestamp = if ts == "-" {
        None
    } else {
        Some(Timestamp::parse_iso(ts)?)
    };
    let (sd, msg) = split_structured_data(rest)?;
    let msg = msg.strip_prefix('\u{feff}').unwrap_or(msg);

    let mut ev = LogEvent::new(Format::Syslog5424, line.to_owned());
    ev.timestamp = timestamp;
    ev.host = non_placeholder(host);
    set_pri(&mut ev, pri);
    ev.set("program", app);
    ev.set("pid", procid);
    ev.set("msgid", msgid);
    for (k, v) in sd {
        ev.set(format!("sd.{k}"), v);
    }
    ev.set("message", msg);
    auth_details(&mut ev, app, msg);
    Some(ev)
}

/// Splits `[id k="v" ...][id2 ...] msg` or `- msg`. Values keep RFC 5424 escapes undone
/// (`\"`, `\\`, `\]`). Returns `None` for unterminated data.
fn split_structured_data(s: &str) -> Option<(Vec<(String, String)>, &str)> {
    if let Some(rest) = s.strip_prefix('-') {
        return Some((Vec::new(), rest.strip_prefix(' ').unwrap_or(rest)));
    }
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() && b[i] == b'[' {
        i += 1;
        let id_start = i;
        while i < b.len() && b[i] != b' ' && b[i] != b']' {
            i += 1;
        }
        let id = s.get(id_start..i)?.to_owned();
        loop {
            while i < b.len() && b[i] == b' ' {
                i += 1;
            }
            if i >= b.len() {
                return None;
            }
            if b[i] == b']' {
                i += 1;
                break;
            }
            let name_start = i;
            while i < b.len() && b[i] != b'=' {
                i += 1;
            }
            let name = s.get(name_start..i)?.to_owned();
            i += 1;
            if i >= b.len() || b[i] != b'"' {
                return None;
            }
            i += 1;
            let mut value = String::new();
            let mut start = i;
            loop {
                if i >= b.len() {
                    return None;
                }
                match b[i] {
                    b'\\' if i + 1 < b.len() && matches!(b[i + 1], b'"' | b'\\' | b']') => {
                        value.push_str(s.get(start..i)?);
                        i += 1;
                        start = i;
                        i += 1;
                    }
                    b'"' => {
                        value.push_str(s.get(start..i)?);
                        i += 1;
                        break;
                    }
                    _ => i += 1,
                }
            }
            out.push((format!("{id}.{name}"), value));
        }
    }
    if out.is_empty() && i == 0 {
        return None;
    }
    let rest = s.get(i..)?;
    Some((out, rest.strip_prefix(' ').unwrap_or(rest)))
}

fn parse_3164(line: &str, pri: Option<u8>, rest: &str, year: i32) -> Option<LogEvent> {
    let (timestamp, after) = if rest.len() >= 15 && rest.is_char_boundary(15) {
        match Timestamp::parse_bsd(&rest[..15], year) {
            Some(t) => (t, &rest[15..]),
            None => iso_prefix(rest)?,
        }
    } else {
        iso_prefix(rest)?
    };
    let after = after.strip_prefix(' ')?;
    // HOST then TAG[PID]: MSG. Some senders omit the host; then the first word is the tag.
    let (first, remainder) = after.split_once(' ').unwrap_or((after, ""));
    let (host, tag_and_msg) = if first.ends_with(':') || first.contains('[') {
        (None, after)
    } else {
        (Some(first), remainder)
    };
    let mut ev = LogEvent::with_fields(Format::Syslog3164, line.to_owned(), 8);
    ev.timestamp = Some(timestamp);
    ev.host = host.and_then(non_placeholder);
    set_pri(&mut ev, pri);
    let (program, pid, msg) = split_tag(tag_and_msg);
    if let Some(p) = program {
        ev.set("program", p);
    }
    if let Some(p) = pid {
        ev.set("pid", p);
    }
    ev.set("message", msg);
    auth_details(&mut ev, program.unwrap_or(""), msg);
    Some(ev)
}

/// An RFC 3339 stamp at the start (rsyslog's precise template): (time, rest).
fn iso_prefix(s: &str) -> Option<(Timestamp, &str)> {
    let end = s.find(' ')?;
    let t = Timestamp::parse_iso(&s[..end])?;
    Some((t, &s[end..]))
}

/// `sshd[1234]: msg` → (sshd, 1234, msg); `kernel: msg` → (kernel, None, msg).
fn split_tag(s: &str) -> (Option<&str>, Option<&str>, &str) {
    let Some(colon) = s
        .find(": ")
        .or_else(|| s.strip_suffix(':').map(|t| t.len()))
    else {
        return (None, None, s);
    };
    let tag = &s[..colon];
    if tag.is_empty() || tag.contains(' ') || tag.len() > 64 {
        return (None, None, s);
    }
    let msg = s.get(colon + 2..).unwrap_or("");
    match tag.split_once('[') {
        Some((prog, pid)) => (Some(prog), pid.strip_suffix(']'), msg),
        None => (Some(tag), None, msg),
    }
}

/// The word after `marker` in `msg`.
fn word_after<'a>(msg: &'a str, marker: &str) -> Option<&'a str> {
    let start = msg.find(marker)? + marker.len();
    let rest = &msg[start..];
    let w = rest.split([' ', ';', ',']).next().unwrap_or("");
    if w.is_empty() {
        None
    } else {
        Some(w)
    }
}

/// `key=value` from PAM's `; logname= uid=0 ... rhost=1.2.3.4  user=root` list.
fn pam_value<'a>(msg: &'a str, key: &str) -> Option<&'a str> {
    msg.split([' ', ';'])
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// Recognises sshd/PAM/sudo/su authentication outcomes and sets `outcome`, `user`,
/// `source` (remote address) and `auth` (what was tried).
fn auth_details(ev: &mut LogEvent, program: &str, msg: &str) {
    let program = program.rsplit('/').next().unwrap_or(program);
    let mut outcome = None;
    if program.starts_with("sshd") {
        if let Some(rest) = msg
            .strip_prefix("Failed ")
            .filter(|_| msg.contains(" for "))
        {
            outcome = Some("failure");
            ev.set("auth", rest.split(' ').next().unwrap_or(""));
            let user = word_after(msg, " for invalid user ").or_else(|| word_after(msg, " for "));
            ev.user = user.map(str::to_owned);
        } else if let Some(rest) = msg.strip_prefix("Accepted ") {
            outcome = Some("success");
            ev.set("auth", rest.split(' ').next().unwrap_or(""));
            ev.user = word_after(msg, " for ").map(str::to_owned);
        } else if msg.starts_with("Invalid user ") {
            outcome = Some("failure");
            ev.set("auth", "invalid_user");
            ev.user = word_after(msg, "Invalid user ").map(str::to_owned);
        } else if msg.contains("maximum authentication attempts exceeded") {
            outcome = Some("failure");
            ev.user = word_after(msg, " for invalid user ")
                .or_else(|| word_after(msg, " for "))
                .map(str::to_owned);
        }
        if let Some(addr) = word_after(msg, " from ").or_else(|| word_after(msg, "rhost=")) {
            ev.source = Some(addr.to_owned());
        }
    }
    if msg.contains("authentication failure;") {
        // pam_unix(sshd:auth), pam_unix(sudo:auth), ...: key=value list.
        outcome = Some("failure");
        ev.set("auth", "pam");
        if let Some(u) = pam_value(msg, "user").or_else(|| pam_value(msg, "ruser")) {
            ev.user = Some(u.to_owned());
        }
        if let Some(h) = pam_value(msg, "rhost") {
            ev.source = Some(h.to_owned());
        }
    }
    if program == "sudo" {
        // "alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/bash"
        // "alice : 3 incorrect password attempts ; TTY=..."
        if let Some((who, rest)) = msg.trim_start().split_once(" : ") {
            if !who.contains(' ') {
                ev.user = Some(who.to_owned());
                if rest.contains("incorrect password attempt") || rest.contains("NOT in sudoers") {
                    outcome = Some("failure");
                } else if rest.contains("COMMAND=") {
                    outcome = outcome.or(Some("success"));
                }
                if let Some(v) = pam_value(rest, "USER") {
                    ev.set("target_user", v);
                }
                if let Some(idx) = rest.find("COMMAND=") {
                    ev.set("command", &rest[idx + 8..]);
                }
            }
        }
    }
    if program == "su" {
        if let Some(rest) = msg.strip_prefix("FAILED SU (to ") {
            outcome = Some("failure");
            ev.set("target_user", rest.split(')').next().unwrap_or(""));
            ev.user = rest
                .split(") ")
                .nth(1)
                .and_then(|r| r.split(' ').next())
                .map(str::to_owned);
        }
    }
    if let Some(o) = outcome {
        ev.set("outcome", o);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Case {
        line: &'static str,
        format: Format,
        time: Option<&'static str>,
        host: Option<&'static str>,
        source: Option<&'static str>,
        user: Option<&'static str>,
        fields: &'static [(&'static str, &'static str)],
    }

    #[test]
    fn syslog_lines() {
        let cases = [
            Case {
                line: "Mar 15 01:05:33 server sshd[1234]: Failed password for ec2-user from 192.168.10.25 port 2222 ssh2",
                format: Format::Syslog3164,
                time: Some("2025-03-15T01:05:33Z"),
                host: Some("server"),
                source: Some("192.168.10.25"),
                user: Some("ec2-user"),
                fields: &[("program", "sshd"), ("pid", "1234"), ("outcome", "failure"), ("auth", "password")],
            },
            Case {
                line: "Mar  5 01:05:33 web1 sshd[99]: Failed password for invalid user admin from 2001:db8::7 port 50000 ssh2",
                format: Format::Syslog3164,
                time: Some("2025-03-05T01:05:33Z"),
                host: Some("web1"),
                source: Some("2001:db8::7"),
                user: Some("admin"),
                fields: &[("outcome", "failure")],
            },
            Case {
                line: "<38>Mar 15 01:05:33 server sshd[1234]: Accepted publickey for deploy from 10.0.0.5 port 53422 ssh2: ED25519 SHA256:abc",
                format: Format::Syslog3164,
                time: Some("2025-03-15T01:05:33Z"),
                host: Some("server"),
                source: Some("10.0.0.5"),
                user: Some("deploy"),
                fields: &[("outcome", "success"), ("auth", "publickey"), ("facility", "4"), ("severity", "6")],
            },
            Case {
                line: "Mar 15 01:05:34 server sshd[1240]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.42  user=root",
                format: Format::Syslog3164,
                time: Some("2025-03-15T01:05:34Z"),
                host: Some("server"),
                source: Some("203.0.113.42"),
                user: Some("root"),
                fields: &[("outcome", "failure"), ("auth", "pam")],
            },
            Case {
                line: "Mar 15 09:12:00 server sudo:    alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/cat /etc/shadow",
                format: Format::Syslog3164,
                time: Some("2025-03-15T09:12:00Z"),
                host: Some("server"),
                source: None,
                user: Some("alice"),
                fields: &[("outcome", "success"), ("target_user", "root"), ("command", "/bin/cat /etc/shadow")],
            },
            Case {
                line: "Mar 15 09:12:05 server sudo:      bob : 3 incorrect password attempts ; TTY=pts/1 ; PWD=/home/bob ; USER=root ; COMMAND=/bin/bash",
                format: Format::Syslog3164,
                time: Some("2025-03-15T09:12:05Z"),
                host: Some("server"),
                source: None,
                user: Some("bob"),
                fields: &[("outcome", "failure")],
            },
            Case {
                line: "2025-03-15T01:05:33.123456+01:00 server sshd[1234]: Invalid user oracle from 45.33.32.156 port 41000",
                format: Format::Syslog3164,
                time: Some("2025-03-15T00:05:33.123Z"),
                host: Some("server"),
                source: Some("45.33.32.156"),
                user: Some("oracle"),
                fields: &[("outcome", "failure")],
            },
            Case {
                line: r#"<165>1 2025-03-15T22:14:15.003-07:00 mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="App\"lication\]" eventID="1011"] An application event"#,
                format: Format::Syslog5424,
                time: Some("2025-03-16T05:14:15.003Z"),
                host: Some("mymachine.example.com"),
                source: None,
                user: None,
                fields: &[("program", "evntslog"), ("msgid", "ID47"), ("sd.exampleSDID@32473.eventSource", "App\"lication]"), ("message", "An application event"), ("facility", "20"), ("severity", "5")],
            },
            Case {
                line: "<34>1 2025-03-15T01:05:33Z host sshd 811 - - Failed password for root from 198.51.100.7 port 22 ssh2",
                format: Format::Syslog5424,
                time: Some("2025-03-15T01:05:33Z"),
                host: Some("host"),
                source: Some("198.51.100.7"),
                user: Some("root"),
                fields: &[("outcome", "failure"), ("pid", "811")],
            },
            Case {
                line: "<13>1 - - - - - -",
                format: Format::Syslog5424,
                time: None,
                host: None,
                source: None,
                user: None,
                fields: &[],
            },
            Case {
                line: "Mar 15 09:12:05 server su[4242]: FAILED SU (to root) mallory on pts/3",
                format: Format::Syslog3164,
                time: Some("2025-03-15T09:12:05Z"),
                host: Some("server"),
                source: None,
                user: Some("mallory"),
                fields: &[("outcome", "failure"), ("target_user", "root")],
            },
            Case {
                line: "<4>Mar 15 09:12:05 kernel: [UFW BLOCK] IN=eth0 SRC=1.2.3.4",
                format: Format::Syslog3164,
                time: Some("2025-03-15T09:12:05Z"),
                host: None,
                source: None,
                user: None,
                fields: &[("program", "kernel"), ("message", "[UFW BLOCK] IN=eth0 SRC=1.2.3.4")],
            },
        ];
        for c in cases {
            let ev = parse_syslog(c.line, 2025).unwrap_or_else(|| panic!("not parsed: {}", c.line));
            assert_eq!(ev.format, c.format, "{}", c.line);
            assert_eq!(
                ev.timestamp.map(|t| t.to_string()).as_deref(),
                c.time,
                "{}",
                c.line
            );
            assert_eq!(ev.host.as_deref(), c.host, "{}", c.line);
            assert_eq!(ev.source.as_deref(), c.source, "{}", c.line);
            assert_eq!(ev.user.as_deref(), c.user, "{}", c.line);
            for (k, v) in c.fields {
                assert_eq!(ev.field(k), Some(*v), "field {k} of {}", c.line);
            }
        }
    }

    #[test]
    fn rejects_non_syslog() {
        for line in [
            "",
            "<999>1 2025-03-15T01:05:33Z h a p m - x",
            r#"<13>1 2025-03-15T01:05:33Z h a p m [unterminated x="1"#,
            "<13>1 notatime h a p m - x",
            "Hello there, general",
            r#"1.2.3.4 - - [16/Mar/2025:01:05:33] "GET / HTTP/1.1" 200 1"#,
        ] {
            let got = parse_syslog(line, 2025);
            assert!(
                got.as_ref()
                    .is_none_or(|e| e.format == Format::Syslog3164 && e.timestamp.is_some()),
                "{line:?} -> {got:?}"
            );
            assert!(got.is_none(), "{line:?} -> {got:?}");
        }
    }
}
