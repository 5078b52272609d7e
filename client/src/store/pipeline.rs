//! Pipelined transfers for batches: per shard endpoint, one connection carries every
//! request of the batch before any answer is read, so a batch pays one round trip per
//! shard rather than one per slice.
//!
//! Outcomes stay per slice. An error the shard reports (e.g. a CRC mismatch) fails that
//! slice only; a broken or timed-out connection fails every slice still waiting on it.

use std::mem::MaybeUninit;
use std::time::Instant;

use mc_schema::msg::SliceDesc;
use mc_transfer::{DataConn, ObjectInfo, TransferError};

use super::Store;
use crate::{Error, ErrorCode};

/// One slice to write, with what the shard records about its object.
pub(super) struct WriteJob<'a> {
    pub(super) slice: &'a SliceDesc,
    pub(super) data: &'a [u8],
    pub(super) crc: u32,
    pub(super) object: ObjectInfo,
    pub(super) key: &'a str,
}

impl<'a> WriteJob<'a> {
    /// The jobs writing `value` into replica `r` (its slices in value order, `crcs[i]` the
    /// CRC32C of slice `i`); `object` is what every slice records, its slice index and
    /// count set here. `None` when the slices do not cover `value` exactly.
    pub(super) fn for_replica(
        key: &'a str,
        value: &'a [u8],
        r: &'a mc_schema::msg::ReplicaDesc,
        crcs: &[u32],
        object: ObjectInfo,
    ) -> Option<Vec<WriteJob<'a>>> {
        if r.slices.len() != crcs.len() {
            return None;
        }
        let mut at = 0usize;
        let mut jobs = Vec::with_capacity(r.slices.len());
        for (si, (s, crc)) in r.slices.iter().zip(crcs).enumerate() {
            let data = value.get(at..at.checked_add(s.length as usize)?)?;
            at += data.len();
            jobs.push(WriteJob {
                slice: s,
                data,
                crc: *crc,
                object: ObjectInfo {
                    slice_index: si as u32,
                    slice_count: r.slices.len() as u32,
                    ..object
                },
                key,
            });
        }
        (at == value.len()).then_some(jobs)
    }
}

/// One slice to read into `buf`, expected to have CRC32C `crc`; `validate`: the shard
/// serves it only if its index still holds that slice (a cached location); `probe`: only
/// ask whether it holds it (`buf` is left alone; the hot cache fills it after).
pub(super) struct ReadJob<'a> {
    pub(super) slice: &'a SliceDesc,
    /// Need not be initialised: every byte is written before the job succeeds.
    pub(super) buf: &'a mut [MaybeUninit<u8>],
    pub(super) crc: u32,
    pub(super) validate: bool,
    pub(super) probe: bool,
}

/// Bytes a pipelined exchange may move per `transfer_timeout` of deadline.
const BYTES_PER_TIMEOUT: u64 = 64 << 20;

/// Per-job outcomes of one exchange, and whether the connection is still usable.
type Outcomes = (Vec<Result<(), Error>>, bool);

/// Outcomes plus the connection they ran on.
type Attempt = Result<(Vec<Result<(), Error>>, bool, DataConn), TransferError>;

/// Indexes grouped by endpoint, in first-seen order.
fn by_endpoint<'a>(endpoints: impl Iterator<Item = &'a str>) -> Vec<(&'a str, Vec<usize>)> {
    let mut groups: Vec<(&str, Vec<usize>)> = Vec::new();
    for (i, ep) in endpoints.enumerate() {
        match groups.iter_mut().find(|(e, _)| *e == ep) {
            Some((_, v)) => v.push(i),
            None => groups.push((ep, vec![i])),
        }
    }
    groups
}

/// Collects answers in order: shard-reported errors fail one job; anything else breaks the
/// connection and fails the rest without waiting on them.
fn collect(n: usize, mut recv: impl FnMut(usize) -> Result<(), TransferError>) -> Outcomes {
    let mut out = Vec::with_capacity(n);
    let mut broken: Option<Error> = None;
    for k in 0..n {
        if let Some(e) = &broken {
            out.push(Err(e.clone()));
            continue;
        }
        match recv(k) {
            Ok(()) => out.push(Ok(())),
            Err(e @ TransferError::Refused { .. }) => out.push(Err(e.into())),
            Err(e) => {
                let e: Error = e.into();
                out.push(Err(e.clone()));
                broken = Some(e);
            }
        }
    }
    (out, broken.is_none())
}

impl Store {
    fn pipeline_deadline(&self, bytes: u64) -> Instant {
        let units = bytes.div_ceil(BYTES_PER_TIMEOUT).max(1) as u32;
        Instant::now() + self.cfg.transfer_timeout * units
    }

    /// Runs one pipelined exchange with `endpoint`. `f` sends everything and collects the
    /// answers. A send that fails on a stale pooled connection is retried once on a fresh
    /// one; an endpoint that failed is backed off.
    fn exchange(
        &self,
        endpoint: &str,
        n: usize,
        deadline: Instant,
        mut f: impl FnMut(&mut DataConn) -> Result<Outcomes, TransferError>,
    ) -> Vec<Result<(), Error>> {
        let fail_all = |e: Error| (0..n).map(|_| Err(e.clone())).collect();
        if self.health.backed_off(endpoint) {
            return fail_all(Error::new(
                ErrorCode::TransferFail,
                format!("shard {endpoint} failed recently; backing off"),
            ));
        }
        let mut run = |mut c: DataConn| -> Attempt {
            c.arm_deadline(deadline)?;
            let (out, healthy) = f(&mut c)?;
            Ok((out, healthy, c))
        };
        let first = self.data.take(endpoint).map_err(|e| (e, false));
        let attempt = match first {
            Ok(c) => match run(c) {
                Err(TransferError::Io { .. }) => {
                    DataConn::connect(endpoint, &self.cfg.cluster_id, self.cfg.connect_timeout)
                        .map_err(|e| (Error::from(e), true))
                        .and_then(|c| run(c).map_err(|e| (Error::from(e), true)))
                }
                other => other.map_err(|e| (Error::from(e), true)),
            },
            Err(e) => Err(e),
        };
        match attempt {
            Ok((out, true, c)) => {
                self.data.give(c);
                self.health.ok(endpoint);
                out
            }
            Ok((out, false, _)) => {
                self.health.failed(endpoint);
                self.data.purge(endpoint);
                out
            }
            Err((e, _)) => {
                if matches!(
                    e.code(),
                    ErrorCode::TransferFail | ErrorCode::RpcTimeout | ErrorCode::RpcFail
                ) {
                    self.health.failed(endpoint);
                    self.data.purge(endpoint);
                }
                fail_all(e)
            }
        }
    }

    /// Writes every job; one outcome per job, in order.
    pub(super) fn write_pipelined(&self, jobs: &[WriteJob<'_>]) -> Vec<Result<(), Error>> {
        let mut results: Vec<Option<Result<(), Error>>> = (0..jobs.len()).map(|_| None).collect();
        for (endpoint, idxs) in by_endpoint(jobs.iter().map(|j| j.slice.endpoint.as_str())) {
            let bytes = idxs.iter().map(|&i| jobs[i].data.len() as u64).sum();
            let deadline = self.pipeline_deadline(bytes);
            let out = self.exchange(endpoint, idxs.len(), deadline, |c| {
                let mut ids = Vec::with_capacity(idxs.len());
                for &i in &idxs {
                    let j = &jobs[i];
                    let s = j.slice;
                    ids.push(c.send_object_write(
                        (s.segment_id, s.offset, s.generation),
                        j.data,
                        j.crc,
                        s.token.as_ref(),
                        Some((&j.object, j.key)),
                    )?);
                }
                Ok(collect(ids.len(), |k| c.recv_write_ack(ids[k])))
            });
            for (&i, r) in idxs.iter().zip(out) {
                results[i] = Some(r);
            }
        }
        results
            .into_iter()
            .map(|r| r.expect("every job ran"))
            .collect()
    }

    /// Reads every job into its buffer and checks its CRC (a probe job only asks whether the
    /// shard holds its slice); one outcome per job, in order.
    pub(super) fn read_pipelined(&self, jobs: &mut [ReadJob<'_>]) -> Vec<Result<(), Error>> {
        let mut results: Vec<Option<Result<(), Error>>> = (0..jobs.len()).map(|_| None).collect();
        let groups: Vec<(String, Vec<usize>)> =
            by_endpoint(jobs.iter().map(|j| j.slice.endpoint.as_str()))
                .into_iter()
                .map(|(e, v)| (e.to_string(), v))
                .collect();
        for (endpoint, idxs) in groups {
            let bytes = idxs
                .iter()
                .filter(|&&i| !jobs[i].probe)
                .map(|&i| jobs[i].buf.len() as u64)
                .sum();
            let deadline = self.pipeline_deadline(bytes);
            let out = self.exchange(&endpoint, idxs.len(), deadline, |c| {
                let mut ids = Vec::with_capacity(idxs.len());
                for &i in &idxs {
                    let (s, len) = (jobs[i].slice, jobs[i].buf.len() as u64);
                    ids.push(if jobs[i].probe {
                        c.send_probe(s.segment_id, s.offset, s.generation, len, jobs[i].crc)?
                    } else if jobs[i].validate {
                        c.send_validated_read(
                            s.segment_id,
                            s.offset,
                            s.generation,
                            len,
                            jobs[i].crc,
                        )?
                    } else {
                        c.send_read(s.segment_id, s.offset, s.generation, len)?
                    });
                }
                let mut mismatched = Vec::new();
                let (mut out, healthy) = collect(ids.len(), |k| {
                    let j = &mut jobs[idxs[k]];
                    if j.probe {
                        return c.recv_probe(ids[k]);
                    }
                    let got = c.recv_read_uninit(ids[k], j.buf)?;
                    if got != j.crc {
                        mismatched.push(k);
                    }
                    Ok(())
                });
                for k in mismatched {
                    let s = jobs[idxs[k]].slice;
                    out[k] = Err(Error::new(
                        ErrorCode::ChecksumMismatch,
                        format!(
                            "slice at {} offset {} failed its CRC32C check",
                            s.endpoint, s.offset
                        ),
                    ));
                }
                Ok((out, healthy))
            });
            for (&i, r) in idxs.iter().zip(out) {
                results[i] = Some(r);
            }
        }
        results
            .into_iter()
            .map(|r| r.expect("every job ran"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_keep_first_seen_order() {
        let g = by_endpoint(["a", "b", "a", "c", "b"].into_iter());
        assert_eq!(
            g,
            vec![("a", vec![0, 2]), ("b", vec![1, 4]), ("c", vec![3])]
        );
    }
}
