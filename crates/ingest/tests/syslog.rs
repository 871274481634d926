//! Syslog over loopback: every message sent over UDP and TCP (both framings) comes out.

use std::collections::BTreeSet;
use std::io::Write;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use opensoc_ingest::{Entry, GroupingConfig, Intake, IntakeConfig, Source};

const N: usize = 200;

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Collects entries until `want` arrived or 20 s passed (a bounded loop, never a hang).
fn collect(intake: &Intake, want: usize) -> Vec<Entry> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = Vec::new();
    while got.len() < want && Instant::now() < deadline {
        if let Ok(Some(e)) = intake.next_timeout(Duration::from_millis(100)) {
            got.push(e);
        }
    }
    got
}

#[test]
fn receives_every_message_over_udp_and_tcp() {
    let cfg = IntakeConfig {
        grouping: GroupingConfig::disabled(),
        syslog_year: Some(2025),
        ..IntakeConfig::new(vec![
            Source::SyslogUdp(loopback()),
            Source::SyslogTcp(loopback()),
        ])
    };
    let intake = Intake::start(cfg).expect("start");
    let addrs: Vec<(Source, SocketAddr)> = intake.listeners().to_vec();
    let udp_addr = addrs
        .iter()
        .find(|(s, _)| matches!(s, Source::SyslogUdp(_)))
        .map(|(_, a)| *a)
        .expect("udp");
    let tcp_addr = addrs
        .iter()
        .find(|(s, _)| matches!(s, Source::SyslogTcp(_)))
        .map(|(_, a)| *a)
        .expect("tcp");

    let udp = UdpSocket::bind(loopback()).expect("bind");
    for i in 0..N {
        let msg = format!("<34>Mar 15 01:05:33 host sshd[1]: udp message {i}");
        udp.send_to(msg.as_bytes(), udp_addr).expect("send");
        if i % 50 == 49 {
            // Give the listener a moment: the kernel drops datagrams a full socket buffer
            // cannot hold, which is a different thing from the intake dropping them.
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // One connection with octet counting, one with newline framing, one message split
    // across writes.
    let mut octet = TcpStream::connect(tcp_addr).expect("connect");
    for i in 0..N {
        let msg = format!("<34>1 2025-03-15T01:05:33Z host app - - - tcp octet {i}\nsecond line");
        write!(octet, "{} {}", msg.len(), msg).expect("write");
    }
    octet.flush().expect("flush");
    let mut lines = TcpStream::connect(tcp_addr).expect("connect");
    for i in 0..N {
        writeln!(lines, "<34>Mar 15 01:05:33 host app: tcp line {i}").expect("write");
    }
    lines
        .write_all(b"<34>Mar 15 01:05:33 host app: split ")
        .expect("write");
    lines.flush().expect("flush");
    std::thread::sleep(Duration::from_millis(50));
    lines.write_all(b"message\n").expect("write");
    drop(octet);
    drop(lines);

    let got = collect(&intake, 3 * N + 1);
    let texts: BTreeSet<String> = got.iter().map(|e| e.text.clone()).collect();
    for i in 0..N {
        assert!(
            texts.contains(&format!(
                "<34>Mar 15 01:05:33 host sshd[1]: udp message {i}"
            )),
            "udp {i}"
        );
        assert!(
            texts.contains(&format!(
                "<34>1 2025-03-15T01:05:33Z host app - - - tcp octet {i}\nsecond line"
            )),
            "tcp octet {i}"
        );
        assert!(
            texts.contains(&format!("<34>Mar 15 01:05:33 host app: tcp line {i}")),
            "tcp line {i}"
        );
    }
    assert!(texts.contains("<34>Mar 15 01:05:33 host app: split message"));
    assert_eq!(got.len(), 3 * N + 1);
    let udp_ids: BTreeSet<&str> = got
        .iter()
        .filter(|e| e.id.starts_with("syslog/udp/"))
        .map(|e| e.id.as_str())
        .collect();
    assert_eq!(udp_ids.len(), N, "unique ids");
    assert!(udp_ids.contains(format!("syslog/udp/{udp_addr}:1").as_str()));
    let stats = intake.stats();
    assert_eq!(stats.dropped, 0);
    assert_eq!(stats.read, (3 * N + 1) as u64);

    intake.shutdown();
    // After shutdown the iterator ends (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match intake.next_timeout(Duration::from_millis(100)) {
            Ok(None) => break,
            _ if Instant::now() > deadline => panic!("intake did not end after shutdown"),
            _ => {}
        }
    }
}

#[test]
fn syslog_bursts_close_when_the_window_passes() {
    let cfg = IntakeConfig {
        grouping: GroupingConfig {
            gap_secs: 1,
            ..GroupingConfig::default()
        },
        syslog_year: Some(2025),
        ..IntakeConfig::new(vec![Source::SyslogUdp(loopback())])
    };
    let intake = Intake::start(cfg).expect("start");
    let addr = intake.listeners()[0].1;
    let udp = UdpSocket::bind(loopback()).expect("bind");
    for i in 0..8 {
        let msg = format!("<38>Mar 15 01:05:3{i} host sshd[9]: Failed password for root from 203.0.113.42 port 22 ssh2");
        udp.send_to(msg.as_bytes(), addr).expect("send");
    }
    // No end of input: the incident must come out because the live window closed.
    let got = collect(&intake, 1);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].events, 8);
    assert!(
        got[0]
            .text
            .contains("[...8 total failed auth attempts from 203.0.113.42"),
        "{}",
        got[0].text
    );
    intake.shutdown();
}
