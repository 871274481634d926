//! nemesida-waf/waf-bypass payloads: evasive attack payloads by class, each with the
//! request parts it is sent in (URL, query arguments, user agent, referer, ...), and a
//! few legitimate requests (class `FP`). Held out whole as validation (docs/DATA.md).

use std::path::Path;

use serde_json::Value;

use super::{files, format_for, read_text, rel, sample_k, web_evidence, web_sample};
use crate::build::{Sample, Split};
use crate::error::Problem;
use crate::label::{fine, sqli_subtype};
use crate::rng::Rng;
use crate::web::{
    attack_agent, attack_status, decode, public_ip, size_for, Placement, Request, BROWSER_AGENTS,
    ENDPOINTS,
};

pub const DIR: &str = "waf-bypass";
const SOURCE: &str = "waf-bypass";
const CLASSES: &[&str] = &["SQLi", "XSS", "RCE", "LFI", "RFI", "FP"];

/// Threat type of a payload of `class` (rule `waf-bypass-class`).
fn class_label(
    class: &str,
    decoded: &str,
    placement: Placement,
) -> Option<(&'static str, &'static str)> {
    match class {
        "SQLi" => Some((sqli_subtype(decoded), "waf-bypass-class+sqli-subtype")),
        "XSS" => Some((fine::XSS, "waf-bypass-class")),
        "RCE" => Some((fine::CMDI, "waf-bypass-class")),
        "LFI" => Some(super::crs::lfi_or_traversal(decoded, placement)),
        "RFI" => Some((fine::LFI, "waf-bypass-rfi-as-inclusion")),
        "FP" => Some((fine::BENIGN, "waf-bypass-fp")),
        _ => None,
    }
}

pub fn read(root: &Path, seed: u64, out: &mut Vec<Sample>, problems: &mut Vec<Problem>) {
    for class in CLASSES {
        let dir = root.join("utils/payload").join(class);
        let mut items = Vec::new();
        for path in files(&dir, &|p| p.extension().is_some_and(|e| e == "json")) {
            let Some(text) = read_text(root, &path, problems) else {
                continue;
            };
            let doc: Value = match serde_json::from_str(&text) {
                Ok(v) => v,
                Err(e) => {
                    problems.push(Problem {
                        path: rel(root, &path),
                        line: e.line(),
                        reason: format!("invalid JSON: {e}"),
                    });
                    continue;
                }
            };
            let Some(list) = doc.get("payload").and_then(Value::as_array) else {
                problems.push(Problem {
                    path: rel(root, &path),
                    line: 0,
                    reason: "no `payload` list".into(),
                });
                continue;
            };
            for (i, p) in list.iter().enumerate() {
                items.push((format!("{}#{}", rel(root, &path), i + 1), p.clone()));
            }
        }
        // XSS has ten times the payloads of any other class.
        let cap = if *class == "XSS" { 110 } else { usize::MAX };
        for (key, p) in sample_k(items, cap, seed) {
            let mut rng = Rng::for_item(seed, &key);
            let part = |k: &str| p.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
            let endpoint = *rng.pick(ENDPOINTS);
            let rnd = rng.range(1, 999).to_string();
            let (placement, shown, target, agent, referer) = if let Some(u) = part("URL") {
                let path = if u.starts_with('/') {
                    u.to_owned()
                } else {
                    format!("/{u}")
                };
                (Placement::Path, u.to_owned(), path, None, None)
            } else if let Some(a) = part("ARGS") {
                let a = a.replace("%RND%", &rnd);
                (
                    Placement::Query,
                    a.clone(),
                    format!("{}?{a}", endpoint.path),
                    None,
                    None,
                )
            } else if let Some(ua) = part("USER-AGENT") {
                (
                    Placement::UserAgent,
                    ua.to_owned(),
                    endpoint.path.to_owned(),
                    Some(ua.to_owned()),
                    None,
                )
            } else if let Some(r) = part("REFERER") {
                (
                    Placement::Referer,
                    r.to_owned(),
                    endpoint.path.to_owned(),
                    None,
                    Some(r.to_owned()),
                )
            } else {
                continue; // body, cookie or other header only: not in an access log
            };
            let decoded = decode(&decode(&shown, true), true);
            let Some((fine_type, rule)) = class_label(class, &decoded, placement) else {
                continue;
            };
            let benign = fine_type == fine::BENIGN;
            let status = if benign { 200 } else { attack_status(&mut rng) };
            let req = Request {
                client: public_ip(&mut rng),
                method: "GET".into(),
                target: target.replace(' ', "%20"),
                status,
                bytes: size_for(status, &mut rng),
                referer,
                user_agent: agent.unwrap_or_else(|| {
                    if benign {
                        rng.pick(BROWSER_AGENTS).to_string()
                    } else {
                        attack_agent(&mut rng)
                    }
                }),
                user: None,
                time: crate::web::draw_time(&mut rng),
            };
            let format = format_for(placement, &mut rng);
            let evidence = if benign {
                format!(
                    "Ordinary request for {} from {}; no attack syntax ({}).",
                    crate::label::clip(&req.target, 100),
                    req.client,
                    req.status
                )
            } else {
                web_evidence(fine_type, placement, &shown, &req)
            };
            out.push(web_sample(
                key,
                &req,
                format,
                &mut rng,
                fine_type,
                rule.into(),
                SOURCE,
                Split::Validation,
                evidence,
            ));
        }
    }
}
