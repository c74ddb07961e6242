//! The commit log: what makes a batch durable.
//!
//! Every batch the committer decides is first appended here as ONE record (the exact key
//! writes and removals it makes, across every tree), then applied to sled with plain writes.
//! A batch is acknowledged once its record is on disk (`fdatasync`); sled itself is made
//! durable only now and then, by a checkpoint. After a crash, `Store::open` replays every
//! record after the last checkpoint, in order. Replaying writes "key := value" and "remove
//! key" is idempotent, so whatever part of those records sled had already kept, the result is
//! exactly the state after the last logged batch.
//!
//! Why not a sled transaction and a sled flush per batch: sled runs every transaction under one
//! process-wide write lock, and its flush holds the read side of that lock while it waits for
//! the disk, so no batch can be applied and no entity loaded while the previous batch is being
//! made durable. Without transactions that lock is never taken; the disk wait overlaps the next
//! batch, and an `fdatasync` of an appended log costs a fraction of a sled flush.
//!
//! Layout: `<data dir>/wal/<first record number, 20 digits>.log` segments. A record is a
//! 24-byte header — magic, payload length, record number, CRC-32 of number and payload, and a
//! reserved word — then the payload. Records are numbered 1, 2, … without gaps across segments.
//!
//! Invariant: a record is acknowledged only after it and every record before it are on disk,
//! so a torn or missing record can only be the last ones of the last segment (those were never
//! acknowledged): reading stops there and the segment is cut back to its last whole record. A
//! bad record anywhere else is corruption and refuses to open, rather than silently dropping
//! acknowledged batches.
//! Invariant: a segment is deleted only once a durable checkpoint covers all its records.
//! Boundary: only `store` uses this module; it knows nothing of sled or of what the payloads
//! mean.

pub(crate) mod ops;

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const MAGIC: u32 = 0x4C57_5A42; // "BZWL" little-endian
/// Bytes of a record header.
pub const HEADER_LEN: usize = 24;

/// Why the log could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WalError {
    /// The file system failed.
    #[error("commit log {path}: {reason}")]
    Io {
        /// The file or directory.
        path: String,
        /// What failed.
        reason: String,
    },
    /// A record that is not at the end of the log does not check out.
    #[error("commit log {path} is corrupt at byte {offset}: {reason} (acknowledged batches follow it; refusing to drop them)")]
    Corrupt {
        /// The segment.
        path: String,
        /// Where.
        offset: u64,
        /// What was wrong.
        reason: String,
    },
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> WalError {
    WalError::Io { path: path.display().to_string(), reason: e.to_string() }
}

/// A record read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalRecord {
    /// Its number.
    pub seq: u64,
    /// What was logged.
    pub payload: Vec<u8>,
}

struct Segment {
    first: u64,
    path: PathBuf,
}

/// The open log: appends go to the last segment.
pub struct Wal {
    dir: PathBuf,
    segment_bytes: u64,
    /// Closed segments (first record number, path), oldest first, and the open one last.
    segments: Vec<Segment>,
    file: Arc<File>,
    len: u64,
    next_seq: u64,
    /// The record being written, reused: a batch's record is tens of KiB, and allocating one
    /// per batch made the allocator fault fresh pages in all the time.
    buf: Vec<u8>,
}

fn segment_name(first: u64) -> String {
    format!("{first:020}.log")
}

fn crc_of(seq: u64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&seq.to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// Encodes one record (header and payload).
#[cfg(test)]
fn encode_record(seq: u64, payload: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    encode_record_into(&mut out, seq, payload)?;
    Ok(out)
}

/// Encodes one record (header and payload) into `out`, which it clears first.
fn encode_record_into(out: &mut Vec<u8>, seq: u64, payload: &[u8]) -> Result<(), String> {
    let len = u32::try_from(payload.len()).map_err(|_| format!("a record of {} bytes is too large", payload.len()))?;
    out.clear();
    out.reserve(HEADER_LEN + payload.len());
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&crc_of(seq, payload).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// What reading one segment found.
struct Scan {
    records: Vec<WalRecord>,
    /// Bytes of whole, valid records from the start.
    good_len: u64,
    /// The number after the last valid record.
    next: u64,
    /// Why reading stopped before the end of the file, if it did.
    stopped: Option<String>,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Reads the records of one segment, expecting numbers from `expect`, keeping those after
/// `after`.
fn scan(bytes: &[u8], mut expect: u64, after: u64) -> Scan {
    let mut at = 0usize;
    let mut records = Vec::new();
    let stopped = loop {
        if at == bytes.len() {
            break None;
        }
        let (Some(magic), Some(len), Some(seq), Some(crc)) =
            (u32_at(bytes, at), u32_at(bytes, at + 4), u64_at(bytes, at + 8), u32_at(bytes, at + 16))
        else {
            break Some("a record header is cut short".to_owned());
        };
        if magic != MAGIC {
            break Some("no record starts here".to_owned());
        }
        let start = at + HEADER_LEN;
        let Some(payload) = usize::try_from(len).ok().and_then(|l| bytes.get(start..start.checked_add(l)?)) else {
            break Some(format!("record {seq} is cut short"));
        };
        if crc_of(seq, payload) != crc {
            break Some(format!("record {seq} fails its checksum"));
        }
        if seq != expect {
            break Some(format!("record {seq} where {expect} was expected"));
        }
        if seq > after {
            records.push(WalRecord { seq, payload: payload.to_vec() });
        }
        expect += 1;
        at = start + payload.len();
    };
    Scan { records, good_len: at as u64, next: expect, stopped }
}

impl Wal {
    /// Opens the log in `dir` (created if missing) and returns it with every record numbered
    /// after `checkpoint`, in order, to replay. A torn end of the last segment (a batch that was
    /// never acknowledged) is cut off; a bad record anywhere else is `WalError::Corrupt`.
    pub fn open(dir: &Path, segment_bytes: u64, checkpoint: u64) -> Result<(Wal, Vec<WalRecord>), WalError> {
        std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        let mut found: Vec<Segment> = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
            let entry = entry.map_err(|e| io_err(dir, e))?;
            let name = entry.file_name();
            let Some(first) = name.to_str().and_then(|n| n.strip_suffix(".log")).and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            found.push(Segment { first, path: entry.path() });
        }
        found.sort_by_key(|s| s.first);
        let mut replay = Vec::new();
        let mut next_seq = found.first().map_or(checkpoint + 1, |s| s.first);
        if next_seq > checkpoint + 1 {
            let path = found.first().map_or_else(|| dir.to_owned(), |s| s.path.clone());
            return Err(WalError::Corrupt {
                path: path.display().to_string(),
                offset: 0,
                reason: format!("the log starts at record {next_seq}, but records after {checkpoint} are needed"),
            });
        }
        let mut tail_len = 0u64;
        let count = found.len();
        for (i, seg) in found.iter().enumerate() {
            if seg.first != next_seq {
                return Err(WalError::Corrupt {
                    path: seg.path.display().to_string(),
                    offset: 0,
                    reason: format!("segment starts at record {} where {next_seq} was expected", seg.first),
                });
            }
            let mut bytes = Vec::new();
            File::open(&seg.path).and_then(|mut f| f.read_to_end(&mut bytes)).map_err(|e| io_err(&seg.path, e))?;
            let s = scan(&bytes, next_seq, checkpoint);
            next_seq = s.next;
            replay.extend(s.records);
            if let Some(reason) = s.stopped {
                if i + 1 != count {
                    return Err(WalError::Corrupt { path: seg.path.display().to_string(), offset: s.good_len, reason });
                }
                tracing::warn!(segment = %seg.path.display(), at = s.good_len, %reason, "commit log ends in a torn record (never acknowledged); cutting it off");
                let f = OpenOptions::new().write(true).open(&seg.path).map_err(|e| io_err(&seg.path, e))?;
                f.set_len(s.good_len).and_then(|()| f.sync_all()).map_err(|e| io_err(&seg.path, e))?;
            }
            tail_len = s.good_len;
        }
        let next_seq = next_seq.max(checkpoint + 1);
        let file = match found.last() {
            Some(last) => OpenOptions::new().append(true).open(&last.path).map_err(|e| io_err(&last.path, e))?,
            None => {
                let path = dir.join(segment_name(next_seq));
                let f = OpenOptions::new().create(true).append(true).open(&path).map_err(|e| io_err(&path, e))?;
                File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io_err(dir, e))?;
                found.push(Segment { first: next_seq, path });
                f
            }
        };
        let wal = Wal {
            dir: dir.to_owned(),
            segment_bytes: segment_bytes.max(1),
            segments: found,
            file: Arc::new(file),
            len: tail_len,
            next_seq,
            buf: Vec::new(),
        };
        Ok((wal, replay))
    }

    /// The number the next record gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Appends one record (not yet on disk: see `sync_handle`); returns its number. Past the
    /// segment size the segment is made durable and closed, and the next record opens a new one.
    pub fn append(&mut self, payload: &[u8]) -> Result<u64, WalError> {
        if self.len >= self.segment_bytes {
            let path = self.current_path();
            self.file.sync_data().map_err(|e| io_err(&path, e))?;
            self.start_segment()?;
        }
        let seq = self.next_seq;
        let mut bytes = std::mem::take(&mut self.buf);
        let encoded = encode_record_into(&mut bytes, seq, payload);
        let written = encoded.map_err(|e| io_err(&self.current_path(), e)).and_then(|()| {
            let mut f: &File = &self.file;
            f.write_all(&bytes).map_err(|e| io_err(&self.current_path(), e))
        });
        let n = bytes.len() as u64;
        self.buf = bytes;
        if let Err(e) = written {
            // Whatever part of the record reached the file is cut off again, so the next
            // record does not follow garbage (reading would stop at it).
            let _ = self.file.set_len(self.len);
            return Err(e);
        }
        self.len += n;
        self.next_seq += 1;
        Ok(seq)
    }

    /// The open segment's file: `sync_data` on it makes every record appended so far durable
    /// (earlier segments were made durable when they were closed).
    pub fn sync_handle(&self) -> Arc<File> {
        self.file.clone()
    }

    /// Deletes every closed segment whose records are all numbered `through` or lower.
    pub fn delete_through(&mut self, through: u64) -> Result<usize, WalError> {
        let mut deleted = 0;
        while self.segments.len() > 1 {
            // A closed segment's records end where the next segment begins.
            let last_in_first = self.segments[1].first - 1;
            if last_in_first > through {
                break;
            }
            let seg = self.segments.remove(0);
            std::fs::remove_file(&seg.path).map_err(|e| io_err(&seg.path, e))?;
            deleted += 1;
        }
        // The open segment goes too once all of it is covered: a new one takes its place.
        if self.segments.len() == 1 && self.next_seq - 1 <= through && self.len > 0 {
            let old = self.segments.remove(0);
            self.start_segment()?;
            std::fs::remove_file(&old.path).map_err(|e| io_err(&old.path, e))?;
            deleted += 1;
        }
        Ok(deleted)
    }

    /// Bytes in the open segment.
    pub fn open_segment_len(&self) -> u64 {
        self.len
    }

    /// Segments on disk.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    fn current_path(&self) -> PathBuf {
        self.segments.last().map_or_else(|| self.dir.clone(), |s| s.path.clone())
    }

    fn start_segment(&mut self) -> Result<(), WalError> {
        let path = self.dir.join(segment_name(self.next_seq));
        let f = OpenOptions::new().create(true).append(true).open(&path).map_err(|e| io_err(&path, e))?;
        // The new file's name must survive a crash too.
        File::open(&self.dir).and_then(|d| d.sync_all()).map_err(|e| io_err(&self.dir, e))?;
        self.segments.push(Segment { first: self.next_seq, path });
        self.file = Arc::new(f);
        self.len = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
