//! Syslog listeners: UDP (one message per datagram) and TCP (RFC 6587 octet counting,
//! `LEN SP MSG`, or newline framing, detected per message).

use std::io::{self, Read};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use tracing::warn;

use crate::intake::IntakeConfig;
use crate::stats::inc;
use crate::stream::{Sink, Stream};

/// How long a blocked socket read waits before checking for shutdown.
const WAKE: Duration = Duration::from_millis(200);

/// Largest octet-counted frame accepted; a bigger length prefix is a framing error.
const MAX_FRAME: usize = 16 * 1024 * 1024;

/// Open TCP connections per listener; more are refused so a flood of connections cannot
/// exhaust threads.
const MAX_CONNECTIONS: usize = 256;

/// The stream name (id prefix) of a listener's messages: `syslog/udp/127.0.0.1:514`.
pub(crate) fn origin(proto: &str, addr: SocketAddr) -> Arc<str> {
    Arc::from(format!("syslog/{proto}/{addr}"))
}

fn transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

pub(crate) fn serve_udp(sock: UdpSocket, addr: SocketAddr, cfg: &IntakeConfig, sink: Sink) {
    if let Err(e) = sock.set_read_timeout(Some(WAKE)) {
        warn!(%addr, reason = %e, "Cannot set syslog socket timeout.");
    }
    let origin = origin("udp", addr);
    let mut stream = Stream::new(origin, &stream_config(cfg), sink.clone()).lossy();
    let mut buf = vec![0u8; 65_536];
    let mut n = 0u64;
    while !sink.stopped() {
        match sock.recv_from(&mut buf) {
            Ok((len, _peer)) => {
                n += 1;
                if !stream.message(n, &buf[..len]) {
                    return;
                }
            }
            Err(e) if transient(&e) => {}
            Err(e) => {
                warn!(%addr, reason = %e, "Syslog UDP receive failed.");
                thread::sleep(WAKE);
            }
        }
    }
    stream.finish();
}

pub(crate) fn serve_tcp(listener: TcpListener, addr: SocketAddr, cfg: &IntakeConfig, sink: Sink) {
    if let Err(e) = listener.set_nonblocking(true) {
        warn!(%addr, reason = %e, "Cannot make syslog listener non-blocking.");
    }
    let origin = origin("tcp", addr);
    let counter = Arc::new(AtomicU64::new(0));
    let active = Arc::new(AtomicUsize::new(0));
    while !sink.stopped() {
        match listener.accept() {
            Ok((_conn, peer)) if active.load(Ordering::Relaxed) >= MAX_CONNECTIONS => {
                inc(&sink.counters.unreadable);
                warn!(%peer, limit = MAX_CONNECTIONS, "Refused syslog connection: too many open.");
            }
            Ok((conn, peer)) => {
                let conn_active = active.clone();
                active.fetch_add(1, Ordering::Relaxed);
                let origin = origin.clone();
                let counter = counter.clone();
                let sink = sink.clone();
                let cfg = stream_config(cfg);
                let spawned =
                    thread::Builder::new()
                        .name("ingest-tcp-conn".into())
                        .spawn(move || {
                            serve_conn(conn, peer, origin, counter, &cfg, sink);
                            conn_active.fetch_sub(1, Ordering::Relaxed);
                        });
                if let Err(e) = spawned {
                    active.fetch_sub(1, Ordering::Relaxed);
                    warn!(%peer, reason = %e, "Cannot start syslog connection thread.");
                }
            }
            Err(e) if transient(&e) => thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                warn!(%addr, reason = %e, "Syslog TCP accept failed.");
                thread::sleep(WAKE);
            }
        }
    }
}

/// Syslog messages are records by themselves: no blocks mode.
fn stream_config(cfg: &IntakeConfig) -> IntakeConfig {
    IntakeConfig {
        blocks: false,
        sources: Vec::new(),
        ..cfg.clone()
    }
}

fn serve_conn(
    mut conn: TcpStream,
    peer: SocketAddr,
    origin: Arc<str>,
    counter: Arc<AtomicU64>,
    cfg: &IntakeConfig,
    sink: Sink,
) {
    let max = cfg.max_entry_bytes;
    let setup = conn
        .set_nonblocking(false)
        .and_then(|()| conn.set_read_timeout(Some(WAKE)));
    if let Err(e) = setup {
        warn!(%peer, reason = %e, "Cannot configure syslog connection.");
    }
    // Messages of one listener share a counter, so ids stay unique across connections.
    let mut stream = Stream::new(origin, cfg, sink.clone());
    let mut framer = SyslogFramer::new(max);
    let mut buf = vec![0u8; 16 * 1024];
    let deliver = |msg: &[u8], stream: &mut Stream| {
        let no = counter.fetch_add(1, Ordering::Relaxed) + 1;
        stream.message(no, msg)
    };
    loop {
        if sink.stopped() {
            break;
        }
        match conn.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                framer.feed(&buf[..n]);
                loop {
                    match framer.next_frame() {
                        Some(Ok(msg)) => {
                            if !deliver(&msg, &mut stream) {
                                return;
                            }
                        }
                        Some(Err(reason)) => {
                            inc(&stream.counters().skipped);
                            warn!(%peer, reason = %reason, "Closing syslog connection after a framing error.");
                            return;
                        }
                        None => break,
                    }
                }
            }
            Err(e) if transient(&e) => {}
            Err(e) => {
                warn!(%peer, reason = %e, "Syslog TCP read failed.");
                break;
            }
        }
    }
    if let Some(msg) = framer.finish() {
        deliver(&msg, &mut stream);
    }
    stream.flush_pending();
}

/// RFC 6587 framing: a frame starting with a digit is `LEN SP MSG` (octet counting);
/// otherwise it runs to the next newline (non-transparent framing).
#[derive(Debug, Default)]
pub struct SyslogFramer {
    buf: Vec<u8>,
    max: usize,
}

impl SyslogFramer {
    /// A framer that cuts newline-framed messages longer than `2 * max` bytes into pieces.
    pub fn new(max: usize) -> SyslogFramer {
        SyslogFramer {
            buf: Vec::new(),
            max: max.max(64),
        }
    }

    /// Appends received bytes.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete message, `None` when more bytes are needed, or a framing error.
    pub fn next_frame(&mut self) -> Option<Result<Vec<u8>, String>> {
        let skip = self
            .buf
            .iter()
            .take_while(|&&b| matches!(b, b'\n' | b'\r' | 0))
            .count();
        self.buf.drain(..skip);
        let first = *self.buf.first()?;
        if first.is_ascii_digit() {
            let digits = self.buf.iter().take_while(|b| b.is_ascii_digit()).count();
            if digits > 9 {
                self.buf.clear();
                return Some(Err(format!("octet count of {digits} digits")));
            }
            match self.buf.get(digits) {
                None => return None,
                Some(b' ') => {
                    let len: usize = std::str::from_utf8(&self.buf[..digits])
                        .ok()?
                        .parse()
                        .ok()?;
                    if len > MAX_FRAME {
                        self.buf.clear();
                        return Some(Err(format!("octet count {len} exceeds {MAX_FRAME}")));
                    }
                    let end = digits + 1 + len;
                    if self.buf.len() < end {
                        return None;
                    }
                    let msg = self.buf[digits + 1..end].to_vec();
                    self.buf.drain(..end);
                    return Some(Ok(msg));
                }
                // Digits not followed by a space: a newline-framed message.
                Some(_) => {}
            }
        }
        match self.buf.iter().position(|&b| b == b'\n') {
            Some(i) => {
                let msg = self.buf[..i].to_vec();
                self.buf.drain(..=i);
                Some(Ok(msg))
            }
            None if self.buf.len() > 2 * self.max => {
                let msg = std::mem::take(&mut self.buf);
                Some(Ok(msg))
            }
            None => None,
        }
    }

    /// What is left at the end of the connection.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        let rest = std::mem::take(&mut self.buf);
        let trimmed = rest.iter().rposition(|b| !matches!(b, b'\n' | b'\r' | 0))?;
        Some(rest[..=trimmed].to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(chunks: &[&[u8]]) -> Vec<Result<String, String>> {
        let mut f = SyslogFramer::new(64);
        let mut out = Vec::new();
        for c in chunks {
            f.feed(c);
            while let Some(m) = f.next_frame() {
                let failed = m.is_err();
                out.push(m.map(|b| String::from_utf8_lossy(&b).into_owned()));
                if failed {
                    return out;
                }
            }
        }
        if let Some(rest) = f.finish() {
            out.push(Ok(String::from_utf8_lossy(&rest).into_owned()));
        }
        out
    }

    #[test]
    fn octet_counting_and_newlines_mixed_and_split() {
        let got = frames(&[b"11 <13>hello\nw", b"orld\n5 ab", b"cde<14>tail"]);
        assert_eq!(
            got,
            vec![
                Ok("<13>hello\nw".to_owned()),
                Ok("orld".to_owned()),
                Ok("abcde".to_owned()),
                Ok("<14>tail".to_owned())
            ]
        );
    }

    #[test]
    fn bad_octet_count_is_an_error() {
        let got = frames(&[b"99999999999 x"]);
        assert!(matches!(got.first(), Some(Err(_))), "{got:?}");
    }

    #[test]
    fn digit_started_line_without_space_is_newline_framed() {
        assert_eq!(
            frames(&[b"2025-03-15 msg\n"]),
            vec![Ok("2025-03-15 msg".to_owned())]
        );
    }
}
