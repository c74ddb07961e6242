//! Reading every stored aggregate of one kind, as raw records: the invariant checker and the
//! read models load through this, so that the simulation's in-memory stores and a real data
//! directory are read the same way.

use crate::persistence::{Store, StoreError};

/// Where whole-kind readers (the invariant checker, read models) read aggregates from.
pub trait StateSource {
    /// Every stored aggregate of `service/aggregate`: (key, schema, body).
    fn states(&self, service: &str, aggregate: &str) -> Result<Vec<(String, u16, Vec<u8>)>, String>;
}

impl StateSource for Store {
    fn states(&self, service: &str, aggregate: &str) -> Result<Vec<(String, u16, Vec<u8>)>, String> {
        let trees = self.service(service, aggregate).map_err(|e| e.to_string())?;
        self.scan_aggregates(&trees)
            .map(|r| {
                r.map(|(k, h, body)| (String::from_utf8_lossy(&k).into_owned(), h.schema, body))
                    .map_err(|e: StoreError| e.to_string())
            })
            .collect()
    }
}

/// Several stores read as one: every node's data directory of a stopped cluster. A key held by
/// more than one (a replicated aggregate: every node has every key) is read from the first.
pub struct Union<'a>(pub &'a [Store]);

impl StateSource for Union<'_> {
    fn states(&self, service: &str, aggregate: &str) -> Result<Vec<(String, u16, Vec<u8>)>, String> {
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for store in self.0 {
            for row in store.states(service, aggregate)? {
                if seen.insert(row.0.clone()) {
                    out.push(row);
                }
            }
        }
        Ok(out)
    }
}
