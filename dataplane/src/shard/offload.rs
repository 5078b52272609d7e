//! The shard's side of the SSD tier: offload notices become queued jobs that copy a
//! committed slice from segment memory into an SSD record, promote notices jobs that copy
//! a record back into a memory range the master allocated; free notices about the disk
//! segment delete records durably before the batch is answered.
//!
//! The queue holds only `(segment, offset, generation)`: the bytes are copied when a job
//! runs, under a read claim of the range and after checking that the index still holds
//! that slice, so a slice freed or overwritten meanwhile is skipped, never half copied.

use std::cell::RefCell;
use std::rc::Rc;

use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::sync::Semaphore;
use mc_schema::agent::FromShard;
use mc_schema::msg::{Notice, OffloadedSlice, PromotedSlice};
use tracing::{debug, warn};

use crate::DataplaneError;
use crate::index::{Entry, EntryState};
use crate::state::ShardState;

/// Offloads written at once at most (each one owns a DMA buffer of its slice until it is
/// durable), counted in units of [`UNIT_BYTES`]: a job takes one unit per 256 KiB of its
/// slice, so small slices are written four at a time while a 1 MiB one is written alone.
/// Several large O_DIRECT writes at once made eager offload cost 1 MiB puts about half
/// their rate on the 2-core build machine (`docs/benchmarks.md`, SSD tier); one at a time
/// the cost fell to the noise.
const PARALLEL: u64 = 4;

/// Bytes of slice per unit of [`PARALLEL`].
const UNIT_BYTES: u64 = 256 << 10;

/// CPU shares of the offload writer's task queue, against glommio's default 1000 of the
/// queue that serves puts and gets: copies to SSD run in the time the data path leaves, so
/// eager offload costs the put path as little as it can.
const OFFLOAD_SHARES: usize = 50;

/// One slice to copy to SSD.
#[derive(Debug, Clone, Copy)]
pub(super) struct Job {
    segment_id: u64,
    offset: u64,
    generation: u64,
}

/// One SSD record to copy into memory.
#[derive(Debug, Clone, Copy)]
struct Promotion {
    /// The record's location and slice generation.
    loc: u64,
    generation: u64,
    /// The memory range to fill.
    segment_id: u64,
    offset: u64,
    target_generation: u64,
}

/// What the writer task does.
#[derive(Debug, Clone, Copy)]
enum Work {
    Offload(Job),
    Promote(Promotion),
}

/// The queue into the offload writer and what it finished.
pub(super) struct Offloader {
    tx: LocalSender<Work>,
    /// Durable copies not yet reported to the agent.
    pub(super) done: Rc<RefCell<Vec<OffloadedSlice>>>,
    /// Promoted slices not yet reported to the agent.
    pub(super) promoted: Rc<RefCell<Vec<PromotedSlice>>>,
}

impl Offloader {
    /// A queue of `limit` jobs and the writer task draining it.
    pub(super) fn start(state: Rc<ShardState>, limit: usize) -> Offloader {
        let (tx, rx) = local_channel::new_bounded(limit.max(1));
        let done = Rc::new(RefCell::new(Vec::new()));
        let promoted = Rc::new(RefCell::new(Vec::new()));
        let writer = writer(state, rx, done.clone(), promoted.clone());
        // The writer and the jobs it spawns run in a low-share queue of their own.
        let tq = glommio::executor().create_task_queue(
            glommio::Shares::Static(OFFLOAD_SHARES),
            glommio::Latency::NotImportant,
            "ssd-offload",
        );
        glommio::spawn_local_into(writer, tq)
            .expect("a task queue just created takes tasks")
            .detach();
        Offloader { tx, done, promoted }
    }

    /// Queues work; a full queue drops it (counted): an object to offload stays in memory
    /// only, one to promote stays on SSD only (the master frees the range it allocated).
    fn push(&self, state: &ShardState, work: Work) {
        let s = &state.stats.ssd;
        match self.tx.try_send(work) {
            Ok(()) => s.offload_queue_depth.inc(),
            Err(_) => {
                s.offload_dropped_total.inc();
                debug!("offload queue full: slice stays in memory only");
            }
        }
    }
}

async fn writer(
    state: Rc<ShardState>,
    rx: LocalReceiver<Work>,
    done: Rc<RefCell<Vec<OffloadedSlice>>>,
    promoted: Rc<RefCell<Vec<PromotedSlice>>>,
) {
    let permits = Rc::new(Semaphore::new(PARALLEL));
    while let Some(work) = rx.recv().await {
        let units = match work {
            Work::Offload(j) => state
                .index
                .borrow()
                .get(j.segment_id, j.offset)
                .map_or(1, |(e, _)| e.length.div_ceil(UNIT_BYTES).clamp(1, PARALLEL)),
            Work::Promote(_) => 1,
        };
        let Ok(permit) = permits.clone().acquire_static_permit(units).await else {
            return;
        };
        let job = match work {
            Work::Offload(job) => job,
            Work::Promote(p) => {
                let (state, promoted) = (state.clone(), promoted.clone());
                glommio::spawn_local(async move {
                    match promote(&state, p).await {
                        Some(s) => promoted.borrow_mut().push(s),
                        None => debug!("promotion skipped: the record or the range is gone"),
                    }
                    state.stats.ssd.offload_queue_depth.dec();
                    drop(permit);
                })
                .detach();
                continue;
            }
        };
        let (state, done) = (state.clone(), done.clone());
        glommio::spawn_local(async move {
            // The permit is given back once the bytes are written: the next offload's
            // write runs while this one's sync does, and writes that finish meanwhile
            // share the next sync.
            match offload(&state, job, move || drop(permit)).await {
                Ok(Some(s)) => done.borrow_mut().push(s),
                Ok(None) => {}
                Err(e) if is_full(&e) => {
                    state.stats.ssd.offload_errors_total.inc();
                    if state.ssd.as_ref().is_some_and(|s| s.log_quota_refusal()) {
                        warn!("offload stops while the SSD is full (objects stay in memory only; DRAM puts go on): {e}");
                    }
                }
                Err(e) => {
                    state.stats.ssd.offload_errors_total.inc();
                    warn!("offload failed, the slice stays in memory only: {e}");
                }
            }
            state.stats.ssd.offload_queue_depth.dec();
        })
        .detach();
    }
}

/// Whether `e` says there is no room: the quota is used up, or the file system is full.
fn is_full(e: &DataplaneError) -> bool {
    match e {
        DataplaneError::SsdQuota { .. } => true,
        DataplaneError::SsdIo { source, .. } => source.raw_os_error() == Some(libc::ENOSPC),
        _ => false,
    }
}

/// Copies one slice to SSD; `None` when the slice is no longer the one named. `written`
/// is called when the record's bytes are written, before its sync; when no record is
/// written it is dropped unused.
async fn offload(
    state: &ShardState,
    job: Job,
    written: impl FnOnce(),
) -> Result<Option<OffloadedSlice>, DataplaneError> {
    let Some(ssd) = state.ssd.as_ref() else {
        return Ok(None);
    };
    let found = state.index.borrow().get(job.segment_id, job.offset);
    let Some((e, key)) = found.filter(|(e, _)| e.generation == job.generation) else {
        return Ok(None);
    };
    let Some(seg) = state.segment(job.segment_id) else {
        return Ok(None);
    };
    // Runs without an await between the check and the copy.
    let copy = |dst: &mut [u8]| {
        let still = state.index.borrow().holds(
            job.segment_id,
            job.offset,
            e.length,
            job.generation,
            e.crc32c,
        );
        match state.ranges.read(&seg, job.offset, e.length) {
            Ok(src) if still => {
                dst.copy_from_slice(&src);
                true
            }
            _ => false,
        }
    };
    let ids = (e.generation, e.put_generation, e.slice_index, e.slice_count);
    let sums = (e.crc32c, e.object_size);
    let Some(loc) = ssd.append(&key, copy, written, e.length, ids, sums).await? else {
        return Ok(None);
    };
    ssd.stats.offloads_total.inc();
    ssd.stats.offload_bytes_total.inc_by(e.length);
    Ok(Some(OffloadedSlice {
        key: String::from_utf8_lossy(&key).into_owned(),
        put_generation: e.put_generation,
        slice_index: e.slice_index,
        slice_count: e.slice_count,
        source_segment_id: job.segment_id,
        source_offset: job.offset,
        disk_segment_id: ssd.segment_id,
        disk_offset: loc,
        length: e.length,
        generation: e.generation,
        crc32c: e.crc32c,
    }))
}

/// Copies one SSD record into the memory range the master allocated for it and indexes
/// the slice there (committed: the master adds it when the shard reports it); `None` when
/// the record or the range is gone.
async fn promote(state: &ShardState, p: Promotion) -> Option<PromotedSlice> {
    let ssd = state.ssd.as_ref()?;
    let e = ssd.get(p.loc, p.generation)?;
    let (buf, at) = ssd.read(p.loc, p.generation, e.value_len).await.ok()?;
    let seg = state.segment(p.segment_id)?;
    {
        let mut dst = state.ranges.write(&seg, p.offset, e.value_len).ok()?;
        // Whatever the index still held there is replaced: dropped before a byte lands, so
        // a same-host reader never validates a half-copied range (`crate::local`).
        state
            .index
            .borrow_mut()
            .clear_range(p.segment_id, p.offset, e.value_len);
        dst.copy_from_slice(&buf[at..at + e.value_len as usize]);
    }
    let entry = Entry {
        segment_id: p.segment_id,
        offset: p.offset,
        length: e.value_len,
        generation: p.target_generation,
        put_generation: e.put_generation,
        object_size: e.object_size,
        slice_index: e.slice.0,
        slice_count: e.slice.1,
        crc32c: e.value_crc,
        replica_index: 0,
        pins: 0,
        state: EntryState::Committed,
    };
    let mut index = state.index.borrow_mut();
    index.clear_range(p.segment_id, p.offset, e.value_len);
    if let Err(err) = index.insert(&entry, &e.key) {
        state.stats.index_errors_total.inc();
        warn!("promoted slice not indexed: {err}");
    }
    state.stats.index_entries.set(index.len() as u64);
    ssd.stats.promotions_total.inc();
    Some(PromotedSlice {
        key: String::from_utf8_lossy(&e.key).into_owned(),
        put_generation: e.put_generation,
        segment_id: p.segment_id,
        offset: p.offset,
        generation: p.target_generation,
    })
}

/// Applies a batch of notices: memory notices through the index, offloads queued, frees
/// of the disk segment written as tombstones and synced before the answer, promotions
/// queued.
pub(super) async fn apply(
    state: &ShardState,
    offloader: Option<&Offloader>,
    (shard, seq, term): (u32, u64, u64),
    notices: Vec<Notice>,
) -> FromShard {
    let disk = state.ssd.as_ref().map(|s| s.segment_id);
    let (on_disk, in_memory): (Vec<Notice>, Vec<Notice>) = notices
        .into_iter()
        .partition(|n| Some(n.segment_id()) == disk);
    let stale = term < state.term.get();
    let answer = super::objects::apply(state, shard, seq, term, &in_memory);
    if stale {
        return answer;
    }
    if let Some(o) = offloader {
        for n in &in_memory {
            if let Notice::Offload {
                segment_id,
                offset,
                generation,
                evict_oldest,
            } = *n
            {
                // The master's `--enable_disk_eviction` (a cluster-wide setting).
                if evict_oldest && let Some(ssd) = state.ssd.as_ref() {
                    ssd.enable_disk_eviction();
                }
                o.push(
                    state,
                    Work::Offload(Job {
                        segment_id,
                        offset,
                        generation,
                    }),
                );
            }
        }
    }
    if let Some(ssd) = state.ssd.as_ref() {
        // Every delete of the batch in one group: synced once per file, before the answer.
        let frees: Vec<(u64, u64)> = on_disk
            .iter()
            .filter_map(|n| match *n {
                Notice::Free {
                    offset, generation, ..
                } => Some((offset, generation)),
                _ => None,
            })
            .collect();
        if let Err(e) = ssd.delete_many(&frees).await {
            warn!("SSD records not deleted: {e}");
        }
        for n in on_disk {
            if let Notice::Promote {
                offset,
                generation,
                target_segment_id,
                target_offset,
                target_generation,
                ..
            } = n
                && let Some(o) = offloader
            {
                let p = Promotion {
                    loc: offset,
                    generation,
                    segment_id: target_segment_id,
                    offset: target_offset,
                    target_generation,
                };
                o.push(state, Work::Promote(p));
            }
        }
    }
    answer
}
