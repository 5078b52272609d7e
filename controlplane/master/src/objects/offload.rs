//! SSD copies reported by the nodes (`--enable_offload`): each becomes a disk replica of
//! its object, appended after the memory replicas, once every slice of it is reported.
//!
//! A copy is accepted only for the complete object of the same put whose memory slice it
//! copies (same generation and length) and only while the object has no disk replica yet;
//! anything else is answered with a free notice, so the node deletes the record.

use std::sync::atomic::Ordering;

use mc_schema::limits::{slice_count, slice_len};
use mc_schema::msg::OffloadedSlice;

use super::ObjectStore;
use crate::segments::{DISK_NODE, SliceLoc};

/// Objects whose multi-slice copy is partly reported, at most; beyond, the oldest reports
/// are dropped (their records are deleted).
pub(super) const MAX_PENDING: usize = 4096;

/// A multi-slice copy partly reported: its put's generation and the slices so far.
pub(super) type Partial = (u64, Vec<Option<SliceLoc>>);

impl ObjectStore {
    /// Adds the reported copies of `client_id`'s node; returns the disk replicas completed.
    pub fn offloaded(&self, client_id: u64, entries: &[OffloadedSlice]) -> u64 {
        let mut added = 0;
        for e in entries {
            let Some(seg) = self
                .segments
                .by_id(e.disk_segment_id)
                .filter(|s| s.disk && s.client_id == client_id)
            else {
                continue;
            };
            let loc = SliceLoc {
                offset: e.disk_offset,
                generation: e.generation,
                segment: seg.slot,
                node: DISK_NODE,
            };
            match self.take_copy(e, loc) {
                Some(true) => {
                    added += 1;
                    self.segments
                        .disk_slices
                        .fetch_add(u64::from(e.slice_count), Ordering::Relaxed);
                    self.stats
                        .offloaded_objects_total
                        .fetch_add(1, Ordering::Relaxed);
                }
                Some(false) => {}
                None => {
                    self.stats
                        .offload_rejected_total
                        .fetch_add(1, Ordering::Relaxed);
                    // Counted down again by the free notice.
                    self.segments.disk_slices.fetch_add(1, Ordering::Relaxed);
                    self.segments.free_one(&loc, e.length);
                }
            }
        }
        added
    }

    /// Records one copied slice: `Some(true)` when it completed a disk replica,
    /// `Some(false)` when other slices are still to come, `None` when refused.
    fn take_copy(&self, e: &OffloadedSlice, loc: SliceLoc) -> Option<bool> {
        let (h, mut shard) = self.shard(&e.key);
        let o = shard.get_mut(h, &e.key)?;
        let m = slice_count(o.size()).max(1);
        let fits = o.complete()
            && o.upsert().is_none()
            && o.put_generation() == e.put_generation
            && u64::from(e.slice_count) == m
            && u64::from(e.slice_index) < m
            && e.length == slice_len(o.size(), u64::from(e.slice_index))
            && !o.locs().iter().any(SliceLoc::is_disk)
            && o.locs().chunks(m as usize).any(|r| {
                r.get(e.slice_index as usize)
                    .is_some_and(|l| l.generation == e.generation)
            });
        if !fits {
            return None;
        }
        let copy = if m == 1 {
            vec![loc]
        } else {
            let mut pending = self.offload_pending.lock();
            if pending.len() >= MAX_PENDING && !pending.contains_key(&e.key) {
                tracing::warn!("too many partly offloaded objects: dropping their reports");
                pending.clear();
            }
            let slot = pending
                .entry(e.key.clone())
                .or_insert_with(|| (e.put_generation, vec![None; m as usize]));
            if slot.0 != e.put_generation {
                *slot = (e.put_generation, vec![None; m as usize]);
            }
            slot.1[e.slice_index as usize] = Some(loc);
            if slot.1.iter().any(Option::is_none) {
                return Some(false);
            }
            let (_, all) = pending.remove(&e.key).expect("present");
            all.into_iter().flatten().collect()
        };
        let mut locs = o.locs().to_vec();
        locs.extend(copy);
        o.set_locs(locs);
        Some(true)
    }
}
