//! The write path of put and upsert batches, in four phases: validate the items, start them
//! at the master (one PutStart / UpsertStart for the batch), transfer every slice of every
//! replica (pipelined per shard), then commit what was written (one PutEnd / UpsertEnd) and
//! revoke what was not.
//!
//! A replica whose transfer failed is reported in `failed_replicas` and the others commit;
//! an item none of whose replicas was written is revoked and fails.

use mc_schema::limits::{MAX_OBJECT_BYTES, MAX_SLICE_BYTES};
use mc_schema::msg::{
    PutEndItem, PutStartResult, ReplicaDesc, ReplicateConfig, Request, ResponseBody, SoftPinAction,
};
use mc_transfer::ObjectInfo;
use mc_transfer::header::{PIN_HARD, PIN_SOFT};

use super::pipeline::WriteJob;
use super::{Store, check_batch, check_key, invalid, unexpected};
use crate::{Error, ErrorCode, Result};

/// One batch on its way: the items, their results so far, and those still going.
struct Batch<'a> {
    items: &'a [(&'a str, &'a [u8])],
    results: Vec<Option<Result<()>>>,
    /// Indexes (into `items`) of the items still going, in order.
    todo: Vec<usize>,
    /// CRC32C of every slice of each item of `todo`.
    crcs: Vec<Vec<u32>>,
}

/// What the transfer phase left for each item of `todo`.
#[derive(Default, Clone)]
struct Written {
    /// Replicas (by index) some slice of which failed.
    failed: Vec<u32>,
    /// The first transfer error.
    error: Option<Error>,
}

/// The generation naming a started put: its first replica's first slice's (0 = none).
fn put_generation(st: &PutStartResult) -> u64 {
    st.replicas
        .first()
        .and_then(|r| r.slices.first())
        .map_or(0, |s| s.generation)
}

/// The pin bits a shard records for a put with `config`.
fn pin_bits(config: &ReplicateConfig) -> u8 {
    let mut pins = 0;
    if config.with_hard_pin {
        pins |= PIN_HARD;
    }
    if config.soft_pin_action == SoftPinAction::Enable {
        pins |= PIN_SOFT;
    }
    pins
}

fn slice_crcs(value: &[u8]) -> Vec<u32> {
    value
        .chunks(MAX_SLICE_BYTES as usize)
        .map(mc_schema::checksum::crc32c)
        .collect()
}

impl<'a> Batch<'a> {
    /// Phase 1: checks every item; an invalid one fails alone.
    fn validate(items: &'a [(&'a str, &'a [u8])]) -> Batch<'a> {
        let bad_batch = check_batch(items.len()).err();
        let results: Vec<Option<Result<()>>> = items
            .iter()
            .map(|(k, v)| {
                let bad = bad_batch
                    .clone()
                    .or_else(|| check_key(k).err())
                    .or_else(|| {
                        (v.is_empty() || v.len() as u64 > MAX_OBJECT_BYTES).then(|| {
                            invalid(format!(
                                "value must be 1..={MAX_OBJECT_BYTES} bytes, got {}",
                                v.len()
                            ))
                        })
                    });
                bad.map(Err)
            })
            .collect();
        let todo: Vec<usize> = (0..items.len()).filter(|&i| results[i].is_none()).collect();
        let crcs = todo.iter().map(|&i| slice_crcs(items[i].1)).collect();
        Batch {
            items,
            results,
            todo,
            crcs,
        }
    }

    /// Every result, the undecided ones set to `e`.
    fn finish_with(self, e: Result<()>) -> Vec<Result<()>> {
        self.results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| e.clone()))
            .collect()
    }

    /// Every result; each item must have been decided.
    fn finish(self) -> Vec<Result<()>> {
        self.results
            .into_iter()
            .map(|r| r.expect("every item decided"))
            .collect()
    }

    /// Whether the master's replica `r` fits item `t` of `todo` slice by slice.
    fn fits(&self, t: usize, r: &ReplicaDesc) -> bool {
        let len = self.items[self.todo[t]].1.len() as u64;
        r.slices.iter().map(|s| s.length).sum::<u64>() == len
            && r.slices.len() == self.crcs[t].len()
    }
}

impl Store {
    /// Writes a batch of puts (`upsert` = false) or upserts; one result per item.
    pub(super) fn write_batch(
        &self,
        items: &[(&str, &[u8])],
        config: &ReplicateConfig,
        upsert: bool,
    ) -> Vec<Result<()>> {
        let mut b = Batch::validate(items);
        if b.todo.is_empty() {
            return b.finish();
        }
        let started = match self.start_writes(&b, config, upsert) {
            Ok(s) => s,
            Err(e) => return b.finish_with(Err(e)),
        };
        let mut revokes = Vec::new();
        let written = self.transfer_writes(&mut b, &started, config, &mut revokes);
        let ends = decide(&mut b, &started, written, &mut revokes);
        if !revokes.is_empty() {
            // Best effort: a lost revoke leaves a pending object that is never readable;
            // its space waits for the master's zombie-PutStart cleanup.
            let _ = self.call(&if upsert {
                Request::UpsertRevoke { keys: revokes }
            } else {
                Request::PutRevoke { keys: revokes }
            });
        }
        if let Some(e) = injected_commit_failure() {
            return b.finish_with(Err(e));
        }
        if let Err(e) = self.commit_writes(&mut b, ends, upsert) {
            return b.finish_with(Err(e));
        }
        b.finish()
    }

    /// Phase 2: one PutStart (or UpsertStart) for every item still going.
    fn start_writes(
        &self,
        b: &Batch<'_>,
        config: &ReplicateConfig,
        upsert: bool,
    ) -> Result<Vec<PutStartResult>> {
        let items = b
            .todo
            .iter()
            .map(|&i| (b.items[i].0.to_string(), b.items[i].1.len() as u64))
            .collect();
        let (client_id, client_host) = (self.client_id, self.cfg.local_hostname.clone());
        let config = config.clone();
        let req = if upsert {
            Request::UpsertStart {
                client_id,
                client_host,
                items,
                config,
            }
        } else {
            Request::PutStart {
                client_id,
                client_host,
                items,
                config,
            }
        };
        match self.call(&req)?.body {
            ResponseBody::PutStart(v) if v.len() == b.todo.len() => Ok(v),
            _ => Err(unexpected("PutStart")),
        }
    }

    /// Phase 3: sends every slice of every replica of every started item, pipelined per
    /// shard. Items the master refused, or whose replicas do not fit, are decided here.
    fn transfer_writes(
        &self,
        b: &mut Batch<'_>,
        started: &[PutStartResult],
        config: &ReplicateConfig,
        revokes: &mut Vec<String>,
    ) -> Vec<Written> {
        let pins = pin_bits(config);
        let mut jobs = Vec::new();
        let mut owner = Vec::new(); // (position in todo, replica index) of each job
        for (t, st) in started.iter().enumerate() {
            let (key, value) = b.items[b.todo[t]];
            if st.status != 0 {
                let e = Error::from_status(st.status, &format!("put {key}"));
                b.results[b.todo[t]] = Some(Err(e));
                continue;
            }
            if !st.replicas.iter().all(|r| b.fits(t, r)) {
                revokes.push(key.to_string());
                b.results[b.todo[t]] = Some(Err(Error::new(
                    ErrorCode::InternalError,
                    "master returned a replica that does not fit the value",
                )));
                continue;
            }
            let put_generation = put_generation(st);
            for (ri, r) in st.replicas.iter().enumerate() {
                let mut at = 0usize;
                for (si, (s, crc)) in r.slices.iter().zip(&b.crcs[t]).enumerate() {
                    let data = &value[at..at + s.length as usize];
                    at += data.len();
                    jobs.push(WriteJob {
                        slice: s,
                        data,
                        crc: *crc,
                        object: ObjectInfo {
                            object_size: value.len() as u64,
                            put_generation,
                            slice_index: si as u32,
                            slice_count: r.slices.len() as u32,
                            replica_index: ri as u16,
                            pins,
                        },
                        key,
                    });
                    owner.push((t, ri as u32));
                }
            }
        }
        let mut written = vec![Written::default(); b.todo.len()];
        for (&(t, ri), out) in owner.iter().zip(self.write_pipelined(&jobs)) {
            if let Err(e) = out {
                if !written[t].failed.contains(&ri) {
                    written[t].failed.push(ri);
                }
                written[t].error.get_or_insert(e);
            }
        }
        written
    }

    /// Phase 4: one PutEnd (or UpsertEnd) for the items with at least one replica written.
    fn commit_writes(
        &self,
        b: &mut Batch<'_>,
        ends: Vec<(usize, PutEndItem)>,
        upsert: bool,
    ) -> Result<()> {
        if ends.is_empty() {
            return Ok(());
        }
        let (idx, items): (Vec<usize>, Vec<PutEndItem>) = ends.into_iter().unzip();
        let end = if upsert {
            Request::UpsertEnd { items }
        } else {
            Request::PutEnd { items }
        };
        match self.call(&end)?.body {
            ResponseBody::Statuses(codes) if codes.len() == idx.len() => {
                for (i, c) in idx.into_iter().zip(codes) {
                    b.results[i] = Some(if c == 0 {
                        Ok(())
                    } else {
                        Err(Error::from_status(c, &format!("put_end {}", b.items[i].0)))
                    });
                }
                Ok(())
            }
            _ => Err(unexpected("PutEnd")),
        }
    }
}

/// Failpoint `client::write::before_commit`, between the shards' acks and the commit: `return`
/// fails the batch without committing (as a client that dies there: the objects stay pending
/// until the master's release timeout), `sleep(ms)` delays the commit, `panic` unwinds the
/// caller. Always `None` without the `failpoints` feature.
fn injected_commit_failure() -> Option<Error> {
    #[cfg(feature = "failpoints")]
    if fail::eval("client::write::before_commit", |_| ()).is_some() {
        return Some(Error::new(
            ErrorCode::InternalError,
            "failpoint client::write::before_commit: the commit was not sent",
        ));
    }
    None
}

/// Between transfer and commit: an item none of whose replicas was written is revoked and
/// fails with its first error; the others commit, naming their failed replicas. Returns the
/// commit items with the index (into `items`) of each.
fn decide(
    b: &mut Batch<'_>,
    started: &[PutStartResult],
    written: Vec<Written>,
    revokes: &mut Vec<String>,
) -> Vec<(usize, PutEndItem)> {
    let mut ends = Vec::new();
    for (t, (st, w)) in started.iter().zip(written).enumerate() {
        let i = b.todo[t];
        if b.results[i].is_some() {
            continue;
        }
        let key = b.items[i].0;
        match w.error {
            Some(e) if w.failed.len() == st.replicas.len() => {
                revokes.push(key.to_string());
                b.results[i] = Some(Err(e));
            }
            error => {
                if let Some(e) = error {
                    tracing::warn!(
                        key,
                        failed = w.failed.len(),
                        "replica write failed; committing the others: {e}"
                    );
                }
                let generation = put_generation(st);
                ends.push((
                    i,
                    PutEndItem {
                        key: key.to_string(),
                        slice_crcs: b.crcs[t].clone(),
                        failed_replicas: w.failed,
                        generation,
                    },
                ));
            }
        }
    }
    ends
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crcs_per_slice() {
        let v = vec![7u8; (MAX_SLICE_BYTES as usize) + 10];
        let c = slice_crcs(&v);
        assert_eq!(c.len(), 2);
        assert_eq!(
            c[1],
            mc_schema::checksum::crc32c(&v[MAX_SLICE_BYTES as usize..])
        );
    }

    #[test]
    fn invalid_items_fail_alone() {
        let big = [("", &b"x"[..]), ("ok", &b""[..]), ("good", &b"v"[..])];
        let b = Batch::validate(&big);
        assert_eq!(b.todo, vec![2]);
        assert!(b.results[0].as_ref().is_some_and(|r| r.is_err()));
        assert!(b.results[1].as_ref().is_some_and(|r| r.is_err()));
    }
}
