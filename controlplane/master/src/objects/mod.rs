//! Object metadata, sharded by key hash so RPC threads rarely meet on one lock.
//!
//! An object is *pending* from PutStart until PutEnd (nobody can read it) and *complete*
//! after. Reads (GetReplicaList, ExistKey) grant a lease and refresh the object's access
//! time; a leased object is neither removed without `force` nor evicted. Eviction takes the
//! least recently used complete objects first, soft-pinned ones last, and never hard-pinned,
//! leased or pending ones (`evict.rs`: sampled, exact while shards are small). A PutStart
//! left without PutEnd past the discard timeout can be preempted by a new PutStart of the
//! same key; its space waits until the release timeout, because the old writer may still be
//! sending into it.
//!
//! Layout: `table.rs` holds a shard (dense slab + hash index of positions), `object.rs` the
//! compact per-object record (80 bytes for one or two single-slice replicas).

mod adopt;
mod copy;
mod credit;
mod evict;
mod object;
mod offload;
mod promote;
mod sketch;
mod table;

use std::collections::HashMap;
use std::hash::BuildHasher;

use ahash::RandomState;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use mc_schema::ErrorCode;
use mc_schema::limits::slice_count;
use mc_schema::msg::{PutEndItem, ReplicaDesc, ReplicaListResult, ReplicateConfig, SoftPinAction};
use parking_lot::{Mutex, MutexGuard};

pub use adopt::{Adopted, Candidate};
pub use copy::{CopyPlan, CopySpace};
pub use object::{Object, Replacement};
use table::Shard;

use crate::segments::{Segments, SliceLoc, allocated_bytes};

/// Number of metadata shards (a power of two).
const SHARDS: usize = 256;

/// Timeouts and pin rules, in milliseconds.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Read lease granted by GetReplicaList / ExistKey.
    pub lease_ms: u64,
    /// Soft pin length when a put enables it without a TTL.
    pub default_soft_pin_ms: u64,
    /// Longest soft pin.
    pub max_soft_pin_ms: u64,
    /// Whether soft-pinned objects may be evicted once nothing else is left.
    pub allow_evict_soft_pinned: bool,
    /// A pending PutStart older than this may be preempted by a new PutStart.
    pub discard_ms: u64,
    /// A pending PutStart's space is released this long after it started.
    pub release_ms: u64,
    /// Copy each committed object to its node's SSD (`--enable_offload`).
    pub offload: bool,
    /// Copy an object to SSD only when eviction picks it, and free its memory once the
    /// copy is durable (`--offload_on_evict`).
    pub offload_on_evict: bool,
    /// SSD copies eviction waits for at most (`--offload_queue_limit`).
    pub offload_queue_limit: usize,
    /// With that many in flight, eviction drops objects without a copy instead of
    /// leaving them in memory (`--offload_force_evict`).
    pub offload_force_evict: bool,
    /// Copy hot SSD-only objects back into memory (`--promotion_on_hit`).
    pub promotion_on_hit: bool,
    /// SSD hits before a promotion (`--promotion_admission_threshold`; 1 = every hit).
    pub promotion_threshold: u32,
    /// Promotions in flight at most (`--promotion_queue_limit`).
    pub promotion_queue_limit: usize,
    /// Offload notices tell nodes to delete their oldest SSD records when the quota is
    /// reached (`--enable_disk_eviction`).
    pub disk_eviction: bool,
    /// Put credit is freed this long after its grant when unused (`--put_credit_ttl_sec`;
    /// 0 = none is granted).
    pub credit_ttl_ms: u64,
    /// Most bytes of put credit one client holds (`--put_credit_max_bytes`).
    pub credit_max_client_bytes: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            lease_ms: 5_000,
            default_soft_pin_ms: 1_800_000,
            max_soft_pin_ms: 3_600_000,
            allow_evict_soft_pinned: true,
            discard_ms: 30_000,
            release_ms: 300_000,
            offload: false,
            offload_on_evict: false,
            offload_queue_limit: 1024,
            offload_force_evict: false,
            promotion_on_hit: false,
            promotion_threshold: 2,
            promotion_queue_limit: 256,
            disk_eviction: false,
            credit_ttl_ms: 60_000,
            credit_max_client_bytes: 1 << 30,
        }
    }
}

/// Space of a preempted PutStart or a replaced value, held until its writer can no longer be
/// sending (or its readers reading).
struct Zombie {
    release_at_ms: u64,
    size: u64,
    locs: Vec<SliceLoc>,
}

/// Counters of the eviction and cleanup machinery.
#[derive(Debug, Default)]
pub struct PolicyStats {
    /// Eviction rounds that freed something.
    pub successful_evictions_total: AtomicU64,
    /// Objects evicted.
    pub evicted_keys_total: AtomicU64,
    /// Bytes freed by eviction.
    pub evicted_bytes_total: AtomicU64,
    /// Pending PutStarts preempted by a new PutStart of the same key.
    pub preempted_put_starts_total: AtomicU64,
    /// Bytes of abandoned PutStarts released after the release timeout.
    pub released_put_start_bytes_total: AtomicU64,
    /// Objects that gained an SSD copy (a disk replica).
    pub offloaded_objects_total: AtomicU64,
    /// SSD copies refused (the object changed or went meanwhile); their records are freed.
    pub offload_rejected_total: AtomicU64,
    /// Objects eviction asked to be copied to SSD before their memory goes
    /// (`--offload_on_evict`).
    pub evict_offloads_total: AtomicU64,
    /// SSD-only objects that gained a memory replica again (`--promotion_on_hit`).
    pub promoted_objects_total: AtomicU64,
    /// Puts committed into put credit.
    pub credit_commits_total: AtomicU64,
}

/// Checks a PutEnd / UpsertEnd against the put it names (generation, one CRC per slice,
/// valid replica indexes). OK when the rest may be committed.
fn commit_check(item: &PutEndItem, generation: u64, size: u64, replicas: usize) -> ErrorCode {
    if item.generation != 0 && item.generation != generation {
        return ErrorCode::InvalidWrite;
    }
    if item.slice_crcs.len() as u64 != slice_count(size)
        || item.failed_replicas.iter().any(|&i| i as usize >= replicas)
    {
        return ErrorCode::InvalidParams;
    }
    ErrorCode::Ok
}

/// Splits `locs` (replica-major slices of a `size`-byte value) into the replicas to keep and
/// the slices of those whose transfer failed.
fn split_failed(size: u64, locs: &[SliceLoc], failed: &[u32]) -> (Vec<SliceLoc>, Vec<SliceLoc>) {
    let m = slice_count(size).max(1) as usize;
    let (mut keep, mut lost) = (Vec::with_capacity(locs.len()), Vec::new());
    for (r, replica) in locs.chunks(m).enumerate() {
        if failed.contains(&(r as u32)) {
            lost.extend_from_slice(replica);
        } else {
            keep.extend_from_slice(replica);
        }
    }
    (keep, lost)
}

/// Outcome of a PutStart for one key.
pub type PutStartOutcome = Result<Vec<ReplicaDesc>, ErrorCode>;

/// All object metadata.
pub struct ObjectStore {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    zombies: Mutex<Vec<Zombie>>,
    policy: Policy,
    segments: Arc<Segments>,
    /// Shard where the next eviction pass starts, so passes spread over the shards.
    evict_cursor: AtomicUsize,
    /// Eviction and cleanup counters.
    pub stats: PolicyStats,
    /// Multi-slice SSD copies partly reported: key → (put generation, slices so far).
    offload_pending: Mutex<HashMap<String, offload::Partial>>,
    /// Objects eviction picked whose SSD copy is being written: key → when it was asked.
    evicting: Mutex<HashMap<String, u64>>,
    /// Woken when an SSD copy lands (puts waiting for room look again).
    pub offload_progress: tokio::sync::Notify,
    /// SSD hits per key, approximately (promotion admission).
    sketch: Mutex<sketch::Sketch>,
    /// Promotions in flight, by key.
    promoting: Mutex<HashMap<String, promote::Promoting>>,
    /// Put credit held for clients.
    credits: Mutex<credit::CreditTable>,
}

impl ObjectStore {
    /// An empty store with the given policy, allocating in `segments`.
    pub fn new(policy: Policy, segments: Arc<Segments>) -> ObjectStore {
        ObjectStore {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: RandomState::new(),
            zombies: Mutex::new(Vec::new()),
            policy,
            segments,
            evict_cursor: AtomicUsize::new(0),
            stats: PolicyStats::default(),
            offload_pending: Mutex::new(HashMap::new()),
            evicting: Mutex::new(HashMap::new()),
            offload_progress: tokio::sync::Notify::new(),
            sketch: Mutex::new(sketch::Sketch::default()),
            promoting: Mutex::new(HashMap::new()),
            credits: Mutex::new(credit::CreditTable::default()),
        }
    }

    fn hash(&self, key: &str) -> u64 {
        self.hasher.hash_one(key)
    }

    /// Shard of a hash. Bits 32..40: hashbrown takes bucket bits from the bottom and its
    /// control tag from the top, so the shard bits must not overlap either.
    fn shard_of(hash: u64) -> usize {
        (hash >> 32) as usize & (SHARDS - 1)
    }

    fn shard(&self, key: &str) -> (u64, MutexGuard<'_, Shard>) {
        let h = self.hash(key);
        (h, self.shards[Self::shard_of(h)].lock())
    }

    fn describe(&self, o: &Object, complete: bool) -> Vec<ReplicaDesc> {
        let mut out = Vec::with_capacity(2);
        self.segments
            .describe(o.size(), o.locs(), complete, &mut out);
        out
    }

    /// Size and complete replicas of an object, without granting a lease or touching its
    /// access time (for inspection). `None` when missing or still being written.
    pub fn peek(&self, key: &str) -> Option<(u64, Vec<ReplicaDesc>)> {
        let (h, shard) = self.shard(key);
        let o = shard.get(h, key).filter(|o| o.complete())?;
        Some((o.size(), self.describe(o, true)))
    }

    /// Number of metadata shards (for walking the keys shard by shard).
    pub fn shard_count(&self) -> usize {
        SHARDS
    }

    /// Complete keys of shard `i` accepted by `pred`, at most `limit`.
    pub fn keys_in_shard(
        &self,
        i: usize,
        pred: impl Fn(&str) -> bool,
        limit: usize,
    ) -> Vec<String> {
        let shard = self.shards[i].lock();
        shard
            .iter()
            .filter(|e| e.obj.complete() && pred(&e.key))
            .take(limit)
            .map(|e| e.key.to_string())
            .collect()
    }

    /// Calls `f` with every complete object of shard `i`, holding only that shard's lock
    /// (snapshots walk the shards one at a time; `f` should only copy).
    pub fn for_each_complete(&self, i: usize, mut f: impl FnMut(&str, &Object)) {
        let shard = self.shards[i].lock();
        for e in shard.iter().filter(|e| e.obj.complete()) {
            f(&e.key, &e.obj);
        }
    }

    /// Pins of a complete object, (hard pin, soft pin end or 0), without touching it (for
    /// inspection).
    pub fn pins(&self, key: &str) -> Option<(bool, u64)> {
        let (h, shard) = self.shard(key);
        let o = shard.get(h, key).filter(|o| o.complete())?;
        Some((o.hard_pin(), o.soft_pin_until_ms()))
    }

    /// Number of objects (pending included).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    /// Whether there are no objects.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn soft_pin_until(&self, cfg: &ReplicateConfig, now_ms: u64) -> u64 {
        match cfg.soft_pin_action {
            SoftPinAction::Enable => {
                let ttl = if cfg.soft_pin_ttl_ms == 0 {
                    self.policy.default_soft_pin_ms
                } else {
                    cfg.soft_pin_ttl_ms
                };
                now_ms + ttl.min(self.policy.max_soft_pin_ms)
            }
            SoftPinAction::Preserve | SoftPinAction::Disable => 0,
        }
    }

    /// Places a new value's replicas: their locations, wire descriptors and the generation
    /// that identifies this put (its first slice's).
    fn place(
        &self,
        len: u64,
        cfg: &ReplicateConfig,
        client_host: &str,
    ) -> Result<(Vec<SliceLoc>, Vec<ReplicaDesc>, u64), ErrorCode> {
        let locs = self
            .segments
            .place(len, cfg.replica_num, &cfg.preferred_segments, client_host);
        let Some(first) = locs.first() else {
            return Err(ErrorCode::NoAvailableHandle);
        };
        let generation = first.generation;
        let mut descs = Vec::with_capacity(cfg.replica_num as usize);
        self.segments.describe(len, &locs, false, &mut descs);
        Ok((locs, descs, generation))
    }

    /// Allocates space for a new object. An existing key is refused with
    /// OBJECT_ALREADY_EXISTS and keeps its value, unless it is a PutStart pending for longer
    /// than the discard timeout: that one is preempted (its space is released later).
    /// `(client_id, client_host)`: the writer (recorded with the object) and its host.
    pub fn put_start(
        &self,
        key: &str,
        len: u64,
        cfg: &ReplicateConfig,
        (client_id, client_host): (u64, &str),
        now_ms: u64,
    ) -> PutStartOutcome {
        let (h, mut shard) = self.shard(key);
        self.claim_key(&mut shard, h, key, now_ms)?;
        let (locs, descs, _) = self.place(len, cfg, client_host)?;
        if self.policy.offload_on_evict {
            // A key parked by eviction and then removed must not park the new value.
            self.unpark(key);
        }
        let mut obj = Object::pending(
            len,
            locs,
            cfg.with_hard_pin,
            self.soft_pin_until(cfg, now_ms),
            now_ms,
        );
        obj.set_writer(client_id);
        shard.insert(h, key, obj, |k| self.hash(k));
        Ok(descs)
    }

    /// Makes `key` free for a new put: an existing object refuses it with
    /// OBJECT_ALREADY_EXISTS, unless it is a PutStart pending for longer than the discard
    /// timeout, which is preempted (its space released later).
    fn claim_key(
        &self,
        shard: &mut Shard,
        h: u64,
        key: &str,
        now_ms: u64,
    ) -> Result<(), ErrorCode> {
        let Some(o) = shard.get(h, key) else {
            return Ok(());
        };
        if o.complete() || now_ms.saturating_sub(o.last_access_ms()) < self.policy.discard_ms {
            return Err(ErrorCode::ObjectAlreadyExists);
        }
        let old = shard.remove(h, key, |k| self.hash(k)).expect("present");
        let started_ms = old.last_access_ms();
        self.defer_free(
            started_ms + self.policy.release_ms,
            old.size(),
            old.locs().to_vec(),
        );
        self.stats
            .preempted_put_starts_total
            .fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            key,
            "preempted a PutStart left without PutEnd past the discard timeout"
        );
        Ok(())
    }

    /// Like [`put_start`](Self::put_start), but a complete object gets new space for a
    /// replacement value (copy-on-write); readers keep seeing the current value until
    /// UpsertEnd. A second upsert of the same key in flight is refused with
    /// OBJECT_ALREADY_EXISTS until the discard timeout, then preempted.
    pub fn upsert_start(
        &self,
        key: &str,
        len: u64,
        cfg: &ReplicateConfig,
        writer: (u64, &str),
        now_ms: u64,
    ) -> PutStartOutcome {
        {
            let (h, mut shard) = self.shard(key);
            if let Some(o) = shard.get_mut(h, key).filter(|o| o.complete()) {
                if let Some(u) = o.upsert() {
                    if now_ms.saturating_sub(u.started_ms) < self.policy.discard_ms {
                        return Err(ErrorCode::ObjectAlreadyExists);
                    }
                    let u = o.set_upsert(None).expect("present");
                    self.defer_free(u.started_ms + self.policy.release_ms, u.size, u.locs);
                    self.stats
                        .preempted_put_starts_total
                        .fetch_add(1, Ordering::Relaxed);
                }
                let (locs, descs, put_generation) = self.place(len, cfg, writer.1)?;
                o.set_upsert(Some(Replacement {
                    size: len,
                    put_generation,
                    locs,
                    started_ms: now_ms,
                    hard_pin: cfg.with_hard_pin,
                    soft_pin_until_ms: self.soft_pin_until(cfg, now_ms),
                }));
                return Ok(descs);
            }
        }
        // A new key (or a plain put in flight): an upsert is a put.
        self.put_start(key, len, cfg, writer, now_ms)
    }

    /// Swaps a replacement in: the object takes the new replicas and CRCs atomically under
    /// its shard lock; the old space is freed once every lease granted on it has ended. For
    /// a key without a replacement in flight this is PutEnd.
    pub fn upsert_end(&self, item: PutEndItem, now_ms: u64) -> ErrorCode {
        {
            let (h, mut shard) = self.shard(&item.key);
            if let Some(o) = shard.get_mut(h, &item.key).filter(|o| o.upsert().is_some()) {
                let u = o.upsert_mut().expect("checked");
                let m = slice_count(u.size).max(1) as usize;
                let c = commit_check(&item, u.put_generation, u.size, u.locs.len() / m);
                if c != ErrorCode::Ok {
                    return c;
                }
                let (keep, lost) = split_failed(u.size, &u.locs, &item.failed_replicas);
                self.segments.free(u.size, &lost);
                let mut u = o.set_upsert(None).expect("checked");
                if keep.is_empty() {
                    return ErrorCode::TransferFail;
                }
                u.locs = keep;
                self.segments.commit(&u.locs);
                if self.policy.offload && !self.policy.offload_on_evict {
                    self.segments
                        .offload(u.size, &u.locs, self.policy.disk_eviction);
                }
                let lease_until_ms = o.lease_until_ms();
                let (old_size, old) = o.swap_in(u, item.slice_crcs, now_ms);
                // Readers holding a lease may still read the old bytes; readers with a
                // cached location must not find them any more.
                self.segments.retire(&old);
                self.defer_free(lease_until_ms.max(now_ms), old_size, old);
                return ErrorCode::Ok;
            }
        }
        self.put_end(item, now_ms)
    }

    /// Drops a replacement in flight (the current value stays), or revokes a plain put.
    pub fn upsert_revoke(&self, key: &str) -> ErrorCode {
        {
            let (h, mut shard) = self.shard(key);
            if let Some(o) = shard.get_mut(h, key).filter(|o| o.upsert().is_some()) {
                let u = o.set_upsert(None).expect("checked");
                self.segments.free(u.size, &u.locs);
                return ErrorCode::Ok;
            }
        }
        self.put_revoke(key)
    }

    /// Frees `locs` at `release_at_ms` (the next upkeep after it).
    fn defer_free(&self, release_at_ms: u64, size: u64, locs: Vec<SliceLoc>) {
        self.zombies.lock().push(Zombie {
            release_at_ms,
            size,
            locs,
        });
    }

    /// Commits a pending object with its per-slice CRCs, first dropping the replicas whose
    /// transfer failed. With none left the object is revoked and TRANSFER_FAIL returned. A
    /// PutEnd whose generation names an older, preempted PutStart gets INVALID_WRITE.
    pub fn put_end(&self, mut item: PutEndItem, now_ms: u64) -> ErrorCode {
        let (h, mut shard) = self.shard(&item.key);
        let Some(o) = shard.get_mut(h, &item.key) else {
            return ErrorCode::ObjectNotFound;
        };
        if o.complete() {
            // The same put committed already: a PutEnd resent to a new leader that
            // re-adopted the object from the nodes.
            let same = item.generation != 0
                && o.put_generation() == item.generation
                && o.crcs() == item.slice_crcs.as_slice();
            return if same {
                ErrorCode::Ok
            } else {
                ErrorCode::InvalidWrite
            };
        }
        let m = slice_count(o.size()).max(1) as usize;
        let c = commit_check(&item, o.put_generation(), o.size(), o.locs().len() / m);
        if c != ErrorCode::Ok {
            return c;
        }
        let key = std::mem::take(&mut item.key);
        let c = self.commit_pending(o, item, now_ms);
        if c == ErrorCode::TransferFail {
            shard.remove(h, &key, |k| self.hash(k));
        }
        c
    }

    /// Commits checked `item` into pending `o`: drops the replicas whose transfer failed
    /// (TRANSFER_FAIL when none is left: the caller removes `o`), records the CRCs, tells
    /// the holders, and queues the SSD copy when every object gets one.
    fn commit_pending(&self, o: &mut Object, item: PutEndItem, now_ms: u64) -> ErrorCode {
        if !item.failed_replicas.is_empty() {
            let (keep, lost) = split_failed(o.size(), o.locs(), &item.failed_replicas);
            self.segments.free(o.size(), &lost);
            if keep.is_empty() {
                return ErrorCode::TransferFail;
            }
            o.pin_put_generation();
            o.set_locs(keep);
        }
        o.commit(item.slice_crcs, now_ms);
        self.segments.commit(o.locs());
        if self.policy.offload && !self.policy.offload_on_evict {
            self.segments
                .offload(o.size(), o.locs(), self.policy.disk_eviction);
        }
        ErrorCode::Ok
    }

    /// Drops a pending object and frees its space.
    pub fn put_revoke(&self, key: &str) -> ErrorCode {
        let (h, mut shard) = self.shard(key);
        match shard.get(h, key) {
            None => ErrorCode::ObjectNotFound,
            Some(o) if o.complete() => ErrorCode::InvalidWrite,
            Some(_) => {
                if let Some(o) = shard.remove(h, key, |k| self.hash(k)) {
                    self.free(&o);
                }
                ErrorCode::Ok
            }
        }
    }

    /// Frees all space of an object (its value and any replacement in flight).
    fn free(&self, o: &Object) {
        self.segments.free(o.size(), o.locs());
        if let Some(u) = o.upsert() {
            self.segments.free(u.size, &u.locs);
        }
    }

    /// Bytes allocated for an object in memory (value and replacement in flight; SSD
    /// copies are not counted).
    fn allocated_bytes(o: &Object) -> u64 {
        allocated_bytes(o.size(), o.locs())
            + o.upsert().map_or(0, |u| allocated_bytes(u.size, &u.locs))
    }

    /// Complete replicas of an object; grants a read lease.
    pub fn get_replica_list(&self, key: &str, now_ms: u64) -> ReplicaListResult {
        let (h, mut shard) = self.shard(key);
        let err = |c: ErrorCode| ReplicaListResult {
            status: c.code(),
            size: 0,
            replicas: Vec::new(),
            slice_crcs: Vec::new(),
        };
        match shard.get_mut(h, key) {
            None => err(ErrorCode::ObjectNotFound),
            Some(o) if !o.complete() => err(ErrorCode::ReplicaIsNotReady),
            Some(o) => {
                o.grant_lease(now_ms, self.policy.lease_ms);
                self.note_read(key, o, now_ms);
                ReplicaListResult {
                    status: 0,
                    size: o.size(),
                    replicas: self.describe(o, true),
                    slice_crcs: o.crcs().to_vec(),
                }
            }
        }
    }

    /// 1 when a complete object exists (and grants a lease), else 0.
    pub fn exist(&self, key: &str, now_ms: u64) -> i64 {
        let (h, mut shard) = self.shard(key);
        match shard.get_mut(h, key) {
            Some(o) if o.complete() => {
                o.grant_lease(now_ms, self.policy.lease_ms);
                1
            }
            _ => 0,
        }
    }

    /// Size of a complete object, or a negative code.
    pub fn size(&self, key: &str) -> i64 {
        let (h, shard) = self.shard(key);
        match shard.get(h, key) {
            None => ErrorCode::ObjectNotFound.code() as i64,
            Some(o) if !o.complete() => ErrorCode::ReplicaIsNotReady.code() as i64,
            Some(o) => o.size() as i64,
        }
    }

    /// Removes a complete object. Leased objects need `force`; pending ones are refused.
    pub fn remove(&self, key: &str, force: bool, now_ms: u64) -> ErrorCode {
        let (h, mut shard) = self.shard(key);
        match shard.get(h, key) {
            None => ErrorCode::ObjectNotFound,
            Some(o) if !o.complete() => ErrorCode::ReplicaIsNotReady,
            Some(o) if o.leased(now_ms) && !force => ErrorCode::ObjectHasLease,
            Some(_) => {
                if let Some(o) = shard.remove(h, key, |k| self.hash(k)) {
                    self.free(&o);
                }
                ErrorCode::Ok
            }
        }
    }

    /// Removes every complete object whose key matches `pred`; leased ones only with
    /// `force`. Returns how many were removed. Works shard by shard, so other requests
    /// keep being served in between.
    pub fn remove_matching(&self, pred: impl Fn(&str) -> bool, force: bool, now_ms: u64) -> u64 {
        let mut removed = 0;
        for shard in self.shards.iter() {
            shard.lock().drain_where(
                |k, o| o.complete() && (force || !o.leased(now_ms)) && pred(k),
                |e| {
                    self.free(&e.obj);
                    removed += 1;
                    true
                },
                |k| self.hash(k),
            );
        }
        removed
    }

    /// Frees the space of preempted PutStarts and replaced values whose release time has
    /// come. Cheap: touches only that list. Returns the bytes freed.
    pub fn release_zombies(&self, now_ms: u64) -> u64 {
        let mut freed = 0;
        self.zombies.lock().retain(|z| {
            if z.release_at_ms > now_ms {
                return true;
            }
            self.segments.free(z.size, &z.locs);
            freed += allocated_bytes(z.size, &z.locs);
            false
        });
        if freed > 0 {
            self.stats
                .released_put_start_bytes_total
                .fetch_add(freed, Ordering::Relaxed);
        }
        freed
    }

    /// Removes pending PutStarts abandoned for longer than the release timeout (their
    /// writer died and nobody preempted them) and frees their space; drops replacements
    /// abandoned as long. Scans every shard, one at a time. Returns the bytes freed.
    pub fn sweep_abandoned(&self, now_ms: u64) -> u64 {
        let (mut upserts, mut puts) = (0, 0);
        let stale = |t: u64| now_ms.saturating_sub(t) >= self.policy.release_ms;
        for shard in self.shards.iter() {
            shard.lock().drain_where(
                |_, o| {
                    if o.upsert().is_some_and(|u| stale(u.started_ms)) {
                        let u = o.set_upsert(None).expect("checked");
                        self.segments.free(u.size, &u.locs);
                        upserts += allocated_bytes(u.size, &u.locs);
                    }
                    !o.complete() && stale(o.last_access_ms())
                },
                |e| {
                    puts += Self::allocated_bytes(&e.obj);
                    self.free(&e.obj);
                    true
                },
                |k| self.hash(k),
            );
        }
        let freed = upserts + puts;
        if freed > 0 {
            self.stats
                .released_put_start_bytes_total
                .fetch_add(freed, Ordering::Relaxed);
        }
        freed
    }

    /// Forgets every replica with a slice in segment `slot`, which went away (its space is
    /// gone with it, so nothing is freed there); objects left with no replica are removed.
    /// Returns (replicas dropped, objects removed).
    pub fn drop_segment(&self, slot: u32) -> (u64, u64) {
        self.drop_segments(&[slot])
    }

    /// [`drop_segment`](Self::drop_segment) of several segments in one pass over the
    /// objects (a restarted node's previous instance leaves with its memory and disk
    /// segments at once: a million objects are looked at once, not once per segment).
    pub fn drop_segments(&self, slots: &[u32]) -> (u64, u64) {
        self.drop_credit_in(slots);
        let (mut replicas, mut objects) = (0, 0);
        let gone = |l: &SliceLoc| slots.contains(&l.segment);
        for shard in self.shards.iter() {
            shard.lock().drain_where(
                |_, o| {
                    if o.upsert().is_some_and(|u| u.locs.iter().any(gone)) {
                        let u = o.set_upsert(None).expect("checked");
                        self.segments.free(u.size, &u.locs);
                    }
                    if !o.locs().iter().any(gone) {
                        return false;
                    }
                    let m = slice_count(o.size()).max(1) as usize;
                    let mut keep: Vec<SliceLoc> = Vec::with_capacity(o.locs().len());
                    let mut lost: Vec<SliceLoc> = Vec::new();
                    for r in o.locs().chunks(m) {
                        if r.iter().any(gone) {
                            replicas += 1;
                            lost.extend_from_slice(r);
                        } else {
                            keep.extend_from_slice(r);
                        }
                    }
                    // Other segments of the lost replicas still hold their slices.
                    self.segments.free(o.size(), &lost);
                    if keep.is_empty() {
                        return true;
                    }
                    o.pin_put_generation();
                    o.set_locs(keep);
                    false
                },
                |_| {
                    objects += 1;
                    true
                },
                |k| self.hash(k),
            );
        }
        (replicas, objects)
    }
}
