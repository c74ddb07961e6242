//! The stock service's booking of one order: it books each line with its stock item (each item
//! serialises its own bookings, so nothing is ever overbooked), reports BOOKED when every line
//! is booked or ERROR when one is refused — releasing the others — and releases everything
//! when the order is cancelled, whenever that news arrives. Lines follow the order's shipment.

use serde::{Deserialize, Serialize};

use super::saga::{
    BookedLine, LineOutcome, LineResult, OrderEvent, OrderStatus, ReserveOp, ReserveRequest, ShipmentStatus,
    StockEvent, StockStatus,
};
use super::stock::Dimensions;
use super::{Money, OrderId, Qty, Sku};

/// The seed's `OrderItemStatus` (BOOKED, SHIPPED, RETURNED) plus the steps before and around it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LineStatus {
    /// Asked of the item; no answer yet.
    Requested,
    /// Booked.
    Booked,
    /// The item refused (not enough free stock).
    Refused,
    /// Given back to free stock.
    Released,
    /// Left with the shipment.
    Shipped,
    /// Came back from the customer.
    Returned,
}

/// One line of a booking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookingLine {
    /// The item.
    pub sku: Sku,
    /// How many.
    pub qty: Qty,
    /// Where it stands.
    pub status: LineStatus,
    /// Size and weight of one unit, from the item.
    pub dims: Option<Dimensions>,
}

/// The booking of one order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockBooking {
    /// The order.
    pub order_id: OrderId,
    /// `None` until the order asked for booking.
    pub status: Option<StockStatus>,
    /// The lines.
    pub lines: Vec<BookingLine>,
    /// The order's price (carried in StockEvent as the seed's `fixedPride`).
    pub fixed_price: Option<Money>,
    /// The order version booking started from.
    pub order_version: u64,
    /// The order was cancelled: nothing may stay booked.
    pub cancelled: bool,
}

/// What a booking step asks the runtime to publish.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BookingEffects {
    /// Requests to stock items.
    pub requests: Vec<ReserveRequest>,
    /// The booking's own event (BOOKED, ERROR, ASSEMBLED).
    pub event: Option<StockEvent>,
}

impl StockBooking {
    /// A booking nothing was asked of yet.
    pub fn new(order_id: OrderId) -> Self {
        Self { order_id, status: None, lines: Vec::new(), fixed_price: None, order_version: 0, cancelled: false }
    }

    fn request(&self, sku: &Sku, qty: Qty, op: ReserveOp) -> ReserveRequest {
        ReserveRequest { order_id: self.order_id.clone(), sku: sku.clone(), qty, op }
    }

    fn event(&self, status: StockStatus) -> StockEvent {
        StockEvent {
            order_id: self.order_id.clone(),
            order_version: self.order_version,
            status,
            fixed_price: self.fixed_price.unwrap_or_else(|| Money::zero(super::Currency::EUR)),
            lines: self.lines.iter().map(|l| BookedLine { sku: l.sku.clone(), qty: l.qty, dims: l.dims }).collect(),
        }
    }

    /// Releases every booked line (the order is cancelled or another line failed).
    fn release_booked(&mut self, op: ReserveOp, fx: &mut BookingEffects) {
        for i in 0..self.lines.len() {
            if self.lines[i].status == LineStatus::Booked {
                self.lines[i].status = LineStatus::Released;
                let l = &self.lines[i];
                fx.requests.push(self.request(&l.sku, l.qty, op));
            }
        }
    }

    /// An order event (BOOKING_PENDING starts the booking; CANCELLED releases it). `None`: no
    /// change.
    pub fn on_order_event(&self, e: &OrderEvent, order_version: u64) -> Option<(StockBooking, BookingEffects)> {
        let mut next = self.clone();
        let mut fx = BookingEffects::default();
        match e.status {
            OrderStatus::BookingPending if self.status.is_none() && !self.cancelled => {
                next.status = Some(StockStatus::Pending);
                next.order_version = order_version;
                next.fixed_price = Some(e.fixed_price);
                next.lines = e
                    .items
                    .iter()
                    .map(|l| BookingLine {
                        sku: l.id.clone(),
                        qty: l.quantity,
                        status: LineStatus::Requested,
                        dims: None,
                    })
                    .collect();
                for l in &next.lines {
                    fx.requests.push(next.request(&l.sku, l.qty, ReserveOp::Book));
                }
            }
            OrderStatus::Cancelled if !self.cancelled => {
                next.cancelled = true;
                next.release_booked(ReserveOp::Release, &mut fx);
            }
            _ => return None,
        }
        Some((next, fx))
    }

    /// A stock item answered a booking request. `None`: no change (a repeat).
    pub fn on_line(&self, o: &LineOutcome) -> Option<(StockBooking, BookingEffects)> {
        let i = self.lines.iter().position(|l| l.sku == o.sku && l.status == LineStatus::Requested)?;
        let mut next = self.clone();
        let mut fx = BookingEffects::default();
        match &o.result {
            LineResult::Booked { dims } => {
                next.lines[i].dims = *dims;
                if next.cancelled || next.status == Some(StockStatus::Error) {
                    // Booked after the order gave up on it: give it straight back.
                    next.lines[i].status = LineStatus::Released;
                    let op = if next.cancelled { ReserveOp::Release } else { ReserveOp::ReleaseFailed };
                    fx.requests.push(next.request(&o.sku, next.lines[i].qty, op));
                } else {
                    next.lines[i].status = LineStatus::Booked;
                    if next.lines.iter().all(|l| l.status == LineStatus::Booked) {
                        next.status = Some(StockStatus::Booked);
                        fx.event = Some(next.event(StockStatus::Booked));
                    }
                }
            }
            LineResult::Refused { .. } => {
                next.lines[i].status = LineStatus::Refused;
                if next.status == Some(StockStatus::Pending) {
                    next.status = Some(StockStatus::Error);
                    next.release_booked(ReserveOp::ReleaseFailed, &mut fx);
                    fx.event = Some(next.event(StockStatus::Error));
                }
            }
        }
        Some((next, fx))
    }

    /// The order's shipment moved: ASSEMBLED marks the booking, SHIPPED (or later) ships every
    /// booked line. `None`: no change.
    pub fn on_shipment(&self, status: ShipmentStatus) -> Option<(StockBooking, BookingEffects)> {
        if self.cancelled || !matches!(self.status, Some(StockStatus::Booked | StockStatus::Assembled)) {
            return None;
        }
        let mut next = self.clone();
        let mut fx = BookingEffects::default();
        if status >= ShipmentStatus::Assembled && self.status == Some(StockStatus::Booked) {
            next.status = Some(StockStatus::Assembled);
            fx.event = Some(next.event(StockStatus::Assembled));
        }
        if status >= ShipmentStatus::Shipped {
            for i in 0..next.lines.len() {
                if next.lines[i].status == LineStatus::Booked {
                    next.lines[i].status = LineStatus::Shipped;
                    let l = &next.lines[i];
                    fx.requests.push(next.request(&l.sku, l.qty, ReserveOp::Ship));
                }
            }
        }
        if next == *self {
            return None;
        }
        Some((next, fx))
    }

    /// Units this booking holds (booked, not yet released or shipped), per item.
    pub fn held(&self) -> impl Iterator<Item = (&Sku, Qty)> {
        self.lines.iter().filter(|l| l.status == LineStatus::Booked).map(|l| (&l.sku, l.qty))
    }
}
