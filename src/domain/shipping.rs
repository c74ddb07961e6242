//! The shipping service's shipment of one paid order: its parcel (weight and size from the
//! stock items) and its steps PENDING → ASSEMBLED → SHIPPED → DELIVERED, driven by a shipping
//! operator. A step may skip forward, never back.

use serde::{Deserialize, Serialize};

use super::saga::{OrderEvent, OrderStatus, ShipmentStatus, ShippingEvent};
use super::{Ctx, CustomerId, DomainError, OrderId, Qty, Sku};

/// A line of the shipment (the seed's shipping `OrderItem{id, name, quantity}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipItem {
    /// The product.
    pub id: Sku,
    /// Its name.
    pub name: String,
    /// How many.
    pub quantity: Qty,
}

/// The shipment of one order (the seed's shipping `Order{id, orderItemList, weight, length,
/// width, height}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shipment {
    /// The order (and shipment) id.
    pub order_id: OrderId,
    /// Its customer.
    pub customer_id: CustomerId,
    /// Its status.
    pub status: ShipmentStatus,
    /// Its lines.
    pub items: Vec<ShipItem>,
    /// Grams.
    pub weight_g: u64,
    /// Millimetres (longest unit).
    pub length_mm: u32,
    /// Millimetres (widest unit).
    pub width_mm: u32,
    /// Millimetres (units stacked).
    pub height_mm: u64,
    /// The order was cancelled before the shipment left.
    pub cancelled: bool,
    /// Created, ms.
    pub created_at_ms: u64,
    /// Last changed, ms.
    pub updated_at_ms: u64,
}

impl Shipment {
    /// The status shown: CANCELLED once the order was cancelled before the shipment left, else
    /// its step.
    pub fn status_name(&self) -> &'static str {
        if self.cancelled {
            "CANCELLED"
        } else {
            self.status.name()
        }
    }

    /// The shipment of a paid order, its parcel computed from the booked units' size and
    /// weight (a unit of unknown size counts as nothing).
    pub fn for_paid_order(e: &OrderEvent, ctx: &Ctx) -> Shipment {
        let mut s = Shipment {
            order_id: e.order_id.clone(),
            customer_id: e.customer_id.clone(),
            status: ShipmentStatus::Pending,
            items: Vec::new(),
            weight_g: 0,
            length_mm: 0,
            width_mm: 0,
            height_mm: 0,
            cancelled: false,
            created_at_ms: ctx.now_ms,
            updated_at_ms: ctx.now_ms,
        };
        for l in &e.items {
            s.items.push(ShipItem { id: l.id.clone(), name: l.name.clone(), quantity: l.quantity });
            if let Some(d) = l.dims {
                let n = u64::from(l.quantity.get());
                s.weight_g = s.weight_g.saturating_add(u64::from(d.weight_g).saturating_mul(n));
                s.length_mm = s.length_mm.max(d.length_mm);
                s.width_mm = s.width_mm.max(d.width_mm);
                s.height_mm = s.height_mm.saturating_add(u64::from(d.height_mm).saturating_mul(n));
            }
        }
        s
    }

    /// The event describing the current state.
    pub fn event(&self) -> ShippingEvent {
        ShippingEvent { order_id: self.order_id.clone(), customer_id: self.customer_id.clone(), status: self.status }
    }

    /// An operator's step. The same step again is a no-op (`None`); a step back, or one on a
    /// cancelled shipment, is refused.
    pub fn step(&self, to: ShipmentStatus, ctx: &Ctx) -> Result<Option<Shipment>, DomainError> {
        if self.cancelled {
            return Err(DomainError::WrongState {
                what: "shipment".into(),
                status: "CANCELLED".into(),
                action: "move".into(),
            });
        }
        if to == self.status {
            return Ok(None);
        }
        if to < self.status {
            return Err(DomainError::ShippingStepBackwards {
                current: self.status.name().into(),
                requested: to.name().into(),
            });
        }
        let mut next = self.clone();
        next.status = to;
        next.updated_at_ms = ctx.now_ms;
        Ok(Some(next))
    }

    /// The order was cancelled (an operator may cancel a paid order): a shipment that has not
    /// left is stopped. `None`: no change.
    pub fn on_order_event(&self, e: &OrderEvent) -> Option<Shipment> {
        if e.status == OrderStatus::Cancelled && !self.cancelled && self.status < ShipmentStatus::Shipped {
            let mut next = self.clone();
            next.cancelled = true;
            return Some(next);
        }
        None
    }
}
