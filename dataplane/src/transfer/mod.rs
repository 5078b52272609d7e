//! The transfer protocol of the data port: shard side and client side.

pub mod client;
pub mod server;
