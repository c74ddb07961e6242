//! The stock item aggregate: how many units of one SKU the warehouse holds, and for whom.
//!
//! Invariant: free + booked + shipped = received − returned (returned = sent back to the
//! supplier), every count ≥ 0 (by type).
//!
//! The item keeps counts only: which order holds what is the order's booking's business
//! (`domain::booking`), which asks the item to book, release or ship exact quantities once each
//! (the inbox drops a repeated request). So an item's size never grows with its sales.
//! Customer returns (`AcceptReturn`) put shipped units back into free stock.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Ctx, DomainError, OrderId, Qty, Sku};

#[cfg(test)]
mod tests;

/// Size and weight of one unit, for the shipping service's parcel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dimensions {
    /// Grams.
    pub weight_g: u32,
    /// Millimetres.
    pub length_mm: u32,
    /// Millimetres.
    pub width_mm: u32,
    /// Millimetres.
    pub height_mm: u32,
}

/// The counts of one stock item. Each unit ever received is in exactly one of free, booked,
/// shipped or returned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockLevels {
    /// Units received from suppliers, ever.
    pub received: Qty,
    /// Units on the shelf that no order holds.
    pub free: Qty,
    /// Units held for orders not yet shipped.
    pub booked: Qty,
    /// Units that left with a shipment (less those the customer sent back).
    pub shipped: Qty,
    /// Units sent back to the supplier.
    pub returned: Qty,
}

/// Why a booking was released; recorded in the event (added in schema version 2 of
/// `stock.item` events, see the upcaster).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReleaseReason {
    /// The order was cancelled (by the customer, an operator, a timeout or a failed payment).
    OrderCancelled,
    /// Another line of the same order could not be booked, so this one was given back.
    BookingFailed,
    /// The event predates the field (schema version 1).
    Unrecorded,
}

/// What can be asked of a stock item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StockCommand {
    /// Units arrived from a supplier (and, optionally, the unit's size and weight).
    Receive {
        /// How many.
        qty: Qty,
        /// Size and weight of one unit, when known.
        dims: Option<Dimensions>,
    },
    /// Hold units for an order.
    Book {
        /// The order.
        order: OrderId,
        /// How many.
        qty: Qty,
    },
    /// Give units an order held back to free stock.
    Release {
        /// The order.
        order: OrderId,
        /// How many.
        qty: Qty,
        /// Why.
        reason: ReleaseReason,
    },
    /// Units an order held left with its shipment.
    Ship {
        /// The order.
        order: OrderId,
        /// How many.
        qty: Qty,
    },
    /// A customer sent shipped units back; they return to free stock.
    AcceptReturn {
        /// The order they were shipped with.
        order: OrderId,
        /// How many.
        qty: Qty,
    },
    /// Free units go back to the supplier.
    ReturnToSupplier {
        /// How many.
        qty: Qty,
    },
    /// Read the item (changes nothing).
    Get,
}

/// What happened to a stock item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StockChange {
    /// Units arrived.
    Received {
        /// How many.
        qty: Qty,
        /// Size and weight of one unit, when given.
        dims: Option<Dimensions>,
    },
    /// Units were booked for an order.
    Booked {
        /// The order.
        order: OrderId,
        /// How many.
        qty: Qty,
    },
    /// An order's booking went back to free stock.
    Released {
        /// The order.
        order: OrderId,
        /// How many.
        qty: Qty,
        /// Why.
        reason: ReleaseReason,
    },
    /// An order's booking was shipped.
    Shipped {
        /// The order.
        order: OrderId,
        /// How many.
        qty: Qty,
    },
    /// Shipped units came back from a customer into free stock.
    ReturnAccepted {
        /// The order.
        order: OrderId,
        /// How many.
        qty: Qty,
    },
    /// Free units went back to the supplier.
    ReturnedToSupplier {
        /// How many.
        qty: Qty,
    },
}

/// A stock item event: the change and the counts right after it, so that a projection can
/// take the counts of the newest event it has seen whatever order events arrive in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockItemEvent {
    /// The item.
    pub sku: Sku,
    /// What happened.
    pub change: StockChange,
    /// The counts after it.
    pub levels: StockLevels,
}

/// One stock item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockItem {
    sku: Sku,
    levels: StockLevels,
    dims: Option<Dimensions>,
}

/// A stock item as stored in schema 1, when it also kept each order's booking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockItemV1 {
    /// The item.
    pub sku: Sku,
    /// Its counts.
    pub levels: StockLevels,
    /// Open bookings by order (dropped in schema 2: the bookings keep them).
    pub bookings: BTreeMap<OrderId, Qty>,
    /// Size and weight of one unit.
    pub dims: Option<Dimensions>,
}

impl From<StockItemV1> for StockItem {
    fn from(v1: StockItemV1) -> StockItem {
        StockItem { sku: v1.sku, levels: v1.levels, dims: v1.dims }
    }
}

impl StockItem {
    /// An item nothing was received of yet.
    pub fn new(sku: Sku) -> Self {
        Self { sku, levels: StockLevels::default(), dims: None }
    }

    /// The item's SKU.
    pub fn sku(&self) -> &Sku {
        &self.sku
    }

    /// The counts.
    pub fn levels(&self) -> StockLevels {
        self.levels
    }

    /// Size and weight of one unit, when known.
    pub fn dims(&self) -> Option<Dimensions> {
        self.dims
    }

    /// The status carried in this item's events (hard case 6).
    pub fn status(&self) -> &'static str {
        if self.levels.free.is_zero() {
            "OUT_OF_STOCK"
        } else {
            "IN_STOCK"
        }
    }

    /// Decides a command: the next state and the events that explain it, or a rejection.
    /// `Get` returns the same state and no events.
    pub fn handle(&self, cmd: &StockCommand, _ctx: &Ctx) -> Result<(StockItem, Vec<StockItemEvent>), DomainError> {
        let change = match self.decide(cmd)? {
            Some(change) => change,
            None => return Ok((self.clone(), Vec::new())),
        };
        let mut next = self.clone();
        next.apply(&change)?;
        let event = StockItemEvent { sku: self.sku.clone(), change, levels: next.levels };
        Ok((next, vec![event]))
    }

    fn decide(&self, cmd: &StockCommand) -> Result<Option<StockChange>, DomainError> {
        let sku = &self.sku;
        Ok(Some(match cmd {
            StockCommand::Receive { qty, dims } => {
                Qty::positive(qty.get())?;
                // Reject now what `apply` would reject later, so a receipt never half-lands.
                self.levels.received.checked_add(*qty)?;
                self.levels.free.checked_add(*qty)?;
                StockChange::Received { qty: *qty, dims: *dims }
            }
            StockCommand::Book { order, qty } => {
                Qty::positive(qty.get())?;
                if self.levels.free < *qty {
                    return Err(DomainError::InsufficientStock {
                        sku: sku.clone(),
                        requested: *qty,
                        free: self.levels.free,
                    });
                }
                StockChange::Booked { order: order.clone(), qty: *qty }
            }
            StockCommand::Release { order, qty, reason } => {
                Qty::positive(qty.get())?;
                if self.levels.booked < *qty {
                    return Err(DomainError::NotBooked { sku: sku.clone(), order: order.clone() });
                }
                StockChange::Released { order: order.clone(), qty: *qty, reason: *reason }
            }
            StockCommand::Ship { order, qty } => {
                Qty::positive(qty.get())?;
                if self.levels.booked < *qty {
                    return Err(DomainError::NotBooked { sku: sku.clone(), order: order.clone() });
                }
                StockChange::Shipped { order: order.clone(), qty: *qty }
            }
            StockCommand::AcceptReturn { order, qty } => {
                Qty::positive(qty.get())?;
                if self.levels.shipped < *qty {
                    return Err(DomainError::ReturnExceedsShipped {
                        sku: sku.clone(),
                        requested: *qty,
                        shipped: self.levels.shipped,
                    });
                }
                StockChange::ReturnAccepted { order: order.clone(), qty: *qty }
            }
            StockCommand::ReturnToSupplier { qty } => {
                Qty::positive(qty.get())?;
                if self.levels.free < *qty {
                    return Err(DomainError::ReturnExceedsFree {
                        sku: sku.clone(),
                        requested: *qty,
                        free: self.levels.free,
                    });
                }
                StockChange::ReturnedToSupplier { qty: *qty }
            }
            StockCommand::Get => return Ok(None),
        }))
    }

    /// Applies a change that happened (from `handle`, or replayed from stored events).
    /// Checked arithmetic: a change that does not fit this state is refused, never wrapped.
    pub fn apply(&mut self, change: &StockChange) -> Result<(), DomainError> {
        let mut l = self.levels;
        match change {
            StockChange::Received { qty, dims } => {
                l.received = l.received.checked_add(*qty)?;
                l.free = l.free.checked_add(*qty)?;
                if dims.is_some() {
                    self.dims = *dims;
                }
            }
            StockChange::Booked { qty, .. } => {
                l.free = l.free.checked_sub(*qty)?;
                l.booked = l.booked.checked_add(*qty)?;
            }
            StockChange::Released { qty, .. } => {
                l.booked = l.booked.checked_sub(*qty)?;
                l.free = l.free.checked_add(*qty)?;
            }
            StockChange::Shipped { qty, .. } => {
                l.booked = l.booked.checked_sub(*qty)?;
                l.shipped = l.shipped.checked_add(*qty)?;
            }
            StockChange::ReturnAccepted { qty, .. } => {
                l.shipped = l.shipped.checked_sub(*qty)?;
                l.free = l.free.checked_add(*qty)?;
            }
            StockChange::ReturnedToSupplier { qty } => {
                l.free = l.free.checked_sub(*qty)?;
                l.returned = l.returned.checked_add(*qty)?;
            }
        }
        self.levels = l;
        Ok(())
    }

    /// Checks the invariant; `Err` names what is broken. Used by tests, by `bazaar verify`
    /// and by the online invariant checker.
    pub fn check_invariant(&self) -> Result<(), String> {
        let l = &self.levels;
        let held = u64::from(l.free.get()) + u64::from(l.booked.get()) + u64::from(l.shipped.get());
        let net = i128::from(l.received.get()) - i128::from(l.returned.get());
        if i128::from(held) != net {
            return Err(format!(
                "{}: free {} + booked {} + shipped {} != received {} - returned {}",
                self.sku, l.free, l.booked, l.shipped, l.received, l.returned
            ));
        }
        Ok(())
    }
}
