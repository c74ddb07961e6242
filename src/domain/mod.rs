//! The pure core of the store: ids, quantities, money and one state machine per aggregate.
//!
//! Nothing here does I/O, spawns, locks or reads a clock: time and ids arrive in [`Ctx`].
//! This module must never import tokio, ractor, sled or warp (a tidy test checks it), so that
//! every rule of the store can be tested as plain functions, and recovery can replay events
//! through the same code that produced them.

mod ctx;
mod error;
mod ids;
mod money;
mod quantity;
pub mod stock;

pub use ctx::Ctx;
pub use error::DomainError;
pub use ids::{IdError, MessageId, NodeId, OrderId, Sku};
pub use money::{Currency, Money};
pub use quantity::Qty;
