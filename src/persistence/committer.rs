//! The node's commit pipeline (group commit): many write sets, one commit-log record, one
//! `fdatasync` for as many batches as are waiting.
//!
//! Entity actors hand their write sets to the one committer of the node. Three threads:
//! - the committer takes whatever is queued (up to `COMMIT_BATCH_LEN_MAX`), decides it, logs it
//!   as one record and applies it to sled (`Store::commit`), then hands the batch on and goes
//!   straight to the next one;
//! - the syncer makes every batch handed to it so far durable with ONE `fdatasync` of the log
//!   (`Store::make_durable`), and only then runs their callbacks, moves the durable mark and
//!   wakes the outbox relay — so the disk wait of one group overlaps the next batches, and
//!   nothing a write set produced is visible to anyone before it is durable;
//! - the checkpointer makes sled durable every `CHECKPOINT_EVERY_MS` and trims the log.
//!
//! Invariant: batches complete in submission order, so when a write set's callback runs, every
//! write set submitted before it has completed too. A barrier (a callback with no write set)
//! uses this: it runs once everything submitted before it is done.
//! Invariant: a failed `fdatasync` stops the node's writes (the store refuses further batches):
//! what was applied may not be on disk, and only a restart, replaying the log, is sure of it.
//! Boundary: callbacks run on the syncer thread and must only send (never block, never call
//! back into the committer); a panicking callback is contained and logged.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, Notify};

use super::store::{Applied, Durability, InjectedAbort, Store, StoreError, VersionCache, WriteSet};
use crate::limits::{CHECKPOINT_EVERY_MS, COMMIT_BATCH_LEN_MAX, COMMIT_QUEUE_LEN_MAX, SYNC_QUEUE_LEN_MAX};

/// Most entries waiting in the hand-off to the relay.
const HANDOFF_LEN_MAX: usize = 2 * crate::limits::RELAY_WINDOW_LEN_MAX;

/// What became of a submitted write set.
pub type CommitResult = Result<Applied, CommitError>;

/// Run once the write set is durable (or failed).
pub type Callback = Box<dyn FnOnce(CommitResult) + Send>;

/// Why a write set was not committed. The write set's aggregate must be reloaded from the store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommitError {
    /// The batch's commit (its decision, log record or application) or its sync failed; nothing
    /// of the batch may be relied on.
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
    /// Batches committed (one log record each).
    pub batches: AtomicU64,
    /// Write sets committed (duplicates and conflicts included).
    pub write_sets: AtomicU64,
    /// Largest batch so far.
    pub batch_len_max: AtomicU64,
    /// Batches that failed.
    pub failures: AtomicU64,
    /// Microseconds spent deciding, logging and applying batches (the committer thread).
    pub commit_us: AtomicU64,
    /// Microseconds spent making the log durable (`fdatasync`, the syncer thread).
    pub durable_us: AtomicU64,
    /// `fdatasync` calls (each covers every batch handed over before it).
    pub syncs: AtomicU64,
    /// Checkpoints done (sled made durable, log trimmed).
    pub checkpoints: AtomicU64,
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
            tracing::warn!("durability = \"none\": acknowledged writes may not be on disk yet and are lost if the machine crashes; use only for tests and benches");
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

    /// Deletes delivered outbox entries with the next batch (or on their own when nothing else
    /// is queued). Not waited for: an entry whose deletion is lost in a crash is delivered
    /// again, and its subscriber's inbox drops the repeat.
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

    /// Makes the next batch fail after `fault.after_written` write sets were decided, before
    /// anything of it is logged (failure injection for tests).
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

/// A batch applied by the committer, on its way to the syncer.
struct Applying {
    writes: Vec<(WriteSet, Callback)>,
    outcome: Result<Vec<Applied>, StoreError>,
    barriers: Vec<Box<dyn FnOnce() + Send>>,
    next_seq: u64,
}

fn run(store: Store, mut rx: mpsc::Receiver<Request>, shared: Arc<Shared>, mut next_seq: u64) {
    let (to_syncer, from_committer) = std::sync::mpsc::sync_channel::<Applying>(SYNC_QUEUE_LEN_MAX);
    let (stop_checkpoints, checkpoint_stop) = std::sync::mpsc::channel::<()>();
    let syncer = {
        let (store, shared) = (store.clone(), shared.clone());
        std::thread::Builder::new()
            .name("bazaar-syncer".into())
            .spawn(move || sync_loop(&store, &from_committer, &shared))
    };
    let checkpointer = {
        let (store, shared) = (store.clone(), shared.clone());
        std::thread::Builder::new()
            .name("bazaar-checkpoint".into())
            .spawn(move || checkpoint_loop(&store, &checkpoint_stop, &shared))
    };
    let (Ok(syncer), Ok(checkpointer)) = (syncer, checkpointer) else {
        tracing::error!("cannot start the commit pipeline's threads; every write fails");
        rx.close();
        while let Some(r) = rx.blocking_recv() {
            refuse(r);
        }
        return;
    };
    let mut versions = VersionCache::default();
    let mut pending: Vec<Request> = Vec::with_capacity(COMMIT_BATCH_LEN_MAX);
    let mut stop = false;
    while !stop {
        let Some(first) = rx.blocking_recv() else {
            break;
        };
        pending.push(first);
        let mut writes = usize::from(matches!(pending[0], Request::Write(..)));
        while writes < COMMIT_BATCH_LEN_MAX {
            match rx.try_recv() {
                Ok(r) => {
                    writes += usize::from(matches!(r, Request::Write(..)));
                    pending.push(r);
                }
                Err(_) => break,
            }
        }
        let (batch, stopping) = apply(&store, &shared, &mut next_seq, &mut versions, &mut pending);
        stop = stopping;
        if to_syncer.send(batch).is_err() {
            break;
        }
    }
    // Anything still queued after a stop is refused, never silently dropped.
    rx.close();
    while let Ok(r) = rx.try_recv() {
        match r {
            Request::Remove(seqs) => {
                let set = WriteSet { outbox_removals: seqs, ..WriteSet::default() };
                if let Err(e) = store.commit(&[&set], next_seq, None, &mut versions) {
                    tracing::warn!(error = %e, "could not delete delivered entries; they will be delivered again");
                }
            }
            other => refuse(other),
        }
    }
    drop(to_syncer);
    let _ = syncer.join();
    drop(stop_checkpoints);
    let _ = checkpointer.join();
    if let Err(e) = store.flush() {
        tracing::error!(error = %e, "final flush failed");
    }
}

fn refuse(r: Request) {
    match r {
        Request::Write(_, cb) => call_contained(|| cb(Err(CommitError::ShuttingDown))),
        Request::Barrier(f) => call_contained(f),
        Request::Remove(_) | Request::Stop => {}
    }
}

/// Decides, logs and applies one batch; returns it for the syncer, and whether a stop was asked.
fn apply(
    store: &Store,
    shared: &Shared,
    next_seq: &mut u64,
    versions: &mut VersionCache,
    pending: &mut Vec<Request>,
) -> (Applying, bool) {
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
    // The deletions ride in the batch as one more write set, last, so an injected fault counts
    // only real write sets.
    let removal_set = WriteSet { outbox_removals: removals, ..WriteSet::default() };
    let mut refs: Vec<&WriteSet> = writes.iter().map(|(ws, _)| ws).collect();
    if !removal_set.outbox_removals.is_empty() {
        refs.push(&removal_set);
    }
    let outcome = if refs.is_empty() {
        Ok(Vec::new())
    } else {
        let fault = if writes.is_empty() { None } else { shared.fault.lock().ok().and_then(|mut f| f.take()) };
        let t0 = Instant::now();
        let result = store.commit(&refs, *next_seq, fault, versions);
        shared.stats.commit_us.fetch_add(micros(t0.elapsed()), Ordering::Relaxed);
        result.map(|(mut applied, new_seq)| {
            *next_seq = new_seq;
            applied.truncate(writes.len());
            applied
        })
    };
    if !writes.is_empty() {
        let stats = &shared.stats;
        let n = u64::try_from(writes.len()).unwrap_or(u64::MAX);
        stats.batches.fetch_add(1, Ordering::Relaxed);
        stats.write_sets.fetch_add(n, Ordering::Relaxed);
        stats.batch_len_max.fetch_max(n, Ordering::Relaxed);
        let bucket = usize::try_from(u64::BITS - n.saturating_sub(1).leading_zeros()).unwrap_or(9).min(9);
        stats.batch_len_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        if let Err(e) = &outcome {
            stats.failures.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, write_sets = n, "commit batch failed; its entities reload from the store");
        }
    } else if let Err(e) = &outcome {
        tracing::warn!(error = %e, "could not delete delivered entries; they will be delivered again");
    }
    (Applying { writes, outcome, barriers, next_seq: *next_seq }, stop)
}

/// The syncer: one `fdatasync` for every batch waiting, then their callbacks, in order.
fn sync_loop(store: &Store, from: &std::sync::mpsc::Receiver<Applying>, shared: &Shared) {
    while let Ok(first) = from.recv() {
        let mut group = vec![first];
        while let Ok(b) = from.try_recv() {
            group.push(b);
        }
        // Every batch in the group was logged before it was handed over, so this one call
        // covers them all.
        let synced = if group.iter().any(|b| matches!(&b.outcome, Ok(a) if !a.is_empty())) {
            let t0 = Instant::now();
            let r = store.make_durable();
            shared.stats.durable_us.fetch_add(micros(t0.elapsed()), Ordering::Relaxed);
            shared.stats.syncs.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = &r {
                store.refuse_writes(&format!("the commit log could not be made durable: {e}"));
            }
            r
        } else {
            Ok(())
        };
        for b in group {
            complete(shared, b, synced.as_ref().err());
        }
    }
}

/// Runs one batch's callbacks (and hands its outbox entries to the relay) once it is durable.
fn complete(shared: &Shared, b: Applying, sync_error: Option<&StoreError>) {
    let Applying { mut writes, outcome, barriers, next_seq } = b;
    let outcome = match (outcome, sync_error) {
        (Ok(applied), None) => Ok(applied),
        (Ok(_), Some(e)) => Err(e.clone()),
        (Err(e), _) => Err(e),
    };
    match outcome {
        Ok(applied) => {
            let before = shared.durable_end.fetch_max(next_seq, Ordering::AcqRel);
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
            if next_seq > before {
                shared.relay_wake.notify_one();
            }
        }
        Err(e) => {
            for (_, cb) in writes {
                let e = e.clone();
                call_contained(|| cb(Err(CommitError::Store(e))));
            }
        }
    }
    for f in barriers {
        call_contained(f);
    }
}

/// The checkpointer: sled made durable and the log trimmed every `CHECKPOINT_EVERY_MS`, until
/// its sender is dropped.
fn checkpoint_loop(store: &Store, stop: &std::sync::mpsc::Receiver<()>, shared: &Shared) {
    let every = Duration::from_millis(CHECKPOINT_EVERY_MS);
    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(every) {
        match store.checkpoint() {
            Ok(()) => {
                shared.stats.checkpoints.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => tracing::warn!(error = %e, "checkpoint failed; the commit log keeps growing until one succeeds"),
        }
    }
}
