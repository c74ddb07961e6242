//! The HTTP front, driven with a real client over TCP: in-process nodes on port 0, and the
//! real binary for kill -9, SIGTERM and the command line.

mod abuse;
mod binary;
mod client;
mod cluster;
mod input;
mod scenarios;
mod security;
