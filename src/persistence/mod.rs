//! Everything that touches the disk: the sled database and its trees, the commit log, the codec
//! and upcasters, the commit pipeline, the outbox relay and the inbox.
//!
//! All sled calls live in `store`; other modules of the crate see `Store`, `WriteSet` and
//! opaque `ServiceTrees` only. Nothing here knows about actors or HTTP.

pub mod codec;
pub mod committer;
pub mod envelope;
pub mod events;
pub mod records;
pub mod relay;
mod states;
pub mod store;
pub mod wal;

#[cfg(test)]
pub(crate) mod fixtures;

pub use codec::CodecError;
pub use committer::{Callback, CommitError, CommitResult, CommitStats, Committer};
pub use envelope::Envelope;
pub use events::Topic;
pub use records::{DeadLetter, InboxRecord, OutboxEntry};
pub use relay::{DeliveryError, Relay, RelayConfig, Subscriber, Subscriptions};
pub use states::{page, Collected, Row, StateSource, Union};
pub use store::{blocking, Applied, Durability, ServiceTrees, Store, StoreError, StoreOptions, VersionCache, WriteSet};
