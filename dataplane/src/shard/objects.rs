//! Control messages about the shard's object index: the master's term, its notices, and
//! inventory reports.

use mc_schema::agent::{FromShard, INVENTORY_CHUNK};
use mc_schema::msg::{InventoryEntry, Notice};
use tracing::{debug, info};

use crate::index::EntryState;
use crate::state::ShardState;

/// The replica index SSD copies are reported with: above any memory replica's, so the
/// master assembles them as a replica of their own.
pub(super) const SSD_REPLICA_INDEX: u32 = u32::MAX;

/// Raises the shard's term (never lowers it).
pub(super) fn set_term(state: &ShardState, term: u64) {
    if term > state.term.get() {
        info!(
            term,
            "master term raised: writes of older allocations are refused"
        );
        state.term.set(term);
    }
}

/// Applies a batch of notices from the master of `term`, unless the shard has seen a newer
/// master (a deposed one's notices are ignored). Answers `Applied` either way, so the
/// sender is not left waiting.
pub(super) fn apply(
    state: &ShardState,
    shard: u32,
    seq: u64,
    term: u64,
    notices: &[Notice],
) -> FromShard {
    if term < state.term.get() {
        debug!(
            term,
            ours = state.term.get(),
            "notices of a deposed master ignored"
        );
        return FromShard::Applied { shard, term, seq };
    }
    set_term(state, term);
    let mut index = state.index.borrow_mut();
    let mut caps = state.caps.borrow_mut();
    let now = std::time::Instant::now();
    for n in notices {
        match *n {
            Notice::Commit {
                segment_id,
                offset,
                generation,
            } => {
                index.commit(segment_id, offset, generation);
            }
            Notice::Free {
                segment_id,
                offset,
                generation,
            } => {
                index.free(segment_id, offset, generation);
                // A token of the freed allocation must not write into it again.
                caps.revoke(generation, now);
            }
            // Queued by the caller (`offload.rs`); the index does not change.
            Notice::Offload { .. } | Notice::Promote { .. } => {}
        }
    }
    state.stats.index_entries.set(index.len() as u64);
    FromShard::Applied { shard, term, seq }
}

/// Every entry of the index over `segments`, in messages of at most [`INVENTORY_CHUNK`]
/// entries (at least one message, the last flagged).
pub(super) fn inventory(
    state: &ShardState,
    request: u64,
    segments: impl Iterator<Item = u64>,
) -> Vec<FromShard> {
    let index = state.index.borrow();
    let mut all = Vec::with_capacity(index.len());
    for seg in segments {
        index.for_each(seg, |e, key| {
            all.push(InventoryEntry {
                key: String::from_utf8_lossy(key).into_owned(),
                segment_id: e.segment_id,
                offset: e.offset,
                length: e.length,
                generation: e.generation,
                put_generation: e.put_generation,
                object_size: e.object_size,
                slice_index: e.slice_index,
                slice_count: e.slice_count,
                crc32c: e.crc32c,
                replica_index: u32::from(e.replica_index),
                pins: u32::from(e.pins),
                committed: e.state == EntryState::Committed,
            });
        });
    }
    // The SSD copies, as a replica of their own (the last one of their object).
    if let Some(ssd) = state.ssd.as_ref() {
        ssd.for_each(|loc, e| {
            all.push(InventoryEntry {
                key: String::from_utf8_lossy(&e.key).into_owned(),
                segment_id: ssd.segment_id,
                offset: loc,
                length: e.value_len,
                generation: e.generation,
                put_generation: e.put_generation,
                object_size: e.object_size,
                slice_index: e.slice.0,
                slice_count: e.slice.1,
                crc32c: e.value_crc,
                replica_index: SSD_REPLICA_INDEX,
                pins: 0,
                committed: true,
            });
        });
    }
    let mut out: Vec<FromShard> = Vec::with_capacity(all.len() / INVENTORY_CHUNK + 1);
    let mut rest = all.into_iter().peekable();
    loop {
        let entries: Vec<InventoryEntry> = rest.by_ref().take(INVENTORY_CHUNK).collect();
        let last = rest.peek().is_none();
        out.push(FromShard::Inventory {
            request,
            entries,
            last,
        });
        if last {
            return out;
        }
    }
}
