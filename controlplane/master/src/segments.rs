//! Mounted segments and replica placement.
//!
//! A segment is one shard's memory on one node (named `host:port`); its host is the failure
//! domain. Each segment has its own offset allocator behind its own lock, so allocations in
//! different segments never contend.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use mc_schema::limits::{slice_count, slice_len};
use mc_schema::msg::{ReplicaDesc, SliceDesc};
use parking_lot::{Mutex, RwLock};
use rand::seq::SliceRandom;

use crate::alloc::offset::{Allocation, OffsetAllocator};

/// One mounted segment.
#[derive(Debug)]
pub struct Segment {
    /// Id chosen by the shard.
    pub id: u64,
    /// `host:port`.
    pub name: String,
    /// Failure domain.
    pub host: String,
    /// Data endpoint clients connect to.
    pub endpoint: String,
    /// Client (node agent) that mounted it.
    pub client_id: u64,
    /// Capacity in bytes.
    pub size_bytes: u64,
    /// Cleared at unmount: no new allocations, frees become no-ops.
    mounted: AtomicBool,
    /// Set when the node drains: no new allocations, existing objects stay readable.
    draining: AtomicBool,
    alloc: Mutex<OffsetAllocator>,
}

impl Segment {
    /// Whether the segment is mounted (its memory still exists).
    pub fn is_mounted(&self) -> bool {
        self.mounted.load(Ordering::Acquire)
    }

    /// Whether the segment takes new allocations.
    pub fn is_allocatable(&self) -> bool {
        self.is_mounted() && !self.draining.load(Ordering::Acquire)
    }

    /// Bytes allocated.
    pub fn allocated_bytes(&self) -> u64 {
        self.alloc.lock().allocated_bytes()
    }

    fn allocate(&self, bytes: u64) -> Option<Allocation> {
        if !self.is_allocatable() {
            return None;
        }
        self.alloc.lock().allocate(bytes)
    }

    /// Returns a range to the allocator (no-op once unmounted: the memory is gone).
    pub fn free(&self, a: Allocation) {
        if self.is_mounted() {
            self.alloc.lock().free(a);
        }
    }
}

/// How hosts and segments are ordered for a new replica (`--allocation_strategy`), on top
/// of preferred segments and the one-replica-per-host rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Random order: fastest, spreads load statistically.
    #[default]
    Random,
    /// Emptiest first (highest free share), for hosts and for segments within a host.
    FreeRatioFirst,
    /// The writer's host first, then random.
    LocalFirst,
}

impl Strategy {
    /// Parses Mooncake's names.
    pub fn from_name(s: &str) -> Option<Strategy> {
        Some(match s {
            "random" => Strategy::Random,
            "free_ratio_first" => Strategy::FreeRatioFirst,
            "local_first" => Strategy::LocalFirst,
            _ => return None,
        })
    }
}

/// One slice of an allocated replica.
#[derive(Debug, Clone)]
pub struct SliceAlloc {
    /// Owning segment.
    pub segment: Arc<Segment>,
    /// The range.
    pub alloc: Allocation,
    /// Requested length (the allocation may be rounded up).
    pub length: u64,
    /// Allocation generation.
    pub generation: u64,
}

/// One replica's slices.
#[derive(Debug, Clone)]
pub struct ReplicaAlloc {
    /// Slices in value order.
    pub slices: Vec<SliceAlloc>,
}

impl ReplicaAlloc {
    /// Frees every slice.
    pub fn free(&self) {
        for s in &self.slices {
            s.segment.free(s.alloc);
        }
    }

    /// Whether any slice lives in `segment_id`.
    pub fn uses(&self, segment_id: u64) -> bool {
        self.slices.iter().any(|s| s.segment.id == segment_id)
    }

    /// Wire descriptor.
    pub fn desc(&self, complete: bool) -> ReplicaDesc {
        ReplicaDesc {
            complete,
            slices: self
                .slices
                .iter()
                .map(|s| SliceDesc {
                    segment_id: s.segment.id,
                    endpoint: s.segment.endpoint.clone(),
                    offset: s.alloc.offset,
                    length: s.length,
                    generation: s.generation,
                })
                .collect(),
        }
    }
}

/// Why a mount was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum MountError {
    /// Same id already mounted by another client.
    AlreadyExists,
    /// Bad parameters.
    Invalid(String),
}

/// All mounted segments.
#[derive(Debug, Default)]
pub struct Segments {
    by_id: RwLock<HashMap<u64, Arc<Segment>>>,
    generation: AtomicU64,
    max_allocations: u32,
    strategy: Strategy,
    /// Replicas placed on a host that already holds another replica of the same object
    /// (fewer hosts than replicas).
    pub shared_host_replicas_total: AtomicU64,
}

impl Segments {
    /// An empty table; each segment's allocator tracks at most `max_allocations` ranges.
    pub fn new(max_allocations: u32, strategy: Strategy) -> Segments {
        Segments {
            strategy,
            by_id: RwLock::new(HashMap::new()),
            generation: AtomicU64::new(1),
            max_allocations,
            shared_host_replicas_total: AtomicU64::new(0),
        }
    }

    /// Stops allocations in the given segments of `client_id`; returns how many were found.
    pub fn drain(&self, client_id: u64, ids: &[u64]) -> usize {
        let map = self.by_id.read();
        ids.iter()
            .filter_map(|id| map.get(id))
            .filter(|s| s.client_id == client_id)
            .map(|s| s.draining.store(true, Ordering::Release))
            .count()
    }

    /// Mounts a segment. Re-mounting the same id by the same client is accepted (idempotent).
    pub fn mount(
        &self,
        client_id: u64,
        id: u64,
        name: &str,
        host: &str,
        endpoint: &str,
        size_bytes: u64,
    ) -> Result<Arc<Segment>, MountError> {
        if id == 0 || size_bytes == 0 || name.is_empty() || endpoint.is_empty() {
            return Err(MountError::Invalid(
                "segment id, size, name and endpoint must be set".into(),
            ));
        }
        let mut map = self.by_id.write();
        if let Some(s) = map.get(&id) {
            if s.client_id == client_id && s.size_bytes == size_bytes {
                return Ok(s.clone());
            }
            return Err(MountError::AlreadyExists);
        }
        let seg = Arc::new(Segment {
            id,
            name: name.to_string(),
            host: if host.is_empty() { name } else { host }.to_string(),
            endpoint: endpoint.to_string(),
            client_id,
            size_bytes,
            mounted: AtomicBool::new(true),
            draining: AtomicBool::new(false),
            alloc: Mutex::new(OffsetAllocator::new(size_bytes, self.max_allocations)),
        });
        map.insert(id, seg.clone());
        Ok(seg)
    }

    /// Unmounts; returns the segment if it was mounted by `client_id` (0 = any).
    pub fn unmount(&self, client_id: u64, id: u64) -> Option<Arc<Segment>> {
        let mut map = self.by_id.write();
        match map.get(&id) {
            Some(s) if client_id == 0 || s.client_id == client_id => {
                s.mounted.store(false, Ordering::Release);
                map.remove(&id)
            }
            _ => None,
        }
    }

    /// Segments of a client.
    pub fn of_client(&self, client_id: u64) -> Vec<u64> {
        let map = self.by_id.read();
        map.values()
            .filter(|s| s.client_id == client_id)
            .map(|s| s.id)
            .collect()
    }

    /// Every mounted segment, sorted by name.
    pub fn list(&self) -> Vec<Arc<Segment>> {
        let mut v: Vec<Arc<Segment>> = self.by_id.read().values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Number of mounted segments.
    pub fn len(&self) -> usize {
        self.by_id.read().len()
    }

    /// Whether no segment is mounted.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// (allocated, capacity) bytes over all segments.
    pub fn usage(&self) -> (u64, u64) {
        let map = self.by_id.read();
        map.values().fold((0, 0), |(a, c), s| {
            (a + s.allocated_bytes(), c + s.size_bytes)
        })
    }

    /// Places `replica_num` replicas of a `len`-byte value. Replicas go to distinct hosts
    /// while there are enough; slices of one replica are striped over the segments of its
    /// host. Segments (or hosts) named in `preferred` are tried first, then the writer's
    /// host under `local_first`. Returns the replicas placed (possibly fewer than asked,
    /// never zero on success).
    pub fn place(
        &self,
        len: u64,
        replica_num: u32,
        preferred: &[String],
        client_host: &str,
    ) -> Vec<ReplicaAlloc> {
        let local;
        let preferred = if self.strategy == Strategy::LocalFirst && !client_host.is_empty() {
            local = [preferred, &[client_host.to_string()]].concat();
            &local[..]
        } else {
            preferred
        };
        let hosts = self.hosts_in_order(preferred);
        let mut placed: Vec<ReplicaAlloc> = Vec::new();
        let mut used_hosts: Vec<&str> = Vec::new();
        for _ in 0..replica_num {
            let fresh = hosts
                .iter()
                .filter(|(h, _)| !used_hosts.contains(&h.as_str()));
            let reused = hosts
                .iter()
                .filter(|(h, _)| used_hosts.contains(&h.as_str()));
            let mut done = false;
            for (host, segs) in fresh.chain(reused) {
                let avoid: Vec<u64> = placed
                    .iter()
                    .flat_map(|r| r.slices.iter().map(|s| s.segment.id))
                    .collect();
                if let Some(r) = self.place_on_host(len, segs, &avoid) {
                    if used_hosts.contains(&host.as_str()) {
                        self.shared_host_replicas_total
                            .fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(
                            %host,
                            replicas = replica_num,
                            hosts = hosts.len(),
                            "fewer hosts than replicas: two replicas share a host (on distinct segments)"
                        );
                    }
                    used_hosts.push(host);
                    placed.push(r);
                    done = true;
                    break;
                }
            }
            if !done {
                break;
            }
        }
        placed
    }

    fn hosts_in_order(&self, preferred: &[String]) -> Vec<(String, Vec<Arc<Segment>>)> {
        let map = self.by_id.read();
        let mut by_host: HashMap<&str, Vec<Arc<Segment>>> = HashMap::new();
        for s in map.values().filter(|s| s.is_allocatable()) {
            by_host.entry(s.host.as_str()).or_default().push(s.clone());
        }
        let mut rng = rand::rng();
        let mut hosts: Vec<(String, Vec<Arc<Segment>>)> = by_host
            .into_iter()
            .map(|(h, mut segs)| {
                segs.shuffle(&mut rng);
                (h.to_string(), segs)
            })
            .collect();
        hosts.shuffle(&mut rng);
        if self.strategy == Strategy::FreeRatioFirst {
            let free_share = |segs: &[Arc<Segment>]| {
                let (used, cap) = segs.iter().fold((0u64, 0u64), |(u, c), s| {
                    (u + s.allocated_bytes(), c + s.size_bytes)
                });
                1.0 - used as f64 / cap.max(1) as f64
            };
            hosts.sort_by(|a, b| free_share(&b.1).total_cmp(&free_share(&a.1)));
            for (_, segs) in hosts.iter_mut() {
                segs.sort_by(|a, b| {
                    free_share(std::slice::from_ref(b))
                        .total_cmp(&free_share(std::slice::from_ref(a)))
                });
            }
        }
        let rank = |h: &(String, Vec<Arc<Segment>>)| {
            preferred
                .iter()
                .position(|p| *p == h.0 || h.1.iter().any(|s| s.name == *p))
                .unwrap_or(usize::MAX)
        };
        hosts.sort_by_key(rank);
        for (_, segs) in hosts.iter_mut() {
            segs.sort_by_key(|s| {
                preferred
                    .iter()
                    .position(|p| *p == s.name)
                    .unwrap_or(usize::MAX)
            });
        }
        hosts
    }

    /// Allocates every slice of one replica on one host's segments, striping round robin,
    /// never in a segment listed in `avoid` (another replica's). All or nothing.
    fn place_on_host(
        &self,
        len: u64,
        segs: &[Arc<Segment>],
        avoid: &[u64],
    ) -> Option<ReplicaAlloc> {
        let order: Vec<&Arc<Segment>> = segs.iter().filter(|s| !avoid.contains(&s.id)).collect();
        if order.is_empty() {
            return None;
        }
        let n = slice_count(len);
        let mut slices = Vec::with_capacity(n as usize);
        for i in 0..n {
            let want = slice_len(len, i);
            let start = i as usize % order.len();
            let got = (0..order.len()).find_map(|k| {
                let seg = order[(start + k) % order.len()];
                seg.allocate(want).map(|a| (seg.clone(), a))
            });
            match got {
                Some((segment, alloc)) => slices.push(SliceAlloc {
                    segment,
                    alloc,
                    length: want,
                    generation: self.generation.fetch_add(1, Ordering::Relaxed),
                }),
                None => {
                    ReplicaAlloc { slices }.free();
                    return None;
                }
            }
        }
        Some(ReplicaAlloc { slices })
    }
}
