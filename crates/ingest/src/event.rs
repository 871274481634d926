//! The parsed form of one log record: [`LogEvent`], its [`Format`] and [`Timestamp`].

use std::borrow::Cow;
use std::fmt;

use serde::Serialize;

/// The log format a record was recognised as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// Apache/nginx "combined" access log (common plus referer and user agent).
    AccessCombined,
    /// Apache/nginx "common" access log.
    AccessCommon,
    /// W3C extended log (IIS), described by a `#Fields:` header.
    W3c,
    /// BSD syslog (RFC 3164), with or without the `<PRI>` prefix, as in `/var/log/auth.log`.
    Syslog3164,
    /// IETF syslog (RFC 5424).
    Syslog5424,
    /// Windows event as multi-line `EventID: 4625` / `User: ...` text (the paper's data).
    WindowsText,
    /// Windows event XML (`<Event xmlns=...>`), as exported by Event Viewer or `wevtutil`.
    WindowsXml,
    /// A record of a binary Windows `.evtx` file.
    Evtx,
    /// Winlogbeat or other Elastic Common Schema JSON.
    Ecs,
    /// Suricata EVE JSON.
    SuricataEve,
    /// Zeek JSON logs.
    ZeekJson,
    /// AWS CloudTrail record.
    CloudTrail,
    /// JSON object of no recognised schema.
    Json,
    /// Anything else: one line of plain text.
    Plain,
    /// A blank-line-separated block read in `blocks` mode.
    Block,
}

impl Format {
    /// Short stable name, used in ids, stats and docs.
    pub fn name(self) -> &'static str {
        match self {
            Format::AccessCombined => "access-combined",
            Format::AccessCommon => "access-common",
            Format::W3c => "w3c",
            Format::Syslog3164 => "syslog-3164",
            Format::Syslog5424 => "syslog-5424",
            Format::WindowsText => "windows-text",
            Format::WindowsXml => "windows-xml",
            Format::Evtx => "evtx",
            Format::Ecs => "ecs-json",
            Format::SuricataEve => "suricata-eve",
            Format::ZeekJson => "zeek-json",
            Format::CloudTrail => "cloudtrail",
            Format::Json => "json",
            Format::Plain => "plain",
            Format::Block => "block",
        }
    }

    /// True for formats whose records carry structured fields (everything but plain text).
    pub fn is_structured(self) -> bool {
        !matches!(self, Format::Plain | Format::Block)
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A point in time, milliseconds since the Unix epoch in UTC.
///
/// Kept as a plain integer so grouping windows are cheap arithmetic; the crate needs no
/// calendar library for the handful of log date formats it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

impl Timestamp {
    /// Builds a timestamp from civil UTC fields minus an offset east of UTC in seconds.
    /// Returns `None` for out-of-range fields.
    #[allow(clippy::too_many_arguments)] // the civil fields are the natural signature
    pub fn from_civil(
        year: i32,
        month: u32,
        day: u32,
        hour: u32,
        min: u32,
        sec: u32,
        millis: u32,
        offset_secs: i32,
    ) -> Option<Timestamp> {
        if !(1..=12).contains(&month)
            || day == 0
            || day > days_in_month(year, month)
            || hour > 23
            || min > 59
            || sec > 60
            || millis > 999
            || !(-9999..=9999).contains(&year)
        {
            return None;
        }
        let days = days_from_civil(year, month, day);
        let secs = days * 86_400 + i64::from(hour) * 3600 + i64::from(min) * 60 + i64::from(sec)
            - i64::from(offset_secs);
        Some(Timestamp(secs * 1000 + i64::from(millis)))
    }

    /// Whole seconds since the epoch.
    pub fn secs(self) -> i64 {
        self.0.div_euclid(1000)
    }

    /// Parses RFC 3339 / ISO 8601 date-times as written by logs: `2025-03-15T02:14:01Z`,
    /// `2025-03-15T02:14:01.123456+01:00`, `2025-03-15 02:14:01`, `+0000` offsets.
    /// A missing offset means UTC.
    pub fn parse_iso(s: &str) -> Option<Timestamp> {
        let b = s.as_bytes();
        if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
            return None;
        }
        if b[10] != b'T' && b[10] != b' ' && b[10] != b't' {
            return None;
        }
        let year = num(&b[0..4])? as i32;
        let month = num(&b[5..7])?;
        let day = num(&b[8..10])?;
        let hour = num(&b[11..13])?;
        let min = num(&b[14..16])?;
        let sec = num(&b[17..19])?;
        let mut rest = &b[19..];
        let mut millis = 0;
        if let Some((&b'.', frac)) = rest.split_first() {
            let digits = frac.iter().take_while(|c| c.is_ascii_digit()).count();
            if digits == 0 {
                return None;
            }
            let mut ms = 0u32;
            for (i, d) in frac[..digits].iter().take(3).enumerate() {
                ms += u32::from(d - b'0') * [100, 10, 1][i];
            }
            millis = ms;
            rest = &frac[digits..];
        }
        let offset = parse_offset(rest)?;
        Timestamp::from_civil(year, month, day, hour, min, sec, millis, offset)
    }

    /// Parses `dd/Mon/yyyy:HH:MM:SS [+-]hhmm` (access logs) and `dd-Mon-yyyy:HH:MM:SS`
    /// (the paper's Windows text). A missing zone means UTC.
    pub fn parse_clf(s: &str) -> Option<Timestamp> {
        let b = s.as_bytes();
        if b.len() < 20 || (b[2] != b'/' && b[2] != b'-') || b[6] != b[2] || b[11] != b':' {
            return None;
        }
        let day = num(&b[0..2])?;
        let month = month_number(&b[3..6])?;
        let year = num(&b[7..11])? as i32;
        let hour = num(&b[12..14])?;
        let min = num(&b[15..17])?;
        let sec = num(&b[18..20])?;
        if b[14] != b':' || b[17] != b':' {
            return None;
        }
        let rest = &b[20..];
        let rest = rest.strip_prefix(b" ").unwrap_or(rest);
        let offset = parse_offset(rest)?;
        Timestamp::from_civil(year, month, day, hour, min, sec, 0, offset)
    }

    /// Parses the RFC 3164 `Mmm dd HH:MM:SS` stamp, which has no year: `year` supplies it.
    pub fn parse_bsd(s: &str, year: i32) -> Option<Timestamp> {
        let b = s.as_bytes();
        if b.len() < 15 || b[3] != b' ' || b[6] != b' ' || b[9] != b':' || b[12] != b':' {
            return None;
        }
        let month = month_number(&b[0..3])?;
        let day = if b[4] == b' ' {
            num(&b[5..6])?
        } else {
            num(&b[4..6])?
        };
        let hour = num(&b[7..9])?;
        let min = num(&b[10..12])?;
        let sec = num(&b[13..15])?;
        Timestamp::from_civil(year, month, day, hour, min, sec, 0, 0)
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC, with milliseconds only when non-zero.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.secs();
        let millis = self.0.rem_euclid(1000);
        let days = secs.div_euclid(86_400);
        let tod = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
            tod / 3600,
            tod % 3600 / 60,
            tod % 60
        )?;
        if millis != 0 {
            write!(f, ".{millis:03}")?;
        }
        f.write_str("Z")
    }
}

fn num(b: &[u8]) -> Option<u32> {
    if b.is_empty() || b.len() > 9 {
        return None;
    }
    let mut n = 0u32;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u32::from(c - b'0');
    }
    Some(n)
}

pub(crate) fn month_number(b: &[u8]) -> Option<u32> {
    MONTHS
        .iter()
        .position(|m| m.as_bytes().eq_ignore_ascii_case(b))
        .map(|i| i as u32 + 1)
}

/// `Z`, `+hh:mm`, `+hhmm`, `+hh` or nothing (UTC). Trailing text is not allowed.
fn parse_offset(b: &[u8]) -> Option<i32> {
    match b {
        [] | [b'Z'] | [b'z'] => Some(0),
        [sign @ (b'+' | b'-'), rest @ ..] => {
            let (h, m) = match rest {
                [h1, h2] => (num(&[*h1, *h2])?, 0),
                [h1, h2, m1, m2] => (num(&[*h1, *h2])?, num(&[*m1, *m2])?),
                [h1, h2, b':', m1, m2] => (num(&[*h1, *h2])?, num(&[*m1, *m2])?),
                _ => return None,
            };
            if h > 23 || m > 59 {
                return None;
            }
            let secs = (h * 3600 + m * 60) as i32;
            Some(if *sign == b'-' { -secs } else { secs })
        }
        _ => None,
    }
}

fn is_leap(y: i32) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i32, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        2 => 28,
        _ => 0,
    }
}

// Howard Hinnant's days_from_civil / civil_from_days: exact for the proleptic Gregorian calendar.
fn days_from_civil(y: i32, m: u32, d: u32) -> i64 {
    let y = i64::from(y) - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The named fields of a [`LogEvent`], in the order they were set.
///
/// A small vector rather than a map: records have a dozen fields, most names are fixed
/// `'static` strings that cost no allocation, and parsing big web logs is the hot path.
/// Serialises as a JSON object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields(Vec<(Cow<'static, str>, Cow<'static, str>)>);

impl Fields {
    /// The value of a field.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_ref())
    }

    /// Sets a field, replacing an earlier value of the same name.
    pub fn insert(
        &mut self,
        name: impl Into<Cow<'static, str>>,
        value: impl Into<Cow<'static, str>>,
    ) {
        let name = name.into();
        let value = value.into();
        match self.0.iter_mut().find(|(k, _)| *k == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name, value)),
        }
    }

    /// Fields in the order they were set.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_ref(), v.as_ref()))
    }

    /// Fields sorted by name (for stable rendering).
    pub fn sorted(&self) -> Vec<(&str, &str)> {
        let mut v: Vec<(&str, &str)> = self.iter().collect();
        v.sort_unstable();
        v
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Keeps the fields for which `keep(name, value)` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &str) -> bool) {
        self.0.retain(|(k, v)| keep(k, v));
    }
}

impl Serialize for Fields {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k.as_ref(), v.as_ref())?;
        }
        map.end()
    }
}

/// One parsed log record.
///
/// `source`, `user` and `host` are filled when the format carries them; `fields` holds
/// everything else under stable snake_case names (`status`, `path`, `method`, `event_id`,
/// `outcome`, ...), plus the format's own names where they add detail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogEvent {
    /// Recognised format.
    pub format: Format,
    /// When the event happened, in UTC, when the record says.
    pub timestamp: Option<Timestamp>,
    /// Source (client/attacker) address: IPv4, IPv6 or host name.
    pub source: Option<String>,
    /// Account the event is about (login name, target user).
    pub user: Option<String>,
    /// Host that logged the event.
    pub host: Option<String>,
    /// The record as read (without the line terminator).
    pub raw: String,
    /// Parsed fields; look them up with [`LogEvent::field`].
    pub fields: Fields,
}

impl LogEvent {
    /// An unparsed plain-text event.
    pub fn plain(raw: impl Into<String>) -> LogEvent {
        LogEvent::new(Format::Plain, raw.into())
    }

    /// An empty event of `format` around `raw`, for parsers to fill in.
    pub fn new(format: Format, raw: String) -> LogEvent {
        LogEvent::with_fields(format, raw, 0)
    }

    /// As [`LogEvent::new`], with room for `fields` fields (saves regrowing the field
    /// vector on the hot path).
    pub fn with_fields(format: Format, raw: String, fields: usize) -> LogEvent {
        LogEvent {
            format,
            timestamp: None,
            source: None,
            user: None,
            host: None,
            raw,
            fields: Fields(Vec::with_capacity(fields)),
        }
    }

    /// A parsed field by name.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name)
    }

    /// Whether the event reports a success (`Some(true)`), a failure (`Some(false)`) or
    /// neither: a web answer's status class (2xx; 4xx or 5xx), else the parsers'
    /// `outcome` (sshd `Accepted` and `Failed`, PAM, sudo, Windows logons).
    pub fn succeeded(&self) -> Option<bool> {
        if let Some(status) = self.field("status") {
            return match status.as_bytes().first() {
                Some(b'2') => Some(true),
                Some(b'4' | b'5') => Some(false),
                _ => None,
            };
        }
        match self.field("outcome") {
            Some("success") => Some(true),
            Some("failure") => Some(false),
            _ => None,
        }
    }

    /// Sets a field unless the value is empty or a `-` placeholder.
    pub(crate) fn set(
        &mut self,
        name: impl Into<Cow<'static, str>>,
        value: impl AsRef<str> + Into<String>,
    ) {
        if !is_placeholder(value.as_ref()) {
            self.fields.insert(name, value.into());
        }
    }

    /// Sets a field to a value from a fixed vocabulary (`GET`, `HTTP/1.1`, `200`): no
    /// allocation.
    pub(crate) fn set_static(&mut self, name: &'static str, value: &'static str) {
        self.fields.insert(name, value);
    }

    /// What the model reads for this event: the raw record, except for Windows XML, EVTX
    /// and ECS JSON, which are rendered as the compact `EventID: ...` text the paper's data
    /// uses (their raw form is long and mostly markup).
    pub fn text(&self) -> Cow<'_, str> {
        match self.format {
            Format::WindowsXml | Format::Evtx | Format::Ecs if self.field("event_id").is_some() => {
                Cow::Owned(crate::parse::windows::render_compact(self))
            }
            _ => Cow::Borrowed(&self.raw),
        }
    }
}

/// The `'static` copy of `s` when it is one of `vocabulary`.
pub(crate) fn intern(s: &str, vocabulary: &[&'static str]) -> Option<&'static str> {
    vocabulary.iter().copied().find(|v| *v == s)
}

/// Empty and `-` values mean "absent" in nearly every log format.
pub(crate) fn is_placeholder(v: &str) -> bool {
    let v = v.trim();
    v.is_empty() || v == "-"
}

/// `Some(value)` unless it is a placeholder.
pub(crate) fn non_placeholder(v: &str) -> Option<String> {
    if is_placeholder(v) {
        None
    } else {
        Some(v.trim().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_timestamps_with_offsets() {
        let cases = [
            ("2025-03-15T02:14:01Z", Some("2025-03-15T02:14:01Z")),
            (
                "2025-03-15T02:14:01.250+01:00",
                Some("2025-03-15T01:14:01.250Z"),
            ),
            (
                "2025-03-15T02:14:01.123456+0000",
                Some("2025-03-15T02:14:01.123Z"),
            ),
            ("2025-03-15 02:14:01", Some("2025-03-15T02:14:01Z")),
            ("2025-03-15T23:30:00-05:00", Some("2025-03-16T04:30:00Z")),
            ("2024-02-29T00:00:00Z", Some("2024-02-29T00:00:00Z")),
            ("2025-02-29T00:00:00Z", None),
            ("2025-13-01T00:00:00Z", None),
            ("2025-03-15T02:14:01+25:00", None),
            ("2025-03-15T02:14:01 junk", None),
            ("not a date at all!!", None),
        ];
        for (input, want) in cases {
            let got = Timestamp::parse_iso(input).map(|t| t.to_string());
            assert_eq!(got.as_deref(), want, "input {input:?}");
        }
    }

    #[test]
    fn clf_and_bsd_timestamps() {
        let t = Timestamp::parse_clf("10/Oct/2000:13:55:36 -0700").map(|t| t.to_string());
        assert_eq!(t.as_deref(), Some("2000-10-10T20:55:36Z"));
        let t = Timestamp::parse_clf("16/Mar/2025:01:05:33").map(|t| t.to_string());
        assert_eq!(t.as_deref(), Some("2025-03-16T01:05:33Z"));
        let t = Timestamp::parse_clf("18-Mar-2025:09:00:01").map(|t| t.to_string());
        assert_eq!(t.as_deref(), Some("2025-03-18T09:00:01Z"));
        assert_eq!(Timestamp::parse_clf("32/Mar/2025:01:05:33"), None);
        let t = Timestamp::parse_bsd("Mar  5 01:05:33", 2025).map(|t| t.to_string());
        assert_eq!(t.as_deref(), Some("2025-03-05T01:05:33Z"));
        assert_eq!(Timestamp::parse_bsd("Foo 15 01:05:33", 2025), None);
    }

    #[test]
    fn civil_round_trip_before_epoch() {
        let t = Timestamp::from_civil(1969, 12, 31, 23, 59, 59, 0, 0);
        assert_eq!(t, Some(Timestamp(-1000)));
        assert_eq!(Timestamp(-1000).to_string(), "1969-12-31T23:59:59Z");
    }
}
