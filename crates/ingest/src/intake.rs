//! The intake: sources in, [`Entry`]s out, on reader threads joined by bounded queues.
//!
//! ```text
//! files/stdin thread ─┐
//! UDP syslog thread ──┼─ bounded queue ─> grouping thread ─ bounded queue ─> Intake (Iterator)
//! TCP syslog threads ─┘
//! ```
//!
//! Files are read one after the other on one thread, so the order of entries depends only
//! on the input. Full queues make files, stdin and TCP senders wait (backpressure); UDP
//! cannot wait, so a full first queue drops the datagram and counts it in `dropped`. The
//! last queue, in front of the model, applies the overflow policy of [`crate::queue`] to
//! listener entries (benign-looking ones are dropped first, and counted).

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde::Serialize;
use tracing::warn;

use crate::error::IngestError;
use crate::event::{Format, LogEvent};
use crate::group::{Grouped, Grouper, GroupingConfig, Incident, Location};
use crate::queue::{EntryQueue, Pop};
use crate::stats::{add, inc, Counters, Stats};
use crate::stream::{cut_markers_total, cut_middle, LineSplitter, Msg, Sink, Stream};

/// How long the grouping thread waits for the readers to stop after shutdown.
const STOP_DRAIN: Duration = Duration::from_secs(1);

/// Default cap on one entry's text.
pub const DEFAULT_MAX_ENTRY_BYTES: usize = 64 * 1024;

/// Where logs come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A file (plain or gzip, or a `.evtx`), a directory (read recursively, in name order)
    /// or a glob pattern (`logs/**/*.log`).
    Path(PathBuf),
    /// Standard input.
    Stdin,
    /// A syslog listener on UDP, one message per datagram.
    SyslogUdp(SocketAddr),
    /// A syslog listener on TCP, with RFC 6587 octet-counting or newline framing.
    SyslogTcp(SocketAddr),
}

impl std::str::FromStr for Source {
    type Err = IngestError;

    /// `-` is stdin, `udp://ADDR` and `tcp://ADDR` are syslog listeners (`udp://0.0.0.0:514`),
    /// anything else is a path, directory or glob.
    fn from_str(s: &str) -> Result<Source, IngestError> {
        let listener = |rest: &str| {
            rest.parse::<SocketAddr>()
                .map_err(|e| IngestError::Config(format!("bad syslog address {s:?}: {e}")))
        };
        if s == "-" {
            Ok(Source::Stdin)
        } else if let Some(rest) = s.strip_prefix("udp://") {
            Ok(Source::SyslogUdp(listener(rest)?))
        } else if let Some(rest) = s.strip_prefix("tcp://") {
            Ok(Source::SyslogTcp(listener(rest)?))
        } else {
            Ok(Source::Path(PathBuf::from(s)))
        }
    }
}

/// What to read and how.
#[derive(Debug, Clone)]
pub struct IntakeConfig {
    /// Inputs, read in this order (files before listeners' traffic is interleaved).
    pub sources: Vec<Source>,
    /// Each blank-line-separated block is one entry, verbatim (no parsing into separate
    /// events, no grouping): for inputs whose entry boundaries are explicit.
    pub blocks: bool,
    /// Incident grouping; [`GroupingConfig::disabled`] turns it off.
    pub grouping: GroupingConfig,
    /// Keep reading files as they grow, across rotation and truncation (`tail -F`).
    pub follow: bool,
    /// Longest entry text; longer records are cut in the middle with a visible marker.
    pub max_entry_bytes: usize,
    /// Capacity of each queue between threads, the last one (entries waiting for the
    /// consumer) included.
    pub queue_capacity: usize,
    /// How often followed files are checked for new data.
    pub poll_interval: Duration,
    /// Year for RFC 3164 syslog stamps, which carry none; `None` means the current year.
    pub syslog_year: Option<i32>,
}

impl Default for IntakeConfig {
    fn default() -> Self {
        IntakeConfig {
            sources: Vec::new(),
            blocks: false,
            grouping: GroupingConfig::default(),
            follow: false,
            max_entry_bytes: DEFAULT_MAX_ENTRY_BYTES,
            queue_capacity: 1024,
            poll_interval: Duration::from_millis(250),
            syslog_year: None,
        }
    }
}

impl IntakeConfig {
    /// A default config reading `sources`.
    pub fn new(sources: Vec<Source>) -> IntakeConfig {
        IntakeConfig {
            sources,
            ..IntakeConfig::default()
        }
    }
}

/// One unit of work for the model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// `path:LINE`, `path:FIRST-LAST` for multi-line records, blocks and incidents, `-:LINE`
    /// for stdin, `syslog/udp/ADDR:N` for the N-th message of a listener.
    pub id: String,
    /// What the model reads: the raw record, the block, or an incident's rendering.
    pub text: String,
    /// Events behind this entry (1, or an incident's count).
    pub events: usize,
    /// Format of the record (of the first event for incidents).
    pub format: Format,
    /// Where it came from.
    pub location: Location,
    /// The parsed event, for single events.
    pub event: Option<LogEvent>,
    /// The incident, for bursts.
    pub incident: Option<Incident>,
    /// Bytes the intake cut out of this entry's text (over-long records), as its markers
    /// say; 0 when nothing was cut.
    pub cut_bytes: u64,
}

impl Entry {
    fn single(ev: LogEvent, location: Location) -> Entry {
        Entry {
            id: location.id(),
            text: ev.text().into_owned(),
            events: 1,
            format: ev.format,
            location,
            event: Some(ev),
            incident: None,
            cut_bytes: 0,
        }
    }

    fn incident(inc: Box<Incident>) -> Entry {
        Entry {
            id: inc.id(),
            text: inc.render(),
            events: inc.events(),
            format: inc.format,
            location: Location {
                origin: inc.first_location.origin.clone(),
                first_line: inc.first_location.first_line,
                last_line: inc.last_location.last_line,
            },
            event: None,
            incident: Some(*inc),
            cut_bytes: 0,
        }
    }

    /// Whether the entry looks like an attack or a security event: every incident, and
    /// single records that pass [`crate::is_suspicious`]. Used to decide what a full live
    /// queue drops first; it never changes a verdict.
    pub fn suspicious(&self) -> bool {
        self.incident.is_some() || crate::suspicion::is_suspicious(&self.text)
    }

    /// Cuts the text to `max` bytes and records every cut in `cut_bytes`.
    pub(crate) fn seal(&mut self, max: usize) {
        self.cut_bytes = cut_markers_total(&self.text) + cut_middle(&mut self.text, max) as u64;
    }
}

/// A running intake. Iterate it for entries; iteration ends when every finite source is
/// exhausted (never, with listeners or `follow`, until [`Intake::shutdown`]).
pub struct Intake {
    queue: Arc<EntryQueue>,
    counters: Arc<Counters>,
    shutdown: Arc<AtomicBool>,
    listeners: Vec<(Source, SocketAddr)>,
}

impl std::fmt::Debug for Intake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Intake")
            .field("stats", &self.stats())
            .field("listeners", &self.listeners)
            .finish()
    }
}

/// A finite input, resolved from a [`Source`].
#[derive(Debug, Clone)]
enum Input {
    File(PathBuf),
    Stdin,
}

impl Intake {
    /// Resolves paths, binds listeners and starts the reader threads.
    ///
    /// Fails for a path that does not exist or a glob with no match (with the path in the
    /// message), a listener that cannot bind, or an unusable config. Problems inside the
    /// input are never errors here: they are counted and warned.
    pub fn start(cfg: IntakeConfig) -> Result<Intake, IngestError> {
        if cfg.max_entry_bytes < 64 {
            return Err(IngestError::Config(format!(
                "max_entry_bytes must be at least 64, got {}",
                cfg.max_entry_bytes
            )));
        }
        if cfg.queue_capacity == 0 {
            return Err(IngestError::Config(
                "queue_capacity must be at least 1".into(),
            ));
        }
        let counters = Arc::new(Counters::default());
        let mut inputs = Vec::new();
        let mut udp = Vec::new();
        let mut tcp = Vec::new();
        for source in &cfg.sources {
            match source {
                Source::Path(p) => {
                    inputs.extend(resolve_path(p, &counters)?.into_iter().map(Input::File))
                }
                Source::Stdin => inputs.push(Input::Stdin),
                Source::SyslogUdp(addr) => {
                    let sock = UdpSocket::bind(addr).map_err(|e| IngestError::Bind {
                        proto: "udp",
                        addr: *addr,
                        source: e,
                    })?;
                    udp.push(sock);
                }
                Source::SyslogTcp(addr) => {
                    let l = TcpListener::bind(addr).map_err(|e| IngestError::Bind {
                        proto: "tcp",
                        addr: *addr,
                        source: e,
                    })?;
                    tcp.push(l);
                }
            }
        }

        let shutdown = Arc::new(AtomicBool::new(false));
        let (raw_tx, raw_rx) = sync_channel::<Msg>(cfg.queue_capacity);
        let queue = Arc::new(EntryQueue::new(cfg.queue_capacity));
        let sink = Sink {
            tx: raw_tx,
            counters: counters.clone(),
            shutdown: shutdown.clone(),
        };
        let live = cfg.follow || !udp.is_empty() || !tcp.is_empty();
        let mut listeners = Vec::new();
        let mut live_origins: Vec<Arc<str>> = Vec::new();

        for sock in udp {
            let addr = sock.local_addr().map_err(|e| IngestError::Io {
                path: PathBuf::from("syslog/udp"),
                source: e,
            })?;
            listeners.push((Source::SyslogUdp(addr), addr));
            live_origins.push(crate::net::origin("udp", addr));
            let sink = sink.clone();
            let cfg = cfg.clone();
            spawn("ingest-udp", move || {
                crate::net::serve_udp(sock, addr, &cfg, sink)
            })?;
        }
        for l in tcp {
            let addr = l.local_addr().map_err(|e| IngestError::Io {
                path: PathBuf::from("syslog/tcp"),
                source: e,
            })?;
            listeners.push((Source::SyslogTcp(addr), addr));
            live_origins.push(crate::net::origin("tcp", addr));
            let sink = sink.clone();
            let cfg = cfg.clone();
            spawn("ingest-tcp", move || {
                crate::net::serve_tcp(l, addr, &cfg, sink)
            })?;
        }
        if !inputs.is_empty() {
            let sink = sink.clone();
            let cfg = cfg.clone();
            spawn("ingest-files", move || read_inputs(&inputs, &cfg, &sink))?;
        }
        drop(sink);

        let pipeline = Pipeline {
            queue: queue.clone(),
            counters: counters.clone(),
            shutdown: Some(shutdown.clone()),
            live_origins,
            max_text: cfg.max_entry_bytes,
        };
        let grouping = cfg.grouping.clone();
        spawn("ingest-group", move || pipeline.run(raw_rx, grouping, live))?;

        Ok(Intake {
            queue,
            counters,
            shutdown,
            listeners,
        })
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.counters.snapshot()
    }

    /// The addresses the syslog listeners are bound to (useful after binding port 0).
    pub fn listeners(&self) -> &[(Source, SocketAddr)] {
        &self.listeners
    }

    /// Stops listeners and followed files; the iterator ends once what was read is out.
    pub fn shutdown(&self) {
        self.shutdown.store(true, Ordering::Relaxed);
    }

    /// Next entry, waiting at most `timeout`; `Ok(None)` when the intake has ended.
    pub fn next_timeout(&self, timeout: Duration) -> Result<Option<Entry>, Timeout> {
        match self.queue.pop(Some(timeout), true, &self.counters) {
            Pop::Entry(e) => Ok(Some(e)),
            Pop::Timeout => Err(Timeout),
            Pop::Closed => Ok(None),
        }
    }

    /// Graceful stop for a consumer that will take no more entries: stops the sources,
    /// lets the pipeline flush (open incidents, framed records) for at most `grace`, and
    /// counts everything read but not handed over as `abandoned`. Returns the final
    /// counters, in which every record read is accounted for.
    pub fn stop(&self, grace: Duration) -> Stats {
        self.shutdown();
        let deadline = Instant::now() + grace.max(STOP_DRAIN + Duration::from_millis(500));
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match self.queue.pop(Some(left), false, &self.counters) {
                Pop::Entry(_) => {}
                Pop::Timeout | Pop::Closed => break,
            }
        }
        self.queue.abandon(&self.counters);
        self.stats()
    }
}

/// [`Intake::next_timeout`] waited in vain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeout;

impl Iterator for Intake {
    type Item = Entry;

    fn next(&mut self) -> Option<Entry> {
        match self.queue.pop(None, true, &self.counters) {
            Pop::Entry(e) => Some(e),
            Pop::Timeout | Pop::Closed => None,
        }
    }
}

impl Drop for Intake {
    fn drop(&mut self) {
        self.shutdown();
        self.queue.abandon(&self.counters);
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<(), IngestError> {
    thread::Builder::new()
        .name(name.to_owned())
        .spawn(f)
        .map(|_| ())
        .map_err(IngestError::Thread)
}

fn has_glob_chars(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Hops after which a chain of symlinks counts as a loop (the kernel's own limit is 40).
const MAX_LINK_HOPS: usize = 40;

/// Why a symlink cannot be read, when it cannot: it loops or its target is missing.
fn broken_link(p: &Path) -> Option<IngestError> {
    let meta = std::fs::symlink_metadata(p).ok()?;
    if !meta.file_type().is_symlink() {
        return None;
    }
    match std::fs::metadata(p) {
        Ok(_) => None,
        Err(e) if e.kind() == io::ErrorKind::NotFound && !link_loops(p) => {
            Some(IngestError::DanglingSymlink {
                path: p.to_path_buf(),
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound || link_loops(p) || is_eloop(&e) => {
            Some(IngestError::SymlinkLoop {
                path: p.to_path_buf(),
            })
        }
        Err(e) => Some(IngestError::Io {
            path: p.to_path_buf(),
            source: e,
        }),
    }
}

/// Follows the chain of links from `p` (the last component only): true when it does not
/// end within [`MAX_LINK_HOPS`].
fn link_loops(p: &Path) -> bool {
    let mut cur = p.to_path_buf();
    for _ in 0..MAX_LINK_HOPS {
        match std::fs::read_link(&cur) {
            Ok(target) if target.is_absolute() => cur = target,
            Ok(target) => {
                cur = cur
                    .parent()
                    .map_or_else(|| target.clone(), |dir| dir.join(&target))
            }
            Err(_) => return false,
        }
    }
    true
}

/// ELOOP, for loops through directory links that [`link_loops`] does not walk.
fn is_eloop(e: &io::Error) -> bool {
    #[cfg(target_os = "linux")]
    const ELOOP: i32 = 40;
    #[cfg(not(target_os = "linux"))]
    const ELOOP: i32 = 62;
    e.raw_os_error() == Some(ELOOP)
}

/// A file, every file under a directory (recursively, sorted), or every glob match.
/// Problems inside a directory (unreadable subdirectories, dangling or looping symlinks)
/// are warned with their path and counted in `unreadable`; the rest is read.
fn resolve_path(p: &Path, counters: &Counters) -> Result<Vec<PathBuf>, IngestError> {
    if p.is_dir() {
        let mut out = Vec::new();
        walk(p, &mut out, counters);
        return Ok(out);
    }
    if p.exists() {
        return Ok(vec![p.to_path_buf()]);
    }
    if let Some(e) = broken_link(p) {
        return Err(e);
    }
    let s = p.to_string_lossy();
    if has_glob_chars(&s) {
        let paths = glob::glob(&s).map_err(|e| IngestError::Glob {
            pattern: s.to_string(),
            source: e,
        })?;
        let mut out = Vec::new();
        for m in paths {
            match m {
                Ok(path) if path.is_dir() => walk(&path, &mut out, counters),
                Ok(path) => match broken_link(&path) {
                    Some(e) => unreadable(counters, &path, &e),
                    None => out.push(path),
                },
                Err(e) => {
                    inc(&counters.unreadable);
                    warn!(path = %e.path().display(), reason = %e.error(), "Cannot read glob match.")
                }
            }
        }
        if out.is_empty() && counters.unreadable.load(Ordering::Relaxed) == 0 {
            return Err(IngestError::NotFound {
                path: p.to_path_buf(),
            });
        }
        out.sort();
        out.dedup();
        return Ok(out);
    }
    Err(IngestError::NotFound {
        path: p.to_path_buf(),
    })
}

fn unreadable(counters: &Counters, path: &Path, e: &IngestError) {
    inc(&counters.unreadable);
    let reason = match e {
        IngestError::SymlinkLoop { .. } => "symlink loop".to_string(),
        IngestError::DanglingSymlink { .. } => "dangling symlink".to_string(),
        IngestError::Io { source, .. } => source.to_string(),
        other => other.to_string(),
    };
    warn!(path = %path.display(), reason = %reason, "Skipped unreadable path.");
}

/// Regular files under `dir`, in name order. Symlinked directories are not entered, so a
/// link loop cannot trap the walk (said once per link, not counted: a choice, not an
/// error).
fn walk(dir: &Path, out: &mut Vec<PathBuf>, counters: &Counters) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            inc(&counters.unreadable);
            warn!(path = %dir.display(), reason = %e, "Cannot read directory.");
            return;
        }
    };
    let mut paths = Vec::new();
    for entry in entries {
        match entry {
            Ok(e) => paths.push(e.path()),
            Err(e) => {
                inc(&counters.unreadable);
                warn!(path = %dir.display(), reason = %e, "Cannot read directory entry.");
            }
        }
    }
    paths.sort();
    for p in paths {
        let meta = match std::fs::symlink_metadata(&p) {
            Ok(m) => m,
            Err(e) => {
                inc(&counters.unreadable);
                warn!(path = %p.display(), reason = %e, "Skipped unreadable path.");
                continue;
            }
        };
        if meta.is_dir() {
            walk(&p, out, counters);
        } else if meta.is_file() {
            out.push(p);
        } else if meta.file_type().is_symlink() {
            if let Some(e) = broken_link(&p) {
                unreadable(counters, &p, &e);
            } else if p.is_file() {
                out.push(p);
            } else if p.is_dir() {
                warn!(path = %p.display(), reason = "symlinked directory", "Not entering symlinked directory.");
            }
        }
    }
}

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const EVTX_MAGIC: &[u8] = b"ElfFile\0";

/// Reads the finite inputs in order, then keeps following files when asked.
fn read_inputs(inputs: &[Input], cfg: &IntakeConfig, sink: &Sink) {
    let mut followers = Vec::new();
    for input in inputs {
        if sink.stopped() {
            return;
        }
        let ok = match input {
            Input::Stdin => {
                let stdin = io::stdin();
                let mut stream = Stream::new(Arc::from("-"), cfg, sink.clone());
                read_stream(stdin.lock(), &mut stream, cfg.max_entry_bytes) && stream.finish()
            }
            Input::File(path) if cfg.follow => {
                match crate::follow::Follower::open(path, cfg, sink.clone()) {
                    Some(mut f) if f.is_plain() => {
                        let ok = f.poll();
                        followers.push(f);
                        ok
                    }
                    Some(_) | None => read_file(path, cfg, sink),
                }
            }
            Input::File(path) => read_file(path, cfg, sink),
        };
        if !ok {
            return;
        }
    }
    if cfg.follow {
        crate::follow::follow_all(followers, cfg, sink);
    }
}

/// Reads one file to its end. Returns false when the consumer has gone.
pub(crate) fn read_file(path: &Path, cfg: &IntakeConfig, sink: &Sink) -> bool {
    let origin: Arc<str> = Arc::from(path.display().to_string());
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) => {
            inc(&sink.counters.unreadable);
            warn!(path = %origin, reason = %e, "Cannot open log file.");
            return true;
        }
    };
    let mut reader = BufReader::with_capacity(64 * 1024, file);
    let head = match reader.fill_buf() {
        Ok(h) => h.get(..8).unwrap_or(h).to_vec(),
        Err(e) => {
            inc(&sink.counters.unreadable);
            warn!(path = %origin, reason = %e, "Cannot read log file.");
            return true;
        }
    };
    let mut stream = Stream::new(origin, cfg, sink.clone());
    let ok = if head.starts_with(EVTX_MAGIC) {
        drop(reader);
        crate::evtx_file::read_evtx(path, &mut stream)
    } else if head.starts_with(GZIP_MAGIC) {
        let gz = flate2::read::MultiGzDecoder::new(reader);
        read_stream(gz, &mut stream, cfg.max_entry_bytes)
    } else {
        read_stream(reader, &mut stream, cfg.max_entry_bytes)
    };
    ok && stream.finish()
}

/// Feeds a reader through a stream. A read error (a truncated `.gz`, a vanished file) is
/// counted and warned with the line it happened at; what was read so far is kept. Input
/// whose first block looks binary ([`crate::stream::binary_block`]) is skipped whole, with
/// one warning.
pub(crate) fn read_stream<R: Read>(mut reader: R, stream: &mut Stream, max: usize) -> bool {
    let mut splitter = LineSplitter::new(max);
    let mut buf = vec![0u8; 64 * 1024];
    let mut first = true;
    loop {
        if stream.stopped() {
            return false;
        }
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let line = splitter.line_no() + 1;
                if !splitter.finish(&mut |l| stream.line(l)) {
                    return false;
                }
                stream.lost(line, &format!("read error: {e}"));
                return true;
            }
        };
        // The first read only, whatever its size: waiting for a full block would hold
        // back a live pipe.
        if std::mem::take(&mut first) {
            if let Some(why) = crate::stream::binary_block(&buf[..n]) {
                stream.skip_binary(&why);
                return true;
            }
        }
        if !splitter.feed(&buf[..n], &mut |l| stream.line(l)) {
            return false;
        }
    }
    splitter.finish(&mut |l| stream.line(l))
}

/// The grouping thread's state: where entries go and how they are counted.
struct Pipeline {
    queue: Arc<EntryQueue>,
    counters: Arc<Counters>,
    /// Set by [`Intake::shutdown`]; `None` for [`ingest_reader`], which runs to the end.
    shutdown: Option<Arc<AtomicBool>>,
    /// Origins of the syslog listeners: their entries fall under the overflow policy.
    live_origins: Vec<Arc<str>>,
    max_text: usize,
}

impl Pipeline {
    fn stopping(&self) -> bool {
        self.shutdown
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed))
    }

    /// Events in, entries out, until every source is done or shutdown; then whatever is
    /// held (open incidents) is flushed and the queue closed.
    fn run(self, rx: Receiver<Msg>, cfg: GroupingConfig, live: bool) {
        let mut grouper = Grouper::new(cfg);
        let mut out = Vec::new();
        let tick = Duration::from_millis(200);
        let mut last_expiry = Instant::now();
        let mut consumer_gone = false;
        loop {
            if self.stopping() {
                self.drain_after_stop(&rx);
                break;
            }
            // A timeout even for finite inputs, so that shutdown is seen.
            let msg = match rx.recv_timeout(tick) {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            if let Some(msg) = msg {
                if !self.handle(msg, &mut grouper, &mut out) {
                    consumer_gone = true;
                    break;
                }
            }
            // Live sources: close quiet groups on time even while other sources keep the
            // queue busy (a steady stream would otherwise never let the timeout fire).
            if live && last_expiry.elapsed() >= tick {
                last_expiry = Instant::now();
                grouper.expire_idle(last_expiry, &mut out);
            }
            if !self.emit(&mut out) {
                consumer_gone = true;
                break;
            }
        }
        grouper.flush_all(&mut out);
        if consumer_gone {
            // Nobody will take these: count them, do not queue them.
            for g in out.drain(..) {
                let events = match g {
                    Grouped::Single(..) => 1,
                    Grouped::Incident(inc_) => inc_.events() as u64,
                };
                add(&self.counters.abandoned, events);
            }
        } else {
            self.emit(&mut out);
        }
        self.queue.close();
    }

    /// After shutdown the consumer takes nothing more: what the readers still send (they
    /// stop within a poll interval) is counted as abandoned, so that the final counters
    /// add up. A reader blocked on a silent stdin is not waited for beyond a second.
    fn drain_after_stop(&self, rx: &Receiver<Msg>) {
        let deadline = Instant::now() + STOP_DRAIN;
        loop {
            match rx.recv_timeout(Duration::from_millis(20)) {
                Ok(msg) => add(&self.counters.abandoned, msg.events()),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) if Instant::now() >= deadline => break,
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }

    /// One message from a reader. False when the consumer has gone.
    fn handle(&self, msg: Msg, grouper: &mut Grouper, out: &mut Vec<Grouped>) -> bool {
        match msg {
            Msg::Event(ev, loc) => {
                grouper.push(ev, loc, out);
                true
            }
            Msg::Entry(mut e) => {
                e.seal(self.max_text);
                self.push(*e)
            }
            Msg::End(origin) => {
                grouper.end_stream(&origin, out);
                true
            }
        }
    }

    fn push(&self, entry: Entry) -> bool {
        let droppable = self
            .live_origins
            .iter()
            .any(|o| **o == *entry.location.origin);
        self.queue.push(entry, droppable, &self.counters)
    }

    fn emit(&self, out: &mut Vec<Grouped>) -> bool {
        let mut ok = true;
        for g in out.drain(..) {
            let mut entry = match g {
                Grouped::Single(ev, loc) => Entry::single(ev, loc),
                Grouped::Incident(inc_) => {
                    add(&self.counters.grouped, inc_.events() as u64);
                    inc(&self.counters.incidents);
                    Entry::incident(inc_)
                }
            };
            entry.seal(self.max_text);
            // After the consumer left, `push` counts the rest as abandoned.
            ok &= self.push(entry);
        }
        ok
    }
}

/// Runs the whole intake over one reader (a `Cursor`, a socket, a test fixture) and
/// returns the entries and counts. `name` becomes the id prefix.
pub fn ingest_reader<R: Read + Send>(
    name: &str,
    reader: R,
    cfg: &IntakeConfig,
) -> (Vec<Entry>, Stats) {
    let counters = Arc::new(Counters::default());
    let max = cfg.max_entry_bytes.max(64);
    let cap = cfg.queue_capacity.max(1);
    let (raw_tx, raw_rx) = sync_channel::<Msg>(cap);
    let queue = Arc::new(EntryQueue::new(cap));
    let sink = Sink {
        tx: raw_tx,
        counters: counters.clone(),
        shutdown: Arc::new(AtomicBool::new(false)),
    };
    let stream_cfg = IntakeConfig {
        max_entry_bytes: max,
        ..cfg.clone()
    };
    let mut stream = Stream::new(Arc::from(name), &stream_cfg, sink);
    let pipeline = Pipeline {
        queue: queue.clone(),
        counters: counters.clone(),
        shutdown: None,
        live_origins: Vec::new(),
        max_text: max,
    };
    let grouping = cfg.grouping.clone();
    let entries = thread::scope(|s| {
        s.spawn(move || {
            if read_stream(reader, &mut stream, max) {
                stream.finish();
            }
        });
        s.spawn(move || pipeline.run(raw_rx, grouping, false));
        let mut entries = Vec::new();
        while let Pop::Entry(e) = queue.pop(None, true, &counters) {
            entries.push(e);
        }
        entries
    });
    (entries, counters.snapshot())
}
