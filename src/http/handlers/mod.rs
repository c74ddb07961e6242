//! The handlers, one module per resource of API.md. A handler is called by the route table
//! (`super::routes`) once the caller passed the route's access rule (a valid token of an allowed
//! role for a bearer route, which the handler receives as `&Caller`); it checks ownership
//! first, parses and validates input second, and only then asks the store, so a refused request
//! changes nothing stored.

pub mod auth;
pub mod catalogue;
pub mod customer;
pub mod ops;
pub mod order;
pub mod payment;
pub mod promo;
pub mod shipping;
pub mod stock;

use super::auth::Caller;
use super::dto::LineIn;
use super::error::ApiError;
use super::request::{param, shown};
use super::{App, Req};
use crate::domain::auth::Role;
use crate::domain::{OrderId, Qty, Sku};

pub(crate) fn order_id(req: &Req, i: usize) -> Result<OrderId, ApiError> {
    let raw = param(req, i);
    OrderId::parse(&raw).map_err(|_| ApiError::NotFound(format!("order {} not found", shown(&raw))))
}

/// Reads an order the caller may see: its owner, or staff in `staff`.
pub(crate) async fn readable_order(
    app: &App,
    c: &Caller,
    id: &OrderId,
    staff: &[Role],
) -> Result<crate::domain::order::CommerceOrder, ApiError> {
    if c.role == Role::Customer || !(c.role == Role::Admin || staff.contains(&c.role)) {
        // A customer, or staff without the right: only their own order.
        let o = app.shop.order(id).await?;
        if o.customer_id != c.customer {
            return Err(ApiError::Forbidden("not your order".into()));
        }
        return Ok(o);
    }
    Ok(app.shop.order(id).await?)
}

pub(crate) fn lines(items: &[LineIn]) -> Result<Vec<(Sku, Qty)>, ApiError> {
    if items.is_empty() {
        return Err(ApiError::Unprocessable("itemsList must not be empty".into()));
    }
    items
        .iter()
        .map(|l| {
            let sku = Sku::parse(&l.id)
                .map_err(|_| ApiError::Unprocessable(format!("unknown product {:?}", shown(&l.id))))?;
            let q =
                Qty::positive(l.quantity).map_err(|_| ApiError::Unprocessable("quantity must be at least 1".into()))?;
            Ok((sku, q))
        })
        .collect()
}
