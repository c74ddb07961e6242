//! Durable timers: keys that order by due time, and reading the due ones back.

use super::*;

/// The key of a durable timer: due time first (big-endian, so a range scan finds the due ones),
/// then the aggregate, the entity key and the timer's tag.
pub fn timer_key(due_ms: u64, aggregate: &str, key: &str, tag: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + aggregate.len() + key.len() + tag.len() + 2);
    k.extend_from_slice(&due_ms.to_be_bytes());
    k.extend_from_slice(aggregate.as_bytes());
    k.push(0);
    k.extend_from_slice(key.as_bytes());
    k.push(0);
    k.extend_from_slice(tag.as_bytes());
    k
}

/// A stored timer, read back from its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueTimer {
    /// The raw key (to clear it).
    pub raw: Vec<u8>,
    /// When it is due, ms.
    pub due_ms: u64,
    /// The entity's key.
    pub key: String,
    /// The timer's tag.
    pub tag: String,
}

pub(super) fn parse_timer_key(raw: &[u8], aggregate: &str) -> Option<DueTimer> {
    let due: [u8; 8] = raw.get(..8)?.try_into().ok()?;
    let rest = raw.get(8..)?;
    let mut parts = rest.splitn(3, |b| *b == 0);
    let agg = parts.next()?;
    if agg != aggregate.as_bytes() {
        return None;
    }
    let key = std::str::from_utf8(parts.next()?).ok()?.to_owned();
    let tag = std::str::from_utf8(parts.next()?).ok()?.to_owned();
    Some(DueTimer { raw: raw.to_vec(), due_ms: u64::from_be_bytes(due), key, tag })
}

impl Store {
    /// Timers of `trees`' aggregate due at or before `now_ms`, earliest first, at most `limit`.
    /// A key that does not parse is skipped (it cannot be ours).
    pub fn due_timers(&self, trees: &ServiceTrees, now_ms: u64, limit: usize) -> Result<Vec<DueTimer>, StoreError> {
        let end = now_ms.saturating_add(1).to_be_bytes();
        let mut out = Vec::new();
        for item in trees.timers.range(..&end[..]) {
            let (k, _) = item?;
            if let Some(t) = parse_timer_key(&k, &trees.aggregate) {
                out.push(t);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Every timer of `trees`' aggregate, due or not (for tools and tests).
    pub fn timers(&self, trees: &ServiceTrees) -> Result<Vec<DueTimer>, StoreError> {
        self.due_timers(trees, u64::MAX - 1, usize::MAX)
    }
}
