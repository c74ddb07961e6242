//! The node's one sled database and every call into sled.
//!
//! Trees: per aggregate `{service}/{aggregate}` (states by key); per service `{service}/inbox` (message id →
//! `InboxRecord`) and `{service}/inbox_time` (recorded-at ‖ message id, for pruning); per node
//! `outbox` (sequence number → `OutboxEntry`), `dead_letters` and `meta`.
//! Keys that order are big-endian. No other module calls sled; nothing here sends, spawns or
//! knows about actors. A transaction closure may run more than once, so it has no side effects.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sled::transaction::{abort, TransactionError, TransactionalTree};
use sled::{Transactional, Tree};

use super::codec::{self, CodecError, RecordKind};
use super::records::{DeadLetter, InboxRecord};
use crate::domain::MessageId;
use crate::limits::{INBOX_PRUNE_CHUNK_LEN_MAX, SLED_CACHE_BYTES};

/// When an acknowledged write is safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Flush sled's buffers before acknowledging: survives kill -9 (the default).
    Flush,
    /// Flush, then fsync the database file: also survives a power cut.
    Fsync,
    /// Acknowledge before anything reaches the disk: tests and benches only.
    None,
}

impl Durability {
    /// Parses `flush`, `fsync` or `none`.
    pub fn parse(s: &str) -> Option<Durability> {
        match s {
            "flush" => Some(Durability::Flush),
            "fsync" => Some(Durability::Fsync),
            "none" => Some(Durability::None),
            _ => None,
        }
    }

    /// The setting's name.
    pub fn name(self) -> &'static str {
        match self {
            Durability::Flush => "flush",
            Durability::Fsync => "fsync",
            Durability::None => "none",
        }
    }
}

/// Why the store failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Another process (a running node) holds the data directory.
    #[error("the data directory {0} is in use by another bazaar process (stop the node first)")]
    Locked(String),
    /// sled or the file system failed.
    #[error("storage failure: {0}")]
    Storage(String),
    /// A stored record could not be read.
    #[error("corrupt record in {tree}: {source}")]
    Corrupt {
        /// The tree it was in.
        tree: String,
        /// What was wrong.
        #[source]
        source: CodecError,
    },
    /// A value could not be encoded.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// A fault injected by a test.
    #[error("injected fault: {0}")]
    Injected(String),
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        let text = e.to_string();
        if text.contains("could not acquire lock") {
            StoreError::Locked(text)
        } else {
            StoreError::Storage(text)
        }
    }
}

/// How to open the store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// When writes are acknowledged.
    pub durability: Durability,
    /// sled's page cache in bytes.
    pub cache_bytes: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self { durability: Durability::Flush, cache_bytes: SLED_CACHE_BYTES }
    }
}

/// The trees of one service. Cheap to clone; opaque outside this module.
#[derive(Clone)]
pub struct ServiceTrees {
    name: Arc<str>,
    state: Tree,
    inbox: Tree,
    inbox_time: Tree,
}

impl ServiceTrees {
    /// The service's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl std::fmt::Debug for ServiceTrees {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServiceTrees({})", self.name)
    }
}

/// An inbox insert: the message id that takes effect and the encoded `InboxRecord`.
#[derive(Debug, Clone)]
pub struct InboxWrite {
    /// The incoming message.
    pub id: MessageId,
    /// When, ms (also the pruning key).
    pub recorded_at_ms: u64,
    /// The encoded `InboxRecord`.
    pub record: Vec<u8>,
}

/// An aggregate write, valid only if the stored version is still `expected_version`.
#[derive(Debug, Clone)]
pub struct StateWrite {
    /// The aggregate's key in `{service}/state`.
    pub key: Vec<u8>,
    /// The version the writer started from (0: none stored).
    pub expected_version: u64,
    /// The encoded aggregate record (its header carries `expected_version + 1`).
    pub record: Vec<u8>,
}

/// Everything one handled message changes, applied all or nothing (patterns 1 and 4).
#[derive(Debug, Clone, Default)]
pub struct WriteSet {
    /// The trees `inbox` and `state` go to.
    pub service: Option<ServiceTrees>,
    /// The incoming message id; a duplicate drops the whole write set.
    pub inbox: Option<InboxWrite>,
    /// The aggregate at version + 1.
    pub state: Option<StateWrite>,
    /// Encoded `OutboxEntry`s to append, in order.
    pub outbox: Vec<Vec<u8>>,
    /// Dead letters to delete (their replay is in `outbox`).
    pub dead_letter_removals: Vec<u64>,
}

/// What became of one write set of a committed batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Written. Its outbox entries got sequence numbers `first_seq..first_seq + count`.
    Written {
        /// First outbox sequence number.
        first_seq: u64,
        /// Entries appended.
        count: u64,
    },
    /// The message id was already in the inbox: nothing written. Carries the stored record.
    Duplicate(Vec<u8>),
    /// The stored aggregate is not at the expected version (`None`: unreadable): nothing written.
    Conflict(Option<u64>),
}

/// A test's request to fail a commit part-way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InjectedAbort {
    /// Abort the transaction after this many write sets were written into it.
    pub after_written: usize,
}

const META_NEXT_SEQ: &[u8] = b"outbox.next_seq";

struct Inner {
    db: sled::Db,
    dir: PathBuf,
    meta: Tree,
    outbox: Tree,
    dead: Tree,
    services: Mutex<HashMap<String, ServiceTrees>>,
    db_file: Option<File>,
    durability: Durability,
}

/// The node's database. Open once per process (sled refuses a second open of one directory);
/// clones share it.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

fn corrupt(tree: &str, source: CodecError) -> StoreError {
    StoreError::Corrupt { tree: tree.to_owned(), source }
}

fn seq_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

fn seq_of(key: &[u8]) -> Option<u64> {
    let b: [u8; 8] = key.try_into().ok()?;
    Some(u64::from_be_bytes(b))
}

impl Store {
    /// Opens (or creates) the database in `dir`.
    pub fn open(dir: &Path, opts: &StoreOptions) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Storage(format!("cannot create {}: {e}", dir.display())))?;
        // With `none` sled's own flusher is the only one, so keep it; otherwise every commit
        // flushes and a background flush would only contend for sled's lock.
        let flush_every = match opts.durability {
            Durability::None => Some(1_000),
            Durability::Flush | Durability::Fsync => None,
        };
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(opts.cache_bytes)
            .flush_every_ms(flush_every)
            .open()?;
        let db_file = match opts.durability {
            Durability::Fsync => Some(
                File::open(dir.join("db")).map_err(|e| StoreError::Storage(format!("cannot open db file for fsync: {e}")))?,
            ),
            _ => None,
        };
        let inner = Inner {
            meta: db.open_tree("meta")?,
            outbox: db.open_tree("outbox")?,
            dead: db.open_tree("dead_letters")?,
            db,
            dir: dir.to_owned(),
            services: Mutex::new(HashMap::new()),
            db_file,
            durability: opts.durability,
        };
        Ok(Store { inner: Arc::new(inner) })
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The durability setting the store was opened with.
    pub fn durability(&self) -> Durability {
        self.inner.durability
    }

    /// The trees of one aggregate of a service (created on first use): its state tree
    /// `{service}/{aggregate}` and the service's inbox.
    pub fn service(&self, service: &str, aggregate: &str) -> Result<ServiceTrees, StoreError> {
        let name = format!("{service}/{aggregate}");
        let name = name.as_str();
        let mut map = self.inner.services.lock().map_err(|_| StoreError::Storage("service map poisoned".into()))?;
        if let Some(t) = map.get(name) {
            return Ok(t.clone());
        }
        let db = &self.inner.db;
        let trees = ServiceTrees {
            name: Arc::from(name),
            state: db.open_tree(name)?,
            inbox: db.open_tree(format!("{service}/inbox"))?,
            inbox_time: db.open_tree(format!("{service}/inbox_time"))?,
        };
        map.insert(name.to_owned(), trees.clone());
        Ok(trees)
    }

    /// The stored aggregate record under `key`, checked (magic, kind, checksum) but not decoded.
    pub fn load_aggregate(&self, trees: &ServiceTrees, key: &[u8]) -> Result<Option<(codec::Header, Vec<u8>)>, StoreError> {
        let Some(bytes) = trees.state.get(key)? else { return Ok(None) };
        let (header, body) = codec::open(RecordKind::Aggregate, &bytes).map_err(|e| corrupt(&trees.name, e))?;
        Ok(Some((header, body.to_vec())))
    }

    /// Every stored aggregate of a service, in key order, as (key, checked header, body) or the
    /// error that record gives.
    pub fn scan_aggregates(&self, trees: &ServiceTrees) -> impl Iterator<Item = Result<(Vec<u8>, codec::Header, Vec<u8>), StoreError>> {
        let tree_name = trees.name.to_string();
        trees.state.iter().map(move |item| {
            let (k, v) = item?;
            let (h, body) = codec::open(RecordKind::Aggregate, &v).map_err(|e| corrupt(&tree_name, e))?;
            Ok((k.to_vec(), h, body.to_vec()))
        })
    }

    /// The inbox record of a message, if it took effect (and was not pruned).
    pub fn inbox_record(&self, trees: &ServiceTrees, id: &MessageId) -> Result<Option<InboxRecord>, StoreError> {
        let Some(bytes) = trees.inbox.get(id.as_bytes())? else { return Ok(None) };
        InboxRecord::decode(&bytes).map(Some).map_err(|e| corrupt(&format!("{}/inbox", trees.name), e))
    }

    /// How many message ids a service's inbox holds.
    pub fn inbox_len(&self, trees: &ServiceTrees) -> usize {
        trees.inbox.len()
    }

    /// Removes inbox ids recorded before `cutoff_ms`, at most `INBOX_PRUNE_CHUNK_LEN_MAX` per
    /// transaction, and returns how many went. Ids recorded at or after the cutoff stay.
    pub fn prune_inbox(&self, trees: &ServiceTrees, cutoff_ms: u64) -> Result<usize, StoreError> {
        let mut removed = 0;
        loop {
            let end = cutoff_ms.to_be_bytes();
            let chunk: Vec<sled::IVec> = trees
                .inbox_time
                .range(..&end[..])
                .keys()
                .take(INBOX_PRUNE_CHUNK_LEN_MAX)
                .collect::<Result<_, _>>()?;
            if chunk.is_empty() {
                return Ok(removed);
            }
            (&trees.inbox, &trees.inbox_time)
                .transaction(|(inbox, time)| {
                    for k in &chunk {
                        if k.len() == 24 {
                            inbox.remove(&k[8..])?;
                        }
                        time.remove(k)?;
                    }
                    Ok(())
                })
                .map_err(|e: TransactionError<()>| StoreError::Storage(format!("inbox prune: {e:?}")))?;
            removed += chunk.len();
        }
    }

    /// The next free outbox sequence number (after every stored and every deleted entry).
    pub fn next_outbox_seq(&self) -> Result<u64, StoreError> {
        let from_meta = match self.inner.meta.get(META_NEXT_SEQ)? {
            Some(v) => seq_of(&v).ok_or_else(|| corrupt("meta", CodecError::NotARecord("outbox.next_seq is not 8 bytes")))?,
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
        Ok(from_meta.max(from_keys).max(from_dead))
    }

    /// Up to `limit` outbox entries with `from <= seq < until`, raw (the relay decodes them, and
    /// dead-letters one that does not decode).
    pub fn outbox_scan(&self, from: u64, until: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        if from >= until {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for item in self.inner.outbox.range(seq_key(from)..seq_key(until)).take(limit) {
            let (k, v) = item?;
            // A key that is not 8 bytes cannot be ours; skip it rather than misread it.
            if let Some(seq) = seq_of(&k) {
                out.push((seq, v.to_vec()));
            }
        }
        Ok(out)
    }

    /// The raw outbox entry `seq`, if still there.
    pub fn outbox_get(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.inner.outbox.get(seq_key(seq))?.map(|v| v.to_vec()))
    }

    /// Entries in the outbox (delivered ones disappear).
    pub fn outbox_len(&self) -> usize {
        self.inner.outbox.len()
    }

    /// Deletes delivered outbox entries. Not flushed: if the deletion is lost in a crash, the
    /// entry is delivered again and the subscriber's inbox drops it.
    pub fn outbox_remove(&self, seqs: &[u64]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for s in seqs {
            batch.remove(&seq_key(*s)[..]);
        }
        self.inner.outbox.apply_batch(batch)?;
        Ok(())
    }

    /// Rewrites an outbox entry in place (its attempt count), if it is still there.
    pub fn outbox_update(&self, seq: u64, bytes: &[u8]) -> Result<(), StoreError> {
        let key = seq_key(seq);
        (&self.inner.outbox)
            .transaction(|t| {
                if t.get(key)?.is_some() {
                    t.insert(&key[..], bytes)?;
                }
                Ok(())
            })
            .map_err(|e: TransactionError<()>| StoreError::Storage(format!("outbox update: {e:?}")))
    }

    /// Moves outbox entry `seq` to the dead letters, atomically.
    pub fn dead_letter(&self, letter: &DeadLetter) -> Result<(), StoreError> {
        let bytes = letter.encode()?;
        let key = seq_key(letter.seq);
        (&self.inner.outbox, &self.inner.dead)
            .transaction(|(outbox, dead)| {
                outbox.remove(&key[..])?;
                dead.insert(&key[..], bytes.as_slice())?;
                Ok(())
            })
            .map_err(|e: TransactionError<()>| StoreError::Storage(format!("dead letter: {e:?}")))?;
        self.make_durable()
    }

    /// Every dead letter, in sequence order, each decoded or with the error it gives.
    pub fn dead_letters(&self) -> Result<Vec<(u64, Result<DeadLetter, CodecError>)>, StoreError> {
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

    /// Commits a batch of write sets in ONE transaction, starting outbox numbering at `next_seq`.
    /// Each write set is checked inside the transaction (inbox duplicate, aggregate version);
    /// one that fails its check is skipped without aborting the others. Returns what became of
    /// each and the next free sequence number. Not durable until `make_durable`.
    pub fn commit(&self, batch: &[&WriteSet], next_seq: u64, fault: Option<InjectedAbort>) -> Result<(Vec<Applied>, u64), StoreError> {
        // Trees 0..3 are the node's; each write set's service trees are added once (by name), so
        // two write sets of one service see each other's inserts inside the transaction.
        let mut trees: Vec<Tree> = vec![self.inner.outbox.clone(), self.inner.meta.clone(), self.inner.dead.clone()];
        let mut index_of = |t: &Tree| -> usize {
            let name = t.name();
            match trees.iter().position(|x| x.name() == name) {
                Some(i) => i,
                None => {
                    trees.push(t.clone());
                    trees.len() - 1
                }
            }
        };
        let ix: Vec<Option<[usize; 3]>> = batch
            .iter()
            .map(|ws| ws.service.as_ref().map(|s| [index_of(&s.state), index_of(&s.inbox), index_of(&s.inbox_time)]))
            .collect();
        let result = trees.as_slice().transaction(|tx: &Vec<TransactionalTree>| {
            let mut applied = Vec::with_capacity(batch.len());
            let mut seq = next_seq;
            let mut written = 0usize;
            for (ws, at) in batch.iter().zip(&ix) {
                let [state_t, inbox_t, time_t] = match at {
                    Some(at) => *at,
                    None if ws.inbox.is_none() && ws.state.is_none() => [0, 0, 0],
                    None => return abort(StoreError::Storage("write set without service trees".into())),
                };
                if let Some(inb) = &ws.inbox {
                    if let Some(prev) = tx[inbox_t].get(inb.id.as_bytes())? {
                        applied.push(Applied::Duplicate(prev.to_vec()));
                        continue;
                    }
                }
                if let Some(st) = &ws.state {
                    let stored = match tx[state_t].get(&st.key)? {
                        None => Some(0),
                        Some(b) => codec::peek(RecordKind::Aggregate, &b).ok().map(|h| h.version),
                    };
                    if stored != Some(st.expected_version) {
                        applied.push(Applied::Conflict(stored));
                        continue;
                    }
                }
                if let Some(inb) = &ws.inbox {
                    tx[inbox_t].insert(&inb.id.as_bytes()[..], inb.record.as_slice())?;
                    let mut tkey = [0u8; 24];
                    tkey[..8].copy_from_slice(&inb.recorded_at_ms.to_be_bytes());
                    tkey[8..].copy_from_slice(inb.id.as_bytes());
                    tx[time_t].insert(&tkey[..], &[][..])?;
                }
                if let Some(st) = &ws.state {
                    tx[state_t].insert(st.key.as_slice(), st.record.as_slice())?;
                }
                let first = seq;
                for entry in &ws.outbox {
                    tx[0].insert(&seq_key(seq)[..], entry.as_slice())?;
                    seq += 1;
                }
                for dl in &ws.dead_letter_removals {
                    tx[2].remove(&seq_key(*dl)[..])?;
                }
                applied.push(Applied::Written { first_seq: first, count: seq - first });
                written += 1;
                if let Some(f) = fault {
                    if written == f.after_written {
                        return abort(StoreError::Injected(format!("abort after {written} write sets")));
                    }
                }
            }
            if seq != next_seq {
                tx[1].insert(META_NEXT_SEQ, &seq_key(seq)[..])?;
            }
            Ok((applied, seq))
        });
        match result {
            Ok(r) => Ok(r),
            Err(TransactionError::Abort(e)) => Err(e),
            Err(TransactionError::Storage(e)) => Err(e.into()),
        }
    }

    /// Makes every committed write durable, as the durability setting says.
    pub fn make_durable(&self) -> Result<(), StoreError> {
        match self.inner.durability {
            Durability::None => Ok(()),
            Durability::Flush => self.flush(),
            Durability::Fsync => {
                self.flush()?;
                match &self.inner.db_file {
                    Some(f) => f.sync_all().map_err(|e| StoreError::Storage(format!("fsync: {e}"))),
                    None => Err(StoreError::Storage("fsync requested but the db file is not open".into())),
                }
            }
        }
    }

    /// Flushes sled's buffers to the file (sync_file_range: survives a process crash).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.inner.db.flush()?;
        Ok(())
    }

    /// Bytes the database takes on disk.
    pub fn size_on_disk(&self) -> u64 {
        self.inner.db.size_on_disk().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests;
