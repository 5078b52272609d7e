//! Prefaulting a segment behind its serving: a node restarted with SSD records to re-serve
//! mounts its fresh memory segment at once and faults the pages in from a low-share task,
//! a few MiB at a time with pauses between (`MADV_POPULATE_WRITE` leaves the bytes as they are, so writes that
//! land meanwhile are kept). A write into a page not reached yet faults it in itself.

use std::rc::Rc;
use std::time::Instant;

use tracing::{info, warn};

use crate::segment::SegmentMem;

/// Bytes faulted in per step: about a millisecond of the shard's time.
const STEP_BYTES: usize = 4 << 20;

/// Pause after each step.
const STEP_PAUSE: std::time::Duration = std::time::Duration::from_millis(2);

/// CPU shares of the prefault task queue (the data path's is 1000).
const PREFAULT_SHARES: usize = 20;

/// Starts faulting `seg` in behind the shard's serving; stops early once the segment is
/// gone from the shard (this task then holds its last reference).
pub(super) fn start_behind(shard: usize, seg: Rc<SegmentMem>) {
    let tq = glommio::executor().create_task_queue(
        glommio::Shares::Static(PREFAULT_SHARES),
        glommio::Latency::NotImportant,
        "prefault",
    );
    let task = async move {
        let t0 = Instant::now();
        let len = seg.size_bytes() as usize;
        let mut at = 0;
        while at < len && Rc::strong_count(&seg) > 1 {
            if let Err(e) = seg.prefault_range(at, STEP_BYTES) {
                warn!(shard, error = %e, "prefault behind serving stopped: pages fault in on first write");
                return;
            }
            at += STEP_BYTES;
            // A pause after each step keeps this under about half a core: on a small
            // machine the agent and the master need the rest to re-adopt the records.
            glommio::timer::sleep(STEP_PAUSE).await;
        }
        info!(
            shard,
            bytes = at.min(len),
            took_ms = t0.elapsed().as_millis() as u64,
            "segment prefaulted behind serving"
        );
    };
    glommio::spawn_local_into(task, tq)
        .expect("a task queue just created takes tasks")
        .detach();
}
