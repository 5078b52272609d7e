//! Promotion on hit (`--promotion_on_hit`): an object that a get finds only on SSD, asked
//! for at least `--promotion_admission_threshold` times (a count-min sketch, `sketch.rs`;
//! 1 admits every hit), gets a memory range on the shard holding its SSD copy, and that
//! shard copies the record into it. The range becomes a memory replica when the shard
//! reports it; at most `--promotion_queue_limit` promotions run at once, and one not
//! reported within [`PROMOTE_TIMEOUT_MS`] gives its range back.
//!
//! A value of several slices is promoted slice by slice: each slice's SSD record is
//! copied by the shard that holds it into a range of that shard's memory, and the memory
//! replica is added once every slice has been reported.

use std::sync::atomic::Ordering;

use mc_schema::limits::{slice_count, slice_len};
use mc_schema::msg::PromotedSlice;

use super::ObjectStore;
use super::object::Object;
use crate::segments::SliceLoc;

/// How long a promotion may take before its range is given back.
pub(super) const PROMOTE_TIMEOUT_MS: u64 = 10_000;

/// A promotion in flight: the memory ranges it fills (one per slice, in order) and which
/// have been reported filled, its value's length, and when it was asked for.
#[derive(Debug, Clone)]
pub(super) struct Promoting {
    slices: Vec<(SliceLoc, bool)>,
    len: u64,
    started_ms: u64,
}

impl Promoting {
    /// The memory ranges, in slice order.
    fn locs(&self) -> Vec<SliceLoc> {
        self.slices.iter().map(|(l, _)| *l).collect()
    }

    /// Marks the slice filled at (`segment` slot, `offset`, `generation`); false when the
    /// promotion has no such slice.
    fn fill(&mut self, segment: u32, offset: u64, generation: u64) -> bool {
        let slice = self.slices.iter_mut().find(|(l, _)| {
            l.segment == segment && l.offset == offset && l.generation == generation
        });
        slice.map(|(_, filled)| *filled = true).is_some()
    }

    fn complete(&self) -> bool {
        self.slices.iter().all(|(_, filled)| *filled)
    }
}

impl ObjectStore {
    /// Counts a get of `o` (held under its shard lock) and, when it is served only from SSD
    /// and hot enough, starts its promotion.
    pub(super) fn note_read(&self, key: &str, o: &Object, now_ms: u64) {
        let slices = slice_count(o.size()) as usize;
        if !self.policy.promotion_on_hit
            || slices == 0
            || o.locs().len() < slices
            || !o.locs().iter().all(SliceLoc::is_disk)
        {
            return;
        }
        if self.sketch.lock().hit(key) < self.policy.promotion_threshold {
            return;
        }
        let mut promoting = self.promoting.lock();
        if promoting.contains_key(key) || promoting.len() >= self.policy.promotion_queue_limit {
            return;
        }
        // The first SSD replica's records (locations are replica-major).
        let disk: Vec<(SliceLoc, u64)> = o.locs()[..slices]
            .iter()
            .enumerate()
            .map(|(i, l)| (*l, slice_len(o.size(), i as u64)))
            .collect();
        if let Some(locs) = self.segments.promote(&disk) {
            promoting.insert(
                key.to_string(),
                Promoting {
                    slices: locs.into_iter().map(|l| (l, false)).collect(),
                    len: o.size(),
                    started_ms: now_ms,
                },
            );
        }
    }

    /// Takes the memory slices `client_id`'s node filled; returns how many objects gained
    /// their memory replica (the last of their slices came in).
    pub fn promoted(&self, _client_id: u64, entries: &[PromotedSlice]) -> u64 {
        let mut added = 0;
        for e in entries {
            let Some(slot) = self.segments.by_id(e.segment_id).map(|s| s.slot) else {
                continue;
            };
            let p = {
                let mut promoting = self.promoting.lock();
                let Some(p) = promoting.get_mut(&e.key) else {
                    continue;
                };
                if !p.fill(slot, e.offset, e.generation) || !p.complete() {
                    continue;
                }
                promoting.remove(&e.key).expect("held above")
            };
            let locs = p.locs();
            let (h, mut shard) = self.shard(&e.key);
            let taken = shard.get_mut(h, &e.key).is_some_and(|o| {
                let fits = o.complete()
                    && o.upsert().is_none()
                    && o.put_generation() == e.put_generation
                    && o.size() == p.len
                    && o.locs().iter().all(SliceLoc::is_disk);
                if fits {
                    o.pin_put_generation();
                    let mut all = locs.clone();
                    all.extend_from_slice(o.locs());
                    o.set_locs(all);
                }
                fits
            });
            drop(shard);
            if taken {
                added += 1;
                self.stats
                    .promoted_objects_total
                    .fetch_add(1, Ordering::Relaxed);
                self.segments.commit(&locs);
            } else {
                self.segments.free(p.len, &locs);
            }
        }
        added
    }

    /// Gives back the ranges of promotions that took too long.
    pub fn expire_promotions(&self, now_ms: u64) {
        let mut late = Vec::new();
        self.promoting.lock().retain(|_, p| {
            let keep = now_ms.saturating_sub(p.started_ms) < PROMOTE_TIMEOUT_MS;
            if !keep {
                late.push(p.clone());
            }
            keep
        });
        for p in late {
            self.segments.free(p.len, &p.locs());
        }
    }
}
