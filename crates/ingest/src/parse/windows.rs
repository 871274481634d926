//! Windows security events in three shapes: the paper's multi-line `EventID: 4625` /
//! `User: ...` text, event XML (`<Event xmlns=...>`, also what `.evtx` records render to),
//! and the compact text rendering the model reads for XML, EVTX and ECS events.

use std::fmt::Write as _;

use quick_xml::events::Event as XmlEvent;
use quick_xml::{Reader, XmlVersion};

use crate::event::{non_placeholder, Format, LogEvent, Timestamp};

/// Security event ids that mean an authentication failure.
const AUTH_FAILURE_IDS: &[&str] = &[
    "4625", "4771", "529", "530", "531", "532", "533", "534", "535", "536", "537", "539",
];

/// Short descriptions of the event ids an analyst sees most, for the compact rendering.
pub fn describe_event_id(id: &str) -> Option<&'static str> {
    Some(match id {
        "1102" => "Audit Log Cleared",
        "4624" => "Successful Logon",
        "4625" => "Failed Login",
        "4634" => "Logoff",
        "4648" => "Explicit Credential Logon",
        "4662" => "Directory Object Access",
        "4672" => "Special Privileges Assigned",
        "4688" => "Process Creation",
        "4697" => "Service Installed",
        "4698" => "Scheduled Task Created",
        "4719" => "Audit Policy Changed",
        "4720" => "User Account Created",
        "4722" => "User Account Enabled",
        "4724" => "Password Reset Attempt",
        "4726" => "User Account Deleted",
        "4728" | "4732" | "4756" => "Member Added to Security Group",
        "4740" => "User Account Locked Out",
        "4768" => "Kerberos TGT Requested",
        "4769" => "Kerberos Service Ticket Requested",
        "4771" => "Kerberos Pre-authentication Failed",
        "4776" => "Credential Validation",
        "5140" => "Network Share Accessed",
        "7045" => "New Service Installed",
        _ => return None,
    })
}

/// Sets `outcome=failure` for failed-logon event ids (4776 only with a non-zero status).
fn set_outcome(ev: &mut LogEvent) {
    let Some(id) = ev.field("event_id") else {
        return;
    };
    let failed = if id == "4776" {
        ev.field("Status").is_some_and(|s| s != "0x0" && s != "0")
    } else {
        AUTH_FAILURE_IDS.contains(&id)
    };
    if failed {
        ev.set("outcome", "failure");
    } else if id == "4624" {
        ev.set("outcome", "success");
    }
}

/// True when the line starts a `Key: value` Windows text record.
pub fn starts_windows_text(line: &str) -> bool {
    line.strip_prefix("EventID:")
        .or_else(|| line.strip_prefix("Event ID:"))
        .is_some_and(|rest| {
            rest.trim().bytes().all(|b| b.is_ascii_digit()) && !rest.trim().is_empty()
        })
}

/// True for a `Key: value` line that can continue a Windows text record.
pub fn is_key_value_line(line: &str) -> bool {
    let Some((key, _)) = line.split_once(':') else {
        return false;
    };
    !key.is_empty()
        && key.len() <= 40
        && key.starts_with(|c: char| c.is_ascii_alphabetic())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b' ' | b'_' | b'-' | b'.'))
}

/// Parses a multi-line `EventID: 4625` / `Timestamp: ...` / `Source IP: ...` record.
pub fn parse_windows_text(record: &str) -> Option<LogEvent> {
    let first = record.lines().next()?;
    if !starts_windows_text(first.trim_end()) {
        return None;
    }
    let mut ev = LogEvent::new(Format::WindowsText, record.to_owned());
    for line in record.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        let key = key.trim();
        match key.to_ascii_lowercase().as_str() {
            "eventid" | "event id" => ev.set("event_id", value),
            "timestamp" | "time" | "timecreated" | "date" => {
                ev.timestamp = Timestamp::parse_clf(value).or_else(|| Timestamp::parse_iso(value));
                ev.set("time", value);
            }
            "source ip" | "source network address" | "ipaddress" | "client address" => {
                ev.source = non_placeholder(value)
            }
            "user" | "account name" | "targetusername" | "username" => {
                ev.user = non_placeholder(value)
            }
            "computer" | "workstation" | "workstation name" | "host" => {
                ev.host = non_placeholder(value)
            }
            "description" => ev.set("description", value),
            "additional" => {
                // The paper writes "Additional: Workstation DC-01".
                if let Some(ws) = value.strip_prefix("Workstation ") {
                    ev.host = non_placeholder(ws);
                }
                ev.set("additional", value);
            }
            _ => ev.set(key.to_owned(), value),
        }
    }
    set_outcome(&mut ev);
    Some(ev)
}

/// Why a Windows XML record could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed Windows event XML: {0}")]
pub struct XmlError(pub String);

/// Parses one `<Event>...</Event>` document.
pub fn parse_windows_xml(xml: &str) -> Result<LogEvent, XmlError> {
    parse_event_xml(xml, Format::WindowsXml)
}

pub(crate) fn parse_event_xml(xml: &str, format: Format) -> Result<LogEvent, XmlError> {
    let mut reader = Reader::from_str(xml);
    let mut ev = LogEvent::new(format, xml.to_owned());
    let mut path: Vec<String> = Vec::new();
    let mut data_name: Option<String> = None;
    let mut text = String::new();
    let mut saw_event = false;
    let mut unnamed = 0;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| XmlError(format!("at byte {}: {e}", reader.buffer_position())))?;
        match event {
            XmlEvent::Start(ref e) | XmlEvent::Empty(ref e) => {
                let name = e.local_name().as_ref().to_owned();
                if name == "Event" {
                    saw_event = true;
                }
                for attr in e.attributes().flatten() {
                    let key = attr.key.local_name().as_ref().to_owned();
                    let value = attr
                        .normalized_value(XmlVersion::default())
                        .map_err(|e| XmlError(e.to_string()))?
                        .into_owned();
                    match (name.as_str(), key.as_str()) {
                        ("Provider", "Name") => ev.set("provider", value),
                        ("TimeCreated", "SystemTime") => {
                            ev.timestamp = Timestamp::parse_iso(&value);
                            ev.set("time", value);
                        }
                        ("Data", "Name") => data_name = Some(value),
                        ("Execution", "ProcessID") => ev.set("process_id", value),
                        ("Security", "UserID") => ev.set("user_sid", value),
                        _ => {}
                    }
                }
                if matches!(event, XmlEvent::Start(_)) {
                    path.push(name);
                } else {
                    // `<Data Name="x"/>` has no value and no end tag.
                    data_name = None;
                }
                text.clear();
            }
            XmlEvent::Text(t) => text.push_str(&t.xml10_content()),
            XmlEvent::CData(t) => text.push_str(&t.xml10_content()),
            XmlEvent::GeneralRef(r) => match r.resolve_char_ref() {
                Ok(Some(c)) => text.push(c),
                _ => text.push_str(match r.as_ref() {
                    "lt" => "<",
                    "gt" => ">",
                    "amp" => "&",
                    "quot" => "\"",
                    "apos" => "'",
                    _ => "?",
                }),
            },
            XmlEvent::End(_) => {
                let name = path.pop().unwrap_or_default();
                let value = text.trim();
                match name.as_str() {
                    "EventID" => ev.set("event_id", value),
                    "Computer" => ev.host = non_placeholder(value),
                    "Channel" => ev.set("channel", value),
                    "EventRecordID" => ev.set("record_id", value),
                    "Level" => ev.set("level", value),
                    "Keywords" => ev.set("keywords", value),
                    "Data" => {
                        let key = match data_name.take() {
                            Some(k) => k,
                            None => {
                                unnamed += 1;
                                format!("data{unnamed}")
                            }
                        };
                        ev.set(key, value);
                    }
                    _ => {}
                }
                text.clear();
            }
            XmlEvent::Eof => break,
            _ => {}
        }
    }
    if !saw_event {
        return Err(XmlError("no <Event> element".into()));
    }
    if !path.is_empty() {
        return Err(XmlError(format!("unclosed <{}>", path.join("><"))));
    }
    if ev.field("event_id").is_none() {
        return Err(XmlError("no <EventID>".into()));
    }
    fill_common(&mut ev);
    Ok(ev)
}

/// Maps the usual EventData names onto `source`, `user` and `host`.
pub(crate) fn fill_common(ev: &mut LogEvent) {
    if ev.source.is_none() {
        ev.source = [
            "IpAddress",
            "SourceAddress",
            "ClientAddress",
            "SourceNetworkAddress",
        ]
        .iter()
        .find_map(|k| ev.field(k).and_then(non_placeholder))
        .map(|s| s.trim_start_matches("::ffff:").to_owned());
    }
    if ev.user.is_none() {
        ev.user = [
            "TargetUserName",
            "SubjectUserName",
            "AccountName",
            "UserName",
        ]
        .iter()
        .find_map(|k| ev.field(k).and_then(non_placeholder));
    }
    if ev.host.is_none() {
        ev.host = ev.field("WorkstationName").and_then(non_placeholder);
    }
    set_outcome(ev);
}

/// The compact `EventID: ...` rendering of a structured Windows event (see
/// [`LogEvent::text`]): the paper's layout first, then the remaining event data.
pub fn render_compact(ev: &LogEvent) -> String {
    let mut out = String::new();
    let id = ev.field("event_id").unwrap_or("-");
    let _ = writeln!(out, "EventID: {id}");
    if let Some(t) = ev.timestamp {
        let _ = writeln!(out, "Timestamp: {t}");
    }
    if let Some(s) = &ev.source {
        let _ = writeln!(out, "Source IP: {s}");
    }
    if let Some(u) = &ev.user {
        let _ = writeln!(out, "User: {u}");
    }
    if let Some(d) = ev.field("description").or_else(|| describe_event_id(id)) {
        let _ = writeln!(out, "Description: {d}");
    }
    if let Some(h) = &ev.host {
        let _ = writeln!(out, "Computer: {h}");
    }
    if let Some(p) = ev.field("provider") {
        let _ = writeln!(out, "Provider: {p}");
    }
    const SHOWN: &[&str] = &[
        "event_id",
        "time",
        "provider",
        "description",
        "record_id",
        "channel",
        "level",
        "keywords",
        "process_id",
        "user_sid",
        "outcome",
        "message",
    ];
    let data: Vec<String> = ev
        .fields
        .sorted()
        .into_iter()
        .filter(|(k, _)| !SHOWN.contains(k))
        // Values already shown as Source IP / User / Computer add nothing.
        .filter(|(_, v)| {
            [&ev.source, &ev.user, &ev.host]
                .iter()
                .all(|s| s.as_deref() != Some(*v))
        })
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if !data.is_empty() {
        let _ = writeln!(out, "Data: {}", data.join("; "));
    }
    if let Some(m) = ev.field("message") {
        let first = m.lines().next().unwrap_or("");
        let _ = writeln!(out, "Message: {first}");
    }
    out.truncate(out.trim_end().len());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAPER: &str = "EventID: 4625\nTimestamp: 15-Mar-2025:02:14:01\nSource IP: 192.168.10.25\nUser: SYSTEM\nDescription: Failed Login\nAdditional: Workstation DESKTOP-A1B2";

    #[test]
    fn paper_text_record() {
        let ev = parse_windows_text(PAPER).expect("parsed");
        assert_eq!(ev.format, Format::WindowsText);
        assert_eq!(ev.field("event_id"), Some("4625"));
        assert_eq!(
            ev.timestamp.map(|t| t.to_string()).as_deref(),
            Some("2025-03-15T02:14:01Z")
        );
        assert_eq!(ev.source.as_deref(), Some("192.168.10.25"));
        assert_eq!(ev.user.as_deref(), Some("SYSTEM"));
        assert_eq!(ev.host.as_deref(), Some("DESKTOP-A1B2"));
        assert_eq!(ev.field("outcome"), Some("failure"));
        assert_eq!(ev.raw, PAPER);
    }

    #[test]
    fn text_record_edge_cases() {
        // Missing fields, ISO time with offset, a value containing colons, CRLF endings.
        let rec = "EventID: 4688\r\nTimestamp: 2025-03-18T09:00:01+02:00\r\nUser: -\r\nCommandLine: C:\\Windows\\cmd.exe /c whoami";
        let ev = parse_windows_text(rec).expect("parsed");
        assert_eq!(
            ev.timestamp.map(|t| t.to_string()).as_deref(),
            Some("2025-03-18T07:00:01Z")
        );
        assert_eq!(ev.user, None);
        assert_eq!(ev.source, None);
        assert_eq!(
            ev.field("CommandLine"),
            Some("C:\\Windows\\cmd.exe /c whoami")
        );
        assert_eq!(ev.field("outcome"), None);
        assert!(parse_windows_text("User: bob\nEventID: 1").is_none());
        assert!(parse_windows_text("EventID: abc").is_none());
        assert!(parse_windows_text("").is_none());
    }

    const XML: &str = r#"<Event xmlns="http://schemas.microsoft.com/win/2004/08/events/event"><System><Provider Name="Microsoft-Windows-Security-Auditing" Guid="{54849625-5478-4994-a5ba-3e3b0328c30d}"/><EventID>4625</EventID><Level>0</Level><TimeCreated SystemTime="2025-03-15T02:14:01.5123456Z"/><EventRecordID>98311</EventRecordID><Channel>Security</Channel><Computer>DC-01.corp.local</Computer></System><EventData><Data Name="TargetUserName">Administrator</Data><Data Name="WorkstationName">KALI</Data><Data Name="IpAddress">::ffff:203.0.113.42</Data><Data Name="LogonType">3</Data><Data Name="FailureReason">%%2313 &amp; &lt;more&gt;</Data></EventData></Event>"#;

    #[test]
    fn event_xml() {
        let ev = parse_windows_xml(XML).expect("parsed");
        assert_eq!(ev.format, Format::WindowsXml);
        assert_eq!(ev.field("event_id"), Some("4625"));
        assert_eq!(
            ev.timestamp.map(|t| t.to_string()).as_deref(),
            Some("2025-03-15T02:14:01.512Z")
        );
        assert_eq!(ev.source.as_deref(), Some("203.0.113.42"));
        assert_eq!(ev.user.as_deref(), Some("Administrator"));
        assert_eq!(ev.host.as_deref(), Some("DC-01.corp.local"));
        assert_eq!(
            ev.field("provider"),
            Some("Microsoft-Windows-Security-Auditing")
        );
        assert_eq!(ev.field("LogonType"), Some("3"));
        assert_eq!(ev.field("FailureReason"), Some("%%2313 & <more>"));
        assert_eq!(ev.field("outcome"), Some("failure"));
    }

    #[test]
    fn multi_line_event_xml_and_compact_text() {
        let pretty = XML.replace("><", ">\n  <");
        let ev = parse_windows_xml(&pretty).expect("parsed");
        assert_eq!(ev.user.as_deref(), Some("Administrator"));
        assert_eq!(
            ev.text(),
            "EventID: 4625\nTimestamp: 2025-03-15T02:14:01.512Z\nSource IP: 203.0.113.42\nUser: Administrator\nDescription: Failed Login\nComputer: DC-01.corp.local\nProvider: Microsoft-Windows-Security-Auditing\nData: FailureReason=%%2313 & <more>; IpAddress=::ffff:203.0.113.42; LogonType=3; WorkstationName=KALI"
        );
    }

    #[test]
    fn malformed_xml_is_an_error() {
        for bad in [
            "<Event><System><EventID>4625</EventID></System>",
            "<Event><System><EventID>4625</EventI></System></Event>",
            "<NotAnEvent/>",
            "<Event><System></System></Event>",
            "<Event attr=\"unterminated></Event>",
        ] {
            assert!(parse_windows_xml(bad).is_err(), "{bad}");
        }
    }
}
