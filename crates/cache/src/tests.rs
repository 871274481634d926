use std::sync::{Arc, Barrier};

use opensoc_triage::Triage;
use opensoc_verdict::{Severity, Verdict};

use super::*;

fn context() -> CacheContext {
    CacheContext::new(
        "model-a",
        "adapter-1",
        "taxonomy-1",
        "playbooks-0",
        "grammar",
    )
}

fn sqli(ip: &str, port_bytes: &str) -> String {
    format!(
        r#"{ip} - - [12/Nov/2026:09:14:02 +0000] "GET /products.php?id=7%20UNION%20SELECT%20username,password%20FROM%20users-- HTTP/1.1" 200 {port_bytes} "-" "sqlmap/1.7.2#stable""#
    )
}

fn key(ctx: &CacheContext, text: &str) -> EntryKey {
    EntryKey::new(ctx, text, &Triage::builtin().assess(text)).expect("cacheable")
}

fn model_verdict(text: &str) -> Verdict {
    let mut v = Verdict::from_answer(
        "day.log:1".into(),
        text.into(),
        "THREAT_TYPE: SQL Injection — UNION-based SQLi\nEVIDENCE: UNION SELECT from 203.0.113.45"
            .into(),
        Default::default(),
    );
    v.threat_type = Some("SQL Injection — UNION-based SQLi".into());
    v.category = Some("SQL INJECTION".into());
    v.technique_id = Some("T1190".into());
    v.technique_name = Some("Exploit Public-Facing Application".into());
    v.tactic = Some("Initial Access".into());
    v.severity = Some(Severity::Critical);
    v.risk_score = Some(95);
    v.confidence = Some(0.92);
    v.evidence = Some("UNION SELECT from 203.0.113.45".into());
    v.decided_by = Some("model".into());
    v.warnings = vec!["evidence quotes \"x\", which is not in the log entry".into()];
    v
}

#[test]
fn a_hit_returns_the_decided_fields_rebound_to_the_new_entry() {
    let dir = tempfile::tempdir().unwrap();
    let (mut cache, warning) = VerdictCache::open(&dir.path().join(DEFAULT_FILE)).unwrap();
    assert!(warning.is_none());
    let ctx = context();
    let first = sqli("203.0.113.45", "5120");
    let again = sqli("198.51.100.23", "4471");
    let stored = model_verdict(&first);
    let k1 = key(&ctx, &first);
    assert!(cache.lookup(&k1).unwrap().is_none());
    cache.store(&k1, &stored).unwrap();
    let k2 = key(&ctx, &again);
    assert_eq!(k1.digest(), k2.digest());
    let hit = cache.lookup(&k2).unwrap().expect("hit");
    let v = hit.verdict;
    assert_eq!(hit.hits, 1);
    for (a, b) in [
        (&v.threat_type, &stored.threat_type),
        (&v.category, &stored.category),
        (&v.technique_id, &stored.technique_id),
        (&v.technique_name, &stored.technique_name),
        (&v.tactic, &stored.tactic),
    ] {
        assert_eq!(a, b);
    }
    assert_eq!(v.severity, Some(Severity::Critical));
    assert_eq!((v.risk_score, v.confidence), (Some(95), Some(0.92)));
    // The narrative names the new client, and the grounding warning of the old entry is
    // not carried over (it is re-derived for the new entry).
    assert_eq!(
        v.evidence.as_deref(),
        Some("UNION SELECT from 198.51.100.23")
    );
    assert!(
        v.raw_output.ends_with("from 198.51.100.23"),
        "{}",
        v.raw_output
    );
    assert!(v.warnings.is_empty(), "{:?}", v.warnings);
    assert!(v.signals.is_empty());
    assert_eq!(cache.lookup(&k2).unwrap().unwrap().hits, 2);
}

#[test]
fn hit_counts_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DEFAULT_FILE);
    let ctx = context();
    let text = sqli("203.0.113.45", "5120");
    let k = key(&ctx, &text);
    {
        let (mut cache, _) = VerdictCache::open(&path).unwrap();
        cache.store(&k, &model_verdict(&text)).unwrap();
        for _ in 0..3 {
            cache.lookup(&k).unwrap().unwrap();
        }
    }
    let (mut cache, _) = VerdictCache::open(&path).unwrap();
    assert_eq!(cache.len().unwrap(), 1);
    assert_eq!(cache.lookup(&k).unwrap().unwrap().hits, 4);
}

#[test]
fn keys_change_with_model_adapter_taxonomy_playbook_and_settings() {
    let text = sqli("203.0.113.45", "5120");
    let base = key(&context(), &text);
    let variants = [
        CacheContext::new(
            "model-b",
            "adapter-1",
            "taxonomy-1",
            "playbooks-0",
            "grammar",
        ),
        CacheContext::new(
            "model-a",
            "adapter-2",
            "taxonomy-1",
            "playbooks-0",
            "grammar",
        ),
        CacheContext::new(
            "model-a",
            "adapter-1",
            "taxonomy-2",
            "playbooks-0",
            "grammar",
        ),
        CacheContext::new(
            "model-a",
            "adapter-1",
            "taxonomy-1",
            "playbooks-1",
            "grammar",
        ),
        CacheContext::new("model-a", "adapter-1", "taxonomy-1", "playbooks-0", "free"),
        // Parts are length-prefixed: moving a boundary is another context.
        CacheContext::new(
            "model-a",
            "dapter-1",
            "taxonomy-1",
            "playbooks-0a",
            "grammar",
        ),
    ];
    for ctx in &variants {
        assert_ne!(key(ctx, &text).digest(), base.digest(), "{ctx:?}");
    }
    assert_eq!(key(&context(), &text).digest(), base.digest());
}

#[test]
fn the_taxonomy_version_follows_the_taxonomy() {
    let catalog = Catalog::enterprise();
    let builtin = taxonomy_version(Taxonomy::builtin(), catalog);
    assert_eq!(builtin.len(), 32);
    assert_eq!(builtin, taxonomy_version(Taxonomy::builtin(), catalog));
    let json = r#"{"replace": true, "categories": ["WEB"], "fine_types": [{"name": "Web attack", "category": "WEB", "severity": "HIGH"}]}"#;
    let other = Taxonomy::from_json_str(json).expect("valid");
    assert_ne!(taxonomy_version(&other, catalog), builtin);
}

#[test]
fn signals_are_part_of_the_key() {
    let ctx = context();
    let plain = r#"203.0.113.4 - - [12/Nov/2026:09:14:02 +0000] "GET /export.csv HTTP/1.1" 200 1200 "-" "Mozilla/5.0""#;
    let large = plain.replace(" 1200 ", " 900000000 ");
    let triage = Triage::builtin();
    let a = triage.assess(&large);
    assert!(a.signals.iter().any(|s| s.class.name() == "large-response"));
    let k_large = EntryKey::new(&ctx, &large, &a).expect("model route");
    // The small one is fast-pathed, so it has no key at all; compare against another
    // large response of a different size: same signals, same key.
    assert!(EntryKey::new(&ctx, plain, &triage.assess(plain)).is_none());
    let larger = plain.replace(" 1200 ", " 700000000 ");
    assert_eq!(key(&ctx, &larger).digest(), k_large.digest());
}

#[test]
fn incidents_are_not_cached() {
    let text = "Nov 12 09:20:01 web01 sshd[2211]: Failed password for root from 185.220.101.4 port 51122 ssh2\nNov 12 09:20:02 web01 sshd[2211]: Failed password for root from 185.220.101.4 port 51122 ssh2\n[...6 total failed auth attempts from 185.220.101.4 within 1s...]";
    let a = Triage::builtin().assess(text);
    assert!(a.records > 1);
    assert!(EntryKey::new(&context(), text, &a).is_none());
}

#[test]
fn two_processes_share_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = Arc::new(dir.path().join(DEFAULT_FILE));
    let ctx = context();
    let texts: Vec<String> = (0..40)
        .map(|i| {
            format!(
                r#"203.0.113.{i} - - [12/Nov/2026:09:14:02 +0000] "GET /item.php?id={i}%27%20OR%201=1-- HTTP/1.1" 200 51 "-" "curl/8""#
            )
        })
        .collect();
    let keys: Vec<EntryKey> = texts.iter().map(|t| key(&ctx, t)).collect();
    let barrier = Arc::new(Barrier::new(2));
    // Each "process" has its own connection; both store every entry and look each up.
    let workers: Vec<_> = (0..2)
        .map(|w| {
            let (path, barrier, keys, texts) =
                (path.clone(), barrier.clone(), keys.clone(), texts.clone());
            std::thread::spawn(move || {
                let (mut cache, warning) = VerdictCache::open(&path).unwrap();
                assert!(warning.is_none(), "{warning:?}");
                barrier.wait();
                for (i, (k, t)) in keys.iter().zip(&texts).enumerate() {
                    let mut v = model_verdict(t);
                    v.risk_score = Some(50 + w);
                    cache.store(k, &v).unwrap();
                    let hit = cache.lookup(&keys[(i * 7) % keys.len()]).unwrap();
                    // Stored by this worker or the other one, or not yet by either.
                    if let Some(h) = hit {
                        assert!(matches!(h.verdict.risk_score, Some(50) | Some(51)));
                    }
                }
                cache.flush().unwrap();
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker");
    }
    let (mut cache, _) = VerdictCache::open(&path).unwrap();
    assert_eq!(cache.len().unwrap(), 40);
    // The first store of each key won and nobody overwrote it.
    let first = cache.lookup(&keys[0]).unwrap().unwrap();
    assert!(matches!(first.verdict.risk_score, Some(50) | Some(51)));
}

#[test]
fn a_corrupt_file_is_moved_aside_and_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DEFAULT_FILE);
    std::fs::write(&path, b"this is not a database, and it is long enough to have a header that SQLite reads as garbage...").unwrap();
    let (mut cache, warning) = VerdictCache::open(&path).unwrap();
    let warning = warning.expect("a warning");
    assert!(warning.contains("moved to"), "{warning}");
    let aside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1);
    // The new file works.
    let text = sqli("203.0.113.45", "5120");
    let k = key(&context(), &text);
    cache.store(&k, &model_verdict(&text)).unwrap();
    assert!(cache.lookup(&k).unwrap().is_some());
}

#[test]
fn a_damaged_page_inside_a_real_database_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DEFAULT_FILE);
    {
        let (mut cache, _) = VerdictCache::open(&path).unwrap();
        for i in 0..300 {
            let text = sqli(&format!("10.0.{}.{}", i / 200, i % 200), "5");
            let text = text.replace("id=7", &format!("id={i}"));
            let k = key(&context(), &text);
            cache.store(&k, &model_verdict(&text)).unwrap();
        }
        cache
            .conn
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
            .unwrap();
    }
    // Overwrite the middle of the file (the table's pages) with garbage.
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 3 * 4096, "{}", bytes.len());
    for b in &mut bytes[4096..3 * 4096] {
        *b = 0xA5;
    }
    std::fs::write(&path, &bytes).unwrap();
    let (cache, warning) = VerdictCache::open(&path).unwrap();
    assert!(warning.is_some());
    assert_eq!(cache.len().unwrap(), 0);
}

#[test]
fn a_file_of_another_layout_is_emptied() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DEFAULT_FILE);
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE TABLE verdicts (key TEXT PRIMARY KEY, v TEXT); INSERT INTO verdicts VALUES ('a', 'b'); PRAGMA user_version = 99;",
    )
    .unwrap();
    drop(conn);
    let (cache, warning) = VerdictCache::open(&path).unwrap();
    assert!(warning.is_none());
    assert_eq!(cache.len().unwrap(), 0);
}
