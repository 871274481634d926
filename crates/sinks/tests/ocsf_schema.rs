//! OCSF output against the vendored OCSF 1.8.0 schema: the Detection Finding class
//! resolved through its parents (`finding`, `base_event`) and the profiles the event
//! applies, then every attribute checked for presence (required), name (no attribute
//! the class lacks), type (the dictionary's types and their patterns), enum values,
//! enum captions, and the objects' `at_least_one` / `just_one` constraints.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use opensoc_ingest::Timestamp;
use opensoc_sinks::{ocsf, Alert};
use regex::Regex;
use serde_json::{json, Map, Value};

fn load(path: &Path) -> Value {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Attribute definitions by name, each the JSON merge of dictionary entry, included
/// profile and class (or object) definitions, most specific last.
type Attrs = BTreeMap<String, Map<String, Value>>;

struct Schema {
    root: PathBuf,
    dictionary: Map<String, Value>,
    types: Map<String, Value>,
}

/// A resolved class or object: its attributes and constraints.
struct Definition {
    attrs: Attrs,
    constraints: Map<String, Value>,
}

impl Schema {
    fn load() -> Schema {
        let root = common::schemas_dir().join("ocsf");
        let dict = load(&root.join("dictionary.json"));
        Schema {
            dictionary: dict["attributes"].as_object().cloned().expect("attributes"),
            types: dict["types"]["attributes"]
                .as_object()
                .cloned()
                .expect("types"),
            root,
        }
    }

    /// Merges one definition file's attributes into `attrs`; includes bring in a
    /// profile's attributes tagged with the profile's name when that profile is applied.
    fn merge(&self, attrs: &mut Attrs, file: &Value, profiles: &[String]) {
        let Some(own) = file["attributes"].as_object() else {
            return;
        };
        for include in own
            .get("$include")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let path = include.as_str().expect("include path");
            let name = Path::new(path)
                .file_stem()
                .and_then(|s| s.to_str())
                .expect("profile name");
            // Profiles not applied contribute nothing; their files need not be vendored.
            if !profiles.iter().any(|p| p == name) {
                continue;
            }
            let profile = load(&self.root.join(path));
            for (k, def) in profile["attributes"]
                .as_object()
                .expect("profile attributes")
            {
                let entry = attrs.entry(k.clone()).or_default();
                for (field, value) in def.as_object().expect("attribute") {
                    entry.insert(field.clone(), value.clone());
                }
                entry
                    .entry("profile".to_string())
                    .or_insert_with(|| json!(name));
            }
        }
        for (k, def) in own {
            if k == "$include" {
                continue;
            }
            let entry = attrs.entry(k.clone()).or_default();
            for (field, value) in def.as_object().expect("attribute") {
                entry.insert(field.clone(), value.clone());
            }
        }
    }

    /// A class or object with its parents (`extends`), the root first.
    fn resolve(&self, dir: &str, name: &str, profiles: &[String]) -> Definition {
        let mut chain = Vec::new();
        let mut next = Some(name.to_string());
        while let Some(n) = next {
            let file = self.find(dir, &n);
            next = file["extends"].as_str().map(str::to_string);
            chain.push(file);
        }
        let mut attrs = Attrs::new();
        let mut constraints = Map::new();
        for file in chain.iter().rev() {
            self.merge(&mut attrs, file, profiles);
            if let Some(c) = file["constraints"].as_object() {
                constraints = c.clone();
            }
        }
        // The dictionary supplies type, enum and sibling; the class's own fields win.
        for (name, def) in attrs.iter_mut() {
            let base = self
                .dictionary
                .get(name)
                .and_then(Value::as_object)
                .unwrap_or_else(|| panic!("{name} is not in the dictionary"));
            for (field, value) in base {
                if field == "enum" {
                    // Class-level enums extend or replace the dictionary's.
                    let mut merged = value.as_object().cloned().unwrap_or_default();
                    if let Some(own) = def.get("enum").and_then(Value::as_object) {
                        merged.extend(own.clone());
                    }
                    def.insert("enum".into(), Value::Object(merged));
                } else {
                    def.entry(field.clone()).or_insert_with(|| value.clone());
                }
            }
        }
        Definition { attrs, constraints }
    }

    fn find(&self, dir: &str, name: &str) -> Value {
        let candidates = [
            self.root.join(dir).join(format!("{name}.json")),
            self.root
                .join(dir)
                .join("findings")
                .join(format!("{name}.json")),
        ];
        candidates
            .iter()
            .find(|p| p.is_file())
            .map(|p| load(p))
            .unwrap_or_else(|| panic!("{dir}/{name} is not vendored"))
    }

    fn category_uid(&self, category: &str) -> u64 {
        let cats = load(&self.root.join("categories.json"));
        cats["attributes"][category]["uid"]
            .as_u64()
            .expect("category uid")
    }
}

/// Checks `value` against a resolved definition; errors are pushed as `path: problem`.
fn check_object(
    schema: &Schema,
    def: &Definition,
    value: &Value,
    path: &str,
    profiles: &[String],
    errors: &mut Vec<String>,
) {
    let Some(obj) = value.as_object() else {
        errors.push(format!("{path}: expected an object"));
        return;
    };
    let gated = |attr: &Map<String, Value>| match attr.get("profile") {
        Some(Value::String(p)) => !profiles.contains(p),
        _ => false,
    };
    for (name, attr) in &def.attrs {
        if attr.get("requirement").and_then(Value::as_str) == Some("required")
            && !gated(attr)
            && !obj.contains_key(name)
        {
            errors.push(format!("{path}.{name}: required attribute missing"));
        }
    }
    for (key, v) in obj {
        let here = format!("{path}.{key}");
        let Some(attr) = def.attrs.get(key).filter(|a| !gated(a)) else {
            errors.push(format!("{here}: not an attribute of this class or object"));
            continue;
        };
        if attr.contains_key("@deprecated") {
            errors.push(format!("{here}: deprecated attribute"));
        }
        let is_array = attr
            .get("is_array")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let type_name = attr["type"].as_str().expect("attribute type");
        if is_array {
            match v.as_array() {
                Some(items) => {
                    for (i, item) in items.iter().enumerate() {
                        check_value(
                            schema,
                            type_name,
                            item,
                            &format!("{here}[{i}]"),
                            profiles,
                            errors,
                        );
                    }
                }
                None => errors.push(format!("{here}: expected an array")),
            }
        } else {
            check_value(schema, type_name, v, &here, profiles, errors);
        }
        // `base_event` enumerates only its own class and category IDs (0); the real ones
        // come from the class and categories.json, and `validate` computes them.
        let computed =
            path == "$" && matches!(key.as_str(), "category_uid" | "class_uid" | "type_uid");
        if let Some(e) = attr
            .get("enum")
            .and_then(Value::as_object)
            .filter(|_| !computed)
        {
            let key_text = match v {
                Value::Number(n) => n.to_string(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            match e.get(&key_text) {
                None => errors.push(format!("{here}: {key_text} is not one of the enum values")),
                Some(item) => {
                    // The sibling string is the enum caption, unless the value is Other.
                    if let Some(sibling) = attr.get("sibling").and_then(Value::as_str) {
                        if let Some(text) = obj.get(sibling) {
                            if key_text != "99" && text != &item["caption"] {
                                errors.push(format!(
                                    "{path}.{sibling}: {text} is not the caption {} of {key}",
                                    item["caption"]
                                ));
                            }
                        }
                    }
                }
            }
        }
    }
    for (kind, names) in &def.constraints {
        let names: Vec<&str> = names
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let present = names.iter().filter(|n| obj.contains_key(**n)).count();
        let ok = match kind.as_str() {
            "at_least_one" => present >= 1,
            "just_one" => present == 1,
            _ => true,
        };
        if !ok {
            errors.push(format!("{path}: constraint {kind} {names:?} not met"));
        }
    }
}

fn check_value(
    schema: &Schema,
    type_name: &str,
    v: &Value,
    path: &str,
    profiles: &[String],
    errors: &mut Vec<String>,
) {
    if type_name == "object" {
        if !v.is_object() {
            errors.push(format!("{path}: expected an object"));
        }
        return;
    }
    if !schema.types.contains_key(type_name) {
        let def = schema.resolve("objects", type_name, profiles);
        check_object(schema, &def, v, path, profiles, errors);
        return;
    }
    // Walk the derived type down to its base type, checking each level's constraints.
    let mut t = type_name.to_string();
    loop {
        let info = &schema.types[&t];
        if let Some(pattern) = info["regex"].as_str() {
            let re = Regex::new(pattern).unwrap_or_else(|e| panic!("{t} pattern: {e}"));
            if !v.as_str().is_some_and(|s| re.is_match(s)) {
                errors.push(format!("{path}: {v} does not match the {t} pattern"));
            }
        }
        if let (Some(max), Some(s)) = (info["max_len"].as_u64(), v.as_str()) {
            if s.len() as u64 > max {
                errors.push(format!("{path}: longer than {max} ({t})"));
            }
        }
        if let (Some(range), Some(n)) = (info["range"].as_array(), v.as_i64()) {
            let (lo, hi) = (
                range[0].as_i64().unwrap_or(i64::MIN),
                range[1].as_i64().unwrap_or(i64::MAX),
            );
            if n < lo || n > hi {
                errors.push(format!("{path}: {n} outside {lo}..={hi} ({t})"));
            }
        }
        match info["type"].as_str() {
            Some(base) => t = base.to_string(),
            None => break,
        }
    }
    let ok = match t.as_str() {
        "string_t" => v.is_string(),
        "integer_t" => v.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
        "long_t" => v.is_i64() || v.is_u64(),
        "float_t" => v.is_number(),
        "boolean_t" => v.is_boolean(),
        "json_t" => true,
        other => panic!("unknown base type {other}"),
    };
    if !ok {
        errors.push(format!("{path}: {v} is not a {type_name} ({t})"));
    }
}

/// Validates a Detection Finding event: the schema checks plus the class's identity
/// (class, category and type IDs computed as OCSF defines them).
fn validate(schema: &Schema, event: &Value) -> Vec<String> {
    let profiles: Vec<String> = event["metadata"]["profiles"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p.as_str().map(str::to_string))
        .collect();
    let class = schema.resolve("events", "detection_finding", &profiles);
    let mut errors = Vec::new();
    check_object(schema, &class, event, "$", &profiles, &mut errors);

    let file = schema.find("events", "detection_finding");
    let parent = schema.find("events", "finding");
    let category = parent["category"].as_str().expect("category");
    let category_uid = schema.category_uid(category);
    let class_uid = category_uid * 1000 + file["uid"].as_u64().expect("class uid");
    if event["category_uid"] != json!(category_uid) {
        errors.push(format!("$.category_uid: expected {category_uid}"));
    }
    if event["class_uid"] != json!(class_uid) {
        errors.push(format!("$.class_uid: expected {class_uid}"));
    }
    if event["class_name"] != file["caption"] {
        errors.push(format!("$.class_name: expected {}", file["caption"]));
    }
    let activity = event["activity_id"].as_u64().unwrap_or(0);
    if event["type_uid"] != json!(class_uid * 100 + activity) {
        errors.push("$.type_uid: not class_uid * 100 + activity_id".into());
    }
    if event["metadata"]["version"] != load(&schema.root.join("version.json"))["version"] {
        errors.push("$.metadata.version: not the vendored schema's version".into());
    }
    errors
}

fn findings() -> Vec<Value> {
    common::verdicts()
        .iter()
        .map(|v| ocsf::finding(&Alert::new(v, Timestamp(1_764_500_000_000))))
        .collect()
}

#[test]
fn every_finding_is_a_valid_detection_finding() {
    let schema = Schema::load();
    for event in findings() {
        let errors = validate(&schema, &event);
        assert!(errors.is_empty(), "{errors:#?}\n{event:#}");
    }
}

#[test]
fn the_resolved_class_is_the_real_one() {
    let schema = Schema::load();
    let class = schema.resolve("events", "detection_finding", &["security_control".into()]);
    let required: Vec<&str> = class
        .attrs
        .iter()
        .filter(|(_, a)| a.get("requirement").and_then(Value::as_str) == Some("required"))
        .map(|(k, _)| k.as_str())
        .collect();
    for name in [
        "activity_id",
        "category_uid",
        "class_uid",
        "finding_info",
        "metadata",
        "severity_id",
        "time",
        "type_uid",
    ] {
        assert!(
            required.contains(&name),
            "{name} not required: {required:?}"
        );
    }
    assert_eq!(class.attrs["attacks"]["profile"], "security_control");
    assert_eq!(
        class.attrs["severity_id"]["enum"]["5"]["caption"],
        "Critical"
    );
    // Without the profile, its attributes are not part of the class.
    let plain = schema.resolve("events", "detection_finding", &[]);
    assert!(!plain.attrs.contains_key("disposition_id"));
}

/// A named way of breaking a valid document.
type Breaker = Box<dyn Fn(&mut Value)>;

#[test]
fn the_validator_rejects_broken_findings() {
    let schema = Schema::load();
    let good = findings().swap_remove(1);
    let cases: Vec<(&str, Breaker)> = vec![
        (
            "$.finding_info.uid: required",
            Box::new(|e| {
                e["finding_info"].as_object_mut().unwrap().remove("uid");
            }),
        ),
        (
            "$.metadata: required",
            Box::new(|e| {
                e.as_object_mut().unwrap().remove("metadata");
            }),
        ),
        (
            "$.severity_id: 7 is not one of the enum values",
            Box::new(|e| e["severity_id"] = json!(7)),
        ),
        (
            "$.severity: \"Loud\" is not the caption",
            Box::new(|e| e["severity"] = json!("Loud")),
        ),
        (
            "$.time: \"now\" is not a timestamp_t",
            Box::new(|e| e["time"] = json!("now")),
        ),
        (
            "$.risk_score: \"75\" is not a integer_t",
            Box::new(|e| e["risk_score"] = json!("75")),
        ),
        (
            "$.colour: not an attribute",
            Box::new(|e| e["colour"] = json!("red")),
        ),
        (
            "$.attacks[0]: constraint at_least_one",
            Box::new(|e| e["attacks"] = json!([{ "version": "18.1" }])),
        ),
        (
            "$.evidences[0].src_endpoint.ip: \"999.1.1.1\" does not match the ip_t pattern",
            Box::new(|e| {
                e["evidences"][0]["src_endpoint"]["ip"] = json!("999.1.1.1");
            }),
        ),
        (
            "$.class_uid: expected 2004",
            Box::new(|e| e["class_uid"] = json!(2005)),
        ),
        (
            "$.disposition_id: not an attribute",
            Box::new(|e| {
                e["metadata"]["profiles"] = json!([]);
            }),
        ),
    ];
    assert!(validate(&schema, &good).is_empty());
    for (expected, break_it) in cases {
        let mut event = good.clone();
        break_it(&mut event);
        let errors = validate(&schema, &event);
        assert!(
            errors.iter().any(|e| e.starts_with(expected)),
            "expected {expected:?}, got {errors:#?}"
        );
    }
}
