//! Batched decoding of several entries: each entry is decoded on its own thread by the
//! ordinary sequential decoder, but its model steps go to one runner that waits until
//! every unfinished entry needs a step and then runs them all in one
//! [`Llama::forward_batch`]. One-token decode steps of eight entries thus become one
//! eight-row matrix product (each weight read once instead of eight times), and the
//! entries' prompts are prefilled together.

use std::sync::mpsc;

use candle_core::Tensor;
use opensoc_model::{BatchItem, Kernels, KvCache, Llama, ModelError};

/// Runs new tokens of one sequence after its cache: on the model directly, or through
/// the batch runner.
pub(crate) trait Step: Sync {
    /// Logits of the last position (`[vocab]`), or of every new position (`[t, vocab]`).
    fn step(
        &self,
        tokens: &[u32],
        cache: &mut KvCache,
        all_positions: bool,
    ) -> Result<Tensor, ModelError>;
}

/// Steps run on the model directly, one sequence per pass.
pub(crate) struct Direct<'a> {
    pub llama: &'a Llama,
    pub kernels: Kernels,
}

impl Step for Direct<'_> {
    fn step(
        &self,
        tokens: &[u32],
        cache: &mut KvCache,
        all_positions: bool,
    ) -> Result<Tensor, ModelError> {
        self.llama
            .forward_one(tokens, cache, all_positions, self.kernels)
    }
}

type Reply = Result<(KvCache, Tensor), ModelError>;

struct Request {
    tokens: Vec<u32>,
    cache: KvCache,
    all_positions: bool,
    reply: mpsc::Sender<Reply>,
}

enum Message {
    Step(Request),
    /// A worker finished (or unwound): the runner stops waiting for it.
    Done,
}

/// A worker's handle on the runner.
struct Client {
    tx: mpsc::Sender<Message>,
}

impl Step for Client {
    fn step(
        &self,
        tokens: &[u32],
        cache: &mut KvCache,
        all_positions: bool,
    ) -> Result<Tensor, ModelError> {
        let stopped = || ModelError::InvalidInput("the batch runner stopped".into());
        let (reply, answer) = mpsc::channel();
        // Cloning a cache only shares its tensors.
        let request = Request {
            tokens: tokens.to_vec(),
            cache: cache.clone(),
            all_positions,
            reply,
        };
        self.tx
            .send(Message::Step(request))
            .map_err(|_| stopped())?;
        let (updated, logits) = answer.recv().map_err(|_| stopped())??;
        *cache = updated;
        Ok(logits)
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.tx.send(Message::Done);
    }
}

/// Runs `work` for every item, each on its own thread, with their model steps joined
/// into batched passes on the calling thread. Results come back in the items' order.
pub(crate) fn run_batched<T, R, F>(llama: &Llama, items: &[T], work: F) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(&T, &dyn Step) -> R + Sync,
{
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|scope| {
        let work = &work;
        let workers: Vec<_> = items
            .iter()
            .map(|item| {
                let client = Client { tx: tx.clone() };
                scope.spawn(move || work(item, &client))
            })
            .collect();
        drop(tx);
        serve(llama, &rx, workers.len());
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// Most new tokens in one batched pass. Eight prompts of up to 1,024 tokens each would
/// need a few hundred MB of activations at once; passes of this size keep the peak low
/// and are already large enough for the matrix products to run at full speed.
const MAX_PASS_TOKENS: usize = 1024;

/// Collects requests until every live worker waits, then runs them together (in passes
/// of at most [`MAX_PASS_TOKENS`] new tokens; a longer request runs alone).
fn serve(llama: &Llama, rx: &mpsc::Receiver<Message>, mut live: usize) {
    let mut waiting: Vec<Request> = Vec::new();
    while live > 0 {
        match rx.recv() {
            Ok(Message::Step(request)) => waiting.push(request),
            Ok(Message::Done) => live -= 1,
            Err(_) => break,
        }
        if !waiting.is_empty() && waiting.len() == live {
            let mut pass = Vec::new();
            let mut tokens = 0;
            for request in waiting.drain(..) {
                if !pass.is_empty() && tokens + request.tokens.len() > MAX_PASS_TOKENS {
                    run(llama, std::mem::take(&mut pass));
                    tokens = 0;
                }
                tokens += request.tokens.len();
                pass.push(request);
            }
            run(llama, pass);
        }
    }
}

/// Runs `requests` in one pass. If the pass fails, each runs alone, so one bad entry
/// (a sequence past the context length, say) fails alone with its own error.
fn run(llama: &Llama, requests: Vec<Request>) {
    // The pass works on clones: a pass that fails half-way leaves the originals intact.
    let mut caches: Vec<KvCache> = requests.iter().map(|r| r.cache.clone()).collect();
    let result = {
        let mut items: Vec<BatchItem<'_>> = requests
            .iter()
            .zip(caches.iter_mut())
            .map(|(r, cache)| BatchItem {
                tokens: &r.tokens,
                cache,
                all_positions: r.all_positions,
            })
            .collect();
        // Always the f32 copies where the weights are mixed: an entry's numbers, hence
        // its verdict, must not depend on how many other entries share its passes.
        llama.forward_batch(&mut items, Kernels::Dense)
    };
    match result {
        Ok(logits) => {
            for ((request, cache), logits) in requests.into_iter().zip(caches).zip(logits) {
                // A worker that is gone needs no answer.
                let _ = request.reply.send(Ok((cache, logits)));
            }
        }
        Err(err) if requests.len() == 1 => {
            if let Some(request) = requests.into_iter().next() {
                let _ = request.reply.send(Err(err));
            }
        }
        Err(_) => {
            for request in requests {
                run(llama, vec![request]);
            }
        }
    }
}
