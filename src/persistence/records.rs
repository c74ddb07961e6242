//! The records the engine itself stores: outbox entries, dead letters and inbox records.

use serde::{Deserialize, Serialize};

use super::codec::{self, CodecError, Header, RecordKind};
use super::envelope::{Envelope, EnvelopeWire};
use crate::limits::{ENVELOPE_BYTES_MAX, ID_BYTES_MAX, REASON_BYTES_MAX, RECORD_BYTES_MAX};

/// Largest outbox entry: an envelope plus its delivery bookkeeping.
const OUTBOX_ENTRY_BYTES_MAX: usize = ENVELOPE_BYTES_MAX + 4 * 1024;

fn clip(mut s: String) -> String {
    if s.len() > REASON_BYTES_MAX {
        let mut end = REASON_BYTES_MAX;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// One envelope waiting in the outbox for one subscriber (an event with two subscribers is two
/// entries, so each is deleted on its own acknowledgement).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// The subscribing service.
    pub destination: String,
    /// Failed delivery attempts so far.
    pub attempts: u32,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// The event.
    pub envelope: Envelope,
}

#[derive(Serialize, Deserialize)]
struct OutboxEntryWire {
    destination: String,
    attempts: u32,
    last_error: Option<String>,
    envelope: EnvelopeWire,
}

impl OutboxEntry {
    /// Encodes the entry, checking every limit.
    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        if self.destination.is_empty() || self.destination.len() > ID_BYTES_MAX {
            return Err(CodecError::Encode { what: "outbox entry", reason: "bad destination".into() });
        }
        let wire = OutboxEntryWire {
            destination: self.destination.clone(),
            attempts: self.attempts,
            last_error: self.last_error.clone().map(clip),
            envelope: self.envelope.to_wire()?,
        };
        let header = Header { kind: RecordKind::OutboxEntry, schema: 1, version: self.envelope.aggregate_version };
        codec::encode(header, &wire, OUTBOX_ENTRY_BYTES_MAX)
    }

    /// Decodes and checks an entry.
    pub fn decode(bytes: &[u8]) -> Result<OutboxEntry, CodecError> {
        let (_, w) = codec::decode::<OutboxEntryWire>(RecordKind::OutboxEntry, 1, bytes)?;
        Ok(OutboxEntry {
            destination: w.destination,
            attempts: w.attempts,
            last_error: w.last_error,
            envelope: Envelope::from_wire(w.envelope)?,
        })
    }
}

/// An outbox entry the relay gave up on, kept with the reason until an operator replays it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Its outbox sequence number when it died.
    pub seq: u64,
    /// The subscriber it was for, when the entry could be read.
    pub destination: Option<String>,
    /// Delivery attempts made.
    pub attempts: u32,
    /// Why it was given up.
    pub reason: String,
    /// When, ms since the Unix epoch.
    pub dead_at_ms: u64,
    /// The outbox entry's bytes exactly as they were (even when they do not decode).
    pub entry: Vec<u8>,
}

impl DeadLetter {
    /// Encodes the dead letter.
    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        let mut copy = self.clone();
        copy.reason = clip(copy.reason);
        let header = Header { kind: RecordKind::DeadLetter, schema: 1, version: 0 };
        codec::encode(header, &copy, RECORD_BYTES_MAX)
    }

    /// Decodes a dead letter.
    pub fn decode(bytes: &[u8]) -> Result<DeadLetter, CodecError> {
        codec::decode::<DeadLetter>(RecordKind::DeadLetter, 1, bytes).map(|(_, d)| d)
    }
}

/// What the inbox keeps of a message that took effect: when, and the answer given, so that a
/// repeat of the message gets the same answer and nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxRecord {
    /// When it took effect, ms since the Unix epoch (this node's clock).
    pub recorded_at_ms: u64,
    /// The encoded reply, for commands.
    pub reply: Option<Vec<u8>>,
}

impl InboxRecord {
    /// Encodes the record.
    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        let header = Header { kind: RecordKind::Inbox, schema: 1, version: 0 };
        codec::encode(header, self, RECORD_BYTES_MAX)
    }

    /// Decodes a record.
    pub fn decode(bytes: &[u8]) -> Result<InboxRecord, CodecError> {
        codec::decode::<InboxRecord>(RecordKind::Inbox, 1, bytes).map(|(_, r)| r)
    }
}
