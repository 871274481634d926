//! RFC 5424 syslog messages over TCP with RFC 6587 octet counting.

use std::io::{self, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use super::{SendError, Transport};
use crate::alert::Alert;

/// Facility 4, "security/authorization messages" (RFC 5424, table 1).
pub const FACILITY: u8 = 4;
const APP_NAME: &str = "opensoc";
const MSG_ID: &str = "verdict";

/// `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - MSG`: one verdict, no structured
/// data, `text` as the message (MSG-ANY: no byte-order mark, so receivers that do not
/// expect one see the payload unchanged).
pub fn message(alert: &Alert<'_>, hostname: &str, text: &str) -> String {
    let pri = u16::from(FACILITY) * 8 + u16::from(alert.level.row().syslog_severity);
    format!(
        "<{pri}>1 {} {} {APP_NAME} {} {MSG_ID} - {text}",
        alert.created,
        header_field(hostname, 255),
        std::process::id()
    )
}

/// `MSG-LEN SP SYSLOG-MSG` (RFC 6587 3.4.1): the length in bytes, so messages may
/// contain line breaks.
pub fn frame(message: &str) -> Vec<u8> {
    let mut out = format!("{} ", message.len()).into_bytes();
    out.extend_from_slice(message.as_bytes());
    out
}

/// A header field is 1-`max` printable US-ASCII characters; anything else is the
/// NILVALUE `-` or replaced.
fn header_field(s: &str, max: usize) -> String {
    let cleaned: String = s
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if cleaned.is_empty() {
        "-".into()
    } else {
        cleaned
    }
}

/// This machine's name for the HOSTNAME field.
pub(crate) fn local_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| header_field(h.trim(), 255))
        .unwrap_or_else(|| "-".into())
}

/// A TCP connection to the receiver, opened on first use and again after it breaks.
pub(crate) struct SyslogTcp {
    addr: String,
    timeout: Duration,
    stream: Option<TcpStream>,
}

impl SyslogTcp {
    pub(crate) fn new(addr: String, timeout: Duration) -> Self {
        SyslogTcp {
            addr,
            timeout,
            stream: None,
        }
    }

    fn connect(&self) -> io::Result<TcpStream> {
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
        for addr in self.addr.to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, self.timeout) {
                Ok(stream) => {
                    stream.set_write_timeout(Some(self.timeout))?;
                    stream.set_nodelay(true)?;
                    return Ok(stream);
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

impl Transport for SyslogTcp {
    fn send(&mut self, payload: &[u8]) -> Result<(), SendError> {
        // A receiver that closed the connection is noticed before writing: a write into
        // a half-closed socket succeeds locally and the message would be lost.
        if self.stream.as_ref().is_some_and(peer_closed) {
            self.stream = None;
        }
        if self.stream.is_none() {
            let stream = self
                .connect()
                .map_err(|e| SendError::Retry(format!("connecting to {}: {e}", self.addr)))?;
            self.stream = Some(stream);
        }
        let Some(stream) = self.stream.as_mut() else {
            return Err(SendError::Retry("no connection".into()));
        };
        match stream.write_all(payload).and_then(|()| stream.flush()) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.stream = None;
                Err(SendError::Retry(format!("writing to {}: {e}", self.addr)))
            }
        }
    }

    fn gives_up(&self) -> bool {
        false
    }
}

/// True when the receiver has closed its side (a read would return end of file) or the
/// connection is in error. Receivers send nothing, so pending data is not expected;
/// it is left unread.
fn peer_closed(stream: &TcpStream) -> bool {
    if stream.set_nonblocking(true).is_err() {
        return true;
    }
    let mut byte = [0u8; 1];
    let closed = match stream.peek(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != io::ErrorKind::WouldBlock,
    };
    closed || stream.set_nonblocking(false).is_err()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::tests::brute_force;
    use opensoc_ingest::Timestamp;

    #[test]
    fn rfc5424_header_and_octet_count() {
        let v = brute_force();
        let alert = Alert::new(&v, Timestamp(1_700_000_000_123));
        let msg = message(&alert, "web 01\n", "héllo");
        // facility 4 * 8 + severity 3 (high -> error)
        let expected = format!(
            "<35>1 2023-11-14T22:13:20.123Z web01 opensoc {} verdict - héllo",
            std::process::id()
        );
        assert_eq!(msg, expected);
        let framed = frame(&msg);
        let (len, rest) = std::str::from_utf8(&framed)
            .unwrap()
            .split_once(' ')
            .unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), rest.len());
        assert_eq!(rest.len(), msg.len());
        assert_ne!(
            msg.chars().count(),
            msg.len(),
            "length counts bytes, not characters"
        );
        assert_eq!(header_field("\u{7}", 255), "-");
    }
}
