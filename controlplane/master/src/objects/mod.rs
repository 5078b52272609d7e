//! Object metadata, sharded by key hash so RPC threads rarely meet on one lock.
//!
//! An object is *pending* from PutStart until PutEnd (nobody can read it) and *complete*
//! after. Reads (GetReplicaList, ExistKey) grant a lease and refresh the object's access
//! time; a leased object is neither removed without `force` nor evicted. Eviction takes the
//! least recently used complete objects first, soft-pinned ones last, and never hard-pinned,
//! leased or pending ones. A PutStart left without PutEnd past the discard timeout can be
//! preempted by a new PutStart of the same key; its space waits until the release timeout,
//! because the old writer may still be sending into it.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};

use mc_schema::ErrorCode;
use mc_schema::limits::slice_count;
use mc_schema::msg::{PutEndItem, ReplicaDesc, ReplicaListResult, ReplicateConfig, SoftPinAction};
use parking_lot::Mutex;

use crate::segments::{ReplicaAlloc, Segments};

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
        }
    }
}

/// Metadata of one object.
#[derive(Debug)]
pub struct Object {
    /// Value length in bytes.
    pub size: u64,
    /// Replicas.
    pub replicas: Vec<ReplicaAlloc>,
    /// CRC32C of each slice, recorded at PutEnd.
    pub slice_crcs: Vec<u32>,
    /// PutEnd seen.
    pub complete: bool,
    /// PutStart time.
    pub started_ms: u64,
    /// Read lease end.
    pub lease_until_ms: u64,
    /// Last read or write, for LRU eviction.
    pub last_access_ms: u64,
    /// Never evicted.
    pub hard_pin: bool,
    /// Soft pin end (0 = not soft-pinned).
    pub soft_pin_until_ms: u64,
    /// Generation of the first slice PutStart handed out; identifies this put.
    pub put_generation: u64,
    /// A replacement value being written (UpsertStart done, UpsertEnd not yet).
    pub upsert: Option<Box<Replacement>>,
}

/// A replacement value in flight: its own space, swapped in at UpsertEnd.
#[derive(Debug)]
pub struct Replacement {
    /// New value length.
    pub size: u64,
    /// New replicas.
    pub replicas: Vec<ReplicaAlloc>,
    /// UpsertStart time.
    pub started_ms: u64,
    /// Generation identifying this upsert.
    pub put_generation: u64,
    /// Hard pin the object takes at UpsertEnd.
    pub hard_pin: bool,
    /// Soft pin end the object takes at UpsertEnd.
    pub soft_pin_until_ms: u64,
}

impl Object {
    fn leased(&self, now_ms: u64) -> bool {
        self.lease_until_ms > now_ms
    }

    fn soft_pinned(&self, now_ms: u64) -> bool {
        self.soft_pin_until_ms > now_ms
    }

    fn evictable(&self, now_ms: u64) -> bool {
        self.complete && !self.hard_pin && !self.leased(now_ms) && self.upsert.is_none()
    }

    fn allocated_bytes(&self) -> u64 {
        let up = self.upsert.iter().flat_map(|u| u.replicas.iter());
        self.replicas
            .iter()
            .chain(up)
            .flat_map(|r| r.slices.iter())
            .map(|s| s.alloc.size)
            .sum()
    }

    fn free(&self) {
        let up = self.upsert.iter().flat_map(|u| u.replicas.iter());
        for r in self.replicas.iter().chain(up) {
            r.free();
        }
    }
}

/// Space of a preempted PutStart, held until its writer can no longer be sending.
struct Zombie {
    release_at_ms: u64,
    replicas: Vec<ReplicaAlloc>,
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
}

/// Checks a PutEnd / UpsertEnd against the put it names (generation, one CRC per slice,
/// valid replica indexes) and frees the replicas whose transfer failed. OK when the rest
/// may be committed (possibly none are left: the caller then answers TRANSFER_FAIL).
fn commit_check(
    item: &PutEndItem,
    generation: u64,
    size: u64,
    replicas: &mut Vec<ReplicaAlloc>,
) -> ErrorCode {
    if item.generation != 0 && item.generation != generation {
        return ErrorCode::InvalidWrite;
    }
    if item.slice_crcs.len() as u64 != slice_count(size)
        || item
            .failed_replicas
            .iter()
            .any(|&i| i as usize >= replicas.len())
    {
        return ErrorCode::InvalidParams;
    }
    let mut idx = 0u32;
    replicas.retain(|r| {
        let failed = item.failed_replicas.contains(&idx);
        idx += 1;
        if failed {
            r.free();
        }
        !failed
    });
    ErrorCode::Ok
}

/// Places a new value's replicas: the allocations, their wire descriptors, and the
/// generation that identifies this put (its first slice's).
fn place(
    len: u64,
    cfg: &ReplicateConfig,
    client_host: &str,
    segments: &Segments,
) -> Result<(Vec<ReplicaAlloc>, Vec<ReplicaDesc>, u64), ErrorCode> {
    let replicas = segments.place(len, cfg.replica_num, &cfg.preferred_segments, client_host);
    if replicas.is_empty() {
        return Err(ErrorCode::NoAvailableHandle);
    }
    let descs: Vec<ReplicaDesc> = replicas.iter().map(|r| r.desc(false)).collect();
    let generation = descs
        .first()
        .and_then(|r| r.slices.first())
        .map_or(0, |s| s.generation);
    Ok((replicas, descs, generation))
}

/// Outcome of a PutStart for one key.
pub type PutStartOutcome = Result<Vec<ReplicaDesc>, ErrorCode>;

/// All object metadata.
pub struct ObjectStore {
    shards: Box<[Mutex<HashMap<String, Object>>]>,
    hasher: RandomState,
    zombies: Mutex<Vec<Zombie>>,
    policy: Policy,
    /// Eviction and cleanup counters.
    pub stats: PolicyStats,
}

impl Default for ObjectStore {
    fn default() -> Self {
        ObjectStore::new(Policy::default())
    }
}

impl ObjectStore {
    /// An empty store with the given policy.
    pub fn new(policy: Policy) -> ObjectStore {
        ObjectStore {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            zombies: Mutex::new(Vec::new()),
            policy,
            stats: PolicyStats::default(),
        }
    }

    fn shard(&self, key: &str) -> &Mutex<HashMap<String, Object>> {
        let h = self.hasher.hash_one(key) as usize;
        &self.shards[h & (SHARDS - 1)]
    }

    /// Size and complete replicas of an object, without granting a lease or touching its
    /// access time (for inspection). `None` when missing or still being written.
    pub fn peek(&self, key: &str) -> Option<(u64, Vec<ReplicaDesc>)> {
        let shard = self.shard(key).lock();
        let o = shard.get(key).filter(|o| o.complete)?;
        Some((o.size, o.replicas.iter().map(|r| r.desc(true)).collect()))
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
            .filter(|(k, o)| o.complete && pred(k))
            .take(limit)
            .map(|(k, _)| k.clone())
            .collect()
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

    /// Allocates space for a new object. An existing key is refused with
    /// OBJECT_ALREADY_EXISTS and keeps its value, unless it is a PutStart pending for longer
    /// than the discard timeout: that one is preempted (its space is released later).
    pub fn put_start(
        &self,
        key: &str,
        len: u64,
        cfg: &ReplicateConfig,
        client_host: &str,
        segments: &Segments,
        now_ms: u64,
    ) -> PutStartOutcome {
        let mut shard = self.shard(key).lock();
        if let Some(o) = shard.get(key) {
            if o.complete || now_ms.saturating_sub(o.started_ms) < self.policy.discard_ms {
                return Err(ErrorCode::ObjectAlreadyExists);
            }
            let old = shard.remove(key).expect("present");
            self.defer_free(old.started_ms + self.policy.release_ms, old.replicas);
            self.stats
                .preempted_put_starts_total
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                key,
                "preempted a PutStart left without PutEnd past the discard timeout"
            );
        }
        let (replicas, descs, put_generation) = place(len, cfg, client_host, segments)?;
        shard.insert(
            key.to_string(),
            Object {
                size: len,
                replicas,
                slice_crcs: Vec::new(),
                complete: false,
                started_ms: now_ms,
                lease_until_ms: 0,
                last_access_ms: now_ms,
                hard_pin: cfg.with_hard_pin,
                soft_pin_until_ms: self.soft_pin_until(cfg, now_ms),
                put_generation,
                upsert: None,
            },
        );
        Ok(descs)
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
        client_host: &str,
        segments: &Segments,
        now_ms: u64,
    ) -> PutStartOutcome {
        {
            let mut shard = self.shard(key).lock();
            if let Some(o) = shard.get_mut(key).filter(|o| o.complete) {
                if let Some(u) = &o.upsert {
                    if now_ms.saturating_sub(u.started_ms) < self.policy.discard_ms {
                        return Err(ErrorCode::ObjectAlreadyExists);
                    }
                    let u = o.upsert.take().expect("present");
                    self.defer_free(u.started_ms + self.policy.release_ms, u.replicas);
                    self.stats
                        .preempted_put_starts_total
                        .fetch_add(1, Ordering::Relaxed);
                }
                let (replicas, descs, put_generation) = place(len, cfg, client_host, segments)?;
                o.upsert = Some(Box::new(Replacement {
                    size: len,
                    put_generation,
                    replicas,
                    started_ms: now_ms,
                    hard_pin: cfg.with_hard_pin,
                    soft_pin_until_ms: self.soft_pin_until(cfg, now_ms),
                }));
                return Ok(descs);
            }
        }
        // A new key (or a plain put in flight): an upsert is a put.
        self.put_start(key, len, cfg, client_host, segments, now_ms)
    }

    /// Swaps a replacement in: the object takes the new replicas and CRCs atomically under
    /// its shard lock; the old space is freed once every lease granted on it has ended. For
    /// a key without a replacement in flight this is PutEnd.
    pub fn upsert_end(&self, item: PutEndItem, now_ms: u64) -> ErrorCode {
        {
            let mut shard = self.shard(&item.key).lock();
            if let Some(o) = shard.get_mut(&item.key).filter(|o| o.upsert.is_some()) {
                let u = o.upsert.as_mut().expect("checked");
                let c = commit_check(&item, u.put_generation, u.size, &mut u.replicas);
                if c != ErrorCode::Ok {
                    return c;
                }
                let u = o.upsert.take().expect("checked");
                if u.replicas.is_empty() {
                    return ErrorCode::TransferFail;
                }
                let old = std::mem::replace(&mut o.replicas, u.replicas);
                o.size = u.size;
                o.slice_crcs = item.slice_crcs;
                o.put_generation = u.put_generation;
                o.hard_pin = u.hard_pin;
                o.soft_pin_until_ms = u.soft_pin_until_ms;
                o.last_access_ms = now_ms;
                self.defer_free(o.lease_until_ms.max(now_ms), old);
                return ErrorCode::Ok;
            }
        }
        self.put_end(item, now_ms)
    }

    /// Drops a replacement in flight (the current value stays), or revokes a plain put.
    pub fn upsert_revoke(&self, key: &str) -> ErrorCode {
        {
            let mut shard = self.shard(key).lock();
            if let Some(o) = shard.get_mut(key).filter(|o| o.upsert.is_some()) {
                for r in o.upsert.take().expect("checked").replicas {
                    r.free();
                }
                return ErrorCode::Ok;
            }
        }
        self.put_revoke(key)
    }

    /// Frees `replicas` at `release_at_ms` (the next upkeep after it).
    fn defer_free(&self, release_at_ms: u64, replicas: Vec<ReplicaAlloc>) {
        self.zombies.lock().push(Zombie {
            release_at_ms,
            replicas,
        });
    }

    /// Commits a pending object with its per-slice CRCs, first dropping the replicas whose
    /// transfer failed. With none left the object is revoked and TRANSFER_FAIL returned. A
    /// PutEnd whose generation names an older, preempted PutStart gets INVALID_WRITE.
    pub fn put_end(&self, item: PutEndItem, now_ms: u64) -> ErrorCode {
        let mut shard = self.shard(&item.key).lock();
        let Some(o) = shard.get_mut(&item.key) else {
            return ErrorCode::ObjectNotFound;
        };
        if o.complete {
            return ErrorCode::InvalidWrite;
        }
        let c = commit_check(&item, o.put_generation, o.size, &mut o.replicas);
        if c != ErrorCode::Ok {
            return c;
        }
        if o.replicas.is_empty() {
            shard.remove(&item.key);
            return ErrorCode::TransferFail;
        }
        o.slice_crcs = item.slice_crcs;
        o.complete = true;
        o.last_access_ms = now_ms;
        ErrorCode::Ok
    }

    /// Drops a pending object and frees its space.
    pub fn put_revoke(&self, key: &str) -> ErrorCode {
        let mut shard = self.shard(key).lock();
        match shard.get(key) {
            None => ErrorCode::ObjectNotFound,
            Some(o) if o.complete => ErrorCode::InvalidWrite,
            Some(_) => {
                if let Some(o) = shard.remove(key) {
                    o.free();
                }
                ErrorCode::Ok
            }
        }
    }

    /// Complete replicas of an object; grants a read lease.
    pub fn get_replica_list(&self, key: &str, now_ms: u64) -> ReplicaListResult {
        let mut shard = self.shard(key).lock();
        let err = |c: ErrorCode| ReplicaListResult {
            status: c.code(),
            size: 0,
            replicas: Vec::new(),
            slice_crcs: Vec::new(),
        };
        match shard.get_mut(key) {
            None => err(ErrorCode::ObjectNotFound),
            Some(o) if !o.complete => err(ErrorCode::ReplicaIsNotReady),
            Some(o) => {
                o.lease_until_ms = o.lease_until_ms.max(now_ms + self.policy.lease_ms);
                o.last_access_ms = now_ms;
                ReplicaListResult {
                    status: 0,
                    size: o.size,
                    replicas: o.replicas.iter().map(|r| r.desc(true)).collect(),
                    slice_crcs: o.slice_crcs.clone(),
                }
            }
        }
    }

    /// 1 when a complete object exists (and grants a lease), else 0.
    pub fn exist(&self, key: &str, now_ms: u64) -> i64 {
        let mut shard = self.shard(key).lock();
        match shard.get_mut(key) {
            Some(o) if o.complete => {
                o.lease_until_ms = o.lease_until_ms.max(now_ms + self.policy.lease_ms);
                o.last_access_ms = now_ms;
                1
            }
            _ => 0,
        }
    }

    /// Size of a complete object, or a negative code.
    pub fn size(&self, key: &str) -> i64 {
        let shard = self.shard(key).lock();
        match shard.get(key) {
            None => ErrorCode::ObjectNotFound.code() as i64,
            Some(o) if !o.complete => ErrorCode::ReplicaIsNotReady.code() as i64,
            Some(o) => o.size as i64,
        }
    }

    /// Removes a complete object. Leased objects need `force`; pending ones are refused.
    pub fn remove(&self, key: &str, force: bool, now_ms: u64) -> ErrorCode {
        let mut shard = self.shard(key).lock();
        match shard.get(key) {
            None => ErrorCode::ObjectNotFound,
            Some(o) if !o.complete => ErrorCode::ReplicaIsNotReady,
            Some(o) if o.leased(now_ms) && !force => ErrorCode::ObjectHasLease,
            Some(_) => {
                if let Some(o) = shard.remove(key) {
                    o.free();
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
            let mut shard = shard.lock();
            shard.retain(|k, o| {
                let go = o.complete && (force || !o.leased(now_ms)) && pred(k);
                if go {
                    o.free();
                    removed += 1;
                }
                !go
            });
        }
        removed
    }

    /// Evicts least recently used objects until at least `target_bytes` of allocated space
    /// is freed or nothing evictable is left; soft-pinned objects go last (and only when
    /// the policy allows). Locks one shard at a time. Returns (objects, bytes) freed.
    pub fn evict(&self, target_bytes: u64, now_ms: u64) -> (u64, u64) {
        let mut bytes = self.release_zombies(now_ms);
        if bytes >= target_bytes {
            return (0, bytes);
        }
        // Candidates: (soft-pinned, last access, shard, key).
        let mut cands: Vec<(bool, u64, usize, String)> = Vec::new();
        for (i, shard) in self.shards.iter().enumerate() {
            let shard = shard.lock();
            cands.extend(
                shard
                    .iter()
                    .filter(|(_, o)| o.evictable(now_ms))
                    .filter(|(_, o)| self.policy.allow_evict_soft_pinned || !o.soft_pinned(now_ms))
                    .map(|(k, o)| (o.soft_pinned(now_ms), o.last_access_ms, i, k.clone())),
            );
        }
        cands.sort_unstable_by_key(|c| (c.0, c.1));
        let mut objects = 0;
        for (_, _, i, key) in cands {
            if bytes >= target_bytes {
                break;
            }
            let mut shard = self.shards[i].lock();
            if shard.get(&key).is_some_and(|o| o.evictable(now_ms)) {
                let o = shard.remove(&key).expect("present");
                bytes += o.allocated_bytes();
                o.free();
                objects += 1;
            }
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

    /// Frees the space of preempted PutStarts whose release time has come. Cheap: touches
    /// only the preempted list. Returns the bytes freed.
    pub fn release_zombies(&self, now_ms: u64) -> u64 {
        let mut freed = 0;
        self.zombies.lock().retain(|z| {
            if z.release_at_ms > now_ms {
                return true;
            }
            for r in &z.replicas {
                r.free();
                freed += r.slices.iter().map(|s| s.alloc.size).sum::<u64>();
            }
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
    /// writer died and nobody preempted them) and frees their space. Scans every shard, one
    /// at a time. Returns the bytes freed.
    pub fn sweep_abandoned(&self, now_ms: u64) -> u64 {
        let mut freed = 0;
        for shard in self.shards.iter() {
            shard.lock().retain(|_, o| {
                let stale_upsert = o
                    .upsert
                    .as_ref()
                    .is_some_and(|u| now_ms.saturating_sub(u.started_ms) >= self.policy.release_ms);
                if stale_upsert {
                    for r in o.upsert.take().expect("checked").replicas {
                        freed += r.slices.iter().map(|s| s.alloc.size).sum::<u64>();
                        r.free();
                    }
                }
                let stale =
                    !o.complete && now_ms.saturating_sub(o.started_ms) >= self.policy.release_ms;
                if stale {
                    freed += o.allocated_bytes();
                    o.free();
                }
                !stale
            });
        }
        if freed > 0 {
            self.stats
                .released_put_start_bytes_total
                .fetch_add(freed, Ordering::Relaxed);
        }
        freed
    }

    /// Forgets every replica in a segment that went away; objects left with no replica are
    /// removed. Returns (replicas dropped, objects removed).
    pub fn drop_segment(&self, segment_id: u64) -> (u64, u64) {
        let (mut replicas, mut objects) = (0, 0);
        for shard in self.shards.iter() {
            let mut shard = shard.lock();
            shard.retain(|_, o| {
                let upsert_hit = o
                    .upsert
                    .as_ref()
                    .is_some_and(|u| u.replicas.iter().any(|r| r.uses(segment_id)));
                if upsert_hit {
                    for r in o.upsert.take().expect("checked").replicas {
                        r.free();
                    }
                }
                let before = o.replicas.len();
                o.replicas.retain(|r| {
                    if r.uses(segment_id) {
                        r.free();
                        false
                    } else {
                        true
                    }
                });
                replicas += (before - o.replicas.len()) as u64;
                if o.replicas.is_empty() {
                    objects += 1;
                    false
                } else {
                    true
                }
            });
        }
        (replicas, objects)
    }
}
