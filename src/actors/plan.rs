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
use crate::persistence::Envelope;

use super::kind::{Change, Create, Emit, EntityKind, TimerOp};

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
