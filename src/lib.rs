//! bazaar: an online book store built as an actor system on a clustered runtime.
//!
//! See ARCHITECTURE.md for the code map. In short: `domain` holds the pure rules,
//! `persistence` the sled database with its commit pipeline, outbox relay and inbox, `actors`
//! one actor per aggregate, `supervisors` their activation, passivation and restart, and
//! `cluster` the routing of keys to partitions to nodes.

#![warn(missing_docs, unreachable_pub)]
#![forbid(unsafe_code)]

pub mod actors;
pub mod app;
pub mod clock;
pub mod cluster;
pub mod domain;
pub mod http;
pub mod limits;
pub mod persistence;
pub mod supervisors;
pub mod tools;
