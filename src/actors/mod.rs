//! One module per service: its entity kinds (how its aggregates take commands and events) on top
//! of the generic entity actor. Actors stay thin: every decision is a call into `domain`.

pub mod auth;
pub mod catalogue;
pub mod customer;
pub mod entity;
mod error;
pub mod idempotency;
pub mod kind;
pub mod notification;
pub mod order;
pub mod payment;
pub mod plan;
pub mod promo;
pub mod shipping;
pub mod stock;

pub use error::EngineError;
pub use kind::{Change, CommandOutcome, Create, Emit, EntityKind, EventOutcome, Origin, Timer, TimerOp};

use serde::{de::DeserializeOwned, Serialize};

use crate::limits::AGGREGATE_BYTES_MAX;
use crate::persistence::codec::{self, CodecError};

/// Encodes a state kept at schema 1.
pub(crate) fn state_v1<T: Serialize>(what: &'static str, state: &T) -> Result<(u16, Vec<u8>), CodecError> {
    Ok((1, codec::to_body(what, state, AGGREGATE_BYTES_MAX)?))
}

/// Decodes a state kept at schema 1.
pub(crate) fn from_state_v1<T: DeserializeOwned>(
    what: &'static str,
    schema: u16,
    body: &[u8],
) -> Result<T, CodecError> {
    if schema != 1 {
        return Err(CodecError::UnknownSchema { what: what.into(), version: schema });
    }
    codec::from_body(what, body)
}

/// A new message id for a command whose identity is not a fact (a caller's fresh request): a
/// random UUID. Ids that name a fact are `MessageId::derived`, so a repeat is recognised.
pub fn fresh_message_id() -> crate::domain::MessageId {
    crate::domain::MessageId::from_bytes(*uuid::Uuid::new_v4().as_bytes())
}

/// A customer's key named in text (`EntityKind::parse_key` of the kinds keyed by customer).
pub(crate) fn customer_key(s: &str) -> Result<crate::domain::CustomerId, String> {
    crate::domain::CustomerId::try_from(s.to_owned()).map_err(|e| e.to_string())
}

/// An order's key named in text.
pub(crate) fn order_key(s: &str) -> Result<crate::domain::OrderId, String> {
    crate::domain::OrderId::parse(s).map_err(|e| e.to_string())
}

/// An item's key named in text.
pub(crate) fn sku_key(s: &str) -> Result<crate::domain::Sku, String> {
    crate::domain::Sku::parse(s).map_err(|e| e.to_string())
}

/// The customer an `order.event` is about (kinds keyed by customer take order events by it).
pub(crate) fn order_event_customer(env: &crate::persistence::Envelope) -> Result<crate::domain::CustomerId, String> {
    crate::persistence::events::decode_order_event(env.schema_version, &env.payload)
        .map(|e| e.customer_id)
        .map_err(|e| e.to_string())
}
