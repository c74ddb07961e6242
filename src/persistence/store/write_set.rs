//! What one entity's decision writes (a `WriteSet`: inbox record, state, created siblings,
//! outbox entries, timers, dead letters) and what became of it in its batch (`Applied`).

use super::*;

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
