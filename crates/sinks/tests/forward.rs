//! Forwarders against listeners the tests start on 127.0.0.1: every verdict arrives
//! once and in order across a receiver restart, a full queue drops (and counts) only
//! what does not fit, a webhook is retried after a 500 and given up on after a 4xx.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use opensoc_sinks::forward::Payload;
use opensoc_sinks::{
    Alert, ForwardConfig, ForwardTarget, Forwarder, Outputs, SiemFormat, SiemWriter, VerdictSink,
};
use opensoc_verdict::Verdict;
use serde_json::Value;

fn config() -> ForwardConfig {
    ForwardConfig {
        capacity: 100,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        max_attempts: 3,
        drain_timeout: Duration::from_secs(5),
        io_timeout: Duration::from_secs(2),
    }
}

fn numbered(n: usize) -> Verdict {
    let mut v = common::verdicts().swap_remove(1);
    v.id = format!("auth.log:{n}");
    v
}

fn send(f: &Forwarder, n: usize) -> bool {
    let v = numbered(n);
    f.send(&Alert::now(&v))
}

/// Reads one octet-counted frame: `LEN SP MSG`; `None` at end of stream.
fn read_frame(r: &mut impl BufRead) -> Option<String> {
    let mut len = Vec::new();
    r.read_until(b' ', &mut len).ok()?;
    if len.is_empty() {
        return None;
    }
    let len: usize = std::str::from_utf8(&len[..len.len() - 1])
        .ok()?
        .parse()
        .ok()?;
    let mut msg = vec![0; len];
    r.read_exact(&mut msg).ok()?;
    String::from_utf8(msg).ok()
}

/// The verdict ID carried in an RFC 5424 message whose MSG is a JSON verdict.
fn verdict_id(message: &str) -> String {
    assert!(message.starts_with("<35>1 "), "{message}");
    let json = message.splitn(8, ' ').nth(7).expect("MSG");
    let v: Value = serde_json::from_str(json).expect("JSON verdict");
    v["id"].as_str().expect("id").to_string()
}

fn syslog_target(addr: SocketAddr) -> ForwardTarget {
    ForwardTarget::SyslogTcp {
        addr: addr.to_string(),
        payload: Payload::Jsonl,
    }
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn syslog_every_verdict_arrives_once_in_order_across_a_reconnect() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (got_tx, got_rx) = mpsc::channel::<String>();
    let (closed_tx, closed_rx) = mpsc::channel::<()>();
    let server = thread::spawn(move || {
        // The first connection takes three messages, then the receiver drops it.
        let (conn, _) = listener.accept().unwrap();
        let mut r = BufReader::new(conn);
        for _ in 0..3 {
            got_tx
                .send(verdict_id(&read_frame(&mut r).unwrap()))
                .unwrap();
        }
        drop(r);
        closed_tx.send(()).unwrap();
        // The forwarder comes back on a new connection with the rest.
        let (conn, _) = listener.accept().unwrap();
        let mut r = BufReader::new(conn);
        while let Some(m) = read_frame(&mut r) {
            got_tx.send(verdict_id(&m)).unwrap();
        }
    });

    let f = Forwarder::start(syslog_target(addr), config()).unwrap();
    for n in 1..=3 {
        assert!(send(&f, n));
    }
    closed_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    for n in 4..=6 {
        assert!(send(&f, n));
    }
    let stats = f.finish();
    server.join().unwrap();
    let got: Vec<String> = got_rx.try_iter().collect();
    let want: Vec<String> = (1..=6).map(|n| format!("auth.log:{n}")).collect();
    assert_eq!(got, want);
    assert_eq!(
        (stats.sent, stats.dropped, stats.failed, stats.unsent),
        (6, 0, 0, 0)
    );
}

#[test]
fn syslog_full_queue_drops_are_counted_and_the_rest_arrive_after_a_restart() {
    // A port with nothing behind it: connections are refused until the listener returns.
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let f = Forwarder::start(
        syslog_target(addr),
        ForwardConfig {
            capacity: 3,
            ..config()
        },
    )
    .unwrap();
    let accepted: Vec<bool> = (1..=10).map(|n| send(&f, n)).collect();
    assert_eq!(
        accepted,
        [true, true, true, false, false, false, false, false, false, false]
    );
    assert_eq!(f.stats().dropped, 7);
    wait_for("a failed connection attempt", || f.stats().retries >= 2);

    let listener = TcpListener::bind(addr).unwrap();
    let (conn, _) = listener.accept().unwrap();
    let mut r = BufReader::new(conn);
    let got: Vec<String> = (0..3)
        .map(|_| verdict_id(&read_frame(&mut r).unwrap()))
        .collect();
    assert_eq!(got, ["auth.log:1", "auth.log:2", "auth.log:3"]);
    let stats = f.finish();
    assert_eq!(
        (stats.queued, stats.sent, stats.dropped, stats.unsent),
        (3, 3, 7, 0)
    );
    assert!(read_frame(&mut r).is_none(), "nothing sent twice");
}

#[test]
fn syslog_what_cannot_be_sent_in_the_drain_time_is_counted_unsent() {
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let f = Forwarder::start(
        syslog_target(addr),
        ForwardConfig {
            drain_timeout: Duration::from_millis(200),
            ..config()
        },
    )
    .unwrap();
    send(&f, 1);
    send(&f, 2);
    let start = Instant::now();
    let stats = f.finish();
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert_eq!((stats.sent, stats.unsent, stats.dropped), (0, 2, 0));
}

/// A request the webhook receiver saw: request line, content type, JSON body.
type Request = (String, String, Value);

/// A webhook receiver answering each request with the next status of `statuses`
/// (200 once they run out); returns the requests it saw as (request line, content
/// type, body).
fn http_server(statuses: Vec<u16>, requests: usize) -> (String, thread::JoinHandle<Vec<Request>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/hooks/secret-token",
        listener.local_addr().unwrap()
    );
    let handle = thread::spawn(move || {
        let mut seen = Vec::new();
        let mut statuses = statuses.into_iter();
        for _ in 0..requests {
            let (conn, _) = listener.accept().unwrap();
            let mut r = BufReader::new(conn.try_clone().unwrap());
            let mut request_line = String::new();
            r.read_line(&mut request_line).unwrap();
            let (mut length, mut content_type) = (0usize, String::new());
            loop {
                let mut h = String::new();
                r.read_line(&mut h).unwrap();
                let h = h.trim_end();
                if h.is_empty() {
                    break;
                }
                let (name, value) = h.split_once(':').unwrap();
                match name.to_ascii_lowercase().as_str() {
                    "content-length" => length = value.trim().parse().unwrap(),
                    "content-type" => content_type = value.trim().to_string(),
                    _ => {}
                }
            }
            let mut body = vec![0; length];
            r.read_exact(&mut body).unwrap();
            seen.push((
                request_line.trim_end().to_string(),
                content_type,
                serde_json::from_slice(&body).unwrap(),
            ));
            let status = statuses.next().unwrap_or(200);
            let mut conn = conn;
            write!(
                conn,
                "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
            .unwrap();
        }
        seen
    });
    (url, handle)
}

#[test]
fn webhook_is_retried_after_a_500() {
    let (url, server) = http_server(vec![500], 3);
    let f = Forwarder::start(ForwardTarget::Webhook { url }, config()).unwrap();
    send(&f, 1);
    send(&f, 2);
    let stats = f.finish();
    let seen = server.join().unwrap();
    let ids: Vec<&str> = seen
        .iter()
        .map(|(_, _, b)| b["verdict"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["auth.log:1", "auth.log:1", "auth.log:2"]);
    assert_eq!(seen[0].0, "POST /hooks/secret-token HTTP/1.1");
    assert_eq!(seen[0].1, "application/json");
    assert!(seen[0].2["text"]
        .as_str()
        .unwrap()
        .starts_with("*[HIGH] SSH Brute Force Attack"));
    assert_eq!((stats.sent, stats.retries, stats.failed), (2, 1, 0));
}

#[test]
fn webhook_gives_up_after_its_attempts_and_at_once_on_a_client_error() {
    let (url, server) = http_server(vec![503, 503, 503, 404], 5);
    let f = Forwarder::start(ForwardTarget::Webhook { url }, config()).unwrap();
    for n in 1..=3 {
        send(&f, n);
    }
    let stats = f.finish();
    let ids: Vec<String> = server
        .join()
        .unwrap()
        .iter()
        .map(|(_, _, b)| b["verdict"]["id"].as_str().unwrap().to_string())
        .collect();
    // 1: three 503s (max_attempts 3), given up; 2: a 404, not retried; 3: delivered.
    assert_eq!(
        ids,
        [
            "auth.log:1",
            "auth.log:1",
            "auth.log:1",
            "auth.log:2",
            "auth.log:3"
        ]
    );
    assert_eq!((stats.sent, stats.failed, stats.retries), (1, 2, 2));
}

#[test]
fn outputs_write_stdout_and_forward_each_verdict() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let target: ForwardTarget =
        format!("syslog+tcp://{}?format=cef", listener.local_addr().unwrap())
            .parse()
            .unwrap();
    let mut out = Vec::new();
    {
        let mut outputs = Outputs::new(
            Box::new(SiemWriter::new(&mut out, SiemFormat::Ecs)),
            &[target],
            &config(),
        )
        .unwrap();
        for n in 1..=2 {
            outputs.write(&numbered(n)).unwrap();
        }
        let reader = thread::spawn(move || {
            let (conn, _) = listener.accept().unwrap();
            let mut r = BufReader::new(conn);
            (0..2)
                .map(|_| read_frame(&mut r).unwrap())
                .collect::<Vec<_>>()
        });
        outputs.finish().unwrap();
        let frames = reader.join().unwrap();
        assert!(
            frames[0].contains(" - CEF:0|OpenSOC|OpenSOC|"),
            "{}",
            frames[0]
        );
        assert!(
            frames[1].contains("externalId=auth.log:2 "),
            "{}",
            frames[1]
        );
    }
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.lines().count(), 2);
}

#[test]
fn a_receiver_that_never_reads_cannot_block_the_sender() {
    // The listener accepts nothing and reads nothing; sending must still return at once.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let f = Forwarder::start(
        syslog_target(listener.local_addr().unwrap()),
        ForwardConfig {
            capacity: 4,
            drain_timeout: Duration::from_millis(100),
            ..config()
        },
    )
    .unwrap();
    let start = Instant::now();
    for n in 0..1000 {
        send(&f, n);
    }
    assert!(start.elapsed() < Duration::from_secs(5));
    let stats = f.finish();
    // Every verdict is accounted for exactly once.
    assert_eq!(stats.queued + stats.dropped, 1000, "{stats:?}");
    assert_eq!(
        stats.sent + stats.failed + stats.unsent,
        stats.queued,
        "{stats:?}"
    );
}

#[test]
fn a_forwarder_dropped_without_finish_still_drains_its_queue() {
    // No receiver yet: the verdicts wait in the queue when the forwarder is dropped.
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let f = Forwarder::start(syslog_target(addr), config()).unwrap();
    for n in 1..=3 {
        send(&f, n);
    }
    wait_for("a failed connection attempt", || f.stats().retries >= 1);
    let dropper = thread::spawn(move || drop(f));
    thread::sleep(Duration::from_millis(100));
    let listener = TcpListener::bind(addr).unwrap();
    // Bounded: a forwarder that gave up at drop would never connect.
    listener.set_nonblocking(true).unwrap();
    let mut conn = None;
    wait_for("the dropped forwarder to connect", || {
        conn = listener.accept().ok().map(|(c, _)| c);
        conn.is_some()
    });
    let conn = conn.unwrap();
    conn.set_nonblocking(false).unwrap();
    let mut r = BufReader::new(conn);
    let got: Vec<String> = (0..3)
        .map(|_| verdict_id(&read_frame(&mut r).unwrap()))
        .collect();
    assert_eq!(got, ["auth.log:1", "auth.log:2", "auth.log:3"]);
    dropper.join().unwrap();
}
