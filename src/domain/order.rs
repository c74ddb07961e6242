//! The commerce order aggregate (the seed's `CommerceOrder{id, itemsList, fixedPrice, status,
//! version}`) and its part of the choreographed saga.
//!
//! Commutativity (hard cases 1, 6): the order applies an event only when it moves the order
//! forward. Each source (stock booking, payment account, shipment) carries its own aggregate
//! version; an event no newer than the last applied from that source is stale. A late
//! StockEvent(BOOKED) after PayEvent(PENDING) is discarded: a payment is opened only for an
//! order whose stock was booked, so PAY_PENDING implies BOOKED.
//!
//! Every event that touches the order, applied or discarded, goes into its timeline.

use serde::{Deserialize, Serialize};

use super::saga::{
    CancelReason, OrderEvent, OrderLine, OrderStatus, PayEvent, PaymentStatus, ShipmentStatus, ShippingEvent,
    StockEvent, StockStatus,
};
use super::{Ctx, CustomerId, DomainError, MessageId, Money, OrderId};
use crate::limits::TIMELINE_LEN_MAX;

/// One event that touched an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// When it took effect here, ms.
    pub at_ms: u64,
    /// The service it came from.
    pub service: String,
    /// What it was (e.g. `StockEvent(BOOKED)`, `OrderEvent(PAID)`, `discarded PayEvent(PENDING)`).
    pub event: String,
    /// The status it carried (for the order's own events: the order's status).
    pub status: String,
    /// The version of the aggregate that sent it.
    pub version: u64,
    /// The node it came from.
    pub node: String,
    /// Its message id.
    pub message_id: MessageId,
}

impl TimelineEntry {
    /// What the entry says, in words a shopper or an operator reads (the stored `event` is a
    /// code such as `PayEvent(PARTIAL)`; an event that arrived late and was ignored says so).
    pub fn describe(&self) -> String {
        let (late, code) = match self.event.strip_prefix("discarded ") {
            Some(rest) => (true, rest),
            None => (false, self.event.as_str()),
        };
        let (kind, status) =
            code.strip_suffix(')').and_then(|c| c.split_once('(')).unwrap_or((code, self.status.as_str()));
        let text = match (kind, status) {
            ("OrderEvent", "NEW" | "BOOKING_PENDING") => "Order placed; its books are being reserved",
            ("OrderEvent", "BOOKED") => "Books reserved; waiting for payment",
            ("OrderEvent", "PAY_PENDING") => "Payment started",
            ("OrderEvent", "PAID_PARTIAL") => "Paid in part; the rest is still due",
            ("OrderEvent", "PAID") => "Paid in full; the parcel will be prepared",
            ("OrderEvent", "SHIPPING_PENDING") => "On its way",
            ("OrderEvent", "COMPLETED") => "Delivered; the order is complete",
            ("OrderEvent", "CANCELLED") => "Order cancelled",
            ("StockEvent", "BOOKED" | "ASSEMBLED") => "Stock: every book is reserved",
            ("StockEvent", "ERROR") => "Stock: a book is out of stock",
            ("StockEvent", "PENDING") => "Stock: reserving the books",
            ("PayEvent", "NEW" | "PENDING") => "Payment: a payment was opened",
            ("PayEvent", "PARTIAL") => "Payment: part of the amount was received",
            ("PayEvent", "PAID") => "Payment: the amount was received",
            ("PayEvent", "FAILED") => "Payment: the payment failed",
            ("PayEvent", "REFUNDED") => "Payment: money was given back",
            ("ShippingEvent", "PENDING") => "Shipping: the shipment was created",
            ("ShippingEvent", "ASSEMBLED") => "Shipping: the parcel is packed",
            ("ShippingEvent", "SHIPPED") => "Shipping: handed to the carrier",
            ("ShippingEvent", "DELIVERED") => "Shipping: delivered",
            _ => return format!("{}{}", code, if late { " (arrived late; ignored)" } else { "" }),
        };
        if late {
            format!("{text} (arrived late; ignored)")
        } else {
            text.to_owned()
        }
    }
}

/// Where an incoming event came from (read off its envelope).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The sending aggregate's version.
    pub version: u64,
    /// Its node.
    pub node: String,
    /// The message id.
    pub message_id: MessageId,
}

/// The saga deadlines of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deadlines {
    /// How long it may stay BOOKING_PENDING, ms.
    pub booking_ms: u64,
    /// How long it may stay booked but unpaid, ms.
    pub payment_ms: u64,
}

/// A commerce order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommerceOrder {
    /// Its id (carries the customer's partition).
    pub id: OrderId,
    /// Its customer.
    pub customer_id: CustomerId,
    /// Its lines, priced at creation.
    pub items: Vec<OrderLine>,
    /// Σ price × quantity.
    pub total: Money,
    /// The promo discount.
    pub discount: Money,
    /// What the customer pays: total − discount.
    pub fixed_price: Money,
    /// The promo code used.
    pub promo_code: Option<String>,
    /// Its status.
    pub status: OrderStatus,
    /// Why it was cancelled.
    pub cancel_reason: Option<CancelReason>,
    /// Its version (the engine's: one per change).
    pub version: u64,
    /// Created, ms.
    pub created_at_ms: u64,
    /// Last changed, ms.
    pub updated_at_ms: u64,
    /// The deadline the saga must meet next (booking, then payment), ms.
    pub deadline_ms: Option<u64>,
    /// The deadlines it was created with.
    pub deadlines: Deadlines,
    /// Captured by the payment service, net of refunds.
    pub paid_amount: Money,
    /// Last applied version of the stock booking.
    pub stock_version: u64,
    /// Last applied version of the payment account.
    pub payment_version: u64,
    /// Last applied version of the shipment.
    pub shipping_version: u64,
    /// The shipment's status, once known.
    pub shipping_status: Option<ShipmentStatus>,
    /// Events that touched it, oldest first (at most `TIMELINE_LEN_MAX`).
    pub timeline: Vec<TimelineEntry>,
    /// Timeline entries left out past the bound.
    pub timeline_dropped: u32,
}

/// What a transition did to the deadline timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeadlineChange {
    /// The deadline to forget.
    pub clear: Option<u64>,
    /// The deadline to set.
    pub set: Option<u64>,
}

/// The result of a transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The order after it.
    pub next: CommerceOrder,
    /// The order event to publish, when the status changed.
    pub event: Option<OrderEvent>,
    /// The deadline change.
    pub deadline: DeadlineChange,
}

/// Who cancels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Canceller {
    /// The customer (only before the order is paid).
    Customer(CustomerId),
    /// An operator (until the shipment leaves).
    Operator,
}

impl CommerceOrder {
    /// A new order, already waiting for its booking (version 1, booking deadline set).
    #[allow(clippy::too_many_arguments)]
    pub fn create(
        id: OrderId,
        customer_id: CustomerId,
        items: Vec<OrderLine>,
        total: Money,
        discount: Money,
        fixed_price: Money,
        promo_code: Option<String>,
        deadlines: Deadlines,
        ctx: &Ctx,
        cause: MessageId,
    ) -> (CommerceOrder, OrderEvent) {
        let mut o = CommerceOrder {
            id,
            customer_id,
            items,
            total,
            discount,
            fixed_price,
            promo_code,
            status: OrderStatus::BookingPending,
            cancel_reason: None,
            version: 1,
            created_at_ms: ctx.now_ms,
            updated_at_ms: ctx.now_ms,
            deadline_ms: Some(ctx.now_ms.saturating_add(deadlines.booking_ms)),
            deadlines,
            paid_amount: Money::zero(total.currency()),
            stock_version: 0,
            payment_version: 0,
            shipping_version: 0,
            shipping_status: None,
            timeline: Vec::new(),
            timeline_dropped: 0,
        };
        o.note(ctx, "order", "OrderEvent(BOOKING_PENDING)", "BOOKING_PENDING", 1, &ctx.node.to_string(), cause);
        let event = o.event();
        (o, event)
    }

    /// The order event describing the current state.
    pub fn event(&self) -> OrderEvent {
        OrderEvent {
            order_id: self.id.clone(),
            customer_id: self.customer_id.clone(),
            status: self.status,
            items: self.items.clone(),
            fixed_price: self.fixed_price,
            cancel_reason: self.cancel_reason,
            discount: self.discount,
            promo_code: self.promo_code.clone(),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn note(&mut self, ctx: &Ctx, service: &str, event: &str, status: &str, version: u64, node: &str, id: MessageId) {
        if self.timeline.len() >= TIMELINE_LEN_MAX {
            self.timeline_dropped = self.timeline_dropped.saturating_add(1);
            return;
        }
        self.timeline.push(TimelineEntry {
            at_ms: ctx.now_ms,
            service: service.to_owned(),
            event: event.to_owned(),
            status: status.to_owned(),
            version,
            node: node.to_owned(),
            message_id: id,
        });
    }

    /// The next version of this order with `status` (and, on cancel, its reason), the deadline
    /// adjusted, and its own event noted in the timeline.
    fn moved(&self, status: OrderStatus, reason: Option<CancelReason>, ctx: &Ctx, cause: MessageId) -> Transition {
        let mut next = self.clone();
        next.version += 1;
        next.status = status;
        next.updated_at_ms = ctx.now_ms;
        if reason.is_some() {
            next.cancel_reason = reason;
        }
        let mut deadline = DeadlineChange::default();
        let wanted = match status {
            OrderStatus::BookingPending => self.deadline_ms,
            OrderStatus::Booked | OrderStatus::PayPending | OrderStatus::PaidPartial => match self.status {
                // Booked (or known booked) now: the payment deadline replaces the booking one.
                OrderStatus::BookingPending => Some(ctx.now_ms.saturating_add(self.deadlines.payment_ms)),
                _ => self.deadline_ms,
            },
            _ => None,
        };
        if wanted != self.deadline_ms {
            deadline.clear = self.deadline_ms;
            deadline.set = wanted;
            next.deadline_ms = wanted;
        }
        let label = format!("OrderEvent({})", status.name());
        let node = ctx.node.to_string();
        next.note(ctx, "order", &label, status.name(), next.version, &node, cause);
        let event = next.event();
        Transition { next, event: Some(event), deadline }
    }

    /// A change that only records an event in the timeline: `discarded` when it was stale or
    /// out of turn, else applied without moving the status (e.g. a refund).
    fn noted(
        &self,
        ctx: &Ctx,
        service: &str,
        event: String,
        status: &str,
        src: &Source,
        discarded: bool,
    ) -> Transition {
        let mut next = self.clone();
        next.version += 1;
        let label = if discarded { format!("discarded {event}") } else { event };
        next.note(ctx, service, &label, status, src.version, &src.node, src.message_id);
        Transition { next, event: None, deadline: DeadlineChange::default() }
    }

    /// Applies the stock booking's event.
    pub fn on_stock(&self, e: &StockEvent, src: &Source, ctx: &Ctx) -> Transition {
        let label = format!("StockEvent({})", e.status.name());
        if src.version <= self.stock_version {
            return self.noted(ctx, "stock", label, e.status.name(), src, true);
        }
        let step = match (e.status, self.status) {
            (StockStatus::Booked, OrderStatus::BookingPending) => Some((OrderStatus::Booked, None)),
            (StockStatus::Error, OrderStatus::BookingPending) => {
                Some((OrderStatus::Cancelled, Some(CancelReason::OutOfStock)))
            }
            _ => None,
        };
        let mut base = self.clone();
        base.stock_version = src.version;
        if e.status == StockStatus::Booked {
            for line in &mut base.items {
                if let Some(b) = e.lines.iter().find(|b| b.sku == line.id) {
                    line.dims = b.dims;
                }
            }
        }
        match step {
            None => base.noted(ctx, "stock", label, e.status.name(), src, true),
            Some((status, reason)) => {
                base.note(ctx, "stock", &label, e.status.name(), src.version, &src.node, src.message_id);
                base.moved(status, reason, ctx, src.message_id)
            }
        }
    }

    /// Applies the payment account's event.
    pub fn on_payment(&self, e: &PayEvent, src: &Source, ctx: &Ctx) -> Transition {
        let label = format!("PayEvent({})", e.status.name());
        if src.version <= self.payment_version {
            return self.noted(ctx, "payment", label, e.status.name(), src, true);
        }
        let mut base = self.clone();
        base.payment_version = src.version;
        base.paid_amount = e.captured;
        let s = self.status;
        let step = match e.status {
            PaymentStatus::Pending
                if matches!(s, OrderStatus::BookingPending | OrderStatus::Booked | OrderStatus::PaidPartial) =>
            {
                Some((OrderStatus::PayPending, None))
            }
            PaymentStatus::Partial if s.is_unpaid() && s != OrderStatus::PaidPartial => {
                Some((OrderStatus::PaidPartial, None))
            }
            PaymentStatus::Paid if s.is_unpaid() => Some((OrderStatus::Paid, None)),
            PaymentStatus::Failed if s.is_unpaid() => Some((OrderStatus::Cancelled, Some(CancelReason::PaymentFailed))),
            _ => None,
        };
        match step {
            // Not a status change, but newer news (a refund, another part): kept, not discarded.
            None => base.noted(ctx, "payment", label, e.status.name(), src, false),
            Some((status, reason)) => {
                base.note(ctx, "payment", &label, e.status.name(), src.version, &src.node, src.message_id);
                base.moved(status, reason, ctx, src.message_id)
            }
        }
    }

    /// Applies the shipment's event.
    pub fn on_shipping(&self, e: &ShippingEvent, src: &Source, ctx: &Ctx) -> Transition {
        let label = format!("ShippingEvent({})", e.status.name());
        if src.version <= self.shipping_version {
            return self.noted(ctx, "shipping", label, e.status.name(), src, true);
        }
        let mut base = self.clone();
        base.shipping_version = src.version;
        base.shipping_status = Some(e.status);
        let step = match (e.status, self.status) {
            (ShipmentStatus::Assembled | ShipmentStatus::Shipped, OrderStatus::Paid) => {
                Some(OrderStatus::ShippingPending)
            }
            (ShipmentStatus::Delivered, OrderStatus::Paid | OrderStatus::ShippingPending) => {
                Some(OrderStatus::Completed)
            }
            _ => None,
        };
        match step {
            None => base.noted(ctx, "shipping", label, e.status.name(), src, false),
            Some(status) => {
                base.note(ctx, "shipping", &label, e.status.name(), src.version, &src.node, src.message_id);
                base.moved(status, None, ctx, src.message_id)
            }
        }
    }

    /// Cancels the order on request.
    pub fn cancel(&self, by: &Canceller, ctx: &Ctx, cause: MessageId) -> Result<Transition, DomainError> {
        let (allowed, reason) = match by {
            Canceller::Customer(c) => {
                if *c != self.customer_id {
                    return Err(DomainError::NotOwner);
                }
                (self.status.is_unpaid(), CancelReason::ByCustomer)
            }
            Canceller::Operator => {
                (self.status.is_unpaid() || self.status == OrderStatus::Paid, CancelReason::ByOperator)
            }
        };
        if !allowed {
            return Err(DomainError::WrongState {
                what: "order".into(),
                status: self.status.name().into(),
                action: "cancel".into(),
            });
        }
        Ok(self.moved(OrderStatus::Cancelled, Some(reason), ctx, cause))
    }

    /// A saga deadline fired: cancels (TIMEOUT) if it is still the order's deadline and the
    /// order is still unpaid; otherwise nothing (`None`).
    pub fn on_deadline(&self, due_ms: u64, ctx: &Ctx, cause: MessageId) -> Option<Transition> {
        if self.deadline_ms == Some(due_ms) && self.status.is_unpaid() && ctx.now_ms >= due_ms {
            Some(self.moved(OrderStatus::Cancelled, Some(CancelReason::Timeout), ctx, cause))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests;
