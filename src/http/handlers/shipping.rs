//! Shipments: reading one, and moving it forward.

use warp::http::StatusCode;

use super::super::auth::Caller;
use super::super::dto::*;
use super::super::error::{ApiError, ErrorBody};
use super::super::request::json_body;
use super::super::{App, Out, Req};
use super::{order_id, readable_order};
use crate::domain::auth::Role;
use crate::domain::saga::ShipmentStatus;

/// An order's shipment (owner, SHIPPING_OPERATOR, OPERATOR).
#[utoipa::path(get, path = "/shipping/{id}", tag = "shipping", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = ShippingOut), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_shipping(app: &App, req: &Req, c: &Caller) -> Result<Out, ApiError> {
    let id = order_id(req, 1)?;
    readable_order(app, c, &id, &[Role::Operator, Role::ShippingOperator]).await?;
    Out::json(StatusCode::OK, &ShippingOut::from(&app.shop.shipment(&id).await?))
}

/// Moves a shipment (SHIPPING_OPERATOR); a step may skip forward, never back.
#[utoipa::path(post, path = "/shipping/{id}/status", tag = "shipping", security(("bearer" = [])), params(("id" = String, Path)), request_body = ShippingStatusIn,
    responses((status = 200, body = ShippingOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn ship(app: &App, req: &Req, _c: &Caller) -> Result<Out, ApiError> {
    let id = order_id(req, 1)?;
    let b: ShippingStatusIn = json_body(req)?;
    let to = ShipmentStatus::parse(&b.status).filter(|s| *s != ShipmentStatus::Pending).ok_or_else(|| {
        ApiError::Unprocessable(format!("status {:?} is not ASSEMBLED, SHIPPED or DELIVERED", b.status))
    })?;
    Out::json(StatusCode::OK, &ShippingOut::from(&app.shop.ship(&id, to).await?))
}
