//! The customer gate of the order service: one per customer, it serialises order creation so a
//! customer never has two unpaid orders (hard case 2) — no lock service: its mailbox is the lock.
//! It learns from order events when its unpaid order is paid or cancelled.

use serde::{Deserialize, Serialize};

use super::order::{CommerceOrder, Deadlines};
use super::pricing::Priced;
use super::saga::{OrderEvent, OrderLine, OrderStatus};
use super::{Ctx, CustomerId, DomainError, MessageId, OrderId};
use crate::limits::GATE_RECENT_ORDERS_MAX;

/// One customer's place in the order service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerOrders {
    /// The customer.
    pub customer_id: CustomerId,
    /// The order not yet paid or cancelled, if any.
    pub unpaid: Option<OrderId>,
    /// Order numbers used, ever: orders placed, and numbers fenced because a promo code's hold
    /// for them was given back (no order may be placed under those afterwards).
    pub placed: u64,
    /// The most recent orders, newest last (at most `GATE_RECENT_ORDERS_MAX`).
    pub recent: Vec<OrderId>,
}

impl CustomerOrders {
    /// A customer who never ordered.
    pub fn new(customer_id: CustomerId) -> Self {
        Self { customer_id, unpaid: None, placed: 0, recent: Vec::new() }
    }

    /// The number and id the next order will get.
    pub fn next_order(&self, partition: u32) -> (u64, OrderId) {
        let n = self.placed + 1;
        (n, OrderId::for_customer(partition, &self.customer_id, n))
    }

    /// Places an order priced by the order service: refused while another is unpaid; an order
    /// with a promo code only under the code's hold for exactly the next order number (`hold`),
    /// so a use is always taken before its order exists. Else the gate's next state and the new
    /// order (BOOKING_PENDING, version 1) with its first event.
    pub fn place(
        &self,
        priced: &Priced,
        partition: u32,
        deadlines: Deadlines,
        hold: Option<u64>,
        ctx: &Ctx,
        cause: MessageId,
    ) -> Result<(CustomerOrders, CommerceOrder, OrderEvent), DomainError> {
        if let Some(order) = &self.unpaid {
            return Err(DomainError::UnpaidOrderExists { order: order.clone() });
        }
        let (n, id) = self.next_order(partition);
        if priced.promo_code.is_some() && hold != Some(n) {
            // The hold was taken for another number (another placement came first, or the hold
            // was given back and its number fenced): take a new one.
            return Err(DomainError::Raced { what: "order placement".into() });
        }
        let items = priced
            .lines
            .iter()
            .map(|l| OrderLine {
                id: l.product.clone(),
                name: l.name.clone(),
                quantity: l.qty,
                price: l.unit_price,
                dims: None,
            })
            .collect();
        let (order, event) = CommerceOrder::create(
            id.clone(),
            self.customer_id.clone(),
            items,
            priced.total,
            priced.discount,
            priced.fixed_price,
            priced.promo_code.clone(),
            deadlines,
            ctx,
            cause,
        );
        let mut next = self.clone();
        next.unpaid = Some(id.clone());
        next.placed = n;
        next.recent.push(id);
        if next.recent.len() > GATE_RECENT_ORDERS_MAX {
            next.recent.remove(0);
        }
        Ok((next, order, event))
    }

    /// A promo code's hold asks whether order number `number` exists: if the gate has not
    /// used that number yet, it never will (the number is fenced); either way the code is
    /// answered. `Some`: the fenced gate.
    pub fn on_hold_check(&self, number: u64) -> Option<CustomerOrders> {
        (number > self.placed).then(|| CustomerOrders { placed: number, ..self.clone() })
    }

    /// An order event: frees the gate when its unpaid order is paid or cancelled. `None`: no
    /// change.
    pub fn on_order_event(&self, e: &OrderEvent) -> Option<CustomerOrders> {
        let settled = e.status.is_paid() || e.status == OrderStatus::Cancelled;
        if settled && self.unpaid.as_ref() == Some(&e.order_id) {
            let mut next = self.clone();
            next.unpaid = None;
            Some(next)
        } else {
            None
        }
    }
}
