//! Service supervisors: entity activation, passivation and restart (`supervisor`), the handle
//! callers reach a service's entities through (`service`), and the loop that fires a service's
//! durable timers — saga deadlines among them (`timers`).

mod remote;
pub mod service;
pub mod supervisor;
mod timers;

pub use remote::endpoint_name;
pub use service::{Changes, Service};
pub use supervisor::{EntityConfig, ServiceStats};
