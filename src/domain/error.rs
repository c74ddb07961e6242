//! Business rejections: answers, not failures.

use serde::{Deserialize, Serialize};

use super::{OrderId, Qty, Sku};

/// Why a command was refused. A rejection is a reply value: the aggregate is unchanged and
/// the caller learns why; it never kills an actor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum DomainError {
    /// A quantity that must be positive was zero.
    #[error("quantity must be at least 1")]
    ZeroQuantity,
    /// A count would leave the range it is stored in.
    #[error("quantity overflow")]
    QuantityOverflow,
    /// Not enough free stock for a booking.
    #[error("not enough free stock of {sku}: {requested} requested, {free} free")]
    InsufficientStock {
        /// The item.
        sku: Sku,
        /// What the order asked for.
        requested: Qty,
        /// What was free.
        free: Qty,
    },
    /// The order already holds a booking of another quantity of this item.
    #[error("order {order} already booked {booked} of {sku}")]
    BookingConflict {
        /// The item.
        sku: Sku,
        /// The order.
        order: OrderId,
        /// The quantity already booked.
        booked: Qty,
    },
    /// The order holds no booking of this item.
    #[error("order {order} holds no booking of {sku}")]
    NotBooked {
        /// The item.
        sku: Sku,
        /// The order.
        order: OrderId,
    },
    /// More is returned than was shipped.
    #[error("cannot take back {requested} of {sku}: only {shipped} shipped")]
    ReturnExceedsShipped {
        /// The item.
        sku: Sku,
        /// What the return asked for.
        requested: Qty,
        /// What was shipped in all.
        shipped: Qty,
    },
    /// More is sent back to the supplier than is free.
    #[error("cannot send back {requested} of {sku}: only {free} free")]
    ReturnExceedsFree {
        /// The item.
        sku: Sku,
        /// What was asked for.
        requested: Qty,
        /// What was free.
        free: Qty,
    },
    /// The item holds as many open bookings as it may (see `limits::STOCK_BOOKINGS_MAX`).
    #[error("{sku} holds too many open bookings")]
    TooManyBookings {
        /// The item.
        sku: Sku,
    },
    /// A value that came from outside is not acceptable.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// Which value.
        field: String,
        /// Why.
        reason: String,
    },
}
