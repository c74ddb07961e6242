//! The JSON shapes of orders, their lines, summaries and timelines.

use crate::app::shop::TimelineStep;
use crate::domain::order::CommerceOrder;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::*;

/// One requested line.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LineIn {
    /// The product.
    pub id: String,
    /// How many (≥ 1).
    #[schema(minimum = 1)]
    pub quantity: u32,
}

/// `POST /order/add` and `POST /calcPrice` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrderIn {
    /// The lines (at least one).
    #[schema(min_items = 1)]
    pub items_list: Vec<LineIn>,
    /// A promo code.
    pub promo_code: Option<String>,
}

/// A line of an order.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LineOut {
    /// The product.
    pub id: String,
    /// How many.
    pub quantity: u32,
    /// Unit price fixed at creation, minor units.
    pub price: i64,
}

/// An order.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderOut {
    /// Its id.
    pub id: String,
    /// Its customer.
    pub customer_id: String,
    /// Its lines.
    pub items_list: Vec<LineOut>,
    /// What the customer pays, minor units.
    pub fixed_price: i64,
    /// The promo discount, minor units.
    pub discount: i64,
    /// The promo code used.
    pub promo_code: Option<String>,
    /// Its status.
    pub status: String,
    /// Why it was cancelled.
    pub cancel_reason: Option<String>,
    /// Its version.
    pub version: u64,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

impl From<&CommerceOrder> for OrderOut {
    fn from(o: &CommerceOrder) -> Self {
        Self {
            id: o.id.to_string(),
            customer_id: o.customer_id.to_string(),
            items_list: o
                .items
                .iter()
                .map(|l| LineOut { id: l.id.to_string(), quantity: l.quantity.get(), price: l.price.minor() })
                .collect(),
            fixed_price: o.fixed_price.minor(),
            discount: o.discount.minor(),
            promo_code: o.promo_code.clone(),
            status: o.status.name().into(),
            cancel_reason: o.cancel_reason.map(|r| r.name().into()),
            version: o.version,
            created_at: rfc3339(o.created_at_ms),
            updated_at: rfc3339(o.updated_at_ms),
        }
    }
}

/// An order with its payments and shipping, for the personal account (`GET /orders`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OrderSummaryOut {
    /// The order.
    #[serde(flatten)]
    pub order: OrderOut,
    /// Its payments.
    pub payments: Vec<PaymentOut>,
    /// Its shipment, once paid.
    pub shipping: Option<ShippingOut>,
}

impl OrderSummaryOut {
    /// The shape of one order of the personal account.
    pub fn of(s: &crate::app::shop::OrderSummary) -> Self {
        let id = s.order.id.as_str();
        OrderSummaryOut {
            order: OrderOut::from(&s.order),
            payments: s.payments.payments.iter().map(|p| PaymentOut::of(id, p)).collect(),
            shipping: s.shipment.as_ref().map(ShippingOut::from),
        }
    }
}

/// One event that touched an order.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TimelineOut {
    /// RFC 3339.
    pub at: String,
    /// The service it came from.
    pub service: String,
    /// What happened, in words.
    pub event: String,
    /// The status it carried.
    pub status: String,
    /// The sender's version.
    pub version: u64,
    /// The sender's node.
    pub node: String,
    /// The message id.
    pub message_id: String,
}

impl From<&TimelineStep> for TimelineOut {
    fn from(t: &TimelineStep) -> Self {
        Self {
            at: rfc3339(t.at_ms),
            service: t.service.clone(),
            event: t.event.clone(),
            status: t.status.clone(),
            version: t.version,
            node: t.node.clone(),
            message_id: t.message_id.clone(),
        }
    }
}
