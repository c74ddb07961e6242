//! Reads of what this node stores, by scanning its trees: listings for operators and tools. Each
//! answer is a [`ThisNode`], which says whether this node holds every partition (the embedded
//! single node: then it is the whole store's answer). A caller that needs the whole answer asks
//! for it with [`ThisNode::whole`] and gets an error, never a partial list, where data is spread
//! over nodes; the cluster turns these into fan-outs to every owner.

use super::*;
use crate::persistence::Row;

/// What one node's scan found, and whether that is everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThisNode<T> {
    value: T,
    owned: usize,
    partitions: u32,
}

impl<T> ThisNode<T> {
    /// Whether this node owns every partition, so that the value is the whole store's.
    pub fn is_whole(&self) -> bool {
        u32::try_from(self.owned).is_ok_and(|o| o == self.partitions)
    }

    /// The value when it is the whole store's; an error saying so when this node holds only
    /// some partitions.
    pub fn whole(self) -> Result<T, ShopError> {
        if self.is_whole() {
            Ok(self.value)
        } else {
            Err(ShopError::Partial { owned: self.owned, partitions: self.partitions })
        }
    }

    /// The value as this node has it, knowingly partial in a cluster (a node's own tokens, a
    /// tool on one data directory).
    pub fn this_node_only(self) -> T {
        self.value
    }
}

/// This node's own delivery state (what `GET /cluster` shows for it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    /// Outbox entries not yet delivered.
    pub outbox_depth: usize,
    /// Dead letters kept.
    pub dead_letters: usize,
}

impl Shop {
    /// This node's outbox depth and dead letters: one node's figures, by name (a cluster view
    /// asks each node for its own).
    pub fn node_status(&self) -> Result<NodeStatus, ShopError> {
        Ok(NodeStatus { outbox_depth: self.store.outbox_len(), dead_letters: self.store.dead_letters()?.len() })
    }

    fn this_node<T>(&self, value: T) -> ThisNode<T> {
        ThisNode { value, owned: self.router.local_partitions(), partitions: self.router.partitions() }
    }

    /// Every promo code this node stores.
    pub fn promos(&self) -> Result<ThisNode<Vec<crate::domain::promo::Promocode>>, ShopError> {
        let codes = self.scan::<PromoKind>()?.value.into_iter().map(|a| a.code).collect();
        Ok(self.this_node(codes))
    }

    /// Every aggregate of kind `K` this node stores (a scan; for listings and tools).
    pub fn scan<K: EntityKind>(&self) -> Result<ThisNode<Vec<K::State>>, ShopError> {
        let rows = crate::persistence::StateSource::states(&self.store, K::SERVICE, K::AGGREGATE)
            .map_err(EngineError::Unavailable)?;
        Ok(self.this_node(decode_rows::<K>(rows)?))
    }

    /// Every revoked token not yet expired: (token id, expiry ms). The whole cluster's — every
    /// node keeps a copy of every revocation (`RevocationKind` is replicated) — as far as they
    /// have reached this node.
    pub fn revoked_tokens(&self, now_ms: u64) -> Result<Vec<(String, u64)>, ShopError> {
        Ok(self
            .scan::<RevocationKind>()?
            .value
            .into_iter()
            .flat_map(|r| r.tokens.into_iter())
            .filter(|(_, exp)| *exp > now_ms)
            .collect())
    }

    /// The notification sends about an order (found by their id's prefix; they live on the
    /// order's node: read there when that is another).
    pub async fn order_sends(&self, id: &OrderId) -> Result<Vec<SendRecord>, ShopError> {
        let prefix = crate::domain::notification::send_prefix(id);
        let (service, aggregate) = (SendRecordKind::SERVICE, SendRecordKind::AGGREGATE);
        let rows = match (self.router.route(id.as_str().as_bytes()), &self.transport) {
            (crate::cluster::Route::Remote { partition, node }, Some(t)) => t
                .collect(node.as_str(), service, aggregate, &prefix)
                .await
                .map_err(|e| EngineError::OwnerUnreachable { partition, node: node.to_string(), why: e.to_string() })?,
            _ => self.local_rows(service, aggregate, &prefix)?,
        };
        decode_rows::<SendRecordKind>(rows)
    }

    /// This node's stored `service/aggregate` rows whose key starts with `prefix`.
    fn local_rows(&self, service: &str, aggregate: &str, prefix: &str) -> Result<Vec<Row>, ShopError> {
        let trees = self.store.service(service, aggregate)?;
        let mut rows = Vec::new();
        for row in self.store.scan_aggregates_prefix(&trees, prefix.as_bytes()) {
            let (k, h, body) = row?;
            rows.push((String::from_utf8_lossy(&k).into_owned(), h.schema, body));
        }
        Ok(rows)
    }

    /// Every notification send of the store (every node's, in a cluster).
    pub async fn sends(&self) -> Result<Vec<SendRecord>, ShopError> {
        self.gather::<SendRecordKind>().await
    }

    /// Every stored `service/aggregate` row whose key starts with `prefix`: this node's and, in
    /// a cluster, every other node's (asked page by page). A node that does not answer makes
    /// it an error naming it, never a partial answer.
    pub async fn gather_rows(&self, service: &str, aggregate: &str, prefix: &str) -> Result<Vec<Row>, ShopError> {
        let mut rows = self.local_rows(service, aggregate, prefix)?;
        let Some(transport) = &self.transport else {
            // No other node to ask: whole only where this node owns every partition.
            return self.this_node(rows).whole();
        };
        let mut silent = Vec::new();
        for (peer, _) in transport.peers() {
            match transport.collect(&peer, service, aggregate, prefix).await {
                Ok(r) => rows.extend(r),
                Err(e) => silent.push(format!("{peer} ({e})")),
            }
        }
        if silent.is_empty() {
            Ok(rows)
        } else {
            Err(ShopError::NotAnswered(silent.join(", ")))
        }
    }

    /// Every aggregate of kind `K` in the store (every node's, in a cluster).
    pub async fn gather<K: EntityKind>(&self) -> Result<Vec<K::State>, ShopError> {
        decode_rows::<K>(self.gather_rows(K::SERVICE, K::AGGREGATE, "").await?)
    }

    /// The invariant checker's verdict now, on what this node stores.
    pub fn invariants(&self) -> ThisNode<Report> {
        self.this_node(invariants::check(&self.store, self.clock.now_ms(), INVARIANTS_GRACE_MS))
    }

    /// The invariant checker's verdict on the whole store: in a cluster every node's aggregates
    /// gathered, then checked as one store; a node that does not answer makes it an error
    /// naming it, never a partial verdict.
    pub async fn cluster_invariants(&self) -> Result<Report, ShopError> {
        if self.transport.is_none() {
            return self.invariants().whole();
        }
        let mut all = crate::persistence::Collected::default();
        for (service, aggregate) in invariants::sources() {
            let rows = self.gather_rows(service, aggregate, "").await?;
            all.0.insert((service.to_owned(), aggregate.to_owned()), rows);
        }
        Ok(invariants::check(&all, self.clock.now_ms(), INVARIANTS_GRACE_MS))
    }
}

/// Stored rows of kind `K`, decoded.
fn decode_rows<K: EntityKind>(rows: Vec<Row>) -> Result<Vec<K::State>, ShopError> {
    let mut out = Vec::with_capacity(rows.len());
    for (k, schema, body) in rows {
        let key = K::parse_key(&k).map_err(EngineError::Unavailable)?;
        out.push(K::decode_state(&key, schema, &body)?);
    }
    Ok(out)
}
