//! Put credit this client holds (`docs/why-fast-path.md`): space the master placed ahead
//! of its puts, by value size and config, so a put is the write and one commit.
//!
//! Bounded in bytes (`MC_STORE_PUT_CREDIT_BYTES`; replicas counted). A credit is used only
//! in the first half of its TTL, so a put never races the master freeing it; older ones
//! are handed back with the next call. When the master grants fewer than asked (no room,
//! or this client's limit there) the pool stops asking for a second, and puts take the
//! long way (PutStart, write, PutEnd) meanwhile.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mc_schema::msg::{Credit, ReplicateConfig};
use parking_lot::Mutex;

/// Bytes of credit held by default (`MC_STORE_PUT_CREDIT_BYTES`; 0 = no credit).
pub(super) const DEFAULT_BYTES: usize = 64 << 20;

/// Values up to the bound over this many go through credit.
const CREDITS_PER_BOUND: u64 = 16;

/// How long the pool stops asking after the master granted fewer than asked.
const DRY_SPELL: Duration = Duration::from_secs(1);

/// One credit, with when it stops being usable here.
struct Held {
    usable_until: Instant,
    credit: Credit,
}

/// Credit of one value size and config.
struct Pool {
    size: u64,
    config: ReplicateConfig,
    held: VecDeque<Held>,
}

#[derive(Default)]
struct Inner {
    pools: Vec<Pool>,
    bytes: u64,
    /// Ids too old to use, to hand back.
    stale: Vec<u64>,
    /// No asking before this.
    dry_until: Option<Instant>,
}

/// The credit of one client.
pub(super) struct CreditPool {
    max_bytes: u64,
    inner: Mutex<Inner>,
    commits: AtomicU64,
}

/// What [`Store::credit_stats`](super::Store::credit_stats) reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CreditStats {
    /// Bytes of credit held now (replicas counted).
    pub held_bytes: u64,
    /// Puts committed into credit.
    pub commits: u64,
}

fn bytes_of(c: &Credit) -> u64 {
    c.size.saturating_mul(c.replicas.len() as u64)
}

impl CreditPool {
    /// A pool of at most `max_bytes` (0 = credit off).
    pub(super) fn new(max_bytes: usize) -> CreditPool {
        CreditPool {
            max_bytes: max_bytes as u64,
            inner: Mutex::new(Inner::default()),
            commits: AtomicU64::new(0),
        }
    }

    /// The largest value put through credit: a sixteenth of the bound, so the pool holds
    /// a batch of them. Larger values are bound by bandwidth, not round trips, and credit
    /// for them would hold much space idle.
    fn max_value_bytes(&self) -> u64 {
        self.max_bytes / CREDITS_PER_BOUND
    }

    /// Whether puts use credit at all.
    pub(super) fn enabled(&self) -> bool {
        self.max_bytes > 0
    }

    /// One credit per entry of `sizes` where the pool has one for that size and `config`
    /// (`None` where not).
    pub(super) fn take_for(&self, config: &ReplicateConfig, sizes: &[u64]) -> Vec<Option<Credit>> {
        let now = Instant::now();
        let mut g = self.inner.lock();
        let inner = &mut *g;
        sizes
            .iter()
            .map(|&size| {
                let pool = inner
                    .pools
                    .iter_mut()
                    .find(|p| p.size == size && p.config == *config)?;
                while let Some(h) = pool.held.pop_front() {
                    inner.bytes -= bytes_of(&h.credit);
                    if h.usable_until > now {
                        return Some(h.credit);
                    }
                    inner.stale.push(h.credit.id());
                }
                None
            })
            .collect()
    }

    /// What to ask the master for so that one more put of each of `sizes` finds credit:
    /// (size, count) pairs within the byte bound; nothing in a dry spell.
    pub(super) fn wants(&self, config: &ReplicateConfig, sizes: &[u64]) -> Vec<(u64, u32)> {
        let g = self.inner.lock();
        if g.dry_until.is_some_and(|t| Instant::now() < t) {
            return Vec::new();
        }
        let mut want: Vec<(u64, u32)> = Vec::new();
        for &s in sizes.iter().filter(|&&s| s <= self.max_value_bytes()) {
            match want.iter_mut().find(|w| w.0 == s) {
                Some(w) => w.1 += 1,
                None => want.push((s, 1)),
            }
        }
        let mut room = self.max_bytes.saturating_sub(g.bytes);
        want.retain_mut(|(size, count)| {
            let each = size.saturating_mul(config.replica_num.max(1) as u64);
            let fits = (room / each.max(1)).min(*count as u64) as u32;
            room -= fits as u64 * each;
            *count = fits;
            fits > 0
        });
        want
    }

    /// Keeps `credits` granted for `config` (`asked` were asked for: fewer starts a dry
    /// spell). Beyond the byte bound they are handed back with the next call.
    pub(super) fn add(&self, config: &ReplicateConfig, credits: Vec<Credit>, asked: u32) {
        let now = Instant::now();
        let mut g = self.inner.lock();
        if (credits.len() as u32) < asked {
            g.dry_until = Some(now + DRY_SPELL);
        }
        for c in credits {
            if g.bytes + bytes_of(&c) > self.max_bytes {
                g.stale.push(c.id());
                continue;
            }
            g.bytes += bytes_of(&c);
            let held = Held {
                usable_until: now + Duration::from_millis(c.ttl_ms / 2),
                credit: c,
            };
            let size = held.credit.size;
            let inner = &mut *g;
            match inner
                .pools
                .iter_mut()
                .find(|p| p.size == size && p.config == *config)
            {
                Some(p) => p.held.push_back(held),
                None => inner.pools.push(Pool {
                    size,
                    config: config.clone(),
                    held: VecDeque::from([held]),
                }),
            }
        }
    }

    /// Ids to hand back: credit too old to use.
    pub(super) fn take_stale(&self) -> Vec<u64> {
        std::mem::take(&mut self.inner.lock().stale)
    }

    /// Forgets every credit (the master lost them, or the client is closing); returns the
    /// ids, stale ones included.
    pub(super) fn clear(&self) -> Vec<u64> {
        let mut g = self.inner.lock();
        let mut ids = std::mem::take(&mut g.stale);
        for p in g.pools.drain(..) {
            ids.extend(p.held.iter().map(|h| h.credit.id()));
        }
        g.bytes = 0;
        ids
    }

    /// Bytes of credit held now.
    pub(super) fn held_bytes(&self) -> u64 {
        self.inner.lock().bytes
    }

    /// Counts one put committed into credit.
    pub(super) fn note_commit(&self) {
        self.commits.fetch_add(1, Ordering::Relaxed);
    }

    /// Held bytes and commits so far.
    pub(super) fn stats(&self) -> CreditStats {
        CreditStats {
            held_bytes: self.held_bytes(),
            commits: self.commits.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mc_schema::msg::{ReplicaDesc, ReplicaKind, SliceDesc};

    fn credit(size: u64, generation: u64, ttl_ms: u64) -> Credit {
        Credit {
            size,
            replicas: vec![ReplicaDesc {
                slices: vec![SliceDesc {
                    segment_id: 1,
                    endpoint: "h:1".into(),
                    offset: 0,
                    length: size,
                    generation,
                    token: None,
                }],
                complete: false,
                kind: ReplicaKind::Memory,
            }],
            ttl_ms,
        }
    }

    fn cfg() -> ReplicateConfig {
        ReplicateConfig::default()
    }

    #[test]
    fn takes_by_size_and_config() {
        let p = CreditPool::new(1 << 20);
        p.add(
            &cfg(),
            vec![credit(4096, 1, 60_000), credit(8192, 2, 60_000)],
            2,
        );
        let other = ReplicateConfig {
            replica_num: 2,
            ..cfg()
        };
        assert!(p.take_for(&other, &[4096])[0].is_none());
        let got = p.take_for(&cfg(), &[8192, 4096, 4096]);
        assert_eq!(got[0].as_ref().map(Credit::id), Some(2));
        assert_eq!(got[1].as_ref().map(Credit::id), Some(1));
        assert!(got[2].is_none());
        assert_eq!(p.held_bytes(), 0);
    }

    #[test]
    fn wants_stay_within_the_bound_and_stop_in_a_dry_spell() {
        let p = CreditPool::new(16 * 4096);
        assert_eq!(p.wants(&cfg(), &[4096; 20]), vec![(4096, 16)]);
        assert!(p.wants(&cfg(), &[8192]).is_empty(), "too large for credit");
        p.add(&cfg(), vec![credit(4096, 1, 60_000)], 1);
        assert_eq!(p.wants(&cfg(), &[4096; 20]), vec![(4096, 15)]);
        p.add(&cfg(), vec![], 2);
        assert!(p.wants(&cfg(), &[4096]).is_empty(), "dry spell");
    }

    #[test]
    fn old_credit_is_not_used_but_handed_back() {
        let p = CreditPool::new(1 << 20);
        p.add(&cfg(), vec![credit(4096, 9, 0)], 1);
        assert!(p.take_for(&cfg(), &[4096])[0].is_none());
        assert_eq!(p.take_stale(), vec![9]);
        assert!(p.take_stale().is_empty());
    }

    #[test]
    fn beyond_the_bound_credit_goes_back_and_clear_returns_all() {
        let p = CreditPool::new(4096);
        p.add(
            &cfg(),
            vec![credit(4096, 1, 60_000), credit(4096, 2, 60_000)],
            2,
        );
        assert_eq!(p.held_bytes(), 4096);
        let mut ids = p.clear();
        ids.sort();
        assert_eq!(ids, vec![1, 2]);
        assert_eq!(p.held_bytes(), 0);
    }
}
