//! A `nats-server -js` of our own per test (127.0.0.1, a free port, a temp store), and a
//! stand-in model step.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use opensoc_scale::{StepResult, WorkItem};
use opensoc_verdict::{Answer, Verdict};

/// Text that makes the stand-in step fail, on every delivery.
pub const POISON: &str = "POISON";

/// The server binary: `$OPENSOC_NATS_SERVER`, else `nats-server` on the `PATH` or where
/// Debian's package puts it.
fn binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("OPENSOC_NATS_SERVER") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/bin".into()])
        .map(|dir| dir.join("nats-server"))
        .find(|p| p.is_file())
}

pub struct Server {
    binary: PathBuf,
    port: u16,
    store: tempfile::TempDir,
    child: Option<Child>,
}

impl Server {
    /// `None` (after a loud message) only when no `nats-server` binary exists.
    pub fn start() -> Option<Server> {
        let Some(binary) = binary() else {
            eprintln!(
                "\n*** SKIPPED: nats-server not found (apt-get install nats-server, or set \
                 OPENSOC_NATS_SERVER); the JetStream tests did not run ***\n"
            );
            return None;
        };
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut server = Server {
            binary,
            port,
            store: tempfile::tempdir().expect("a temp dir"),
            child: None,
        };
        server.spawn();
        Some(server)
    }

    fn spawn(&mut self) {
        let child = Command::new(&self.binary)
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(self.store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// `kill -9` of the server.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }

    /// SIGTERM: the server writes its state and exits.
    pub fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id().to_string();
            let sent = Command::new("kill").args(["-TERM", &pid]).status();
            if !sent.is_ok_and(|s| s.success()) {
                child.kill().ok();
            }
            child.wait().ok();
        }
    }

    /// A new server process on the same port and store.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A stand-in for the model: `cost` per entry (a sleep, as a model on another machine
/// costs this one nothing), a verdict naming the entry, and a failure for poison.
pub fn stand_in(cost: Duration) -> impl Fn(&[WorkItem]) -> Vec<StepResult> + Send + Sync {
    move |items: &[WorkItem]| {
        items
            .iter()
            .map(|item| {
                std::thread::sleep(cost);
                if item.text.contains(POISON) {
                    return Err(format!("stand-in model cannot read {}", item.id));
                }
                Ok(Verdict::from_answer(
                    item.id.clone(),
                    item.text.clone(),
                    format!("seen {}", item.text.len()),
                    Answer::default(),
                ))
            })
            .collect()
    }
}

/// `n` entries over three sources.
pub fn entries(n: usize) -> Vec<WorkItem> {
    (0..n)
        .map(|i| {
            let source = format!("/var/log/site-{}/access.log", i % 3);
            WorkItem::new(
                source.clone(),
                format!("{source}:{}", i / 3 + 1),
                format!("10.0.0.{} - - \"GET /page/{i} HTTP/1.1\" 200", i % 250),
            )
        })
        .collect()
}
