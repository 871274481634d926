//! `opensoc serve` and `opensoc feedback` end to end on the tiny model: logs in through
//! the API, a review through the API, the review exported as training records, an adapter
//! trained on them, and the corrected entry analysed again gets the analyst's label.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{analyze_tiny, opensoc, run_with_stdin, tiny_model, verdicts};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `opensoc serve` on a free loopback port; returns it with its base URL.
fn serve(model: &std::path::Path, db: &std::path::Path, extra: &[&str]) -> (Server, String) {
    let mut child = opensoc()
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(db)
        .arg("--model")
        .arg(model)
        .args(["--weights", "as-stored", "--no-narrative", "--no-fast-path"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("opensoc serve starts");
    let stderr = child.stderr.take().expect("stderr");
    let server = Server(child);
    let mut lines = BufReader::new(stderr).lines();
    let url = loop {
        let line = lines
            .next()
            .expect("serve printed its address before exiting")
            .expect("stderr line");
        if let Some(rest) = line.split("console on ").nth(1) {
            break rest
                .split_whitespace()
                .next()
                .unwrap()
                .trim_end_matches('/')
                .to_owned();
        }
    };
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (server, url)
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .http_status_as_error(false)
        .build()
        .into()
}

fn get_json(agent: &ureq::Agent, url: &str) -> serde_json::Value {
    let text = agent
        .get(url)
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

const ENTRY: &str =
    "Nov 30 10:00:01 web01 backup[4242]: nightly rsync to nas01 finished, 1532 files";

#[test]
fn a_relabel_in_the_console_retrains_the_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let db = dir.path().join("alerts.db");
    let (server, url) = serve(&model, &db, &[]);
    let agent = agent();

    // Bad bind: beyond loopback without a token is refused before any model loads.
    let refused = opensoc()
        .args(["serve", "--listen", "0.0.0.0:0", "--db"])
        .arg(dir.path().join("other.db"))
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--token-file"));

    let mut res = agent
        .post(&format!("{url}/api/v1/logs?source=nas"))
        .send(format!("{ENTRY}\n"))
        .unwrap();
    assert_eq!(res.status().as_u16(), 202);
    let ack: serde_json::Value =
        serde_json::from_str(&res.body_mut().read_to_string().unwrap()).unwrap();
    let id = ack["first"].as_i64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let alert = loop {
        let a = get_json(&agent, &format!("{url}/api/v1/alerts/{id}"));
        if a["state"] != "queued" {
            break a;
        }
        assert!(Instant::now() < deadline, "not analysed: {a}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(alert["state"], "analysed", "{alert}");
    let before = alert["threat_type"].as_str().unwrap().to_owned();

    // The analyst's label: anything but what the tiny model said.
    let label = if before == "Automated Reconnaissance / Vulnerability Scanning" {
        "OS Command Injection Attempt"
    } else {
        "Automated Reconnaissance / Vulnerability Scanning"
    };
    let mut res = agent
        .post(&format!("{url}/api/v1/alerts/{id}/feedback"))
        .header("Content-Type", "application/json")
        .send(
            serde_json::json!({"action": "relabel", "threat_type": label, "note": "test"})
                .to_string(),
        )
        .unwrap();
    let body = res.body_mut().read_to_string().unwrap();
    assert_eq!(res.status().as_u16(), 200, "{body}");
    drop(server);

    let records = dir.path().join("feedback.jsonl");
    let out = opensoc()
        .args(["feedback", "--db"])
        .arg(&db)
        .arg("--out")
        .arg(&records)
        .args(["--repeat", "8"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&records).unwrap();
    assert_eq!(text.lines().count(), 8);
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["input"], ENTRY);
    assert!(first["output"]
        .as_str()
        .unwrap()
        .starts_with(&format!("THREAT_TYPE: {label}\n")));

    let adapter = dir.path().join("adapter");
    let out = opensoc()
        .args(["train", "--data"])
        .arg(&records)
        .arg("--out")
        .arg(&adapter)
        .arg("--base")
        .arg(&model)
        .args([
            "--base-name",
            "tiny",
            "--fields-only",
            "--epochs",
            "30",
            "--lr",
            "0.02",
            "--batch-size",
            "8",
            "--val-fraction",
            "0",
            // A large scale: the tiny random model needs big steps to move in 30.
            "--rank",
            "16",
            "--alpha",
            "512",
            "--dropout",
            "0",
            "--warmup-ratio",
            "0",
            "--max-len",
            "1024",
            "--quiet",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let after = run_with_stdin(
        analyze_tiny(
            &model,
            &[
                "--no-fast-path",
                "--adapter",
                adapter.to_str().unwrap(),
                "--format",
                "jsonl",
            ],
        ),
        format!("{ENTRY}\n").as_bytes(),
    );
    let v = verdicts(&after.stdout);
    assert_eq!(v.len(), 1, "{}", String::from_utf8_lossy(&after.stderr));
    assert_ne!(before, label);
    assert_eq!(v[0]["threat_type"], label, "before training: {before}");
}

#[test]
fn followed_files_and_syslog_feed_the_console() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let db = dir.path().join("alerts.db");
    let followed = dir.path().join("app.log");
    std::fs::write(&followed, "").unwrap();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = udp.local_addr().unwrap().port();
    drop(udp);
    let syslog = format!("127.0.0.1:{port}");
    let (server, url) = serve(
        &model,
        &db,
        &[
            "--follow",
            followed.to_str().unwrap(),
            "--syslog-udp",
            &syslog,
            "--no-group",
        ],
    );
    let agent = agent();

    std::fs::write(
        &followed,
        "Nov 30 10:00:01 web01 app[1]: followed line one\n",
    )
    .unwrap();
    let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sender
        .send_to(
            b"<13>Nov 30 10:00:02 web01 app[2]: syslog message one",
            &syslog,
        )
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let alerts = loop {
        let page = get_json(&agent, &format!("{url}/api/v1/alerts?state=analysed"));
        if page["total"] == 2 {
            break page;
        }
        assert!(
            Instant::now() < deadline,
            "live entries not analysed: {page}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut sources: Vec<String> = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["source"].as_str().unwrap().to_owned())
        .collect();
    sources.sort();
    assert_eq!(
        sources,
        [
            followed.display().to_string(),
            format!("syslog/udp/{syslog}")
        ]
    );
    drop(server);
}
