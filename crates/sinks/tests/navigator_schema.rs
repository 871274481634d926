//! Navigator layers against the vendored layer format definition (ATT&CK Navigator
//! v5.1.0, layer format 4.5). The project publishes the format as property tables in
//! Markdown, not as a JSON Schema file, so the test reads those tables: each object's
//! properties, their types and whether they are required, plus the value rules the
//! descriptions state ("Valid values are: ...", "Either ... or ...", "Must be ...").
//! The spec's own examples must pass, broken layers must not.

mod common;

use std::collections::BTreeMap;
use std::fs;

use opensoc_attack::{Catalog, TechniqueId};
use opensoc_sinks::navigator::LayerBuilder;
use serde_json::{json, Value};

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    String,
    Number,
    Boolean,
    Object(String),
    /// An array whose items may be any of these kinds.
    Array(Vec<Kind>),
}

#[derive(Debug)]
struct Property {
    kind: Kind,
    required: bool,
    description: String,
}

type Spec = BTreeMap<String, BTreeMap<String, Property>>;

fn spec_text() -> String {
    fs::read_to_string(common::schemas_dir().join("navigator/layerformat-v4.5.md"))
        .expect("layer format")
}

/// `Version object` -> Object("Version"); `Array of Link objects and Divider objects`
/// -> Array([Link, Divider]).
fn parse_kind(text: &str) -> Kind {
    let t = text.trim();
    let lower = t.to_ascii_lowercase();
    if let Some(rest) = lower.strip_prefix("array of ") {
        let original = &t[t.len() - rest.len()..];
        return Kind::Array(original.split(" and ").map(parse_kind).collect());
    }
    match lower.as_str() {
        "string" => Kind::String,
        "number" => Kind::Number,
        "boolean" => Kind::Boolean,
        _ => {
            let name = t
                .trim_end_matches('s')
                .trim_end_matches(" object")
                .trim_end_matches(" Object")
                .trim();
            Kind::Object(name.to_string())
        }
    }
}

fn load_spec() -> Spec {
    let mut spec = Spec::new();
    let mut section: Option<String> = None;
    for line in spec_text().lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            let name = heading
                .trim()
                .trim_end_matches(" Object properties")
                .trim_end_matches(" Object Properties")
                .trim_end_matches(" properties");
            section = match name {
                "Property Table" => Some("Layer".into()),
                "Example" => None,
                other => Some(other.to_string()),
            };
            continue;
        }
        let Some(sec) = &section else { continue };
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // `| name | type | required | default | description |` rows; skip the header
        // and the alignment row.
        if cells.len() < 6 || cells[1] == "Name" || cells[1].starts_with(':') {
            continue;
        }
        spec.entry(sec.clone()).or_default().insert(
            cells[1].to_string(),
            Property {
                kind: parse_kind(cells[2]),
                required: cells[3].eq_ignore_ascii_case("yes"),
                description: cells[5].to_string(),
            },
        );
    }
    spec
}

/// Quoted strings after `marker` in a description, up to the end of its sentence.
fn quoted_after(description: &str, marker: &str) -> Option<Vec<String>> {
    let start = description.find(marker)? + marker.len();
    let rest = &description[start..];
    let sentence = rest.split(". ").next().unwrap_or(rest);
    let values: Vec<String> = sentence
        .split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    (!values.is_empty()).then_some(values)
}

fn version_at_least(v: &str, min: &str) -> bool {
    let parts = |s: &str| {
        s.split('.')
            .map(|p| p.parse::<u32>().unwrap_or(0))
            .collect::<Vec<_>>()
    };
    parts(v) >= parts(min)
}

fn check(spec: &Spec, kind: &Kind, v: &Value, path: &str, errors: &mut Vec<String>) {
    match kind {
        Kind::String if !v.is_string() => errors.push(format!("{path}: expected a string")),
        Kind::Number if !v.is_number() => errors.push(format!("{path}: expected a number")),
        Kind::Boolean if !v.is_boolean() => errors.push(format!("{path}: expected a boolean")),
        Kind::Array(items) => match v.as_array() {
            None => errors.push(format!("{path}: expected an array")),
            Some(values) => {
                for (i, item) in values.iter().enumerate() {
                    // The item must be valid as one of the allowed kinds.
                    let mut best: Option<Vec<String>> = None;
                    for k in items {
                        let mut e = Vec::new();
                        check(spec, k, item, &format!("{path}[{i}]"), &mut e);
                        if best.as_ref().is_none_or(|b| e.len() < b.len()) {
                            best = Some(e);
                        }
                    }
                    errors.extend(best.unwrap_or_default());
                }
            }
        },
        Kind::Object(name) => check_object(spec, name, v, path, errors),
        _ => {}
    }
}

fn check_object(spec: &Spec, name: &str, v: &Value, path: &str, errors: &mut Vec<String>) {
    let Some(props) = spec.get(name) else {
        panic!("the spec has no {name} object");
    };
    let Some(obj) = v.as_object() else {
        errors.push(format!("{path}: expected a {name} object"));
        return;
    };
    for (key, p) in props {
        if p.required && !obj.contains_key(key) {
            errors.push(format!("{path}.{key}: required property missing"));
        }
    }
    for (key, value) in obj {
        let here = format!("{path}.{key}");
        let Some(p) = props.get(key) else {
            errors.push(format!("{here}: not a property of {name}"));
            continue;
        };
        check(spec, &p.kind, value, &here, errors);
        if p.kind == Kind::String {
            let s = value.as_str().unwrap_or_default();
            let allowed = quoted_after(&p.description, "Valid values are:")
                .or_else(|| quoted_after(&p.description, "Either"));
            if let Some(allowed) = allowed {
                if !allowed.iter().any(|a| a == s) {
                    errors.push(format!("{here}: {s:?} is not one of {allowed:?}"));
                }
            }
            if let Some(min) = quoted_after(&p.description, "Must be at least") {
                if !version_at_least(s, &min[0]) {
                    errors.push(format!("{here}: {s:?} is below {:?}", min[0]));
                }
            } else if let Some(exact) = quoted_after(&p.description, "Must be") {
                if s != exact[0] {
                    errors.push(format!("{here}: must be {:?}", exact[0]));
                }
            }
        }
    }
    // Rules the descriptions state in words.
    match name {
        "Layer" => {
            if let Some(s) = obj.get("sorting").and_then(Value::as_i64) {
                if !(0..=3).contains(&s) {
                    errors.push(format!("{path}.sorting: {s} is not 0-3"));
                }
            }
        }
        "Technique" => {
            let id = obj
                .get("techniqueID")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let well_formed = id.len() >= 5
                && id.starts_with('T')
                && id[1..5].bytes().all(|b| b.is_ascii_digit())
                && (id.len() == 5
                    || (id.len() == 9
                        && &id[5..6] == "."
                        && id[6..].bytes().all(|b| b.is_ascii_digit())));
            if !well_formed {
                errors.push(format!(
                    "{path}.techniqueID: {id:?} is not T#### or T####.###"
                ));
            }
        }
        "Gradient" => {
            if obj
                .get("colors")
                .and_then(Value::as_array)
                .is_some_and(|c| c.len() < 2)
            {
                errors.push(format!("{path}.colors: fewer than two"));
            }
            let (min, max) = (
                obj.get("minValue").and_then(Value::as_f64),
                obj.get("maxValue").and_then(Value::as_f64),
            );
            if let (Some(min), Some(max)) = (min, max) {
                if max <= min {
                    errors.push(format!("{path}.maxValue: not above minValue"));
                }
            }
        }
        _ => {}
    }
}

fn validate(spec: &Spec, layer: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    check_object(spec, "Layer", layer, "$", &mut errors);
    errors
}

/// The layer of all test verdicts, as `opensoc export navigator` builds it.
fn layer() -> Value {
    let mut b = LayerBuilder::new();
    for v in common::verdicts() {
        let _ = b.add(&v);
    }
    b.build("OpenSOC alerts")
}

#[test]
fn the_spec_reads_as_expected() {
    let spec = load_spec();
    let names: Vec<&str> = spec.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "Divider",
            "Filter",
            "Gradient",
            "Layer",
            "Layout",
            "LegendItem",
            "Link",
            "Metadata",
            "Technique",
            "Version"
        ]
    );
    assert!(spec["Layer"]["name"].required && spec["Layer"]["domain"].required);
    assert!(!spec["Layer"]["description"].required);
    assert_eq!(
        spec["Layer"]["versions"].kind,
        Kind::Object("Version".into())
    );
    assert_eq!(
        spec["Layer"]["metadata"].kind,
        Kind::Array(vec![
            Kind::Object("Metadata".into()),
            Kind::Object("Divider".into())
        ])
    );
    assert_eq!(
        quoted_after(&spec["Layer"]["domain"].description, "Valid values are:"),
        Some(vec![
            "enterprise-attack".into(),
            "mobile-attack".into(),
            "ics-attack".into()
        ])
    );
    assert_eq!(spec["Technique"]["score"].kind, Kind::Number);
}

#[test]
fn the_spec_examples_pass() {
    let spec = load_spec();
    let text = spec_text();
    let blocks: Vec<&str> = text
        .split("```json")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .collect();
    assert_eq!(blocks.len(), 2);
    let single: Value = serde_json::from_str(blocks[0]).expect("example 1");
    assert_eq!(validate(&spec, &single), Vec::<String>::new());
    let many: Value = serde_json::from_str(blocks[1]).expect("example 2");
    for l in many.as_array().expect("a list of layers") {
        assert_eq!(validate(&spec, l), Vec::<String>::new());
    }
}

#[test]
fn the_exported_layer_follows_the_format() {
    let spec = load_spec();
    let layer = layer();
    assert_eq!(validate(&spec, &layer), Vec::<String>::new(), "{layer:#}");
    // And names real ATT&CK: every technique in the catalog, every tactic one of its own.
    let catalog = Catalog::enterprise();
    let techniques = layer["techniques"].as_array().unwrap();
    // T1059.004, T1110, T1110.001 (two alerts), T1190; NO THREAT and T9999 left out.
    assert_eq!(techniques.len(), 4, "{techniques:#?}");
    for t in techniques {
        let id: TechniqueId = t["techniqueID"].as_str().unwrap().parse().unwrap();
        let known = catalog.get(&id).expect("in the catalog");
        if let Some(tactic) = t["tactic"].as_str() {
            assert!(
                known.tactics.iter().any(|x| x.shortname == tactic),
                "{id} {tactic}"
            );
        }
    }
}

/// A named way of breaking a valid document.
type Breaker = Box<dyn Fn(&mut Value)>;

#[test]
fn the_validator_rejects_broken_layers() {
    let spec = load_spec();
    let good = layer();
    let cases: Vec<(&str, Breaker)> = vec![
        (
            "$.name: required",
            Box::new(|l| {
                l.as_object_mut().unwrap().remove("name");
            }),
        ),
        (
            "$.domain: \"enterprise\" is not one of",
            Box::new(|l| l["domain"] = json!("enterprise")),
        ),
        (
            "$.versions.layer: must be \"4.5\"",
            Box::new(|l| l["versions"]["layer"] = json!("4.4")),
        ),
        (
            "$.versions.navigator: \"4.8.2\" is below",
            Box::new(|l| l["versions"]["navigator"] = json!("4.8.2")),
        ),
        (
            "$.layout.layout: \"grid\" is not one of",
            Box::new(|l| l["layout"]["layout"] = json!("grid")),
        ),
        (
            "$.techniques[0].score: expected a number",
            Box::new(|l| l["techniques"][0]["score"] = json!("high")),
        ),
        (
            "$.techniques[0].techniqueID: \"1110\" is not",
            Box::new(|l| l["techniques"][0]["techniqueID"] = json!("1110")),
        ),
        (
            "$.techniques[0].heat: not a property",
            Box::new(|l| l["techniques"][0]["heat"] = json!(1)),
        ),
        (
            "$.gradient.maxValue: not above",
            Box::new(|l| l["gradient"]["maxValue"] = json!(0)),
        ),
        (
            "$.sorting: 9 is not 0-3",
            Box::new(|l| l["sorting"] = json!(9)),
        ),
    ];
    for (expected, break_it) in cases {
        let mut l = good.clone();
        break_it(&mut l);
        let errors = validate(&spec, &l);
        assert!(
            errors.iter().any(|e| e.starts_with(expected)),
            "expected {expected:?}, got {errors:#?}"
        );
    }
}
