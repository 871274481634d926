//! A stand-in pipeline and helpers shared by the server tests.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use opensoc_serve::{Analyze, Console, ServeConfig};
use opensoc_verdict::{parse_answer, DetectorHit, Verdict};

/// Judges by keywords, the way a model would be expected to: UNION SELECT is SQL
/// injection, `<script` is XSS, anything else is normal. Marks the keyword as a detector
/// signal so the page has a span to highlight. Entries containing `PANIC` panic, `FAIL`
/// fail, and `slow-backend` take 1.5 s (a model at work, for the page's refresh).
pub struct StandIn;

const SQLI: &str = "THREAT_TYPE: SQL Injection — Union/Boolean SQLi\nMITRE_TECHNIQUE: T1190 (Exploit Public-Facing Application)\nMITRE_TACTIC: Initial Access\nSEVERITY: HIGH\nRISK_SCORE: 82\nEVIDENCE: UNION SELECT in a parameter\nIMPACT: Data theft.\nRECOMMENDATION: Block the source.";
const XSS: &str = "THREAT_TYPE: XSS — Reflected Script Injection\nMITRE_TECHNIQUE: T1059.007 (JavaScript)\nMITRE_TACTIC: Execution\nSEVERITY: MEDIUM\nRISK_SCORE: 55\nEVIDENCE: a script tag in the query\nIMPACT: Session theft.\nRECOMMENDATION: Encode output.";
const BENIGN: &str = "THREAT_TYPE: No Threat Detected — Normal Traffic\nMITRE_TECHNIQUE: N/A (N/A)\nMITRE_TACTIC: N/A\nSEVERITY: LOW\nRISK_SCORE: 3\nEVIDENCE: An ordinary request.\nIMPACT: No security impact; normal operation.\nRECOMMENDATION: No action required; keep monitoring.";

pub fn judge(id: &str, text: &str) -> Verdict {
    let (answer, category, keyword) = if text.contains("UNION SELECT") {
        (SQLI, "SQL INJECTION", Some(("sqli", "UNION SELECT")))
    } else if text.contains("<script") {
        (XSS, "XSS", Some(("xss", "<script")))
    } else {
        (BENIGN, "NO THREAT", None)
    };
    let mut v = Verdict::from_answer(id.into(), text.into(), answer.into(), parse_answer(answer));
    v.category = Some(category.into());
    v.decided_by = Some("model".into());
    if let Some((class, kw)) = keyword {
        if let Some(start) = text.find(kw) {
            v.signals.push(DetectorHit {
                class: class.into(),
                rule: "stand-in".into(),
                start,
                end: start + kw.len(),
                text: kw.into(),
                decoded: false,
            });
        }
    }
    v
}

impl Analyze for StandIn {
    fn analyze(&self, entries: Vec<(String, String)>) -> Vec<Result<Verdict, String>> {
        entries
            .into_iter()
            .map(|(id, text)| {
                if text.contains("slow-backend") {
                    std::thread::sleep(std::time::Duration::from_millis(1500));
                }
                if text.contains("PANIC") {
                    panic!("stand-in told to panic");
                }
                if text.contains("FAIL") {
                    return Err(format!("{id}: the stand-in fails this entry"));
                }
                Ok(judge(&id, &text))
            })
            .collect()
    }
}

pub fn console(dir: &std::path::Path, configure: impl FnOnce(&mut ServeConfig)) -> Console {
    let mut config = ServeConfig::new(dir.join("alerts.db"));
    configure(&mut config);
    Console::open(config, Arc::new(StandIn)).expect("console opens")
}

/// Waits until the worker has analysed everything queued.
pub fn wait_analysed(console: &Console) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let stats = console.store().stats().expect("stats");
        if stats.queued == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "entries still queued: {stats:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
