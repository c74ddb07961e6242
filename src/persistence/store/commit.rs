//! The commit decision: a batch's checks (duplicate message ids, expected versions), the writes
//! it makes in order, appending them to the commit log as one record, then applying them to
//! sled and the staged outbox; and replaying a logged record at start-up.

use super::*;
use crate::persistence::wal::ops::{decode_ops, encode_ops, Op};

/// The committer's record of the aggregate versions it wrote (it is their only writer, so each
/// entry is exact). Bounded: past `VERSION_CACHE_LEN_MAX` entries it starts over, and a miss
/// reads sled.
#[derive(Debug, Default)]
pub struct VersionCache {
    map: HashMap<Vec<u8>, u64>,
}

impl VersionCache {
    pub(super) fn key(tree: &str, key: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(tree.len() + 1 + key.len());
        k.extend_from_slice(tree.as_bytes());
        k.push(0);
        k.extend_from_slice(key);
        k
    }

    pub(super) fn get(&self, key: &[u8]) -> Option<u64> {
        self.map.get(key).copied()
    }

    pub(super) fn record(&mut self, key: Vec<u8>, version: u64) {
        if self.map.len() >= VERSION_CACHE_LEN_MAX && !self.map.contains_key(&key) {
            self.map.clear();
        }
        self.map.insert(key, version);
    }
}

impl Store {
    /// Commits a batch of write sets, starting outbox numbering at `next_seq`: decides each
    /// (inbox duplicate, aggregate version, creations; one that fails its check is skipped
    /// without failing the others), logs every write the batch makes as ONE commit-log record,
    /// then applies them to sled. Returns what became of each write set and the next free
    /// sequence number. Not durable until `make_durable`.
    ///
    /// All or nothing: a fault before the log record leaves nothing of the batch; once the
    /// record is written the batch is applied, and if applying fails part-way the store refuses
    /// every later batch (the node must restart, and replaying the log completes the batch).
    /// Only one thread commits at a time (the committer; tests), so what it reads is exactly
    /// what earlier batches wrote.
    ///
    /// `versions` is the caller's cache of stored aggregate versions: the committer is the only
    /// writer of aggregates, so what it recorded is exact, and a hit saves a read.
    pub fn commit(
        &self,
        batch: &[&WriteSet],
        next_seq: u64,
        fault: Option<InjectedAbort>,
        versions: &mut VersionCache,
    ) -> Result<(Vec<Applied>, u64), StoreError> {
        if self.inner.broken.load(Ordering::Acquire) {
            return Err(StoreError::Storage(
                "an earlier batch failed half-applied; restart the node to complete it from the commit log".into(),
            ));
        }
        let decided = self.decide(batch, next_seq, fault, versions)?;
        if decided.ops.is_empty() {
            return Ok((decided.applied, decided.next_seq));
        }
        let mut payload = self.inner.payload.lock().map_err(|_| StoreError::Storage("payload lock poisoned".into()))?;
        encode_ops(&mut payload, &decided.names, &decided.ops)?;
        let seq = self
            .inner
            .wal
            .lock()
            .map_err(|_| StoreError::Storage("commit log lock poisoned".into()))?
            .append(&payload)?;
        drop(payload);
        if let Err(e) = self.apply_live(&decided, next_seq, seq) {
            self.inner.broken.store(true, Ordering::Release);
            tracing::error!(error = %e, record = seq, "a logged batch failed half-applied; refusing further writes until restart");
            return Err(e);
        }
        for (ws, a) in batch.iter().zip(&decided.applied) {
            if !matches!(a, Applied::Written { .. }) {
                continue;
            }
            if let (Some(s), Some(st)) = (&ws.service, &ws.state) {
                versions.record(VersionCache::key(&s.name, &st.key), st.expected_version + 1);
            }
            for (t, cw) in &ws.creates {
                versions.record(VersionCache::key(&t.name, &cw.key), cw.expected_version + 1);
            }
        }
        Ok((decided.applied, decided.next_seq))
    }

    /// Applies a logged batch (record `record`): its outbox writes to the staged entries (a new
    /// entry, numbered from `fresh_from` on, and any write to a staged one) or to the tree (an
    /// entry a checkpoint already wrote there), everything else to sled, in order per tree.
    pub(super) fn apply_live(&self, decided: &Decided<'_>, fresh_from: u64, record: u64) -> Result<(), StoreError> {
        apply_ops(&decided.trees, decided.ops.iter().filter(|op| op.tree != TreeSet::OUTBOX))?;
        let mut staged = self.staged()?;
        for op in decided.ops.iter().filter(|op| op.tree == TreeSet::OUTBOX) {
            let seq = seq_of(&op.key).ok_or_else(|| StoreError::Storage("outbox key is not 8 bytes".into()))?;
            match &op.value {
                Some(v) if seq >= fresh_from || staged.contains_key(&seq) => {
                    staged.insert(seq, v.to_vec());
                }
                Some(v) => {
                    self.inner.outbox.insert(&*op.key, &**v)?;
                }
                None => {
                    if staged.remove(&seq).is_none() {
                        self.inner.outbox.remove(&*op.key)?;
                    }
                }
            }
        }
        self.inner.applied_seq.store(record, Ordering::Release);
        Ok(())
    }

    /// The checks of `commit`, and the writes the batch makes, in order.
    pub(super) fn decide<'b>(
        &self,
        batch: &[&'b WriteSet],
        next_seq: u64,
        fault: Option<InjectedAbort>,
        versions: &VersionCache,
    ) -> Result<Decided<'b>, StoreError> {
        let mut trees = TreeSet::new(&self.inner);
        let mut applied = Vec::with_capacity(batch.len());
        let mut ops: Vec<Op<'b>> = Vec::new();
        // What earlier write sets of this batch did, which sled does not show yet.
        let mut in_batch: HashMap<Vec<u8>, u64> = HashMap::new();
        let mut ids: HashMap<(Arc<str>, MessageId), &'b [u8]> = HashMap::new();
        let mut seq = next_seq;
        let mut written = 0usize;
        'sets: for ws in batch {
            if let Some(s) = &ws.service {
                if let Some(inb) = &ws.inbox {
                    if let Some(first) = ids.get(&(s.service.clone(), inb.id)) {
                        applied.push(Applied::Duplicate(first.to_vec()));
                        continue 'sets;
                    }
                    for t in s.inbox.live() {
                        if let Some(prev) = t.get(inb.id.as_bytes())? {
                            applied.push(Applied::Duplicate(prev.to_vec()));
                            continue 'sets;
                        }
                    }
                }
                let ck = ws.state.as_ref().map(|st| VersionCache::key(&s.name, &st.key));
                if let (Some(st), Some(ck)) = (&ws.state, &ck) {
                    let stored = match in_batch.get(ck).copied().or_else(|| versions.get(ck)) {
                        Some(v) => Some(v),
                        None => stored_version(&s.state, &st.key)?,
                    };
                    if stored != Some(st.expected_version) {
                        applied.push(Applied::Conflict(stored));
                        continue 'sets;
                    }
                }
                for (t, cw) in &ws.creates {
                    // Any record there, readable or not, means the aggregate exists.
                    let existing = match in_batch.get(&VersionCache::key(&t.name, &cw.key)) {
                        Some(v) => Some(Some(*v)),
                        None => t
                            .state
                            .get(&cw.key)?
                            .map(|b| codec::peek(RecordKind::Aggregate, &b).ok().map(|h| h.version)),
                    };
                    if let Some(stored) = existing {
                        applied.push(Applied::Conflict(stored));
                        continue 'sets;
                    }
                }
                if let Some(inb) = &ws.inbox {
                    ids.insert((s.service.clone(), inb.id), &inb.record);
                    let g = trees.index(&self.generation_tree(s, inb.recorded_at_ms)?);
                    ops.push(Op::put(g, Cow::Borrowed(&inb.id.as_bytes()[..]), &inb.record));
                }
                if let (Some(st), Some(ck)) = (&ws.state, ck) {
                    in_batch.insert(ck, st.expected_version + 1);
                    ops.push(Op::put(trees.index(&s.state), Cow::Borrowed(&st.key), &st.record));
                }
                for (t, cw) in &ws.creates {
                    in_batch.insert(VersionCache::key(&t.name, &cw.key), cw.expected_version + 1);
                    ops.push(Op::put(trees.index(&t.state), Cow::Borrowed(&cw.key), &cw.record));
                }
                let timers = trees.index(&s.timers);
                for k in &ws.timer_clears {
                    ops.push(Op::remove(timers, Cow::Borrowed(k)));
                }
                for (k, v) in &ws.timer_sets {
                    ops.push(Op::put(timers, Cow::Borrowed(k), v));
                }
            } else if ws.inbox.is_some() || ws.state.is_some() || !ws.creates.is_empty() {
                return Err(StoreError::Storage("write set without service trees".into()));
            }
            let first = seq;
            for entry in &ws.outbox {
                ops.push(Op::put(TreeSet::OUTBOX, Cow::Owned(seq_key(seq).to_vec()), entry));
                seq += 1;
            }
            for (s_, bytes) in &ws.outbox_updates {
                if self.staged()?.contains_key(s_) || self.inner.outbox.contains_key(seq_key(*s_))? {
                    ops.push(Op::put(TreeSet::OUTBOX, Cow::Owned(seq_key(*s_).to_vec()), bytes));
                }
            }
            for (s_, bytes) in &ws.dead_letters {
                ops.push(Op::put(TreeSet::DEAD, Cow::Owned(seq_key(*s_).to_vec()), bytes));
            }
            for dl in &ws.dead_letter_removals {
                ops.push(Op::remove(TreeSet::DEAD, Cow::Owned(seq_key(*dl).to_vec())));
            }
            for done in &ws.outbox_removals {
                ops.push(Op::remove(TreeSet::OUTBOX, Cow::Owned(seq_key(*done).to_vec())));
            }
            applied.push(Applied::Written { first_seq: first, count: seq - first });
            written += 1;
            if fault.is_some_and(|f| written == f.after_written) {
                return Err(StoreError::Injected(format!("abort after {written} write sets")));
            }
        }
        if fault.is_some() {
            // A batch shorter than the requested point fails at its end, after everything.
            return Err(StoreError::Injected(format!("abort after all {written} write sets")));
        }
        if seq != next_seq {
            ops.push(Op {
                tree: TreeSet::META,
                key: Cow::Borrowed(META_NEXT_SEQ),
                value: Some(Cow::Owned(seq_key(seq).to_vec())),
            });
        }
        Ok(Decided { trees: trees.trees, names: trees.names, applied, ops, next_seq: seq })
    }

    /// Refuses every later batch (a failure left the store's durability in doubt); the node
    /// must restart, and replaying the commit log makes it whole.
    pub fn refuse_writes(&self, why: &str) {
        if !self.inner.broken.swap(true, Ordering::AcqRel) {
            tracing::error!(reason = why, "the store refuses further writes until the node restarts");
        }
    }

    /// Makes every committed batch durable, as the durability setting says: `flush` and `fsync`
    /// wait until the commit log is on disk (`fdatasync`); `none` does not wait.
    pub fn make_durable(&self) -> Result<(), StoreError> {
        if self.inner.durability == Durability::None {
            return Ok(());
        }
        let handle =
            self.inner.wal.lock().map_err(|_| StoreError::Storage("commit log lock poisoned".into()))?.sync_handle();
        handle.sync_data().map_err(|e| StoreError::Storage(format!("commit log fdatasync: {e}")))
    }
}

/// The aggregate version stored under `key` (`Some(0)`: none stored; `None`: unreadable).
pub(super) fn stored_version(tree: &Tree, key: &[u8]) -> Result<Option<u64>, StoreError> {
    Ok(match tree.get(key)? {
        None => Some(0),
        Some(b) => codec::peek(RecordKind::Aggregate, &b).ok().map(|h| h.version),
    })
}

/// A decided batch: the trees it writes, what became of each write set, the writes in order.
pub(super) struct Decided<'b> {
    trees: Vec<Tree>,
    names: Vec<sled::IVec>,
    applied: Vec<Applied>,
    ops: Vec<Op<'b>>,
    next_seq: u64,
}

/// The trees one batch writes, by index (the node's own three first).
pub(super) struct TreeSet {
    trees: Vec<Tree>,
    names: Vec<sled::IVec>,
}

impl TreeSet {
    const OUTBOX: usize = 0;
    const META: usize = 1;
    const DEAD: usize = 2;

    pub(super) fn new(inner: &Inner) -> Self {
        let trees = vec![inner.outbox.clone(), inner.meta.clone(), inner.dead.clone()];
        let names = trees.iter().map(Tree::name).collect();
        TreeSet { trees, names }
    }

    pub(super) fn index(&mut self, t: &Tree) -> usize {
        let name = t.name();
        match self.names.iter().position(|n| *n == name) {
            Some(i) => i,
            None => {
                self.names.push(name);
                self.trees.push(t.clone());
                self.trees.len() - 1
            }
        }
    }
}

/// Applies a batch's writes to sled, in order.
pub(super) fn apply_ops<'o, 'b: 'o>(
    trees: &[Tree],
    ops: impl IntoIterator<Item = &'o Op<'b>>,
) -> Result<(), StoreError> {
    for op in ops {
        let t = trees.get(op.tree).ok_or_else(|| StoreError::Storage("write to an unknown tree".into()))?;
        match &op.value {
            Some(v) => t.insert(&*op.key, &**v)?,
            None => t.remove(&*op.key)?,
        };
    }
    Ok(())
}

/// Replays one commit-log record into `db` (at start-up, before anything else writes).
pub(super) fn apply_logged(db: &sled::Db, seq: u64, payload: &[u8]) -> Result<(), StoreError> {
    let (names, ops) = decode_ops(payload)
        .map_err(|e| StoreError::Storage(format!("commit log record {seq} does not decode: {e}")))?;
    let trees = names.iter().map(|n| db.open_tree(n)).collect::<Result<Vec<_>, _>>()?;
    apply_ops(&trees, &ops)
}
