//! The node's one sled database and every call into sled.
//!
//! Trees: per aggregate `{service}/{aggregate}` (states by key); per service the inbox, split in
//! generation trees `{service}/inbox/{generation}` (message id → `InboxRecord`), one per
//! `inbox_generation_ms` of recording time; per node `outbox` (sequence number → `OutboxEntry`),
//! `dead_letters` and `meta`.
//!
//! Why generations: a duplicate check looks in every live generation (two, normally), a new id
//! goes into its own, and pruning drops whole generations older than the retention window — no
//! per-id deletes, no time index, one insert less per write set.
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
use crate::limits::{INBOX_GENERATION_MS, SLED_CACHE_BYTES, VERSION_CACHE_LEN_MAX};

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
    /// Width of one inbox generation, ms (ids are kept at least this long past the retention
    /// cut-off's generation; see `prune_inbox`).
    pub inbox_generation_ms: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self { durability: Durability::Flush, cache_bytes: SLED_CACHE_BYTES, inbox_generation_ms: INBOX_GENERATION_MS }
    }
}

/// A service's inbox: its live generation trees by generation number.
#[derive(Default)]
struct Inbox {
    gens: std::sync::RwLock<std::collections::BTreeMap<u64, Tree>>,
}

impl Inbox {
    fn live(&self) -> Vec<Tree> {
        let g = self.gens.read().unwrap_or_else(|p| p.into_inner());
        g.values().rev().cloned().collect()
    }
}

/// The trees of one aggregate and its service's inbox. Cheap to clone; opaque outside this module.
#[derive(Clone)]
pub struct ServiceTrees {
    name: Arc<str>,
    service: Arc<str>,
    aggregate: Arc<str>,
    state: Tree,
    inbox: Arc<Inbox>,
    timers: Tree,
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
    /// When, ms (chooses the inbox generation).
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
    /// Delivered outbox entries to delete (the relay's acknowledgements, folded into a batch
    /// by the committer so they cost no transaction of their own).
    pub outbox_removals: Vec<u64>,
    /// Aggregates this write set creates (sibling aggregates of the same service, e.g. the order
    /// a customer gate opens). Each must not exist yet; if one does, the whole write set is a
    /// conflict.
    pub creates: Vec<(ServiceTrees, StateWrite)>,
    /// Timers to set in the service's timer tree (key from `timer_key`, value).
    pub timer_sets: Vec<(Vec<u8>, Vec<u8>)>,
    /// Timers to remove from the service's timer tree.
    pub timer_clears: Vec<Vec<u8>>,
}

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

fn parse_timer_key(raw: &[u8], aggregate: &str) -> Option<DueTimer> {
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
    /// Abort the transaction after this many write sets were written into it (or after the last
    /// one, if the batch is shorter): the batch always fails.
    pub after_written: usize,
}

const META_NEXT_SEQ: &[u8] = b"outbox.next_seq";

/// A dead letter as read: decoded, or the error its bytes give.
pub type DeadLetterRead = Result<DeadLetter, CodecError>;

/// Where one write set goes inside a batch's transaction: its state tree, the inbox generation
/// it writes to, every live generation it must not be a duplicate in, and its timer tree
/// (tree indices).
type Placement = (usize, usize, Arc<[usize]>, usize);

/// The committer's record of the aggregate versions it wrote (it is their only writer, so each
/// entry is exact). Bounded: past `VERSION_CACHE_LEN_MAX` entries it starts over, and a miss
/// reads sled.
#[derive(Debug, Default)]
pub struct VersionCache {
    map: HashMap<Vec<u8>, u64>,
}

impl VersionCache {
    fn key(tree: &str, key: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(tree.len() + 1 + key.len());
        k.extend_from_slice(tree.as_bytes());
        k.push(0);
        k.extend_from_slice(key);
        k
    }

    fn get(&self, key: &[u8]) -> Option<u64> {
        self.map.get(key).copied()
    }

    fn record(&mut self, key: Vec<u8>, version: u64) {
        if self.map.len() >= VERSION_CACHE_LEN_MAX && !self.map.contains_key(&key) {
            self.map.clear();
        }
        self.map.insert(key, version);
    }
}

struct Inner {
    db: sled::Db,
    dir: PathBuf,
    meta: Tree,
    outbox: Tree,
    dead: Tree,
    services: Mutex<HashMap<String, ServiceTrees>>,
    inboxes: Mutex<HashMap<String, Arc<Inbox>>>,
    generation_ms: u64,
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
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Storage(format!("cannot create {}: {e}", dir.display())))?;
        // With `none` sled's own flusher is the only one, so keep it; otherwise every commit
        // flushes and a background flush would only contend for sled's lock.
        let flush_every = match opts.durability {
            Durability::None => Some(1_000),
            Durability::Flush | Durability::Fsync => None,
        };
        let config = sled::Config::new().path(dir).cache_capacity(opts.cache_bytes).flush_every_ms(flush_every);
        // sled's lock on the directory is released when the last of its threads lets go of a
        // closed database, a moment after the close: retry briefly before calling it held.
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(500);
        let db = loop {
            match config.open().map_err(StoreError::from) {
                Err(StoreError::Locked(_)) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                other => break other?,
            }
        };
        let db_file = match opts.durability {
            Durability::Fsync => Some(
                File::open(dir.join("db"))
                    .map_err(|e| StoreError::Storage(format!("cannot open db file for fsync: {e}")))?,
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
            inboxes: Mutex::new(HashMap::new()),
            generation_ms: opts.inbox_generation_ms.max(1),
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
        let mut map = self.inner.services.lock().map_err(|_| StoreError::Storage("service map poisoned".into()))?;
        if let Some(t) = map.get(&name) {
            return Ok(t.clone());
        }
        let inbox = self.inbox_of(service)?;
        let trees = ServiceTrees {
            name: Arc::from(name.as_str()),
            service: Arc::from(service),
            aggregate: Arc::from(aggregate),
            state: self.inner.db.open_tree(&name)?,
            inbox,
            timers: self.inner.db.open_tree(format!("{service}/timers"))?,
        };
        map.insert(name, trees.clone());
        Ok(trees)
    }

    /// A service's inbox, with the generations already on disk.
    fn inbox_of(&self, service: &str) -> Result<Arc<Inbox>, StoreError> {
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
    fn generation_tree(&self, trees: &ServiceTrees, at_ms: u64) -> Result<Tree, StoreError> {
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

    /// The stored aggregate record under `key`, checked (magic, kind, checksum) but not decoded.
    pub fn load_aggregate(
        &self,
        trees: &ServiceTrees,
        key: &[u8],
    ) -> Result<Option<(codec::Header, Vec<u8>)>, StoreError> {
        let Some(bytes) = trees.state.get(key)? else {
            return Ok(None);
        };
        let (header, body) = codec::open(RecordKind::Aggregate, &bytes).map_err(|e| corrupt(&trees.name, e))?;
        Ok(Some((header, body.to_vec())))
    }

    /// Every stored aggregate of a service, in key order, as (key, checked header, body) or the
    /// error that record gives.
    pub fn scan_aggregates(
        &self,
        trees: &ServiceTrees,
    ) -> impl Iterator<Item = Result<(Vec<u8>, codec::Header, Vec<u8>), StoreError>> {
        let tree_name = trees.name.to_string();
        trees.state.iter().map(move |item| {
            let (k, v) = item?;
            let (h, body) = codec::open(RecordKind::Aggregate, &v).map_err(|e| corrupt(&tree_name, e))?;
            Ok((k.to_vec(), h, body.to_vec()))
        })
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
        for g in &dead {
            // Out of the live set first, so no commit checks a tree being dropped.
            trees.inbox.gens.write().unwrap_or_else(|p| p.into_inner()).remove(g);
            self.inner.db.drop_tree(format!("{}/inbox/{g:020}", trees.service))?;
        }
        Ok(dead.len())
    }

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
        self.inner
            .outbox
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

    /// Commits a batch of write sets in ONE transaction, starting outbox numbering at `next_seq`.
    /// Each write set is checked inside the transaction (inbox duplicate, aggregate version);
    /// one that fails its check is skipped without aborting the others. Returns what became of
    /// each and the next free sequence number. Not durable until `make_durable`.
    ///
    /// `versions` is the caller's cache of stored aggregate versions: the committer is the only
    /// writer of aggregates, so what it recorded is exact, and a hit saves a read inside the
    /// transaction (which holds sled's process-wide lock).
    pub fn commit(
        &self,
        batch: &[&WriteSet],
        next_seq: u64,
        fault: Option<InjectedAbort>,
        versions: &mut VersionCache,
    ) -> Result<(Vec<Applied>, u64), StoreError> {
        // Trees 0..3 are the node's; each write set's trees are added once (by name), so two
        // write sets of one service see each other's inserts inside the transaction.
        let mut trees: Vec<Tree> = vec![self.inner.outbox.clone(), self.inner.meta.clone(), self.inner.dead.clone()];
        let mut names: Vec<sled::IVec> = trees.iter().map(Tree::name).collect();
        let mut index_of = |t: &Tree| -> usize {
            let name = t.name();
            match names.iter().position(|x| *x == name) {
                Some(i) => i,
                None => {
                    names.push(name);
                    trees.push(t.clone());
                    trees.len() - 1
                }
            }
        };
        // Per write set: its state tree, the inbox generation it writes to, and every live
        // generation it must not be a duplicate in — resolved once per service and generation.
        let mut resolved: Vec<(Arc<str>, u64, Placement)> = Vec::new();
        let mut ix: Vec<Option<Placement>> = Vec::with_capacity(batch.len());
        for ws in batch {
            let Some(s) = &ws.service else {
                ix.push(None);
                continue;
            };
            let g = ws.inbox.as_ref().map_or(0, |i| i.recorded_at_ms / self.inner.generation_ms);
            let hit = resolved.iter().find(|r| Arc::ptr_eq(&r.0, &s.name) && r.1 == g);
            let entry = match hit {
                Some(r) => r.2.clone(),
                None => {
                    let target = index_of(&self.generation_tree(s, g.saturating_mul(self.inner.generation_ms))?);
                    let checks: Arc<[usize]> = s.inbox.live().iter().map(&mut index_of).collect();
                    let state = index_of(&s.state);
                    let timers = index_of(&s.timers);
                    resolved.push((s.name.clone(), g, (state, target, checks.clone(), timers)));
                    (state, target, checks, timers)
                }
            };
            ix.push(Some(entry));
        }
        // The state trees of the aggregates write sets create.
        let create_ix: Vec<Vec<usize>> =
            batch.iter().map(|ws| ws.creates.iter().map(|(t, _)| index_of(&t.state)).collect()).collect();
        let cache_keys: Vec<Option<Vec<u8>>> = batch
            .iter()
            .map(|ws| match (&ws.service, &ws.state) {
                (Some(s), Some(st)) => Some(VersionCache::key(&s.name, &st.key)),
                _ => None,
            })
            .collect();
        let cache = &*versions;
        let result = trees.as_slice().transaction(|tx: &Vec<TransactionalTree>| {
            let mut applied = Vec::with_capacity(batch.len());
            let mut in_batch: HashMap<&[u8], u64> = HashMap::new();
            let mut seq = next_seq;
            let mut written = 0usize;
            'sets: for (((ws, at), ck), cix) in batch.iter().zip(&ix).zip(&cache_keys).zip(&create_ix) {
                let (state_t, inbox_t, checks, timers_t) = match at {
                    Some((s, i, c, t)) => (*s, *i, &c[..], *t),
                    None if ws.inbox.is_none() && ws.state.is_none() && ws.creates.is_empty() => (0, 0, &[][..], 0),
                    None => return abort(StoreError::Storage("write set without service trees".into())),
                };
                if let Some(inb) = &ws.inbox {
                    for &t in checks {
                        if let Some(prev) = tx[t].get(inb.id.as_bytes())? {
                            applied.push(Applied::Duplicate(prev.to_vec()));
                            continue 'sets;
                        }
                    }
                }
                if let (Some(st), Some(ck)) = (&ws.state, ck) {
                    let known = in_batch.get(ck.as_slice()).copied().or_else(|| cache.get(ck));
                    let stored = match known {
                        Some(v) => Some(v),
                        None => match tx[state_t].get(&st.key)? {
                            None => Some(0),
                            Some(b) => codec::peek(RecordKind::Aggregate, &b).ok().map(|h| h.version),
                        },
                    };
                    if stored != Some(st.expected_version) {
                        applied.push(Applied::Conflict(stored));
                        continue;
                    }
                    in_batch.insert(ck.as_slice(), st.expected_version + 1);
                }
                for ((_, cw), &t) in ws.creates.iter().zip(cix) {
                    if let Some(b) = tx[t].get(&cw.key)? {
                        let stored = codec::peek(RecordKind::Aggregate, &b).ok().map(|h| h.version);
                        applied.push(Applied::Conflict(stored));
                        continue 'sets;
                    }
                }
                if let Some(inb) = &ws.inbox {
                    tx[inbox_t].insert(&inb.id.as_bytes()[..], inb.record.as_slice())?;
                }
                if let Some(st) = &ws.state {
                    tx[state_t].insert(st.key.as_slice(), st.record.as_slice())?;
                }
                for ((_, cw), &t) in ws.creates.iter().zip(cix) {
                    tx[t].insert(cw.key.as_slice(), cw.record.as_slice())?;
                }
                for k in &ws.timer_clears {
                    tx[timers_t].remove(k.as_slice())?;
                }
                for (k, v) in &ws.timer_sets {
                    tx[timers_t].insert(k.as_slice(), v.as_slice())?;
                }
                let first = seq;
                for entry in &ws.outbox {
                    tx[0].insert(&seq_key(seq)[..], entry.as_slice())?;
                    seq += 1;
                }
                for dl in &ws.dead_letter_removals {
                    tx[2].remove(&seq_key(*dl)[..])?;
                }
                for done in &ws.outbox_removals {
                    tx[0].remove(&seq_key(*done)[..])?;
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
            if fault.is_some() {
                // A batch shorter than the requested point fails at its end, after everything.
                return abort(StoreError::Injected(format!("abort after all {written} write sets")));
            }
            Ok((applied, seq))
        });
        let (applied, seq) = match result {
            Ok(r) => r,
            Err(TransactionError::Abort(e)) => return Err(e),
            Err(TransactionError::Storage(e)) => return Err(e.into()),
        };
        for ((ws, a), ck) in batch.iter().zip(&applied).zip(cache_keys) {
            if !matches!(a, Applied::Written { .. }) {
                continue;
            }
            if let (Some(st), Some(ck)) = (&ws.state, ck) {
                versions.record(ck, st.expected_version + 1);
            }
            for (t, cw) in &ws.creates {
                versions.record(VersionCache::key(&t.name, &cw.key), cw.expected_version + 1);
            }
        }
        Ok((applied, seq))
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

    /// Waits (up to `wait`) until this is the last handle to the database, then closes it, so
    /// the directory can be opened again (sled holds a lock on it while any handle lives).
    /// Returns false if other handles remained.
    pub fn close(self, wait: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + wait;
        while Arc::strong_count(&self.inner) > 1 {
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        if let Err(e) = self.flush() {
            tracing::error!(error = %e, "flush at close failed");
        }
        true
    }

    /// A fingerprint of everything stored: every tree's name and every key and value in it
    /// (tests use it to prove that a refused request changed nothing).
    pub fn digest(&self) -> Result<u128, StoreError> {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        let mut names = self.inner.db.tree_names();
        names.sort();
        for name in names {
            let tree = self.inner.db.open_tree(&name)?;
            if tree.is_empty() {
                continue;
            }
            h.update(&(name.len() as u64).to_le_bytes());
            h.update(&name);
            for kv in tree.iter() {
                let (k, v) = kv?;
                h.update(&(k.len() as u64).to_le_bytes());
                h.update(&k);
                h.update(&(v.len() as u64).to_le_bytes());
                h.update(&v);
            }
        }
        Ok(h.digest128())
    }

    /// Bytes the database takes on disk.
    pub fn size_on_disk(&self) -> u64 {
        self.inner.db.size_on_disk().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests;
