//! Business rejections: answers, not failures.

use serde::{Deserialize, Serialize};

use super::{OrderId, Qty, Sku};

/// Why an order cannot be paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NotPayableReason {
    /// It was cancelled.
    Cancelled,
    /// It is paid in full.
    AlreadyPaid,
    /// Its stock is not booked yet (retry shortly).
    NotBookedYet,
}

impl std::fmt::Display for NotPayableReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NotPayableReason::Cancelled => "it is cancelled",
            NotPayableReason::AlreadyPaid => "it is paid already",
            NotPayableReason::NotBookedYet => "its stock is not booked yet",
        })
    }
}

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
    /// The customer already has an order that is not paid (hard case 2).
    #[error("customer has an unpaid order {order}")]
    UnpaidOrderExists {
        /// That order.
        order: OrderId,
    },
    /// The action is not possible in the aggregate's current status.
    #[error("cannot {action} a {what} that is {status}")]
    WrongState {
        /// Which aggregate.
        what: String,
        /// Its status.
        status: String,
        /// What was asked.
        action: String,
    },
    /// The caller does not own the aggregate.
    #[error("not the owner")]
    NotOwner,
    /// The aggregate does not exist (yet).
    #[error("{what} {id} not found")]
    NotFound {
        /// What was looked for.
        what: String,
        /// Its id.
        id: String,
    },
    /// It exists already.
    #[error("{what} {id} exists already")]
    AlreadyExists {
        /// What.
        what: String,
        /// Its id.
        id: String,
    },
    /// The order cannot be paid now (cancelled, already paid, or not booked yet).
    #[error("order cannot be paid: {reason}")]
    NotPayable {
        /// Why.
        reason: NotPayableReason,
    },
    /// A shipping step backwards, or a repeat of a different step.
    #[error("shipment is {current}; {requested} would go backwards")]
    ShippingStepBackwards {
        /// The shipment's status.
        current: String,
        /// The step asked for.
        requested: String,
    },
    /// A promo code exists but cannot be used for this order now.
    #[error("promo code {token} cannot be used: {reason}")]
    PromoNotApplicable {
        /// The code.
        token: String,
        /// Why.
        reason: String,
    },
    /// Another request for the same thing came first, or too many run at once; the request
    /// changed nothing and may be tried again.
    #[error("another request for this {what} came first; try again")]
    Raced {
        /// What was raced for.
        what: String,
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
