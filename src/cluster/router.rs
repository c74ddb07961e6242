//! Key → partition → node.
//!
//! Invariant: `partition_of` never changes for a given key and partition count — stored data
//! is placed by it. Golden values in the tests pin it (xxh3-64, a frozen algorithm).

use crate::domain::NodeId;

/// The partition of a key among `partitions` (> 0).
pub fn partition_of(key: &[u8], partitions: u32) -> u32 {
    let p = u64::from(partitions.max(1));
    // The remainder is below `partitions`, so it fits in u32.
    u32::try_from(xxhash_rust::xxh3::xxh3_64(key) % p).unwrap_or(0)
}

/// Where a key is handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// On this node.
    Local {
        /// The key's partition.
        partition: u32,
    },
    /// On another node.
    Remote {
        /// The key's partition.
        partition: u32,
        /// Its owner.
        node: NodeId,
    },
}

/// Maps keys to their owning node.
#[derive(Debug, Clone)]
pub struct Router {
    local: NodeId,
    owners: Vec<NodeId>,
    /// This node owns every partition (the embedded single node).
    owns_all: bool,
}

impl Router {
    /// A router for `nodes` (non-empty, as the config validated) seen from `local`.
    /// Partition p goes to the node with the highest xxh3(node name ‖ p) (rendezvous hashing),
    /// so adding a node moves only the partitions it wins.
    pub fn new(local: NodeId, nodes: &[NodeId], partitions: u32) -> Router {
        let owners = (0..partitions.max(1))
            .map(|p| {
                nodes
                    .iter()
                    .max_by_key(|n| {
                        let mut buf = n.as_str().as_bytes().to_vec();
                        buf.extend_from_slice(&p.to_be_bytes());
                        (xxhash_rust::xxh3::xxh3_64(&buf), n.as_str().to_owned())
                    })
                    .cloned()
                    .unwrap_or_else(|| local.clone())
            })
            .collect::<Vec<NodeId>>();
        let owns_all = owners.iter().all(|n| *n == local);
        Router { local, owners, owns_all }
    }

    /// A single node owning every partition.
    pub fn single(local: NodeId, partitions: u32) -> Router {
        let nodes = [local.clone()];
        Router::new(local, &nodes, partitions)
    }

    /// How many partitions there are.
    pub fn partitions(&self) -> u32 {
        u32::try_from(self.owners.len()).unwrap_or(u32::MAX)
    }

    /// This node.
    pub fn local(&self) -> &NodeId {
        &self.local
    }

    /// The owner of a partition.
    pub fn owner(&self, partition: u32) -> &NodeId {
        usize::try_from(partition).ok().and_then(|i| self.owners.get(i)).unwrap_or(&self.local)
    }

    /// The partition of `key`: the one an order or payment id carries in its `o{partition}-`
    /// prefix (so a customer's orders live with the customer) — also behind a notification
    /// send's `n-` (an order's sends live with the order) — else the key's hash.
    pub fn partition_of(&self, key: &[u8]) -> u32 {
        let n = self.partitions();
        std::str::from_utf8(key)
            .ok()
            .map(|k| k.strip_prefix("n-").unwrap_or(k))
            .and_then(crate::domain::partition_prefix)
            .filter(|p| *p < n)
            .unwrap_or_else(|| partition_of(key, n))
    }

    /// Where `key` is handled.
    pub fn route(&self, key: &[u8]) -> Route {
        let partition = self.partition_of(key);
        let node = self.owner(partition);
        if *node == self.local {
            Route::Local { partition }
        } else {
            Route::Remote { partition, node: node.clone() }
        }
    }

    /// Whether this node owns every partition.
    pub fn owns_all(&self) -> bool {
        self.owns_all
    }

    /// Partitions this node owns.
    pub fn local_partitions(&self) -> usize {
        self.owned_by(&self.local)
    }

    /// Partitions `node` owns under the configuration.
    pub fn owned_by(&self, node: &NodeId) -> usize {
        self.owners.iter().filter(|n| *n == node).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(n: &str) -> NodeId {
        NodeId::parse(n).unwrap()
    }

    #[test]
    fn partitions_are_pinned_by_golden_values() {
        // If one of these changes, stored data would be looked for on the wrong node.
        let golden: &[(&str, u32)] = &[
            ("book-978-0141439518", GOLDEN[0]),
            ("alice@example.com", GOLDEN[1]),
            ("o-17-0001", GOLDEN[2]),
            ("", GOLDEN[3]),
        ];
        for (key, want) in golden {
            assert_eq!(partition_of(key.as_bytes(), 256), *want, "partition of {key:?} changed");
        }
        assert_eq!(xxhash_rust::xxh3::xxh3_64(b"bazaar"), GOLDEN_HASH);
    }

    // Computed independently with the reference XXH3 (Python `xxhash.xxh3_64_intdigest`).
    const GOLDEN: [u32; 4] = [231, 255, 189, 194];
    const GOLDEN_HASH: u64 = 8_199_505_034_760_062_993;

    #[test]
    fn an_order_id_routes_to_the_partition_it_carries() {
        let r = Router::single(node("a"), 256);
        let customer = crate::domain::CustomerId::parse("carol@example.com").unwrap();
        let p = r.partition_of(customer.as_str().as_bytes());
        let order = crate::domain::OrderId::for_customer(p, &customer, 1);
        assert_eq!(r.partition_of(order.as_str().as_bytes()), p);
        // An order's notification sends live with it.
        let send = format!("{}{}", crate::domain::notification::send_prefix(&order), "k");
        assert_eq!(r.partition_of(send.as_bytes()), p);
        // A prefix naming a partition that does not exist falls back to the hash.
        assert_eq!(r.partition_of(b"o999999-x-1"), partition_of(b"o999999-x-1", 256));
    }

    #[test]
    fn one_node_owns_everything() {
        let r = Router::single(node("a"), 64);
        assert_eq!(r.local_partitions(), 64);
        assert!(matches!(r.route(b"anything"), Route::Local { .. }));
    }

    #[test]
    fn rendezvous_spreads_partitions_and_moves_few_when_a_node_joins() {
        let two = [node("a"), node("b")];
        let three = [node("a"), node("b"), node("c")];
        let r2 = Router::new(node("a"), &two, 256);
        let r3 = Router::new(node("a"), &three, 256);
        let a2 = r2.local_partitions();
        assert!(a2 > 80 && a2 < 176, "a owns {a2} of 256");
        let moved = (0..256).filter(|p| r2.owner(*p) != r3.owner(*p)).count();
        let to_c = (0..256).filter(|p| r3.owner(*p).as_str() == "c").count();
        assert_eq!(moved, to_c, "only partitions the new node wins move");
        let from_b = Router::new(node("b"), &two, 256);
        assert!(matches!(from_b.route(b"x"), Route::Local { .. }) != matches!(r2.route(b"x"), Route::Local { .. }));
    }
}
