//! What a shard's tasks share: its segments, its counters and the ranges in use.
//!
//! A shard is one thread, so this is `Rc` + `RefCell`, never locked. The shard's set-up and
//! control loop (`shard`) own it; the transfer server (`transfer`) only reads it.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use crate::capability::Capabilities;
use crate::hits::Hits;
use crate::index::Index;
use crate::inflight::InFlight;
use crate::segment::SegmentMem;
use crate::ssd::SsdStore;
use crate::stats::ShardStats;

/// Per-shard state shared by its tasks.
pub(crate) struct ShardState {
    /// Segments served, by id.
    pub(crate) segments: RefCell<HashMap<u64, Rc<SegmentMem>>>,
    /// Cluster id peers must present.
    pub(crate) cluster_id: String,
    /// Counters (written here, read by the node's REST server).
    pub(crate) stats: Arc<ShardStats>,
    /// Ranges that transfers are using right now; also the in-flight count a drain waits on.
    pub(crate) ranges: InFlight,
    /// The objects held in this shard's segments.
    pub(crate) index: RefCell<Index>,
    /// The highest master term seen: writes of allocations from lower terms are refused,
    /// notices of lower terms ignored.
    pub(crate) term: Cell<u64>,
    /// Slices validated reads hit since the last report to the agent.
    pub(crate) hits: RefCell<Hits>,
    /// Write secrets and freed allocations: which writes may land.
    pub(crate) caps: RefCell<Capabilities>,
    /// The SSD record store (`--enable_ssd_offload`).
    pub(crate) ssd: Option<SsdStore>,
}

impl ShardState {
    /// The segment `id`, kept alive for as long as the caller holds it (an unmount while a
    /// transfer runs frees the memory only after that transfer).
    pub(crate) fn segment(&self, id: u64) -> Option<Rc<SegmentMem>> {
        self.segments.borrow().get(&id).cloned()
    }
}
