//! The object side of copy and move tasks (`docs/tasks.md`): space for whole new replicas
//! on named segments at a task's start, and their commit (a move also dropping its source
//! replica) at its end. Between the two the object is not marked: its end checks that the
//! same put is still there, and gives the space back otherwise.

use mc_schema::ErrorCode;
use mc_schema::limits::slice_count;
use mc_schema::msg::ReplicaDesc;

use super::{ObjectStore, split_failed};
use crate::segments::SliceLoc;

/// Pin bits a shard records with a slice (as `mc_transfer`'s object header has them).
const PIN_HARD: u8 = 1;
const PIN_SOFT: u8 = 2;

/// Space a started task holds: one whole replica per target, replica-major.
#[derive(Debug, Clone)]
pub struct CopySpace {
    /// Value length.
    pub size: u64,
    /// The put the copies belong to.
    pub put_generation: u64,
    /// New slices, `slice_count(size)` per target.
    pub locs: Vec<SliceLoc>,
}

/// What a task's start tells the node that copies.
#[derive(Debug)]
pub struct CopyPlan {
    /// The space taken.
    pub space: CopySpace,
    /// Pin bits of the object.
    pub pins: u8,
    /// Replicas the object has now (index of the first new one).
    pub replica_base: u32,
    /// CRC32C of each slice.
    pub crcs: Vec<u32>,
    /// Wire descriptors of the new replicas (unsigned).
    pub targets: Vec<ReplicaDesc>,
    /// Targets that already hold a replica (nothing allocated for them).
    pub skipped: Vec<String>,
}

/// Whether a replica (its slices) touches segment `slot`.
fn on(replica: &[SliceLoc], slot: u32) -> bool {
    replica.iter().any(|l| l.segment == slot)
}

/// Whether a replica lies wholly in segment `slot` (a replica striped over the segments of
/// one host touches several).
fn within(replica: &[SliceLoc], slot: u32) -> bool {
    replica.iter().all(|l| l.segment == slot)
}

impl ObjectStore {
    /// Allocates a whole replica of `key` on each segment of `targets` that holds none yet
    /// (wholly). `source` (a move's) must hold a part of a replica. Errors: OBJECT_NOT_FOUND, REPLICA_IS_NOT_READY
    /// (pending or being replaced), INVALID_PARAMS (a target is unknown, a disk or not
    /// allocatable; the source holds no replica), NO_AVAILABLE_HANDLE (no room).
    pub fn copy_start(
        &self,
        key: &str,
        targets: &[String],
        source: Option<&str>,
        now_ms: u64,
    ) -> Result<CopyPlan, ErrorCode> {
        let segs = targets
            .iter()
            .map(|t| {
                self.segments
                    .by_name(t)
                    .filter(|s| !s.disk && s.is_allocatable())
                    .ok_or(ErrorCode::InvalidParams)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let source_slot = match source {
            Some(name) => Some(
                self.segments
                    .by_name(name)
                    .ok_or(ErrorCode::InvalidParams)?
                    .slot,
            ),
            None => None,
        };
        let (h, shard) = self.shard(key);
        let o = shard.get(h, key).ok_or(ErrorCode::ObjectNotFound)?;
        if !o.complete() || o.upsert().is_some() {
            return Err(ErrorCode::ReplicaIsNotReady);
        }
        let (size, m) = (o.size(), slice_count(o.size()).max(1) as usize);
        let replicas: Vec<&[SliceLoc]> = o.locs().chunks(m).collect();
        if source_slot.is_some_and(|s| !replicas.iter().any(|r| on(r, s))) {
            return Err(ErrorCode::InvalidParams);
        }
        let mut pins = 0;
        if o.hard_pin() {
            pins |= PIN_HARD;
        }
        if o.soft_pinned(now_ms) {
            pins |= PIN_SOFT;
        }
        let (put_generation, crcs) = (o.put_generation(), o.crcs().to_vec());
        let replica_base = replicas.len() as u32;
        let (todo, skipped): (Vec<_>, Vec<_>) = segs
            .into_iter()
            .partition(|s| !replicas.iter().any(|r| within(r, s.slot)));
        drop(shard);
        let mut locs = Vec::with_capacity(todo.len() * m);
        for seg in &todo {
            match self.segments.allocate_replica(seg, size) {
                Some(l) => locs.extend(l),
                None => {
                    self.segments.free(size, &locs);
                    return Err(ErrorCode::NoAvailableHandle);
                }
            }
        }
        let mut targets = Vec::with_capacity(todo.len());
        self.segments.describe(size, &locs, false, &mut targets);
        Ok(CopyPlan {
            space: CopySpace {
                size,
                put_generation,
                locs,
            },
            pins,
            replica_base,
            crcs,
            targets,
            skipped: skipped.into_iter().map(|s| s.name.clone()).collect(),
        })
    }

    /// Commits the copies of a started task: the targets but `failed` become replicas of
    /// `key` (memory replicas first, before SSD copies) and, for a move, the replicas on
    /// segment `move_from` leave it (freed once the object's read lease has ended). The
    /// space is given back instead when the object changed since the start (OBJECT_NOT_FOUND,
    /// INVALID_WRITE), the CRCs differ (CHECKSUM_MISMATCH) or every target failed
    /// (TRANSFER_FAIL).
    pub fn copy_end(
        &self,
        key: &str,
        space: CopySpace,
        (crcs, failed): (&[u32], &[u32]),
        move_from: Option<&str>,
        now_ms: u64,
    ) -> ErrorCode {
        let move_slot = move_from
            .and_then(|n| self.segments.by_name(n))
            .map(|s| s.slot);
        let (keep, lost) = split_failed(space.size, &space.locs, failed);
        self.segments.free(space.size, &lost);
        let (h, mut shard) = self.shard(key);
        let verdict = match shard.get(h, key) {
            None => ErrorCode::ObjectNotFound,
            Some(o)
                if !o.complete()
                    || o.upsert().is_some()
                    || o.size() != space.size
                    || o.put_generation() != space.put_generation =>
            {
                ErrorCode::InvalidWrite
            }
            Some(o) if o.crcs() != crcs => ErrorCode::ChecksumMismatch,
            Some(_) if keep.is_empty() => ErrorCode::TransferFail,
            Some(_) => ErrorCode::Ok,
        };
        if verdict != ErrorCode::Ok {
            drop(shard);
            self.segments.free(space.size, &keep);
            return verdict;
        }
        let o = shard.get_mut(h, key).expect("checked");
        let m = slice_count(space.size).max(1) as usize;
        let (mut mem, mut disk, mut gone) = (Vec::new(), Vec::new(), Vec::new());
        for r in o.locs().chunks(m) {
            if move_slot.is_some_and(|s| on(r, s)) && !r[0].is_disk() {
                gone.extend_from_slice(r);
            } else if r[0].is_disk() {
                disk.extend_from_slice(r);
            } else {
                mem.extend_from_slice(r);
            }
        }
        mem.extend_from_slice(&keep);
        mem.append(&mut disk);
        o.pin_put_generation();
        o.set_locs(mem);
        let lease_until = o.lease_until_ms();
        drop(shard);
        self.segments.commit(&keep);
        if !gone.is_empty() {
            // Readers holding a lease may still read the source; cached locations must not.
            self.segments.retire(&gone);
            self.defer_free(lease_until.max(now_ms), space.size, gone);
        }
        ErrorCode::Ok
    }

    /// The segments (slots) of each replica of the complete object `key`, and whether it
    /// is an SSD copy; OBJECT_NOT_FOUND or REPLICA_IS_NOT_READY otherwise.
    pub fn replica_slots(&self, key: &str) -> Result<Vec<(bool, Vec<u32>)>, ErrorCode> {
        let (h, shard) = self.shard(key);
        let o = shard.get(h, key).ok_or(ErrorCode::ObjectNotFound)?;
        if !o.complete() {
            return Err(ErrorCode::ReplicaIsNotReady);
        }
        let m = slice_count(o.size()).max(1) as usize;
        Ok(o.locs()
            .chunks(m)
            .map(|r| (r[0].is_disk(), r.iter().map(|l| l.segment).collect()))
            .collect())
    }

    /// Gives back the space of a task that will not commit.
    pub fn copy_abandon(&self, space: &CopySpace) {
        self.segments.free(space.size, &space.locs);
    }
}

impl ObjectStore {
    /// `BatchReplicaClear` of one key for client `client_id`: an object that client wrote
    /// (its writer tag), complete, with no read lease running and no replacement in flight,
    /// loses its replicas on segment `segment` (every replica when `None`); an object left
    /// with none is removed. OK when something was cleared; otherwise why not.
    pub fn replica_clear(
        &self,
        key: &str,
        client_id: u64,
        segment: Option<u32>,
        now_ms: u64,
    ) -> ErrorCode {
        let (h, mut shard) = self.shard(key);
        let Some(o) = shard.get_mut(h, key) else {
            return ErrorCode::ObjectNotFound;
        };
        if o.writer() != super::object::writer_tag(client_id) {
            return ErrorCode::IllegalClient;
        }
        if !o.complete() || o.upsert().is_some() {
            return ErrorCode::ReplicaIsNotReady;
        }
        if o.leased(now_ms) {
            return ErrorCode::ObjectHasLease;
        }
        let m = slice_count(o.size()).max(1) as usize;
        let (gone, keep): (Vec<&[SliceLoc]>, Vec<&[SliceLoc]>) = o
            .locs()
            .chunks(m)
            .partition(|r| segment.is_none_or(|s| on(r, s)));
        if gone.is_empty() {
            return ErrorCode::ReplicaNotFound;
        }
        let (gone, keep) = (gone.concat(), keep.concat());
        let size = o.size();
        if keep.is_empty() {
            shard.remove(h, key, |k| self.hash(k));
        } else {
            o.pin_put_generation();
            o.set_locs(keep);
        }
        drop(shard);
        self.segments.free(size, &gone);
        ErrorCode::Ok
    }
}
