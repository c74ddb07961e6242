//! The pure core of the store: ids, quantities, money and one state machine per aggregate.
//!
//! Nothing here does I/O, spawns, locks or reads a clock: time and ids arrive in [`Ctx`].
//! This module must never import tokio, ractor, sled or warp (a tidy test checks it), so that
//! every rule of the store can be tested as plain functions, and recovery can replay events
//! through the same code that produced them.

pub mod auth;
pub mod booking;
pub mod catalogue;
mod ctx;
pub mod customer;
mod error;
pub mod gate;
mod ids;
mod money;
pub mod notification;
pub mod order;
pub mod payment;
pub mod pricing;
pub mod promo;
mod quantity;
pub mod saga;
pub mod shipping;
pub mod stock;

pub use ctx::Ctx;
pub use error::{DomainError, NotPayableReason};
pub use ids::{partition_prefix, CustomerId, IdError, MessageId, NodeId, OrderId, PaymentId, Sku};
pub use money::{Currency, Money};
pub use quantity::Qty;
