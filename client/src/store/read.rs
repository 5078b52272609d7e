//! The read path: one GetReplicaList round trip for a batch, then every slice of one
//! replica per key read pipelined per shard, with a per-key fallback over the remaining
//! replicas. Every slice is checked against the CRC32C recorded at PutEnd.
//!
//! Reads land in memory the caller chooses: fresh vectors ([`Store::get_batch`]), the
//! caller's buffers ([`Store::get_into_batch`]), or memory handed out once the size is
//! known ([`Store::get_with`], which lets a binding read straight into its own objects).

use std::time::{Duration, Instant};

use mc_schema::msg::{ReplicaDesc, ReplicaListResult, Request, ResponseBody};

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

    /// Replica lists of `keys`, or the same error for every key.
    fn lists_or_errors(&self, keys: &[&str]) -> std::result::Result<Vec<ReplicaListResult>, Error> {
        if let Some(e) = keys.iter().find_map(|k| check_key(k).err()) {
            return Err(e);
        }
        self.replica_lists(keys)
    }

    /// Reads every slice of replica `r` into `buf` (pipelined per shard) and checks each
    /// against its CRC32C; the first failure is returned.
    fn read_replica(&self, r: &ReplicaDesc, buf: &mut [u8], crcs: &[u32]) -> Result<()> {
        let total: u64 = r.slices.iter().map(|s| s.length).sum();
        if total != buf.len() as u64 || r.slices.len() != crcs.len() {
            return Err(Error::new(
                ErrorCode::InvalidReplica,
                "replica does not match the object size",
            ));
        }
        let mut jobs = Vec::with_capacity(r.slices.len());
        let mut rest: &mut [u8] = buf;
        for (s, crc) in r.slices.iter().zip(crcs) {
            let (part, tail) = rest.split_at_mut(s.length as usize);
            rest = tail;
            jobs.push(ReadJob {
                slice: s,
                buf: part,
                crc: *crc,
            });
        }
        self.read_pipelined(&mut jobs).into_iter().collect()
    }

    /// Reads one complete replica into `buf` (exactly the object size), trying the next
    /// replica on any failure. Fails only when no replica could be read intact.
    fn read_object(&self, r: &ReplicaListResult, buf: &mut [u8]) -> Result<()> {
        if r.replicas.is_empty() {
            return Err(Error::new(
                ErrorCode::ReplicaIsNotReady,
                "no complete replica",
            ));
        }
        let start = rand::random_range(0..r.replicas.len());
        let mut last = None;
        let mut corrupt = None;
        for k in 0..r.replicas.len() {
            let rep = &r.replicas[(start + k) % r.replicas.len()];
            match self.read_replica(rep, buf, &r.slice_crcs) {
                Ok(()) => return Ok(()),
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

    /// Fills `targets[k]` (exactly the size of object `k`, or `None` to skip the key) from
    /// `lists[k]`. First try: one random replica per key, all slices pipelined per shard;
    /// a key whose first try failed falls back to every replica in turn.
    fn fill(
        &self,
        keys: &[&str],
        lists: &[ReplicaListResult],
        targets: &mut [Option<&mut [u8]>],
    ) -> Vec<Result<()>> {
        let mut jobs = Vec::new();
        let mut owner = Vec::new();
        for (k, (r, target)) in lists.iter().zip(targets.iter_mut()).enumerate() {
            let Some(buf) = target.as_deref_mut() else {
                continue;
            };
            if r.replicas.is_empty() {
                continue;
            }
            let rep = &r.replicas[rand::random_range(0..r.replicas.len())];
            let fits = rep.slices.iter().map(|s| s.length).sum::<u64>() == r.size
                && rep.slices.len() == r.slice_crcs.len()
                && buf.len() as u64 == r.size;
            if !fits {
                continue;
            }
            let mut rest: &mut [u8] = buf;
            for (s, crc) in rep.slices.iter().zip(&r.slice_crcs) {
                let (part, tail) = rest.split_at_mut(s.length as usize);
                rest = tail;
                jobs.push(ReadJob {
                    slice: s,
                    buf: part,
                    crc: *crc,
                });
                owner.push(k);
            }
        }
        let outcomes = self.read_pipelined(&mut jobs);
        drop(jobs);
        let mut first_try_ok = vec![false; keys.len()];
        let mut failed = vec![false; keys.len()];
        for (&k, out) in owner.iter().zip(outcomes) {
            first_try_ok[k] = true;
            failed[k] |= out.is_err();
        }
        keys.iter()
            .zip(lists)
            .zip(targets.iter_mut())
            .enumerate()
            .map(|(k, ((key, r), target))| {
                if r.status != 0 {
                    return Err(Error::from_status(r.status, &format!("get {key}")));
                }
                let Some(buf) = target.as_deref_mut() else {
                    return Ok(());
                };
                if first_try_ok[k] && !failed[k] {
                    return Ok(());
                }
                self.read_object(r, buf)
            })
            .collect()
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
        let lists = match self.lists_or_errors(keys) {
            Ok(l) => l,
            Err(e) => return keys.iter().map(|_| Err(e.clone())).collect(),
        };
        let mut bufs: Vec<Vec<u8>> = lists
            .iter()
            .map(|r| {
                let n = if r.status == 0 { r.size as usize } else { 0 };
                vec![0u8; n]
            })
            .collect();
        let mut targets: Vec<Option<&mut [u8]>> = bufs
            .iter_mut()
            .zip(&lists)
            .map(|(b, r)| (r.status == 0).then_some(b.as_mut_slice()))
            .collect();
        let res = self.fill(keys, &lists, &mut targets);
        drop(targets);
        res.into_iter()
            .zip(bufs)
            .map(|(r, b)| r.map(|()| b))
            .collect()
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
        alloc: impl FnMut(usize, usize) -> Result<&'b mut [u8]>,
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
        mut alloc: impl FnMut(usize, usize) -> Result<&'b mut [u8]>,
    ) -> Vec<Result<usize>> {
        let lists = match self.lists_or_errors(keys) {
            Ok(l) => l,
            Err(e) => return keys.iter().map(|_| Err(e.clone())).collect(),
        };
        let mut early: Vec<Option<Error>> = vec![None; keys.len()];
        let mut targets: Vec<Option<&mut [u8]>> = Vec::with_capacity(keys.len());
        for (k, r) in lists.iter().enumerate() {
            if r.status != 0 {
                targets.push(None);
                continue;
            }
            match alloc(k, r.size as usize) {
                Ok(buf) if buf.len() as u64 == r.size => targets.push(Some(buf)),
                Ok(_) => {
                    early[k] = Some(invalid("allocated buffer does not match the object size"));
                    targets.push(None);
                }
                Err(e) => {
                    early[k] = Some(e);
                    targets.push(None);
                }
            }
        }
        let res = self.fill(keys, &lists, &mut targets);
        res.into_iter()
            .zip(&lists)
            .zip(early)
            .map(|((r, l), early)| match early {
                Some(e) => Err(e),
                None => r.map(|()| l.size as usize),
            })
            .collect()
    }
}
