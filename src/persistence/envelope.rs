//! The envelope every event travels in, from an aggregate's write set through the outbox and
//! the relay to a subscriber's inbox (and, later, across nodes).
//!
//! It carries what hard cases 6 and 7 ask for: the aggregate's id, version and status and the
//! node it came from, plus the message id the inboxes deduplicate on and the schema version
//! the payload was written with (hard case 8). Decoding checks every field; an envelope that
//! names an unknown topic or is too large is a typed error.

use serde::{Deserialize, Serialize};

use super::codec::{self, CodecError, Header, RecordKind};
use super::events::Topic;
use crate::domain::{MessageId, NodeId};
use crate::limits::{ENVELOPE_BYTES_MAX, ID_BYTES_MAX, REASON_BYTES_MAX};

/// Longest aggregate status text in bytes.
const STATUS_BYTES_MAX: usize = 64;

/// One event on its way to its subscribers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// Unique per event; inboxes drop a second delivery of it.
    pub message_id: MessageId,
    /// What kind of event the payload is.
    pub topic: Topic,
    /// The key subscribers route on (the entity that must handle it); delivery is ordered per key.
    pub routing_key: String,
    /// The aggregate that emitted it.
    pub aggregate_id: String,
    /// The aggregate's version after the change (hard case 6).
    pub aggregate_version: u64,
    /// The aggregate's status after the change (hard case 6).
    pub aggregate_status: String,
    /// The node that emitted it (hard case 7).
    pub origin_node: NodeId,
    /// The schema version of the payload (hard case 8).
    pub schema_version: u16,
    /// When it was emitted, ms since the Unix epoch (the emitting node's clock).
    pub timestamp_ms: u64,
    /// The message whose handling emitted it.
    pub causation_id: Option<MessageId>,
    /// The HTTP request it stems from, for tracing.
    pub request_id: Option<String>,
    /// The event, encoded by `events` at `schema_version`.
    pub payload: Vec<u8>,
}

/// The stored and wire form of an envelope (schema 1). The topic is kept as text so that an
/// envelope from a newer node still decodes far enough to say which topic is unknown.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct EnvelopeWire {
    message_id: MessageId,
    topic: String,
    routing_key: String,
    aggregate_id: String,
    aggregate_version: u64,
    aggregate_status: String,
    origin_node: NodeId,
    schema_version: u16,
    timestamp_ms: u64,
    causation_id: Option<MessageId>,
    request_id: Option<String>,
    payload: Vec<u8>,
}

fn too_long(what: &'static str, len: usize, max: usize) -> Result<(), CodecError> {
    if len > max {
        Err(CodecError::TooLarge { what, len, max })
    } else {
        Ok(())
    }
}

impl Envelope {
    /// Checks the limits of every field (before writing and after reading).
    pub fn check(&self) -> Result<(), CodecError> {
        too_long("routing key", self.routing_key.len(), ID_BYTES_MAX)?;
        too_long("aggregate id", self.aggregate_id.len(), ID_BYTES_MAX)?;
        too_long("aggregate status", self.aggregate_status.len(), STATUS_BYTES_MAX)?;
        too_long("request id", self.request_id.as_ref().map_or(0, String::len), REASON_BYTES_MAX)?;
        too_long("event payload", self.payload.len(), ENVELOPE_BYTES_MAX)?;
        Ok(())
    }

    pub(crate) fn to_wire(&self) -> Result<EnvelopeWire, CodecError> {
        self.check()?;
        Ok(EnvelopeWire {
            message_id: self.message_id,
            topic: self.topic.name().to_owned(),
            routing_key: self.routing_key.clone(),
            aggregate_id: self.aggregate_id.clone(),
            aggregate_version: self.aggregate_version,
            aggregate_status: self.aggregate_status.clone(),
            origin_node: self.origin_node.clone(),
            schema_version: self.schema_version,
            timestamp_ms: self.timestamp_ms,
            causation_id: self.causation_id,
            request_id: self.request_id.clone(),
            payload: self.payload.clone(),
        })
    }

    pub(crate) fn from_wire(w: EnvelopeWire) -> Result<Envelope, CodecError> {
        let topic = Topic::parse(&w.topic).ok_or(CodecError::UnknownTopic(w.topic))?;
        let env = Envelope {
            message_id: w.message_id,
            topic,
            routing_key: w.routing_key,
            aggregate_id: w.aggregate_id,
            aggregate_version: w.aggregate_version,
            aggregate_status: w.aggregate_status,
            origin_node: w.origin_node,
            schema_version: w.schema_version,
            timestamp_ms: w.timestamp_ms,
            causation_id: w.causation_id,
            request_id: w.request_id,
            payload: w.payload,
        };
        env.check()?;
        Ok(env)
    }

    /// Encodes the envelope on its own (the form that crosses nodes).
    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        let header = Header { kind: RecordKind::Envelope, schema: 1, version: self.aggregate_version };
        codec::encode(header, &self.to_wire()?, ENVELOPE_BYTES_MAX + 4096)
    }

    /// Decodes and checks an envelope encoded by `encode`.
    pub fn decode(bytes: &[u8]) -> Result<Envelope, CodecError> {
        let (_, wire) = codec::decode::<EnvelopeWire>(RecordKind::Envelope, 1, bytes)?;
        Envelope::from_wire(wire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope() -> Envelope {
        Envelope {
            message_id: MessageId::from_bytes([7; 16]),
            topic: Topic::StockItem,
            routing_key: "sku-1".into(),
            aggregate_id: "sku-1".into(),
            aggregate_version: 3,
            aggregate_status: "IN_STOCK".into(),
            origin_node: NodeId::parse("n1").unwrap(),
            schema_version: 2,
            timestamp_ms: 5,
            causation_id: Some(MessageId::from_bytes([1; 16])),
            request_id: None,
            payload: vec![1, 2, 3],
        }
    }

    #[test]
    fn an_envelope_round_trips() {
        let env = envelope();
        assert_eq!(Envelope::decode(&env.encode().unwrap()).unwrap(), env);
    }

    #[test]
    fn an_unknown_topic_is_a_typed_error() {
        let mut wire = envelope().to_wire().unwrap();
        wire.topic = "pricing.changed".into();
        let header = Header { kind: RecordKind::Envelope, schema: 1, version: 3 };
        let bytes = codec::encode(header, &wire, ENVELOPE_BYTES_MAX + 4096).unwrap();
        assert_eq!(Envelope::decode(&bytes), Err(CodecError::UnknownTopic("pricing.changed".into())));
    }

    #[test]
    fn oversized_envelopes_are_refused_on_encode_and_decode() {
        let mut env = envelope();
        env.payload = vec![0; ENVELOPE_BYTES_MAX + 1];
        assert!(matches!(env.encode(), Err(CodecError::TooLarge { what: "event payload", .. })));
        env.payload = vec![0; 3];
        env.routing_key = "k".repeat(ID_BYTES_MAX + 1);
        assert!(matches!(env.encode(), Err(CodecError::TooLarge { what: "routing key", .. })));
        // A peer that skipped the checks cannot make us accept it either.
        let mut wire = envelope().to_wire().unwrap();
        wire.payload = vec![0; ENVELOPE_BYTES_MAX + 1];
        let header = Header { kind: RecordKind::Envelope, schema: 1, version: 3 };
        let bytes = codec::encode(header, &wire, 2 * ENVELOPE_BYTES_MAX).unwrap();
        assert!(matches!(Envelope::decode(&bytes), Err(CodecError::TooLarge { .. })));
    }
}
