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

/// One stored aggregate as a state source gives it: (key, schema, body).
pub type Row = (String, u16, Vec<u8>);

/// Rows gathered beforehand (from several nodes, say), by `(service, aggregate)`.
#[derive(Debug, Default)]
pub struct Collected(pub std::collections::HashMap<(String, String), Vec<Row>>);

impl StateSource for Collected {
    fn states(&self, service: &str, aggregate: &str) -> Result<Vec<Row>, String> {
        Ok(self.0.get(&(service.to_owned(), aggregate.to_owned())).cloned().unwrap_or_default())
    }
}

/// One page of `service/aggregate`'s stored aggregates whose key starts with `prefix`, after
/// key `after`, at most `max_bytes` of them (at least one), and the key to continue after when
/// there are more.
pub fn page(
    store: &Store,
    service: &str,
    aggregate: &str,
    prefix: &str,
    after: Option<&str>,
    max_bytes: usize,
) -> Result<(Vec<Row>, Option<String>), String> {
    let trees = store.service(service, aggregate).map_err(|e| e.to_string())?;
    let mut rows = Vec::new();
    let mut size = 0;
    // A later page continues after the last key it gave (which starts with the prefix).
    let scan: Box<dyn Iterator<Item = _>> = match after {
        Some(a) => Box::new(store.scan_aggregates_after(&trees, Some(a.as_bytes()))),
        None => Box::new(store.scan_aggregates_prefix(&trees, prefix.as_bytes())),
    };
    for r in scan {
        let (k, h, body) = r.map_err(|e| e.to_string())?;
        if !k.starts_with(prefix.as_bytes()) {
            break;
        }
        let cost = k.len() + body.len() + 16;
        if !rows.is_empty() && size + cost > max_bytes {
            let next = rows.last().map(|(k, _, _): &Row| k.clone());
            return Ok((rows, next));
        }
        size += cost;
        rows.push((String::from_utf8_lossy(&k).into_owned(), h.schema, body));
    }
    Ok((rows, None))
}
