//! Calls between nodes: what a node's services offer its peers (an [`Endpoint`] per service,
//! found by `{service}/{aggregate}`), why a call can be refused ([`Refusal`], on the wire), and
//! why a caller got no answer ([`CallError`]). The transport carries the calls
//! (`Transport::call`, and `super::delivery` for lanes of events); the gateway hands them to
//! the endpoints (`super::gateway`).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::domain::MessageId;
use crate::persistence::{DeliveryError, Envelope, Subscriber};

/// Why the owner did not carry out a command (sent back in an `Answer`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Refusal {
    /// The receiver does not own the key under the configuration it runs (it never forwards).
    #[error("node {node} does not own partition {partition}")]
    NotOwner {
        /// The key's partition.
        partition: u32,
        /// The node that received the command.
        node: String,
    },
    /// The sender routes by another configuration.
    #[error("the sender runs configuration {theirs}, this node {ours}")]
    OtherConfiguration {
        /// The sender's digest.
        theirs: String,
        /// The receiver's.
        ours: String,
    },
    /// The entity is overloaded: slow down.
    #[error("{service} entity {key} is overloaded; retry later")]
    Overloaded {
        /// The service.
        service: String,
        /// The entity.
        key: String,
    },
    /// The entity could not answer now (starting, stopping, commit failed, node stopping).
    #[error("{0}")]
    Unavailable(String),
    /// The key or the command is not valid for the service.
    #[error("{0}")]
    Invalid(String),
    /// The change would be over a size limit.
    #[error("too large: {0}")]
    TooLarge(String),
    /// The frame, the command or the reply did not decode or encode.
    #[error("bad frame: {0}")]
    BadFrame(String),
    /// The receiver has no such service (or is still starting).
    #[error("no service {0} on this node")]
    NoService(String),
}

/// Why a call to a peer got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The peer is not reachable now, or runs another configuration: nothing was sent.
    #[error("node {node} is unreachable: {why}")]
    Down {
        /// The peer.
        node: String,
        /// Why.
        why: String,
    },
    /// Sent, but no answer in time: it may or may not have taken effect.
    #[error("node {node} did not answer within {ms} ms")]
    Timeout {
        /// The peer.
        node: String,
        /// The limit.
        ms: u64,
    },
    /// The frame would be over the cap: nothing was sent.
    #[error("{0}")]
    TooLarge(String),
    /// The answer did not decode, or is not an answer to the question.
    #[error("node {node} answered with a bad frame: {why}")]
    BadAnswer {
        /// The peer.
        node: String,
        /// Why.
        why: String,
    },
}

/// What one service of this node offers its peers: commands for the entities it owns, and
/// lanes of events for them. Implemented by every entity service.
pub trait Endpoint: Send + Sync + 'static {
    /// Carries out an encoded command for `key`, which this node must own; answers the
    /// encoded reply.
    fn command(&self, key: String, id: MessageId, body: Vec<u8>) -> BoxFuture<'static, Result<Vec<u8>, Refusal>>;

    /// Delivers one lane's events to entities this node owns; resolves with each outcome once
    /// the effects are durable.
    fn deliver(&self, envelopes: Vec<Envelope>) -> BoxFuture<'static, Vec<Result<(), DeliveryError>>>;
}

/// This node's endpoints by `{service}/{aggregate}`, set once its services run (until then the
/// gateway refuses calls with `Refusal::NoService`).
pub type Endpoints = Arc<OnceLock<HashMap<String, Arc<dyn Endpoint>>>>;

/// A subscriber that is not an entity service (a read model), offered to peers: it takes
/// deliveries and no commands.
pub struct SubscriberEndpoint(pub Arc<dyn Subscriber>);

impl Endpoint for SubscriberEndpoint {
    fn command(&self, _key: String, _id: MessageId, _body: Vec<u8>) -> BoxFuture<'static, Result<Vec<u8>, Refusal>> {
        Box::pin(async { Err(Refusal::Invalid("this subscriber takes no commands".into())) })
    }

    fn deliver(&self, envelopes: Vec<Envelope>) -> BoxFuture<'static, Vec<Result<(), DeliveryError>>> {
        self.0.deliver_lane(envelopes)
    }
}
