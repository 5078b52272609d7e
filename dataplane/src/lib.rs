//! The mooncake-rs data plane: glommio shards that own segment memory and move bytes.
//!
//! A shard is one glommio executor on one thread (pinned to a core when the node has room
//! for it). It owns its segments, listens on its own data port, and serves the transfer
//! protocol of `mc_schema::transfer`: WRITE frames are received straight into segment
//! memory and checked against the writer's CRC32C before the ack; READ frames are answered
//! straight from segment memory. Every range is checked against the segment first.
//!
//! Shards never call the master. The node's agent reaches them only through the messages of
//! `mc_schema::agent`, carried by the links of [`control`]; [`transfer::client`] is the
//! blocking side used by clients.

pub mod control;
pub mod segment;
pub mod shard;
pub mod stats;
pub mod transfer;

pub use shard::{ShardConfig, ShardHandle, start_shard};

/// Errors of the data plane.
#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    /// Segment memory could not be set up.
    #[error("segment memory: {0}")]
    Memory(#[from] mc_hugepages::Error),
    /// Core pinning failed.
    #[error("core placement: {0}")]
    Topology(#[from] mc_topology::Error),
    /// The data port could not be bound.
    #[error(
        "cannot listen on {addr} for shard {shard}'s data port: {source} (pick another --data_port, or 0 for an ephemeral one)"
    )]
    Bind {
        /// Shard index.
        shard: usize,
        /// Address.
        addr: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The glommio executor could not start.
    #[error(
        "cannot start shard {shard}'s executor: {reason} (io_uring needs memlock: lower --io_memory or raise `ulimit -l`)"
    )]
    Executor {
        /// Shard index.
        shard: usize,
        /// Cause.
        reason: String,
    },
    /// The shard did not come up.
    #[error("shard {shard} failed to start: {reason}")]
    Start {
        /// Shard index.
        shard: usize,
        /// Cause.
        reason: String,
    },
}
