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
//! knows about actors. No sled transaction is ever run (see `wal` for why): a batch is made
//! atomic and durable by its commit-log record.
//!
//! Outbox entries are *staged*: a new entry is kept in memory, not written to the `outbox` tree,
//! because most are delivered and deleted within milliseconds, long before the next checkpoint
//! (the commit log holds them durably meanwhile). A checkpoint writes the entries still staged
//! into the tree before it flushes, so sled alone holds every undelivered entry of the batches
//! it covers; replay at start-up writes the tree directly. Every reader sees staged and stored
//! entries as one outbox.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sled::Tree;

use super::codec::{self, CodecError, RecordKind};
use super::records::{DeadLetter, InboxRecord};
use super::wal::{Wal, WalError};
use crate::domain::MessageId;
use crate::limits::{INBOX_GENERATION_MS, SLED_CACHE_BYTES, VERSION_CACHE_LEN_MAX, WAL_SEGMENT_BYTES};

/// When an acknowledged write is safe (every batch is appended to the commit log first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Acknowledge once an `fdatasync` of the commit log covers the batch: survives kill -9 and
    /// a power cut (the default). `fsync` names the same (it was stronger when sled's own flush
    /// made writes durable; accepted so existing configurations stay valid).
    #[serde(alias = "fsync")]
    Flush,
    /// Acknowledge once the log record is handed to the OS, without waiting for the disk:
    /// survives the process being killed, not a machine crash. Tests and benches only.
    None,
}

impl Durability {
    /// Parses `flush` (or its alias `fsync`) or `none`.
    pub fn parse(s: &str) -> Option<Durability> {
        match s {
            "flush" | "fsync" => Some(Durability::Flush),
            "none" => Some(Durability::None),
            _ => None,
        }
    }

    /// The setting's name.
    pub fn name(self) -> &'static str {
        match self {
            Durability::Flush => "flush",
            Durability::None => "none",
        }
    }
}

/// Why the store failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Another process (a running node) holds the data directory.
    #[error("the data directory {0} is in use by a running node (stop it first)")]
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

impl From<WalError> for StoreError {
    fn from(e: WalError) -> Self {
        StoreError::Storage(e.to_string())
    }
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
    /// by the committer so they cost no batch of their own).
    pub outbox_removals: Vec<u64>,
    /// Aggregates this write set creates (sibling aggregates of the same service, e.g. the order
    /// a customer gate opens). Each must not exist yet; if one does, the whole write set is a
    /// conflict.
    pub creates: Vec<(ServiceTrees, StateWrite)>,
    /// Timers to set in the service's timer tree (key from `timer_key`, value).
    pub timer_sets: Vec<(Vec<u8>, Vec<u8>)>,
    /// Timers to remove from the service's timer tree.
    pub timer_clears: Vec<Vec<u8>>,
    /// Outbox entries to rewrite in place (their attempt count), each only if still there.
    pub outbox_updates: Vec<(u64, Vec<u8>)>,
    /// Dead letters to store (their outbox entries go in `outbox_removals`).
    pub dead_letters: Vec<(u64, Vec<u8>)>,
}

/// Runs a short blocking store call on a blocking thread, so it never stalls the runtime.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| StoreError::Storage(format!("blocking task failed: {e}")))?
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
    /// Abort the batch after this many of its write sets were applied (or after the last
    /// one, if the batch is shorter): the batch always fails.
    pub after_written: usize,
}

const META_NEXT_SEQ: &[u8] = b"outbox.next_seq";
/// The last log record whose writes sled holds durably (see `Store::checkpoint`).
const META_CHECKPOINT: &[u8] = b"wal.checkpoint";

/// A dead letter as read: decoded, or the error its bytes give.
pub type DeadLetterRead = Result<DeadLetter, CodecError>;

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
    wal: Mutex<Wal>,
    /// The last log record whose writes are all applied to sled.
    applied_seq: AtomicU64,
    /// The checkpoint mark written by the last checkpoint: durable once the next one flushed.
    pending_mark: Mutex<u64>,
    /// A batch failed half-applied: nothing more is written until the node restarts and
    /// replays the log.
    broken: AtomicBool,
    /// The log payload being built, reused from batch to batch (see `Wal`'s buffer).
    payload: Mutex<Vec<u8>>,
    /// Outbox entries applied but not written to the `outbox` tree (see the module's doc).
    /// The committer changes it and `applied_seq` under this lock, so a checkpoint that holds
    /// it sees exactly the entries of the batches up to `applied_seq`.
    staged: Mutex<BTreeMap<u64, Vec<u8>>>,
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
        // sled is made durable by our checkpoints only (the commit log carries the batches in
        // between), so its own periodic flusher is off.
        let config = sled::Config::new().path(dir).cache_capacity(opts.cache_bytes).flush_every_ms(None);
        // sled's lock on the directory is released when the last of its threads lets go of a
        // closed database, a moment after the close: retry briefly before calling it held.
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(500);
        let db = loop {
            match config.open().map_err(StoreError::from) {
                Err(StoreError::Locked(_)) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                // Say which directory, not the OS error's wording.
                Err(StoreError::Locked(_)) => return Err(StoreError::Locked(dir.display().to_string())),
                other => break other?,
            }
        };
        let db_file = match opts.durability {
            Durability::Flush => Some(
                File::open(dir.join("db"))
                    .map_err(|e| StoreError::Storage(format!("cannot open db file for fsync: {e}")))?,
            ),
            Durability::None => None,
        };
        let meta = db.open_tree("meta")?;
        let checkpoint = match meta.get(META_CHECKPOINT)? {
            Some(v) => {
                seq_of(&v).ok_or_else(|| corrupt("meta", CodecError::NotARecord("wal.checkpoint is not 8 bytes")))?
            }
            None => 0,
        };
        let (wal, replay) = Wal::open(&dir.join("wal"), WAL_SEGMENT_BYTES, checkpoint)?;
        let replayed = replay.len();
        for record in &replay {
            apply_logged(&db, record.seq, &record.payload)?;
        }
        let applied = wal.next_seq() - 1;
        let inner = Inner {
            meta,
            outbox: db.open_tree("outbox")?,
            dead: db.open_tree("dead_letters")?,
            db,
            dir: dir.to_owned(),
            services: Mutex::new(HashMap::new()),
            inboxes: Mutex::new(HashMap::new()),
            generation_ms: opts.inbox_generation_ms.max(1),
            db_file,
            durability: opts.durability,
            wal: Mutex::new(wal),
            applied_seq: AtomicU64::new(applied),
            pending_mark: Mutex::new(checkpoint),
            broken: AtomicBool::new(false),
            payload: Mutex::new(Vec::new()),
            staged: Mutex::new(BTreeMap::new()),
        };
        let store = Store { inner: Arc::new(inner) };
        if replayed > 0 {
            tracing::info!(records = replayed, after = checkpoint, "replayed the commit log");
            // Two checkpoints: the first makes the replayed writes durable in sled, the second
            // makes its mark durable, so the replayed records can go.
            store.checkpoint()?;
            store.checkpoint()?;
        }
        Ok(store)
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
            let (h, body) = codec::open(RecordKind::Aggregate, &v)
                .map_err(|e| corrupt(&format!("{tree_name} (key {:?})", String::from_utf8_lossy(&k)), e))?;
            Ok((k.to_vec(), h, body.to_vec()))
        })
    }

    /// Every stored aggregate of a service's trees whose key starts with `prefix`.
    pub fn scan_aggregates_prefix(
        &self,
        trees: &ServiceTrees,
        prefix: &[u8],
    ) -> impl Iterator<Item = Result<(Vec<u8>, codec::Header, Vec<u8>), StoreError>> {
        let tree_name = trees.name.to_string();
        trees.state.scan_prefix(prefix).map(move |item| {
            let (k, v) = item?;
            let (h, body) = codec::open(RecordKind::Aggregate, &v)
                .map_err(|e| corrupt(&format!("{tree_name} (key {:?})", String::from_utf8_lossy(&k)), e))?;
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

    fn staged(&self) -> Result<std::sync::MutexGuard<'_, BTreeMap<u64, Vec<u8>>>, StoreError> {
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
        encode_ops(&mut payload, &decided.trees, &decided.ops)?;
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
    fn apply_live(&self, decided: &Decided<'_>, fresh_from: u64, record: u64) -> Result<(), StoreError> {
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
    fn decide<'b>(
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
        Ok(Decided { trees: trees.trees, applied, ops, next_seq: seq })
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

    /// Makes everything durable and trims the commit log (two checkpoints: see `checkpoint`).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.make_durable()?;
        self.checkpoint()?;
        self.checkpoint()
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
    /// (tests use it to prove that a refused request changed nothing) — except the checkpoint
    /// mark, which the checkpointer moves on its own.
    pub fn digest(&self) -> Result<u128, StoreError> {
        let meta_name = self.inner.meta.name();
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        let mut names = self.inner.db.tree_names();
        names.sort();
        let outbox_name = self.inner.outbox.name();
        for name in names {
            // The outbox is hashed as its readers see it, staged entries included.
            let pairs: Vec<(Vec<u8>, Vec<u8>)> = if name == outbox_name {
                self.outbox_scan(0, u64::MAX, usize::MAX)?.into_iter().map(|(s, v)| (seq_key(s).to_vec(), v)).collect()
            } else {
                let mut out = Vec::new();
                for kv in self.inner.db.open_tree(&name)?.iter() {
                    let (k, v) = kv?;
                    if name == meta_name && k == META_CHECKPOINT {
                        continue;
                    }
                    out.push((k.to_vec(), v.to_vec()));
                }
                out
            };
            if pairs.is_empty() {
                continue;
            }
            h.update(&(name.len() as u64).to_le_bytes());
            h.update(&name);
            for (k, v) in pairs {
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

/// The aggregate version stored under `key` (`Some(0)`: none stored; `None`: unreadable).
fn stored_version(tree: &Tree, key: &[u8]) -> Result<Option<u64>, StoreError> {
    Ok(match tree.get(key)? {
        None => Some(0),
        Some(b) => codec::peek(RecordKind::Aggregate, &b).ok().map(|h| h.version),
    })
}

/// One write of a batch: `value` into `key` of tree `tree`, or a removal.
struct Op<'b> {
    tree: usize,
    key: Cow<'b, [u8]>,
    value: Option<Cow<'b, [u8]>>,
}

impl<'b> Op<'b> {
    fn put(tree: usize, key: Cow<'b, [u8]>, value: &'b [u8]) -> Self {
        Op { tree, key, value: Some(Cow::Borrowed(value)) }
    }

    fn remove(tree: usize, key: Cow<'b, [u8]>) -> Self {
        Op { tree, key, value: None }
    }
}

/// A decided batch: the trees it writes, what became of each write set, the writes in order.
struct Decided<'b> {
    trees: Vec<Tree>,
    applied: Vec<Applied>,
    ops: Vec<Op<'b>>,
    next_seq: u64,
}

/// The trees one batch writes, by index (the node's own three first).
struct TreeSet {
    trees: Vec<Tree>,
    names: Vec<sled::IVec>,
}

impl TreeSet {
    const OUTBOX: usize = 0;
    const META: usize = 1;
    const DEAD: usize = 2;

    fn new(inner: &Inner) -> Self {
        let trees = vec![inner.outbox.clone(), inner.meta.clone(), inner.dead.clone()];
        let names = trees.iter().map(Tree::name).collect();
        TreeSet { trees, names }
    }

    fn index(&mut self, t: &Tree) -> usize {
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

const OPS_FORMAT: u8 = 1;
const OP_PUT: u8 = 1;
const OP_REMOVE: u8 = 2;

fn push_len(out: &mut Vec<u8>, len: usize, what: &'static str) -> Result<(), StoreError> {
    let n = u32::try_from(len)
        .map_err(|_| StoreError::Codec(CodecError::TooLarge { what, len, max: u32::MAX as usize }))?;
    out.extend_from_slice(&n.to_le_bytes());
    Ok(())
}

/// A batch's writes as one log payload, into `out` (cleared first): format, the tree names, then
/// each write (kind, tree, key, value).
fn encode_ops(out: &mut Vec<u8>, trees: &[Tree], ops: &[Op<'_>]) -> Result<(), StoreError> {
    let size: usize = ops.iter().map(|o| 13 + o.key.len() + o.value.as_ref().map_or(0, |v| v.len())).sum();
    out.clear();
    out.reserve(8 + trees.len() * 32 + size);
    out.push(OPS_FORMAT);
    push_len(out, trees.len(), "tree count")?;
    for t in trees {
        let name = t.name();
        push_len(out, name.len(), "tree name")?;
        out.extend_from_slice(&name);
    }
    for op in ops {
        out.push(if op.value.is_some() { OP_PUT } else { OP_REMOVE });
        push_len(out, op.tree, "tree index")?;
        push_len(out, op.key.len(), "key")?;
        out.extend_from_slice(&op.key);
        if let Some(v) = &op.value {
            push_len(out, v.len(), "value")?;
            out.extend_from_slice(v);
        }
    }
    Ok(())
}

/// Reads a log payload back (every length checked: a bad payload is an error, not a panic).
fn decode_ops(payload: &[u8]) -> Result<(Vec<Vec<u8>>, Vec<Op<'_>>), &'static str> {
    fn take<'p>(p: &mut &'p [u8], n: usize) -> Result<&'p [u8], &'static str> {
        if p.len() < n {
            return Err("cut short");
        }
        let (a, b) = p.split_at(n);
        *p = b;
        Ok(a)
    }
    fn len(p: &mut &[u8]) -> Result<usize, &'static str> {
        let b: [u8; 4] = take(p, 4)?.try_into().map_err(|_| "cut short")?;
        usize::try_from(u32::from_le_bytes(b)).map_err(|_| "length out of range")
    }
    let mut p = payload;
    if take(&mut p, 1)? != [OPS_FORMAT] {
        return Err("unknown format");
    }
    let n = len(&mut p)?;
    let mut names = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        let l = len(&mut p)?;
        names.push(take(&mut p, l)?.to_vec());
    }
    let mut ops = Vec::new();
    while !p.is_empty() {
        let kind = take(&mut p, 1)?[0];
        let tree = len(&mut p)?;
        if tree >= names.len() {
            return Err("tree index out of range");
        }
        let kl = len(&mut p)?;
        let key = Cow::Borrowed(take(&mut p, kl)?);
        let value = match kind {
            OP_PUT => {
                let vl = len(&mut p)?;
                Some(Cow::Borrowed(take(&mut p, vl)?))
            }
            OP_REMOVE => None,
            _ => return Err("unknown write kind"),
        };
        ops.push(Op { tree, key, value });
    }
    Ok((names, ops))
}

/// Applies a batch's writes to sled, in order.
fn apply_ops<'o, 'b: 'o>(trees: &[Tree], ops: impl IntoIterator<Item = &'o Op<'b>>) -> Result<(), StoreError> {
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
fn apply_logged(db: &sled::Db, seq: u64, payload: &[u8]) -> Result<(), StoreError> {
    let (names, ops) = decode_ops(payload)
        .map_err(|e| StoreError::Storage(format!("commit log record {seq} does not decode: {e}")))?;
    let trees = names.iter().map(|n| db.open_tree(n)).collect::<Result<Vec<_>, _>>()?;
    apply_ops(&trees, &ops)
}

#[cfg(test)]
mod tests;
