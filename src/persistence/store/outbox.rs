//! The outbox and dead letters: sequence numbers, entries staged in memory until a checkpoint
//! writes those still undelivered into the `outbox` tree (the commit log holds them durably
//! meanwhile), and every reader seeing staged and stored entries as one outbox.

use super::*;

pub(super) const META_NEXT_SEQ: &[u8] = b"outbox.next_seq";

/// A dead letter as read: decoded, or the error its bytes give.
pub type DeadLetterRead = Result<DeadLetter, CodecError>;

pub(super) fn seq_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

pub(super) fn seq_of(key: &[u8]) -> Option<u64> {
    let b: [u8; 8] = key.try_into().ok()?;
    Some(u64::from_be_bytes(b))
}

impl Store {
    /// The next free outbox sequence number (after every stored and every deleted entry).
    pub fn next_outbox_seq(&self) -> Result<u64, StoreError> {
        let from_meta = match self.inner.meta.get(META_NEXT_SEQ)? {
            Some(v) => {
                seq_of(&v).ok_or_else(|| corrupt("meta", CodecError::NotARecord("outbox.next_seq is not 8 bytes")))?
            }
            None => 0,
        };
        let from_keys = match self.inner.outbox.last()? {
            Some((k, _)) => seq_of(&k).map_or(0, |s| s + 1),
            None => 0,
        };
        let from_dead = match self.inner.dead.last()? {
            Some((k, _)) => seq_of(&k).map_or(0, |s| s + 1),
            None => 0,
        };
        let from_staged = self.staged()?.last_key_value().map_or(0, |(s, _)| s + 1);
        Ok(from_meta.max(from_keys).max(from_dead).max(from_staged))
    }

    /// Up to `limit` outbox entries with `from <= seq < until`, raw (the relay decodes them, and
    /// dead-letters one that does not decode).
    pub fn outbox_scan(&self, from: u64, until: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        if from >= until {
            return Ok(Vec::new());
        }
        // Staged first, then the tree: an entry a checkpoint moves in between is seen in the
        // first, and one seen in both is the same entry.
        let mut merged: BTreeMap<u64, Vec<u8>> =
            self.staged()?.range(from..until).take(limit).map(|(s, v)| (*s, v.clone())).collect();
        for item in self.inner.outbox.range(seq_key(from)..seq_key(until)).take(limit) {
            let (k, v) = item?;
            // A key that is not 8 bytes cannot be ours; skip it rather than misread it.
            if let Some(seq) = seq_of(&k) {
                merged.entry(seq).or_insert_with(|| v.to_vec());
            }
        }
        Ok(merged.into_iter().take(limit).collect())
    }

    /// The raw outbox entry `seq`, if still there.
    pub fn outbox_get(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(v) = self.staged()?.get(&seq) {
            return Ok(Some(v.clone()));
        }
        Ok(self.inner.outbox.get(seq_key(seq))?.map(|v| v.to_vec()))
    }

    /// Entries in the outbox (delivered ones disappear). Counts keys only: a scrape of a long
    /// backlog must not copy it.
    pub fn outbox_len(&self) -> usize {
        let Ok(staged) = self.staged() else { return 0 };
        let seen: std::collections::BTreeSet<u64> = staged.keys().copied().collect();
        drop(staged);
        // A checkpoint may move an entry from the staged ones into the tree meanwhile: counted once.
        let stored = self
            .inner
            .outbox
            .iter()
            .keys()
            .filter_map(Result::ok)
            .filter(|k| seq_of(k).is_none_or(|s| !seen.contains(&s)))
            .count();
        seen.len() + stored
    }

    pub(super) fn staged(&self) -> Result<std::sync::MutexGuard<'_, BTreeMap<u64, Vec<u8>>>, StoreError> {
        self.inner.staged.lock().map_err(|_| StoreError::Storage("staged outbox lock poisoned".into()))
    }

    /// Every dead letter, in sequence order, each decoded or with the error it gives.
    pub fn dead_letters(&self) -> Result<Vec<(u64, DeadLetterRead)>, StoreError> {
        let mut out = Vec::new();
        for item in self.inner.dead.iter() {
            let (k, v) = item?;
            if let Some(seq) = seq_of(&k) {
                out.push((seq, DeadLetter::decode(&v)));
            }
        }
        Ok(out)
    }

    /// One dead letter.
    pub fn dead_letter_get(&self, seq: u64) -> Result<Option<DeadLetter>, StoreError> {
        match self.inner.dead.get(seq_key(seq))? {
            Some(v) => DeadLetter::decode(&v).map(Some).map_err(|e| corrupt("dead_letters", e)),
            None => Ok(None),
        }
    }

    /// Makes sled hold durably every batch applied so far, so the commit log before it can go:
    /// sled is flushed (and its file synced), then the mark "log records up to N are in sled"
    /// is written. That mark is itself durable only after the next checkpoint's flush, so each
    /// checkpoint deletes the log segments covered by the previous one's mark.
    ///
    /// Checkpoints run one at a time (the pruner and shutdown call this too): a mark may only
    /// be counted durable by a flush that began after it was written.
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        let mut pending =
            self.inner.pending_mark.lock().map_err(|_| StoreError::Storage("checkpoint lock poisoned".into()))?;
        let applied = {
            let mut staged = self.staged()?;
            while let Some((seq, v)) = staged.pop_first() {
                if let Err(e) = self.inner.outbox.insert(seq_key(seq), v.as_slice()) {
                    staged.insert(seq, v);
                    return Err(e.into());
                }
            }
            self.inner.applied_seq.load(Ordering::Acquire)
        };
        self.inner.db.flush()?;
        if let Some(f) = &self.inner.db_file {
            f.sync_all().map_err(|e| StoreError::Storage(format!("fsync of sled's file: {e}")))?;
        }
        let durable = *pending;
        let deleted = self
            .inner
            .wal
            .lock()
            .map_err(|_| StoreError::Storage("commit log lock poisoned".into()))?
            .delete_through(durable)?;
        if applied > durable {
            self.inner.meta.insert(META_CHECKPOINT, &seq_key(applied)[..])?;
            *pending = applied;
        }
        if deleted > 0 {
            tracing::debug!(deleted, through = durable, "commit log segments deleted");
        }
        Ok(())
    }
}
