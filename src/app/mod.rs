//! The application layer: a node wired together (`node`: store, committer, relay, services),
//! the store's operations as callers use them (`shop`), the invariant checker both the online
//! monitor and the simulation run (`invariants`), password hashing on its bounded pool
//! (`passwords`), the node's metrics (`metrics`), the secrets it keeps (`secrets`) and the
//! notification sender's SMTP/SMS I/O (`sender`), and the accounts created offline that a node
//! announces to the cluster once it runs (`announce`). It sits
//! above the supervisors and below the HTTP front and the tools.

pub mod announce;
pub mod invariants;
pub mod metrics;
pub mod node;
pub mod passwords;
pub mod secrets;
pub mod sender;
pub mod shop;
