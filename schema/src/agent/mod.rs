//! Messages between a store node's agent and its data-plane shards.
//!
//! They travel over in-process channels (`mc_dataplane::control`) in an embedded node, and
//! as flatbuffers ([`wire`], `fbs/agent.fbs`) over shared-memory rings when the agent runs
//! as its own process; neither changes shard or agent logic.
//!
//! A shard starts with one segment and can serve more: the agent asks for them with
//! [`ToShard::Mount`] (memory the shard allocates) or [`ToShard::MountShm`] (a named
//! shared-memory file someone else created) and gives them back with [`ToShard::Unmount`].
//! Every such request carries a `request` number the answer repeats, so the agent can match
//! answers to the requests it has in flight.

use crate::msg::{DroppedSlice, InventoryEntry, Notice, OffloadedSlice, PromotedSlice};

pub mod wire;

/// Entries per [`FromShard::Inventory`] message.
pub const INVENTORY_CHUNK: usize = 4096;

/// How a segment's memory came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentKind {
    /// The shard's segment made at start (`--global_segment_size`).
    Startup,
    /// Memory allocated later on request (`POST /api/mount`).
    Allocated,
    /// A named shared-memory file mapped on request (`POST /api/mount_shm`).
    Shm,
    /// The shard's SSD record store (`--enable_ssd_offload`): holds offloaded copies,
    /// never a target of placement; `size_bytes` is the shard's share of the quota.
    LocalDisk,
    /// CXL memory mapped from a DAX device, or a file standing in for one (`--enable_cxl`);
    /// its segment is named `<endpoint>/cxl`.
    Cxl,
}

/// A segment a shard serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Shard index within the node.
    pub shard: u32,
    /// Segment id, chosen by the shard at creation (random, non-zero).
    pub segment_id: u64,
    /// Segment name, unique in the cluster: `host:port` of the shard's data endpoint for its
    /// start-up segment, `host:port#n` (n = 1, 2, ...) for segments mounted later.
    pub name: String,
    /// Data endpoint (`host:port`) clients connect to.
    pub endpoint: String,
    /// Usable bytes.
    pub size_bytes: u64,
    /// Where its memory came from.
    pub kind: SegmentKind,
}

/// Agent → shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToShard {
    /// Report every segment this shard serves: one `Segment` each, then `Described`.
    Describe,
    /// Answer `Drained` once no transfer has been in flight for a short quiet period.
    Drain,
    /// Stop the shard's executor: close the listener and exit.
    Stop,
    /// Allocate (and prefault) `size_bytes` more memory and serve it as a new segment;
    /// answered by `Mounted` or `MountFailed`.
    Mount {
        /// Echoed in the answer.
        request: u64,
        /// Bytes asked for (the segment may be larger: whole pages).
        size_bytes: u64,
    },
    /// Map `size_bytes` of the shared-memory file at `path` from `offset_bytes` and serve
    /// them as a new segment; answered by `Mounted` or `MountFailed`.
    MountShm {
        /// Echoed in the answer.
        request: u64,
        /// File to map (`/dev/shm/<name>`); the agent has checked the name.
        path: String,
        /// Where the segment starts in the file (a multiple of the page size).
        offset_bytes: u64,
        /// Bytes to map.
        size_bytes: u64,
    },
    /// Map `size_bytes` of the CXL device (or stand-in file) at `path` and serve them as the
    /// node's CXL segment; answered by `Mounted` or `MountFailed`.
    MountCxl {
        /// Echoed in the answer.
        request: u64,
        /// `--cxl_path`.
        path: String,
        /// Bytes to map.
        size_bytes: u64,
    },
    /// Stop serving a segment and release its memory once the transfers using it end;
    /// answered by `Unmounted`.
    Unmount {
        /// Echoed in the answer.
        request: u64,
        /// The segment.
        segment_id: u64,
    },
    /// The secret the master signs write tokens with: from now on a write needs a token
    /// signed with it (or with the secret before it).
    SetWriteSecret {
        /// The secret.
        secret: Vec<u8>,
    },
    /// The master's term: writes of allocations from lower terms are refused from now on.
    SetTerm {
        /// The term.
        term: u64,
    },
    /// Apply these notices of the master of `term` (ignored when the shard has seen a
    /// higher term); answered by `Applied`.
    Notices {
        /// Sequence number of the last notice in the batch.
        seq: u64,
        /// The sending master's term.
        term: u64,
        /// Notices for this shard's segments.
        notices: Vec<Notice>,
    },
    /// Report every entry of the object index; answered by `Inventory` messages, the last
    /// one flagged.
    Inventory {
        /// Echoed in the answers.
        request: u64,
    },
    /// Render the data plane's metric families (Prometheus text); answered by `Metrics`.
    /// Asked of shard 0 when the node's `/metrics` is scraped in a node split into processes.
    Metrics {
        /// Echoed in the answer.
        request: u64,
    },
}

/// Shard → agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FromShard {
    /// One segment (part of the answer to Describe).
    Segment(SegmentInfo),
    /// The end of the answer to Describe: every segment was sent.
    Described {
        /// Shard index.
        shard: u32,
    },
    /// A segment asked for with `Mount` or `MountShm` is served now.
    Mounted {
        /// The request this answers.
        request: u64,
        /// The new segment.
        segment: SegmentInfo,
    },
    /// A `Mount` or `MountShm` failed; nothing changed in the shard.
    MountFailed {
        /// The request this answers.
        request: u64,
        /// What went wrong and, where there is one, the fix.
        reason: String,
    },
    /// Answer to `Unmount`: the segment is no longer served (`found` is false when the
    /// shard did not serve it).
    Unmounted {
        /// The request this answers.
        request: u64,
        /// The segment.
        segment_id: u64,
        /// Whether the shard served it.
        found: bool,
    },
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
    /// A batch of notices was applied (or ignored as stale).
    Applied {
        /// Shard index.
        shard: u32,
        /// The batch's `term`.
        term: u64,
        /// The batch's `seq`.
        seq: u64,
    },
    /// Keys of the slices reads from clients' location caches hit since the last such
    /// message (sent unasked, at most every few hundred ms); the agent reports them to the
    /// master, which counts them as reads.
    Hits {
        /// Shard index.
        shard: u32,
        /// Keys hit.
        keys: Vec<String>,
    },
    /// Slices copied to the shard's SSD (after `Offload` notices), durable now (sent
    /// unasked as offloads complete).
    Offloaded {
        /// Shard index.
        shard: u32,
        /// The copies.
        entries: Vec<OffloadedSlice>,
    },
    /// Memory slices filled from the shard's SSD (after `Promote` notices).
    Promoted {
        /// Shard index.
        shard: u32,
        /// The slices.
        entries: Vec<PromotedSlice>,
    },
    /// SSD records the shard dropped on its own (corrupt on read, or disk eviction).
    Dropped {
        /// Shard index.
        shard: u32,
        /// The records.
        entries: Vec<DroppedSlice>,
    },
    /// Answer to `Metrics`: the families as Prometheus text (empty when the shard has none
    /// to give).
    Metrics {
        /// The request this answers.
        request: u64,
        /// The text, UTF-8.
        text: Vec<u8>,
    },
    /// Part of the answer to `Inventory`: at most [`INVENTORY_CHUNK`] entries.
    Inventory {
        /// The request this answers.
        request: u64,
        /// Entries.
        entries: Vec<InventoryEntry>,
        /// Whether this is the last part.
        last: bool,
    },
}
