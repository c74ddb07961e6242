//! The catalogue: one product, search with filters, adding a book.

use serde::Deserialize;
use warp::http::StatusCode;

use super::super::auth::Caller;
use super::super::dto::*;
use super::super::error::{ApiError, ErrorBody};
use super::super::request::{json_body, now, param, query, shown, unprocessable};
use super::super::{App, Out, Req};
use crate::domain::{Currency, Money, Sku};

/// One product.
#[utoipa::path(get, path = "/product/{id}", tag = "catalogue", params(("id" = String, Path, description = "product id")),
    responses((status = 200, body = ProductOut), (status = 404, body = ErrorBody)))]
pub async fn get_product(app: &App, req: &Req) -> Result<Out, ApiError> {
    let raw = param(req, 1);
    let not_found = || ApiError::NotFound(format!("product {} not found", shown(&raw)));
    let id = Sku::parse(&raw).map_err(|_| not_found())?;
    let v = app.view.product(&id, now(app)).ok_or_else(not_found)?;
    Out::json(StatusCode::OK, &ProductOut::from(&v))
}

/// `GET /products` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ProductsQuery {
    /// Full-text search over name and description.
    pub q: Option<String>,
    /// Only products with an active promotion.
    pub promo: Option<bool>,
    /// Only products in stock.
    pub in_stock: Option<bool>,
    /// Page number, from 0 (at most 10000).
    #[param(minimum = 0, maximum = 10000)]
    pub page: Option<usize>,
    /// Page size, 1..100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub size: Option<usize>,
}

/// Searches the catalogue.
#[utoipa::path(get, path = "/products", tag = "catalogue", params(ProductsQuery),
    responses((status = 200, body = ProductPage), (status = 400, body = ErrorBody)))]
pub async fn list_products(app: &App, req: &Req) -> Result<Out, ApiError> {
    let q: ProductsQuery = query(req)?;
    let size = q.size.unwrap_or(20);
    let page = q.page.unwrap_or(0);
    if !(1..=100).contains(&size) || page > 10_000 {
        return Err(ApiError::BadRequest("size must be 1..100 and page 0..10000".into()));
    }
    if q.q.as_ref().is_some_and(|s| s.len() > 500) {
        return Err(ApiError::BadRequest("q is at most 500 characters".into()));
    }
    let (items, total) =
        app.view.search(q.q.as_deref(), q.promo.unwrap_or(false), q.in_stock.unwrap_or(false), page, size, now(app));
    Out::json(StatusCode::OK, &ProductPage { items: items.iter().map(ProductOut::from).collect(), total, page, size })
}

/// Adds a book (ADMIN).
#[utoipa::path(post, path = "/product/add", tag = "catalogue", security(("bearer" = [])), request_body = ProductIn,
    responses((status = 201, body = ProductOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn add_product(app: &App, req: &Req, _c: &Caller) -> Result<Out, ApiError> {
    let b: ProductIn = json_body(req)?;
    let id = match &b.id {
        Some(id) => Sku::parse(id).map_err(unprocessable)?,
        None => {
            Sku::parse(&format!("book-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])).map_err(unprocessable)?
        }
    };
    let p = app.shop.add_product(&id, &b.name, &b.description, Money::new(b.price, Currency::EUR), b.photo).await?;
    let v = crate::actors::catalogue::view::ProductView { product: p, free: 0, promotions: Vec::new() };
    Out::json(StatusCode::CREATED, &ProductOut::from(&v))
}
