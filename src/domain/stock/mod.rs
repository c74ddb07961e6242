//! The stock item aggregate: how many units of one SKU the warehouse holds, and for whom.
//!
//! Invariant: free + booked + shipped = received − returned (returned = sent back to the
//! supplier), every count ≥ 0 (by type), and booked = the sum of the open bookings.
//! A booking is per order, so booking twice for one order or releasing twice is harmless.
//! Customer returns (`AcceptReturn`) put shipped units back into free stock.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Ctx, DomainError, OrderId, Qty, Sku};
use crate::limits::STOCK_BOOKINGS_MAX;

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
    /// Give an order's held units back to free stock (a no-op when it holds none).
    Release {
        /// The order.
        order: OrderId,
        /// Why.
        reason: ReleaseReason,
    },
    /// The order's held units left with its shipment.
    Ship {
        /// The order.
        order: OrderId,
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
    bookings: BTreeMap<OrderId, Qty>,
    dims: Option<Dimensions>,
}

impl StockItem {
    /// An item nothing was received of yet.
    pub fn new(sku: Sku) -> Self {
        Self { sku, levels: StockLevels::default(), bookings: BTreeMap::new(), dims: None }
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

    /// The units `order` holds, if any.
    pub fn booking(&self, order: &OrderId) -> Option<Qty> {
        self.bookings.get(order).copied()
    }

    /// Open bookings, by order.
    pub fn bookings(&self) -> impl Iterator<Item = (&OrderId, Qty)> {
        self.bookings.iter().map(|(o, q)| (o, *q))
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
    /// A command that changes nothing (a repeated booking, a release of nothing, `Get`)
    /// returns the same state and no events.
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
                if let Some(booked) = self.bookings.get(order) {
                    if booked == qty {
                        return Ok(None);
                    }
                    return Err(DomainError::BookingConflict {
                        sku: sku.clone(),
                        order: order.clone(),
                        booked: *booked,
                    });
                }
                if self.bookings.len() >= STOCK_BOOKINGS_MAX {
                    return Err(DomainError::TooManyBookings { sku: sku.clone() });
                }
                if self.levels.free < *qty {
                    return Err(DomainError::InsufficientStock {
                        sku: sku.clone(),
                        requested: *qty,
                        free: self.levels.free,
                    });
                }
                StockChange::Booked { order: order.clone(), qty: *qty }
            }
            StockCommand::Release { order, reason } => match self.bookings.get(order) {
                Some(qty) => StockChange::Released { order: order.clone(), qty: *qty, reason: *reason },
                None => return Ok(None),
            },
            StockCommand::Ship { order } => match self.bookings.get(order) {
                Some(qty) => StockChange::Shipped { order: order.clone(), qty: *qty },
                None => return Err(DomainError::NotBooked { sku: sku.clone(), order: order.clone() }),
            },
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
            StockChange::Booked { order, qty } => {
                l.free = l.free.checked_sub(*qty)?;
                l.booked = l.booked.checked_add(*qty)?;
                self.bookings.insert(order.clone(), *qty);
            }
            StockChange::Released { order, qty, .. } => {
                self.take_booking(order, *qty)?;
                l.booked = l.booked.checked_sub(*qty)?;
                l.free = l.free.checked_add(*qty)?;
            }
            StockChange::Shipped { order, qty } => {
                self.take_booking(order, *qty)?;
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

    fn take_booking(&mut self, order: &OrderId, qty: Qty) -> Result<(), DomainError> {
        match self.bookings.get(order) {
            Some(held) if *held == qty => {
                self.bookings.remove(order);
                Ok(())
            }
            _ => Err(DomainError::NotBooked { sku: self.sku.clone(), order: order.clone() }),
        }
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
        let booked: u64 = self.bookings.values().map(|q| u64::from(q.get())).sum();
        if booked != u64::from(l.booked.get()) {
            return Err(format!("{}: bookings sum to {booked} but booked is {}", self.sku, l.booked));
        }
        if self.bookings.values().any(|q| q.is_zero()) {
            return Err(format!("{}: an empty booking is stored", self.sku));
        }
        Ok(())
    }
}
