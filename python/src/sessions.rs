//! Put and get sessions, as Mooncake's: one master round trip at the start, ranged
//! transfers with none, one at the end.
//!
//! A get session keeps where each object lives (`batch_get_session_start`), so
//! `batch_get_into_multi_buffer_ranges` reads ranges without asking the master; the slices
//! read are CRC-checked as in every read, so a replica freed meanwhile fails rather than
//! returning other bytes. A put session reserves each object at the master (PutStart: space
//! allocated, key taken, nothing readable); ranged writes fill a client-side copy of the
//! object, and `batch_put_session_end` writes it with its CRCs and commits (PutEnd), or
//! `batch_put_session_revoke` gives the space back. The copy is the price of CRCs computed
//! over whole slices by the writer; Mooncake writes ranges straight to the replicas.

use std::collections::HashMap;

use mooncake_rs::{ObjectLocation, PutReservation};
use parking_lot::Mutex;
use pyo3::prelude::*;

use crate::buffers::{self, Access};
use crate::config::ReplicateConfig;
use crate::ranges::{RangeJob, read_jobs};
use crate::store::{MooncakeDistributedStore, write_code};
use crate::zero_copy::mems;

/// INVALID_PARAMS.
const INVALID: i32 = -600;

/// A reserved put and the bytes written into it so far.
struct PutSession {
    reservation: PutReservation,
    data: Vec<u8>,
}

/// The sessions of one set-up client (dropped with it at `close()`).
#[derive(Default)]
pub struct Sessions {
    gets: Mutex<HashMap<String, ObjectLocation>>,
    puts: Mutex<HashMap<String, PutSession>>,
}

impl Sessions {
    /// Revokes every open put session (best effort) and forgets every get session.
    pub fn revoke_all(&self, store: &mooncake_rs::Store) {
        self.gets.lock().clear();
        let keys: Vec<String> = self.puts.lock().drain().map(|(k, _)| k).collect();
        if !keys.is_empty() {
            let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
            for (k, r) in keys.iter().zip(store.put_revoke_batch(&refs)) {
                if let Err(e) = r {
                    tracing::warn!("close: revoking the put session of {k}: {e}");
                }
            }
        }
    }
}

/// The client-side copy of a reserved object, zeroed; `None` when the memory cannot be had
/// (refused rather than aborting the process).
fn session_buffer(size: u64) -> Option<Vec<u8>> {
    let n = usize::try_from(size).ok()?;
    let mut v = Vec::new();
    v.try_reserve_exact(n).ok()?;
    v.resize(n, 0);
    Some(v)
}

/// Bytes `[off, off + len)` fit in an object of `size` bytes.
fn fits(off: usize, len: usize, size: u64) -> bool {
    off.checked_add(len).is_some_and(|end| end as u64 <= size)
}

#[pymethods]
impl MooncakeDistributedStore {
    /// Looks the keys up once and keeps where they live. One code per key: 0, or why not.
    fn batch_get_session_start(&self, py: Python<'_>, keys: Vec<String>) -> Vec<i32> {
        let Ok(c) = self.client() else {
            return Vec::new();
        };
        let found = py.detach(|| {
            let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
            c.store.locate_batch(&refs)
        });
        let mut gets = c.sessions.gets.lock();
        keys.iter()
            .zip(found)
            .map(|(k, r)| match r {
                Ok(loc) => {
                    gets.insert(k.clone(), loc);
                    0
                }
                Err(e) => {
                    gets.remove(k);
                    e.code().code()
                }
            })
            .collect()
    }

    /// Reads, for each key of a get session, `all_sizes[i][j]` bytes from object offset
    /// `all_src_offsets[i][j]` into buffer `all_buffer_ptrs[i][j]`; no master round trip.
    /// Per key: bytes read, or a negative code (INVALID_PARAMS without a session or for a
    /// range past the object's end).
    fn batch_get_into_multi_buffer_ranges(
        &self,
        py: Python<'_>,
        keys: Vec<String>,
        all_buffer_ptrs: Vec<Vec<Bound<'_, PyAny>>>,
        all_sizes: Vec<Vec<usize>>,
        all_src_offsets: Vec<Vec<u64>>,
    ) -> Vec<i32> {
        let n = keys.len();
        let Ok(c) = self.client() else {
            return Vec::new();
        };
        if all_buffer_ptrs.len() != n || all_sizes.len() != n || all_src_offsets.len() != n {
            self.fail(
                INVALID,
                "batch_get_into_multi_buffer_ranges: one list entry per key",
            );
            return vec![INVALID; n];
        }
        let known: HashMap<String, ObjectLocation> = {
            let gets = c.sessions.gets.lock();
            keys.iter()
                .filter_map(|k| gets.get(k).map(|l| (k.clone(), l.clone())))
                .collect()
        };
        let (mut jobs, mut dsts) = (Vec::new(), Vec::new());
        let mut planned = vec![false; n];
        for (i, key) in keys.iter().enumerate() {
            let Some(loc) = known.get(key) else { continue };
            let (ptrs, sizes, offs) = (&all_buffer_ptrs[i], &all_sizes[i], &all_src_offsets[i]);
            let lined_up = ptrs.len() == sizes.len() && ptrs.len() == offs.len();
            let in_object = offs
                .iter()
                .zip(sizes)
                .all(|(&o, &s)| fits(o as usize, s, loc.size()));
            if !lined_up || !in_object {
                continue;
            }
            match mems(ptrs, sizes, Access::Write) {
                Ok(ms) => {
                    planned[i] = true;
                    for (j, m) in ms.into_iter().enumerate() {
                        jobs.push(RangeJob {
                            at: (i, j, 0),
                            key: key.clone(),
                            src: offs[j],
                        });
                        dsts.push(m);
                    }
                }
                Err(e) => {
                    self.refuse("batch_get_into_multi_buffer_ranges", &e);
                }
            }
        }
        let slices = match buffers::dests(&mut dsts) {
            Ok(s) => s,
            Err(e) => return vec![self.refuse("batch_get_into_multi_buffer_ranges", &e); n],
        };
        let codes = py.detach(|| read_jobs(&c, &jobs, slices, &known));
        per_key(n, &planned, &jobs, &codes)
    }

    /// Ends get sessions (forgets where the keys live). Returns 0.
    fn batch_get_session_end(&self, keys: Vec<String>) -> i32 {
        let Ok(c) = self.client() else {
            return -1;
        };
        let mut gets = c.sessions.gets.lock();
        keys.iter().for_each(|k| {
            gets.remove(k);
        });
        0
    }

    /// Reserves objects of `sizes` bytes under `keys` (one PutStart); nothing is readable
    /// until `batch_put_session_end`. One code per key (INVALID_PARAMS for a key that
    /// already has a session).
    #[pyo3(signature = (keys, sizes, config=None))]
    fn batch_put_session_start(
        &self,
        py: Python<'_>,
        keys: Vec<String>,
        sizes: Vec<u64>,
        config: Option<PyRef<'_, ReplicateConfig>>,
    ) -> Vec<i32> {
        let n = keys.len();
        let (c, cfg) = match self.client_and_config(config.as_deref()) {
            Ok(v) => v,
            Err(code) => return vec![code; n],
        };
        if sizes.len() != n {
            self.fail(INVALID, "batch_put_session_start: one size per key");
            return vec![INVALID; n];
        }
        let mut out = vec![0; n];
        let todo: Vec<usize> = {
            let puts = c.sessions.puts.lock();
            (0..n).filter(|&i| !puts.contains_key(&keys[i])).collect()
        };
        for i in (0..n).filter(|i| !todo.contains(i)) {
            out[i] = self.fail(
                INVALID,
                format!("put session already exists for {}", keys[i]),
            );
        }
        let items: Vec<(&str, u64)> = todo.iter().map(|&i| (keys[i].as_str(), sizes[i])).collect();
        let res = py.detach(|| c.store.put_reserve_batch(&items, &cfg));
        let mut unbuffered = Vec::new();
        {
            let mut puts = c.sessions.puts.lock();
            for (&i, r) in todo.iter().zip(res) {
                match r {
                    Ok(reservation) => match session_buffer(reservation.size()) {
                        Some(data) => {
                            puts.insert(keys[i].clone(), PutSession { reservation, data });
                        }
                        None => unbuffered.push(i),
                    },
                    Err(e) => out[i] = e.code().code(),
                }
            }
        }
        if !unbuffered.is_empty() {
            // No client memory for the object: give the reservation back at once.
            let refs: Vec<&str> = unbuffered.iter().map(|&i| keys[i].as_str()).collect();
            let _ = py.detach(|| c.store.put_revoke_batch(&refs));
            for &i in &unbuffered {
                out[i] = self.fail(
                    mooncake_rs::ErrorCode::InternalError.code(),
                    format!(
                        "batch_put_session_start {}: no memory for a {}-byte session buffer",
                        keys[i], sizes[i]
                    ),
                );
            }
        }
        out
    }

    /// Writes, for each key of a put session, buffer `all_buffer_ptrs[i][j]`
    /// (`all_sizes[i][j]` bytes) at object offset `all_dst_offsets[i][j]`. Per key: bytes
    /// written, or INVALID_PARAMS (no session, lists that do not line up, or a range past
    /// the object's end; then nothing of that key is written).
    fn batch_put_from_multi_buffer_ranges(
        &self,
        keys: Vec<String>,
        all_buffer_ptrs: Vec<Vec<Bound<'_, PyAny>>>,
        all_sizes: Vec<Vec<usize>>,
        all_dst_offsets: Vec<Vec<usize>>,
    ) -> Vec<i32> {
        let n = keys.len();
        let Ok(c) = self.client() else {
            return Vec::new();
        };
        if all_buffer_ptrs.len() != n || all_sizes.len() != n || all_dst_offsets.len() != n {
            self.fail(
                INVALID,
                "batch_put_from_multi_buffer_ranges: one list entry per key",
            );
            return vec![INVALID; n];
        }
        let mut out = vec![INVALID; n];
        let mut puts = c.sessions.puts.lock();
        for (i, key) in keys.iter().enumerate() {
            let Some(s) = puts.get_mut(key) else { continue };
            let (sizes, offs) = (&all_sizes[i], &all_dst_offsets[i]);
            let size = s.data.len() as u64;
            if offs.len() != sizes.len() || !offs.iter().zip(sizes).all(|(&o, &n)| fits(o, n, size))
            {
                continue;
            }
            let srcs = match mems(&all_buffer_ptrs[i], sizes, Access::Read) {
                Ok(m) => m,
                Err(e) => {
                    self.refuse("batch_put_from_multi_buffer_ranges", &e);
                    continue;
                }
            };
            let mut written = 0usize;
            for (m, &o) in srcs.iter().zip(offs) {
                s.data[o..o + m.len()].copy_from_slice(m.bytes());
                written += m.len();
            }
            out[i] = written.min(i32::MAX as usize) as i32;
        }
        out
    }

    /// Writes what each key's put session holds and commits it (PutEnd): the object
    /// becomes readable. One code per key (INVALID_PARAMS without a session).
    fn batch_put_session_end(&self, py: Python<'_>, keys: Vec<String>) -> Vec<i32> {
        let Ok(c) = self.client() else {
            return Vec::new();
        };
        let (idx, sessions) = take_puts(&c.sessions, &keys);
        let mut out = vec![INVALID; keys.len()];
        let res = py.detach(|| {
            let reservations: Vec<PutReservation> =
                sessions.iter().map(|s| s.reservation.clone()).collect();
            let values: Vec<&[u8]> = sessions.iter().map(|s| s.data.as_slice()).collect();
            c.store.put_reserved_batch(&reservations, &values)
        });
        for (i, r) in idx.into_iter().zip(res) {
            out[i] = write_code(&r);
        }
        out
    }

    /// Gives put sessions' reservations back (PutRevoke). One code per key.
    fn batch_put_session_revoke(&self, py: Python<'_>, keys: Vec<String>) -> Vec<i32> {
        let Ok(c) = self.client() else {
            return Vec::new();
        };
        let (idx, sessions) = take_puts(&c.sessions, &keys);
        let mut out = vec![INVALID; keys.len()];
        let res = py.detach(|| {
            let refs: Vec<&str> = sessions.iter().map(|s| s.reservation.key()).collect();
            c.store.put_revoke_batch(&refs)
        });
        for (i, r) in idx.into_iter().zip(res) {
            out[i] = r.map_or_else(|e| e.code().code(), |()| 0);
        }
        out
    }
}

/// Per key: INVALID_PARAMS when it was not read, else its first failure or the bytes read
/// over all its ranges.
fn per_key(n: usize, planned: &[bool], jobs: &[RangeJob], codes: &[i64]) -> Vec<i32> {
    let mut total = vec![0i64; n];
    let mut failed: Vec<Option<i64>> = vec![None; n];
    for (job, &code) in jobs.iter().zip(codes) {
        let i = job.at.0;
        if code < 0 {
            failed[i].get_or_insert(code);
        } else {
            total[i] += code;
        }
    }
    (0..n)
        .map(|i| match (planned[i], failed[i]) {
            (false, _) => INVALID,
            (true, Some(code)) => code as i32,
            (true, None) => total[i].min(i32::MAX.into()) as i32,
        })
        .collect()
}

/// Takes the put sessions of `keys` out of `s`: (index of each key that had one, session).
fn take_puts(s: &Sessions, keys: &[String]) -> (Vec<usize>, Vec<PutSession>) {
    let mut puts = s.puts.lock();
    keys.iter()
        .enumerate()
        .filter_map(|(i, k)| puts.remove(k).map(|p| (i, p)))
        .unzip()
}
