//! The JSON shapes of health, cluster, notifications and the invariant verdict.

use crate::domain::notification::SendRecord;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::*;

/// `GET /health` answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HealthOut {
    /// `ok`.
    pub status: String,
    /// This node.
    pub node: String,
    /// Partitions it owns.
    pub partitions: usize,
}

/// A node as `GET /cluster` shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeOut {
    /// Its name.
    pub name: String,
    /// Where its HTTP front listens (from the configuration).
    pub http_addr: Option<String>,
    /// Whether the answering node has a working session with it (itself: always).
    pub reachable: bool,
    /// Partitions it owns under the configuration.
    pub partitions: usize,
    /// The configuration digest it runs, as last heard from it (`null`: not heard from).
    pub config_digest: Option<String>,
}

/// A partition moving between nodes.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MoveOut {
    /// The partition.
    pub partition: u32,
    /// Its owner before.
    pub from: String,
    /// Its owner after.
    pub to: String,
    /// How far it got.
    pub state: String,
}

/// `GET /cluster` answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterOut {
    /// The answering node.
    pub node: String,
    /// The digest of the configuration it runs (partitions, node names and cluster addresses).
    pub config_digest: String,
    /// The nodes.
    pub nodes: Vec<NodeOut>,
    /// Partitions moving (none until rebalancing exists).
    pub moves: Vec<MoveOut>,
    /// Events waiting in this node's outbox.
    pub outbox_depth: usize,
    /// Events given up on (see `bazaar dead-letters`).
    pub dead_letters: usize,
}

/// A notification send.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationOut {
    /// Its id.
    pub id: String,
    /// The order.
    pub order_id: String,
    /// The customer.
    pub customer_id: String,
    /// ORDER_PAID or ORDER_SHIPPED.
    pub event_type: String,
    /// EMAIL or SMS.
    pub channel: String,
    /// Where.
    pub address: String,
    /// SENT, RETRYING or FAILED.
    pub status: String,
    /// Attempts made.
    pub attempts: u32,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339, once sent.
    pub sent_at: Option<String>,
}

impl NotificationOut {
    /// From a send record (none for a record without its request).
    pub fn of(r: &SendRecord) -> Option<Self> {
        let q = r.request.as_ref()?;
        Some(Self {
            id: q.id.clone(),
            order_id: q.order_id.to_string(),
            customer_id: q.customer_id.to_string(),
            event_type: q.event_type.name().into(),
            channel: q.channel.name().into(),
            address: q.address.clone(),
            status: r.status.map_or("RETRYING", |s| s.name()).into(),
            attempts: r.attempts,
            created_at: rfc3339(r.created_at_ms),
            sent_at: r.sent_at_ms.map(rfc3339),
        })
    }
}

/// One invariant's verdict.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CheckOut {
    /// The invariant.
    pub name: String,
    /// Whether it holds.
    pub ok: bool,
    /// What breaks it.
    pub violations: Vec<String>,
}

/// `GET /invariants` answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InvariantsOut {
    /// Whether every invariant holds.
    pub ok: bool,
    /// RFC 3339.
    pub checked_at: String,
    /// The checks.
    pub checks: Vec<CheckOut>,
}
