//! JSON lines: Suricata EVE, Zeek, AWS CloudTrail (single records and `{"Records": [...]}`
//! files), Winlogbeat/ECS, and any other object as generic JSON.

use serde_json::{Map, Value};

use crate::event::{non_placeholder, Format, LogEvent, Timestamp};

/// Why a JSON record could not be read.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// Not valid JSON.
    #[error("malformed JSON: {0}")]
    Syntax(#[from] serde_json::Error),
    /// Valid JSON, but not an object (a bare number, string or array of scalars).
    #[error("JSON value is not an object")]
    NotObject,
}

/// Most fields copied from one object, so a huge record cannot blow up the field map.
const MAX_FIELDS: usize = 128;

/// Parses one JSON line into events: one per object, several for a CloudTrail
/// `{"Records": [...]}` document.
pub fn parse_json(line: &str) -> Result<Vec<LogEvent>, JsonError> {
    let value: Value = serde_json::from_str(line)?;
    let Value::Object(obj) = value else {
        return Err(JsonError::NotObject);
    };
    if let Some(Value::Array(records)) = obj.get("Records") {
        let mut out = Vec::with_capacity(records.len());
        for r in records {
            if let Value::Object(o) = r {
                let raw = serde_json::to_string(r).unwrap_or_default();
                out.push(from_object(o, raw));
            }
        }
        return Ok(out);
    }
    Ok(vec![from_object(&obj, line.to_owned())])
}

fn from_object(obj: &Map<String, Value>, raw: String) -> LogEvent {
    let format = classify(obj);
    let mut ev = LogEvent::new(format, raw);
    flatten(obj, "", &mut ev, 0);
    match format {
        Format::SuricataEve => suricata(&mut ev),
        Format::ZeekJson => zeek(&mut ev, obj),
        Format::CloudTrail => cloudtrail(&mut ev),
        Format::Ecs => ecs(&mut ev),
        _ => generic(&mut ev),
    }
    ev
}

fn classify(obj: &Map<String, Value>) -> Format {
    if obj.contains_key("eventTime")
        && (obj.contains_key("eventSource") || obj.contains_key("eventName"))
    {
        Format::CloudTrail
    } else if obj.contains_key("event_type")
        && (obj.contains_key("src_ip") || obj.contains_key("flow_id"))
    {
        Format::SuricataEve
    } else if obj.contains_key("winlog")
        || (obj.contains_key("@timestamp")
            && (obj.contains_key("ecs") || obj.contains_key("event")))
    {
        Format::Ecs
    } else if obj.contains_key("ts")
        && (obj.contains_key("uid") || obj.contains_key("id.orig_h") || obj.contains_key("id"))
    {
        Format::ZeekJson
    } else {
        Format::Json
    }
}

/// Copies scalars into `fields` under dotted names (`alert.signature`).
fn flatten(obj: &Map<String, Value>, prefix: &str, ev: &mut LogEvent, depth: usize) {
    for (k, v) in obj {
        if ev.fields.len() >= MAX_FIELDS {
            return;
        }
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Value::Object(o) if depth < 4 => flatten(o, &key, ev, depth + 1),
            Value::Object(_) | Value::Array(_) => {
                let s = v.to_string();
                if s.len() <= 512 {
                    ev.set(key, s);
                }
            }
            Value::String(s) => ev.set(key, s.as_str()),
            Value::Number(n) => ev.set(key, n.to_string()),
            Value::Bool(b) => ev.set(key, b.to_string()),
            Value::Null => {}
        }
    }
}

fn take(ev: &LogEvent, keys: &[&str]) -> Option<String> {
    keys.iter()
        .find_map(|k| ev.field(k).and_then(non_placeholder))
}

fn alias(ev: &mut LogEvent, to: &'static str, from: &[&str]) {
    if ev.field(to).is_none() {
        if let Some(v) = take(ev, from) {
            ev.set(to, v);
        }
    }
}

fn suricata(ev: &mut LogEvent) {
    ev.timestamp = ev.field("timestamp").and_then(Timestamp::parse_iso);
    ev.source = take(ev, &["src_ip"]);
    ev.host = take(ev, &["host"]);
    alias(ev, "path", &["http.url"]);
    alias(ev, "status", &["http.status"]);
    alias(ev, "method", &["http.http_method"]);
    alias(ev, "user_agent", &["http.http_user_agent"]);
    alias(ev, "signature", &["alert.signature"]);
}

fn zeek(ev: &mut LogEvent, obj: &Map<String, Value>) {
    // Zeek writes `ts` as epoch seconds (float) by default, ISO 8601 with JSON::TS_ISO8601.
    ev.timestamp = match obj.get("ts") {
        Some(Value::Number(n)) => n
            .as_f64()
            .filter(|f| f.is_finite() && f.abs() < 1e12)
            .map(|f| Timestamp((f * 1000.0) as i64)),
        Some(Value::String(s)) => Timestamp::parse_iso(s),
        _ => None,
    };
    ev.source = take(ev, &["id.orig_h"]);
    ev.user = take(ev, &["user", "username"]);
    alias(ev, "path", &["uri"]);
    alias(ev, "status", &["status_code"]);
    if ev.field("auth_success") == Some("false") {
        ev.set("outcome", "failure");
    } else if ev.field("auth_success") == Some("true") {
        ev.set("outcome", "success");
    }
}

fn cloudtrail(ev: &mut LogEvent) {
    ev.timestamp = ev.field("eventTime").and_then(Timestamp::parse_iso);
    ev.source = take(ev, &["sourceIPAddress"]);
    ev.user = take(
        ev,
        &[
            "userIdentity.userName",
            "userIdentity.sessionContext.sessionIssuer.userName",
            "userIdentity.arn",
            "userIdentity.principalId",
        ],
    );
    ev.host = take(ev, &["awsRegion"]);
    alias(ev, "action", &["eventName"]);
    let failed_login = ev.field("responseElements.ConsoleLogin") == Some("Failure");
    let denied = ev
        .field("errorCode")
        .is_some_and(|c| c.contains("AccessDenied") || c.contains("Unauthorized"));
    if failed_login || denied {
        ev.set("outcome", "failure");
    }
}

fn ecs(ev: &mut LogEvent) {
    ev.timestamp = ev.field("@timestamp").and_then(Timestamp::parse_iso);
    alias(ev, "event_id", &["winlog.event_id", "event.code"]);
    alias(ev, "provider", &["winlog.provider_name", "event.provider"]);
    alias(ev, "channel", &["winlog.channel"]);
    alias(ev, "message", &["message"]);
    ev.source = take(
        ev,
        &[
            "source.ip",
            "source.address",
            "winlog.event_data.IpAddress",
            "client.ip",
        ],
    )
    .map(|s| s.trim_start_matches("::ffff:").to_owned());
    ev.user = take(
        ev,
        &[
            "user.name",
            "winlog.event_data.TargetUserName",
            "winlog.event_data.SubjectUserName",
        ],
    );
    ev.host = take(
        ev,
        &[
            "winlog.computer_name",
            "host.name",
            "host.hostname",
            "agent.hostname",
        ],
    );
    // Re-expose event data under its Windows names so the compact rendering shows them
    // like XML/EVTX events.
    let data: Vec<(String, String)> = ev
        .fields
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("winlog.event_data.")
                .map(|n| (n.to_owned(), v.to_owned()))
        })
        .collect();
    ev.fields.retain(|k, _| {
        !k.starts_with("winlog.")
            && !k.starts_with("agent.")
            && !k.starts_with("ecs.")
            && k != "@timestamp"
    });
    for (k, v) in data {
        ev.set(k, v);
    }
    match ev.field("event.outcome") {
        Some("failure") => ev.set("outcome", "failure"),
        Some("success") => ev.set("outcome", "success"),
        _ => {}
    }
    if ev.field("outcome").is_none() {
        crate::parse::windows::fill_common(ev);
    }
}

fn generic(ev: &mut LogEvent) {
    ev.timestamp = take(ev, &["timestamp", "@timestamp", "time", "ts", "date"])
        .and_then(|t| Timestamp::parse_iso(&t));
    ev.source = take(
        ev,
        &[
            "src_ip",
            "source_ip",
            "client_ip",
            "remote_addr",
            "ip",
            "source.ip",
        ],
    );
    ev.user = take(ev, &["user", "username", "user.name"]);
    ev.host = take(ev, &["host", "hostname", "host.name"]);
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Case {
        line: &'static str,
        format: Format,
        time: Option<&'static str>,
        source: Option<&'static str>,
        user: Option<&'static str>,
        fields: &'static [(&'static str, &'static str)],
    }

    #[test]
    fn json_lines() {
        let cases = [
            Case {
                line: r#"{"timestamp":"2025-03-15T02:14:01.123456+0000","flow_id":1,"event_type":"alert","src_ip":"45.33.32.156","src_port":51000,"dest_ip":"10.0.0.5","dest_port":22,"proto":"TCP","alert":{"signature":"ET SCAN Potential SSH Scan","severity":2}}"#,
                format: Format::SuricataEve,
                time: Some("2025-03-15T02:14:01.123Z"),
                source: Some("45.33.32.156"),
                user: None,
                fields: &[
                    ("signature", "ET SCAN Potential SSH Scan"),
                    ("alert.severity", "2"),
                    ("dest_port", "22"),
                ],
            },
            Case {
                line: r#"{"timestamp":"2025-03-15T02:14:01+01:00","event_type":"http","src_ip":"2001:db8::5","http":{"hostname":"x","url":"/wp-login.php","status":404,"http_method":"GET"}}"#,
                format: Format::SuricataEve,
                time: Some("2025-03-15T01:14:01Z"),
                source: Some("2001:db8::5"),
                user: None,
                fields: &[
                    ("path", "/wp-login.php"),
                    ("status", "404"),
                    ("method", "GET"),
                ],
            },
            Case {
                line: r#"{"ts":1741997641.5,"uid":"CAbc","id.orig_h":"192.168.1.55","id.orig_p":40000,"id.resp_h":"10.0.0.1","id.resp_p":22,"auth_success":false,"auth_attempts":3}"#,
                format: Format::ZeekJson,
                time: Some("2025-03-15T00:14:01.500Z"),
                source: Some("192.168.1.55"),
                user: None,
                fields: &[("outcome", "failure"), ("auth_attempts", "3")],
            },
            Case {
                line: r#"{"eventVersion":"1.08","userIdentity":{"type":"IAMUser","userName":"alice","arn":"arn:aws:iam::1:user/alice"},"eventTime":"2025-03-15T02:14:01Z","eventSource":"signin.amazonaws.com","eventName":"ConsoleLogin","awsRegion":"us-east-1","sourceIPAddress":"203.0.113.42","responseElements":{"ConsoleLogin":"Failure"}}"#,
                format: Format::CloudTrail,
                time: Some("2025-03-15T02:14:01Z"),
                source: Some("203.0.113.42"),
                user: Some("alice"),
                fields: &[("action", "ConsoleLogin"), ("outcome", "failure")],
            },
            Case {
                line: r#"{"@timestamp":"2025-03-15T02:14:01.000Z","event":{"code":"4625","outcome":"failure"},"winlog":{"event_id":4625,"computer_name":"DC-01","provider_name":"Microsoft-Windows-Security-Auditing","event_data":{"TargetUserName":"Administrator","IpAddress":"198.51.100.7","LogonType":"3"}},"ecs":{"version":"8.0"}}"#,
                format: Format::Ecs,
                time: Some("2025-03-15T02:14:01Z"),
                source: Some("198.51.100.7"),
                user: Some("Administrator"),
                fields: &[
                    ("event_id", "4625"),
                    ("outcome", "failure"),
                    ("LogonType", "3"),
                ],
            },
            Case {
                line: r#"{"level":"warn","msg":"login failed","user":"bob","ip":"10.1.1.1","time":"2025-03-15T02:14:01Z","nested":{"a":[1,2]}}"#,
                format: Format::Json,
                time: Some("2025-03-15T02:14:01Z"),
                source: Some("10.1.1.1"),
                user: Some("bob"),
                fields: &[("msg", "login failed"), ("nested.a", "[1,2]")],
            },
        ];
        for c in cases {
            let evs = parse_json(c.line).unwrap_or_else(|e| panic!("{e}: {}", c.line));
            assert_eq!(evs.len(), 1);
            let ev = &evs[0];
            assert_eq!(ev.format, c.format, "{}", c.line);
            assert_eq!(
                ev.timestamp.map(|t| t.to_string()).as_deref(),
                c.time,
                "{}",
                c.line
            );
            assert_eq!(ev.source.as_deref(), c.source, "{}", c.line);
            assert_eq!(ev.user.as_deref(), c.user, "{}", c.line);
            for (k, v) in c.fields {
                assert_eq!(ev.field(k), Some(*v), "field {k} of {}", c.line);
            }
        }
    }

    #[test]
    fn cloudtrail_records_file() {
        let doc = r#"{"Records":[{"eventTime":"2025-03-15T02:14:01Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","sourceIPAddress":"1.2.3.4","userIdentity":{"arn":"arn:aws:iam::1:role/x"}},{"eventTime":"2025-03-15T02:14:02Z","eventSource":"iam.amazonaws.com","eventName":"CreateUser","sourceIPAddress":"1.2.3.5","errorCode":"AccessDenied"}]}"#;
        let evs = parse_json(doc).expect("parsed");
        assert_eq!(evs.len(), 2);
        assert_eq!(evs[0].user.as_deref(), Some("arn:aws:iam::1:role/x"));
        assert_eq!(evs[1].field("outcome"), Some("failure"));
        assert!(evs.iter().all(|e| e.format == Format::CloudTrail));
    }

    #[test]
    fn malformed_json() {
        assert!(matches!(
            parse_json(r#"{"a": 1"#),
            Err(JsonError::Syntax(_))
        ));
        assert!(matches!(
            parse_json(r#"{"a": "\x"}"#),
            Err(JsonError::Syntax(_))
        ));
        assert!(matches!(parse_json("[1,2]"), Err(JsonError::NotObject)));
        // Absurd epoch values are not a time, but the record is still kept.
        let evs = parse_json(r#"{"ts": 1e300, "uid": "x"}"#).expect("valid JSON");
        assert_eq!(evs[0].timestamp, None);
    }
}
