//! The outbox relay (the seed's "message outbox sidecar"): one per node, it delivers every
//! durable outbox entry to its subscriber at least once, in order per (subscriber, routing key).
//!
//! It is woken by the committer after each durable batch (a `Notify`, no polling, no sled
//! `watch_prefix`) and scans the outbox from where it stopped; at start-up it scans from the
//! beginning, so it resumes after a restart. An entry is deleted only after the subscriber
//! acknowledged its own durable commit (the deletion rides in the committer's next batch). A
//! failed delivery is retried with exponential backoff; after `RELAY_ATTEMPTS_MAX` failures, or at once when the failure is permanent (an entry that
//! does not decode, an unknown topic), the entry moves to the dead-letter tree with the reason,
//! where operators can list and replay it.
//!
//! Invariant: at most one entry per lane (subscriber, routing key) is in flight or waiting for a
//! retry, and a lane's entries are delivered in sequence order.
//! Boundary: the relay reads only entries below the committer's durable mark, so nothing a
//! write set produced is delivered before it is durable.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt};
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::committer::{CommitError, Committer};
use super::envelope::Envelope;
use super::events::Topic;
use super::records::{DeadLetter, OutboxEntry};
use super::store::{Applied, Store, StoreError, WriteSet};
use crate::clock::Clock;
use crate::limits::{
    RELAY_ATTEMPTS_MAX, RELAY_BACKOFF_MS_MAX, RELAY_BACKOFF_MS_MIN, RELAY_DELIVERY_TIMEOUT_MS, RELAY_WINDOW_LEN_MAX,
};

/// Why a delivery failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// Worth retrying (the entity was busy, restarting, or its commit failed).
    #[error("{0}")]
    Transient(String),
    /// Will never succeed (the event does not decode, the topic is unknown): dead-letter it now.
    #[error("{0}")]
    Permanent(String),
}

/// A service that takes events: `deliver` resolves once the event took effect durably (or was
/// recognised as a duplicate).
pub trait Subscriber: Send + Sync + 'static {
    /// Delivers one event.
    fn deliver(&self, envelope: Envelope) -> BoxFuture<'static, Result<(), DeliveryError>>;
}

/// The aggregate statuses a subscriber takes (`None`: all).
pub type StatusFilter = Option<&'static [&'static str]>;

/// Which services subscribe to which topics: an event becomes one outbox entry per subscriber
/// whose status filter admits it.
#[derive(Debug, Clone, Default)]
pub struct Subscriptions {
    by_topic: HashMap<Topic, Vec<(String, StatusFilter)>>,
}

impl Subscriptions {
    /// Adds `service` as a subscriber of every event of `topic`.
    pub fn add(&mut self, topic: Topic, service: &str) {
        self.add_filtered(topic, service, None);
    }

    /// Adds `service` as a subscriber of the events of `topic` whose aggregate status is one of
    /// `statuses` (`None`: all).
    pub fn add_filtered(&mut self, topic: Topic, service: &str, statuses: Option<&'static [&'static str]>) {
        let subs = self.by_topic.entry(topic).or_default();
        if !subs.iter().any(|(s, _)| s == service) {
            subs.push((service.to_owned(), statuses));
        }
    }

    /// The subscribers of `topic`, whatever their filter.
    pub fn of(&self, topic: Topic) -> impl Iterator<Item = &str> {
        self.by_topic.get(&topic).into_iter().flatten().map(|(s, _)| s.as_str())
    }

    /// The subscribers an event of `topic` with aggregate status `status` goes to.
    pub fn destinations<'a>(&'a self, topic: Topic, status: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.by_topic
            .get(&topic)
            .into_iter()
            .flatten()
            .filter(move |(_, f)| f.is_none_or(|f| f.contains(&status)))
            .map(|(s, _)| s.as_str())
    }
}

/// Tunables of the relay (the defaults are the limits of `limits.rs`).
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Attempts before an entry is dead-lettered.
    pub attempts_max: u32,
    /// First retry delay, ms.
    pub backoff_ms_min: u64,
    /// Largest retry delay, ms.
    pub backoff_ms_max: u64,
    /// How long to wait for one acknowledgement, ms.
    pub delivery_timeout_ms: u64,
    /// Entries held in memory at once.
    pub window_len_max: usize,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            attempts_max: RELAY_ATTEMPTS_MAX,
            backoff_ms_min: RELAY_BACKOFF_MS_MIN,
            backoff_ms_max: RELAY_BACKOFF_MS_MAX,
            delivery_timeout_ms: RELAY_DELIVERY_TIMEOUT_MS,
            window_len_max: RELAY_WINDOW_LEN_MAX,
        }
    }
}

/// A running relay.
pub struct Relay {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Relay {
    /// Starts delivering `store`'s outbox to `subscribers` (by service name).
    pub fn start(
        store: Store,
        committer: Committer,
        subscribers: HashMap<String, Arc<dyn Subscriber>>,
        clock: Arc<dyn Clock>,
        config: RelayConfig,
    ) -> Relay {
        let (stop, stop_rx) = watch::channel(false);
        let worker = Worker {
            store,
            committer,
            subscribers,
            clock,
            config,
            cursor: 0,
            items: HashMap::new(),
            lanes: HashMap::new(),
            retries: BinaryHeap::new(),
            acked: Vec::new(),
        };
        let task = tokio::spawn(worker.run(stop_rx));
        Relay { stop, task }
    }

    /// Stops the relay (entries in flight stay in the outbox and are delivered again later).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

type Lane = (String, String);

struct Item {
    lane: Lane,
    entry: OutboxEntry,
}

type Delivery = BoxFuture<'static, (u64, Result<(), DeliveryError>)>;

struct Worker {
    store: Store,
    committer: Committer,
    subscribers: HashMap<String, Arc<dyn Subscriber>>,
    clock: Arc<dyn Clock>,
    config: RelayConfig,
    cursor: u64,
    items: HashMap<u64, Item>,
    lanes: HashMap<Lane, VecDeque<u64>>,
    retries: BinaryHeap<Reverse<(Instant, u64)>>,
    acked: Vec<u64>,
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    crate::actors::entity::blocking(f).await
}

impl Worker {
    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let wake = self.committer.relay_wake();
        let mut inflight: FuturesUnordered<Delivery> = FuturesUnordered::new();
        loop {
            let more = match self.load(&mut inflight).await {
                Ok(more) => more,
                Err(e) => {
                    tracing::error!(error = %e, "relay cannot read the outbox; retrying");
                    tokio::time::sleep(Duration::from_millis(self.config.backoff_ms_max)).await;
                    false
                }
            };
            if !self.acked.is_empty() {
                let seqs = std::mem::take(&mut self.acked);
                // Deleted in the committer's next batch; not deleted means delivered again
                // later, and the inbox drops the repeat.
                if let Err(e) = self.committer.remove_delivered(seqs).await {
                    tracing::warn!(error = %e, "relay could not delete delivered entries");
                }
            }
            let next_retry = self.retries.peek().map(|Reverse((at, _))| *at);
            tokio::select! {
                biased;
                _ = stop.changed() => break,
                Some((seq, result)) = inflight.next(), if !inflight.is_empty() => {
                    self.finished(seq, result, &mut inflight).await;
                    // Take every other acknowledgement already there before going round.
                    while let Some(Some((seq, result))) = inflight.next().now_or_never() {
                        self.finished(seq, result, &mut inflight).await;
                    }
                }
                _ = sleep_until_opt(next_retry), if next_retry.is_some() => {
                    let now = Instant::now();
                    while let Some(Reverse((at, seq))) = self.retries.peek().copied() {
                        if at > now {
                            break;
                        }
                        self.retries.pop();
                        self.start(seq, &mut inflight);
                    }
                }
                _ = wake.notified(), if !more => {}
                _ = std::future::ready(()), if more => {}
            }
        }
    }

    /// Loads newly durable entries into their lanes — from the committer's in-memory hand-off
    /// when it has them, from the outbox otherwise; returns whether more may be waiting.
    async fn load(&mut self, inflight: &mut FuturesUnordered<Delivery>) -> Result<bool, StoreError> {
        let handed = self.committer.take_handoff();
        let until = self.committer.durable_end();
        let mut room = self.config.window_len_max.saturating_sub(self.items.len());
        if room == 0 || self.cursor >= until {
            return Ok(false);
        }
        // Anything before the first handed entry is only on disk.
        let scan_end = handed.first().map_or(until, |(s, _)| *s).min(until);
        let mut rows = Vec::new();
        if self.cursor < scan_end {
            let (from, store) = (self.cursor, self.store.clone());
            rows = blocking(move || store.outbox_scan(from, scan_end, room)).await?;
            room -= rows.len();
            let scanned_all = rows.len() < self.config.window_len_max.saturating_sub(self.items.len());
            if !scanned_all {
                room = 0;
            }
        }
        if room > 0 {
            let next = rows.last().map_or(self.cursor, |(s, _)| s + 1).max(scan_end);
            rows.extend(handed.into_iter().filter(|(s, _)| *s >= next && *s < until).take(room));
        }
        for (seq, raw) in rows {
            self.cursor = seq + 1;
            match OutboxEntry::decode(&raw) {
                Ok(entry) => {
                    let lane = (entry.destination.clone(), entry.envelope.routing_key.clone());
                    let queue = self.lanes.entry(lane.clone()).or_default();
                    queue.push_back(seq);
                    let head = queue.len() == 1;
                    self.items.insert(seq, Item { lane, entry });
                    if head {
                        self.start(seq, inflight);
                    }
                }
                Err(e) => {
                    let letter = DeadLetter {
                        seq,
                        destination: None,
                        attempts: 0,
                        reason: format!("undecodable outbox entry: {e}"),
                        dead_at_ms: self.clock.now_ms(),
                        entry: raw,
                    };
                    self.bury(letter).await;
                }
            }
        }
        let room_left = self.config.window_len_max.saturating_sub(self.items.len());
        Ok(self.cursor < self.committer.durable_end() && room_left > 0)
    }

    fn start(&mut self, seq: u64, inflight: &mut FuturesUnordered<Delivery>) {
        let Some(item) = self.items.get(&seq) else {
            return;
        };
        let timeout = Duration::from_millis(self.config.delivery_timeout_ms);
        let delivery = match self.subscribers.get(&item.entry.destination) {
            Some(sub) => sub.deliver(item.entry.envelope.clone()),
            None => {
                let dest = item.entry.destination.clone();
                Box::pin(async move { Err(DeliveryError::Transient(format!("no subscriber {dest:?} on this node"))) })
            }
        };
        inflight.push(Box::pin(async move {
            match tokio::time::timeout(timeout, delivery).await {
                Ok(r) => (seq, r),
                Err(_) => (seq, Err(DeliveryError::Transient("no acknowledgement in time".into()))),
            }
        }));
    }

    async fn finished(
        &mut self,
        seq: u64,
        result: Result<(), DeliveryError>,
        inflight: &mut FuturesUnordered<Delivery>,
    ) {
        match result {
            Ok(()) => {
                self.acked.push(seq);
                self.advance(seq, inflight);
            }
            Err(DeliveryError::Permanent(reason)) => self.give_up(seq, reason, inflight).await,
            Err(DeliveryError::Transient(reason)) => {
                let Some(item) = self.items.get_mut(&seq) else {
                    return;
                };
                item.entry.attempts = item.entry.attempts.saturating_add(1);
                item.entry.last_error = Some(reason.clone());
                let attempts = item.entry.attempts;
                if attempts >= self.config.attempts_max {
                    self.give_up(seq, reason, inflight).await;
                    return;
                }
                tracing::debug!(seq, attempts, %reason, "delivery failed; will retry");
                // Keep the count across restarts, so a poison entry is not retried forever.
                if let Ok(bytes) = item.entry.encode() {
                    let ws = WriteSet { outbox_updates: vec![(seq, bytes)], ..WriteSet::default() };
                    if let Err(e) = commit(&self.committer, ws).await {
                        tracing::warn!(error = %e, seq, "could not record the failed attempt");
                    }
                }
                let exp = attempts.saturating_sub(1).min(20);
                let delay = self.config.backoff_ms_min.saturating_mul(1u64 << exp).min(self.config.backoff_ms_max);
                self.retries.push(Reverse((Instant::now() + Duration::from_millis(delay), seq)));
            }
        }
    }

    async fn give_up(&mut self, seq: u64, reason: String, inflight: &mut FuturesUnordered<Delivery>) {
        let Some(item) = self.items.get(&seq) else {
            return;
        };
        tracing::warn!(seq, destination = %item.entry.destination, %reason, "outbox entry moved to dead letters");
        let raw = item.entry.encode().unwrap_or_default();
        let letter = DeadLetter {
            seq,
            destination: Some(item.entry.destination.clone()),
            attempts: item.entry.attempts,
            reason,
            dead_at_ms: self.clock.now_ms(),
            entry: raw,
        };
        self.bury(letter).await;
        self.advance(seq, inflight);
    }

    async fn bury(&mut self, letter: DeadLetter) {
        // Out of the outbox and into the dead letters in one write set: both or neither.
        let moved = match letter.encode() {
            Ok(bytes) => {
                let ws = WriteSet {
                    dead_letters: vec![(letter.seq, bytes)],
                    outbox_removals: vec![letter.seq],
                    ..WriteSet::default()
                };
                commit(&self.committer, ws).await.map(|_| ())
            }
            Err(e) => Err(CommitError::Store(StoreError::Codec(e))),
        };
        if let Err(e) = moved {
            tracing::error!(error = %e, "could not move an entry to the dead letters; it stays in the outbox");
        }
    }

    /// Removes `seq` from its lane and starts the lane's next entry.
    fn advance(&mut self, seq: u64, inflight: &mut FuturesUnordered<Delivery>) {
        let Some(item) = self.items.remove(&seq) else {
            return;
        };
        let next = match self.lanes.get_mut(&item.lane) {
            Some(queue) => {
                if queue.front() == Some(&seq) {
                    queue.pop_front();
                }
                queue.front().copied()
            }
            None => None,
        };
        match next {
            Some(n) => self.start(n, inflight),
            None => {
                self.lanes.remove(&item.lane);
            }
        }
    }
}

/// Submits a write set of the relay's own (no entity) and waits until it is durable.
async fn commit(committer: &Committer, ws: WriteSet) -> Result<Applied, CommitError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    committer
        .submit(
            ws,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        )
        .await;
    rx.await.map_err(|_| CommitError::ShuttingDown)?
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Why a dead letter could not be replayed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// No dead letter has that number.
    #[error("no dead letter {0}")]
    NotFound(u64),
    /// The dead letter's entry does not decode; it stays where it is.
    #[error("dead letter {seq} cannot be replayed: {reason}")]
    Unreadable {
        /// Its number.
        seq: u64,
        /// Why.
        reason: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The commit failed.
    #[error(transparent)]
    Commit(#[from] CommitError),
}

/// Puts a dead letter back into the outbox (under a new sequence number, attempts reset), in
/// one write set through the committer so it is durable and numbered like any other entry.
pub async fn replay_dead_letter(store: &Store, committer: &Committer, seq: u64) -> Result<u64, ReplayError> {
    let letter = store.dead_letter_get(seq)?.ok_or(ReplayError::NotFound(seq))?;
    let mut entry =
        OutboxEntry::decode(&letter.entry).map_err(|e| ReplayError::Unreadable { seq, reason: e.to_string() })?;
    entry.attempts = 0;
    entry.last_error = None;
    let bytes = entry.encode().map_err(|e| ReplayError::Unreadable { seq, reason: e.to_string() })?;
    let ws = WriteSet { outbox: vec![bytes], dead_letter_removals: vec![seq], ..WriteSet::default() };
    match commit(committer, ws).await? {
        Applied::Written { first_seq, .. } => Ok(first_seq),
        other => Err(ReplayError::Unreadable { seq, reason: format!("unexpected outcome {other:?}") }),
    }
}
