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
}

impl Topic {
    /// Every topic this program knows.
    pub const ALL: &'static [Topic] = &[Topic::StockItem];

    /// The topic's name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Topic::StockItem => "stock.item",
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
        }
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

/// `stock.item` schema version 1, frozen as it was written.
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
