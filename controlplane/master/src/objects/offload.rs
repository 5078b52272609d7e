//! SSD copies reported by the nodes (`--enable_offload`): each becomes a disk replica of
//! its object, appended after the memory replicas, once every slice of it is reported.
//!
//! A copy is accepted only for the complete object of the same put whose memory slice it
//! copies (same generation and length) and only while the object has no disk replica yet;
//! anything else is answered with a free notice, so the node deletes the record.
//!
//! With `--offload_on_evict` the copy is asked for only when eviction picks the object:
//! the object is parked (`evicting`) and keeps its memory until the copy lands, then its
//! memory replicas are freed. A copy that does not land within
//! [`EVICT_OFFLOAD_TIMEOUT_MS`] (node without room, queue full, I/O error) no longer
//! holds the object back: the next eviction takes it like any other.

use std::sync::atomic::Ordering;

use mc_schema::limits::{slice_count, slice_len};
use mc_schema::msg::{DroppedSlice, OffloadedSlice};

use super::ObjectStore;
use crate::segments::{DISK_NODE, SliceLoc};

/// Objects whose multi-slice copy is partly reported, at most; beyond, the oldest reports
/// are dropped (their records are deleted).
pub(super) const MAX_PENDING: usize = 4096;

/// How long eviction waits for an SSD copy it asked for before evicting without one.
pub(super) const EVICT_OFFLOAD_TIMEOUT_MS: u64 = 10_000;

/// What eviction may do with an object it picked, under `--offload_on_evict`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Park {
    /// A copy was asked for; the memory goes when it lands.
    Parked,
    /// `--offload_queue_limit` copies are in flight: keep the object for now.
    Full,
    /// Evict it now (no SSD on its node, the policy is off, or `--offload_force_evict`
    /// with the queue full).
    EvictNow,
}

/// Where eviction stands with an object under `--offload_on_evict`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Parked {
    /// Not asked for.
    No,
    /// A copy was asked for and may still land.
    Waiting,
    /// A copy was asked for too long ago.
    Expired,
}

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
        if added > 0 {
            self.offload_progress.notify_waiters();
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
        if self.evicting.lock().remove(&e.key).is_some() {
            // Eviction picked it: the copy is durable, so its memory may go now. (Its
            // bytes were counted as evicted when eviction picked it.)
            self.drop_memory_replicas(o);
            self.stats
                .evicted_keys_total
                .fetch_add(1, Ordering::Relaxed);
        }
        Some(true)
    }

    /// Whether eviction asked for an SSD copy of `key` (and how long ago).
    pub(super) fn parked(&self, key: &str, now_ms: u64) -> Parked {
        match self.evicting.lock().get(key) {
            None => Parked::No,
            Some(&t) if now_ms.saturating_sub(t) < EVICT_OFFLOAD_TIMEOUT_MS => Parked::Waiting,
            Some(_) => Parked::Expired,
        }
    }

    /// Forgets that eviction asked for a copy of `key`.
    pub(super) fn unpark(&self, key: &str) {
        self.evicting.lock().remove(key);
    }

    /// Under `--offload_on_evict`, asks for an SSD copy of an object eviction picked and
    /// parks it (see [`Park`]).
    pub(super) fn park_for_offload(&self, key: &str, o: &super::Object, now_ms: u64) -> Park {
        if !self.policy.offload_on_evict {
            return Park::EvictNow;
        }
        if self.evict_offloads_in_flight(now_ms) >= self.policy.offload_queue_limit {
            return if self.policy.offload_force_evict {
                Park::EvictNow
            } else {
                Park::Full
            };
        }
        if !self
            .segments
            .offload(o.size(), o.locs(), self.policy.disk_eviction)
        {
            return Park::EvictNow;
        }
        self.evicting.lock().insert(key.to_string(), now_ms);
        self.stats
            .evict_offloads_total
            .fetch_add(1, Ordering::Relaxed);
        Park::Parked
    }

    /// Objects parked for an SSD copy whose copy may still land.
    pub fn evict_offloads_in_flight(&self, now_ms: u64) -> usize {
        self.evicting
            .lock()
            .values()
            .filter(|&&t| now_ms.saturating_sub(t) < EVICT_OFFLOAD_TIMEOUT_MS)
            .count()
    }

    /// Forgets the SSD records `client_id`'s node dropped on its own (corrupt on read, or
    /// disk eviction); an object left with no replica is removed. Returns the replicas
    /// forgotten.
    pub fn dropped(&self, client_id: u64, entries: &[DroppedSlice]) -> u64 {
        let mut n = 0;
        for e in entries {
            let Some(seg) = self
                .segments
                .by_id(e.segment_id)
                .filter(|s| s.disk && s.client_id == client_id)
            else {
                continue;
            };
            let (h, mut shard) = self.shard(&e.key);
            let Some(o) = shard.get_mut(h, &e.key) else {
                continue;
            };
            let m = slice_count(o.size()).max(1) as usize;
            let hit = |l: &SliceLoc| {
                l.is_disk()
                    && l.segment == seg.slot
                    && l.offset == e.offset
                    && l.generation == e.generation
            };
            if !o.locs().iter().any(hit) {
                continue;
            }
            // The whole replica goes (its other slices are freed where they live).
            let (keep, lost): (Vec<&[SliceLoc]>, Vec<&[SliceLoc]>) =
                o.locs().chunks(m).partition(|r| !r.iter().any(hit));
            let (keep, lost) = (keep.concat(), lost.concat());
            let others: Vec<SliceLoc> = lost.iter().filter(|l| !hit(l)).copied().collect();
            // The dropped record is counted out here; the replica's other slices by `free`.
            self.segments
                .disk_slices
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                    Some(n.saturating_sub(1))
                })
                .ok();
            n += 1;
            if keep.is_empty() {
                let o = shard.remove(h, &e.key, |k| self.hash(k)).expect("present");
                drop(shard);
                self.segments.free(o.size(), &others);
            } else {
                o.pin_put_generation();
                o.set_locs(keep);
                let size = o.size();
                drop(shard);
                self.segments.free(size, &others);
            }
        }
        n
    }
}
