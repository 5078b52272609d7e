//! What a snapshot tells a recovering master that the nodes cannot (`docs/snapshots.md`).
//!
//! Objects still come into existence only when a node reports their bytes; a snapshot
//! only adds **hints**:
//!
//! - the segments that were mounted are *expected*: a lookup of a key the snapshot names
//!   waits (as during the recovery grace) while one of the segments that held the key has
//!   not re-mounted and reported, until `client_ttl` after the start;
//! - the key's pins: when a node's report brings the key back with the put generation the
//!   snapshot recorded, the object takes the snapshot's hard pin and soft-pin deadline
//!   instead of a fresh default soft pin.
//!
//! A hint is consumed when its key is adopted. Those left when every expected segment has
//! reported, or when `client_ttl` has passed, name keys no node confirmed: they are all
//! dropped, so the memory is bounded by the snapshot and held only while it can matter.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use parking_lot::Mutex;

/// A snapshot's word on one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyHint {
    /// The put the snapshot saw; pins apply only to this put.
    pub put_generation: u64,
    /// Hard-pinned.
    pub hard_pin: bool,
    /// Soft pin end on the master clock (0 = none, or already over).
    pub soft_pin_until_ms: u64,
    /// Indexes into [`Restored::segments`] of the segments holding its slices.
    pub segments: Box<[u32]>,
}

/// Hints decoded from a snapshot, ready to install.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Restored {
    /// Ids of the segments that were mounted.
    pub segments: Vec<u64>,
    /// Per key.
    pub keys: HashMap<String, KeyHint>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Expected segment ids and whether each has reported.
    expected: Vec<(u64, bool)>,
    keys: HashMap<String, KeyHint>,
}

/// The hints of one term (empty unless a snapshot was restored).
#[derive(Debug, Default)]
pub struct Hints {
    /// Set while hints are held: lookups then check them (cheaply skipped otherwise).
    live: AtomicBool,
    /// Expected segments that have not reported yet.
    unreported: AtomicUsize,
    inner: Mutex<Inner>,
    /// Keys whose pins were applied at adoption.
    pub applied_total: AtomicU64,
    /// Keys dropped because no node confirmed them in time.
    pub dropped_total: AtomicU64,
}

impl Hints {
    /// Installs `r` (replacing any earlier hints).
    pub fn install(&self, r: Restored) {
        let mut inner = self.inner.lock();
        inner.expected = r.segments.into_iter().map(|id| (id, false)).collect();
        inner.keys = r.keys;
        self.unreported
            .store(inner.expected.len(), Ordering::Release);
        self.live.store(!inner.keys.is_empty(), Ordering::Release);
    }

    /// Whether hints are held.
    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    /// Keys still hinted.
    pub fn len(&self) -> usize {
        if !self.is_live() {
            return 0;
        }
        self.inner.lock().keys.len()
    }

    /// Whether no key is hinted.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether some hinted key may still be reported (an expected segment has not).
    pub fn awaiting(&self) -> bool {
        self.is_live() && self.unreported.load(Ordering::Acquire) > 0
    }

    /// The pins of `key` (hard pin, soft pin end) if the snapshot saw this very put;
    /// consumes the hint. Another put of the key leaves it for the one it names.
    pub fn take(&self, key: &str, put_generation: u64) -> Option<(bool, u64)> {
        if !self.is_live() {
            return None;
        }
        let mut inner = self.inner.lock();
        match inner.keys.get(key) {
            Some(h) if h.put_generation == put_generation => {
                let h = inner.keys.remove(key).expect("present");
                self.applied_total.fetch_add(1, Ordering::Relaxed);
                Some((h.hard_pin, h.soft_pin_until_ms))
            }
            _ => None,
        }
    }

    /// Whether a lookup of `key`, unknown to the master, should wait: the snapshot names it
    /// and a segment that held it has not reported.
    pub fn awaits(&self, key: &str) -> bool {
        if !self.awaiting() {
            return false;
        }
        let inner = self.inner.lock();
        inner.keys.get(key).is_some_and(|h| {
            h.segments
                .iter()
                .any(|&i| inner.expected.get(i as usize).is_some_and(|s| !s.1))
        })
    }

    /// Segments `ids` have reported (or mounted empty). Once every expected segment has,
    /// the hints left name keys no node holds: they are dropped. Returns how many.
    pub fn reported(&self, ids: &[u64]) -> usize {
        if !self.is_live() {
            return 0;
        }
        let mut inner = self.inner.lock();
        let mut newly = 0;
        for s in inner.expected.iter_mut().filter(|s| ids.contains(&s.0)) {
            newly += usize::from(!s.1);
            s.1 = true;
        }
        let left = self.unreported.fetch_sub(newly, Ordering::AcqRel) - newly;
        if left == 0 {
            self.drop_all(&mut inner)
        } else {
            0
        }
    }

    /// Drops every hint (the window for them has passed). Returns how many keys it named.
    pub fn expire(&self) -> usize {
        if !self.is_live() {
            return 0;
        }
        let mut inner = self.inner.lock();
        self.drop_all(&mut inner)
    }

    fn drop_all(&self, inner: &mut Inner) -> usize {
        let n = inner.keys.len();
        *inner = Inner::default();
        self.unreported.store(0, Ordering::Release);
        self.live.store(false, Ordering::Release);
        self.dropped_total.fetch_add(n as u64, Ordering::Relaxed);
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hints() -> Hints {
        let hint = |g, segments: &[u32]| KeyHint {
            put_generation: g,
            hard_pin: g == 1,
            soft_pin_until_ms: 50 * g,
            segments: segments.into(),
        };
        let h = Hints::default();
        h.install(Restored {
            segments: vec![10, 20],
            keys: [
                ("a".to_string(), hint(1, &[0])),
                ("b".to_string(), hint(2, &[1])),
                ("c".to_string(), hint(3, &[0, 1])),
            ]
            .into(),
        });
        h
    }

    #[test]
    fn keys_wait_for_their_own_segments_and_pins_match_the_put() {
        let h = hints();
        assert!(h.awaiting() && h.awaits("a") && h.awaits("c") && !h.awaits("z"));
        assert_eq!(h.take("a", 9), None, "another put of the key");
        assert_eq!(h.take("a", 1), Some((true, 50)));
        assert_eq!(h.take("a", 1), None, "consumed");
        assert_eq!(h.reported(&[20]), 0);
        assert!(!h.awaits("b"), "its segment reported without it");
        assert!(h.awaits("c"), "segment 10 may still bring it");
        assert_eq!(h.len(), 2);
        assert_eq!(
            h.reported(&[10, 99]),
            2,
            "all reported: the rest is dropped"
        );
        assert!(!h.is_live() && !h.awaits("c") && h.is_empty());
        assert_eq!(h.dropped_total.load(Ordering::Relaxed), 2);
        assert_eq!(h.applied_total.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn expiry_drops_everything_once() {
        let h = hints();
        assert_eq!(h.expire(), 3);
        assert_eq!(h.expire(), 0);
        assert_eq!(h.take("b", 2), None);
        assert!(!Hints::default().awaiting());
    }
}
