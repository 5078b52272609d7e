//! Range reads: `get_into_ranges` copies byte ranges of objects into ranges of the caller's
//! buffers, with one code per range (its size, or why it failed), as Mooncake.
//!
//! A destination named by an integer address must lie in a range given to
//! `register_buffer` (Mooncake resolves its capacity the same way); a buffer object brings
//! its own length. A range past its destination's end, or past the object's end, fails
//! alone with INVALID_PARAMS; a missing key fails its ranges with OBJECT_NOT_FOUND.

use std::collections::HashMap;

use mooncake_rs::{ErrorCode, ObjectLocation};
use pyo3::prelude::*;

use crate::buffers::{self, Access, Mem};
use crate::error::BindingError;
use crate::store::{Client, MooncakeDistributedStore};

/// INVALID_PARAMS, the code of a range that was not read.
const INVALID: i64 = -600;

/// The lists `get_into_ranges` takes for one buffer.
type RangeLists<'a> = (
    &'a Vec<String>,
    &'a Vec<Vec<usize>>,
    &'a Vec<Vec<u64>>,
    &'a Vec<Vec<usize>>,
);

/// One range to read: its position in the answer, its key and its offset in the object.
/// Its destination is the `Mem` at the same index of the call's destination list.
pub struct RangeJob {
    /// Indexes in the answer (buffer, key, range; or key, buffer, 0).
    pub at: (usize, usize, usize),
    /// The object.
    pub key: String,
    /// Offset of the range in the object.
    pub src: u64,
}

/// A destination buffer: its memory (kept for the call) and how many bytes it offers.
pub enum Base {
    /// Nothing usable (an unregistered address): its ranges fail.
    None,
    /// A buffer object, kept exported for the call.
    Object(Mem),
    /// A registered address and the bytes to the end of its registration.
    Raw(usize, usize),
}

impl Base {
    /// The destination of `len` bytes at `off`, or `None` when it does not fit.
    pub fn window(&self, off: usize, len: usize) -> Option<Result<Mem, BindingError>> {
        let (addr, cap) = match self {
            Base::None => return None,
            Base::Object(m) => (m.addr(), m.len()),
            Base::Raw(a, c) => (*a, *c),
        };
        if off > cap || len > cap - off {
            return None;
        }
        // SAFETY: `[addr + off, +len)` lies inside memory the caller vouched for for this
        // call: a registered range (register_buffer's promise, docs/python.md "Raw
        // addresses") or a buffer object that `self` keeps exported until the method
        // returns, which is after the `Mem` is dropped. Destinations of the call go through
        // `buffers::dests` before anything is written, which refuses overlaps.
        Some(unsafe { Mem::from_raw(addr + off, len, Access::Write) })
    }
}

impl MooncakeDistributedStore {
    /// The destination buffer `obj` names.
    pub(crate) fn base(&self, obj: &Bound<'_, PyAny>) -> Result<Base, BindingError> {
        match buffers::address(obj)? {
            Some(addr) => Ok(self
                .registry
                .capacity(addr)
                .map_or(Base::None, |cap| Base::Raw(addr, cap))),
            None => Mem::from_buffer(obj, None, Access::Write).map(Base::Object),
        }
    }
}

/// Reads `jobs` into `slices` (job `i` into `slices[i]`), looking the keys up in one
/// round trip unless `known` already holds their location. One code per job: bytes read,
/// or why not (INVALID_PARAMS for a range past the object's end).
pub fn read_jobs(
    c: &Client,
    jobs: &[RangeJob],
    slices: Vec<&mut [u8]>,
    known: &HashMap<String, ObjectLocation>,
) -> Vec<i64> {
    let mut out = vec![INVALID; jobs.len()];
    let mut order: Vec<String> = Vec::new();
    for j in jobs.iter() {
        if !known.contains_key(&j.key) && !order.contains(&j.key) {
            order.push(j.key.clone());
        }
    }
    let refs: Vec<&str> = order.iter().map(String::as_str).collect();
    let found = if refs.is_empty() {
        Vec::new()
    } else {
        c.store.locate_batch(&refs)
    };
    let looked: HashMap<&str, &Result<ObjectLocation, mooncake_rs::Error>> =
        refs.iter().copied().zip(found.iter()).collect();
    let mut by_key: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, j) in jobs.iter().enumerate() {
        by_key.entry(j.key.clone()).or_default().push(i);
    }
    let mut slices: Vec<Option<&mut [u8]>> = slices.into_iter().map(Some).collect();
    let mut batch: Vec<mooncake_rs::RangeRead<'_, '_>> = Vec::new();
    let mut which: Vec<Vec<usize>> = Vec::new();
    for (key, idx) in by_key {
        let loc = match known.get(&key) {
            Some(l) => Ok(l),
            None => match looked.get(key.as_str()) {
                Some(Ok(l)) => Ok(l),
                Some(Err(e)) => Err(e.code().code()),
                None => Err(ErrorCode::InternalError.code()),
            },
        };
        let loc = match loc {
            Ok(l) => l,
            Err(code) => {
                idx.iter().for_each(|&i| out[i] = code.into());
                continue;
            }
        };
        let mut ranges = Vec::new();
        let mut read = Vec::new();
        for &i in &idx {
            let buf = slices[i].take().expect("each job read once");
            let fits = jobs[i]
                .src
                .checked_add(buf.len() as u64)
                .is_some_and(|end| end <= loc.size());
            if fits {
                read.push(i);
                ranges.push((jobs[i].src, buf));
            }
        }
        batch.push((loc, ranges));
        which.push(read);
    }
    let res = c.store.read_ranges_batch(&mut batch);
    for ((r, read), (_, ranges)) in res.into_iter().zip(which).zip(&batch) {
        match r {
            Ok(_) => {
                for (&i, (_, b)) in read.iter().zip(ranges) {
                    out[i] = b.len() as i64;
                }
            }
            Err(e) => read.iter().for_each(|&i| out[i] = e.code().code().into()),
        }
    }
    out
}

#[pymethods]
impl MooncakeDistributedStore {
    /// Reads byte ranges of objects into ranges of buffers:
    /// `all_keys[i][j]`'s bytes `[all_src_offsets[i][j][k], +all_sizes[i][j][k])` go to
    /// `buffer_ptrs[i] + all_dst_offsets[i][j][k]`. Returns `[i][j][k]`: bytes read or a
    /// negative code, per range.
    fn get_into_ranges(
        &self,
        py: Python<'_>,
        buffer_ptrs: Vec<Bound<'_, PyAny>>,
        all_keys: Vec<Vec<String>>,
        all_dst_offsets: Vec<Vec<Vec<usize>>>,
        all_src_offsets: Vec<Vec<Vec<u64>>>,
        all_sizes: Vec<Vec<Vec<usize>>>,
    ) -> Vec<Vec<Vec<i64>>> {
        let mut out: Vec<Vec<Vec<i64>>> = all_dst_offsets
            .iter()
            .map(|per_key| per_key.iter().map(|d| vec![INVALID; d.len()]).collect())
            .collect();
        let n = buffer_ptrs.len();
        if [
            all_keys.len(),
            all_dst_offsets.len(),
            all_src_offsets.len(),
            all_sizes.len(),
        ]
        .iter()
        .any(|&l| l != n)
        {
            self.fail(
                -600,
                "get_into_ranges: the five lists must have one entry per buffer",
            );
            return out;
        }
        let c = match self.client() {
            Ok(c) => c,
            Err(_) => return out,
        };
        let mut bases = Vec::with_capacity(n);
        let (mut jobs, mut dsts) = (Vec::new(), Vec::new());
        for (i, obj) in buffer_ptrs.iter().enumerate() {
            let base = match self.base(obj) {
                Ok(b) => b,
                Err(e) => {
                    self.refuse("get_into_ranges", &e);
                    Base::None
                }
            };
            let lists = (
                &all_keys[i],
                &all_dst_offsets[i],
                &all_src_offsets[i],
                &all_sizes[i],
            );
            self.plan(i, &base, lists, &mut jobs, &mut dsts);
            bases.push(base);
        }
        let slices = match buffers::dests(&mut dsts) {
            Ok(s) => s,
            Err(e) => {
                self.refuse("get_into_ranges", &e);
                return out;
            }
        };
        let codes = py.detach(|| read_jobs(&c, &jobs, slices, &HashMap::new()));
        for (job, code) in jobs.iter().zip(codes) {
            let (i, j, k) = job.at;
            out[i][j][k] = code;
        }
        drop(dsts);
        drop(bases);
        out
    }
}

impl MooncakeDistributedStore {
    /// The jobs of buffer `i` (keys, destination offsets, object offsets, sizes): every
    /// range whose lists line up and that fits its buffer.
    fn plan(
        &self,
        i: usize,
        base: &Base,
        (keys, dst, src, sizes): RangeLists<'_>,
        jobs: &mut Vec<RangeJob>,
        dsts: &mut Vec<Mem>,
    ) {
        if keys.len() != dst.len() || keys.len() != src.len() || keys.len() != sizes.len() {
            return;
        }
        for (j, key) in keys.iter().enumerate() {
            if dst[j].len() != src[j].len() || dst[j].len() != sizes[j].len() {
                continue;
            }
            for k in 0..dst[j].len() {
                match base.window(dst[j][k], sizes[j][k]) {
                    Some(Ok(m)) => {
                        jobs.push(RangeJob {
                            at: (i, j, k),
                            key: key.clone(),
                            src: src[j][k],
                        });
                        dsts.push(m);
                    }
                    Some(Err(e)) => {
                        self.refuse("get_into_ranges", &e);
                    }
                    None => {}
                }
            }
        }
    }
}
