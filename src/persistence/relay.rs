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
//! Invariant: at most one delivery per lane (subscriber, routing key) is in flight or waiting for
//! a retry; it carries the lane's waiting entries in sequence order (up to
//! `RELAY_LANE_BATCH_LEN_MAX`), and an entity service queues them in its entity's mailbox in that
//! order, so their write sets ride the same commit batches instead of one batch each. An entry
//! that fails transiently stays at the head of its lane; entries after it in the same delivery
//! may have taken effect already (handlers discard stale events, so a late retry is harmless).
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
    RELAY_ATTEMPTS_MAX, RELAY_BACKOFF_MS_MAX, RELAY_BACKOFF_MS_MIN, RELAY_DELIVERY_TIMEOUT_MS,
    RELAY_LANE_BATCH_LEN_MAX, RELAY_PARK_MS, RELAY_WINDOW_LEN_MAX,
};

/// Why a delivery failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum DeliveryError {
    /// Worth retrying (the entity was busy, restarting, or its commit failed).
    #[error("{0}")]
    Transient(String),
    /// Will never succeed (the event does not decode, the topic is unknown): dead-letter it now.
    #[error("{0}")]
    Permanent(String),
    /// The subscriber's node cannot be reached (down, cut off, or running another
    /// configuration): the lane parks — retried every `RELAY_PARK_MS`, no attempt counted,
    /// never dead-lettered — until the node is back.
    #[error("node {node}: {why}")]
    Unreachable {
        /// The node waited for (the parked-lanes gauge is per node).
        node: String,
        /// Why it cannot be reached.
        why: String,
    },
}

impl DeliveryError {
    /// A permanent failure saying why (the event does not decode, the topic is not taken).
    pub fn permanent(why: impl std::fmt::Display) -> Self {
        DeliveryError::Permanent(why.to_string())
    }

    /// Fills `outcomes` up to `n`: the events after the first failure, not attempted, report
    /// it as `not_attempted` does (with no failure, they report no outcome).
    pub fn pad(outcomes: &mut Vec<Result<(), DeliveryError>>, n: usize) {
        let tail = outcomes
            .iter()
            .find_map(|r| r.as_ref().err())
            .map_or_else(|| DeliveryError::Transient("no outcome".into()), DeliveryError::not_attempted);
        outcomes.resize(n, Err(tail));
    }

    /// What an event behind this failure in its lane, not attempted, reports: it waits as the
    /// lane does (parked behind an unreachable node, retried behind anything else).
    pub fn not_attempted(&self) -> Self {
        match self {
            DeliveryError::Unreachable { node, why } => {
                DeliveryError::Unreachable { node: node.clone(), why: format!("not attempted: {why}") }
            }
            DeliveryError::Transient(why) | DeliveryError::Permanent(why) => {
                DeliveryError::Transient(format!("not attempted: an earlier event of its lane failed ({why})"))
            }
        }
    }
}

/// A service that takes events: `deliver` resolves once the event took effect durably (or was
/// recognised as a duplicate).
pub trait Subscriber: Send + Sync + 'static {
    /// Delivers one event.
    fn deliver(&self, envelope: Envelope) -> BoxFuture<'static, Result<(), DeliveryError>>;

    /// Delivers the waiting events of one lane, in order, and resolves with each one's outcome.
    /// The default takes them one after the other and stops at the first failure (the rest are
    /// reported as not attempted); an entity service instead queues them all in the entity's
    /// mailbox at once, so their write sets share commit batches.
    fn deliver_lane(&self, envelopes: Vec<Envelope>) -> BoxFuture<'static, Vec<Result<(), DeliveryError>>> {
        let deliveries: Vec<_> = envelopes.into_iter().map(|e| self.deliver(e)).collect();
        Box::pin(async move {
            let mut out = Vec::with_capacity(deliveries.len());
            for d in deliveries {
                match out.iter().find_map(|r: &Result<(), DeliveryError>| r.as_ref().err()) {
                    Some(failed) => out.push(Err(failed.not_attempted())),
                    None => out.push(d.await),
                }
            }
            out
        })
    }
}

/// The aggregate statuses a subscriber takes, by the names envelopes carry (`None`: all).
pub type StatusFilter = Option<Vec<&'static str>>;

/// Which services subscribe to which topics: an event becomes one outbox entry per subscriber
/// whose status filter admits it — and, for a replicated subscriber, one more per peer node,
/// addressed `{subscriber}@{node}` (delivered there through the cluster's gateway).
#[derive(Debug, Clone, Default)]
pub struct Subscriptions {
    by_topic: HashMap<Topic, Vec<Subscription>>,
    peers: Vec<String>,
}

#[derive(Debug, Clone)]
struct Subscription {
    service: String,
    statuses: StatusFilter,
    /// `{service}@{peer}` for every peer, when the subscriber is replicated.
    copies: Vec<String>,
    replicated: bool,
}

impl Subscriptions {
    /// Adds `service` as a subscriber of every event of `topic`.
    pub fn add(&mut self, topic: Topic, service: &str) {
        self.add_filtered(topic, service, None);
    }

    /// Adds `service` as a subscriber of the events of `topic` whose aggregate status is one of
    /// `statuses` (`None`: all).
    pub fn add_filtered(&mut self, topic: Topic, service: &str, statuses: StatusFilter) {
        self.insert(topic, service, statuses, false);
    }

    /// Adds `service`, which runs on every node, as a subscriber of `topic` on every node.
    pub fn add_replicated(&mut self, topic: Topic, service: &str, statuses: StatusFilter) {
        self.insert(topic, service, statuses, true);
    }

    fn insert(&mut self, topic: Topic, service: &str, statuses: StatusFilter, replicated: bool) {
        let subs = self.by_topic.entry(topic).or_default();
        if !subs.iter().any(|s| s.service == service) {
            let copies = if replicated { copy_names(service, &self.peers) } else { Vec::new() };
            subs.push(Subscription { service: service.to_owned(), statuses, copies, replicated });
        }
    }

    /// The other nodes of the cluster, which replicated subscribers also run on.
    pub fn set_peers(&mut self, peers: Vec<String>) {
        for s in self.by_topic.values_mut().flatten() {
            s.copies = if s.replicated { copy_names(&s.service, &peers) } else { Vec::new() };
        }
        self.peers = peers;
    }

    /// Each replicated subscriber's name on each peer: (`{service}@{peer}`, service, peer).
    pub fn copies(&self) -> Vec<(String, String, String)> {
        let mut out: Vec<(String, String, String)> = Vec::new();
        for s in self.by_topic.values().flatten().filter(|s| s.replicated) {
            for p in &self.peers {
                let name = format!("{}@{p}", s.service);
                if !out.iter().any(|(n, _, _)| *n == name) {
                    out.push((name, s.service.clone(), p.clone()));
                }
            }
        }
        out
    }

    /// The subscribers of `topic`, whatever their filter.
    pub fn of(&self, topic: Topic) -> impl Iterator<Item = &str> {
        self.by_topic.get(&topic).into_iter().flatten().map(|s| s.service.as_str())
    }

    /// The destinations an event of `topic` with aggregate status `status` goes to.
    pub fn destinations<'a>(&'a self, topic: Topic, status: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.by_topic
            .get(&topic)
            .into_iter()
            .flatten()
            .filter(move |s| s.statuses.as_ref().is_none_or(|f| f.contains(&status)))
            .flat_map(|s| std::iter::once(s.service.as_str()).chain(s.copies.iter().map(String::as_str)))
    }
}

fn copy_names(service: &str, peers: &[String]) -> Vec<String> {
    peers.iter().map(|p| format!("{service}@{p}")).collect()
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
    /// How long a lane whose subscriber's node is unreachable waits before trying again, ms.
    pub park_ms: u64,
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
            park_ms: RELAY_PARK_MS,
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
            parked: HashMap::new(),
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
    entry: OutboxEntry,
}

/// A lane's waiting entries and whether a delivery of them is in flight (or waiting to retry).
#[derive(Default)]
struct LaneState {
    queue: VecDeque<u64>,
    busy: bool,
}

/// One lane's delivery: the entries sent and each one's outcome.
type Delivery = BoxFuture<'static, (Lane, Vec<u64>, Vec<Result<(), DeliveryError>>)>;

struct Worker {
    store: Store,
    committer: Committer,
    subscribers: HashMap<String, Arc<dyn Subscriber>>,
    clock: Arc<dyn Clock>,
    config: RelayConfig,
    cursor: u64,
    items: HashMap<u64, Item>,
    lanes: HashMap<Lane, LaneState>,
    /// Lanes paused after a failure, by when to try again.
    retries: BinaryHeap<Reverse<(Instant, Lane)>>,
    /// Lanes whose subscriber's node cannot be reached (`DeliveryError::Unreachable`), and
    /// that node.
    parked: HashMap<Lane, String>,
    acked: Vec<u64>,
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
                Some((lane, seqs, results)) = inflight.next(), if !inflight.is_empty() => {
                    self.finished(lane, seqs, results, &mut inflight).await;
                    // Take every other acknowledgement already there before going round.
                    while let Some(Some((lane, seqs, results))) = inflight.next().now_or_never() {
                        self.finished(lane, seqs, results, &mut inflight).await;
                    }
                }
                _ = sleep_until_opt(next_retry), if next_retry.is_some() => {
                    let now = Instant::now();
                    while self.retries.peek().is_some_and(|Reverse((at, _))| *at <= now) {
                        if let Some(Reverse((_, lane))) = self.retries.pop() {
                            if let Some(l) = self.lanes.get_mut(&lane) {
                                l.busy = false;
                            }
                            self.start(&lane, &mut inflight);
                        }
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
            rows = super::blocking(move || store.outbox_scan(from, scan_end, room)).await?;
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
        let mut touched: Vec<Lane> = Vec::new();
        for (seq, raw) in rows {
            self.cursor = seq + 1;
            match OutboxEntry::decode(&raw) {
                Ok(entry) => {
                    let lane = (entry.destination.clone(), entry.envelope.routing_key.clone());
                    let state = self.lanes.entry(lane.clone()).or_default();
                    state.queue.push_back(seq);
                    if state.queue.len() == 1 {
                        touched.push(lane.clone());
                    }
                    self.items.insert(seq, Item { entry });
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
        // Started once everything loaded is queued, so each lane's delivery takes all of it.
        for lane in touched {
            self.start(&lane, inflight);
        }
        let room_left = self.config.window_len_max.saturating_sub(self.items.len());
        Ok(self.cursor < self.committer.durable_end() && room_left > 0)
    }

    /// Delivers the waiting entries of `lane` (up to `RELAY_LANE_BATCH_LEN_MAX`), unless a
    /// delivery of the lane is in flight or waiting to retry.
    fn start(&mut self, lane: &Lane, inflight: &mut FuturesUnordered<Delivery>) {
        let Some(state) = self.lanes.get_mut(lane) else {
            return;
        };
        if state.busy || state.queue.is_empty() {
            return;
        }
        state.busy = true;
        let seqs: Vec<u64> = state.queue.iter().copied().take(RELAY_LANE_BATCH_LEN_MAX).collect();
        let envelopes: Vec<Envelope> =
            seqs.iter().filter_map(|s| self.items.get(s)).map(|i| i.entry.envelope.clone()).collect();
        let timeout = Duration::from_millis(self.config.delivery_timeout_ms);
        let n = seqs.len();
        let delivery =
            match self.subscribers.get(&lane.0) {
                Some(sub) if envelopes.len() == n => sub.deliver_lane(envelopes),
                Some(_) => Box::pin(async move {
                    vec![Err(DeliveryError::Transient("the relay lost track of an entry".into())); n]
                }),
                None => {
                    let dest = lane.0.clone();
                    Box::pin(async move {
                        vec![Err(DeliveryError::Transient(format!("no subscriber {dest:?} on this node"))); n]
                    })
                }
            };
        let lane = lane.clone();
        inflight.push(Box::pin(async move {
            let results = match tokio::time::timeout(timeout, delivery).await {
                Ok(mut r) => {
                    // A subscriber that answered for fewer events than it got: the rest failed.
                    r.resize_with(n, || Err(DeliveryError::Transient("no outcome reported".into())));
                    r
                }
                Err(_) => vec![Err(DeliveryError::Transient("no acknowledgement in time".into())); n],
            };
            (lane, seqs, results)
        }));
    }

    /// Takes a lane's delivery outcomes: acknowledged entries go, permanent failures are
    /// dead-lettered, transient ones stay at the head of the lane, which pauses with backoff.
    async fn finished(
        &mut self,
        lane: Lane,
        seqs: Vec<u64>,
        results: Vec<Result<(), DeliveryError>>,
        inflight: &mut FuturesUnordered<Delivery>,
    ) {
        let mut done: Vec<u64> = Vec::new();
        let mut delay_ms: Option<u64> = None;
        let mut unreachable: Option<String> = None;
        for (seq, result) in seqs.into_iter().zip(results) {
            match result {
                Err(DeliveryError::Unreachable { node, why }) => {
                    // Not the entry's fault: wait for the node, count nothing, bury nothing.
                    if unreachable.is_none() && !self.parked.contains_key(&lane) {
                        tracing::info!(destination = %lane.0, key = %lane.1, %node, reason = %why, "lane parked until its node is back");
                    }
                    unreachable.get_or_insert(node);
                    delay_ms = Some(delay_ms.map_or(self.config.park_ms, |m| m.max(self.config.park_ms)));
                }
                Ok(()) => {
                    self.acked.push(seq);
                    done.push(seq);
                }
                Err(DeliveryError::Permanent(reason)) => {
                    self.give_up(seq, reason).await;
                    done.push(seq);
                }
                Err(DeliveryError::Transient(reason)) => match self.failed_once(seq, &reason).await {
                    Some(d) => delay_ms = Some(delay_ms.map_or(d, |m| m.max(d))),
                    None => {
                        self.give_up(seq, reason).await;
                        done.push(seq);
                    }
                },
            }
        }
        for seq in &done {
            self.items.remove(seq);
        }
        let before = match unreachable {
            Some(node) => self.parked.insert(lane.clone(), node),
            None => self.parked.remove(&lane),
        };
        let after = self.parked.get(&lane).cloned();
        if before != after {
            for peer in [before, after].into_iter().flatten() {
                let n = self.parked.values().filter(|p| **p == peer).count();
                metrics::gauge!("relay_parked_lanes", "peer" => peer).set(n as f64);
            }
        }
        let Some(state) = self.lanes.get_mut(&lane) else {
            return;
        };
        state.queue.retain(|s| !done.contains(s));
        match delay_ms {
            Some(d) => self.retries.push(Reverse((Instant::now() + Duration::from_millis(d), lane))),
            None if state.queue.is_empty() => {
                self.lanes.remove(&lane);
            }
            None => {
                state.busy = false;
                self.start(&lane, inflight);
            }
        }
    }

    /// Counts a failed attempt (kept across restarts, so a poison entry is not retried
    /// forever); returns the backoff before the next, or `None` when attempts are used up.
    async fn failed_once(&mut self, seq: u64, reason: &str) -> Option<u64> {
        let item = self.items.get_mut(&seq)?;
        item.entry.attempts = item.entry.attempts.saturating_add(1);
        item.entry.last_error = Some(reason.to_owned());
        let attempts = item.entry.attempts;
        if attempts >= self.config.attempts_max {
            return None;
        }
        tracing::debug!(seq, attempts, %reason, "delivery failed; will retry");
        if let Ok(bytes) = item.entry.encode() {
            let ws = WriteSet { outbox_updates: vec![(seq, bytes)], ..WriteSet::default() };
            if let Err(e) = commit(&self.committer, ws).await {
                tracing::warn!(error = %e, seq, "could not record the failed attempt");
            }
        }
        let exp = attempts.saturating_sub(1).min(20);
        Some(self.config.backoff_ms_min.saturating_mul(1u64 << exp).min(self.config.backoff_ms_max))
    }

    async fn give_up(&mut self, seq: u64, reason: String) {
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
