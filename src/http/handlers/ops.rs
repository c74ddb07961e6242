//! Operating a node: liveness, metrics, the cluster view, notifications sent, the invariant checker's verdict, and this API's OpenAPI document.

use serde::Deserialize;
use warp::http::StatusCode;

use super::super::auth::Caller;
use super::super::dto::*;
use super::super::error::{ApiError, ErrorBody};
use super::super::request::query;
use super::super::{App, Out, Req};
use crate::domain::auth::Role;

/// Liveness.
#[utoipa::path(get, path = "/health", tag = "operations", responses((status = 200, body = HealthOut)))]
pub async fn health(app: &App, _req: &Req) -> Result<Out, ApiError> {
    Out::json(StatusCode::OK, &HealthOut { status: "ok".into(), node: app.node.clone(), partitions: app.partitions })
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, content_type = "text/plain", body = String)))]
pub async fn metrics(app: &App, _req: &Req) -> Result<Out, ApiError> {
    metrics::gauge!("password_hash_workers").set(app.hashes.workers() as f64);
    metrics::gauge!("password_hashes_in_flight").set(app.hashes.in_flight() as f64);
    metrics::gauge!("password_hashes_in_flight_peak").set(app.hashes.peak() as f64);
    metrics::gauge!("password_hashes_refused_total").set(app.hashes.refused() as f64);
    Ok(Out::Text(StatusCode::OK, (app.metrics)(), "text/plain; version=0.0.4"))
}

/// The cluster as this node sees it (ADMIN, OPERATOR).
#[utoipa::path(get, path = "/cluster", tag = "operations", security(("bearer" = [])),
    responses((status = 200, body = ClusterOut), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn cluster(app: &App, _req: &Req, _c: &Caller) -> Result<Out, ApiError> {
    // Peers as the transport's heartbeats see them: reachable while they answer, with the
    // configuration digest they last said they run.
    let nodes = app
        .nodes
        .iter()
        .map(|(name, http, partitions)| {
            let me = *name == app.node;
            let peer = app.transport.as_ref().and_then(|t| t.peer(name));
            NodeOut {
                name: name.clone(),
                http_addr: http.clone(),
                reachable: me || peer.as_ref().is_some_and(|p| p.reachable),
                partitions: *partitions,
                config_digest: if me { Some(app.config_digest.clone()) } else { peer.and_then(|p| p.digest) },
            }
        })
        .collect();
    let here = app.shop.node_status()?;
    let out = ClusterOut {
        node: app.node.clone(),
        config_digest: app.config_digest.clone(),
        nodes,
        moves: Vec::new(),
        outbox_depth: here.outbox_depth,
        dead_letters: here.dead_letters,
    };
    Out::json(StatusCode::OK, &out)
}

/// `GET /notifications` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct NotificationsQuery {
    /// Only this order's (operators).
    pub order_id: Option<String>,
}

/// Notifications sent (CUSTOMER: their own; OPERATOR: all, `?orderId=`).
#[utoipa::path(get, path = "/notifications", tag = "operations", security(("bearer" = [])), params(NotificationsQuery),
    responses((status = 200, body = [NotificationOut]), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn notifications(app: &App, req: &Req, c: &Caller) -> Result<Out, ApiError> {
    let q: NotificationsQuery = query(req)?;
    let mut out: Vec<NotificationOut> = app
        .shop
        .sends()
        .await?
        .iter()
        .filter_map(NotificationOut::of)
        .filter(|n| c.role != Role::Customer || n.customer_id == c.customer.as_str())
        .filter(|n| q.order_id.as_ref().is_none_or(|o| n.order_id == *o))
        .collect();
    out.sort_by(|a, b| a.created_at.cmp(&b.created_at));
    Out::json(StatusCode::OK, &out)
}

/// The invariant checker's verdict now (ADMIN, OPERATOR).
#[utoipa::path(get, path = "/invariants", tag = "operations", security(("bearer" = [])),
    responses((status = 200, body = InvariantsOut), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn invariants(app: &App, _req: &Req, _c: &Caller) -> Result<Out, ApiError> {
    // In a cluster, every node's aggregates are checked together.
    let r = app.shop.cluster_invariants().await?;
    let out = InvariantsOut {
        ok: r.ok,
        checked_at: rfc3339(r.checked_at_ms),
        checks: r
            .checks
            .iter()
            .map(|c| CheckOut { name: c.name.into(), ok: c.ok, violations: c.violations.clone() })
            .collect(),
    };
    Out::json(StatusCode::OK, &out)
}

/// The OpenAPI document of this API.
#[utoipa::path(get, path = "/openapi.json", tag = "operations", responses((status = 200, content_type = "application/json", body = Object)))]
pub async fn openapi(app: &App, _req: &Req) -> Result<Out, ApiError> {
    Ok(Out::Json(StatusCode::OK, app.openapi.clone()))
}
