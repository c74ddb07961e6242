//! What nodes' gateways say to each other, in bazaar's own checked codec (a framed record:
//! kind, schema version, CRC), carried as bytes inside ractor_cluster messages and decoded by the
//! receiver, so a damaged or foreign frame is a typed error, never a panic. Frames are small and
//! bounded by `CLUSTER_FRAME_BYTES_MAX`, checked before sending.

use serde::{Deserialize, Serialize};

use super::remote::Refusal;
use crate::domain::MessageId;
use crate::limits::CLUSTER_FRAME_BYTES_MAX;
use crate::persistence::codec::{self, CodecError, Header, RecordKind};
use crate::persistence::{DeliveryError, Row};

/// The schema of `Frame` (bumped with an upcaster when it changes).
const FRAME_SCHEMA: u16 = 1;

/// One frame between gateways.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Frame {
    /// Who is speaking and which configuration it runs (a heartbeat, and its answer).
    Hello {
        /// The node's name.
        node: String,
        /// Its configuration digest (`ClusterConfig::digest`).
        digest: String,
    },
    /// A node's own figures, for `bazaar cluster status` (asked with a `Hello`).
    Status {
        /// The node's name.
        node: String,
        /// Its configuration digest.
        digest: String,
        /// Outbox entries not yet delivered.
        outbox_depth: u64,
        /// Dead letters kept.
        dead_letters: u64,
        /// Its peers as it sees them: (name, reachable, the digest they run).
        peers: Vec<(String, bool, Option<String>)>,
    },
    /// A command for an entity the receiver owns (answered with an `Answer`).
    Command {
        /// The configuration digest the sender routes by (the receiver refuses another).
        digest: String,
        /// The service's `{service}/{aggregate}`.
        to: String,
        /// The entity's key.
        key: String,
        /// The command's message id: a retry carries the same, so the inbox applies it once.
        id: MessageId,
        /// The command, encoded by the service (decoded by the receiver's service).
        body: Vec<u8>,
    },
    /// The answer to a `Command`: the service's encoded reply, or why there is none.
    Answer(Result<Vec<u8>, Refusal>),
    /// Events of one lane for entities the receiver owns (answered with `Delivered`).
    Deliver {
        /// The configuration digest the sender routes by.
        digest: String,
        /// The subscribing service's `{service}/{aggregate}`.
        to: String,
        /// The envelopes, each in its own checked encoding (`Envelope::encode`).
        envelopes: Vec<Vec<u8>>,
    },
    /// Each delivered envelope's outcome, in order, once the receiver's commits are durable.
    Delivered(Vec<Result<(), DeliveryError>>),
    /// A page of the receiver's stored aggregates of one kind (answered with `Rows`): a read
    /// of the whole cluster gathers every node's.
    States {
        /// The configuration digest the sender routes by.
        digest: String,
        /// The service.
        service: String,
        /// The aggregate.
        aggregate: String,
        /// Only keys starting with this (`""`: all).
        prefix: String,
        /// Continue after this key (`None`: from the first).
        after: Option<String>,
    },
    /// A page of stored aggregates (key, schema, body), and the key to continue after.
    Rows {
        /// The aggregates.
        rows: Vec<Row>,
        /// Where the next page starts (`None`: this was the last).
        next: Option<String>,
    },
}

/// Encodes a frame (refused past `CLUSTER_FRAME_BYTES_MAX`).
pub fn encode(frame: &Frame) -> Result<Vec<u8>, CodecError> {
    codec::encode(
        Header { kind: RecordKind::ClusterFrame, schema: FRAME_SCHEMA, version: 0 },
        frame,
        CLUSTER_FRAME_BYTES_MAX,
    )
}

/// Decodes a frame, checking its kind, schema and CRC.
pub fn decode(bytes: &[u8]) -> Result<Frame, CodecError> {
    codec::decode(RecordKind::ClusterFrame, FRAME_SCHEMA, bytes).map(|(_, f)| f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_damage_is_an_error() {
        let f = Frame::Hello { node: "node-1".into(), digest: "5a57".into() };
        let bytes = encode(&f).unwrap();
        assert_eq!(decode(&bytes).unwrap(), f);
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            assert!(decode(&bad).is_err(), "a flipped byte at {i} is caught");
        }
        assert!(decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(decode(b"").is_err());
    }

    #[test]
    fn a_frame_over_the_cap_is_refused_before_sending() {
        let f =
            Frame::Deliver { digest: "d".into(), to: "x/y".into(), envelopes: vec![vec![7; CLUSTER_FRAME_BYTES_MAX]] };
        assert!(matches!(encode(&f), Err(CodecError::TooLarge { .. })));
    }
}
