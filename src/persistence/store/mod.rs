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
//!
//! By concern: this module opens the database and reads aggregates; `write_set` is what a
//! decision writes; `commit` decides a batch, logs it and applies it (and replays the log at
//! start-up); `outbox` keeps the staged and stored outbox, dead letters and the checkpoint;
//! `inbox` the generation trees; `timers` the durable timers. The encoding of a batch's writes
//! as a log record is `wal::ops`, beside the log.

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

mod commit;
mod inbox;
mod outbox;
mod timers;
mod write_set;

use commit::apply_logged;
pub use commit::VersionCache;
use inbox::Inbox;
pub use outbox::DeadLetterRead;
use outbox::{seq_key, seq_of, META_NEXT_SEQ};
pub use timers::{timer_key, DueTimer};
pub use write_set::{Applied, InboxWrite, InjectedAbort, StateWrite, WriteSet};

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
    /// The commit log failed.
    #[error(transparent)]
    Log(#[from] WalError),
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

/// Runs a short blocking store call on a blocking thread, so it never stalls the runtime.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| StoreError::Storage(format!("blocking task failed: {e}")))?
}

/// The last log record whose writes sled holds durably (see `Store::checkpoint`).
const META_CHECKPOINT: &[u8] = b"wal.checkpoint";

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

    /// Every stored aggregate of a service's trees whose key sorts after `after` (all: `None`),
    /// in key order (a page of a scan that continues where the last one stopped).
    pub fn scan_aggregates_after(
        &self,
        trees: &ServiceTrees,
        after: Option<&[u8]>,
    ) -> impl Iterator<Item = Result<(Vec<u8>, codec::Header, Vec<u8>), StoreError>> {
        use std::ops::Bound;
        let tree_name = trees.name.to_string();
        let from = after.map_or(Bound::Unbounded, |a| Bound::Excluded(a.to_vec()));
        trees.state.range::<Vec<u8>, _>((from, Bound::Unbounded)).map(move |item| {
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

#[cfg(test)]
mod tests;
