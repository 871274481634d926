//! W3C extended log format (IIS): `#Fields:` names the columns of the space-separated
//! lines that follow, `-` marks an empty value and `+` stands for a space in user agents.

use crate::event::{non_placeholder, Format, LogEvent, Timestamp};

/// Column names from a `#Fields: date time c-ip ...` directive, or `None` for other lines.
pub fn parse_fields_directive(line: &str) -> Option<Vec<String>> {
    let rest = line.strip_prefix("#Fields:")?;
    let fields: Vec<String> = rest.split_whitespace().map(str::to_owned).collect();
    if fields.is_empty() {
        None
    } else {
        Some(fields)
    }
}

/// The columns IIS 8.5 and later write when nobody changed the site's logging settings.
const IIS_DEFAULT_FIELDS: [&str; 15] = [
    "date",
    "time",
    "s-ip",
    "cs-method",
    "cs-uri-stem",
    "cs-uri-query",
    "s-port",
    "cs-username",
    "c-ip",
    "cs(User-Agent)",
    "cs(Referer)",
    "sc-status",
    "sc-substatus",
    "sc-win32-status",
    "time-taken",
];

/// Parses a data line that arrived without its `#Fields:` header (one line of a file,
/// a forwarded message) when it has exactly the shape of IIS's default columns: IIS 8.5+
/// (15 values), IIS 7-8 (14, no referer), and either with the byte counts IIS offers
/// beside them (`sc-bytes cs-bytes` before `time-taken`: 17 or 16 values). Anything less
/// certain stays unparsed.
pub fn parse_iis_default(line: &str) -> Option<LogEvent> {
    let values: Vec<&str> = line.split_whitespace().collect();
    let (referer, bytes) = match values.len() {
        14 => (false, false),
        15 => (true, false),
        16 => (false, true),
        17 => (true, true),
        _ => return None,
    };
    let mut fields: Vec<String> = IIS_DEFAULT_FIELDS
        .iter()
        .filter(|f| referer || **f != "cs(Referer)")
        .map(|f| f.to_string())
        .collect();
    if bytes {
        let at = fields.len() - 1;
        fields.splice(at..at, ["sc-bytes".to_string(), "cs-bytes".to_string()]);
    }
    let shape = |v: &str, pattern: &str| {
        v.len() == pattern.len()
            && v.bytes().zip(pattern.bytes()).all(|(c, p)| {
                if p == b'9' {
                    c.is_ascii_digit()
                } else {
                    c == p
                }
            })
    };
    let status = fields
        .iter()
        .position(|f| f == "sc-status")
        .and_then(|i| values.get(i))
        .copied()
        .unwrap_or_default();
    let numeric = |v: &str| v.bytes().all(|b| b.is_ascii_digit());
    let plausible = shape(values[0], "9999-99-99")
        && shape(values[1], "99:99:99")
        && (1..=10).contains(&values[3].len())
        && values[3].bytes().all(|b| b.is_ascii_uppercase())
        && values[4].starts_with('/')
        && values[6].parse::<u16>().is_ok()
        && shape(status, "999")
        && values[values.len() - 3..].iter().all(|v| numeric(v));
    if !plausible {
        return None;
    }
    let mut ev = parse_w3c(line, &fields).ok()?;
    if let Some(b) = ev.field("sc-bytes").map(str::to_owned) {
        ev.set("bytes", b.as_str());
    }
    Some(ev)
}

/// Why a W3C line did not match its header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("W3C line has {got} values, the #Fields header names {want}")]
pub struct W3cError {
    /// Values on the line.
    pub got: usize,
    /// Columns in the header.
    pub want: usize,
}

/// Parses a data line against the `#Fields:` column names.
pub fn parse_w3c(line: &str, fields: &[String]) -> Result<LogEvent, W3cError> {
    let values: Vec<&str> = line.split_whitespace().collect();
    if values.len() != fields.len() {
        return Err(W3cError {
            got: values.len(),
            want: fields.len(),
        });
    }
    let mut ev = LogEvent::with_fields(Format::W3c, line.to_owned(), fields.len() + 4);
    let mut date = None;
    let mut time = None;
    for (name, value) in fields.iter().zip(values) {
        let value = if name.contains("User-Agent") || name.contains("Referer") {
            value.replace('+', " ")
        } else {
            value.to_owned()
        };
        match name.as_str() {
            "date" => date = Some(value.clone()),
            "time" => time = Some(value.clone()),
            "c-ip" => ev.source = non_placeholder(&value),
            "cs-username" => ev.user = non_placeholder(&value),
            "s-computername" => ev.host = non_placeholder(&value),
            "s-ip" if ev.host.is_none() => ev.host = non_placeholder(&value),
            "cs-method" => ev.set("method", value.as_str()),
            "cs-uri-stem" => ev.set("path", value.as_str()),
            "sc-status" => ev.set("status", value.as_str()),
            "cs(User-Agent)" => ev.set("user_agent", value.as_str()),
            _ => {}
        }
        ev.set(name.clone(), value);
    }
    if let (Some(d), Some(t)) = (date, time) {
        ev.timestamp = Timestamp::parse_iso(&format!("{d}T{t}"));
    }
    Ok(ev)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headerless_lines_of_the_iis_default_layout_parse() {
        let line = "2026-04-13 07:56:15 10.0.1.20 GET /search q=%27+OR+1=1 443 - 89.160.20.87 Mozilla/5.0+(X11;+Linux+x86_64) https://example.org/ 403 0 0 687";
        let ev = parse_iis_default(line).expect("IIS 8.5 default");
        assert_eq!(ev.format, Format::W3c);
        assert_eq!(ev.field("path"), Some("/search"));
        assert_eq!(ev.field("cs-uri-query"), Some("q=%27+OR+1=1"));
        assert_eq!(
            ev.field("user_agent"),
            Some("Mozilla/5.0 (X11; Linux x86_64)")
        );
        assert_eq!(ev.field("status"), Some("403"));
        assert_eq!(ev.source.as_deref(), Some("89.160.20.87"));
        let iis7 = "2026-04-13 07:56:15 10.0.1.20 GET /index.htm - 80 - 89.160.20.87 Mozilla/5.0 200 0 0 15";
        assert_eq!(
            parse_iis_default(iis7).unwrap().field("status"),
            Some("200")
        );
        // With the byte counts: status before them, sizes where the detectors look.
        let sized = "2015-01-13 23:15:41 100.79.192.81 GET /robots.txt - 80 - 188.165.15.50 Mozilla/5.0+(compatible;+AhrefsBot/5.0) - 404 0 2 1405 170 141";
        let ev = parse_iis_default(sized).expect("with sc-bytes cs-bytes");
        assert_eq!(ev.field("status"), Some("404"));
        assert_eq!(ev.field("bytes"), Some("1405"));
        assert_eq!(ev.field("time-taken"), Some("141"));
        let sized7 = sized.replace(") - 404", ") 404");
        assert_eq!(
            parse_iis_default(&sized7).unwrap().field("cs-bytes"),
            Some("170")
        );
        // Near misses stay unparsed: a syslog-like line, a wrong count, a lower-case verb.
        for line in [
            "2026-04-13 07:56:15 host sshd[1]: Accepted password for a from 1.2.3.4 port 22 ssh2",
            "2026-04-13 07:56:15 10.0.1.20 GET /index.htm - 80 - 89.160.20.87 Mozilla/5.0 200 0 0",
            "2026-04-13 07:56:15 10.0.1.20 get /index.htm - 80 - 89.160.20.87 Mozilla/5.0 200 0 0 15",
            "2026-04-13 07:56:15 10.0.1.20 GET index.htm - 80 - 89.160.20.87 Mozilla/5.0 200 0 0 15",
        ] {
            assert!(parse_iis_default(line).is_none(), "{line}");
        }
    }

    const HEADER: &str = "#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) cs(Referer) sc-status sc-substatus sc-win32-status time-taken";

    #[test]
    fn iis_lines() {
        let fields = parse_fields_directive(HEADER).expect("header");
        assert_eq!(fields.len(), 15);
        type Case<'a> = (
            &'a str,
            Option<&'a str>,
            Option<&'a str>,
            &'a [(&'a str, &'a str)],
        );
        let cases: &[Case] = &[
            (
                "2025-03-15 02:14:01 10.0.0.1 GET /owa/auth/logon.aspx - 443 - 203.0.113.42 Mozilla/5.0+(Windows+NT+10.0) - 404 0 2 15",
                Some("203.0.113.42"),
                None,
                &[("path", "/owa/auth/logon.aspx"), ("status", "404"), ("user_agent", "Mozilla/5.0 (Windows NT 10.0)"), ("s-port", "443")],
            ),
            (
                "2025-03-15 02:14:02 10.0.0.1 POST /api/login a=1 443 CORP\\bob 2001:db8::9 curl/8 https://x/ 401 1 0 3",
                Some("2001:db8::9"),
                Some("CORP\\bob"),
                &[("method", "POST"), ("cs-uri-query", "a=1"), ("status", "401")],
            ),
        ];
        for (line, source, user, want) in cases {
            let ev = parse_w3c(line, &fields).expect("parsed");
            assert_eq!(ev.format, Format::W3c);
            assert_eq!(ev.source.as_deref(), *source, "{line}");
            assert_eq!(ev.user.as_deref(), *user, "{line}");
            assert!(ev.timestamp.is_some(), "{line}");
            for (k, v) in *want {
                assert_eq!(ev.field(k), Some(*v), "field {k} of {line}");
            }
        }
    }

    #[test]
    fn short_line_is_an_error() {
        let fields = parse_fields_directive(HEADER).expect("header");
        let err = parse_w3c("2025-03-15 02:14:01 10.0.0.1 GET", &fields).unwrap_err();
        assert_eq!(err, W3cError { got: 4, want: 15 });
        assert_eq!(parse_fields_directive("#Software: IIS"), None);
        assert_eq!(parse_fields_directive("#Fields:"), None);
    }
}
