//! The analysis worker: one thread that takes queued entries from the store, runs the
//! pipeline on them and writes the verdicts back, so the model never blocks a request.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::store::Store;
use crate::Analyze;

/// Wakes the worker when entries were stored.
#[derive(Default)]
pub struct Wakeup {
    pending: Mutex<bool>,
    cond: Condvar,
}

impl Wakeup {
    pub fn wake(&self) {
        if let Ok(mut p) = self.pending.lock() {
            *p = true;
            self.cond.notify_all();
        }
    }

    /// Waits until woken or `timeout` passed.
    fn wait(&self, timeout: Duration) {
        if let Ok(mut p) = self.pending.lock() {
            if !*p {
                if let Ok((guard, _)) = self.cond.wait_timeout(p, timeout) {
                    p = guard;
                } else {
                    return;
                }
            }
            *p = false;
        }
    }
}

/// How often an idle worker looks at the store anyway (entries another process queued).
const IDLE_POLL: Duration = Duration::from_secs(2);

/// The running worker; dropping it finishes the batch in progress and joins the thread.
pub struct Worker {
    stop: Arc<AtomicBool>,
    wakeup: Arc<Wakeup>,
    handle: Option<JoinHandle<()>>,
}

impl Worker {
    pub fn start(
        store: Arc<Store>,
        analyzer: Arc<dyn Analyze>,
        wakeup: Arc<Wakeup>,
        batch: usize,
    ) -> Worker {
        let stop = Arc::new(AtomicBool::new(false));
        let handle = {
            let stop = stop.clone();
            let wakeup = wakeup.clone();
            std::thread::Builder::new()
                .name("opensoc-analysis".into())
                .spawn(move || run(&store, analyzer.as_ref(), &wakeup, &stop, batch.max(1)))
                .ok()
        };
        if handle.is_none() {
            tracing::error!("cannot start the analysis thread");
        }
        Worker {
            stop,
            wakeup,
            handle,
        }
    }
}

impl Drop for Worker {
    /// Finishes the batch in progress, then stops the thread.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.wakeup.wake();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn run(store: &Store, analyzer: &dyn Analyze, wakeup: &Wakeup, stop: &AtomicBool, batch: usize) {
    while !stop.load(Ordering::Relaxed) {
        let queued = match store.queued(batch) {
            Ok(q) => q,
            Err(e) => {
                tracing::error!("reading queued entries: {e}");
                wakeup.wait(IDLE_POLL);
                continue;
            }
        };
        if queued.is_empty() {
            wakeup.wait(IDLE_POLL);
            continue;
        }
        let input: Vec<(String, String)> = queued
            .iter()
            .map(|q| (q.entry_id.clone(), q.text.clone()))
            .collect();
        // A panic in the pipeline fails this batch's entries, never the server.
        let mut results = catch_unwind(AssertUnwindSafe(|| analyzer.analyze(input)))
            .unwrap_or_else(|_| vec![Err("the analysis panicked".to_owned()); queued.len()]);
        results.resize_with(queued.len(), || {
            Err("no result from the pipeline".to_owned())
        });
        let outcome: Vec<_> = queued
            .iter()
            .zip(results)
            .map(|(q, r)| {
                let r = r.map(|mut v| {
                    if q.cut_bytes > 0 {
                        v.warnings.insert(
                            0,
                            format!(
                                "input cut at intake: {} bytes removed from the middle of the record",
                                q.cut_bytes
                            ),
                        );
                    }
                    v
                });
                (q.id, r)
            })
            .collect();
        if let Err(e) = store.record_results(&outcome) {
            tracing::error!("storing verdicts: {e}");
            wakeup.wait(IDLE_POLL);
        }
    }
}
