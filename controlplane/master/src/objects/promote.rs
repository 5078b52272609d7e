//! Promotion on hit (`--promotion_on_hit`): an object that a get finds only on SSD, asked
//! for at least `--promotion_admission_threshold` times (a count-min sketch, `sketch.rs`;
//! 1 admits every hit), gets a memory range on the shard holding its SSD copy, and that
//! shard copies the record into it. The range becomes a memory replica when the shard
//! reports it; at most `--promotion_queue_limit` promotions run at once, and one not
//! reported within [`PROMOTE_TIMEOUT_MS`] gives its range back.
//!
//! Only values of one slice are promoted: the slices of a larger value live on the SSDs of
//! several shards, and each shard can only fill its own memory.

use std::sync::atomic::Ordering;

use mc_schema::limits::slice_count;
use mc_schema::msg::PromotedSlice;

use super::ObjectStore;
use super::object::Object;
use crate::segments::SliceLoc;

/// How long a promotion may take before its range is given back.
pub(super) const PROMOTE_TIMEOUT_MS: u64 = 10_000;

/// A promotion in flight: the memory range it fills, its value's length, and when it
/// was asked for.
#[derive(Debug, Clone, Copy)]
pub(super) struct Promoting {
    loc: SliceLoc,
    len: u64,
    started_ms: u64,
}

impl ObjectStore {
    /// Counts a get of `o` (held under its shard lock) and, when it is served only from SSD
    /// and hot enough, starts its promotion.
    pub(super) fn note_read(&self, key: &str, o: &Object, now_ms: u64) {
        if !self.policy.promotion_on_hit
            || slice_count(o.size()) != 1
            || !o.locs().iter().all(SliceLoc::is_disk)
        {
            return;
        }
        let Some(disk) = o.locs().first().copied() else {
            return;
        };
        if self.sketch.lock().hit(key) < self.policy.promotion_threshold {
            return;
        }
        let mut promoting = self.promoting.lock();
        if promoting.contains_key(key) || promoting.len() >= self.policy.promotion_queue_limit {
            return;
        }
        if let Some(loc) = self.segments.promote(&disk, o.size()) {
            promoting.insert(
                key.to_string(),
                Promoting {
                    loc,
                    len: o.size(),
                    started_ms: now_ms,
                },
            );
        }
    }

    /// Adds the memory slices `client_id`'s node filled; returns how many became replicas.
    pub fn promoted(&self, _client_id: u64, entries: &[PromotedSlice]) -> u64 {
        let mut added = 0;
        for e in entries {
            let Some(p) = self.promoting.lock().remove(&e.key) else {
                continue;
            };
            let same = self
                .segments
                .by_id(e.segment_id)
                .is_some_and(|s| s.slot == p.loc.segment)
                && p.loc.offset == e.offset
                && p.loc.generation == e.generation;
            if !same {
                self.promoting.lock().insert(e.key.clone(), p);
                continue;
            }
            let (h, mut shard) = self.shard(&e.key);
            let taken = shard.get_mut(h, &e.key).is_some_and(|o| {
                let fits = o.complete()
                    && o.upsert().is_none()
                    && o.put_generation() == e.put_generation
                    && o.size() == p.len
                    && o.locs().iter().all(SliceLoc::is_disk);
                if fits {
                    o.pin_put_generation();
                    let mut locs = vec![p.loc];
                    locs.extend_from_slice(o.locs());
                    o.set_locs(locs);
                }
                fits
            });
            drop(shard);
            if taken {
                added += 1;
                self.stats
                    .promoted_objects_total
                    .fetch_add(1, Ordering::Relaxed);
                self.segments.commit(&[p.loc]);
            } else {
                self.segments.free_one(&p.loc, p.len);
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
                late.push(*p);
            }
            keep
        });
        for p in late {
            self.segments.free_one(&p.loc, p.len);
        }
    }
}
