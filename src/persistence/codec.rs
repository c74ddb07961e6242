//! The one codec for every byte we store or send: serde + bincode 2 inside a small checked frame.
//!
//! Frame (17-byte header, then the bincode body):
//!
//! | bytes  | field                                              |
//! |--------|----------------------------------------------------|
//! | 0      | magic `0xBA`                                       |
//! | 1      | record kind (`RecordKind`)                         |
//! | 2      | frame format (1)                                   |
//! | 3..5   | schema version of the body, u16 big-endian         |
//! | 5..13  | aggregate version (0 when none), u64 big-endian    |
//! | 13..17 | CRC-32 of bytes 0..13 and the body, little-endian  |
//!
//! The version sits at a fixed place so the committer can check it without decoding the body.
//! Every record is checked before it is written (size) and after it is read (magic, kind,
//! format, checksum, size, no trailing bytes): corrupt bytes become a `CodecError`, never a
//! panic and never a silently wrong value. This module must never touch sled.

use serde::{de::DeserializeOwned, Serialize};

use crate::limits::RECORD_BYTES_MAX;

const MAGIC: u8 = 0xBA;
const FRAME_FORMAT: u8 = 1;
/// Bytes before the body.
pub const HEADER_LEN: usize = 17;

/// What a stored record is; a record read from the wrong tree is refused, not misread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RecordKind {
    /// An aggregate's state.
    Aggregate = 1,
    /// An outbox entry (an envelope on its way to one subscriber).
    OutboxEntry = 2,
    /// An outbox entry that failed too often.
    DeadLetter = 3,
    /// An inbox record (a message id that took effect, and the answer given).
    Inbox = 4,
    /// Node bookkeeping.
    Meta = 5,
    /// An envelope on its own (the cluster wire).
    Envelope = 6,
    /// A frame between nodes' gateways (hello, heartbeat).
    ClusterFrame = 7,
}

impl RecordKind {
    fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            1 => Self::Aggregate,
            2 => Self::OutboxEntry,
            3 => Self::DeadLetter,
            4 => Self::Inbox,
            5 => Self::Meta,
            6 => Self::Envelope,
            7 => Self::ClusterFrame,
            _ => return None,
        })
    }
}

/// Why bytes could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The record would be larger than its limit.
    #[error("{what} is {len} bytes, more than the {max} allowed")]
    TooLarge {
        /// What was encoded.
        what: &'static str,
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The bytes are shorter than a header, or do not start with our magic.
    #[error("not a bazaar record ({0})")]
    NotARecord(&'static str),
    /// A record of another kind was found where this kind was expected.
    #[error("expected a {expected:?} record, found kind {found}")]
    WrongKind {
        /// What the reader wanted.
        expected: RecordKind,
        /// The kind byte found.
        found: u8,
    },
    /// The frame format is newer than this program understands.
    #[error("unsupported frame format {0}")]
    UnsupportedFormat(u8),
    /// The checksum does not match: the bytes were damaged.
    #[error("checksum mismatch: the record is corrupt")]
    Checksum,
    /// A schema version this program has no decoder (or upcaster) for.
    #[error("unknown schema version {version} of {what}")]
    UnknownSchema {
        /// What was decoded.
        what: String,
        /// Its schema version.
        version: u16,
    },
    /// An envelope names a topic this program does not know.
    #[error("unknown topic {0:?}")]
    UnknownTopic(String),
    /// The body does not decode as the expected type.
    #[error("undecodable {what}: {reason}")]
    Malformed {
        /// What was decoded.
        what: &'static str,
        /// bincode's reason.
        reason: String,
    },
    /// The value could not be encoded (a serde error).
    #[error("cannot encode {what}: {reason}")]
    Encode {
        /// What was encoded.
        what: &'static str,
        /// Why.
        reason: String,
    },
}

/// The header fields of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// What the record is.
    pub kind: RecordKind,
    /// Schema version of the body.
    pub schema: u16,
    /// Aggregate version (0 when the record is not an aggregate).
    pub version: u64,
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<RECORD_BYTES_MAX>()
}

/// Encodes a value as a plain bincode body (no frame), refusing more than `max` bytes.
pub fn to_body<T: Serialize>(what: &'static str, value: &T, max: usize) -> Result<Vec<u8>, CodecError> {
    let bytes = bincode::serde::encode_to_vec(value, config())
        .map_err(|e| CodecError::Encode { what, reason: e.to_string() })?;
    if bytes.len() > max {
        return Err(CodecError::TooLarge { what, len: bytes.len(), max });
    }
    Ok(bytes)
}

/// Decodes a plain bincode body, refusing trailing bytes.
pub fn from_body<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, CodecError> {
    if bytes.len() > RECORD_BYTES_MAX {
        return Err(CodecError::TooLarge { what, len: bytes.len(), max: RECORD_BYTES_MAX });
    }
    let (value, read) = bincode::serde::decode_from_slice::<T, _>(bytes, config())
        .map_err(|e| CodecError::Malformed { what, reason: e.to_string() })?;
    if read != bytes.len() {
        return Err(CodecError::Malformed { what, reason: format!("{} trailing bytes", bytes.len() - read) });
    }
    Ok(value)
}

/// Frames an already encoded body.
pub fn frame(header: Header, body: &[u8], max: usize) -> Result<Vec<u8>, CodecError> {
    let len = HEADER_LEN + body.len();
    if len > max {
        return Err(CodecError::TooLarge { what: kind_name(header.kind), len, max });
    }
    let mut out = Vec::with_capacity(len);
    out.push(MAGIC);
    out.push(header.kind as u8);
    out.push(FRAME_FORMAT);
    out.extend_from_slice(&header.schema.to_be_bytes());
    out.extend_from_slice(&header.version.to_be_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&out[..13]);
    crc.update(body);
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(body);
    Ok(out)
}

/// Encodes and frames a value in one step.
pub fn encode<T: Serialize>(header: Header, value: &T, max: usize) -> Result<Vec<u8>, CodecError> {
    let body = to_body(kind_name(header.kind), value, max.saturating_sub(HEADER_LEN))?;
    frame(header, &body, max)
}

/// Checks a frame (magic, kind, format, checksum) and returns its header and body.
pub fn open(expected: RecordKind, bytes: &[u8]) -> Result<(Header, &[u8]), CodecError> {
    let header = peek(expected, bytes)?;
    if bytes.len() > RECORD_BYTES_MAX {
        return Err(CodecError::TooLarge { what: kind_name(expected), len: bytes.len(), max: RECORD_BYTES_MAX });
    }
    let (head, rest) = bytes.split_at(HEADER_LEN);
    let stored = u32::from_le_bytes([head[13], head[14], head[15], head[16]]);
    let mut crc = crc32fast::Hasher::new();
    crc.update(&head[..13]);
    crc.update(rest);
    if crc.finalize() != stored {
        return Err(CodecError::Checksum);
    }
    Ok((header, rest))
}

/// Reads the header fields without checking the checksum (the committer's cheap version check;
/// anything that uses the body goes through `open`).
pub fn peek(expected: RecordKind, bytes: &[u8]) -> Result<Header, CodecError> {
    if bytes.len() < HEADER_LEN {
        return Err(CodecError::NotARecord("shorter than a header"));
    }
    if bytes[0] != MAGIC {
        return Err(CodecError::NotARecord("bad magic byte"));
    }
    let kind = RecordKind::from_byte(bytes[1]).ok_or(CodecError::WrongKind { expected, found: bytes[1] })?;
    if kind != expected {
        return Err(CodecError::WrongKind { expected, found: bytes[1] });
    }
    if bytes[2] != FRAME_FORMAT {
        return Err(CodecError::UnsupportedFormat(bytes[2]));
    }
    let schema = u16::from_be_bytes([bytes[3], bytes[4]]);
    let mut v = [0u8; 8];
    v.copy_from_slice(&bytes[5..13]);
    Ok(Header { kind, schema, version: u64::from_be_bytes(v) })
}

/// Opens a frame and decodes its body as `T`, requiring one schema version.
pub fn decode<T: DeserializeOwned>(expected: RecordKind, schema: u16, bytes: &[u8]) -> Result<(Header, T), CodecError> {
    let (header, body) = open(expected, bytes)?;
    if header.schema != schema {
        return Err(CodecError::UnknownSchema { what: kind_name(expected).to_owned(), version: header.schema });
    }
    Ok((header, from_body(kind_name(expected), body)?))
}

fn kind_name(kind: RecordKind) -> &'static str {
    match kind {
        RecordKind::Aggregate => "aggregate",
        RecordKind::OutboxEntry => "outbox entry",
        RecordKind::DeadLetter => "dead letter",
        RecordKind::Inbox => "inbox record",
        RecordKind::Meta => "meta record",
        RecordKind::Envelope => "envelope",
        RecordKind::ClusterFrame => "cluster frame",
    }
}

#[cfg(test)]
mod tests;
