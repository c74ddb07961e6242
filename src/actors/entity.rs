//! The entity actor: one ractor actor per aggregate instance, generic over an [`EntityKind`].
//!
//! It owns its aggregate and handles one message at a time, so its mailbox is the lock. For
//! each message it asks the kind's pure handler for a decision, turns a change into ONE write
//! set (inbox record, aggregate at version + 1, outbox entries) and hands it to the node's
//! committer. It may go on with its next message on the new in-memory state while that write
//! set is in flight (pipelining), but every reply — a rejection too — is released only once
//! every write set it produced before is durable: replies ride on commit callbacks, and a reply
//! with nothing to write waits on a committer barrier when writes are in flight.
//!
//! If a write set fails (its batch failed, its message was a duplicate, its version was stale),
//! the actor reloads its aggregate from sled. A `Reload` names the epoch it was caused in, so
//! the failures of a chain that was already superseded do not reload again.
//! Boundary: it never returns `Err` from `handle` for a business outcome — only when its state
//! can no longer be trusted (a reload failed), which makes the supervisor restart it.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::oneshot;

use super::error::EngineError;
use super::kind::{Change, CommandOutcome, EntityKind, EventOutcome, Timer, TimerOp};
use super::plan::{plan, Plan};
use crate::clock::Clock;
use crate::domain::{Ctx, MessageId, NodeId};
use crate::limits::{AGGREGATE_BYTES_MAX, MAILBOX_LEN_MAX};
use crate::persistence::codec::{self, Header, RecordKind};
use crate::persistence::store::{timer_key, InboxWrite, StateWrite};
use crate::persistence::{
    Applied, CommitResult, Committer, DeliveryError, Envelope, InboxRecord, OutboxEntry, ServiceTrees, Store,
    StoreError, Subscriptions, WriteSet,
};

/// What every entity of a service shares.
pub struct EntityEnv {
    /// The node's store.
    pub store: Store,
    /// The service's trees.
    pub trees: ServiceTrees,
    /// The node's committer.
    pub committer: Committer,
    /// Who subscribes to which topic (for the outbox fan-out).
    pub subscriptions: Arc<Subscriptions>,
    /// This node.
    pub node: NodeId,
    /// The node's clock.
    pub clock: Arc<dyn Clock>,
}

/// The reply channel of a command.
pub type CommandReply<K> = oneshot::Sender<Result<<K as EntityKind>::Reply, EngineError>>;

/// Messages of an entity actor (local only: entities never cross nodes).
pub enum EntityMsg<K: EntityKind> {
    /// A command from a caller.
    Command {
        /// Its id (the inbox deduplicates on it).
        id: MessageId,
        /// The command.
        cmd: K::Command,
        /// Where the answer goes.
        reply: CommandReply<K>,
        /// The caller's span (e.g. an HTTP request's, with its request id): the entity handles
        /// the command inside it, so its logs carry the caller's context.
        span: tracing::Span,
    },
    /// An event from the relay; acknowledged once durable.
    Event {
        /// The event.
        env: Envelope,
        /// Where the acknowledgement goes.
        reply: oneshot::Sender<Result<(), DeliveryError>>,
    },
    /// A durable timer fired; acknowledged once its write set is durable.
    Timer {
        /// The timer.
        timer: Timer,
        /// Its stored key (cleared by the write set).
        raw: Vec<u8>,
        /// Where the acknowledgement goes.
        reply: oneshot::Sender<Result<(), DeliveryError>>,
    },
    /// A write set failed: reload from sled (unless a newer epoch already did).
    Reload {
        /// The epoch the failed write set was built in.
        epoch: u64,
    },
    /// Stop (the supervisor passivates this entity).
    Passivate,
}

impl<K: EntityKind> ractor::Message for EntityMsg<K> {}

/// What an entity's handle and its actor share: the mailbox count that bounds the mailbox, the
/// recency the supervisor passivates by, and a watch of the entity's durable changes (so a
/// caller can wait for an entity to move instead of polling it).
#[derive(Debug)]
pub struct HandleShared {
    queued: AtomicUsize,
    last_used_ms: AtomicU64,
    referenced: AtomicBool,
    changes: tokio::sync::watch::Sender<u64>,
}

impl HandleShared {
    /// The shared part of an entity activated at `now_ms` (which counts as a use: an idle sweep
    /// between the activation and the first send must not passivate it at once).
    pub fn new(now_ms: u64) -> Self {
        Self {
            queued: AtomicUsize::new(0),
            last_used_ms: AtomicU64::new(now_ms),
            referenced: AtomicBool::new(true),
            changes: tokio::sync::watch::channel(0).0,
        }
    }

    /// A receiver that wakes after each durable change of the entity (while this incarnation
    /// lives; after a passivation it reports the sender gone).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// When the entity was last sent a message, ms.
    pub fn last_used_ms(&self) -> u64 {
        self.last_used_ms.load(Ordering::Relaxed)
    }

    /// Clears and returns the "used since the last look" bit (second-chance eviction).
    pub fn take_referenced(&self) -> bool {
        self.referenced.swap(false, Ordering::Relaxed)
    }
}

/// Why a send to an entity did not enqueue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendFailure {
    /// The mailbox is full.
    Overloaded,
    /// The actor has stopped (nothing was enqueued: safe to send again elsewhere).
    Stopped,
}

/// A handle to a live entity actor with a bounded mailbox.
pub struct EntityHandle<K: EntityKind> {
    actor: ActorRef<EntityMsg<K>>,
    shared: Arc<HandleShared>,
}

impl<K: EntityKind> Clone for EntityHandle<K> {
    fn clone(&self) -> Self {
        Self { actor: self.actor.clone(), shared: self.shared.clone() }
    }
}

impl<K: EntityKind> EntityHandle<K> {
    pub(crate) fn new(actor: ActorRef<EntityMsg<K>>, shared: Arc<HandleShared>) -> Self {
        Self { actor, shared }
    }

    /// The actor.
    pub fn actor(&self) -> &ActorRef<EntityMsg<K>> {
        &self.actor
    }

    /// The shared counters.
    pub fn shared(&self) -> &Arc<HandleShared> {
        &self.shared
    }

    /// Whether the actor still takes messages.
    pub fn is_alive(&self) -> bool {
        matches!(
            self.actor.get_status(),
            ractor::ActorStatus::Running | ractor::ActorStatus::Starting | ractor::ActorStatus::Upgrading
        )
    }

    /// Enqueues a caller's message, refusing past `MAILBOX_LEN_MAX` queued messages.
    pub fn send(&self, msg: EntityMsg<K>, now_ms: u64) -> Result<(), SendFailure> {
        if self.shared.queued.fetch_add(1, Ordering::AcqRel) >= MAILBOX_LEN_MAX {
            self.shared.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(SendFailure::Overloaded);
        }
        self.shared.last_used_ms.store(now_ms, Ordering::Relaxed);
        self.shared.referenced.store(true, Ordering::Relaxed);
        match self.actor.send_message(msg) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.shared.queued.fetch_sub(1, Ordering::AcqRel);
                match e {
                    ractor::MessagingErr::SendErr(_) | ractor::MessagingErr::ChannelClosed => Err(SendFailure::Stopped),
                    _ => Err(SendFailure::Overloaded),
                }
            }
        }
    }
}

/// Start-up arguments of an entity actor.
pub struct EntityArgs<K: EntityKind> {
    /// Its key.
    pub key: K::Key,
    /// The service's shared environment.
    pub env: Arc<EntityEnv>,
    /// Shared with its handle.
    pub shared: Arc<HandleShared>,
}

/// The entity actor of kind `K`.
pub struct Entity<K: EntityKind>(PhantomData<fn() -> K>);

impl<K: EntityKind> Default for Entity<K> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

/// The state of a running entity actor.
pub struct EntityState<K: EntityKind> {
    key: K::Key,
    state: K::State,
    version: u64,
    epoch: u64,
    inflight: Arc<AtomicUsize>,
    env: Arc<EntityEnv>,
    shared: Arc<HandleShared>,
}

/// Reads an aggregate from the store (on a blocking thread: sled's reads can wait on its lock
/// while the committer applies a batch; `block_in_place` measured slower in the saga bench).
pub async fn load_state<K: EntityKind>(env: &Arc<EntityEnv>, key: &K::Key) -> Result<(K::State, u64), StoreError> {
    let read = {
        let (env, key) = (env.clone(), key.clone());
        move || -> Result<(K::State, u64), StoreError> {
            let bytes = key.to_string().into_bytes();
            match env.store.load_aggregate(&env.trees, &bytes)? {
                None => Ok((K::initial(&key), 0)),
                Some((header, body)) => {
                    let state = K::decode_state(&key, header.schema, &body).map_err(|source| StoreError::Corrupt {
                        tree: format!("{}/{}", K::SERVICE, K::AGGREGATE),
                        source,
                    })?;
                    Ok((state, header.version))
                }
            }
        }
    };
    crate::persistence::blocking(read).await
}

/// Encodes a plan into a write set: the inbox record, the framed states, one outbox entry per
/// subscriber whose filter admits the envelope, the timer keys.
pub fn write_set<K: EntityKind>(
    env: &EntityEnv,
    key: &K::Key,
    version_before: u64,
    p: Plan,
) -> Result<WriteSet, StoreError> {
    let (id, reply) = p.inbox;
    let now = env.clock.now_ms();
    let record = InboxRecord { recorded_at_ms: now, reply }.encode()?;
    let mut ws = WriteSet {
        service: Some(env.trees.clone()),
        inbox: Some(InboxWrite { id, recorded_at_ms: now, record }),
        ..WriteSet::default()
    };
    let key_text = key.to_string();
    if let Some((schema, body)) = &p.state {
        let header = Header { kind: RecordKind::Aggregate, schema: *schema, version: p.version };
        let record = codec::frame(header, body, AGGREGATE_BYTES_MAX)?;
        ws.state = Some(StateWrite { key: key_text.clone().into_bytes(), expected_version: version_before, record });
    }
    for c in &p.creates {
        let trees = env.store.service(K::SERVICE, c.aggregate)?;
        let header = Header { kind: RecordKind::Aggregate, schema: c.schema, version: 1 };
        let record = codec::frame(header, &c.body, AGGREGATE_BYTES_MAX)?;
        ws.creates.push((trees, StateWrite { key: c.key.clone().into_bytes(), expected_version: 0, record }));
        // The created aggregate's timers: only its service's timer tree is at hand, which is
        // the same one (siblings share their service's trees).
        for t in &c.timers {
            if let TimerOp::Set { tag, due_ms } = t {
                ws.timer_sets.push((timer_key(*due_ms, c.aggregate, &c.key, tag), Vec::new()));
            }
        }
    }
    for env_ in &p.envelopes {
        for dest in env.subscriptions.destinations(env_.topic, &env_.aggregate_status) {
            let entry =
                OutboxEntry { destination: dest.to_owned(), attempts: 0, last_error: None, envelope: env_.clone() };
            ws.outbox.push(entry.encode()?);
        }
    }
    for t in &p.timers {
        match t {
            TimerOp::Set { tag, due_ms } => {
                ws.timer_sets.push((timer_key(*due_ms, K::AGGREGATE, &key_text, tag), Vec::new()))
            }
            TimerOp::Clear { tag, due_ms } => ws.timer_clears.push(timer_key(*due_ms, K::AGGREGATE, &key_text, tag)),
        }
    }
    Ok(ws)
}

impl<K: EntityKind> EntityState<K> {
    fn ctx(&self, cause: MessageId) -> Ctx {
        Ctx { now_ms: self.env.clock.now_ms(), node: self.env.node.clone(), cause }
    }

    /// Plans and encodes a decision into a write set.
    fn build(
        &self,
        inbox: (MessageId, Option<Vec<u8>>),
        change: Option<&Change<K::State>>,
        extra: &[crate::actors::kind::Emit],
        ctx: &Ctx,
    ) -> Result<WriteSet, StoreError> {
        let p =
            plan::<K>(&self.key, self.version, &self.state, inbox, change, extra, ctx, &mut super::fresh_message_id)?;
        write_set::<K>(&self.env, &self.key, self.version, p)
    }

    /// Runs `f` now if nothing is in flight, else once everything in flight is durable.
    async fn after_inflight(&self, f: Box<dyn FnOnce() + Send>) {
        if self.inflight.load(Ordering::Acquire) == 0 {
            f();
        } else {
            self.env.committer.barrier(f).await;
        }
    }

    /// Submits a write set; `done` gets the outcome (and whether the actor must reload).
    async fn submit(
        &mut self,
        myself: &ActorRef<EntityMsg<K>>,
        ws: WriteSet,
        done: impl FnOnce(CommitResult) + Send + 'static,
    ) {
        self.inflight.fetch_add(1, Ordering::AcqRel);
        let inflight = self.inflight.clone();
        let me = myself.clone();
        let epoch = self.epoch;
        let changes_state = ws.state.is_some();
        let shared = self.shared.clone();
        self.env
            .committer
            .submit(
                ws,
                Box::new(move |result: CommitResult| {
                    inflight.fetch_sub(1, Ordering::AcqRel);
                    if changes_state && matches!(result, Ok(Applied::Written { .. })) {
                        shared.changes.send_modify(|n| *n += 1);
                    }
                    let reload = match &result {
                        Ok(Applied::Written { .. }) => false,
                        // A duplicate of a change: the in-memory state applied it once too often.
                        Ok(Applied::Duplicate(_)) => changes_state,
                        Ok(Applied::Conflict(_)) | Err(_) => true,
                    };
                    if reload {
                        let _ = me.send_message(EntityMsg::Reload { epoch });
                    }
                    done(result);
                }),
            )
            .await;
    }

    fn adopt(&mut self, change: Option<Change<K::State>>) {
        if let Some(c) = change {
            self.state = c.state;
            self.version += 1;
        }
    }

    async fn on_command(
        &mut self,
        myself: &ActorRef<EntityMsg<K>>,
        id: MessageId,
        cmd: K::Command,
        reply: CommandReply<K>,
    ) {
        let ctx = self.ctx(id);
        match K::on_command(&self.key, &self.state, cmd, &ctx) {
            CommandOutcome::Unchanged(r) => {
                self.after_inflight(Box::new(move || {
                    let _ = reply.send(Ok(r));
                }))
                .await;
            }
            CommandOutcome::Changed { change, reply: r } => {
                let built = codec::to_body("reply", &r, AGGREGATE_BYTES_MAX)
                    .map_err(StoreError::from)
                    .and_then(|bytes| self.build((id, Some(bytes)), Some(&change), &[], &ctx));
                let ws = match built {
                    Ok(ws) => ws,
                    Err(e) => {
                        tracing::warn!(service = K::SERVICE, key = %self.key, error = %e, "change refused: it does not encode");
                        self.after_inflight(Box::new(move || {
                            let _ = reply.send(Err(EngineError::TooLarge(e.to_string())));
                        }))
                        .await;
                        return;
                    }
                };
                self.adopt(Some(change));
                self.submit(myself, ws, move |result| {
                    let answer = match result {
                        Ok(Applied::Written { .. }) => Ok(r),
                        Ok(Applied::Duplicate(stored)) => stored_reply::<K>(&stored),
                        Ok(Applied::Conflict(_)) => {
                            Err(EngineError::CommitFailed("the aggregate changed concurrently; retry".into()))
                        }
                        Err(e) => Err(EngineError::CommitFailed(e.to_string())),
                    };
                    let _ = reply.send(answer);
                })
                .await;
            }
        }
    }

    /// Writes the outcome of an event or a timer (recorded in the inbox under `id` in any
    /// case) and acknowledges once durable.
    async fn record_outcome(
        &mut self,
        myself: &ActorRef<EntityMsg<K>>,
        id: MessageId,
        outcome: EventOutcome<K>,
        fired: Option<Vec<u8>>,
        reply: oneshot::Sender<Result<(), DeliveryError>>,
        ctx: &Ctx,
    ) {
        let (change, extra) = match outcome {
            EventOutcome::Changed(c) => (Some(c), Vec::new()),
            EventOutcome::Emit(es) => (None, es),
            EventOutcome::Ignored => (None, Vec::new()),
        };
        let mut ws = match self.build((id, None), change.as_ref(), &extra, ctx) {
            Ok(ws) => ws,
            Err(e) => {
                self.after_inflight(Box::new(move || {
                    let _ = reply.send(Err(DeliveryError::Permanent(format!("the change does not encode: {e}"))));
                }))
                .await;
                return;
            }
        };
        if let Some(raw) = fired {
            ws.timer_clears.push(raw);
        }
        self.adopt(change);
        self.submit(myself, ws, move |result| {
            let ack = match result {
                Ok(Applied::Written { .. } | Applied::Duplicate(_)) => Ok(()),
                Ok(Applied::Conflict(_)) => Err(DeliveryError::Transient("the aggregate changed concurrently".into())),
                Err(e) => Err(DeliveryError::Transient(e.to_string())),
            };
            let _ = reply.send(ack);
        })
        .await;
    }

    async fn on_event(
        &mut self,
        myself: &ActorRef<EntityMsg<K>>,
        env: Envelope,
        reply: oneshot::Sender<Result<(), DeliveryError>>,
    ) {
        let ctx = self.ctx(env.message_id);
        match K::on_event(&self.key, &self.state, &env, &ctx) {
            Err(e) => {
                self.after_inflight(Box::new(move || {
                    let _ = reply.send(Err(e));
                }))
                .await;
            }
            Ok(outcome) => self.record_outcome(myself, env.message_id, outcome, None, reply, &ctx).await,
        }
    }

    async fn on_timer(
        &mut self,
        myself: &ActorRef<EntityMsg<K>>,
        timer: Timer,
        raw: Vec<u8>,
        reply: oneshot::Sender<Result<(), DeliveryError>>,
    ) {
        let id = MessageId::derived(&[b"timer", &raw]);
        let ctx = self.ctx(id);
        let outcome = K::on_timer(&self.key, &self.state, &timer, &ctx);
        self.record_outcome(myself, id, outcome, Some(raw), reply, &ctx).await;
    }
}

/// The reply a duplicate command gets: the one stored with the first.
fn stored_reply<K: EntityKind>(record: &[u8]) -> Result<K::Reply, EngineError> {
    let rec =
        InboxRecord::decode(record).map_err(|e| EngineError::Unavailable(format!("stored reply unreadable: {e}")))?;
    match rec.reply {
        Some(bytes) => codec::from_body::<K::Reply>("reply", &bytes)
            .map_err(|e| EngineError::Unavailable(format!("stored reply unreadable: {e}"))),
        None => Err(EngineError::Unavailable("the message id was used by an event, not a command".into())),
    }
}

impl<K: EntityKind> Actor for Entity<K> {
    type Msg = EntityMsg<K>;
    type State = EntityState<K>;
    type Arguments = EntityArgs<K>;

    /// Builds the actor only: its supervisor waits for this, so it must be quick.
    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let state = K::initial(&args.key);
        Ok(EntityState {
            key: args.key,
            state,
            version: 0,
            epoch: 0,
            inflight: Arc::new(AtomicUsize::new(0)),
            env: args.env,
            shared: args.shared,
        })
    }

    /// Loads the aggregate, in the entity's own task: ractor hands it no message before this
    /// returns, and the supervisor meanwhile starts other entities (a load can wait on sled).
    /// A failed load fails the actor; its supervisor starts it afresh on the next message.
    async fn post_start(&self, _myself: ActorRef<Self::Msg>, st: &mut Self::State) -> Result<(), ActorProcessingErr> {
        let (state, version) = load_state::<K>(&st.env, &st.key).await?;
        st.state = state;
        st.version = version;
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        st: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            EntityMsg::Command { id, cmd, reply, span } => {
                st.shared.queued.fetch_sub(1, Ordering::AcqRel);
                tracing::Instrument::instrument(st.on_command(&myself, id, cmd, reply), span).await;
            }
            EntityMsg::Event { env, reply } => {
                st.shared.queued.fetch_sub(1, Ordering::AcqRel);
                st.on_event(&myself, env, reply).await;
            }
            EntityMsg::Timer { timer, raw, reply } => {
                st.shared.queued.fetch_sub(1, Ordering::AcqRel);
                st.on_timer(&myself, timer, raw, reply).await;
            }
            EntityMsg::Reload { epoch } => {
                if epoch == st.epoch {
                    let (state, version) = load_state::<K>(&st.env, &st.key).await?;
                    tracing::debug!(service = K::SERVICE, key = %st.key, version, "entity reloaded after a failed write");
                    st.state = state;
                    st.version = version;
                    st.epoch += 1;
                }
            }
            EntityMsg::Passivate => myself.stop(Some("passivated".into())),
        }
        Ok(())
    }
}
