//! Placing, reading, listing and cancelling orders, and an order's timeline.

use serde::Deserialize;
use warp::http::StatusCode;

use super::super::auth::Caller;
use super::super::dto::*;
use super::super::error::{ApiError, ErrorBody};
use super::super::idempotency::command_id;
use super::super::request::{json_body, query};
use super::super::{App, Out, Req};
use super::{lines, order_id, readable_order};
use crate::actors::order::OrderKind;
use crate::domain::auth::Role;
use crate::domain::order::{Canceller, CommerceOrder};
use crate::domain::saga::OrderStatus;

/// Places an order (CUSTOMER).
#[utoipa::path(post, path = "/order/add", tag = "order", security(("bearer" = [])), request_body = OrderIn,
    responses((status = 201, body = OrderOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "unpaid_order_exists, with orderId"), (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn add_order(app: &App, req: &Req, c: &Caller) -> Result<Out, ApiError> {
    let b: OrderIn = json_body(req)?;
    let items = lines(&b.items_list)?;
    let id = command_id(app, req, "/order/add");
    let o = app.shop.place_order_as(id, &c.customer, &items, b.promo_code.as_deref()).await?;
    Out::json(StatusCode::CREATED, &OrderOut::from(&o))
}

/// One order (owner, OPERATOR).
#[utoipa::path(get, path = "/order/{id}", tag = "order", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = OrderOut), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_order(app: &App, req: &Req, c: &Caller) -> Result<Out, ApiError> {
    let o = readable_order(app, c, &order_id(req, 1)?, &[Role::Operator]).await?;
    Out::json(StatusCode::OK, &OrderOut::from(&o))
}

/// The order as it moves, pushed (owner, OPERATOR): server-sent events, one `order` event
/// (data: the order, as `GET /order/{id}` answers it; id: its version) at once and another at
/// each change, until the order is completed or cancelled or `SSE_STREAM_MS` passed (then the
/// client reconnects). The storefront's order page follows the saga with it.
#[utoipa::path(get, path = "/order/{id}/events", tag = "order", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, description = "`event: order` with the order as data, at once and at each change.", content_type = "text/event-stream", body = String),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn events(app: &App, req: &Req, c: &Caller) -> Result<Out, ApiError> {
    let id = order_id(req, 1)?;
    let first = readable_order(app, c, &id, &[Role::Operator]).await?;
    let (tx, feed) = super::super::events::feed();
    let shop = app.shop.clone();
    let mut stopping = app.stopping.clone();
    tokio::spawn(async move {
        let until = tokio::time::Instant::now() + std::time::Duration::from_millis(crate::limits::SSE_STREAM_MS);
        let mut o = first;
        loop {
            let Ok(data) = serde_json::to_string(&OrderOut::from(&o)) else { return };
            let event = warp::sse::Event::default().event("order").id(o.version.to_string()).data(data);
            // A client that stops reading cannot hold the front up when it stops.
            let sent = tokio::select! {
                r = tx.send(event) => r.is_ok(),
                _ = stopping.wait_for(|s| *s) => false,
            };
            if !sent || matches!(o.status, OrderStatus::Completed | OrderStatus::Cancelled) {
                return;
            }
            let version = o.version;
            let wait = until.saturating_duration_since(tokio::time::Instant::now());
            let next = tokio::select! {
                r = shop.wait_order(&id, wait, |n| n.version > version) => r,
                _ = stopping.wait_for(|s| *s) => return,
                () = tx.closed() => return,
            };
            match next {
                Ok(n) if n.version > version => o = n,
                // Time is up, or the order cannot be read now: the client reconnects.
                _ => return,
            }
        }
    });
    Ok(Out::Events(feed))
}

/// `GET /orders` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OrdersQuery {
    /// Only orders in this status (operators).
    #[param(
        pattern = "^(NEW|BOOKING_PENDING|BOOKED|PAY_PENDING|PAID|PAID_PARTIAL|SHIPPING_PENDING|COMPLETED|CANCELLED)$"
    )]
    pub status: Option<String>,
}

/// The personal account: the caller's orders (CUSTOMER), or every order (OPERATOR, newest
/// 500, `?status=`), with payments and shipping.
#[utoipa::path(get, path = "/orders", tag = "order", security(("bearer" = [])), params(OrdersQuery),
    responses((status = 200, body = [OrderSummaryOut]), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_orders(app: &App, req: &Req, c: &Caller) -> Result<Out, ApiError> {
    let q: OrdersQuery = query(req)?;
    let status = match &q.status {
        Some(s) => Some(OrderStatus::parse(s).ok_or_else(|| ApiError::BadRequest(format!("unknown status {s:?}")))?),
        None => None,
    };
    let keep = |o: &CommerceOrder| status.is_none_or(|s| o.status == s);
    let summaries = if c.role == Role::Customer {
        let mut mine = app.shop.account(&c.customer, keep).await?;
        mine.truncate(crate::limits::ORDERS_LISTED_MAX);
        mine
    } else {
        // Every order: a scan of every node, refused rather than partial when one is silent.
        let mut all: Vec<CommerceOrder> =
            app.shop.gather::<OrderKind>().await?.into_iter().flatten().filter(|o| keep(o)).collect();
        all.sort_by_key(|o| std::cmp::Reverse(o.created_at_ms));
        all.truncate(crate::limits::ORDERS_LISTED_MAX);
        app.shop.summaries(all).await?
    };
    let out: Vec<OrderSummaryOut> = summaries.iter().map(OrderSummaryOut::of).collect();
    Out::json(StatusCode::OK, &out)
}

/// Cancels an order (owner before it is paid; OPERATOR until it ships).
#[utoipa::path(post, path = "/order/{id}/cancel", tag = "order", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = OrderOut), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn cancel_order(app: &App, req: &Req, c: &Caller) -> Result<Out, ApiError> {
    let id = order_id(req, 1)?;
    let by = if c.role == Role::Operator || c.role == Role::Admin {
        Canceller::Operator
    } else if c.role == Role::Customer {
        readable_order(app, c, &id, &[]).await?;
        Canceller::Customer(c.customer.clone())
    } else {
        return Err(ApiError::Forbidden("only the owner or an operator cancels an order".into()));
    };
    let o = app.shop.cancel_order(&id, by).await?;
    Out::json(StatusCode::OK, &OrderOut::from(&o))
}

/// Every event that touched an order, in the order it took effect (owner, OPERATOR).
#[utoipa::path(get, path = "/order/{id}/timeline", tag = "order", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, body = [TimelineOut]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn timeline(app: &App, req: &Req, c: &Caller) -> Result<Out, ApiError> {
    let id = order_id(req, 1)?;
    readable_order(app, c, &id, &[Role::Operator]).await?;
    Out::json(StatusCode::OK, &app.shop.timeline(&id).await?.iter().map(TimelineOut::from).collect::<Vec<_>>())
}
