//! Service supervisors: entity activation, passivation and restart (saga deadlines join them
//! with the order service).

pub mod service;

pub use service::{EntityConfig, Service, ServiceStats};
