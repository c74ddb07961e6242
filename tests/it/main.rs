//! The integration crate: the real engine on temporary data directories, and the real binary
//! for the crash tests.

mod crash;
mod engine;
mod http;
mod lifecycle;
mod notify;
mod relay;
mod saga;
mod saga_faults;
mod support;
mod tidy;
