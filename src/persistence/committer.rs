//! The node's commit pipeline (group commit): many write sets, one sled transaction, one flush.
//!
//! Entity actors hand their write sets to the one committer of the node. It runs on its own OS
//! thread (sled's calls block), takes whatever is queued up to `COMMIT_BATCH_LEN_MAX`, commits
//! it in ONE transaction, makes it durable with ONE flush done inline (a separate flusher would
//! overlap nothing: sled's transaction and flush share a lock, and ≥ 7 concurrent `flush_async`
//! calls hang), and only then runs every callback of the batch and wakes the outbox relay.
//! So nothing a write set produced is visible to anyone before it is durable. Under concurrent
//! load (the previous batch had at least `COMMIT_SIBLINGS_MIN` write sets) it waits once,
//! `COMMIT_DELAY_US`, for stragglers before committing, so one flush covers more of them.
//!
//! Invariant: batches complete in submission order, so when a write set's callback runs, every
//! write set submitted before it has completed too. A barrier (a callback with no write set)
//! uses this: it runs once everything submitted before it is done.
//! Boundary: callbacks run on the committer thread and must only send (never block, never
//! call back into the committer); a panicking callback is contained and logged.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, Notify};

use super::store::{Applied, Durability, InjectedAbort, Store, StoreError, VersionCache, WriteSet};
/// Most entries waiting in the hand-off to the relay.
const HANDOFF_LEN_MAX: usize = 2 * crate::limits::RELAY_WINDOW_LEN_MAX;

use crate::limits::{COMMIT_BATCH_LEN_MAX, COMMIT_DELAY_US, COMMIT_QUEUE_LEN_MAX, COMMIT_SIBLINGS_MIN};

/// What became of a submitted write set.
pub type CommitResult = Result<Applied, CommitError>;

/// Run once the write set is durable (or failed).
pub type Callback = Box<dyn FnOnce(CommitResult) + Send>;

/// Why a write set was not committed. The write set's aggregate must be reloaded from the store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommitError {
    /// The batch's transaction or its flush failed; nothing of the batch may be relied on.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The committer has stopped (the node is shutting down).
    #[error("the node is shutting down")]
    ShuttingDown,
}

// Write sets are the common case; boxing them would cost an allocation each.
#[allow(clippy::large_enum_variant)]
enum Request {
    Write(WriteSet, Callback),
    /// Delivered outbox entries to delete with the next batch.
    Remove(Vec<u64>),
    Barrier(Box<dyn FnOnce() + Send>),
    Stop,
}

/// Counters of the pipeline, for benches and metrics.
#[derive(Debug, Default)]
pub struct CommitStats {
    /// Transactions committed.
    pub batches: AtomicU64,
    /// Write sets committed (duplicates and conflicts included).
    pub write_sets: AtomicU64,
    /// Largest batch so far.
    pub batch_len_max: AtomicU64,
    /// Batches that failed.
    pub failures: AtomicU64,
    /// Microseconds spent inside sled transactions.
    pub transaction_us: AtomicU64,
    /// Microseconds spent making batches durable (flush, fsync).
    pub durable_us: AtomicU64,
    /// Batches by size: bucket i counts batches of 2^(i-1) < len ≤ 2^i write sets.
    pub batch_len_buckets: [AtomicU64; 10],
}

/// Durable outbox entries handed from the committer to the relay in memory, so the relay need
/// not read back what was just written. Bounded; past the bound it is dropped and the relay
/// reads the outbox instead.
#[derive(Default)]
struct Handoff {
    entries: std::collections::VecDeque<(u64, Vec<u8>)>,
}

struct Shared {
    handoff: Mutex<Handoff>,
    durable_end: AtomicU64,
    relay_wake: Arc<Notify>,
    stats: CommitStats,
    fault: Mutex<Option<InjectedAbort>>,
}

/// Handle to the node's committer. Clones share it.
#[derive(Clone)]
pub struct Committer {
    tx: mpsc::Sender<Request>,
    shared: Arc<Shared>,
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl Committer {
    /// Starts the committer thread for `store`.
    pub fn start(store: Store) -> Result<Committer, StoreError> {
        let next_seq = store.next_outbox_seq()?;
        if store.durability() == Durability::None {
            tracing::warn!("durability = \"none\": acknowledged writes are NOT on disk and are lost on a crash; use only for tests and benches");
        }
        let (tx, rx) = mpsc::channel(COMMIT_QUEUE_LEN_MAX);
        let shared = Arc::new(Shared {
            handoff: Mutex::new(Handoff::default()),
            durable_end: AtomicU64::new(next_seq),
            relay_wake: Arc::new(Notify::new()),
            stats: CommitStats::default(),
            fault: Mutex::new(None),
        });
        let s2 = shared.clone();
        let thread = std::thread::Builder::new()
            .name("bazaar-committer".into())
            .spawn(move || run(store, rx, s2, next_seq))
            .map_err(|e| StoreError::Storage(format!("cannot start the committer thread: {e}")))?;
        Ok(Committer { tx, shared, thread: Arc::new(Mutex::new(Some(thread))) })
    }

    /// Queues a write set; `callback` runs once it is durable or failed. Waits while the queue
    /// is full (backpressure). After shutdown the callback gets `ShuttingDown` at once.
    pub async fn submit(&self, ws: WriteSet, callback: Callback) {
        if let Err(mpsc::error::SendError(Request::Write(_, cb))) = self.tx.send(Request::Write(ws, callback)).await {
            cb(Err(CommitError::ShuttingDown));
        }
    }

    /// Deletes delivered outbox entries in the next batch's transaction (or on their own when
    /// nothing else is queued). Not made durable by itself: an entry whose deletion is lost in a
    /// crash is delivered again, and its subscriber's inbox drops the repeat.
    pub async fn remove_delivered(&self, seqs: Vec<u64>) -> Result<(), CommitError> {
        self.tx.send(Request::Remove(seqs)).await.map_err(|_| CommitError::ShuttingDown)
    }

    /// Runs `f` once everything submitted before it has completed.
    pub async fn barrier(&self, f: Box<dyn FnOnce() + Send>) {
        if let Err(mpsc::error::SendError(Request::Barrier(f))) = self.tx.send(Request::Barrier(f)).await {
            f();
        }
    }

    /// Outbox entries with a sequence number below this are durable (the relay reads only those).
    pub fn durable_end(&self) -> u64 {
        self.shared.durable_end.load(Ordering::Acquire)
    }

    /// Takes the durable outbox entries handed over since the last call, in sequence order
    /// (entries that did not fit the hand-off are only on disk).
    pub fn take_handoff(&self) -> Vec<(u64, Vec<u8>)> {
        match self.shared.handoff.lock() {
            Ok(mut h) => h.entries.drain(..).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Notified after every durable batch that appended to the outbox.
    pub fn relay_wake(&self) -> Arc<Notify> {
        self.shared.relay_wake.clone()
    }

    /// The pipeline's counters.
    pub fn stats(&self) -> &CommitStats {
        &self.shared.stats
    }

    /// Makes the next batch's transaction abort after `fault.after_written` write sets
    /// (failure injection for tests).
    pub fn inject_abort(&self, fault: InjectedAbort) {
        if let Ok(mut f) = self.shared.fault.lock() {
            *f = Some(fault);
        }
    }

    /// Commits everything queued, then stops the thread. Later submissions fail with
    /// `ShuttingDown`.
    pub async fn shutdown(&self) {
        let _ = self.tx.send(Request::Stop).await;
        let handle = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(h) = handle {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn call_contained(f: impl FnOnce()) {
    if catch_unwind(AssertUnwindSafe(f)).is_err() {
        tracing::error!("a commit callback panicked; the committer goes on");
    }
}

fn run(store: Store, mut rx: mpsc::Receiver<Request>, shared: Arc<Shared>, mut next_seq: u64) {
    let mut versions = VersionCache::default();
    let mut pending: Vec<Request> = Vec::with_capacity(COMMIT_BATCH_LEN_MAX);
    let mut stop = false;
    let delay = store.durability() != Durability::None;
    let mut last_batch = 0usize;
    while !stop {
        let Some(first) = rx.blocking_recv() else {
            break;
        };
        pending.push(first);
        let mut writes = usize::from(matches!(pending[0], Request::Write(..)));
        let mut waited = false;
        while writes < COMMIT_BATCH_LEN_MAX {
            match rx.try_recv() {
                Ok(r) => {
                    writes += usize::from(matches!(r, Request::Write(..)));
                    pending.push(r);
                }
                // Under concurrent load, wait once for the writers still preparing their next
                // write set: one flush then covers them too (PostgreSQL's commit_delay idea).
                Err(_) if delay && !waited && writes > 1 && last_batch >= COMMIT_SIBLINGS_MIN => {
                    waited = true;
                    std::thread::sleep(Duration::from_micros(COMMIT_DELAY_US));
                }
                Err(_) => break,
            }
        }
        last_batch = writes;
        stop = process(&store, &shared, &mut next_seq, &mut versions, &mut pending);
    }
    // Anything still queued after a stop is refused, never silently dropped.
    rx.close();
    while let Ok(r) = rx.try_recv() {
        match r {
            Request::Write(_, cb) => call_contained(|| cb(Err(CommitError::ShuttingDown))),
            Request::Barrier(f) => call_contained(f),
            Request::Remove(seqs) => {
                if let Err(e) = store.outbox_remove(&seqs) {
                    tracing::warn!(error = %e, "could not delete delivered entries; they will be delivered again");
                }
            }
            Request::Stop => {}
        }
    }
    if let Err(e) = store.flush() {
        tracing::error!(error = %e, "final flush failed");
    }
}

/// Commits one batch and completes its requests; returns whether a stop was requested.
fn process(
    store: &Store,
    shared: &Shared,
    next_seq: &mut u64,
    versions: &mut VersionCache,
    pending: &mut Vec<Request>,
) -> bool {
    let mut stop = false;
    let mut writes: Vec<(WriteSet, Callback)> = Vec::new();
    let mut barriers: Vec<Box<dyn FnOnce() + Send>> = Vec::new();
    let mut removals: Vec<u64> = Vec::new();
    for r in pending.drain(..) {
        match r {
            Request::Write(ws, cb) => writes.push((ws, cb)),
            Request::Barrier(f) => barriers.push(f),
            Request::Remove(seqs) => removals.extend(seqs),
            Request::Stop => stop = true,
        }
    }
    if writes.is_empty() && !removals.is_empty() {
        // Nothing to make durable: delete on its own, without a flush.
        if let Err(e) = store.outbox_remove(&removals) {
            tracing::warn!(error = %e, "could not delete delivered entries; they will be delivered again");
        }
        removals.clear();
    }
    if !writes.is_empty() {
        let fault = shared.fault.lock().ok().and_then(|mut f| f.take());
        // The deletions ride in the batch's transaction as one more write set, last, so an
        // injected fault counts only real write sets.
        let removal_set = WriteSet { outbox_removals: std::mem::take(&mut removals), ..WriteSet::default() };
        let mut refs: Vec<&WriteSet> = writes.iter().map(|(ws, _)| ws).collect();
        if !removal_set.outbox_removals.is_empty() {
            refs.push(&removal_set);
        }
        let stats = &shared.stats;
        let t0 = Instant::now();
        let outcome = store.commit(&refs, *next_seq, fault, versions).and_then(|(applied, new_seq)| {
            let t1 = Instant::now();
            stats.transaction_us.fetch_add(micros(t1 - t0), Ordering::Relaxed);
            // The entries are committed (and numbered) even if the flush fails below.
            *next_seq = new_seq;
            let durable = store.make_durable().map(|()| applied);
            stats.durable_us.fetch_add(micros(t1.elapsed()), Ordering::Relaxed);
            durable
        });
        let n = u64::try_from(writes.len()).unwrap_or(u64::MAX);
        stats.batches.fetch_add(1, Ordering::Relaxed);
        stats.write_sets.fetch_add(n, Ordering::Relaxed);
        stats.batch_len_max.fetch_max(n, Ordering::Relaxed);
        let bucket = usize::try_from(u64::BITS - n.saturating_sub(1).leading_zeros()).unwrap_or(9).min(9);
        stats.batch_len_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        match outcome {
            Ok(applied) => {
                let before = shared.durable_end.swap(*next_seq, Ordering::AcqRel);
                if let Ok(mut h) = shared.handoff.lock() {
                    for ((ws, _), a) in writes.iter_mut().zip(&applied) {
                        if let Applied::Written { first_seq, .. } = a {
                            for (i, bytes) in std::mem::take(&mut ws.outbox).into_iter().enumerate() {
                                h.entries.push_back((first_seq + u64::try_from(i).unwrap_or(0), bytes));
                            }
                        }
                    }
                    if h.entries.len() > HANDOFF_LEN_MAX {
                        // The relay is behind: it will read these from the outbox.
                        h.entries.clear();
                    }
                }
                for ((_, cb), a) in writes.into_iter().zip(applied) {
                    call_contained(|| cb(Ok(a)));
                }
                if *next_seq > before {
                    shared.relay_wake.notify_one();
                }
            }
            Err(e) => {
                stats.failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, write_sets = n, "commit batch failed; its entities reload from the store");
                for (_, cb) in writes {
                    let e = e.clone();
                    call_contained(|| cb(Err(CommitError::Store(e))));
                }
            }
        }
    }
    for f in barriers {
        call_contained(f);
    }
    stop
}
