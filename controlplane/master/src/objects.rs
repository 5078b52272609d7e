//! Object metadata, sharded by key hash so RPC threads rarely meet on one lock.
//!
//! An object is *pending* from PutStart until PutEnd (nobody can read it) and *complete*
//! after. Reads (GetReplicaList, ExistKey) grant a lease; a leased object is not removed
//! without `force`.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};

use mc_schema::ErrorCode;
use mc_schema::limits::slice_count;
use mc_schema::msg::{PutEndItem, ReplicaDesc, ReplicaListResult, ReplicateConfig};
use parking_lot::Mutex;

use crate::segments::{ReplicaAlloc, Segments};

/// Number of metadata shards (a power of two).
const SHARDS: usize = 256;

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
    /// Never evicted.
    pub hard_pin: bool,
}

impl Object {
    fn leased(&self, now_ms: u64) -> bool {
        self.lease_until_ms > now_ms
    }

    fn free(&self) {
        for r in &self.replicas {
            r.free();
        }
    }
}

/// Outcome of a PutStart for one key.
pub type PutStartOutcome = Result<Vec<ReplicaDesc>, ErrorCode>;

/// All object metadata.
pub struct ObjectStore {
    shards: Box<[Mutex<HashMap<String, Object>>]>,
    hasher: RandomState,
}

impl Default for ObjectStore {
    fn default() -> Self {
        ObjectStore {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
        }
    }
}

impl ObjectStore {
    fn shard(&self, key: &str) -> &Mutex<HashMap<String, Object>> {
        let h = self.hasher.hash_one(key) as usize;
        &self.shards[h & (SHARDS - 1)]
    }

    /// Number of objects (pending included).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    /// Whether there are no objects.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Allocates space for a new object. Existing keys (pending or complete) are refused
    /// with OBJECT_ALREADY_EXISTS and keep their value.
    pub fn put_start(
        &self,
        key: &str,
        len: u64,
        cfg: &ReplicateConfig,
        segments: &Segments,
        now_ms: u64,
    ) -> PutStartOutcome {
        let mut shard = self.shard(key).lock();
        if shard.contains_key(key) {
            return Err(ErrorCode::ObjectAlreadyExists);
        }
        let replicas = segments.place(len, cfg.replica_num, &cfg.preferred_segments);
        if replicas.is_empty() {
            return Err(ErrorCode::NoAvailableHandle);
        }
        let descs = replicas.iter().map(|r| r.desc(false)).collect();
        shard.insert(
            key.to_string(),
            Object {
                size: len,
                replicas,
                slice_crcs: Vec::new(),
                complete: false,
                started_ms: now_ms,
                lease_until_ms: 0,
                hard_pin: cfg.with_hard_pin,
            },
        );
        Ok(descs)
    }

    /// Commits a pending object with its per-slice CRCs, first dropping the replicas whose
    /// transfer failed. With none left the object is revoked and TRANSFER_FAIL returned.
    pub fn put_end(&self, item: PutEndItem) -> ErrorCode {
        let mut shard = self.shard(&item.key).lock();
        let Some(o) = shard.get_mut(&item.key) else {
            return ErrorCode::ObjectNotFound;
        };
        if o.complete {
            return ErrorCode::InvalidWrite;
        }
        if item.slice_crcs.len() as u64 != slice_count(o.size)
            || item
                .failed_replicas
                .iter()
                .any(|&i| i as usize >= o.replicas.len())
        {
            return ErrorCode::InvalidParams;
        }
        let mut idx = 0u32;
        o.replicas.retain(|r| {
            let failed = item.failed_replicas.contains(&idx);
            idx += 1;
            if failed {
                r.free();
            }
            !failed
        });
        if o.replicas.is_empty() {
            shard.remove(&item.key);
            return ErrorCode::TransferFail;
        }
        o.slice_crcs = item.slice_crcs;
        o.complete = true;
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

    /// Complete replicas of an object; grants a read lease of `lease_ms`.
    pub fn get_replica_list(&self, key: &str, now_ms: u64, lease_ms: u64) -> ReplicaListResult {
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
                o.lease_until_ms = o.lease_until_ms.max(now_ms + lease_ms);
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
    pub fn exist(&self, key: &str, now_ms: u64, lease_ms: u64) -> i64 {
        let mut shard = self.shard(key).lock();
        match shard.get_mut(key) {
            Some(o) if o.complete => {
                o.lease_until_ms = o.lease_until_ms.max(now_ms + lease_ms);
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

    /// Forgets every replica in a segment that went away; objects left with no replica are
    /// removed. Returns (replicas dropped, objects removed).
    pub fn drop_segment(&self, segment_id: u64) -> (u64, u64) {
        let (mut replicas, mut objects) = (0, 0);
        for shard in self.shards.iter() {
            let mut shard = shard.lock();
            shard.retain(|_, o| {
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
