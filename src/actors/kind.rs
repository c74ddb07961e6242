//! The vocabulary every entity kind speaks: the [`EntityKind`] trait (a service's aggregate: key,
//! state, commands, replies and the pure functions that decide) and what those functions return
//! — a [`Change`] (new state, [`Emit`]ted events, [`Timer`]s, [`Create`]d siblings) inside a
//! [`CommandOutcome`] or [`EventOutcome`]. The entity actor (`entity`) runs a kind; the planner
//! (`plan`) turns a decision into records; both import this module and neither imports the
//! other.

use std::fmt;
use std::hash::Hash;

use serde::{de::DeserializeOwned, Serialize};

use crate::domain::saga::{OrderStatus, ShipmentStatus, StockStatus};
use crate::domain::Ctx;
use crate::persistence::codec::CodecError;
use crate::persistence::{DeliveryError, Envelope, Topic};

/// What a service's aggregate is: its key, state, commands, replies, and the pure functions
/// that decide. Implementations live in `actors::<service>` and call into `domain`.
pub trait EntityKind: Send + Sync + Sized + 'static {
    /// The service: its inbox trees are `{SERVICE}/inbox…`.
    const SERVICE: &'static str;
    /// The aggregate: its state tree is `{SERVICE}/{AGGREGATE}`.
    const AGGREGATE: &'static str;
    /// The aggregate's key.
    type Key: Clone + Eq + Hash + Send + Sync + fmt::Display + fmt::Debug + 'static;
    /// The aggregate's state.
    type State: Clone + Send + Sync + 'static;
    /// What callers may ask.
    /// Serializable, so that a command for a key another node owns travels to it (`cluster`).
    type Command: Clone + Send + Sync + Serialize + DeserializeOwned + 'static;
    /// What they get back (stored in the inbox, so that a repeated command gets the same answer).
    type Reply: Clone + Send + Sync + Serialize + DeserializeOwned + 'static;

    /// Whether the service's supervisor polls durable timers for this aggregate.
    const USES_TIMERS: bool = false;

    /// A replicated aggregate: every node holds every key (no partition owner), and the events
    /// it takes reach it on every node (one outbox entry per node). For read models every node
    /// must answer locally — the catalogue's copies of products, stock levels and promo codes.
    /// Such a kind only follows events (commands to it read this node's copy).
    const REPLICATED: bool = false;

    /// The topics this aggregate takes events from.
    fn topics() -> &'static [Topic];
    /// Only events of `topic` whose aggregate status is one of the returned ones are sent here
    /// (`None`: all of them). Saves a durable step per event the aggregate would ignore anyway.
    fn status_filter(_topic: Topic) -> Option<Statuses> {
        None
    }
    /// The key named by a routing key (of an event or a request).
    fn parse_key(s: &str) -> Result<Self::Key, String>;
    /// The entity an event is for (default: its routing key; a kind keyed otherwise reads the
    /// payload, e.g. the customer of an order event).
    fn event_key(env: &Envelope) -> Result<Self::Key, String> {
        Self::parse_key(&env.routing_key)
    }
    /// The state of an aggregate never stored.
    fn initial(key: &Self::Key) -> Self::State;
    /// Encodes the state; returns the schema version and the body.
    fn encode_state(state: &Self::State) -> Result<(u16, Vec<u8>), CodecError>;
    /// Decodes a stored state of any schema version this program knows (upcasting old ones).
    fn decode_state(key: &Self::Key, schema: u16, body: &[u8]) -> Result<Self::State, CodecError>;
    /// The status carried in emitted envelopes.
    fn status(state: &Self::State) -> String;
    /// Decides a command.
    fn on_command(key: &Self::Key, state: &Self::State, cmd: Self::Command, ctx: &Ctx) -> CommandOutcome<Self>;
    /// Decides a timer firing (the fired timer is cleared in the same write set).
    fn on_timer(_key: &Self::Key, _state: &Self::State, _timer: &Timer, _ctx: &Ctx) -> EventOutcome<Self> {
        EventOutcome::Ignored
    }
    /// Decides an event. `Err` when the event cannot be understood (never retried).
    fn on_event(
        key: &Self::Key,
        state: &Self::State,
        env: &Envelope,
        ctx: &Ctx,
    ) -> Result<EventOutcome<Self>, DeliveryError>;
}

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

/// The statuses of a topic's events an aggregate takes (`EntityKind::status_filter`), as values
/// of the status type of the aggregate that emits them, so a misspelt status cannot compile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Statuses {
    /// Events of orders in one of these statuses (`order.event`).
    Order(&'static [OrderStatus]),
    /// Events of stock bookings in one of these statuses (`stock.booking`).
    Stock(&'static [StockStatus]),
    /// Events of shipments in one of these statuses (`shipping.event`).
    Shipment(&'static [ShipmentStatus]),
}

impl Statuses {
    /// The names envelopes carry for these statuses.
    pub fn names(self) -> Vec<&'static str> {
        match self {
            Statuses::Order(s) => s.iter().map(|s| s.name()).collect(),
            Statuses::Stock(s) => s.iter().map(|s| s.name()).collect(),
            Statuses::Shipment(s) => s.iter().map(|s| s.name()).collect(),
        }
    }
}
