//! Re-adopting objects that a node reports after a master restart or a failover
//! (`docs/why-recovery.md`). The recovery code assembles complete replicas from the node's
//! entries and reserves their ranges; this decides, key by key, against what the master
//! already knows.

use super::ObjectStore;
use super::object::Object;
use crate::segments::SliceLoc;

/// An object a node holds at least one complete replica of.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The key.
    pub key: String,
    /// Generation naming the put.
    pub put_generation: u64,
    /// Bytes of the value.
    pub size: u64,
    /// Replica-major slice locations (already reserved in their segments).
    pub locs: Vec<SliceLoc>,
    /// CRC32C of each slice.
    pub crcs: Vec<u32>,
    /// Hard-pinned by its put.
    pub hard_pin: bool,
    /// Soft-pinned by its put.
    pub soft_pin: bool,
    /// The soft pin's end a restored snapshot recorded (master clock, 0 = none); `None`
    /// gives a soft-pinned candidate a fresh default soft pin.
    pub soft_pin_until_ms: Option<u64>,
}

/// What adopting a candidate did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adopted {
    /// A new object (the master did not know the key).
    New,
    /// The candidate replaced an older put of the key, whose space was freed.
    Replaced,
    /// The candidate's replicas were added to the same put the master already had.
    AddedReplicas,
    /// Refused; its space was freed (the node is told to forget it).
    Rejected,
}

impl ObjectStore {
    /// Adopts `c`. With `allow_new` (a node that re-mounted within the recovery window, for
    /// a key not removed since), a key the master does not know is adopted and an older put
    /// adopted from another node is replaced; the same put (whoever wrote it) gains the
    /// candidate's replicas; anything else (a newer put, another put made by this master, a
    /// put or upsert in flight, CRCs that disagree, a late node's unknown key) rejects it.
    pub fn adopt(&self, mut c: Candidate, allow_new: bool, now_ms: u64) -> Adopted {
        let (h, mut shard) = self.shard(&c.key);
        let outcome = match shard.get_mut(h, &c.key) {
            None if allow_new => Adopted::New,
            None => Adopted::Rejected,
            Some(o) if !o.complete() || o.upsert().is_some() => Adopted::Rejected,
            Some(o) if o.put_generation() > c.put_generation => Adopted::Rejected,
            // The same put (generations are unique per term): a replica it lost when its
            // node was dropped, or one a restarted master has not seen yet, comes back.
            Some(o) if o.put_generation() == c.put_generation => {
                if o.crcs() != c.crcs.as_slice() {
                    Adopted::Rejected
                } else {
                    let mut locs = o.locs().to_vec();
                    let m = c.crcs.len().max(1);
                    for replica in c.locs.chunks(m) {
                        let known = locs.iter().any(|l| {
                            l.segment == replica[0].segment && l.offset == replica[0].offset
                        });
                        if known {
                            self.segments.free(c.size, replica);
                        } else {
                            locs.extend_from_slice(replica);
                        }
                    }
                    o.set_locs(locs);
                    o.set_put_generation(c.put_generation);
                    return Adopted::AddedReplicas;
                }
            }
            // Written by this master's clients since it started: newer than any report.
            Some(o) if !o.adopted() => Adopted::Rejected,
            Some(_) if allow_new => Adopted::Replaced,
            Some(_) => Adopted::Rejected,
        };
        match outcome {
            Adopted::Rejected => {
                drop(shard);
                self.segments.free(c.size, &c.locs);
            }
            Adopted::Replaced => {
                let old = shard.remove(h, &c.key, |k| self.hash(k)).expect("present");
                // Read leases granted on the old value meanwhile keep its bytes a while.
                self.defer_free(
                    old.lease_until_ms().max(now_ms),
                    old.size(),
                    old.locs().to_vec(),
                );
                let o = self.adopted_object(&mut c, now_ms);
                shard.insert(h, &c.key, o, |k| self.hash(k));
            }
            Adopted::New => {
                let o = self.adopted_object(&mut c, now_ms);
                shard.insert(h, &c.key, o, |k| self.hash(k));
            }
            Adopted::AddedReplicas => {}
        }
        outcome
    }

    /// A complete object for `c` (its locations and CRCs are taken), with a fresh lease
    /// (restored leases would already have run out) and the snapshot's soft pin or, when
    /// soft-pinned without one, a fresh default soft pin.
    fn adopted_object(&self, c: &mut Candidate, now_ms: u64) -> Object {
        let soft_until = match c.soft_pin_until_ms {
            Some(until_ms) => until_ms,
            None if c.soft_pin => {
                now_ms
                    + self
                        .policy
                        .default_soft_pin_ms
                        .min(self.policy.max_soft_pin_ms)
            }
            None => 0,
        };
        let locs = std::mem::take(&mut c.locs);
        let mut o = Object::pending(c.size, locs, c.hard_pin, soft_until, now_ms);
        o.set_put_generation(c.put_generation);
        o.commit(std::mem::take(&mut c.crcs), now_ms);
        o.grant_lease(now_ms, self.policy.lease_ms);
        o.set_adopted();
        o
    }
}
