//! Put credit (`docs/why-fast-path.md`): space placed for a client ahead of its puts, not
//! yet bound to a key, so that a put costs the write and one commit (`PutCredit`) instead
//! of PutStart, the write and PutEnd.
//!
//! A credit is one put's worth of replicas for one value size, placed as PutStart would
//! place it for that client and config, with write tokens. It is held here, by id (its
//! first slice's generation), until the client commits a put into it, gives it back, or its
//! TTL runs out; then its space is freed like a revoked PutStart's. Held credit counts as
//! allocated space (eviction cannot take it), so each client's is bounded
//! ([`Policy::credit_max_client_bytes`]) and grants never evict. Credit is not in snapshots
//! and not shared between masters: a new leader does not know it, and a commit naming it
//! gets PUT_CREDIT_NOT_FOUND (the client writes the put again the long way).

use std::collections::HashMap;

use mc_schema::ErrorCode;
use mc_schema::limits::slice_count;
use mc_schema::msg::{PutEndItem, ReplicaDesc, ReplicateConfig};

use super::{ObjectStore, commit_check};
use crate::objects::Object;
use crate::segments::{SliceLoc, allocated_bytes};

/// One credit held for a client.
struct Held {
    client_id: u64,
    size: u64,
    locs: Vec<SliceLoc>,
    replicas: usize,
    /// The config's pins, applied when a put commits into it.
    config: ReplicateConfig,
    expires_ms: u64,
}

/// Every credit held, and each client's total.
#[derive(Default)]
pub(super) struct CreditTable {
    by_id: HashMap<u64, Held>,
    client_bytes: HashMap<u64, u64>,
    bytes: u64,
}

impl CreditTable {
    fn insert(&mut self, id: u64, held: Held) {
        let b = allocated_bytes(held.size, &held.locs);
        *self.client_bytes.entry(held.client_id).or_default() += b;
        self.bytes += b;
        self.by_id.insert(id, held);
    }

    /// Takes credit `id` out if `client_id` holds it.
    fn take(&mut self, client_id: u64, id: u64) -> Option<Held> {
        if self.by_id.get(&id)?.client_id != client_id {
            return None;
        }
        let held = self.by_id.remove(&id)?;
        self.forget_bytes(&held);
        Some(held)
    }

    fn forget_bytes(&mut self, held: &Held) {
        let b = allocated_bytes(held.size, &held.locs);
        self.bytes -= b;
        if let Some(c) = self.client_bytes.get_mut(&held.client_id) {
            *c -= b;
            if *c == 0 {
                self.client_bytes.remove(&held.client_id);
            }
        }
    }

    /// Takes out every credit `drop` picks.
    fn drain(&mut self, mut drop: impl FnMut(&Held) -> bool) -> Vec<Held> {
        let ids: Vec<u64> = self
            .by_id
            .iter()
            .filter(|(_, h)| drop(h))
            .map(|(&id, _)| id)
            .collect();
        let out: Vec<Held> = ids.iter().filter_map(|id| self.by_id.remove(id)).collect();
        out.iter().for_each(|h| self.forget_bytes(h));
        out
    }
}

impl ObjectStore {
    /// Places one credit of `size` bytes for `writer` (client id, host) with `config`:
    /// its replicas, to be signed. NO_AVAILABLE_HANDLE when there is no room or the client
    /// holds its limit already; credit is never made by evicting.
    pub fn grant_credit(
        &self,
        size: u64,
        config: &ReplicateConfig,
        (client_id, client_host): (u64, &str),
        now_ms: u64,
    ) -> Result<Vec<ReplicaDesc>, ErrorCode> {
        let need = size.saturating_mul(config.replica_num as u64);
        {
            let t = self.credits.lock();
            let held = t.client_bytes.get(&client_id).copied().unwrap_or(0);
            if self.policy.credit_ttl_ms == 0
                || held.saturating_add(need) > self.policy.credit_max_client_bytes
            {
                return Err(ErrorCode::NoAvailableHandle);
            }
        }
        let (locs, descs, id) = self.place(size, config, client_host)?;
        let held = Held {
            client_id,
            size,
            replicas: descs.len(),
            locs,
            config: ReplicateConfig {
                preferred_segments: Vec::new(),
                ..config.clone()
            },
            expires_ms: now_ms + self.policy.credit_ttl_ms,
        };
        self.credits.lock().insert(id, held);
        Ok(descs)
    }

    /// Commits a put written into credit: `item.generation` names the credit, `item.key`
    /// the key it now holds. The credit is used up whatever the outcome (its space freed
    /// when the put does not commit): PUT_CREDIT_NOT_FOUND when the client holds no such
    /// credit, OBJECT_ALREADY_EXISTS as for PutStart, else as PutEnd.
    pub fn put_with_credit(&self, client_id: u64, item: PutEndItem, now_ms: u64) -> ErrorCode {
        let Some(held) = self.credits.lock().take(client_id, item.generation) else {
            return self.committed_already(&item);
        };
        let c = commit_check(&item, item.generation, held.size, held.replicas);
        if c != ErrorCode::Ok || slice_count(held.size) == 0 {
            self.segments.free(held.size, &held.locs);
            return if c == ErrorCode::Ok {
                ErrorCode::InvalidParams
            } else {
                c
            };
        }
        let (h, mut shard) = self.shard(&item.key);
        if let Err(c) = self.claim_key(&mut shard, h, &item.key, now_ms) {
            self.segments.free(held.size, &held.locs);
            return c;
        }
        if self.policy.offload_on_evict {
            self.unpark(&item.key);
        }
        let cfg = &held.config;
        let mut o = Object::pending(
            held.size,
            held.locs,
            cfg.with_hard_pin,
            self.soft_pin_until(cfg, now_ms),
            now_ms,
        );
        o.set_writer(client_id);
        let key = item.key.clone();
        // TRANSFER_FAIL (no replica written) has freed every slice already.
        let c = self.commit_pending(&mut o, item, now_ms);
        if c == ErrorCode::Ok {
            shard.insert(h, &key, o, |k| self.hash(k));
            self.stats
                .credit_commits_total
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        c
    }

    /// The answer to a commit naming credit this master does not hold: OK when the put is
    /// here anyway (the nodes reported it to a new leader, which adopted it: same put
    /// generation and CRCs), else PUT_CREDIT_NOT_FOUND.
    fn committed_already(&self, item: &PutEndItem) -> ErrorCode {
        let (h, shard) = self.shard(&item.key);
        let same = shard.get(h, &item.key).is_some_and(|o| {
            o.complete()
                && item.generation != 0
                && o.put_generation() == item.generation
                && o.crcs() == item.slice_crcs.as_slice()
        });
        if same {
            ErrorCode::Ok
        } else {
            ErrorCode::PutCreditNotFound
        }
    }

    /// Gives credit `id` of `client_id` back (its space is freed). False when not held.
    pub fn release_credit(&self, client_id: u64, id: u64) -> bool {
        let Some(held) = self.credits.lock().take(client_id, id) else {
            return false;
        };
        self.segments.free(held.size, &held.locs);
        true
    }

    /// Frees the credit whose TTL has run out. Returns the bytes freed.
    pub fn expire_credit(&self, now_ms: u64) -> u64 {
        let gone = self.credits.lock().drain(|h| h.expires_ms <= now_ms);
        self.free_credits(gone)
    }

    /// Frees every credit of a client that went away. Returns the bytes freed.
    pub fn drop_client_credit(&self, client_id: u64) -> u64 {
        let gone = self.credits.lock().drain(|h| h.client_id == client_id);
        self.free_credits(gone)
    }

    /// Forgets the credit with a slice in one of `slots` (segments that went away: the
    /// other segments' slices are freed).
    pub(super) fn drop_credit_in(&self, slots: &[u32]) {
        let gone = self
            .credits
            .lock()
            .drain(|h| h.locs.iter().any(|l| slots.contains(&l.segment)));
        self.free_credits(gone);
    }

    fn free_credits(&self, gone: Vec<Held>) -> u64 {
        gone.iter()
            .map(|h| {
                self.segments.free(h.size, &h.locs);
                allocated_bytes(h.size, &h.locs)
            })
            .sum()
    }

    /// Bytes of credit held by all clients.
    pub fn credit_bytes(&self) -> u64 {
        self.credits.lock().bytes
    }
}
