//! The operator's and developer's tools compiled into the `bazaar` binary: the deterministic
//! simulation (`bazaar sim`), the load generators (`bazaar loadgen`), the demo catalogue
//! (`serve --demo`) and the offline check of a data directory (`bazaar verify`). Tools sit on
//! top: they may use the application layer and everything below it; nothing below uses them.

pub mod cluster_status;
pub mod demo;
pub mod loadgen;
pub mod sim;
pub mod verify;
