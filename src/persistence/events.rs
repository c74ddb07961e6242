//! Topics and event payloads: which event types exist, their current schema versions, and the
//! upcasters that read every older version as the current one (hard case 8).
//!
//! Rule: a stored or sent payload is never rewritten. When an event type changes, its schema
//! version goes up, the old shape stays here as a frozen type, and an upcaster converts it on
//! read. Golden byte fixtures under `tests/fixtures/` pin every version's encoding.

use serde::{Deserialize, Serialize};

use super::codec::{self, CodecError};
use crate::domain::stock::{Dimensions, ReleaseReason, StockChange, StockItemEvent, StockLevels};
use crate::domain::{OrderId, Qty, Sku};
use crate::limits::ENVELOPE_BYTES_MAX;

/// A kind of event, named on the wire by `name()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Topic {
    /// A stock item changed (`StockItemEvent`), keyed by SKU.
    StockItem,
    /// An order changed status (`OrderEvent`), keyed by order id.
    OrderEvent,
    /// A booking asks a stock item to book, release or ship (`ReserveRequest`), keyed by SKU.
    StockReserve,
    /// A stock item answers a booking request (`LineOutcome`), keyed by order id.
    StockLine,
    /// An order's booking changed status (`StockEvent`), keyed by order id.
    StockBooking,
    /// An order's payments changed (`PayEvent`), keyed by order id.
    PayEvent,
    /// An order's shipment moved (`ShippingEvent`), keyed by order id.
    ShippingEvent,
    /// A customer registered or changed their profile (`Customer`), keyed by customer id.
    CustomerEvent,
    /// A product was added or changed (`Product`), keyed by product id.
    ProductEvent,
    /// A notification is to be sent (`SendRequest`), keyed by notification id.
    NotificationSend,
    /// A promo code was created or used (`Promocode`), keyed by its token.
    PromoEvent,
    /// A promo code's use was taken, given back or settled (`PromoUse`), keyed by the code's
    /// token.
    PromoUsed,
    /// A promo code's hold asks a customer's gate whether its order exists (`HoldCheck`),
    /// keyed by the customer id.
    PromoHold,
    /// A token was revoked (`Revoked`), keyed by its revocation group: every node's copy of
    /// the revocations takes it.
    TokenRevoked,
    /// A user account was created or changed (`User`, its password hash included), keyed by
    /// the user's id: every node's copy of the accounts takes it.
    UserEvent,
}

impl Topic {
    /// Every topic this program knows.
    pub const ALL: &'static [Topic] = &[
        Topic::StockItem,
        Topic::OrderEvent,
        Topic::StockReserve,
        Topic::StockLine,
        Topic::StockBooking,
        Topic::PayEvent,
        Topic::ShippingEvent,
        Topic::CustomerEvent,
        Topic::ProductEvent,
        Topic::NotificationSend,
        Topic::PromoEvent,
        Topic::PromoUsed,
        Topic::PromoHold,
        Topic::TokenRevoked,
        Topic::UserEvent,
    ];

    /// The topic's name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Topic::StockItem => "stock.item",
            Topic::OrderEvent => "order.event",
            Topic::StockReserve => "stock.reserve",
            Topic::StockLine => "stock.line",
            Topic::StockBooking => "stock.booking",
            Topic::PayEvent => "pay.event",
            Topic::ShippingEvent => "shipping.event",
            Topic::CustomerEvent => "customer.event",
            Topic::ProductEvent => "catalogue.product",
            Topic::NotificationSend => "notification.send",
            Topic::PromoEvent => "promo.event",
            Topic::PromoUsed => "promo.used",
            Topic::PromoHold => "promo.hold",
            Topic::TokenRevoked => "auth.revoked",
            Topic::UserEvent => "auth.user",
        }
    }

    /// The topic named `name`, if this program knows it.
    pub fn parse(name: &str) -> Option<Topic> {
        Topic::ALL.iter().copied().find(|t| t.name() == name)
    }

    /// The schema version new payloads of this topic are written with.
    pub fn current_schema(self) -> u16 {
        match self {
            Topic::StockItem => STOCK_ITEM_SCHEMA,
            Topic::OrderEvent => ORDER_EVENT_SCHEMA,
            Topic::PromoUsed => PROMO_USED_SCHEMA,
            _ => 1,
        }
    }
}

/// Schema of `order.event` payloads. History: 1 — no promo codes yet (no `discount`, no
/// `promo_code`); 2 — both added.
pub const ORDER_EVENT_SCHEMA: u16 = 2;

/// Encodes any event payload at its topic's current schema.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    codec::to_body("event", value, ENVELOPE_BYTES_MAX)
}

/// Decodes a payload of a topic that has only ever had its current schema.
pub fn decode<T: serde::de::DeserializeOwned>(topic: Topic, schema: u16, bytes: &[u8]) -> Result<T, CodecError> {
    if schema != topic.current_schema() {
        return Err(CodecError::UnknownSchema { what: topic.name().to_owned(), version: schema });
    }
    codec::from_body(topic.name(), bytes)
}

/// Decodes an order event written at any schema version this program knows.
pub fn decode_order_event(schema: u16, bytes: &[u8]) -> Result<crate::domain::saga::OrderEvent, CodecError> {
    match schema {
        2 => codec::from_body("order.event", bytes),
        1 => codec::from_body::<order_v1::OrderEventV1>("order.event v1", bytes).map(order_v1::upcast),
        version => Err(CodecError::UnknownSchema { what: Topic::OrderEvent.name().to_owned(), version }),
    }
}

/// `order.event` schema version 1, frozen as it was written: it repeats today's types on purpose
/// (records written then must still decode after today's change).
pub mod order_v1 {
    use super::*;
    use crate::domain::saga::{CancelReason, OrderEvent, OrderLine, OrderStatus};
    use crate::domain::{CustomerId, Money};

    /// An order event before promo codes.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct OrderEventV1 {
        /// The order.
        pub order_id: OrderId,
        /// Its customer.
        pub customer_id: CustomerId,
        /// Its status.
        pub status: OrderStatus,
        /// Its lines.
        pub items: Vec<OrderLine>,
        /// Its price.
        pub fixed_price: Money,
        /// Why it was cancelled.
        pub cancel_reason: Option<CancelReason>,
    }

    /// Reads a version 1 event as the current version: orders before promo codes had no
    /// discount and no code.
    pub fn upcast(old: OrderEventV1) -> OrderEvent {
        OrderEvent {
            discount: Money::zero(old.fixed_price.currency()),
            promo_code: None,
            order_id: old.order_id,
            customer_id: old.customer_id,
            status: old.status,
            items: old.items,
            fixed_price: old.fixed_price,
            cancel_reason: old.cancel_reason,
        }
    }
}

/// Schema of `promo.used` payloads. History: 1 — the `OrderId` that used the code (counted,
/// never given back); 2 — a `PromoUse`: taken under a hold, released, or settled.
pub const PROMO_USED_SCHEMA: u16 = 2;

/// Decodes a `promo.used` payload written at any schema version this program knows.
pub fn decode_promo_use(schema: u16, bytes: &[u8]) -> Result<crate::domain::promo::PromoUse, CodecError> {
    match schema {
        2 => codec::from_body("promo.used", bytes),
        // Version 1 named the order that used the code, before holds existed.
        1 => codec::from_body::<OrderId>("promo.used v1", bytes)
            .map(|order| crate::domain::promo::PromoUse::Taken { order, cause: None }),
        version => Err(CodecError::UnknownSchema { what: Topic::PromoUsed.name().to_owned(), version }),
    }
}

/// Schema of `stock.item` payloads. History: 1 — `Released` without a reason; 2 — `Released`
/// carries a `ReleaseReason`.
pub const STOCK_ITEM_SCHEMA: u16 = 2;

/// Encodes a stock item event at the current schema version.
pub fn encode_stock_item(event: &StockItemEvent) -> Result<Vec<u8>, CodecError> {
    codec::to_body("stock.item event", event, ENVELOPE_BYTES_MAX)
}

/// Decodes a stock item event written at any schema version this program knows.
pub fn decode_stock_item(schema: u16, bytes: &[u8]) -> Result<StockItemEvent, CodecError> {
    match schema {
        2 => codec::from_body("stock.item event", bytes),
        1 => codec::from_body::<v1::StockItemEventV1>("stock.item event v1", bytes).map(v1::upcast),
        version => Err(CodecError::UnknownSchema { what: Topic::StockItem.name().to_owned(), version }),
    }
}

/// `stock.item` schema version 1, frozen as it was written: it repeats today's types on purpose
/// (records written then must still decode after today's change).
pub mod v1 {
    use super::*;

    /// A stock change as schema 1 wrote it: `Released` had no reason.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub enum StockChangeV1 {
        /// See `StockChange::Received`.
        Received {
            /// How many.
            qty: Qty,
            /// Size and weight of one unit.
            dims: Option<Dimensions>,
        },
        /// See `StockChange::Booked`.
        Booked {
            /// The order.
            order: OrderId,
            /// How many.
            qty: Qty,
        },
        /// See `StockChange::Released`; no reason in this version.
        Released {
            /// The order.
            order: OrderId,
            /// How many.
            qty: Qty,
        },
        /// See `StockChange::Shipped`.
        Shipped {
            /// The order.
            order: OrderId,
            /// How many.
            qty: Qty,
        },
        /// See `StockChange::ReturnAccepted`.
        ReturnAccepted {
            /// The order.
            order: OrderId,
            /// How many.
            qty: Qty,
        },
        /// See `StockChange::ReturnedToSupplier`.
        ReturnedToSupplier {
            /// How many.
            qty: Qty,
        },
    }

    /// A stock item event as schema 1 wrote it.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct StockItemEventV1 {
        /// The item.
        pub sku: Sku,
        /// What happened.
        pub change: StockChangeV1,
        /// The counts after it.
        pub levels: StockLevels,
    }

    /// Reads a version 1 event as the current version: a release from before reasons were
    /// recorded says so (`ReleaseReason::Unrecorded`) rather than guessing one.
    pub fn upcast(old: StockItemEventV1) -> StockItemEvent {
        let change = match old.change {
            StockChangeV1::Received { qty, dims } => StockChange::Received { qty, dims },
            StockChangeV1::Booked { order, qty } => StockChange::Booked { order, qty },
            StockChangeV1::Released { order, qty } => {
                StockChange::Released { order, qty, reason: ReleaseReason::Unrecorded }
            }
            StockChangeV1::Shipped { order, qty } => StockChange::Shipped { order, qty },
            StockChangeV1::ReturnAccepted { order, qty } => StockChange::ReturnAccepted { order, qty },
            StockChangeV1::ReturnedToSupplier { qty } => StockChange::ReturnedToSupplier { qty },
        };
        StockItemEvent { sku: old.sku, change, levels: old.levels }
    }
}

#[cfg(test)]
mod tests;
