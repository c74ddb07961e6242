//! Pricing with a promo code, creating promo codes, and the active ones.

use warp::http::StatusCode;

use super::super::auth::Caller;
use super::super::dto::*;
use super::super::error::{ApiError, ErrorBody};
use super::super::request::{json_body, now};
use super::super::{App, Out, Req};
use super::lines;

/// Prices lines, with a promo code if given.
#[utoipa::path(post, path = "/calcPrice", tag = "promocode", request_body = OrderIn,
    responses((status = 200, body = PriceOut), (status = 400, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn calc_price(app: &App, req: &Req) -> Result<Out, ApiError> {
    let b: OrderIn = json_body(req)?;
    let items = lines(&b.items_list)?;
    let p = app.shop.calc_price(&items, b.promo_code.as_deref()).await?;
    Out::json(StatusCode::OK, &PriceOut::from(&p))
}

/// Creates a promo code (ADMIN).
#[utoipa::path(post, path = "/promocode", tag = "promocode", security(("bearer" = [])), request_body = PromocodeIn,
    responses((status = 201, body = PromocodeOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn post_promocode(app: &App, req: &Req, _c: &Caller) -> Result<Out, ApiError> {
    let b: PromocodeIn = json_body(req)?;
    let rule = b.rule.to_domain().map_err(ApiError::Unprocessable)?;
    let p = app.shop.create_promo(&b.token, &b.description, rule).await?;
    Out::json(StatusCode::CREATED, &PromocodeOut::from(&p))
}

/// The promo codes active now.
#[utoipa::path(get, path = "/promocodes", tag = "promocode", responses((status = 200, body = [PromoListOut])))]
pub async fn list_promocodes(app: &App, _req: &Req) -> Result<Out, ApiError> {
    let list: Vec<PromoListOut> = app
        .view
        .active_promos(now(app))
        .iter()
        .map(|p| PromoListOut {
            token: p.token.clone(),
            description: p.description.clone(),
            rule: RuleDto::of(&p.rule),
        })
        .collect();
    Out::json(StatusCode::OK, &list)
}
