//! The per-service inbox, in generation trees `{service}/inbox/{generation}`: the duplicate
//! check looks in every live generation, a new id goes into its own, and pruning drops whole
//! generations older than the retention window.

use super::*;

/// A service's inbox: its live generation trees by generation number.
#[derive(Default)]
pub(super) struct Inbox {
    gens: std::sync::RwLock<std::collections::BTreeMap<u64, Tree>>,
}

impl Inbox {
    pub(super) fn live(&self) -> Vec<Tree> {
        let g = self.gens.read().unwrap_or_else(|p| p.into_inner());
        g.values().rev().cloned().collect()
    }
}

impl Store {
    /// A service's inbox, with the generations already on disk.
    pub(super) fn inbox_of(&self, service: &str) -> Result<Arc<Inbox>, StoreError> {
        let mut map = self.inner.inboxes.lock().map_err(|_| StoreError::Storage("inbox map poisoned".into()))?;
        if let Some(i) = map.get(service) {
            return Ok(i.clone());
        }
        let prefix = format!("{service}/inbox/");
        let inbox = Arc::new(Inbox::default());
        {
            let mut gens = inbox.gens.write().unwrap_or_else(|p| p.into_inner());
            for name in self.inner.db.tree_names() {
                let Some(rest) = name.strip_prefix(prefix.as_bytes()) else {
                    continue;
                };
                let generation = std::str::from_utf8(rest).ok().and_then(|g| g.parse::<u64>().ok());
                if let Some(g) = generation {
                    gens.insert(g, self.inner.db.open_tree(&name)?);
                }
            }
        }
        map.insert(service.to_owned(), inbox.clone());
        Ok(inbox)
    }

    /// The inbox generation tree for ids recorded at `at_ms` (created on first use).
    pub(super) fn generation_tree(&self, trees: &ServiceTrees, at_ms: u64) -> Result<Tree, StoreError> {
        let g = at_ms / self.inner.generation_ms;
        if let Some(t) = trees.inbox.gens.read().unwrap_or_else(|p| p.into_inner()).get(&g) {
            return Ok(t.clone());
        }
        let mut gens = trees.inbox.gens.write().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = gens.get(&g) {
            return Ok(t.clone());
        }
        let t = self.inner.db.open_tree(format!("{}/inbox/{g:020}", trees.service))?;
        gens.insert(g, t.clone());
        Ok(t)
    }

    /// The inbox record of a message, if it took effect (and was not pruned).
    pub fn inbox_record(&self, trees: &ServiceTrees, id: &MessageId) -> Result<Option<InboxRecord>, StoreError> {
        for t in trees.inbox.live() {
            if let Some(bytes) = t.get(id.as_bytes())? {
                return InboxRecord::decode(&bytes)
                    .map(Some)
                    .map_err(|e| corrupt(&format!("{}/inbox", trees.service), e));
            }
        }
        Ok(None)
    }

    /// How many message ids a service's inbox holds (counts every key: for tests and tools).
    pub fn inbox_len(&self, trees: &ServiceTrees) -> usize {
        trees.inbox.live().iter().map(Tree::len).sum()
    }

    /// Drops the inbox generations recorded wholly before `cutoff_ms` and returns how many.
    /// Every id recorded at or after the cut-off stays; an older one may stay up to one
    /// generation longer.
    pub fn prune_inbox(&self, trees: &ServiceTrees, cutoff_ms: u64) -> Result<usize, StoreError> {
        let w = self.inner.generation_ms;
        let dead: Vec<u64> = {
            let gens = trees.inbox.gens.read().unwrap_or_else(|p| p.into_inner());
            gens.keys().copied().filter(|g| g.saturating_add(1).saturating_mul(w) <= cutoff_ms).collect()
        };
        if dead.is_empty() {
            return Ok(0);
        }
        // Out of the live set first, so no commit checks or writes a tree being dropped.
        for g in &dead {
            trees.inbox.gens.write().unwrap_or_else(|p| p.into_inner()).remove(g);
        }
        // A dropped tree is not in the commit log: checkpoint first, so that no record a
        // restart would replay writes into it (replaying would bring its old ids back).
        self.flush()?;
        for g in &dead {
            self.inner.db.drop_tree(format!("{}/inbox/{g:020}", trees.service))?;
        }
        Ok(dead.len())
    }
}
