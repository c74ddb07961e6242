//! Errors of the engine as callers see them (not business rejections: those are reply values).

use serde::{Deserialize, Serialize};

/// Why a message could not be handled. Every variant is an operating condition, not a verdict
/// on the request: the request may be retried (with the same message id, so it takes effect at
/// most once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum EngineError {
    /// The entity's mailbox (or its supervisor's) is full: slow down (HTTP 429/503).
    #[error("{service} entity {key} is overloaded; retry later")]
    Overloaded {
        /// The service.
        service: String,
        /// The entity.
        key: String,
    },
    /// The entity could not be started or keeps stopping (HTTP 503).
    #[error("{0}")]
    Unavailable(String),
    /// The write could not be committed; nothing of it may be relied on (HTTP 503).
    #[error("commit failed: {0}")]
    CommitFailed(String),
    /// The key's owner (another node) cannot be reached now: down, cut off, silent, or running
    /// another configuration (HTTP 503 with Retry-After; never handled here instead).
    #[error("partition {partition} is owned by node {node}, which is unreachable: {why}")]
    OwnerUnreachable {
        /// The partition.
        partition: u32,
        /// Its owner.
        node: String,
        /// Why it cannot be reached.
        why: String,
    },
    /// The key is not valid for the service (HTTP 400/422).
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// The change would produce a record over its size limit (HTTP 413/422).
    #[error("too large: {0}")]
    TooLarge(String),
    /// The node is shutting down (HTTP 503).
    #[error("the node is shutting down")]
    ShuttingDown,
}
