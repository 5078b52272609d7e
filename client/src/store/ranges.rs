//! Byte ranges of objects: a lookup that can be kept ([`ObjectLocation`], what a get
//! session holds) and reads of ranges from it with no further master round trip.
//!
//! A range read fetches every slice the range touches, whole, and checks its CRC32C
//! before copying the range out: corrupt bytes are never returned, and a replica freed
//! and reused since the lookup fails the check instead of handing back another object's
//! bytes. A replica that fails is skipped for the next one.

use mc_schema::msg::ReplicaListResult;

use super::pipeline::ReadJob;
use super::{Store, invalid};
use crate::metrics::Op;
use crate::{Error, ErrorCode, Result};
use mc_transfer::uninit::as_uninit_mut;

/// One object's share of [`Store::read_ranges_batch`]: where it lives and its ranges
/// (object offset, destination).
pub type RangeRead<'l, 'b> = (&'l ObjectLocation, Vec<(u64, &'b mut [u8])>);

/// Where a complete object lives, as one lookup found it.
#[derive(Debug, Clone)]
pub struct ObjectLocation {
    list: ReplicaListResult,
}

impl ObjectLocation {
    /// The object's size in bytes.
    pub fn size(&self) -> u64 {
        self.list.size
    }
}

/// Indexes of the slices (of `lengths`) that bytes `[start, end)` touch.
fn touched(lengths: &[u64], ranges: &[(u64, usize)]) -> Vec<bool> {
    let mut at = 0u64;
    lengths
        .iter()
        .map(|&len| {
            let (s, e) = (at, at + len);
            at = e;
            ranges
                .iter()
                .any(|&(off, n)| n > 0 && off < e && off + n as u64 > s)
        })
        .collect()
}

impl Store {
    /// Looks up several objects in one round trip (grants read leases, as a get does).
    pub fn locate_batch(&self, keys: &[&str]) -> Vec<Result<ObjectLocation>> {
        if let Some(e) = keys.iter().find_map(|k| super::check_key(k).err()) {
            return keys.iter().map(|_| Err(e.clone())).collect();
        }
        match self.replica_lists(keys) {
            Ok(lists) => keys
                .iter()
                .zip(lists)
                .map(|(k, l)| {
                    if l.status != 0 {
                        return Err(Error::from_status(l.status, &format!("locate {k}")));
                    }
                    if l.replicas.is_empty() {
                        return Err(Error::new(
                            ErrorCode::ReplicaIsNotReady,
                            "no complete replica",
                        ));
                    }
                    Ok(ObjectLocation { list: l })
                })
                .collect(),
            Err(e) => keys.iter().map(|_| Err(e.clone())).collect(),
        }
    }

    /// Reads `ranges` (object offset, destination) of the object at `loc`; returns the
    /// bytes copied. A range past the object's end fails the whole call with
    /// INVALID_PARAMS before anything is read.
    pub fn read_ranges(
        &self,
        loc: &ObjectLocation,
        ranges: &mut [(u64, &mut [u8])],
    ) -> Result<u64> {
        let t0 = std::time::Instant::now();
        let res = self.read_ranges_inner(loc, ranges);
        let bytes = res.as_ref().map_or(0, |&n| n);
        self.record(Op::Get, 1, bytes, usize::from(res.is_err()), t0);
        res
    }

    /// [`read_ranges`](Self::read_ranges) for several objects: the touched slices of one
    /// replica of every object are read in one pipelined exchange per shard; an object whose
    /// first replica failed falls back to its others. One result per item.
    pub fn read_ranges_batch(&self, items: &mut [RangeRead<'_, '_>]) -> Vec<Result<u64>> {
        let t0 = std::time::Instant::now();
        let res = self.read_ranges_batch_inner(items);
        let bytes = res.iter().flatten().sum();
        let failed = res.iter().filter(|r| r.is_err()).count();
        self.record(Op::Get, items.len(), bytes, failed, t0);
        res
    }

    fn read_ranges_batch_inner(&self, items: &mut [RangeRead<'_, '_>]) -> Vec<Result<u64>> {
        // First try: one random replica per object, every touched slice in one exchange.
        let mut bufs: Vec<Vec<u8>> = Vec::new();
        let mut owner: Vec<(usize, u64, &mc_schema::msg::SliceDesc, u32)> = Vec::new();
        let mut early: Vec<Option<Result<u64>>> = Vec::with_capacity(items.len());
        for (k, (loc, ranges)) in items.iter().enumerate() {
            let spans: Vec<(u64, usize)> = ranges.iter().map(|(o, b)| (*o, b.len())).collect();
            match check_spans(loc.list.size, &spans) {
                Err(e) => early.push(Some(Err(e))),
                Ok(0) => early.push(Some(Ok(0))),
                Ok(_) => {
                    early.push(None);
                    let reps = &loc.list.replicas;
                    let rep = &reps[rand::random_range(0..reps.len())];
                    let Some(want) = plan(&loc.list, rep, &spans) else {
                        continue; // does not fit: the fallback reports it
                    };
                    let mut at = 0u64;
                    for (i, s) in rep.slices.iter().enumerate() {
                        if want[i] {
                            bufs.push(vec![0u8; s.length as usize]);
                            owner.push((k, at, s, loc.list.slice_crcs[i]));
                        }
                        at += s.length;
                    }
                }
            }
        }
        let mut jobs: Vec<ReadJob<'_>> = bufs
            .iter_mut()
            .zip(&owner)
            .map(|(buf, &(_, _, slice, crc))| ReadJob {
                slice,
                buf: as_uninit_mut(buf.as_mut_slice()),
                crc,
                validate: false,
                probe: false,
            })
            .collect();
        let outcomes = self.read_pipelined(&mut jobs);
        drop(jobs);
        let mut read: Vec<Vec<(u64, Vec<u8>)>> = (0..items.len()).map(|_| Vec::new()).collect();
        let mut ok = vec![true; items.len()];
        let mut tried = vec![false; items.len()];
        for (((k, at, _, _), buf), out) in owner.iter().zip(bufs).zip(outcomes) {
            tried[*k] = true;
            ok[*k] &= out.is_ok();
            read[*k].push((*at, buf));
        }
        items
            .iter_mut()
            .zip(early)
            .enumerate()
            .map(|(k, ((loc, ranges), early))| {
                if let Some(r) = early {
                    return r;
                }
                if tried[k] && ok[k] {
                    copy_out(&read[k], ranges);
                    return Ok(ranges.iter().map(|(_, b)| b.len() as u64).sum());
                }
                self.read_ranges_inner(loc, ranges)
            })
            .collect()
    }

    fn read_ranges_inner(
        &self,
        loc: &ObjectLocation,
        ranges: &mut [(u64, &mut [u8])],
    ) -> Result<u64> {
        let spans: Vec<(u64, usize)> = ranges.iter().map(|(o, b)| (*o, b.len())).collect();
        let total = check_spans(loc.list.size, &spans)?;
        if total == 0 {
            return Ok(0);
        }
        let reps = &loc.list.replicas;
        let start = rand::random_range(0..reps.len());
        let mut last = None;
        for k in 0..reps.len() {
            let rep = &reps[(start + k) % reps.len()];
            match self.read_touched(&loc.list, rep, &spans) {
                Ok(slices) => {
                    copy_out(&slices, ranges);
                    return Ok(total);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("at least one replica"))
    }

    /// The slices of replica `rep` that `spans` touch, read whole and CRC-checked, each with
    /// its offset in the object.
    fn read_touched(
        &self,
        list: &ReplicaListResult,
        rep: &mc_schema::msg::ReplicaDesc,
        spans: &[(u64, usize)],
    ) -> Result<Vec<(u64, Vec<u8>)>> {
        let want = plan(list, rep, spans).ok_or_else(|| {
            Error::new(
                ErrorCode::InvalidReplica,
                "replica does not match the object size",
            )
        })?;
        let mut offsets = Vec::new();
        let mut at = 0u64;
        let mut bufs: Vec<Vec<u8>> = Vec::new();
        let mut picked = Vec::new();
        for (i, s) in rep.slices.iter().enumerate() {
            if want[i] {
                offsets.push(at);
                bufs.push(vec![0u8; s.length as usize]);
                picked.push(i);
            }
            at += s.length;
        }
        let mut jobs: Vec<ReadJob<'_>> = bufs
            .iter_mut()
            .zip(&picked)
            .map(|(buf, &i)| ReadJob {
                slice: &rep.slices[i],
                buf: as_uninit_mut(buf.as_mut_slice()),
                crc: list.slice_crcs[i],
                validate: false,
                probe: false,
            })
            .collect();
        let outcomes = self.read_pipelined(&mut jobs);
        drop(jobs);
        outcomes.into_iter().collect::<Result<Vec<()>>>()?;
        Ok(offsets.into_iter().zip(bufs).collect())
    }
}

/// The bytes `spans` ask for, or INVALID_PARAMS when one runs past an object of `size`.
fn check_spans(size: u64, spans: &[(u64, usize)]) -> Result<u64> {
    for &(off, n) in spans {
        if off.checked_add(n as u64).is_none_or(|end| end > size) {
            return Err(invalid(format!(
                "range [{off}, +{n}) runs past the object's {size} bytes"
            )));
        }
    }
    Ok(spans.iter().map(|&(_, n)| n as u64).sum())
}

/// Which slices of replica `rep` `spans` touch; `None` when the replica does not match
/// the object.
fn plan(
    list: &ReplicaListResult,
    rep: &mc_schema::msg::ReplicaDesc,
    spans: &[(u64, usize)],
) -> Option<Vec<bool>> {
    let lengths: Vec<u64> = rep.slices.iter().map(|s| s.length).collect();
    let fits = lengths.iter().sum::<u64>() == list.size && lengths.len() == list.slice_crcs.len();
    fits.then(|| touched(&lengths, spans))
}

/// Copies each range out of the slices read (`(offset in the object, bytes)`, in order).
fn copy_out(slices: &[(u64, Vec<u8>)], ranges: &mut [(u64, &mut [u8])]) {
    for (off, dst) in ranges.iter_mut() {
        let mut done = 0usize;
        while done < dst.len() {
            let pos = *off + done as u64;
            let (s_off, s) = slices
                .iter()
                .find(|(o, b)| *o <= pos && pos < *o + b.len() as u64)
                .expect("every touched slice was read");
            let from = (pos - s_off) as usize;
            let n = (s.len() - from).min(dst.len() - done);
            dst[done..done + n].copy_from_slice(&s[from..from + n]);
            done += n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_touched_slices() {
        let lens = [10, 10, 10];
        assert_eq!(touched(&lens, &[(5, 10)]), vec![true, true, false]);
        assert_eq!(touched(&lens, &[(20, 10)]), vec![false, false, true]);
        assert_eq!(touched(&lens, &[(10, 0)]), vec![false, false, false]);
        assert_eq!(touched(&lens, &[(9, 1), (29, 1)]), vec![true, false, true]);
    }

    #[test]
    fn copies_across_slice_edges() {
        let slices = vec![(0u64, vec![1u8; 4]), (4u64, vec![2u8; 4])];
        let mut a = [0u8; 3];
        let mut b = [0u8; 2];
        {
            let mut ranges: Vec<(u64, &mut [u8])> = vec![(2, &mut a[..]), (6, &mut b[..])];
            copy_out(&slices, &mut ranges);
        }
        assert_eq!(a, [1, 1, 2]);
        assert_eq!(b, [2, 2]);
    }
}
