//! The bounded queue between the intake and its consumer (the model), with the overflow
//! policy for live network sources.
//!
//! Entries from files and stdin wait for room (backpressure: the data stays in the file
//! or the pipe, nothing is lost). Entries from syslog listeners cannot wait: the sender
//! does not slow down, so waiting would only move the loss into the kernel's socket
//! buffer, where nobody counts it. When the queue is full:
//!
//! * a benign-looking newcomer is dropped (tail drop: the entries already waiting keep
//!   their turn);
//! * a suspicious newcomer ([`crate::is_suspicious`], or any incident) takes the place of
//!   the oldest benign-looking listener entry waiting; only when every waiting entry is
//!   suspicious (or from a file) is the suspicious newcomer dropped.
//!
//! Every drop is counted in `dropped` (in events, so counts add up with `read`).

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::intake::Entry;
use crate::stats::{add, Counters};

struct Slot {
    entry: Entry,
    /// May be dropped under the overflow policy (from a listener).
    droppable: bool,
    /// Cached [`Entry::suspicious`], computed only when the queue overflows.
    suspicious: Option<bool>,
}

impl Slot {
    fn suspicious(&mut self) -> bool {
        *self
            .suspicious
            .get_or_insert_with(|| self.entry.suspicious())
    }
}

#[derive(Default)]
struct State {
    slots: VecDeque<Slot>,
    /// The producer has finished: nothing more will come.
    closed: bool,
    /// The consumer has gone: pushing is pointless.
    abandoned: bool,
}

/// What [`EntryQueue::pop`] found. Unboxed: it is matched at once and the entry moved on.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Pop {
    Entry(Entry),
    Timeout,
    Closed,
}

pub(crate) struct EntryQueue {
    state: Mutex<State>,
    not_empty: Condvar,
    not_full: Condvar,
    capacity: usize,
}

impl EntryQueue {
    pub fn new(capacity: usize) -> EntryQueue {
        EntryQueue {
            state: Mutex::new(State::default()),
            not_empty: Condvar::new(),
            not_full: Condvar::new(),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the deque inconsistent; keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `entry`. Listener entries (`droppable`) never wait; others wait for room.
    /// Returns false when the consumer has gone.
    pub fn push(&self, entry: Entry, droppable: bool, counters: &Counters) -> bool {
        let mut st = self.lock();
        loop {
            if st.abandoned {
                add(&counters.abandoned, entry.events as u64);
                return false;
            }
            if st.slots.len() < self.capacity {
                break;
            }
            if droppable {
                let mut slot = Slot {
                    entry,
                    droppable,
                    suspicious: None,
                };
                if slot.suspicious() {
                    let victim = st
                        .slots
                        .iter_mut()
                        .position(|s| s.droppable && !s.suspicious());
                    if let Some(i) = victim {
                        if let Some(old) = st.slots.remove(i) {
                            add(&counters.dropped, old.entry.events as u64);
                        }
                        st.slots.push_back(slot);
                        self.not_empty.notify_one();
                        return true;
                    }
                }
                add(&counters.dropped, slot.entry.events as u64);
                return true;
            }
            st = self.not_full.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        st.slots.push_back(Slot {
            entry,
            droppable,
            suspicious: None,
        });
        counters
            .queued
            .store(st.slots.len() as u64, Ordering::Relaxed);
        self.not_empty.notify_one();
        true
    }

    /// The next entry, waiting at most `timeout` (`None`: for ever). `deliver`: it goes to
    /// the consumer (counted in `entries`), not to the shutdown's count of `abandoned`.
    pub fn pop(&self, timeout: Option<Duration>, deliver: bool, counters: &Counters) -> Pop {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut st = self.lock();
        loop {
            if let Some(slot) = st.slots.pop_front() {
                counters
                    .queued
                    .store(st.slots.len() as u64, Ordering::Relaxed);
                self.not_full.notify_one();
                if deliver {
                    crate::stats::inc(&counters.entries);
                } else {
                    add(&counters.abandoned, slot.entry.events as u64);
                }
                return Pop::Entry(slot.entry);
            }
            if st.closed {
                return Pop::Closed;
            }
            st = match deadline {
                None => self.not_empty.wait(st).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Pop::Timeout;
                    }
                    self.not_empty
                        .wait_timeout(st, d - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
    }

    /// The producer is done.
    pub fn close(&self) {
        self.lock().closed = true;
        self.not_empty.notify_all();
    }

    /// The consumer is gone: waiting entries are counted as `abandoned`, producers stop
    /// (what they still push is counted there too).
    pub fn abandon(&self, counters: &Counters) {
        let mut st = self.lock();
        st.abandoned = true;
        let events: u64 = st.slots.drain(..).map(|s| s.entry.events as u64).sum();
        add(&counters.abandoned, events);
        counters.queued.store(0, Ordering::Relaxed);
        self.not_full.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Format, LogEvent};
    use crate::group::Location;

    fn entry(n: u64, text: &str) -> Entry {
        let location = Location::line(std::sync::Arc::from("syslog/udp/127.0.0.1:514"), n);
        Entry {
            id: location.id(),
            text: text.to_owned(),
            events: 1,
            format: Format::Plain,
            location,
            event: Some(LogEvent::plain(text)),
            incident: None,
            cut_bytes: 0,
        }
    }

    fn drain(q: &EntryQueue, c: &Counters) -> Vec<u64> {
        q.close();
        let mut ids = Vec::new();
        while let Pop::Entry(e) = q.pop(None, true, c) {
            ids.push(e.location.first_line);
        }
        ids
    }

    const ATTACK: &str = "sshd[1]: Failed password for root from 203.0.113.9";

    #[test]
    fn full_queue_drops_benign_newcomers_and_makes_room_for_suspicious_ones() {
        let c = Counters::default();
        let q = EntryQueue::new(3);
        assert!(q.push(entry(1, "benign one"), true, &c));
        assert!(q.push(entry(2, ATTACK), true, &c));
        assert!(q.push(entry(3, "benign three"), true, &c));
        // Full: a benign newcomer is dropped.
        assert!(q.push(entry(4, "benign four"), true, &c));
        // A suspicious newcomer evicts the oldest benign entry (1), then the next (3).
        assert!(q.push(entry(5, ATTACK), true, &c));
        assert!(q.push(entry(6, ATTACK), true, &c));
        // Only suspicious entries wait now: a suspicious newcomer is dropped, never one of
        // them in favour of a benign one.
        assert!(q.push(entry(7, ATTACK), true, &c));
        assert!(q.push(entry(8, "benign eight"), true, &c));
        let s = c.snapshot();
        assert_eq!(s.dropped, 5, "{s}");
        assert_eq!(drain(&q, &c), vec![2, 5, 6]);
        assert_eq!(c.snapshot().entries, 3);
    }

    #[test]
    fn file_entries_are_never_evicted_and_abandon_counts_what_waits() {
        let c = Counters::default();
        let q = EntryQueue::new(2);
        assert!(q.push(entry(1, "from a file"), false, &c));
        assert!(q.push(entry(2, "from a file"), false, &c));
        // A suspicious listener entry finds no benign listener entry to evict.
        assert!(q.push(entry(3, ATTACK), true, &c));
        assert_eq!(c.snapshot().dropped, 1);
        q.abandon(&c);
        assert_eq!(c.snapshot().abandoned, 2);
        assert!(!q.push(entry(4, "late"), false, &c));
        assert_eq!(c.snapshot().abandoned, 3);
    }
}
