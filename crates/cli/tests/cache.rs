//! The verdict cache through the real binary, with the tiny test model: a repeated event
//! is answered from the cache with the first verdict's decided fields and its own id,
//! input and signals; `--no-cache` leaves no file; a corrupt file is rebuilt with a warning.

mod common;

use common::{analyze_tiny, run_with_stdin, tiny_model, verdicts};

/// Three SQL injection requests that differ only in client, time and size (one event),
/// and one ordinary page view (fast path).
fn input() -> Vec<u8> {
    let sqli = |ip: &str, sec: u32, bytes: u32| {
        format!(
            "{ip} - - [12/Nov/2026:09:14:{sec:02} +0000] \"GET /products.php?id=7%20UNION%20SELECT%20username,password%20FROM%20users-- HTTP/1.1\" 200 {bytes} \"-\" \"Mozilla/5.0\"\n"
        )
    };
    [
        sqli("203.0.113.45", 2, 5120),
        "10.0.0.8 - - [12/Nov/2026:09:14:03 +0000] \"GET /index.html HTTP/1.1\" 200 512 \"-\" \"Mozilla/5.0\"\n".to_string(),
        sqli("198.51.100.23", 40, 4471),
        sqli("192.0.2.200", 59, 88),
    ]
    .concat()
    .into_bytes()
}

const DECIDED: [&str; 8] = [
    "threat_type",
    "category",
    "technique_id",
    "technique_name",
    "tactic",
    "severity",
    "risk_score",
    "confidence",
];

fn run(model: &std::path::Path, extra: &[&str]) -> (Vec<serde_json::Value>, String) {
    let args: Vec<&str> = ["-", "--format", "jsonl", "--no-group"]
        .into_iter()
        .chain(extra.iter().copied())
        .collect();
    let out = run_with_stdin(analyze_tiny(model, &args), &input());
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let mut vs = verdicts(&out.stdout);
    vs.sort_by_key(|v| v["id"].as_str().unwrap_or_default().to_string());
    (vs, stderr)
}

#[test]
fn a_repeated_event_reuses_the_verdict_with_its_own_ids_and_signals() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = tiny_model(dir.path());
    let cache = dir.path().join("verdicts.sqlite");
    let cache_arg = cache.to_str().expect("utf-8 path");
    let (first, stderr) = run(&model, &["--cache", cache_arg]);
    assert_eq!(first.len(), 4, "{stderr}");
    assert!(
        stderr.contains("1 decided by the fast path, 2 from the cache"),
        "{stderr}"
    );
    let by_model = &first[0];
    assert_eq!(by_model["id"], "-:1");
    assert!(by_model.get("cache").is_none());
    for (v, line, hits) in [(&first[2], 3, 1), (&first[3], 4, 2)] {
        assert_eq!(v["id"], format!("-:{line}"));
        assert_eq!(v["cache"]["hits"], hits, "{v}");
        for key in DECIDED {
            assert_eq!(v[key], by_model[key], "{key}");
        }
        // The entry's own input, and signals at offsets into it.
        let input = v["input"].as_str().expect("input");
        assert_ne!(input, by_model["input"].as_str().expect("input"));
        let signals = v["signals"].as_array().expect("signals");
        assert!(!signals.is_empty());
        for s in signals {
            let (start, end) = (
                s["start"].as_u64().unwrap() as usize,
                s["end"].as_u64().unwrap() as usize,
            );
            assert!(input[start..end].contains("UNION"), "{s}");
        }
    }
    // A second run asks the model nothing it saw before.
    let (second, stderr) = run(&model, &["--cache", cache_arg]);
    assert!(
        stderr.contains("1 decided by the fast path, 3 from the cache"),
        "{stderr}"
    );
    assert_eq!(second[0]["cache"]["hits"], 3);
    for key in DECIDED {
        assert_eq!(second[0][key], by_model[key], "{key}");
    }
}

#[test]
fn no_cache_asks_the_model_every_time_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = tiny_model(dir.path());
    let (vs, stderr) = run(&model, &[]);
    assert!(
        stderr.contains("1 decided by the fast path, 0 from the cache"),
        "{stderr}"
    );
    assert!(vs.iter().all(|v| v.get("cache").is_none()));
    let models: Vec<_> = vs.iter().filter(|v| v["decided_by"] == "model").collect();
    assert_eq!(models.len(), 3);
    let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(files.len(), 1, "only the model file: {files:?}");
}

#[test]
fn a_corrupt_cache_file_is_rebuilt_with_a_warning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = tiny_model(dir.path());
    let cache = dir.path().join("verdicts.sqlite");
    std::fs::write(&cache, vec![0x5a; 8192]).unwrap();
    let (vs, stderr) = run(&model, &["--cache", cache.to_str().unwrap()]);
    assert_eq!(vs.len(), 4);
    assert!(
        stderr.contains("was unreadable") && stderr.contains("started anew"),
        "{stderr}"
    );
    assert!(stderr.contains("2 from the cache"), "{stderr}");
}
