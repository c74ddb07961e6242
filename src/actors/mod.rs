//! One module per service: its entity kinds (how its aggregates take commands and events) on top
//! of the generic entity actor. Actors stay thin: every decision is a call into `domain`.

pub mod catalogue;
pub mod entity;
mod error;
pub mod plan;
pub mod stock;

pub use entity::EntityKind;
pub use plan::{Change, CommandOutcome, Create, Emit, EventOutcome, Origin, Timer, TimerOp};
pub use error::EngineError;
