//! OCSF Detection Finding events (class 2004 of OCSF 1.8.0; checked against the vendored
//! schema by `tests/ocsf_schema.rs`).
//!
//! The Security Control profile is applied, as the class's description asks of security
//! products: its `attacks` are duplicated into `finding_info.attacks`.

use serde_json::{json, Map, Value};

use crate::alert::{tactic_url, technique_url, Alert, PRODUCT, PRODUCT_VERSION};

/// The OCSF release the events follow.
pub const OCSF_VERSION: &str = "1.8.0";
/// Findings.
pub const CATEGORY_UID: u32 = 2;
/// Detection Finding: `category_uid * 1000 + 4`.
pub const CLASS_UID: u32 = 2004;
/// Create: each verdict is a new finding.
const ACTIVITY_ID: u32 = 1;
/// Security Control profile: observed, neither allowed nor denied; disposition Detected.
const ACTION_OBSERVED: u32 = 3;
const DISPOSITION_DETECTED: u32 = 15;
/// Finding status New.
const STATUS_NEW: u32 = 1;

/// One Detection Finding for an alert.
pub fn finding(alert: &Alert<'_>) -> Value {
    let v = alert.verdict;
    let row = alert.level.row();
    let attacks = attacks(alert);

    let mut info = Map::new();
    info.insert("uid".into(), json!(v.id));
    info.insert(
        "title".into(),
        json!(v
            .threat_type
            .as_deref()
            .or(v.category.as_deref())
            .unwrap_or("Unclassified entry")),
    );
    if let Some(e) = &v.evidence {
        info.insert("desc".into(), json!(e));
    }
    if let Some(c) = &v.category {
        info.insert("types".into(), json!([c]));
    }
    if let Some(t) = alert.observed.time {
        info.insert("first_seen_time".into(), json!(t.0));
    }
    info.insert("created_time".into(), json!(alert.created.0));
    if !attacks.is_empty() {
        info.insert("attacks".into(), Value::Array(attacks.clone()));
    }

    let mut event = Map::new();
    let mut put = |k: &str, value: Value| {
        event.insert(k.to_string(), value);
    };
    put("category_uid", json!(CATEGORY_UID));
    put("category_name", json!("Findings"));
    put("class_uid", json!(CLASS_UID));
    put("class_name", json!("Detection Finding"));
    put("activity_id", json!(ACTIVITY_ID));
    put("activity_name", json!("Create"));
    put(
        "type_uid",
        json!(u64::from(CLASS_UID) * 100 + u64::from(ACTIVITY_ID)),
    );
    put("type_name", json!("Detection Finding: Create"));
    put("time", json!(alert.created.0));
    if let Some(t) = alert.observed.time {
        put("start_time", json!(t.0));
    }
    put("severity_id", json!(row.ocsf_severity_id));
    put("severity", json!(row.ocsf_severity));
    put("status_id", json!(STATUS_NEW));
    put("status", json!("New"));
    put("message", json!(alert.summary()));
    put("is_alert", json!(true));
    put("action_id", json!(ACTION_OBSERVED));
    put("action", json!("Observed"));
    put("disposition_id", json!(DISPOSITION_DETECTED));
    put("disposition", json!("Detected"));
    if let Some(r) = v.risk_score {
        put("risk_score", json!(r));
        put("risk_level_id", json!(row.ocsf_risk_level_id));
        put("risk_level", json!(row.ocsf_risk_level));
    }
    if let Some(c) = v.confidence {
        put(
            "confidence_score",
            json!((c.clamp(0.0, 1.0) * 100.0).round() as u32),
        );
    }
    if let Some(i) = &v.impact {
        put("impact", json!(i));
    }
    if let Some(r) = &v.recommendation {
        put("remediation", json!({ "desc": r }));
    }
    put("finding_info", Value::Object(info));
    if !attacks.is_empty() {
        put("attacks", Value::Array(attacks));
    }
    put("evidences", json!([evidence(alert)]));
    if let Some(host) = &alert.observed.host {
        // Type 0 (Unknown): the log names the host, not what kind of device it is.
        put(
            "device",
            json!({ "hostname": host, "type_id": 0, "type": "Unknown" }),
        );
    }
    put("raw_data", json!(v.input));
    put(
        "metadata",
        json!({
            "version": OCSF_VERSION,
            "profiles": ["security_control"],
            "product": { "name": PRODUCT, "vendor_name": PRODUCT, "version": PRODUCT_VERSION },
            "log_name": "opensoc.verdict",
        }),
    );
    put("unmapped", json!({ "opensoc": own_fields(alert) }));
    Value::Object(event)
}

/// `attacks[]`: one entry with the technique (or the parent and the sub-technique)
/// and the tactic, ATT&CK's version, and page links.
fn attacks(alert: &Alert<'_>) -> Vec<Value> {
    let mut attack = Map::new();
    let entity =
        |uid: String, name: &str, url: String| json!({ "uid": uid, "name": name, "src_url": url });
    if let Some(t) = alert.technique {
        match alert.parent {
            Some(parent) => {
                attack.insert(
                    "technique".into(),
                    entity(parent.id.to_string(), parent.name, technique_url(parent.id)),
                );
                attack.insert(
                    "sub_technique".into(),
                    entity(t.id.to_string(), t.name, technique_url(t.id)),
                );
            }
            None => {
                attack.insert(
                    "technique".into(),
                    entity(t.id.to_string(), t.name, technique_url(t.id)),
                );
            }
        }
    }
    if let Some(tactic) = alert.tactic {
        attack.insert(
            "tactic".into(),
            entity(tactic.id.to_string(), tactic.name, tactic_url(tactic)),
        );
    }
    if attack.is_empty() {
        return Vec::new();
    }
    attack.insert(
        "version".into(),
        json!(opensoc_attack::Catalog::enterprise().version()),
    );
    vec![Value::Object(attack)]
}

/// The evidence artifact: the log text as data, plus the source and user it names.
fn evidence(alert: &Alert<'_>) -> Value {
    let mut e = Map::new();
    e.insert("data".into(), json!({ "log": alert.verdict.input }));
    let observed = &alert.observed;
    if let Some(source) = &observed.source {
        let endpoint = match observed.source_ip() {
            Some(ip) => json!({ "ip": ip.to_string() }),
            None => json!({ "hostname": source }),
        };
        e.insert("src_endpoint".into(), endpoint);
    }
    if let Some(user) = &observed.user {
        e.insert("user".into(), json!({ "name": user }));
    }
    Value::Object(e)
}

/// Verdict fields OCSF has no attribute for.
fn own_fields(alert: &Alert<'_>) -> Value {
    let v = alert.verdict;
    json!({
        "id": v.id,
        "level": alert.level.sigma(),
        "severity": v.severity.map(|s| s.as_str()),
        "threat_type": v.threat_type,
        "category": v.category,
        "technique_id": v.technique_id,
        "tactic": v.tactic,
        "confidence": v.confidence,
        "needs_review": v.needs_review,
        "warnings": v.warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::tests::brute_force;
    use opensoc_ingest::Timestamp;

    #[test]
    fn maps_the_brute_force_incident() {
        let v = brute_force();
        let f = finding(&Alert::new(&v, Timestamp(1_700_000_000_000)));
        assert_eq!(f["class_uid"], 2004);
        assert_eq!(f["type_uid"], 200_401);
        assert_eq!(f["severity_id"], 4);
        assert_eq!(f["risk_score"], 75);
        assert_eq!(f["confidence_score"], 82);
        assert_eq!(f["time"], 1_700_000_000_000_i64);
        assert_eq!(f["attacks"][0]["technique"]["uid"], "T1110");
        assert_eq!(f["attacks"][0]["sub_technique"]["uid"], "T1110.001");
        assert_eq!(f["attacks"][0]["tactic"]["uid"], "TA0006");
        assert_eq!(f["finding_info"]["attacks"], f["attacks"]);
        assert_eq!(f["evidences"][0]["src_endpoint"]["ip"], "185.220.101.4");
        assert_eq!(f["raw_data"], v.input.as_str());
        assert_eq!(
            f["remediation"]["desc"],
            "1) Block the address 2) Disable root login"
        );
    }
}
