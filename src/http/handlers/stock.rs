//! Free and booked units of an item, and receiving stock.

use warp::http::StatusCode;

use super::super::auth::Caller;
use super::super::dto::*;
use super::super::error::{ApiError, ErrorBody};
use super::super::request::{json_body, now, param};
use super::super::{App, Out, Req};
use crate::domain::stock::Dimensions;
use crate::domain::{Qty, Sku};

/// Free and booked units of an item.
#[utoipa::path(get, path = "/stock/freeItems/{id}", tag = "stock", params(("id" = String, Path, description = "item id")),
    responses((status = 200, body = FreeItemsOut), (status = 404, body = ErrorBody)))]
pub async fn free_items(app: &App, req: &Req) -> Result<Out, ApiError> {
    let raw = param(req, 2);
    let not_found = || ApiError::NotFound(format!("item {raw} not found"));
    let id = Sku::parse(&raw).map_err(|_| not_found())?;
    let v = app.shop.stock_item(&id).await?;
    if v.levels.received.is_zero() && app.view.product(&id, now(app)).is_none() {
        return Err(not_found());
    }
    Out::json(
        StatusCode::OK,
        &FreeItemsOut {
            id: id.to_string(),
            free_quantity: v.levels.free.get(),
            booked_quantity: v.levels.booked.get(),
        },
    )
}

/// Receives stock (STOCK_OPERATOR).
#[utoipa::path(post, path = "/stock/items", tag = "stock", security(("bearer" = [])), request_body = StockIn,
    responses((status = 200, body = ItemOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn receive_stock(app: &App, req: &Req, _c: &Caller) -> Result<Out, ApiError> {
    let b: StockIn = json_body(req)?;
    let id = Sku::parse(&b.id).map_err(|_| ApiError::Unprocessable(format!("unknown product {:?}", b.id)))?;
    app.shop.product(&id).await.map_err(|_| ApiError::Unprocessable(format!("unknown product {id}")))?;
    let qty = Qty::positive(b.quantity).map_err(|_| ApiError::Unprocessable("quantity must be at least 1".into()))?;
    let dims = Dimensions { weight_g: b.weight, length_mm: b.length, width_mm: b.width, height_mm: b.height };
    let v = app.shop.receive_stock(&id, qty, Some(dims)).await?;
    let d = v.dims.unwrap_or(dims);
    Out::json(
        StatusCode::OK,
        &ItemOut {
            id: id.to_string(),
            quantity: v.levels.received.get(),
            free_quantity: v.levels.free.get(),
            weight: d.weight_g,
            length: d.length_mm,
            width: d.width_mm,
            height: d.height_mm,
        },
    )
}
