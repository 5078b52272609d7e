//! Eviction by sampled LRU.
//!
//! A round first *samples*: it looks at up to [`SAMPLES_PER_SHARD`] objects of every shard
//! (all of them in a shard that small) and ranks the evictable ones: plain before
//! soft-pinned, least recently used first. Weighting each sample by the share of its shard
//! it stands for gives the rank below which about the wanted number of bytes lie. The round
//! then *sweeps* the shards from a rotating start and evicts objects ranked at or below that
//! threshold until enough is freed. Memory stays bounded by the sample (256 × 32 ranks) at
//! any key count, instead of a list of every candidate; each shard is locked on its own.
//!
//! When every shard holds at most [`SAMPLES_PER_SHARD`] objects the sample is the whole
//! population and the order is exact LRU. Beyond that it is approximate: objects slightly
//! newer than the true threshold may go before slightly older ones in shards swept later.
//! A round that frees too little is followed by one with a higher threshold.

use std::cell::Cell;
use std::sync::atomic::Ordering;

use rand::Rng;

use super::ObjectStore;
use super::object::Object;
use super::offload::{Park, Parked};
use super::table::Shard;
use crate::segments::SliceLoc;

/// Objects sampled per shard and round.
pub const SAMPLES_PER_SHARD: usize = 32;

/// Rounds one eviction call runs at most.
const MAX_ROUNDS: u64 = 8;

/// Eviction order: plain before soft-pinned, then least recent first.
type Rank = (bool, u64);

impl ObjectStore {
    /// Rank of an eviction candidate, `None` when it may not be evicted now.
    fn rank(&self, o: &Object, now_ms: u64) -> Option<Rank> {
        // An object left only on SSD takes no memory: nothing to evict.
        if !o.evictable(now_ms) || o.locs().iter().all(SliceLoc::is_disk) {
            return None;
        }
        let soft = o.soft_pinned(now_ms);
        if soft && !self.policy.allow_evict_soft_pinned {
            return None;
        }
        Some((soft, o.last_access_ms()))
    }

    /// Evicts least recently used objects (sampled, see the module docs) until at least
    /// `target_bytes` of allocated space is freed or nothing evictable is left; soft-pinned
    /// objects go last (and only when the policy allows); hard-pinned, leased, pending and
    /// upserting ones never. Frees released PutStart space first. Returns (objects, bytes)
    /// freed.
    pub fn evict(&self, target_bytes: u64, now_ms: u64) -> (u64, u64) {
        let mut bytes = self.release_zombies(now_ms);
        let mut objects = 0;
        for round in 0..MAX_ROUNDS {
            if bytes >= target_bytes {
                break;
            }
            let need = target_bytes - bytes;
            let Some(threshold) = self.sample_threshold(need.saturating_mul(round + 1), now_ms)
            else {
                break;
            };
            // A sweep that finds nothing at the threshold (a concurrent round took those
            // objects) is followed by a fresh sample; the rounds are bounded.
            let (o, b) = self.sweep(threshold, need, now_ms);
            objects += o;
            bytes += b;
        }
        if objects > 0 {
            self.stats
                .successful_evictions_total
                .fetch_add(1, Ordering::Relaxed);
            self.stats
                .evicted_keys_total
                .fetch_add(objects, Ordering::Relaxed);
            self.stats
                .evicted_bytes_total
                .fetch_add(bytes, Ordering::Relaxed);
        }
        (objects, bytes)
    }

    /// The rank at or below which about `want_bytes` of evictable objects lie, estimated
    /// from a sample of every shard; the highest sampled rank when the estimate falls short
    /// of `want_bytes`. `None` when no sampled object is evictable.
    fn sample_threshold(&self, want_bytes: u64, now_ms: u64) -> Option<Rank> {
        let mut pool: Vec<(Rank, f64)> = Vec::with_capacity(self.shards.len() * SAMPLES_PER_SHARD);
        let mut rng = rand::rng();
        for shard in self.shards.iter() {
            let shard = shard.lock();
            let n = shard.len();
            if n <= SAMPLES_PER_SHARD {
                pool.extend(self.ranked(&shard, 0..n, 1.0, now_ms));
            } else {
                let weight = n as f64 / SAMPLES_PER_SHARD as f64;
                let picks = (0..SAMPLES_PER_SHARD).map(|_| rng.random_range(0..n));
                pool.extend(self.ranked(&shard, picks, weight, now_ms));
            }
        }
        pool.sort_unstable_by_key(|(rank, _)| *rank);
        let mut sum = 0.0;
        for (rank, bytes) in &pool {
            sum += bytes;
            if sum >= want_bytes as f64 {
                return Some(*rank);
            }
        }
        pool.last().map(|(rank, _)| *rank)
    }

    /// Ranks and weighted sizes of the evictable objects at slab positions `picks`.
    fn ranked<'a>(
        &'a self,
        shard: &'a Shard,
        picks: impl Iterator<Item = usize> + 'a,
        weight: f64,
        now_ms: u64,
    ) -> impl Iterator<Item = (Rank, f64)> + 'a {
        picks.filter_map(move |i| {
            let e = shard.at(i);
            let o = &e.obj;
            let rank = self.rank(o, now_ms)?;
            if self.parked(&e.key, now_ms) == Parked::Waiting {
                return None;
            }
            Some((rank, Self::allocated_bytes(o) as f64 * weight))
        })
    }

    /// Evicts objects ranked at or below `threshold`, shard by shard from a rotating start,
    /// until `need_bytes` are freed. An object with an SSD copy loses only its memory
    /// replicas and stays readable from SSD. Returns (objects, bytes) freed.
    fn sweep(&self, threshold: Rank, need_bytes: u64, now_ms: u64) -> (u64, u64) {
        let (objects, bytes) = (Cell::new(0u64), Cell::new(0u64));
        let start = self.evict_cursor.fetch_add(1, Ordering::Relaxed);
        for k in 0..self.shards.len() {
            if bytes.get() >= need_bytes {
                break;
            }
            let i = (start + k) % self.shards.len();
            self.shards[i].lock().drain_where(
                |key, o| {
                    if bytes.get() >= need_bytes
                        || self.rank(o, now_ms).is_none_or(|r| r > threshold)
                    {
                        return false;
                    }
                    match self.parked(key, now_ms) {
                        Parked::Waiting => return false,
                        // The copy never came: evict without one.
                        Parked::Expired => {
                            self.unpark(key);
                            return !o.locs().iter().any(SliceLoc::is_disk);
                        }
                        Parked::No => {}
                    }
                    if o.locs().iter().any(SliceLoc::is_disk) {
                        bytes.set(bytes.get() + Self::allocated_bytes(o));
                        objects.set(objects.get() + 1);
                        self.drop_memory_replicas(o);
                        return false;
                    }
                    match self.park_for_offload(key, o, now_ms) {
                        Park::Parked => {
                            // Counted as freed for this round: its memory goes once the
                            // copy lands, so the round does not park more than it needs.
                            bytes.set(bytes.get() + Self::allocated_bytes(o));
                            false
                        }
                        Park::Full => false,
                        Park::EvictNow => true,
                    }
                },
                |e| {
                    bytes.set(bytes.get() + Self::allocated_bytes(&e.obj));
                    self.free(&e.obj);
                    objects.set(objects.get() + 1);
                    bytes.get() < need_bytes
                },
                |k| self.hash(k),
            );
        }
        (objects.get(), bytes.get())
    }

    /// Frees the memory replicas of an object that has an SSD copy; the copy stays.
    pub(super) fn drop_memory_replicas(&self, o: &mut Object) {
        let (disk, memory): (Vec<SliceLoc>, Vec<SliceLoc>) =
            o.locs().iter().partition(|l| l.is_disk());
        o.pin_put_generation();
        o.set_locs(disk);
        self.segments.free(o.size(), &memory);
    }
}
