//! Memory that outlives a data-plane process.
//!
//! When the node runs its data plane as a process of its own (`mooncake_store dataplane`),
//! every shard hands a [`Keeper`] the descriptors of what it serves as it comes and goes:
//! its object index files and each segment's memfd (or, for a segment mapped from a named
//! file, the path and offset). The keeper (the node's supervisor) holds them; if the data
//! plane dies, the supervisor starts a new one and hands them back as one [`ShardMemory`]
//! per shard, and the new shards serve the same segment ids, the same bytes and the same
//! index on the same ports (`docs/node-process.md`).
//!
//! What is not kept: segments carved from the mmap arena (`MC_MMAP_ARENA_POOL_SIZE`), whose
//! memory belongs to the arena (logged at mount; they are gone after a data-plane restart and
//! the new agent does not mount them), and the shard's in-process state (connections,
//! transfers in flight, revoked write tokens: a restarted shard refuses tokens signed
//! before it started, so a put that spanned the restart fails and is retried).

use std::fmt;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use mc_schema::agent::SegmentInfo;

/// Where a kept segment's bytes are.
#[derive(Debug)]
pub enum KeptSource {
    /// A memfd the shard made (start-up and allocated segments).
    Memfd(OwnedFd),
    /// A range of a named file (`/api/mount_shm`, CXL): mapped again by path.
    File {
        /// The file.
        path: String,
        /// Where the segment starts in it.
        offset_bytes: u64,
    },
}

/// One kept segment: what the shard reported for it, and its memory.
#[derive(Debug)]
pub struct KeptSegment {
    /// As reported to the agent (id, name, endpoint, size, kind).
    pub info: SegmentInfo,
    /// Its bytes.
    pub source: KeptSource,
}

/// A shard's object index files (`Index::files`).
#[derive(Debug)]
pub struct KeptIndex {
    /// The record file.
    pub records: OwnedFd,
    /// The key file.
    pub keys: OwnedFd,
}

/// What a shard hands to its keeper.
#[derive(Debug)]
pub enum Kept {
    /// The shard's index files (once, at start).
    Index {
        /// Shard index.
        shard: u32,
        /// The files.
        files: KeptIndex,
    },
    /// A segment the shard serves from now on.
    Segment(KeptSegment),
    /// A segment the shard no longer serves.
    Gone {
        /// Shard index.
        shard: u32,
        /// The segment.
        segment_id: u64,
    },
}

/// Holds what shards hand over, for a data plane started after this one.
pub trait Keeper: Send + Sync + 'static {
    /// Takes `what`; called on the shard's thread, so it must not block for long.
    fn keep(&self, what: Kept);
}

/// A shard's keeper, as [`crate::ShardConfig`] carries it.
#[derive(Clone)]
pub struct KeeperHandle(pub Arc<dyn Keeper>);

impl fmt::Debug for KeeperHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeeperHandle")
    }
}

/// What a restarted shard takes over: its index and its segments (the start-up one among
/// them, whose endpoint names the port to bind again).
#[derive(Debug)]
pub struct ShardMemory {
    /// The index files.
    pub index: KeptIndex,
    /// Every segment it served.
    pub segments: Vec<KeptSegment>,
}
