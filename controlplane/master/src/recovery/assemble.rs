//! Turning one node's reported entries into objects.
//!
//! 1. **Check** every entry: its segment is mounted by this node, the range lies inside it
//!    and is aligned, its length is the slice length its object size implies, its
//!    generation is not from a term above ours, its key is valid.
//! 2. **Resolve overlaps** within a segment (a node never holds two, but a report is input):
//!    the higher generation wins.
//! 3. **Reserve** every surviving range in its segment's allocator (built at once from the
//!    sorted ranges).
//! 4. **Assemble** replicas: entries of one `(key, put_generation, replica_index)` whose
//!    `slice_count` slices are all there; replicas whose CRCs differ from the first are
//!    dropped.
//! 5. **Adopt** each object ([`ObjectStore::adopt`]), with the pins a restored snapshot
//!    recorded for that very put ([`super::hints`]).
//!
//! Whatever is refused on the way is freed, which also queues a free notice: the node
//! forgets it, and its space is reusable.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use mc_schema::generation::term_of;
use mc_schema::limits::{key_is_valid, slice_count, slice_len};
use mc_schema::msg::{InventoryEntry, Notice};

use super::Recovery;
use crate::alloc::offset::ALIGN_BYTES;
use crate::objects::{Adopted, Candidate, ObjectStore};
use crate::segments::{DISK_NODE, Segments, SliceLoc};

/// What one adoption did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AdoptReport {
    /// Objects new to the master or replacing an older put.
    pub adopted_objects: u64,
    /// Objects the master had that gained replicas.
    pub added_replicas: u64,
    /// Entries refused.
    pub rejected_entries: u64,
    /// Wall time of the adoption.
    pub took_ms: u64,
    /// Of which: checking and sorting, reserving the ranges, assembling replicas, adopting
    /// objects (milliseconds).
    pub phases_ms: [u64; 4],
}

/// A checked entry with its place in the allocator.
struct Kept {
    e: InventoryEntry,
    loc: SliceLoc,
}

/// Adopts the report `entries` of node `client_id`, which mounted at `mounted_ms`, then lets
/// placement use its segments.
pub fn adopt_inventory(
    segments: &Segments,
    objects: &ObjectStore,
    recovery: &Recovery,
    client_id: u64,
    (mounted_ms, entries): (u64, Vec<InventoryEntry>),
    now_ms: u64,
) -> AdoptReport {
    let t0 = Instant::now();
    let mut report = AdoptReport::default();
    let mut lap = Instant::now();
    let mut phase = |i: usize, report: &mut AdoptReport| {
        report.phases_ms[i] = lap.elapsed().as_millis() as u64;
        lap = Instant::now();
    };
    let by_segment = check(segments, client_id, entries, &mut report);
    phase(0, &mut report);
    let kept = reserve(segments, client_id, by_segment, &mut report);
    phase(1, &mut report);
    let candidates = assemble(segments, kept, &mut report);
    phase(2, &mut report);
    let late = !recovery.in_window(mounted_ms);
    adopt_all(objects, recovery, candidates, (now_ms, late), &mut report);
    phase(3, &mut report);
    segments.inventory_adopted(client_id);
    report.took_ms = t0.elapsed().as_millis() as u64;
    report
}

/// Candidates adopted per thread at least; fewer run on the calling thread.
const PER_THREAD: usize = 16 << 10;

/// Step 5: adopts every candidate; large reports on several threads (the object store locks
/// per shard, so they rarely meet).
fn adopt_all(
    objects: &ObjectStore,
    recovery: &Recovery,
    candidates: Vec<Candidate>,
    (now_ms, late): (u64, bool),
    report: &mut AdoptReport,
) {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(candidates.len() / PER_THREAD)
        .clamp(1, 8);
    let adopt = |part: Vec<Candidate>| {
        let mut r = AdoptReport::default();
        for mut c in part {
            let new = !late && !recovery.is_tombstoned(&c.key);
            // What the snapshot knew of this put: its pins.
            if let Some((hard_pin, soft_pin_until_ms)) =
                recovery.hints.take(&c.key, c.put_generation)
            {
                c.hard_pin = hard_pin;
                c.soft_pin_until_ms = Some(soft_pin_until_ms);
            }
            match objects.adopt(c, new, now_ms) {
                Adopted::New | Adopted::Replaced => r.adopted_objects += 1,
                Adopted::AddedReplicas => r.added_replicas += 1,
                Adopted::Rejected => r.rejected_entries += 1,
            }
        }
        r
    };
    let parts = split(candidates, threads);
    let results: Vec<AdoptReport> = if parts.len() == 1 {
        parts.into_iter().map(adopt).collect()
    } else {
        std::thread::scope(|s| {
            let handles: Vec<_> = parts
                .into_iter()
                .map(|p| s.spawn(move || adopt(p)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_default())
                .collect()
        })
    };
    for r in results {
        report.adopted_objects += r.adopted_objects;
        report.added_replicas += r.added_replicas;
        report.rejected_entries += r.rejected_entries;
    }
}

/// `v` in `n` nearly equal parts.
fn split(mut v: Vec<Candidate>, n: usize) -> Vec<Vec<Candidate>> {
    let per = v.len().div_ceil(n.max(1)).max(1);
    let mut parts = Vec::with_capacity(n);
    while v.len() > per {
        let tail = v.split_off(v.len() - per);
        parts.push(tail);
    }
    parts.push(v);
    parts
}

/// Tells `client_id` to forget an entry that never got a place in an allocator.
fn refuse(segments: &Segments, client_id: u64, e: &InventoryEntry, report: &mut AdoptReport) {
    report.rejected_entries += 1;
    segments.notices.push(
        client_id,
        Notice::Free {
            segment_id: e.segment_id,
            offset: e.offset,
            generation: e.generation,
        },
    );
}

/// Steps 1 and 2: valid entries, grouped by segment, sorted by offset, without overlaps.
fn check(
    segments: &Segments,
    client_id: u64,
    entries: Vec<InventoryEntry>,
    report: &mut AdoptReport,
) -> BTreeMap<u64, Vec<InventoryEntry>> {
    let term = segments.term();
    let mut by_segment: BTreeMap<u64, Vec<InventoryEntry>> = BTreeMap::new();
    for e in entries {
        let seg = segments
            .by_id(e.segment_id)
            .filter(|s| s.client_id == client_id);
        // An SSD record's offset is its location in the shard's record files.
        let ok = seg.is_some_and(|s| {
            e.offset % ALIGN_BYTES == 0
                && (s.disk
                    || e.offset
                        .checked_add(e.length)
                        .is_some_and(|end| end <= s.size_bytes))
        }) && e.object_size > 0
            && e.slice_count as u64 == slice_count(e.object_size)
            && e.slice_index < e.slice_count
            && e.length == slice_len(e.object_size, e.slice_index as u64)
            && e.generation != 0
            && term_of(e.generation) <= term
            // The put's generation is that of its first slice: same term, not later.
            && term_of(e.put_generation) == term_of(e.generation)
            && e.put_generation <= e.generation
            && key_is_valid(&e.key);
        if ok {
            by_segment.entry(e.segment_id).or_default().push(e);
        } else {
            refuse(segments, client_id, &e, report);
        }
    }
    for v in by_segment.values_mut() {
        v.sort_unstable_by_key(|e| e.offset);
        let mut kept: Vec<InventoryEntry> = Vec::with_capacity(v.len());
        for e in v.drain(..) {
            match kept.last() {
                // The same slice reported twice (a report resent after a failed attempt).
                Some(p) if p.offset == e.offset && p.generation == e.generation => {}
                Some(p) if p.offset + p.length.next_multiple_of(ALIGN_BYTES) > e.offset => {
                    let loser = if p.generation >= e.generation {
                        e
                    } else {
                        std::mem::replace(kept.last_mut().expect("checked"), e)
                    };
                    refuse(segments, client_id, &loser, report);
                }
                _ => kept.push(e),
            }
        }
        *v = kept;
    }
    by_segment
}

/// Step 3: every surviving range gets its place in its segment's allocator.
fn reserve(
    segments: &Segments,
    client_id: u64,
    by_segment: BTreeMap<u64, Vec<InventoryEntry>>,
    report: &mut AdoptReport,
) -> Vec<Kept> {
    let mut kept = Vec::new();
    for (id, entries) in by_segment {
        let Some(seg) = segments.by_id(id) else {
            entries
                .iter()
                .for_each(|e| refuse(segments, client_id, e, report));
            continue;
        };
        if seg.disk {
            // SSD records take no allocator range: the node owns their space.
            segments
                .disk_slices
                .fetch_add(entries.len() as u64, std::sync::atomic::Ordering::Relaxed);
            kept.extend(entries.into_iter().map(|e| Kept {
                loc: SliceLoc {
                    offset: e.offset,
                    generation: e.generation,
                    segment: seg.slot,
                    node: DISK_NODE,
                },
                e,
            }));
            continue;
        }
        let used: Vec<(u64, u64, u64)> = entries
            .iter()
            .map(|e| (e.offset, e.length, e.generation))
            .collect();
        match seg.adopt_ranges(&used) {
            Ok(nodes) => kept.extend(entries.into_iter().zip(nodes).map(|(e, node)| Kept {
                loc: SliceLoc {
                    offset: e.offset,
                    generation: e.generation,
                    segment: seg.slot,
                    node,
                },
                e,
            })),
            Err(_) => entries
                .iter()
                .for_each(|e| refuse(segments, client_id, e, report)),
        }
    }
    kept
}

/// Step 4: complete replicas, grouped into candidates. Reserved slices that end up in no
/// candidate are freed.
fn assemble(segments: &Segments, kept: Vec<Kept>, report: &mut AdoptReport) -> Vec<Candidate> {
    // Entry indexes by (key, put generation): one hash insert per entry, no key copied, and
    // no allocation for the common object of one slice in one replica here.
    let mut groups: HashMap<(&str, u64), Group, ahash::RandomState> =
        HashMap::with_capacity_and_hasher(kept.len(), ahash::RandomState::new());
    for (i, k) in kept.iter().enumerate() {
        let i = i as u32;
        groups
            .entry((k.e.key.as_str(), k.e.put_generation))
            .and_modify(|g| g.push(i))
            .or_insert(Group::One(i));
    }
    let mut out = Vec::with_capacity(groups.len());
    for ((key, put_generation), group) in groups {
        let mut idx = match group {
            Group::One(i) if kept[i as usize].e.slice_count == 1 => {
                out.push(single(key, put_generation, &kept[i as usize]));
                continue;
            }
            Group::One(i) => vec![i],
            Group::Many(v) => v,
        };
        // Replica by replica, slices in order.
        idx.sort_unstable_by_key(|&i| {
            let e = &kept[i as usize].e;
            (e.replica_index, e.slice_index)
        });
        let mut c: Option<Candidate> = None;
        for replica in idx
            .chunk_by(|&a, &b| kept[a as usize].e.replica_index == kept[b as usize].e.replica_index)
        {
            let slices: Vec<&Kept> = replica.iter().map(|&i| &kept[i as usize]).collect();
            add_replica(&mut c, (key, put_generation), &slices, segments, report);
        }
        out.extend(c);
    }
    out
}

/// The entries of one (key, put generation).
enum Group {
    One(u32),
    Many(Vec<u32>),
}

impl Group {
    fn push(&mut self, i: u32) {
        match self {
            Group::One(first) => *self = Group::Many(vec![*first, i]),
            Group::Many(v) => v.push(i),
        }
    }
}

/// The candidate of an object whose only reported slice is its whole value.
fn single(key: &str, put_generation: u64, k: &Kept) -> Candidate {
    Candidate {
        key: key.to_string(),
        put_generation,
        size: k.e.object_size,
        locs: vec![k.loc],
        crcs: vec![k.e.crc32c],
        hard_pin: k.e.pins & 1 != 0,
        soft_pin: k.e.pins & 2 != 0,
        soft_pin_until_ms: None,
    }
}

/// Adds one reported replica (its slices in order) to the candidate of its object, or frees
/// it when it is incomplete or does not match the replicas already taken.
fn add_replica(
    c: &mut Option<Candidate>,
    (key, put_generation): (&str, u64),
    slices: &[&Kept],
    segments: &Segments,
    report: &mut AdoptReport,
) {
    let first = &slices[0].e;
    let complete = slices.len() as u32 == first.slice_count
        && slices
            .iter()
            .enumerate()
            .all(|(i, k)| k.e.slice_index == i as u32 && k.e.object_size == first.object_size);
    let crcs: Vec<u32> = slices.iter().map(|k| k.e.crc32c).collect();
    let fits = c
        .as_ref()
        .is_none_or(|c| c.size == first.object_size && c.crcs == crcs);
    if !(complete && fits) {
        report.rejected_entries += slices.len() as u64;
        for k in slices {
            segments.free_one(&k.loc, k.e.length);
        }
        return;
    }
    let locs = slices.iter().map(|k| k.loc);
    match c {
        Some(c) => c.locs.extend(locs),
        None => {
            *c = Some(Candidate {
                key: key.to_string(),
                put_generation,
                size: first.object_size,
                locs: locs.collect(),
                crcs,
                hard_pin: first.pins & 1 != 0,
                soft_pin: first.pins & 2 != 0,
                soft_pin_until_ms: None,
            })
        }
    }
}
