//! Elastic Common Schema documents (ECS 9.x field names; checked against the vendored
//! `ecs_flat.yml` of ECS 9.4.0 by `tests/ecs_schema.rs`).

use serde_json::{json, Map, Value};

use crate::alert::{tactic_url, technique_url, Alert, PRODUCT, PRODUCT_VERSION};

/// The ECS release whose field reference the documents follow.
pub const ECS_VERSION: &str = "9.4.0";

/// The object holding OpenSOC's own fields (ECS reserves no such name; custom fields
/// go under a namespace of their own).
pub const NAMESPACE: &str = "opensoc";

/// One ECS document for an alert.
pub fn document(alert: &Alert<'_>) -> Value {
    let v = alert.verdict;
    let row = alert.level.row();

    let mut event = Map::new();
    event.insert("kind".into(), json!("alert"));
    event.insert("category".into(), json!(["intrusion_detection"]));
    event.insert("type".into(), json!(["info"]));
    event.insert("severity".into(), json!(row.ecs_severity));
    if let Some(r) = v.risk_score {
        event.insert("risk_score".into(), json!(f64::from(r)));
    }
    event.insert("created".into(), json!(alert.created.to_string()));
    event.insert("module".into(), json!(NAMESPACE));
    event.insert("dataset".into(), json!("opensoc.verdict"));
    event.insert("original".into(), json!(v.input));

    let mut doc = Map::new();
    doc.insert("@timestamp".into(), json!(alert.event_time().to_string()));
    doc.insert("ecs".into(), json!({ "version": ECS_VERSION }));
    doc.insert("message".into(), json!(alert.summary()));
    doc.insert("event".into(), Value::Object(event));

    let mut rule = Map::new();
    if let Some(name) = v.threat_type.as_deref().or(v.category.as_deref()) {
        rule.insert("name".into(), json!(name));
    }
    if let Some(c) = &v.category {
        rule.insert("category".into(), json!(c));
    }
    if let Some(e) = &v.evidence {
        rule.insert("description".into(), json!(e));
    }
    rule.insert("ruleset".into(), json!(NAMESPACE));
    doc.insert("rule".into(), Value::Object(rule));

    if let Some(threat) = threat(alert) {
        doc.insert("threat".into(), threat);
    }

    let observed = &alert.observed;
    if let Some(source) = &observed.source {
        let mut src = Map::new();
        src.insert("address".into(), json!(source));
        match observed.source_ip() {
            Some(ip) => src.insert("ip".into(), json!(ip.to_string())),
            None => src.insert("domain".into(), json!(source)),
        };
        doc.insert("source".into(), Value::Object(src));
    }
    if let Some(user) = &observed.user {
        doc.insert("user".into(), json!({ "name": user }));
    }
    if let Some(host) = &observed.host {
        doc.insert("host".into(), json!({ "name": host }));
    }
    doc.insert(
        "observer".into(),
        json!({ "product": PRODUCT, "vendor": PRODUCT, "version": PRODUCT_VERSION, "type": "ids" }),
    );
    doc.insert(NAMESPACE.into(), own_fields(alert));
    Value::Object(doc)
}

/// `threat.*`: ECS puts a sub-technique's parent in `threat.technique` and the
/// sub-technique in `threat.technique.subtechnique`; the fields are arrays.
fn threat(alert: &Alert<'_>) -> Option<Value> {
    if alert.technique.is_none() && alert.tactic.is_none() {
        return None;
    }
    let mut threat = Map::new();
    threat.insert("framework".into(), json!("MITRE ATT&CK"));
    if let Some(t) = alert.technique {
        let top = alert.parent.unwrap_or(t);
        let mut technique = Map::new();
        technique.insert("id".into(), json!([top.id.to_string()]));
        technique.insert("name".into(), json!([top.name]));
        technique.insert("reference".into(), json!([technique_url(top.id)]));
        if alert.parent.is_some() {
            technique.insert(
                "subtechnique".into(),
                json!({
                    "id": [t.id.to_string()],
                    "name": [t.name],
                    "reference": [technique_url(t.id)],
                }),
            );
        }
        threat.insert("technique".into(), Value::Object(technique));
    }
    if let Some(tactic) = alert.tactic {
        threat.insert(
            "tactic".into(),
            json!({
                "id": [tactic.id],
                "name": [tactic.name],
                "reference": [tactic_url(tactic)],
            }),
        );
    }
    Some(Value::Object(threat))
}

/// The verdict's own fields, under [`NAMESPACE`].
fn own_fields(alert: &Alert<'_>) -> Value {
    let v = alert.verdict;
    let mut own = Map::new();
    own.insert("id".into(), json!(v.id));
    own.insert("level".into(), json!(alert.level.sigma()));
    let optional = [
        ("threat_type", &v.threat_type),
        ("category", &v.category),
        ("technique_id", &v.technique_id),
        ("technique_name", &v.technique_name),
        ("tactic", &v.tactic),
        ("evidence", &v.evidence),
        ("impact", &v.impact),
        ("recommendation", &v.recommendation),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            own.insert(key.into(), json!(value));
        }
    }
    if let Some(s) = v.severity {
        own.insert("severity".into(), json!(s.as_str()));
    }
    if let Some(r) = v.risk_score {
        own.insert("risk_score".into(), json!(r));
    }
    if let Some(c) = v.confidence {
        own.insert("confidence".into(), json!(c));
    }
    own.insert("needs_review".into(), json!(v.needs_review));
    if !v.warnings.is_empty() {
        own.insert("warnings".into(), json!(v.warnings));
    }
    Value::Object(own)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::tests::brute_force;
    use opensoc_ingest::Timestamp;

    #[test]
    fn sub_technique_goes_under_its_parent() {
        let v = brute_force();
        let doc = document(&Alert::new(&v, Timestamp(1_700_000_000_000)));
        assert_eq!(doc["event"]["kind"], "alert");
        assert_eq!(doc["event"]["severity"], 73);
        assert_eq!(doc["threat"]["technique"]["id"][0], "T1110");
        assert_eq!(doc["threat"]["technique"]["name"][0], "Brute Force");
        assert_eq!(
            doc["threat"]["technique"]["subtechnique"]["id"][0],
            "T1110.001"
        );
        assert_eq!(doc["threat"]["tactic"]["id"][0], "TA0006");
        assert_eq!(doc["source"]["ip"], "185.220.101.4");
        assert_eq!(doc["user"]["name"], "root");
        assert_eq!(doc["host"]["name"], "web01");
        assert_eq!(doc["event"]["original"], v.input.as_str());
        assert_eq!(doc["opensoc"]["severity"], "HIGH");
        assert_eq!(doc["event"]["created"], "2023-11-14T22:13:20Z");
    }

    #[test]
    fn a_bare_verdict_has_no_threat_object() {
        let v = opensoc_verdict::Verdict::from_answer(
            "x:1".into(),
            "hello".into(),
            String::new(),
            Default::default(),
        );
        let doc = document(&Alert::new(&v, Timestamp(0)));
        assert!(doc.get("threat").is_none());
        assert!(doc.get("source").is_none());
        assert_eq!(doc["event"]["severity"], 0);
    }
}
