//! `--follow`: `tail -F` semantics. Files are polled; new data is read as it arrives, and
//! a path that points to a new file (another inode: rotation) is reopened after the old
//! file's last bytes are read. A truncated file is read again from the start; truncation
//! is seen by size (the file is shorter than what was read) and, for a file truncated and
//! at once rewritten past its old size, by content: the first bytes read and the last
//! byte read are checked on every poll, and a file whose start or whose byte before the
//! read offset changed is read again from the start, so the new content is never picked
//! up mid-line. Line numbers restart at 1 in a truncated or rotated file.
//!
//! A line is only emitted once its newline is there (or at rotation and shutdown), so a
//! writer that pauses mid-line does not split it into two entries; a multi-line record
//! whose lines are complete is emitted when the writer pauses.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;

use tracing::{info, warn};

use crate::intake::IntakeConfig;
use crate::stats::inc;
use crate::stream::{binary_block, LineSplitter, Sink, Stream};

/// Polls without new data after which an open multi-line record is emitted anyway (a
/// writer that paused between records).
const IDLE_FLUSH_POLLS: u32 = 4;

/// Bytes from the start of the file kept to recognise it after a rewrite.
const FINGERPRINT_BYTES: usize = 1024;

pub(crate) struct Follower {
    path: PathBuf,
    file: Option<File>,
    identity: (u64, u64),
    offset: u64,
    splitter: LineSplitter,
    stream: Stream,
    idle: u32,
    plain: bool,
    /// The first bytes read since the last (re)start, up to [`FINGERPRINT_BYTES`].
    head: Vec<u8>,
    /// The byte at `offset - 1`.
    last: Option<u8>,
    /// The file's first block was binary: it is skipped until it is truncated or rotated.
    binary: bool,
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
            head: Vec::new(),
            last: None,
            binary: false,
        })
    }

    /// Compressed and EVTX files are read once, not followed.
    pub fn is_plain(&self) -> bool {
        self.plain
    }

    /// Whether the open file no longer holds what was read from it: shorter than the read
    /// offset, or another start, or another byte just before the offset.
    fn truncated(&self, file: &File) -> Option<&'static str> {
        let len = file.metadata().ok()?.len();
        if len < self.offset {
            return Some("shorter than what was read");
        }
        let mut head = vec![0u8; self.head.len()];
        if file.read_exact_at(&mut head, 0).is_err() || head != self.head {
            return Some("its first bytes changed");
        }
        if let Some(last) = self.last {
            let mut b = [0u8; 1];
            if file.read_exact_at(&mut b, self.offset - 1).is_err() || b[0] != last {
                return Some("the bytes before the read offset changed");
            }
        }
        None
    }

    /// Reads what is new. Returns false when the consumer has gone.
    pub fn poll(&mut self) -> bool {
        if self.file.is_none() {
            return self.reopen();
        }
        if self.offset > 0 {
            if let Some(why) = self.file.as_ref().and_then(|f| self.truncated(f)) {
                info!(path = %self.stream.origin, reason = why, "Log file truncated; reading from the start.");
                let Some(file) = &mut self.file else {
                    return true;
                };
                if file.seek(SeekFrom::Start(0)).is_ok() {
                    if self.splitter.has_partial() {
                        // The start of a line whose end was truncated away: a fragment.
                        inc(&self.stream.counters().skipped);
                        warn!(path = %self.stream.origin, line = self.splitter.line_no() + 1, reason = "truncated mid-line", "Dropped the partial last line of a truncated log file.");
                    }
                    self.restart();
                }
            }
        }
        let Some(file) = &mut self.file else {
            return true;
        };
        let mut buf = vec![0u8; 64 * 1024];
        let mut got = false;
        loop {
            if self.binary {
                break;
            }
            match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    got = true;
                    let chunk = &buf[..n];
                    if self.offset == 0 {
                        if let Some(why) = binary_block(chunk) {
                            self.stream.skip_binary(&why);
                            self.binary = true;
                        }
                    }
                    let room = FINGERPRINT_BYTES.saturating_sub(self.head.len());
                    self.head.extend_from_slice(&chunk[..room.min(n)]);
                    self.last = chunk.last().copied();
                    self.offset += n as u64;
                    if self.binary {
                        break;
                    }
                    let stream = &mut self.stream;
                    if !self.splitter.feed(chunk, &mut |l| stream.line(l)) {
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
        // Complete lines only: a partial line waits for its newline.
        if self.idle == IDLE_FLUSH_POLLS && !self.stream.flush_pending() {
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

    /// Reading starts again at the start of the file.
    fn restart(&mut self) {
        self.offset = 0;
        self.splitter.reset();
        self.head.clear();
        self.last = None;
        self.binary = false;
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
                self.restart();
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
