//! Paying: the payment page to go to, an order's payments, and the payment system's signed callback.

use serde::Deserialize;
use warp::http::StatusCode;

use super::super::auth::Caller;
use super::super::dto::*;
use super::super::error::{ApiError, ErrorBody};
use super::super::request::{query, shown};
use super::super::{App, Out, Req};
use super::{order_id, readable_order};
use crate::domain::auth::Role;
use crate::domain::OrderId;

/// `GET /pay/redirectUrl` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RedirectQuery {
    /// The order to pay.
    pub order_id: String,
}

/// The payment to make for an order (owner): the one in progress, or a new one for what is due.
#[utoipa::path(get, path = "/pay/redirectUrl", tag = "payment", security(("bearer" = [])), params(RedirectQuery),
    responses((status = 200, body = RedirectOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn redirect_url(app: &App, req: &Req, c: &Caller) -> Result<Out, ApiError> {
    let q: RedirectQuery = query(req)?;
    let id = OrderId::parse(&q.order_id)
        .map_err(|_| ApiError::NotFound(format!("order {} not found", shown(&q.order_id))))?;
    let o = app.shop.order(&id).await?;
    if o.customer_id != c.customer {
        return Err(ApiError::Forbidden("not your order".into()));
    }
    let p = app.shop.redirect(&id, std::time::Duration::from_millis(crate::limits::PAY_REDIRECT_WAIT_MS)).await?;
    Out::json(
        StatusCode::OK,
        &RedirectOut { payment_id: p.id.to_string(), redirect_url: p.redirect_url.clone(), amount: p.amount.minor() },
    )
}

/// The payments of an order (owner, OPERATOR).
#[utoipa::path(get, path = "/payments/{orderId}", tag = "payment", security(("bearer" = [])), params(("orderId" = String, Path)),
    responses((status = 200, body = [PaymentOut]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn payments(app: &App, req: &Req, c: &Caller) -> Result<Out, ApiError> {
    let id = order_id(req, 1)?;
    readable_order(app, c, &id, &[Role::Operator]).await?;
    let a = app.shop.payments(&id).await?;
    Out::json(StatusCode::OK, &a.payments.iter().map(|p| PaymentOut::of(id.as_str(), p)).collect::<Vec<_>>())
}

/// The payment system's callback, signed with HMAC-SHA256 of the body (hex, `X-Signature`).
#[utoipa::path(post, path = "/pay/callback", tag = "payment", request_body = crate::actors::payment::CallbackBody,
    params(("X-Signature" = String, Header, description = "hex HMAC-SHA256 of the body")),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn callback(app: &App, req: &Req) -> Result<Out, ApiError> {
    let sig = req.header("x-signature").ok_or_else(|| ApiError::Unauthorized("X-Signature is missing".into()))?;
    app.shop.callback(&req.body, sig).await?;
    Ok(Out::Empty(StatusCode::NO_CONTENT))
}
