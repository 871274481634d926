//! `analyze --publish`, `worker` and `collect` against a `nats-server -js` of the test's
//! own (docs/SCALE-OUT.md), with the real default model in the worker.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

struct Server {
    child: Child,
    port: u16,
    // Removed when the server is dropped.
    _store: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

fn nats_server() -> Option<Server> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let binary = std::env::var_os("OPENSOC_NATS_SERVER")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::split_paths(&path)
                .chain([PathBuf::from("/usr/sbin")])
                .map(|d| d.join("nats-server"))
                .find(|p| p.is_file())
        });
    let Some(binary) = binary else {
        eprintln!("\n*** SKIPPED: nats-server not found; the scale-out CLI test did not run ***\n");
        return None;
    };
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let store = tempfile::tempdir().unwrap();
    let child = Command::new(binary)
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(store.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nats-server did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(Server {
        child,
        port,
        _store: store,
    })
}

fn opensoc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_opensoc"))
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .args(args)
        .output()
        .unwrap()
}

fn ids(jsonl: &[u8]) -> Vec<(String, Option<String>)> {
    String::from_utf8_lossy(jsonl)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["id"].as_str().unwrap().to_string(),
                v["decided_by"].as_str().map(str::to_string),
            )
        })
        .collect()
}

#[test]
fn publish_work_and_collect_the_sample() {
    let Some(server) = nats_server() else { return };
    let url = format!("nats://127.0.0.1:{}", server.port);

    let sent = opensoc(&["analyze", "--publish", &url, "examples/sample.log"]);
    let stderr = String::from_utf8_lossy(&sent.stderr);
    assert!(sent.status.success(), "{stderr}");
    assert!(
        stderr.contains("5 entries sent to the workers, 1 fast-path verdicts"),
        "{stderr}"
    );
    // Sent again: the server recognises every entry.
    let again = opensoc(&["analyze", "--publish", &url, "examples/sample.log"]);
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        stderr.contains(
            "0 entries sent to the workers, 0 fast-path verdicts to the results, 6 already sent"
        ),
        "{stderr}"
    );

    // Before any worker: only the fast path's verdict is there.
    let early = opensoc(&["collect", "--nats", &url, "--format", "jsonl"]);
    assert!(early.status.success());
    assert_eq!(
        ids(&early.stdout),
        [(
            "examples/sample.log:4".to_string(),
            Some("fast-path".to_string())
        )]
    );

    let mut worker = Command::new(env!("CARGO_BIN_EXE_opensoc"))
        .args(["worker", "--nats", &url, "--no-narrative", "--quiet"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let all = opensoc(&[
        "collect",
        "--nats",
        &url,
        "--expect",
        "6",
        "--timeout",
        "600",
        "--format",
        "jsonl",
    ]);
    Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status()
        .ok();
    let stopped = worker.wait().unwrap();
    assert!(
        all.status.success(),
        "{}",
        String::from_utf8_lossy(&all.stderr)
    );
    let mut got = ids(&all.stdout);
    got.sort();
    let want = ["1", "2", "3", "4", "5-10", "11"].map(|p| format!("examples/sample.log:{p}"));
    let mut want = want.to_vec();
    want.sort();
    assert_eq!(
        got.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>(),
        want
    );
    for (id, by) in &got {
        let expected = if id.ends_with(":4") {
            "fast-path"
        } else {
            "model"
        };
        assert_eq!(by.as_deref(), Some(expected), "{id}");
    }
    assert!(stopped.success(), "the worker stops cleanly on SIGTERM");
}
