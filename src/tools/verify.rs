//! Offline checks of a data directory (`bazaar verify`, the crash tests): every stored record
//! decodes and every stored aggregate keeps its invariants.

use crate::actors::catalogue::StockProjectionKind;
use crate::actors::kind::EntityKind;
use crate::actors::stock::StockItemKind;
use crate::domain::Sku;
use crate::persistence::{OutboxEntry, Store, StoreError};

/// What `verify_store` found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Stock items read.
    pub stock_items: usize,
    /// Stock projections read.
    pub stock_projections: usize,
    /// Outbox entries read.
    pub outbox_entries: usize,
    /// Dead letters read.
    pub dead_letters: usize,
    /// Everything wrong, one line each (empty: all good).
    pub problems: Vec<String>,
}

/// Reads every record of the store's services and checks it.
pub fn verify_store(store: &Store) -> Result<VerifyReport, StoreError> {
    let mut r = VerifyReport::default();
    let stock = store.service(StockItemKind::SERVICE, StockItemKind::AGGREGATE)?;
    for item in store.scan_aggregates(&stock) {
        match item {
            Err(e) => r.problems.push(e.to_string()),
            Ok((key, header, body)) => {
                r.stock_items += 1;
                let key = String::from_utf8_lossy(&key).into_owned();
                let decoded = Sku::parse(&key)
                    .map_err(|e| e.to_string())
                    .and_then(|sku| StockItemKind::decode_state(&sku, header.schema, &body).map_err(|e| e.to_string()));
                match decoded {
                    Err(e) => r.problems.push(format!("stock item {key}: {e}")),
                    Ok(s) => {
                        if let Err(e) = s.check_invariant() {
                            r.problems.push(format!("stock item {key} v{}: {e}", header.version));
                        }
                    }
                }
            }
        }
    }
    let proj = store.service(StockProjectionKind::SERVICE, StockProjectionKind::AGGREGATE)?;
    for item in store.scan_aggregates(&proj) {
        match item {
            Err(e) => r.problems.push(e.to_string()),
            Ok((key, header, body)) => {
                r.stock_projections += 1;
                let key = String::from_utf8_lossy(&key).into_owned();
                let decoded = Sku::parse(&key).map_err(|e| e.to_string()).and_then(|sku| {
                    StockProjectionKind::decode_state(&sku, header.schema, &body).map_err(|e| e.to_string())
                });
                if let Err(e) = decoded {
                    r.problems.push(format!("stock projection {key}: {e}"));
                }
            }
        }
    }
    let next = store.next_outbox_seq()?;
    for (seq, raw) in store.outbox_scan(0, u64::MAX, usize::MAX)? {
        r.outbox_entries += 1;
        if let Err(e) = OutboxEntry::decode(&raw) {
            r.problems.push(format!("outbox entry {seq}: {e}"));
        }
        if seq >= next {
            r.problems.push(format!("outbox entry {seq} is at or past the next sequence number {next}"));
        }
    }
    for (seq, letter) in store.dead_letters()? {
        r.dead_letters += 1;
        if let Err(e) = letter {
            r.problems.push(format!("dead letter {seq}: {e}"));
        }
    }
    Ok(r)
}
