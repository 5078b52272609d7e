//! The mooncake-rs data plane: glommio shards that own segment memory and move bytes.
//!
//! A shard is one glommio executor on one thread (pinned to a core when the node has room
//! for it). It owns its segments, listens on its own data port, and serves the transfer
//! protocol of `mc_transfer`: WRITE frames are received straight into segment memory and
//! checked against the writer's CRC32C before the ack; READ frames are answered straight
//! from segment memory. Every range is checked against the segment and against the
//! transfers in flight first ([`inflight`]).
//!
//! Shards never call the master. The node's agent reaches them only through the messages of
//! `mc_schema::agent`, carried by the links of [`control`]; clients use the blocking side
//! in `mc_transfer`, which does not link glommio.

pub mod capability;
pub mod control;
mod error;
mod hits;
pub mod index;
pub mod inflight;
pub mod keep;
pub mod local;
pub mod segment;
pub mod shard;
pub mod ssd;
mod state;
pub mod stats;
mod transfer;

pub use error::DataplaneError;
pub use shard::{ShardConfig, ShardHandle, start_shard, start_shard_from};
