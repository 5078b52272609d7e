//! The read path: one GetReplicaList round trip for a batch, then every slice of one
//! replica per key read pipelined per shard, with a per-key fallback over the remaining
//! replicas. Every slice is checked against the CRC32C recorded at PutEnd.
//!
//! Reads land in memory the caller chooses: fresh vectors ([`Store::get_batch`]), the
//! caller's buffers ([`Store::get_into_batch`]), or memory handed out once the size is
//! known ([`Store::get_with`], which lets a binding read straight into its own objects).

use std::mem::MaybeUninit;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mc_schema::msg::{ReplicaDesc, ReplicaKind, ReplicaListResult, Request, ResponseBody};
use mc_transfer::uninit::as_uninit_mut;

use super::pipeline::ReadJob;
use super::{Store, check_batch, check_key, invalid, unexpected};
use crate::metrics::Op;
use crate::{Error, ErrorCode, Result};

/// Pause before asking again for keys a recovering master does not know yet.
const RECOVERY_RETRY: Duration = Duration::from_millis(50);

impl Store {
    /// Replica lists of `keys`. A key the master answers as not known yet
    /// (UNAVAILABLE_IN_CURRENT_STATUS: it is re-adopting what the nodes hold) is asked
    /// again until the call's deadline.
    pub(super) fn replica_lists(&self, keys: &[&str]) -> Result<Vec<ReplicaListResult>> {
        check_batch(keys.len())?;
        let later = ErrorCode::UnavailableInCurrentStatus.code();
        let deadline = Instant::now() + self.cfg.rpc_timeout;
        let mut out = self.replica_lists_once(keys)?;
        loop {
            let waiting: Vec<usize> = (0..keys.len())
                .filter(|&i| out[i].status == later)
                .collect();
            if waiting.is_empty() || Instant::now() >= deadline {
                return Ok(out);
            }
            std::thread::sleep(RECOVERY_RETRY);
            let again: Vec<&str> = waiting.iter().map(|&i| keys[i]).collect();
            for (i, r) in waiting.into_iter().zip(self.replica_lists_once(&again)?) {
                out[i] = r;
            }
        }
    }

    fn replica_lists_once(&self, keys: &[&str]) -> Result<Vec<ReplicaListResult>> {
        let resp = self.call(&Request::GetReplicaList {
            keys: keys.iter().map(|k| k.to_string()).collect(),
        })?;
        match resp.body {
            ResponseBody::ReplicaLists(v) if v.len() == keys.len() => Ok(v),
            _ => Err(unexpected("GetReplicaList")),
        }
    }

    /// Where each key is, and whether that came from the location cache: cached keys first,
    /// one GetReplicaList for the rest (whose answers are cached). Any invalid key fails
    /// the whole call with the same error.
    fn locate(&self, keys: &[&str]) -> std::result::Result<Located, Error> {
        if let Some(e) = keys.iter().find_map(|k| check_key(k).err()) {
            return Err(e);
        }
        check_batch(keys.len())?;
        let mut lists: Vec<Option<Arc<ReplicaListResult>>> =
            keys.iter().map(|k| self.cache.get(k)).collect();
        let cached: Vec<bool> = lists.iter().map(Option::is_some).collect();
        let missing: Vec<usize> = (0..keys.len()).filter(|&k| !cached[k]).collect();
        if !missing.is_empty() {
            let ask: Vec<&str> = missing.iter().map(|&k| keys[k]).collect();
            for (k, r) in missing.into_iter().zip(self.replica_lists(&ask)?) {
                let r = Arc::new(r);
                self.cache.insert(keys[k], r.clone());
                lists[k] = Some(r);
            }
        }
        Ok(Located {
            lists: lists.into_iter().map(|l| l.expect("located")).collect(),
            cached,
        })
    }

    /// Asks the master again for the keys whose cached location failed (`again[k]`), and
    /// caches the answers. Keys not asked keep their entry.
    fn relocate(&self, keys: &[&str], at: &mut Located, again: &[bool]) -> Result<()> {
        let idx: Vec<usize> = (0..keys.len()).filter(|&k| again[k]).collect();
        let ask: Vec<&str> = idx.iter().map(|&k| keys[k]).collect();
        for (k, r) in idx.into_iter().zip(self.replica_lists(&ask)?) {
            let r = Arc::new(r);
            self.cache.insert(keys[k], r.clone());
            at.lists[k] = r;
            at.cached[k] = false;
        }
        Ok(())
    }

    /// Reads every slice of replica `r` into `buf` (pipelined per shard) and checks each
    /// against its CRC32C; the first failure is returned.
    fn read_replica(
        &self,
        r: &ReplicaDesc,
        buf: &mut [MaybeUninit<u8>],
        crcs: &[u32],
    ) -> Result<()> {
        let total: u64 = r.slices.iter().map(|s| s.length).sum();
        if total != buf.len() as u64 || r.slices.len() != crcs.len() {
            return Err(Error::new(
                ErrorCode::InvalidReplica,
                "replica does not match the object size",
            ));
        }
        let mut jobs = Vec::with_capacity(r.slices.len());
        let mut rest: &mut [MaybeUninit<u8>] = buf;
        for (s, crc) in r.slices.iter().zip(crcs) {
            let (part, tail) = rest.split_at_mut(s.length as usize);
            rest = tail;
            jobs.push(ReadJob {
                slice: s,
                buf: part,
                crc: *crc,
                validate: false,
                probe: false,
            });
        }
        self.read_pipelined(&mut jobs).into_iter().collect()
    }

    /// Counts a read served by `rep` when it is an SSD copy.
    fn note_read_from(&self, rep: &ReplicaDesc) {
        if rep.kind == ReplicaKind::LocalDisk {
            self.ssd_reads
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Reads one complete replica into `buf` (exactly the object size), memory replicas
    /// first (from a random one on), then SSD copies (`replica_order`), trying the next
    /// replica on any failure. Fails only when no replica could be read intact; returns
    /// the index of the replica read.
    fn read_object(&self, r: &ReplicaListResult, buf: &mut [MaybeUninit<u8>]) -> Result<usize> {
        if r.replicas.is_empty() {
            return Err(Error::new(
                ErrorCode::ReplicaIsNotReady,
                "no complete replica",
            ));
        }
        let mut last = None;
        let mut corrupt = None;
        for i in replica_order(r) {
            let rep = &r.replicas[i];
            match self.read_replica(rep, buf, &r.slice_crcs) {
                Ok(()) => {
                    self.note_read_from(rep);
                    return Ok(i);
                }
                Err(e) if e.code() == ErrorCode::ChecksumMismatch => corrupt = Some(e),
                Err(e) => last = Some(e),
            }
        }
        // Corruption is reported as such; anything else means no replica was reachable.
        Err(corrupt.unwrap_or_else(|| {
            let e = last.expect("at least one replica was tried");
            Error::new(ErrorCode::TransferFail, format!("no replica readable: {e}"))
        }))
    }

    /// Counts a TCP read of `key` (replica `replica` of `r`, into `buf`) for the hot cache,
    /// which may keep a copy. `buf` must hold bytes a successful read received (every byte
    /// of it, CRC-checked): that is this function's contract.
    #[allow(unsafe_code)]
    fn admit_read(
        &self,
        key: &str,
        r: &ReplicaListResult,
        replica: usize,
        buf: &[MaybeUninit<u8>],
    ) {
        let Some(hot) = &self.hot else {
            return;
        };
        if r.replicas
            .get(replica)
            .is_none_or(|rep| self.same_host.maps(rep))
        {
            return;
        }
        // SAFETY: by this function's contract every byte of `buf` was received, so it is
        // initialised; `MaybeUninit<u8>` has the layout of `u8`.
        let bytes = unsafe { &*(buf as *const [MaybeUninit<u8>] as *const [u8]) };
        hot.admit(key, r, replica, bytes);
    }

    /// Fills `targets[k]` (exactly the size of object `k`, or `None` to skip the key) from
    /// `at.lists[k]`. First try: one random replica per key, all slices pipelined per shard,
    /// validated by the shard for cached locations. A key whose first try failed falls back
    /// to every replica in turn, except a cached one: its outcome says `Stale`, and the
    /// caller asks the master where the key is now.
    ///
    /// A key the hot cache holds for the object its list names is copied from there: at
    /// once when the master gave the list in this call, after the shard answered a probe
    /// of every slice (held, no payload) when the list came from the location cache. A
    /// refused probe drops the entry and the key goes the way of a failed cached read.
    fn fill(&self, keys: &[&str], at: &Located, targets: &mut [Option<Target<'_>>]) -> Vec<Filled> {
        let mut jobs = Vec::new();
        let mut owner = Vec::new();
        let mut first = vec![None; keys.len()];
        // Keys read by copying from a node of this host (`samehost`).
        let mut local = vec![false; keys.len()];
        // Keys whose hot cache entry is probed (`hot[k]`), or already served (`served[k]`).
        let mut hot = vec![None; keys.len()];
        let mut served = vec![false; keys.len()];
        for (k, (r, target)) in at.lists.iter().zip(targets.iter_mut()).enumerate() {
            let Some(buf) = target.as_deref_mut() else {
                continue;
            };
            if r.replicas.is_empty() {
                continue;
            }
            if let Some(cache) = &self.hot {
                let hit = (buf.len() as u64 == r.size)
                    .then(|| cache.lookup(keys[k], r))
                    .flatten();
                if let Some(hit) = hit {
                    if !at.cached[k] {
                        // The master named this object during this call: it is current.
                        if cache.serve(keys[k], hit, buf) {
                            served[k] = true;
                            continue;
                        }
                    } else {
                        hot[k] = Some(hit);
                        let rep = &r.replicas[hit.replica];
                        let how = (true, true);
                        slice_jobs(k, rep, &r.slice_crcs, buf, how, (&mut jobs, &mut owner));
                        continue;
                    }
                }
            }
            let i = first_replica(r);
            let rep = &r.replicas[i];
            first[k] = Some(i);
            let fits = rep.slices.iter().map(|s| s.length).sum::<u64>() == r.size
                && rep.slices.len() == r.slice_crcs.len()
                && buf.len() as u64 == r.size;
            if !fits {
                continue;
            }
            if at.cached[k] && self.same_host.read(keys[k], rep, &r.slice_crcs, buf) {
                local[k] = true;
                continue;
            }
            let how = (at.cached[k], false);
            slice_jobs(k, rep, &r.slice_crcs, buf, how, (&mut jobs, &mut owner));
        }
        let outcomes = self.read_pipelined(&mut jobs);
        drop(jobs);
        if let Some(read) = self.same_host.take_due_hits() {
            self.report_hits(read);
        }
        let mut tried = vec![false; keys.len()];
        let mut failed = vec![false; keys.len()];
        // Keys whose first try read corrupt bytes: if no replica reads intact afterwards,
        // that is what the caller hears (the corrupt one may be gone by then: a shard
        // drops an SSD record that fails its checks).
        let mut corrupt = vec![false; keys.len()];
        for k in (0..keys.len()).filter(|&k| local[k]) {
            tried[k] = true;
        }
        for (&k, out) in owner.iter().zip(outcomes) {
            tried[k] = true;
            failed[k] |= out.is_err();
            corrupt[k] |= out
                .as_ref()
                .is_err_and(|e| e.code() == ErrorCode::ChecksumMismatch);
        }
        keys.iter()
            .zip(&at.lists)
            .zip(targets.iter_mut())
            .enumerate()
            .map(|(k, ((key, r), target))| {
                if r.status != 0 {
                    if let Some(cache) = &self.hot {
                        cache.drop_stale(key);
                    }
                    return Filled::Done(Err(Error::from_status(r.status, &format!("get {key}"))));
                }
                let Some(buf) = target.as_deref_mut() else {
                    return Filled::Done(Ok(()));
                };
                if served[k] {
                    return Filled::Done(Ok(()));
                }
                if let (Some(hit), Some(cache)) = (hot[k], &self.hot) {
                    if failed[k] {
                        cache.drop_stale(key);
                    } else if cache.serve(key, hit, buf) {
                        // The shard noted the probe as a hit, as it notes a validated read.
                        self.cache.hit(key);
                        return Filled::Done(Ok(()));
                    }
                    // Refused, or evicted meanwhile, or damaged: the key is read again
                    // after asking the master (its list here came from the location cache).
                } else if tried[k] && !failed[k] {
                    if let Some(i) = first[k] {
                        self.note_read_from(&r.replicas[i]);
                        if !local[k] {
                            self.admit_read(key, r, i, buf);
                        }
                    }
                    if at.cached[k] {
                        self.cache.hit(key);
                    }
                    return Filled::Done(Ok(()));
                }
                if at.cached[k] {
                    self.cache.drop_stale(key);
                    return Filled::Stale;
                }
                Filled::Done(self.read_and_admit(key, r, buf).map_err(|e| {
                    if corrupt[k] && e.code() != ErrorCode::ChecksumMismatch {
                        Error::new(
                            ErrorCode::ChecksumMismatch,
                            format!("get {key}: a replica failed its checksum, and no other was readable ({e})"),
                        )
                    } else {
                        e
                    }
                }))
            })
            .collect()
    }

    /// [`read_object`](Self::read_object), then the hot cache's admission.
    fn read_and_admit(
        &self,
        key: &str,
        r: &ReplicaListResult,
        buf: &mut [MaybeUninit<u8>],
    ) -> Result<()> {
        let i = self.read_object(r, buf)?;
        self.admit_read(key, r, i, buf);
        Ok(())
    }

    /// Reads an object.
    pub fn get(&self, key: &str) -> Result<Vec<u8>> {
        self.get_batch(&[key]).pop().expect("one result per key")
    }

    /// Reads several objects with one master round trip. One result per key, in order.
    pub fn get_batch(&self, keys: &[&str]) -> Vec<Result<Vec<u8>>> {
        let t0 = Instant::now();
        let res = self.get_batch_inner(keys);
        let bytes = res.iter().flatten().map(|v| v.len() as u64).sum();
        let failed = res.iter().filter(|r| r.is_err()).count();
        self.record(Op::Get, keys.len(), bytes, failed, t0);
        res
    }

    fn get_batch_inner(&self, keys: &[&str]) -> Vec<Result<Vec<u8>>> {
        let mut at = match self.locate(keys) {
            Ok(l) => l,
            Err(e) => return keys.iter().map(|_| Err(e.clone())).collect(),
        };
        // Not zeroed: the transfer writes every byte, and only a complete read is handed out.
        let mut bufs: Vec<Vec<u8>> = at
            .lists
            .iter()
            .map(|r| Vec::with_capacity(wanted(r)))
            .collect();
        let mut res = self.fill_owned(keys, &at, &mut bufs, None);
        let again: Vec<bool> = res.iter().map(|r| matches!(r, Filled::Stale)).collect();
        if again.contains(&true) {
            if let Err(e) = self.relocate(keys, &mut at, &again) {
                return keys.iter().map(|_| Err(e.clone())).collect();
            }
            for k in (0..keys.len()).filter(|&k| again[k]) {
                let size = wanted(&at.lists[k]);
                if bufs[k].capacity() < size {
                    bufs[k] = Vec::with_capacity(size);
                }
            }
            for (k, r) in self
                .fill_owned(keys, &at, &mut bufs, Some(&again))
                .into_iter()
                .enumerate()
            {
                if again[k] {
                    res[k] = r;
                }
            }
        }
        hand_out(res, bufs, &at.lists)
    }

    /// [`fill`](Self::fill) into the capacity of owned buffers (each at least the size of
    /// its object); `only` limits it to some keys.
    fn fill_owned(
        &self,
        keys: &[&str],
        at: &Located,
        bufs: &mut [Vec<u8>],
        only: Option<&[bool]>,
    ) -> Vec<Filled> {
        let mut targets: Vec<Option<Target<'_>>> = bufs
            .iter_mut()
            .zip(&at.lists)
            .enumerate()
            .map(|(k, (b, r))| {
                (r.status == 0 && only.is_none_or(|o| o[k]))
                    .then(|| &mut b.spare_capacity_mut()[..wanted(r)])
            })
            .collect();
        self.fill(keys, at, &mut targets)
    }

    /// Reads an object into `buf` and returns its size. A buffer smaller than the object
    /// gets INVALID_PARAMS and is left untouched.
    pub fn get_into(&self, key: &str, buf: &mut [u8]) -> Result<usize> {
        let mut items = [(key, buf)];
        self.get_into_batch(&mut items)
            .pop()
            .expect("one result per key")
    }

    /// [`get_into`](Self::get_into) for several keys: one master round trip, slices
    /// pipelined per shard. One result (the object's size) per item, in order; an item
    /// whose buffer is too small gets INVALID_PARAMS and its buffer is left untouched.
    pub fn get_into_batch(&self, items: &mut [(&str, &mut [u8])]) -> Vec<Result<usize>> {
        let keys: Vec<&str> = items.iter().map(|(k, _)| *k).collect();
        let mut bufs: Vec<Option<&mut [u8]>> =
            items.iter_mut().map(|(_, b)| Some(&mut **b)).collect();
        self.get_batch_with(&keys, |k, size| {
            let buf = bufs[k].take().expect("one allocation per key");
            if buf.len() < size {
                return Err(invalid(format!(
                    "buffer of {} bytes is smaller than the object ({size} bytes)",
                    buf.len()
                )));
            }
            Ok(&mut buf[..size])
        })
    }

    /// Reads an object into memory obtained from `alloc(size)` once the size is known, and
    /// returns the size. `alloc` may refuse (its error is returned, nothing is read); the
    /// memory it hands out must be exactly `size` bytes and stay valid until this returns.
    pub fn get_with<'b>(
        &self,
        key: &str,
        alloc: impl FnOnce(usize) -> Result<&'b mut [u8]>,
    ) -> Result<usize> {
        let mut alloc = Some(alloc);
        self.get_batch_with(&[key], |_, size| {
            alloc.take().expect("called once for one key")(size)
        })
        .pop()
        .expect("one result per key")
    }

    /// [`get_with`](Self::get_with) for several keys: `alloc(k, size)` is called for each
    /// key `k` found, in order, before any byte is read. One result (the size) per key.
    pub fn get_batch_with<'b>(
        &self,
        keys: &[&str],
        mut alloc: impl FnMut(usize, usize) -> Result<&'b mut [u8]>,
    ) -> Vec<Result<usize>> {
        let t0 = Instant::now();
        let res = self.get_batch_with_inner(keys, |k, size| alloc(k, size).map(as_uninit_mut));
        let bytes = res.iter().flatten().map(|&n| n as u64).sum();
        let failed = res.iter().filter(|r| r.is_err()).count();
        self.record(Op::Get, keys.len(), bytes, failed, t0);
        res
    }

    /// [`get_batch_with`](Self::get_batch_with) into memory that need not be initialised:
    /// `alloc(k, size)` hands out `size` bytes for key `k`. For a key whose result is `Ok`,
    /// every byte of its memory holds the object; for a failed key the contents are
    /// unspecified (some of it may have been written), so the caller must not read them.
    pub fn get_batch_with_uninit<'b>(
        &self,
        keys: &[&str],
        alloc: impl FnMut(usize, usize) -> Result<&'b mut [MaybeUninit<u8>]>,
    ) -> Vec<Result<usize>> {
        let t0 = Instant::now();
        let res = self.get_batch_with_inner(keys, alloc);
        let bytes = res.iter().flatten().map(|&n| n as u64).sum();
        let failed = res.iter().filter(|r| r.is_err()).count();
        self.record(Op::Get, keys.len(), bytes, failed, t0);
        res
    }

    fn get_batch_with_inner<'b>(
        &self,
        keys: &[&str],
        mut alloc: impl FnMut(usize, usize) -> Result<Target<'b>>,
    ) -> Vec<Result<usize>> {
        let mut at = match self.locate(keys) {
            Ok(l) => l,
            Err(e) => return keys.iter().map(|_| Err(e.clone())).collect(),
        };
        let mut early: Vec<Option<Error>> = vec![None; keys.len()];
        let mut targets: Vec<Option<Target<'b>>> = (0..keys.len()).map(|_| None).collect();
        allocate(&at, None, &mut alloc, &mut targets, &mut early);
        let mut res = self.fill(keys, &at, &mut targets);
        let again: Vec<bool> = res.iter().map(|r| matches!(r, Filled::Stale)).collect();
        if again.contains(&true) {
            if let Err(e) = self.relocate(keys, &mut at, &again) {
                return keys.iter().map(|_| Err(e.clone())).collect();
            }
            // A key whose size changed meanwhile gets memory of its new size.
            let resize: Vec<bool> = (0..keys.len())
                .map(|k| {
                    again[k]
                        && targets[k].as_ref().map(|b| b.len() as u64) != Some(at.lists[k].size)
                })
                .collect();
            allocate(&at, Some(&resize), &mut alloc, &mut targets, &mut early);
            let mut only: Vec<Option<Target<'_>>> = targets
                .iter_mut()
                .enumerate()
                .map(|(k, t)| if again[k] { t.as_deref_mut() } else { None })
                .collect();
            for (k, r) in self.fill(keys, &at, &mut only).into_iter().enumerate() {
                if again[k] {
                    res[k] = r;
                }
            }
        }
        res.into_iter()
            .zip(&at.lists)
            .zip(early)
            .map(|((r, l), early)| match early {
                Some(e) => Err(e),
                None => r.into_result().map(|()| l.size as usize),
            })
            .collect()
    }
}

/// Memory one key is read into; need not be initialised (every byte is received before the
/// key's read succeeds).
type Target<'b> = &'b mut [MaybeUninit<u8>];

/// Queues one read job per slice of `rep` for key `k`, each into its part of `buf`;
/// `(validate, probe)` as [`ReadJob`] has them.
fn slice_jobs<'a>(
    k: usize,
    rep: &'a ReplicaDesc,
    crcs: &[u32],
    buf: &'a mut [MaybeUninit<u8>],
    (validate, probe): (bool, bool),
    (jobs, owner): (&mut Vec<ReadJob<'a>>, &mut Vec<usize>),
) {
    let mut rest = buf;
    for (s, crc) in rep.slices.iter().zip(crcs) {
        let (part, tail) = rest.split_at_mut(s.length as usize);
        rest = tail;
        jobs.push(ReadJob {
            slice: s,
            buf: part,
            crc: *crc,
            validate,
            probe,
        });
        owner.push(k);
    }
}

/// The outcome of each key of [`Store::get_batch`], a successful one with its buffer.
///
/// `bufs[k]` was lent to the transfers as its first `wanted(lists[k])` bytes of capacity;
/// an `Ok` outcome means every one of them was received (`fill` reports success only for a
/// key whose every slice arrived whole, `read_object` only for a whole replica).
#[allow(unsafe_code)]
fn hand_out(
    res: Vec<Filled>,
    bufs: Vec<Vec<u8>>,
    lists: &[Arc<ReplicaListResult>],
) -> Vec<Result<Vec<u8>>> {
    res.into_iter()
        .zip(bufs)
        .zip(lists)
        .map(|((r, mut b), l)| {
            r.into_result().map(|()| {
                let len = wanted(l);
                assert!(len <= b.capacity(), "a buffer smaller than its object");
                // SAFETY: len ≤ capacity (checked), and by this function's contract the
                // first `len` bytes were written by the transfer that succeeded.
                unsafe { b.set_len(len) };
                b
            })
        })
        .collect()
}

/// Bytes the object of a found key takes (0 for a key not found).
fn wanted(r: &ReplicaListResult) -> usize {
    if r.status == 0 { r.size as usize } else { 0 }
}

/// Where the keys of a get are.
struct Located {
    /// One answer per key.
    lists: Vec<Arc<ReplicaListResult>>,
    /// Whether each answer came from the location cache.
    cached: Vec<bool>,
}

/// The outcome of filling one key.
enum Filled {
    /// Read (or failed for good).
    Done(Result<()>),
    /// Its cached location failed: ask the master where it is now.
    Stale,
}

impl Filled {
    fn into_result(self) -> Result<()> {
        match self {
            Filled::Done(r) => r,
            Filled::Stale => Err(Error::new(
                ErrorCode::ReplicaIsGone,
                "cached location is gone and the master was not asked again",
            )),
        }
    }
}

/// Asks `alloc` for memory for every found key (`only`: those marked), in order; refusals
/// and wrong sizes go to `early`.
fn allocate<'b>(
    at: &Located,
    only: Option<&[bool]>,
    alloc: &mut impl FnMut(usize, usize) -> Result<Target<'b>>,
    targets: &mut [Option<Target<'b>>],
    early: &mut [Option<Error>],
) {
    for (k, r) in at.lists.iter().enumerate() {
        if only.is_some_and(|o| !o[k]) {
            continue;
        }
        targets[k] = None;
        early[k] = None;
        if r.status != 0 {
            continue;
        }
        match alloc(k, r.size as usize) {
            Ok(buf) if buf.len() as u64 == r.size => targets[k] = Some(buf),
            Ok(_) => early[k] = Some(invalid("allocated buffer does not match the object size")),
            Err(e) => early[k] = Some(e),
        }
    }
}

/// The replica a get tries first, without allocating: a random memory replica, or a random
/// one when there is none in memory. `r` has at least one replica.
fn first_replica(r: &ReplicaListResult) -> usize {
    let memory = r
        .replicas
        .iter()
        .filter(|x| x.kind == ReplicaKind::Memory)
        .count();
    if memory == 0 {
        return rand::random_range(0..r.replicas.len());
    }
    let nth = rand::random_range(0..memory);
    r.replicas
        .iter()
        .enumerate()
        .filter(|(_, x)| x.kind == ReplicaKind::Memory)
        .nth(nth)
        .map_or(0, |(i, _)| i)
}

/// The order a get tries the replicas of `r` in: memory replicas from a random one on (to
/// spread the load), then the SSD copies, which are slower to read.
fn replica_order(r: &ReplicaListResult) -> Vec<usize> {
    let n = r.replicas.len();
    let start = if n == 0 { 0 } else { rand::random_range(0..n) };
    let mut order: Vec<usize> = (0..n).map(|k| (start + k) % n.max(1)).collect();
    order.sort_by_key(|&i| r.replicas[i].kind != ReplicaKind::Memory);
    order
}
