//! Where a key lives: key → partition (stable hash) → owning node (rendezvous hashing over the
//! configured nodes). Every send to an entity asks the router first, so that remote delivery
//! (ractor_cluster) only adds a branch here. One node owning every partition is the embedded
//! default.

pub mod config;
pub mod delivery;
pub mod gateway;
pub mod remote;
mod router;
pub mod transport;
pub mod wire;

pub use router::{partition_of, Route, Router};
