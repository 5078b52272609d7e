//! Mounted segments and replica placement.
//!
//! A segment is one shard's memory on one node (named `host:port`); its host is the failure
//! domain. Each segment has its own offset allocator behind its own lock, so allocations in
//! different segments never contend.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use mc_schema::limits::{slice_count, slice_len};
use mc_schema::msg::{ReplicaDesc, ReplicaKind, SliceDesc};
use parking_lot::{Mutex, RwLock};
use rand::seq::SliceRandom;

use mc_schema::generation::{MAX_TERM, compose, term_of};
use mc_schema::msg::Notice;

use crate::MasterError;
use crate::alloc::offset::{ALIGN_BYTES, Allocation, OffsetAllocator};
use crate::notices::Notices;

/// One mounted segment.
#[derive(Debug)]
pub struct Segment {
    /// Id chosen by the shard.
    pub id: u64,
    /// Index in the segment table; objects name their segments by slot (4 bytes, not an
    /// `Arc`). Never reused, so a slot named by a stale location still means this segment.
    pub slot: u32,
    /// `host:port`.
    pub name: String,
    /// Failure domain.
    pub host: String,
    /// Data endpoint clients connect to.
    pub endpoint: String,
    /// Client (node agent) that mounted it.
    pub client_id: u64,
    /// A shard's SSD record store: never placed into, holds offloaded copies whose
    /// locations name records, not allocator ranges.
    pub disk: bool,
    /// Capacity in bytes.
    pub size_bytes: u64,
    /// Cleared at unmount (under the allocator lock): no new allocations, frees become
    /// no-ops.
    mounted: AtomicBool,
    /// Set when the node drains: no new allocations, existing objects stay readable.
    draining: AtomicBool,
    /// Set from a mount until the node's inventory is adopted: nothing new is placed here
    /// before the master knows what the node already holds.
    awaiting_inventory: AtomicBool,
    alloc: Mutex<OffsetAllocator>,
}

impl Segment {
    /// Whether the segment is CXL memory (a node names its CXL segment `<endpoint>/cxl`).
    pub fn is_cxl(&self) -> bool {
        self.name.ends_with("/cxl")
    }

    /// Whether the segment is mounted (its memory still exists).
    pub fn is_mounted(&self) -> bool {
        self.mounted.load(Ordering::Acquire)
    }

    /// Whether the segment takes new allocations.
    pub fn is_allocatable(&self) -> bool {
        self.is_mounted()
            && !self.draining.load(Ordering::Acquire)
            && !self.awaiting_inventory.load(Ordering::Acquire)
    }

    /// Replaces the (empty) allocator of a segment awaiting its inventory with one holding
    /// `used` (see [`OffsetAllocator::with_used`]); returns each range's allocator node, or
    /// the index of a range that does not fit.
    pub fn adopt_ranges(&self, used: &[(u64, u64, u64)]) -> Result<Vec<u32>, usize> {
        let mut alloc = self.alloc.lock();
        // Only the empty allocator of a segment awaiting its report may be replaced: one
        // that placement uses holds live allocations the report knows nothing of.
        if !self.awaiting_inventory.load(Ordering::Acquire) {
            return Err(0);
        }
        let max = alloc.max_allocations();
        let (fresh, nodes) = OffsetAllocator::with_used(self.size_bytes, max, used)?;
        if self.is_mounted() {
            *alloc = fresh;
        }
        Ok(nodes)
    }

    /// Bytes allocated.
    pub fn allocated_bytes(&self) -> u64 {
        self.alloc.lock().allocated_bytes()
    }

    fn allocate(&self, bytes: u64, generation: u64) -> Option<Allocation> {
        if !self.is_allocatable() {
            return None;
        }
        let mut alloc = self.alloc.lock();
        // Checked again under the lock: an unmount in between has replaced the allocator.
        if !self.is_mounted() {
            return None;
        }
        alloc.allocate_with_generation(bytes, generation)
    }

    /// Returns the range of slice `loc` (`length` bytes requested) to the allocator; a no-op
    /// once unmounted, as the memory is gone, and for SSD records (the node frees those).
    fn free(&self, loc: &SliceLoc, length: u64) {
        if self.disk {
            return;
        }
        let mut alloc = self.alloc.lock();
        if self.is_mounted() {
            let size = length.next_multiple_of(ALIGN_BYTES);
            let a = alloc.handle(loc.node, loc.generation, loc.offset, size);
            alloc.free(a);
        }
    }

    /// Marks the segment unmounted and drops its allocator's tables (its slot lives on).
    fn retire(&self) {
        let mut alloc = self.alloc.lock();
        self.mounted.store(false, Ordering::Release);
        *alloc = OffsetAllocator::new(0, 0);
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
    /// CXL segments (named `<endpoint>/cxl`) first, on hosts that have them, then DRAM
    /// when they are full (`--enable_cxl`).
    Cxl,
}

impl Strategy {
    /// Parses Mooncake's names.
    pub fn from_name(s: &str) -> Option<Strategy> {
        Some(match s {
            "random" => Strategy::Random,
            "free_ratio_first" => Strategy::FreeRatioFirst,
            "local_first" => Strategy::LocalFirst,
            "cxl" => Strategy::Cxl,
            _ => return None,
        })
    }
}

/// Where one slice of a replica lives: 24 bytes, so an object keeps one or two single-slice
/// replicas inline. The slice's length follows from the value length
/// ([`slice_len`]); its allocator handle is rebuilt from `node`, `generation` and `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SliceLoc {
    /// Offset of the range in its segment.
    pub offset: u64,
    /// Generation handed to the client, also the allocator's handle generation: unique
    /// over all segments and puts.
    pub generation: u64,
    /// Segment slot ([`Segment::slot`]).
    pub segment: u32,
    /// Allocator node owning the range.
    pub node: u32,
}

const _: () = assert!(size_of::<SliceLoc>() == 24);

/// The allocator node of a location that names an SSD record (no allocator range).
pub const DISK_NODE: u32 = u32::MAX;

impl SliceLoc {
    /// Whether this names a record in a shard's SSD store, not memory.
    pub fn is_disk(&self) -> bool {
        self.node == DISK_NODE
    }
}

/// Bytes allocated in memory for `locs` (replica-major slices) of a `len`-byte value; SSD
/// copies take no memory.
pub fn allocated_bytes(len: u64, locs: &[SliceLoc]) -> u64 {
    let m = slice_count(len).max(1);
    locs.iter()
        .enumerate()
        .filter(|(_, l)| !l.is_disk())
        .map(|(i, _)| slice_len(len, i as u64 % m).next_multiple_of(ALIGN_BYTES))
        .sum()
}

/// Mounted segments grouped by host, in mount order: the placement's starting point,
/// rebuilt at mount, unmount and drain so a put does not regroup the table.
#[derive(Debug, Default)]
struct View {
    by_id: HashMap<u64, Arc<Segment>>,
    /// client id → segments it has mounted (no entry at zero).
    clients: HashMap<u64, usize>,
    /// (host, allocatable segments of that host).
    hosts: Vec<(String, Vec<Arc<Segment>>)>,
}

impl View {
    fn rebuild_hosts(&mut self) {
        let mut segs: Vec<&Arc<Segment>> = self
            .by_id
            .values()
            .filter(|s| s.is_allocatable() && !s.disk)
            .collect();
        segs.sort_by_key(|s| s.slot);
        let mut hosts: Vec<(String, Vec<Arc<Segment>>)> = Vec::new();
        for s in segs {
            match hosts.iter_mut().find(|(h, _)| *h == s.host) {
                Some((_, v)) => v.push(s.clone()),
                None => hosts.push((s.host.clone(), vec![s.clone()])),
            }
        }
        self.hosts = hosts;
    }
}

/// All mounted segments.
#[derive(Debug)]
pub struct Segments {
    view: RwLock<View>,
    /// Every segment ever mounted, indexed by slot. Append-only: an unmounted segment keeps
    /// its slot (with an emptied allocator), so locations naming it stay resolvable.
    slots: RwLock<Vec<Arc<Segment>>>,
    /// The next generation to hand out (`mc_schema::generation`): this master's term in
    /// its high bits (0 until the first mount tells it the cluster's), a counter below. One
    /// word, so a term change and the counter never disagree, and a counter running past
    /// 2^44 simply moves to the next term.
    next_generation: AtomicU64,
    /// Commit and free notices for the nodes' object indexes.
    pub notices: Arc<Notices>,
    max_allocations: u32,
    strategy: Strategy,
    /// Replicas placed on a host that already holds another replica of the same object
    /// (fewer hosts than replicas).
    pub shared_host_replicas_total: AtomicU64,
    /// Slices of disk replicas in the metadata.
    pub disk_slices: AtomicU64,
}

impl Segments {
    /// An empty table; each segment's allocator tracks at most `max_allocations` ranges.
    pub fn new(max_allocations: u32, strategy: Strategy) -> Segments {
        Segments {
            strategy,
            view: RwLock::new(View::default()),
            slots: RwLock::new(Vec::new()),
            next_generation: AtomicU64::new(1),
            notices: Arc::new(Notices::default()),
            max_allocations,
            shared_host_replicas_total: AtomicU64::new(0),
            disk_slices: AtomicU64::new(0),
        }
    }

    /// Stops allocations in the given segments of `client_id`; returns how many were found.
    pub fn drain(&self, client_id: u64, ids: &[u64]) -> usize {
        let mut view = self.view.write();
        let n = ids
            .iter()
            .filter_map(|id| view.by_id.get(id))
            .filter(|s| s.client_id == client_id)
            .map(|s| s.draining.store(true, Ordering::Release))
            .count();
        view.rebuild_hosts();
        n
    }

    /// Mounts a segment. Re-mounting the same id by the same client is accepted (idempotent).
    pub fn mount(
        &self,
        client_id: u64,
        id: u64,
        [name, host, endpoint]: [&str; 3],
        size_bytes: u64,
        (reports_inventory, disk): (bool, bool),
    ) -> Result<Arc<Segment>, MasterError> {
        if id == 0 || size_bytes == 0 || name.is_empty() || endpoint.is_empty() {
            return Err(MasterError::SegmentIncomplete);
        }
        let mut view = self.view.write();
        if let Some(s) = view.by_id.get(&id) {
            if s.client_id == client_id && s.size_bytes == size_bytes {
                return Ok(s.clone());
            }
            return Err(MasterError::SegmentTaken { segment_id: id });
        }
        let mut slots = self.slots.write();
        let slot = u32::try_from(slots.len()).map_err(|_| MasterError::SegmentSlotsExhausted)?;
        let seg = Arc::new(Segment {
            id,
            slot,
            name: name.to_string(),
            host: if host.is_empty() { name } else { host }.to_string(),
            endpoint: endpoint.to_string(),
            client_id,
            disk,
            size_bytes,
            mounted: AtomicBool::new(true),
            draining: AtomicBool::new(false),
            awaiting_inventory: AtomicBool::new(reports_inventory),
            alloc: Mutex::new(OffsetAllocator::new(
                if disk { 0 } else { size_bytes },
                if disk { 0 } else { self.max_allocations },
            )),
        });
        slots.push(seg.clone());
        view.by_id.insert(id, seg.clone());
        *view.clients.entry(client_id).or_default() += 1;
        view.rebuild_hosts();
        Ok(seg)
    }

    /// Unmounts; returns the segment if it was mounted by `client_id` (0 = any).
    pub fn unmount(&self, client_id: u64, id: u64) -> Option<Arc<Segment>> {
        let mut view = self.view.write();
        match view.by_id.get(&id) {
            Some(s) if client_id == 0 || s.client_id == client_id => {
                s.retire();
                let seg = view.by_id.remove(&id);
                if let Some(s) = &seg
                    && let Some(n) = view.clients.get_mut(&s.client_id)
                {
                    *n -= 1;
                    if *n == 0 {
                        view.clients.remove(&s.client_id);
                    }
                }
                view.rebuild_hosts();
                seg
            }
            _ => None,
        }
    }

    /// Whether `client_id` has a segment mounted (a node, not a plain client).
    pub fn has_client(&self, client_id: u64) -> bool {
        self.view.read().clients.contains_key(&client_id)
    }

    /// The clients with a segment mounted.
    pub fn clients(&self) -> Vec<u64> {
        self.view.read().clients.keys().copied().collect()
    }

    /// Segments of a client.
    pub fn of_client(&self, client_id: u64) -> Vec<u64> {
        let view = self.view.read();
        view.by_id
            .values()
            .filter(|s| s.client_id == client_id)
            .map(|s| s.id)
            .collect()
    }

    /// The id of the segment in each slot, by slot (unmounted ones included).
    pub fn slot_ids(&self) -> Vec<u64> {
        self.slots.read().iter().map(|s| s.id).collect()
    }

    /// Every mounted segment, sorted by name.
    pub fn list(&self) -> Vec<Arc<Segment>> {
        let mut v: Vec<Arc<Segment>> = self.view.read().by_id.values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Number of mounted segments.
    pub fn len(&self) -> usize {
        self.view.read().by_id.len()
    }

    /// Whether no segment is mounted.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// (allocated, capacity) bytes over all segments.
    pub fn usage(&self) -> (u64, u64) {
        let view = self.view.read();
        view.by_id
            .values()
            .filter(|s| !s.disk)
            .fold((0, 0), |(a, c), s| {
                (a + s.allocated_bytes(), c + s.size_bytes)
            })
    }

    /// Asks the node holding the first replica of `locs` (replica-major slices of a
    /// `len`-byte value) to copy it to its SSD, if that node has an SSD store; returns
    /// whether it was asked. `evict_oldest` (`--enable_disk_eviction`): the node deletes
    /// its oldest SSD records to make room for the copy when its quota is reached.
    pub fn offload(&self, len: u64, locs: &[SliceLoc], evict_oldest: bool) -> bool {
        let m = slice_count(len).max(1) as usize;
        let slots = self.slots.read();
        let Some(first) = locs.chunks(m).next() else {
            return false;
        };
        if first.iter().any(SliceLoc::is_disk) {
            return false;
        }
        let client = slots[first[0].segment as usize].client_id;
        if self.disk_of(client).is_none() {
            return false;
        }
        if !first.iter().all(|l| slots[l.segment as usize].is_mounted()) {
            return false;
        }
        for loc in first {
            let seg = &slots[loc.segment as usize];
            self.notices.push(
                seg.client_id,
                Notice::Offload {
                    segment_id: seg.id,
                    offset: loc.offset,
                    generation: loc.generation,
                    evict_oldest,
                },
            );
        }
        true
    }

    /// Allocates a memory range for every SSD record of `disk` (location, length) on the
    /// shard that holds it (a memory segment of the same node with the same data endpoint)
    /// and asks those shards to copy the records in; the new ranges, in order, or `None`
    /// when one found no room. All or nothing: the shards hear of no range before every
    /// one is allocated, so a range given back here was never written.
    pub fn promote(&self, disk: &[(SliceLoc, u64)]) -> Option<Vec<SliceLoc>> {
        let mut planned: Vec<Planned> = Vec::with_capacity(disk.len());
        for &(from, len) in disk {
            match self.promotion_target(&from, len) {
                Some(p) => planned.push(p),
                None => {
                    for p in &planned {
                        p.memory.free(&p.to, p.len);
                    }
                    return None;
                }
            }
        }
        for p in &planned {
            self.notices.push(
                p.disk.client_id,
                Notice::Promote {
                    segment_id: p.disk.id,
                    offset: p.from.offset,
                    generation: p.from.generation,
                    target_segment_id: p.memory.id,
                    target_offset: p.to.offset,
                    target_generation: p.to.generation,
                },
            );
        }
        Some(planned.into_iter().map(|p| p.to).collect())
    }

    /// A memory range of `len` bytes for the SSD record `from`, on its shard.
    fn promotion_target(&self, from: &SliceLoc, len: u64) -> Option<Planned> {
        let slots = self.slots.read();
        let disk = slots.get(from.segment as usize)?.clone();
        drop(slots);
        if !disk.disk || !disk.is_mounted() {
            return None;
        }
        let (memory, a) = self
            .view
            .read()
            .by_id
            .values()
            .filter(|s| !s.disk && s.client_id == disk.client_id && s.endpoint == disk.endpoint)
            .find_map(|s| {
                let a = s.allocate(len, self.next_generation())?;
                Some((s.clone(), a))
            })?;
        let to = SliceLoc {
            offset: a.offset,
            generation: a.generation(),
            segment: memory.slot,
            node: a.node(),
        };
        Some(Planned {
            disk,
            memory,
            from: *from,
            to,
            len,
        })
    }

    /// The mounted SSD store of `client_id`'s node (the first, when it has several shards).
    pub fn disk_of(&self, client_id: u64) -> Option<Arc<Segment>> {
        self.view
            .read()
            .by_id
            .values()
            .find(|s| s.disk && s.client_id == client_id)
            .cloned()
    }

    /// Frees every slice of `locs`, the replica-major slices of a `len`-byte value, and tells
    /// the nodes holding them to forget them.
    pub fn free(&self, len: u64, locs: &[SliceLoc]) {
        if locs.is_empty() {
            return;
        }
        let m = slice_count(len).max(1);
        let slots = self.slots.read();
        for (i, loc) in locs.iter().enumerate() {
            let seg = &slots[loc.segment as usize];
            seg.free(loc, slice_len(len, i as u64 % m));
            self.forget_disk(loc);
            self.tell(seg, loc, NoticeKind::Free);
        }
    }

    /// Counts a disk location leaving the metadata (a replaced value's locations are
    /// retired and later freed: only the free counts).
    fn forget_disk(&self, loc: &SliceLoc) {
        if loc.is_disk() {
            let _ = self
                .disk_slices
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                    Some(n.saturating_sub(1))
                });
        }
    }

    /// Tells the nodes holding `locs` to forget them while their space stays allocated: a
    /// replaced value's replicas, which in-flight reads may still use until they are freed.
    /// From then on no read through a client's cached location gets them.
    pub fn retire(&self, locs: &[SliceLoc]) {
        let slots = self.slots.read();
        for loc in locs {
            self.tell(&slots[loc.segment as usize], loc, NoticeKind::Free);
        }
    }

    /// Frees one slice of `length` bytes at `loc` and tells its node to forget it.
    pub fn free_one(&self, loc: &SliceLoc, length: u64) {
        let slots = self.slots.read();
        let seg = &slots[loc.segment as usize];
        seg.free(loc, length);
        self.forget_disk(loc);
        self.tell(seg, loc, NoticeKind::Free);
    }

    /// Tells the nodes holding `locs` that their put is committed.
    pub fn commit(&self, locs: &[SliceLoc]) {
        let slots = self.slots.read();
        for loc in locs {
            self.tell(&slots[loc.segment as usize], loc, NoticeKind::Commit);
        }
    }

    /// Bytes of SSD quota over the mounted disk segments.
    pub fn disk_capacity_bytes(&self) -> u64 {
        let view = self.view.read();
        view.by_id
            .values()
            .filter(|s| s.disk)
            .map(|s| s.size_bytes)
            .sum()
    }

    /// Queues a commit or free notice of `loc` for the node holding `seg`, if mounted.
    fn tell(&self, seg: &Segment, loc: &SliceLoc, kind: NoticeKind) {
        if !seg.is_mounted() {
            return;
        }
        let (segment_id, offset, generation) = (seg.id, loc.offset, loc.generation);
        let n = match kind {
            NoticeKind::Commit => Notice::Commit {
                segment_id,
                offset,
                generation,
            },
            NoticeKind::Free => Notice::Free {
                segment_id,
                offset,
                generation,
            },
        };
        self.notices.push(seg.client_id, n);
    }

    /// This master's term (0 before any node mounted).
    pub fn term(&self) -> u64 {
        term_of(self.next_generation.load(Ordering::Acquire))
    }

    /// Takes into account a node that has seen term `seen`: a master that has no term yet,
    /// or sees a term above its own (another master's), moves to `seen + 1`. Returns the
    /// term. `seen` must be below [`MAX_TERM`] (the caller checks input from the network).
    pub fn observe_term(&self, seen: u64) -> u64 {
        let cur = self.term();
        // A node that saw our own term (or an older one) changes nothing.
        if (cur != 0 && seen <= cur) || seen >= MAX_TERM {
            return cur;
        }
        let next = compose(seen.max(cur) + 1, 1);
        let before = self.next_generation.fetch_max(next, Ordering::AcqRel);
        if before < next {
            tracing::info!(term = term_of(next), "master term set");
        }
        self.term()
    }

    /// A fresh generation of the current term (past 2^44 allocations it is the next term's).
    fn next_generation(&self) -> u64 {
        self.next_generation.fetch_add(1, Ordering::Relaxed)
    }

    /// The mounted segment `id`.
    pub fn by_id(&self, id: u64) -> Option<Arc<Segment>> {
        self.view.read().by_id.get(&id).cloned()
    }

    /// The segment of slot `slot` (mounted or not).
    pub fn by_slot(&self, slot: u32) -> Option<Arc<Segment>> {
        self.slots.read().get(slot as usize).cloned()
    }

    /// The mounted segment named `name` (`host:port`), if any.
    pub fn by_name(&self, name: &str) -> Option<Arc<Segment>> {
        self.view
            .read()
            .by_id
            .values()
            .find(|s| s.name == name)
            .cloned()
    }

    /// Allocates every slice of one replica of a `len`-byte value in `seg` (a copy task's
    /// target); all or nothing. `None` when `seg` takes no allocations or has no room.
    pub fn allocate_replica(&self, seg: &Segment, len: u64) -> Option<Vec<SliceLoc>> {
        if seg.disk {
            return None;
        }
        let mut locs = Vec::new();
        for i in 0..slice_count(len) {
            match seg.allocate(slice_len(len, i), self.next_generation()) {
                Some(a) => locs.push(SliceLoc {
                    offset: a.offset,
                    generation: a.generation(),
                    segment: seg.slot,
                    node: a.node(),
                }),
                None => {
                    self.free_slices(len, &locs);
                    return None;
                }
            }
        }
        Some(locs)
    }

    /// Lets placement use the segments of `client_id` that waited for its inventory.
    pub fn inventory_adopted(&self, client_id: u64) {
        let mut view = self.view.write();
        for s in view.by_id.values().filter(|s| s.client_id == client_id) {
            s.awaiting_inventory.store(false, Ordering::Release);
        }
        view.rebuild_hosts();
    }

    /// Wire descriptors of the replicas in `locs` (replica-major slices of a `len`-byte
    /// value), appended to `out`.
    pub fn describe(
        &self,
        len: u64,
        locs: &[SliceLoc],
        complete: bool,
        out: &mut Vec<ReplicaDesc>,
    ) {
        let m = slice_count(len).max(1) as usize;
        let slots = self.slots.read();
        for replica in locs.chunks(m) {
            let slices = replica
                .iter()
                .enumerate()
                .map(|(i, loc)| {
                    let seg = &slots[loc.segment as usize];
                    SliceDesc {
                        segment_id: seg.id,
                        endpoint: seg.endpoint.clone(),
                        offset: loc.offset,
                        length: slice_len(len, i as u64),
                        generation: loc.generation,
                        token: None,
                    }
                })
                .collect();
            let kind = match replica.first() {
                Some(l) if l.is_disk() => ReplicaKind::LocalDisk,
                _ => ReplicaKind::Memory,
            };
            out.push(ReplicaDesc {
                complete,
                slices,
                kind,
            });
        }
    }

    /// Places `replica_num` replicas of a `len`-byte value and returns their slices,
    /// replica-major (`slice_count(len)` per replica). Replicas go to distinct hosts while
    /// there are enough; slices of one replica are striped over the segments of its host.
    /// Segments (or hosts) named in `preferred` are tried first, then the writer's host
    /// under `local_first`. Possibly fewer replicas than asked; empty when none fit.
    pub fn place(
        &self,
        len: u64,
        replica_num: u32,
        preferred: &[String],
        client_host: &str,
    ) -> Vec<SliceLoc> {
        let local;
        let preferred = if self.strategy == Strategy::LocalFirst && !client_host.is_empty() {
            local = [preferred, &[client_host.to_string()]].concat();
            &local[..]
        } else {
            preferred
        };
        let view = self.view.read();
        let hosts = self.hosts_in_order(&view, preferred);
        let mut placed: Vec<SliceLoc> = Vec::with_capacity(replica_num as usize);
        let mut used_hosts: Vec<usize> = Vec::new();
        for _ in 0..replica_num {
            let fresh = hosts.iter().filter(|h| !used_hosts.contains(&h.0));
            let reused = hosts.iter().filter(|h| used_hosts.contains(&h.0));
            let mut done = false;
            for (host, segs) in fresh.chain(reused) {
                if self.place_preferring_cxl(len, segs, &mut placed) {
                    if used_hosts.contains(host) {
                        self.shared_host_replicas_total
                            .fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(
                            host = %view.hosts[*host].0,
                            replicas = replica_num,
                            hosts = hosts.len(),
                            "fewer hosts than replicas: two replicas share a host (on distinct segments)"
                        );
                    }
                    used_hosts.push(*host);
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

    /// [`place_on_host`](Self::place_on_host), under the `cxl` strategy on the host's CXL
    /// segments alone first.
    fn place_preferring_cxl(
        &self,
        len: u64,
        segs: &[&Arc<Segment>],
        placed: &mut Vec<SliceLoc>,
    ) -> bool {
        if self.strategy == Strategy::Cxl {
            let cxl: Vec<&Arc<Segment>> = segs.iter().copied().filter(|s| s.is_cxl()).collect();
            if !cxl.is_empty() && self.place_on_host(len, &cxl, placed) {
                return true;
            }
        }
        self.place_on_host(len, segs, placed)
    }

    /// Hosts (index in the view, segments in order) in the order placement tries them.
    fn hosts_in_order<'v>(
        &self,
        view: &'v View,
        preferred: &[String],
    ) -> Vec<(usize, Vec<&'v Arc<Segment>>)> {
        let mut rng = rand::rng();
        let mut hosts: Vec<(usize, Vec<&Arc<Segment>>)> = view
            .hosts
            .iter()
            .enumerate()
            .map(|(i, (_, segs))| {
                let mut segs: Vec<&Arc<Segment>> = segs.iter().collect();
                segs.shuffle(&mut rng);
                (i, segs)
            })
            .collect();
        hosts.shuffle(&mut rng);
        if self.strategy == Strategy::FreeRatioFirst {
            let free_share = |segs: &[&Arc<Segment>]| {
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
        if self.strategy == Strategy::Cxl {
            hosts.sort_by_key(|(_, segs)| !segs.iter().any(|s| s.is_cxl()));
        }
        if !preferred.is_empty() {
            let rank = |h: &(usize, Vec<&Arc<Segment>>)| {
                preferred
                    .iter()
                    .position(|p| *p == view.hosts[h.0].0 || h.1.iter().any(|s| s.name == *p))
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
        }
        hosts
    }

    /// Allocates every slice of one replica on one host's segments, striping round robin,
    /// never in a segment `placed` (the other replicas) already uses, and appends them to
    /// `placed`. All or nothing.
    fn place_on_host(&self, len: u64, segs: &[&Arc<Segment>], placed: &mut Vec<SliceLoc>) -> bool {
        let order: Vec<&Arc<Segment>> = segs
            .iter()
            .copied()
            .filter(|s| !placed.iter().any(|l| l.segment == s.slot))
            .collect();
        if order.is_empty() {
            return false;
        }
        let first = placed.len();
        let n = slice_count(len);
        for i in 0..n {
            let want = slice_len(len, i);
            let start = i as usize % order.len();
            let got = (0..order.len()).find_map(|k| {
                let seg = order[(start + k) % order.len()];
                let generation = self.next_generation();
                seg.allocate(want, generation).map(|a| SliceLoc {
                    offset: a.offset,
                    generation: a.generation(),
                    segment: seg.slot,
                    node: a.node(),
                })
            });
            match got {
                Some(loc) => placed.push(loc),
                None => {
                    self.free_slices(len, &placed[first..]);
                    placed.truncate(first);
                    return false;
                }
            }
        }
        true
    }

    /// Frees the first slices of one replica (a partial placement being undone).
    fn free_slices(&self, len: u64, slices: &[SliceLoc]) {
        let slots = self.slots.read();
        for (i, loc) in slices.iter().enumerate() {
            slots[loc.segment as usize].free(loc, slice_len(len, i as u64));
        }
    }
}

/// Which notice [`Segments::tell`] queues.
#[derive(Clone, Copy)]
enum NoticeKind {
    Commit,
    Free,
}

/// One SSD record's promotion, planned: its range allocated, its shard not told yet.
struct Planned {
    disk: Arc<Segment>,
    memory: Arc<Segment>,
    from: SliceLoc,
    to: SliceLoc,
    len: u64,
}
