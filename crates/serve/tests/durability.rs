//! Durability: entries sent through the API while the server is killed with SIGKILL are
//! all there after a restart if they were acknowledged, and none is stored twice (a
//! retry of an unanswered request carries the same Idempotency-Key).
//!
//! The server runs in a child process: this test binary again, running the ignored
//! `server_process` test with the database path in the environment.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const DB_ENV: &str = "OPENSOC_SERVE_TEST_DB";
const PORT_ENV: &str = "OPENSOC_SERVE_TEST_PORT_FILE";

/// The server side: serves until killed. Only meaningful when started by the test below.
#[test]
#[ignore = "the server process of `acknowledged_entries_survive_kill_9`"]
fn server_process() {
    let (Some(db), Some(port_file)) = (std::env::var_os(DB_ENV), std::env::var_os(PORT_ENV)) else {
        panic!("run by acknowledged_entries_survive_kill_9 only");
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let config = opensoc_serve::ServeConfig::new(db);
        let console = opensoc_serve::Console::open(config, Arc::new(common::StandIn)).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let tmp = Path::new(&port_file).with_extension("tmp");
        std::fs::write(&tmp, port.to_string()).unwrap();
        std::fs::rename(&tmp, &port_file).unwrap();
        console
            .serve(listener, std::future::pending())
            .await
            .unwrap();
    });
}

/// The server process; killed (and reaped) when dropped, should an assertion fail first.
struct Server(Child);

impl Server {
    /// SIGKILL, then reap it.
    fn kill(&mut self) {
        self.0.kill().expect("SIGKILL the server");
        self.0.wait().expect("reap the server");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server(db: &Path, port_file: &Path) -> (Server, u16) {
    let _ = std::fs::remove_file(port_file);
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["server_process", "--exact", "--ignored", "--nocapture"])
        .env(DB_ENV, db)
        .env(PORT_ENV, port_file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("server process starts");
    let child = Server(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(text) = std::fs::read_to_string(port_file) {
            if let Ok(port) = text.trim().parse() {
                return (child, port);
            }
        }
        assert!(Instant::now() < deadline, "the server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One request's body: `lines` web-log lines, each with a marker `r{req}l{line}`.
fn body(req: usize, lines: usize) -> String {
    (0..lines)
        .map(|l| {
            format!(
                "10.1.{}.{} - - [30/Nov/2026:10:{:02}:{:02} +0000] \"GET /item?marker=r{req}l{l} HTTP/1.1\" 200 {} \"-\" \"agent-{req}-{l}\"\n",
                req % 250,
                l % 250,
                (req / 60) % 60,
                req % 60,
                100 + l
            )
        })
        .collect()
}

fn post(agent: &ureq::Agent, port: u16, req: usize, lines: usize) -> Result<u16, String> {
    agent
        .post(&format!("http://127.0.0.1:{port}/api/v1/logs?source=load"))
        .header("Idempotency-Key", &format!("req-{req}"))
        .send(body(req, lines))
        .map(|r| r.status().as_u16())
        .map_err(|e| e.to_string())
}

#[test]
fn acknowledged_entries_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("alerts.db");
    let port_file = dir.path().join("port");
    let (mut child, port) = start_server(&db, &port_file);

    const LINES: usize = 5;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .build()
        .into();
    // Requests from a second thread; the main thread kills the server mid-stream, once
    // some requests were answered.
    let answered = Arc::new(AtomicUsize::new(0));
    let sender = {
        let (agent, answered) = (agent.clone(), answered.clone());
        std::thread::spawn(move || {
            let mut outcome: HashMap<usize, bool> = HashMap::new();
            for req in 0..2000 {
                let acked = matches!(post(&agent, port, req, LINES), Ok(200 | 202));
                outcome.insert(req, acked);
                if !acked {
                    // The server is gone: this request may or may not have been stored.
                    break;
                }
                answered.fetch_add(1, Ordering::Relaxed);
            }
            outcome
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while answered.load(Ordering::Relaxed) < 20 {
        assert!(
            Instant::now() < deadline,
            "the server answered too few requests"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill();
    let outcome = sender.join().unwrap();
    let acked: Vec<usize> = (0..2000)
        .filter(|r| outcome.get(r) == Some(&true))
        .collect();
    let unanswered: Vec<usize> = outcome
        .iter()
        .filter(|(_, a)| !**a)
        .map(|(r, _)| *r)
        .collect();
    assert!(
        acked.len() >= 3,
        "too few requests before the kill: {}",
        acked.len()
    );
    assert!(acked.len() < 400, "the kill came after the last request");

    // Restart on the same database; the client retries what was not answered.
    let (mut child, port) = start_server(&db, &port_file);
    for req in &unanswered {
        let status = post(&agent, port, *req, LINES).expect("retry answered");
        assert!(status == 200 || status == 202, "retry got {status}");
    }
    // The worker analyses what the killed server left queued.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = agent
            .get(&format!("http://127.0.0.1:{port}/api/v1/stats"))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        let stats: serde_json::Value = serde_json::from_str(&text).unwrap();
        if stats["queued"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "still queued: {stats}");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill();

    // Count every marker in the database: each acknowledged (and retried) line once.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let mut stmt = conn.prepare("SELECT text, state FROM entries").unwrap();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .unwrap();
    for row in rows {
        let (text, state) = row.unwrap();
        assert_eq!(state, "analysed");
        for marker in text.split("marker=").skip(1) {
            let m: String = marker
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            *seen.entry(m).or_default() += 1;
        }
    }
    let expected: Vec<usize> = acked.iter().chain(&unanswered).copied().collect();
    for req in &expected {
        for l in 0..LINES {
            let m = format!("r{req}l{l}");
            assert_eq!(
                seen.get(&m),
                Some(&1),
                "{m} stored {:?} times",
                seen.get(&m)
            );
        }
    }
    assert_eq!(seen.len(), expected.len() * LINES, "markers from nowhere");
    eprintln!(
        "{} requests acknowledged before SIGKILL, {} retried, {} lines each: all stored once",
        acked.len(),
        unanswered.len(),
        LINES
    );
}
