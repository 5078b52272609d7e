//! The write path of put and upsert batches, in four phases: validate the items, start them
//! at the master (one PutStart / UpsertStart for the batch), transfer every slice of every
//! replica (pipelined per shard), then commit what was written (one PutEnd / UpsertEnd) and
//! revoke what was not.
//!
//! A replica whose transfer failed is reported in `failed_replicas` and the others commit;
//! an item none of whose replicas was written is revoked and fails.

mod credit;

use mc_schema::limits::{MAX_OBJECT_BYTES, MAX_SLICE_BYTES};
use std::sync::Arc;

use mc_schema::msg::{
    PutEndItem, PutStartResult, ReplicaDesc, ReplicaListResult, ReplicateConfig, Request,
    ResponseBody, SoftPinAction,
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
    /// The put credit each item of `todo` is written into (0 = started by PutStart), and
    /// the config it was granted for; empty when the batch uses none.
    credit: Vec<u64>,
    credit_config: Option<ReplicateConfig>,
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

pub(super) fn slice_crcs(value: &[u8]) -> Vec<u32> {
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
            credit: Vec::new(),
            credit_config: None,
        }
    }

    /// (key, size) of every item still going, as PutStart takes them.
    fn start_items(&self) -> Vec<(String, u64)> {
        self.todo
            .iter()
            .map(|&i| (self.items[i].0.to_string(), self.items[i].1.len() as u64))
            .collect()
    }

    /// The credit item `i` (an index into `items`) is written into; 0 = none.
    fn credit_id(&self, i: usize) -> u64 {
        match self.todo.binary_search(&i) {
            Ok(t) => self.credit.get(t).copied().unwrap_or(0),
            Err(_) => 0,
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

/// A put started at the master whose bytes are not written yet: the space is reserved
/// and the key taken until [`Store::put_reserved_batch`] commits it or
/// [`Store::put_revoke_batch`] gives it back (a put session).
#[derive(Debug, Clone)]
pub struct PutReservation {
    key: String,
    size: u64,
    started: PutStartResult,
    pins: u8,
}

impl PutReservation {
    /// The key reserved.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The size reserved, in bytes: the value written must be exactly this long.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Where the value will be written: one entry per replica, each slice with the write
    /// token the master signed for it.
    pub fn replicas(&self) -> &[ReplicaDesc] {
        &self.started.replicas
    }
}

/// Checks one (key, size) of a reservation, as [`Batch::validate`] checks a value.
fn check_item(key: &str, size: u64) -> Result<()> {
    check_key(key)?;
    if size == 0 || size > MAX_OBJECT_BYTES {
        return Err(invalid(format!(
            "value must be 1..={MAX_OBJECT_BYTES} bytes, got {size}"
        )));
    }
    Ok(())
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
        let started = if !upsert && self.credit.enabled() {
            self.start_with_credit(&mut b, config)
        } else {
            self.start_writes(b.start_items(), config, upsert)
        };
        let started = match started {
            Ok(s) => s,
            Err(e) => return b.finish_with(Err(e)),
        };
        let pins = vec![pin_bits(config); b.todo.len()];
        self.finish_writes(b, &started, &pins, upsert)
    }

    /// Phases 3 and 4 of started writes (`started[t]` belongs to `b.todo[t]`).
    fn finish_writes(
        &self,
        mut b: Batch<'_>,
        started: &[PutStartResult],
        pins: &[u8],
        upsert: bool,
    ) -> Vec<Result<()>> {
        let mut revokes = Vec::new();
        let written = self.transfer_writes(&mut b, started, pins, &mut revokes);
        let ends = decide(&mut b, started, written, &mut revokes);
        let fresh = locations(&b, started, &ends);
        let (credit_ends, ends): (Vec<_>, Vec<_>) =
            ends.into_iter().partition(|(i, _)| b.credit_id(*i) != 0);
        let (lost, revokes): (Vec<usize>, Vec<usize>) =
            revokes.into_iter().partition(|&i| b.credit_id(i) != 0);
        if !revokes.is_empty() {
            // Best effort: a lost revoke leaves a pending object that is never readable;
            // its space waits for the master's zombie-PutStart cleanup.
            let keys = revokes.iter().map(|&i| b.items[i].0.to_string()).collect();
            let _ = self.call(&if upsert {
                Request::UpsertRevoke { keys }
            } else {
                Request::PutRevoke { keys }
            });
        }
        if let Some(e) = injected_commit_failure() {
            return b.finish_with(Err(e));
        }
        // Credit a write could not use was usually placed by a master or on a node instance
        // that is gone; the shard's refusal is no reason to shun its endpoint for the retry,
        // which the master places afresh.
        for &i in &lost {
            if let Ok(t) = b.todo.binary_search(&i) {
                for s in started[t].replicas.iter().flat_map(|r| &r.slices) {
                    self.health.ok(&s.endpoint);
                }
            }
        }
        let retry = if credit_ends.is_empty() && lost.is_empty() {
            Vec::new()
        } else {
            self.commit_credit(&mut b, credit_ends, lost)
        };
        if let Err(e) = self.commit_writes(&mut b, ends, upsert) {
            return b.finish_with(Err(e));
        }
        // A get of what this client just wrote goes straight to a shard.
        for (i, l) in fresh {
            if matches!(b.results[i], Some(Ok(()))) {
                self.cache.insert(b.items[i].0, l);
            }
        }
        if !retry.is_empty() {
            self.retry_long_way(&mut b, &retry);
        }
        b.finish()
    }

    /// Starts puts of `items` (key, size) at the master without writing anything: one
    /// PutStart for the batch. An existing key fails with OBJECT_ALREADY_EXISTS.
    pub fn put_reserve_batch(
        &self,
        items: &[(&str, u64)],
        config: &ReplicateConfig,
    ) -> Vec<Result<PutReservation>> {
        self.invalidate_hot(items.iter().map(|(k, _)| *k));
        let mut out: Vec<Option<Result<PutReservation>>> = items
            .iter()
            .map(|&(k, n)| check_item(k, n).err().map(Err))
            .collect();
        if let Err(e) = check_batch(items.len()) {
            return items.iter().map(|_| Err(e.clone())).collect();
        }
        let todo: Vec<usize> = (0..items.len()).filter(|&i| out[i].is_none()).collect();
        if !todo.is_empty() {
            let req = todo
                .iter()
                .map(|&i| (items[i].0.to_string(), items[i].1))
                .collect();
            let pins = pin_bits(config);
            match self.start_writes(req, config, false) {
                Ok(started) => {
                    for (&i, st) in todo.iter().zip(started) {
                        let (key, size) = items[i];
                        out[i] = Some(if st.status != 0 {
                            Err(Error::from_status(st.status, &format!("put_start {key}")))
                        } else {
                            Ok(PutReservation {
                                key: key.to_string(),
                                size,
                                started: st,
                                pins,
                            })
                        });
                    }
                }
                Err(e) => todo.iter().for_each(|&i| out[i] = Some(Err(e.clone()))),
            }
        }
        out.into_iter()
            .map(|r| r.expect("every item decided"))
            .collect()
    }

    /// Writes and commits reserved puts: `values[i]` (exactly `reservations[i].size()`
    /// bytes) under `reservations[i]`'s key. A value of the wrong size fails and its
    /// reservation is revoked. One result per reservation.
    pub fn put_reserved_batch(
        &self,
        reservations: &[PutReservation],
        values: &[&[u8]],
    ) -> Vec<Result<()>> {
        let items: Vec<(&str, &[u8])> = reservations
            .iter()
            .zip(values)
            .map(|(r, v)| (r.key.as_str(), *v))
            .collect();
        let mut b = Batch::validate(&items);
        let mut wrong = Vec::new();
        b.todo.retain(|&i| {
            let fits = values[i].len() as u64 == reservations[i].size;
            if !fits {
                wrong.push(reservations[i].key.clone());
                b.results[i] = Some(Err(invalid(format!(
                    "value of {} bytes for a reservation of {}",
                    values[i].len(),
                    reservations[i].size
                ))));
            }
            fits
        });
        for (i, r) in b.results.iter().enumerate() {
            if r.is_some() && !wrong.contains(&reservations[i].key) {
                wrong.push(reservations[i].key.clone());
            }
        }
        b.crcs = b.todo.iter().map(|&i| slice_crcs(values[i])).collect();
        if !wrong.is_empty() {
            let _ = self.call(&Request::PutRevoke { keys: wrong });
        }
        let started: Vec<PutStartResult> = b
            .todo
            .iter()
            .map(|&i| reservations[i].started.clone())
            .collect();
        let pins: Vec<u8> = b.todo.iter().map(|&i| reservations[i].pins).collect();
        if b.todo.is_empty() {
            return b.finish();
        }
        self.finish_writes(b, &started, &pins, false)
    }

    /// Gives reserved puts back (PutRevoke): their space is freed and nothing becomes
    /// readable. One result per key.
    pub fn put_revoke_batch(&self, keys: &[&str]) -> Vec<Result<()>> {
        let req = Request::PutRevoke {
            keys: keys.iter().map(|k| k.to_string()).collect(),
        };
        match self.call(&req).map(|r| r.body) {
            Ok(ResponseBody::Statuses(v)) if v.len() == keys.len() => keys
                .iter()
                .zip(v)
                .map(|(k, c)| {
                    if c == 0 {
                        Ok(())
                    } else {
                        Err(Error::from_status(c, &format!("put_revoke {k}")))
                    }
                })
                .collect(),
            Ok(_) => keys.iter().map(|_| Err(unexpected("PutRevoke"))).collect(),
            Err(e) => keys.iter().map(|_| Err(e.clone())).collect(),
        }
    }

    /// Phase 2: one PutStart (or UpsertStart) for `items` (key, size).
    fn start_writes(
        &self,
        items: Vec<(String, u64)>,
        config: &ReplicateConfig,
        upsert: bool,
    ) -> Result<Vec<PutStartResult>> {
        let n = items.len();
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
            ResponseBody::PutStart(v) if v.len() == n => Ok(v),
            _ => Err(unexpected("PutStart")),
        }
    }

    /// Phase 3: sends every slice of every replica of every started item, pipelined per
    /// shard. Items the master refused, or whose replicas do not fit, are decided here
    /// (the latter also go to `revokes`, by index into `items`).
    fn transfer_writes(
        &self,
        b: &mut Batch<'_>,
        started: &[PutStartResult],
        pins: &[u8],
        revokes: &mut Vec<usize>,
    ) -> Vec<Written> {
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
                revokes.push(b.todo[t]);
                b.results[b.todo[t]] = Some(Err(Error::new(
                    ErrorCode::InternalError,
                    "master returned a replica that does not fit the value",
                )));
                continue;
            }
            let put_generation = put_generation(st);
            for (ri, r) in st.replicas.iter().enumerate() {
                let object = ObjectInfo {
                    object_size: value.len() as u64,
                    put_generation,
                    slice_index: 0,
                    slice_count: 0,
                    replica_index: ri as u16,
                    pins: pins[t],
                };
                let replica = WriteJob::for_replica(key, value, r, &b.crcs[t], object)
                    .expect("checked by fits");
                owner.extend(replica.iter().map(|_| (t, ri as u32)));
                jobs.extend(replica);
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
    revokes: &mut Vec<usize>,
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
                revokes.push(i);
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

/// Where each item about to commit will be readable: its replicas that were written, for
/// the location cache. One entry per commit item, with its index into `items`.
fn locations(
    b: &Batch<'_>,
    started: &[PutStartResult],
    ends: &[(usize, PutEndItem)],
) -> Vec<(usize, Arc<ReplicaListResult>)> {
    let mut todo_of = vec![usize::MAX; b.items.len()];
    for (t, &i) in b.todo.iter().enumerate() {
        todo_of[i] = t;
    }
    ends.iter()
        .map(|(i, e)| {
            let st = &started[todo_of[*i]];
            let replicas = st
                .replicas
                .iter()
                .enumerate()
                .filter(|(ri, _)| !e.failed_replicas.contains(&(*ri as u32)))
                .map(|(_, r)| ReplicaDesc {
                    slices: r.slices.clone(),
                    complete: true,
                    kind: r.kind,
                })
                .collect();
            let l = ReplicaListResult {
                status: 0,
                size: b.items[*i].1.len() as u64,
                replicas,
                slice_crcs: e.slice_crcs.clone(),
            };
            (*i, Arc::new(l))
        })
        .collect()
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
