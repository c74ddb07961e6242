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
pub mod catalog_view;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod demo;
pub mod domain;
pub mod http;
pub mod invariants;
pub mod limits;
pub mod loadgen;
pub mod node;
pub mod passwords;
pub mod persistence;
pub mod shop;
pub mod sim;
pub mod supervisors;
pub mod verify;
