//! Messages between a store node's agent and its data-plane shards.
//!
//! Today they travel over in-process channels (`mc_dataplane::control`); the plan is to
//! carry the same messages as flatbuffers over shared-memory rings once the agent runs as
//! its own process, which changes no shard or agent logic.

/// A segment a shard serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Shard index within the node.
    pub shard: u32,
    /// Segment id, chosen by the shard at creation (random, non-zero).
    pub segment_id: u64,
    /// Segment name, `host:port` of the shard's data endpoint.
    pub name: String,
    /// Data endpoint (`host:port`) clients connect to.
    pub endpoint: String,
    /// Usable bytes.
    pub size_bytes: u64,
}

/// Agent → shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToShard {
    /// Report every segment this shard serves.
    Describe,
    /// Answer `Drained` once no transfer has been in flight for a short quiet period.
    Drain,
    /// Stop the shard's executor: close the listener and exit.
    Stop,
}

/// Shard → agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FromShard {
    /// One segment (answer to Describe; also sent unasked once a shard is up).
    Segment(SegmentInfo),
    /// No transfer in flight (answer to Drain).
    Drained {
        /// Shard index.
        shard: u32,
    },
    /// The shard stopped.
    Stopped {
        /// Shard index.
        shard: u32,
    },
}
