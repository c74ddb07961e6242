//! What an entity kind decides, and the pure step that turns a decision into records.
//!
//! A kind's handlers return a [`Change`] (new state, events, timers, created siblings) or say
//! nothing changes. [`plan`] turns that into a [`Plan`]: the inbox entry, the state at
//! version + 1, the envelopes with every field hard cases 6 and 7 ask for, the timer keys.
//! The entity actor writes a plan through the committer; the deterministic simulation applies
//! the same plan to its in-memory stores — one code path for both, so the simulation tests what
//! runs. Nothing here does I/O.

use crate::domain::{Ctx, MessageId};
use crate::persistence::codec::CodecError;
use crate::persistence::{Envelope, Topic};

use super::entity::EntityKind;

/// An event a decision publishes; the runtime wraps it in an envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emit {
    /// Its topic (its payload is at the topic's current schema version).
    pub topic: Topic,
    /// The key its subscribers' lanes are ordered by.
    pub routing_key: String,
    /// The encoded event.
    pub payload: Vec<u8>,
    /// The aggregate it speaks for, when not the deciding one (a created sibling).
    pub from: Option<Origin>,
}

impl Emit {
    /// An event of the deciding aggregate.
    pub fn new(topic: Topic, routing_key: impl Into<String>, payload: Vec<u8>) -> Emit {
        Emit { topic, routing_key: routing_key.into(), payload, from: None }
    }
}

/// The aggregate an event speaks for, when it is not the one deciding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Its id.
    pub aggregate_id: String,
    /// Its version after the change.
    pub version: u64,
    /// Its status after the change.
    pub status: String,
}

/// A durable timer of the deciding entity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimerOp {
    /// Fire `tag` at `due_ms` (the entity then gets `on_timer`).
    Set {
        /// The timer's name (≤ 32 bytes, no NUL).
        tag: String,
        /// When, ms since the epoch.
        due_ms: u64,
    },
    /// Forget the timer set with this tag and due time.
    Clear {
        /// The timer's name.
        tag: String,
        /// When it was due.
        due_ms: u64,
    },
}

/// A timer firing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timer {
    /// The timer's name.
    pub tag: String,
    /// When it was due, ms.
    pub due_ms: u64,
}

/// A sibling aggregate of the same service the decision creates (version 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Create {
    /// Its aggregate name (its state tree is `{service}/{aggregate}`).
    pub aggregate: &'static str,
    /// Its key.
    pub key: String,
    /// Schema of the encoded state.
    pub schema: u16,
    /// The encoded state.
    pub body: Vec<u8>,
    /// Timers of the created aggregate (only `Set` makes sense here).
    pub timers: Vec<TimerOp>,
}

/// A decision that changes the aggregate.
#[derive(Debug, Clone)]
pub struct Change<S> {
    /// The new state (written at version + 1).
    pub state: S,
    /// Events to publish.
    pub events: Vec<Emit>,
    /// Timers to set or clear.
    pub timers: Vec<TimerOp>,
    /// Sibling aggregates to create.
    pub creates: Vec<Create>,
}

impl<S> Change<S> {
    /// A change to `state` with nothing else.
    pub fn to(state: S) -> Self {
        Change { state, events: Vec::new(), timers: Vec::new(), creates: Vec::new() }
    }

    /// Adds an event.
    pub fn emit(mut self, e: Emit) -> Self {
        self.events.push(e);
        self
    }

    /// Adds events.
    pub fn emit_all(mut self, es: impl IntoIterator<Item = Emit>) -> Self {
        self.events.extend(es);
        self
    }

    /// Adds a timer operation.
    pub fn timer(mut self, t: TimerOp) -> Self {
        self.timers.push(t);
        self
    }

    /// Adds a created sibling.
    pub fn create(mut self, c: Create) -> Self {
        self.creates.push(c);
        self
    }
}

/// A kind's decision on a command.
pub enum CommandOutcome<K: EntityKind> {
    /// The aggregate changes: persist (version + 1), publish, then reply.
    Changed {
        /// The change.
        change: Change<K::State>,
        /// The answer.
        reply: K::Reply,
    },
    /// Nothing changes (a read, a rejection, a repeat): reply once earlier writes are durable.
    Unchanged(K::Reply),
}

/// A kind's decision on an event or a timer.
pub enum EventOutcome<K: EntityKind> {
    /// The aggregate moves forward.
    Changed(Change<K::State>),
    /// The aggregate stays as it is but answers with events (e.g. a refused booking).
    Emit(Vec<Emit>),
    /// Stale, duplicate in substance, or of no concern here; still recorded in the inbox.
    Ignored,
}

/// A decision turned into records, ready to be written (or applied by the simulation).
#[derive(Debug, Clone)]
pub struct Plan {
    /// The incoming message id and the encoded reply kept with it.
    pub inbox: (MessageId, Option<Vec<u8>>),
    /// The new state (schema, body), written at `version`.
    pub state: Option<(u16, Vec<u8>)>,
    /// The aggregate's version after the plan (unchanged when `state` is `None`).
    pub version: u64,
    /// Sibling aggregates created at version 1.
    pub creates: Vec<Create>,
    /// Envelopes to publish, before fan-out to subscribers.
    pub envelopes: Vec<Envelope>,
    /// Timers to set or clear (besides the fired one, which the runtime clears).
    pub timers: Vec<TimerOp>,
}

/// Turns a decision into a plan. `version` is the aggregate's version before; `next` the
/// changed state, if any; `new_id` makes the events' message ids (random in the actor, seeded
/// in the simulation).
#[allow(clippy::too_many_arguments)]
pub fn plan<K: EntityKind>(
    key: &K::Key,
    version: u64,
    current: &K::State,
    inbox: (MessageId, Option<Vec<u8>>),
    change: Option<&Change<K::State>>,
    extra_events: &[Emit],
    ctx: &Ctx,
    new_id: &mut dyn FnMut() -> MessageId,
) -> Result<Plan, CodecError> {
    let causation = inbox.0;
    let (state, after, status, events, timers, creates) = match change {
        Some(c) => {
            let (schema, body) = K::encode_state(&c.state)?;
            (Some((schema, body)), version + 1, K::status(&c.state), &c.events[..], c.timers.clone(), c.creates.clone())
        }
        None => (None, version, K::status(current), extra_events, Vec::new(), Vec::new()),
    };
    for t in timers.iter().chain(creates.iter().flat_map(|c| c.timers.iter())) {
        let tag = match t {
            TimerOp::Set { tag, .. } | TimerOp::Clear { tag, .. } => tag,
        };
        if tag.is_empty() || tag.len() > 32 || tag.contains('\0') {
            return Err(CodecError::Encode { what: "timer", reason: format!("bad tag {tag:?}") });
        }
    }
    let mut envelopes = Vec::with_capacity(events.len());
    for e in events {
        let (aggregate_id, aggregate_version, aggregate_status) = match &e.from {
            Some(o) => (o.aggregate_id.clone(), o.version, o.status.clone()),
            None => (key.to_string(), after, status.clone()),
        };
        let env = Envelope {
            message_id: new_id(),
            topic: e.topic,
            routing_key: e.routing_key.clone(),
            aggregate_id,
            aggregate_version,
            aggregate_status,
            origin_node: ctx.node.clone(),
            schema_version: e.topic.current_schema(),
            timestamp_ms: ctx.now_ms,
            causation_id: Some(causation),
            request_id: None,
            payload: e.payload.clone(),
        };
        env.check()?;
        envelopes.push(env);
    }
    Ok(Plan { inbox, state, version: after, creates, envelopes, timers })
}
