//! `--follow`: `tail -F` semantics. Files are polled; new data is read as it arrives, a
//! file that shrinks was truncated and is read again from the start, and a path that
//! points to a new file (rotation) is reopened after the old file's last bytes are read.
//! Line numbers restart at 1 in a truncated or rotated file.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;

use tracing::{info, warn};

use crate::intake::IntakeConfig;
use crate::stats::inc;
use crate::stream::{LineSplitter, Sink, Stream};

/// Polls without new data after which a partial last line or an open multi-line record
/// is emitted anyway (a writer that paused mid-record).
const IDLE_FLUSH_POLLS: u32 = 4;

pub(crate) struct Follower {
    path: PathBuf,
    file: Option<File>,
    identity: (u64, u64),
    offset: u64,
    splitter: LineSplitter,
    stream: Stream,
    idle: u32,
    plain: bool,
}

fn identity(meta: &std::fs::Metadata) -> (u64, u64) {
    (meta.dev(), meta.ino())
}

impl Follower {
    /// Opens a file to follow. `None` (warned and counted) when it cannot be opened.
    pub fn open(path: &Path, cfg: &IntakeConfig, sink: Sink) -> Option<Follower> {
        let origin: Arc<str> = Arc::from(path.display().to_string());
        let opened = File::open(path).and_then(|mut f| {
            let meta = f.metadata()?;
            let mut magic = [0u8; 8];
            let n = f.read(&mut magic)?;
            f.seek(SeekFrom::Start(0))?;
            Ok((f, meta, magic, n))
        });
        let (file, meta, magic, n) = match opened {
            Ok(x) => x,
            Err(e) => {
                inc(&sink.counters.unreadable);
                warn!(path = %origin, reason = %e, "Cannot open log file.");
                return None;
            }
        };
        let head = &magic[..n];
        let plain = !head.starts_with(&[0x1f, 0x8b]) && !head.starts_with(b"ElfFile\0");
        Some(Follower {
            path: path.to_path_buf(),
            file: Some(file),
            identity: identity(&meta),
            offset: 0,
            splitter: LineSplitter::new(cfg.max_entry_bytes),
            stream: Stream::new(origin, cfg, sink),
            idle: 0,
            plain,
        })
    }

    /// Compressed and EVTX files are read once, not followed.
    pub fn is_plain(&self) -> bool {
        self.plain
    }

    /// Reads what is new. Returns false when the consumer has gone.
    pub fn poll(&mut self) -> bool {
        let Some(file) = &mut self.file else {
            return self.reopen();
        };
        if let Ok(meta) = file.metadata() {
            if meta.len() < self.offset {
                info!(path = %self.stream.origin, "Log file truncated; reading from the start.");
                if file.seek(SeekFrom::Start(0)).is_ok() {
                    self.offset = 0;
                    self.splitter.reset();
                }
            }
        }
        let mut buf = vec![0u8; 64 * 1024];
        let mut got = false;
        loop {
            match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    got = true;
                    self.offset += n as u64;
                    let stream = &mut self.stream;
                    if !self.splitter.feed(&buf[..n], &mut |l| stream.line(l)) {
                        return false;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    warn!(path = %self.stream.origin, reason = %e, "Read from followed file failed.");
                    break;
                }
            }
        }
        if got {
            self.idle = 0;
            return true;
        }
        self.idle = self.idle.saturating_add(1);
        if self.idle == IDLE_FLUSH_POLLS && !self.flush() {
            return false;
        }
        // Rotated: the path now names another file (or was moved away and recreated).
        match std::fs::metadata(&self.path) {
            Ok(meta) if identity(&meta) != self.identity => {
                info!(path = %self.stream.origin, "Log file rotated; reopening.");
                if !self.flush() {
                    return false;
                }
                self.reopen()
            }
            _ => true,
        }
    }

    fn flush(&mut self) -> bool {
        let stream = &mut self.stream;
        self.splitter.finish(&mut |l| stream.line(l)) && self.stream.flush_pending()
    }

    fn reopen(&mut self) -> bool {
        match File::open(&self.path).and_then(|f| Ok((f.metadata()?, f))) {
            Ok((meta, f)) => {
                self.identity = identity(&meta);
                self.file = Some(f);
                self.offset = 0;
                self.splitter.reset();
                self.idle = 0;
                self.poll()
            }
            Err(_) => {
                // Not there yet (between rename and create): try again next poll.
                self.file = None;
                true
            }
        }
    }

    pub fn finish(&mut self) -> bool {
        self.flush() && self.stream.finish()
    }
}

/// Polls every follower until shutdown.
pub(crate) fn follow_all(mut followers: Vec<Follower>, cfg: &IntakeConfig, sink: &Sink) {
    while !sink.stopped() {
        for f in &mut followers {
            if !f.poll() {
                return;
            }
        }
        thread::sleep(cfg.poll_interval);
    }
    for f in &mut followers {
        if !f.finish() {
            return;
        }
    }
}
