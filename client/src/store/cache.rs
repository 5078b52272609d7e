//! The location cache: where each recently used key's replicas are (segment, range,
//! allocation generation) and the CRC32C of each slice, so a get goes straight to a shard
//! in one round trip instead of asking the master first (`docs/why-fast-path.md`).
//!
//! Entries come from the master's GetReplicaList answers and from this client's own puts.
//! A read from an entry is validated: the shard serves it only if its object index still
//! holds exactly that slice (REPLICA_IS_GONE otherwise), and the client checks the CRC32C
//! after. Any failure drops the entry and the key is asked of the master. Bounded by
//! entries and by bytes; the oldest insertions go first. Zero of either turns it off.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mc_schema::msg::ReplicaListResult;
use parking_lot::Mutex;

/// Entries kept by default (`MC_STORE_LOCATION_CACHE_ENTRIES`).
pub const DEFAULT_ENTRIES: usize = 1 << 16;
/// Bytes of entries kept by default (`MC_STORE_LOCATION_CACHE_BYTES`).
pub const DEFAULT_BYTES: usize = 64 << 20;

/// Counters of the cache since the client started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Keys read through a cached location.
    pub hits: u64,
    /// Keys looked up at the master because nothing was cached.
    pub misses: u64,
    /// Cached locations that failed (gone, replaced, unreachable) and were dropped.
    pub stale: u64,
    /// Entries held now.
    pub entries: u64,
}

#[derive(Default)]
struct Inner {
    /// Key → (insertion number, location, when a read last went through it).
    map: HashMap<String, (u64, Arc<ReplicaListResult>, Option<Instant>)>,
    /// Insertion order: (key, insertion number); a number the map no longer holds is skipped.
    order: VecDeque<(String, u64)>,
    bytes: usize,
    next: u64,
}

/// A bounded map of key → replica list.
pub(crate) struct LocationCache {
    inner: Mutex<Inner>,
    max_entries: usize,
    max_bytes: usize,
    hits: AtomicU64,
    misses: AtomicU64,
    stale: AtomicU64,
}

/// Approximate bytes an entry takes.
fn cost(key: &str, l: &ReplicaListResult) -> usize {
    let slices: usize = l
        .replicas
        .iter()
        .flat_map(|r| &r.slices)
        .map(|s| 48 + s.endpoint.len())
        .sum();
    96 + 2 * key.len() + slices + 4 * l.slice_crcs.len()
}

impl LocationCache {
    /// A cache of at most `max_entries` entries and `max_bytes` bytes.
    pub(crate) fn new(max_entries: usize, max_bytes: usize) -> LocationCache {
        LocationCache {
            inner: Mutex::new(Inner::default()),
            max_entries,
            max_bytes,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            stale: AtomicU64::new(0),
        }
    }

    fn enabled(&self) -> bool {
        self.max_entries > 0 && self.max_bytes > 0
    }

    /// The cached location of `key`; counts a miss when there is none.
    pub(crate) fn get(&self, key: &str) -> Option<Arc<ReplicaListResult>> {
        if !self.enabled() {
            return None;
        }
        let got = self.inner.lock().map.get(key).map(|(_, l, _)| l.clone());
        if got.is_none() {
            self.misses.fetch_add(1, Ordering::Relaxed);
        }
        got
    }

    /// Counts a read of `key` through its cached location, and remembers when it was.
    pub(crate) fn hit(&self, key: &str) {
        self.hits.fetch_add(1, Ordering::Relaxed);
        if let Some(e) = self.inner.lock().map.get_mut(key) {
            e.2 = Some(Instant::now());
        }
    }

    /// Whether a read went through the cached location of `key` in the last `within`.
    pub(crate) fn read_within(&self, key: &str, within: Duration) -> bool {
        self.inner
            .lock()
            .map
            .get(key)
            .and_then(|e| e.2)
            .is_some_and(|t| t.elapsed() < within)
    }

    /// Remembers where `key` is. Only complete answers with replicas are kept.
    pub(crate) fn insert(&self, key: &str, l: Arc<ReplicaListResult>) {
        if !self.enabled() || l.status != 0 || l.replicas.is_empty() {
            return;
        }
        let c = cost(key, &l);
        if c > self.max_bytes {
            return;
        }
        let mut g = self.inner.lock();
        let n = g.next;
        g.next += 1;
        if let Some((_, old, _)) = g.map.insert(key.to_string(), (n, l, None)) {
            g.bytes -= cost(key, &old);
        }
        g.bytes += c;
        g.order.push_back((key.to_string(), n));
        while g.map.len() > self.max_entries || g.bytes > self.max_bytes {
            let Some((k, n)) = g.order.pop_front() else {
                break;
            };
            if g.map.get(&k).is_some_and(|(m, _, _)| *m == n) {
                let (_, old, _) = g.map.remove(&k).expect("present");
                g.bytes -= cost(&k, &old);
            }
        }
        // Re-insertions leave dead order entries behind: compact when they dominate.
        if g.order.len() > 2 * g.map.len() + 1024 {
            let mut live: Vec<(String, u64)> =
                g.map.iter().map(|(k, (n, _, _))| (k.clone(), *n)).collect();
            live.sort_unstable_by_key(|(_, n)| *n);
            g.order = live.into();
        }
    }

    /// Every key a read went through in the last `within`.
    pub(crate) fn read_keys_within(&self, within: Duration) -> Vec<String> {
        self.inner
            .lock()
            .map
            .iter()
            .filter(|(_, e)| e.2.is_some_and(|t| t.elapsed() < within))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Forgets `key`.
    pub(crate) fn remove(&self, key: &str) {
        if !self.enabled() {
            return;
        }
        let mut g = self.inner.lock();
        if let Some((_, old, _)) = g.map.remove(key) {
            g.bytes -= cost(key, &old);
        }
    }

    /// Forgets a location that failed.
    pub(crate) fn drop_stale(&self, key: &str) {
        self.stale.fetch_add(1, Ordering::Relaxed);
        self.remove(key);
    }

    /// Forgets everything (after a remove by pattern).
    pub(crate) fn clear(&self) {
        let mut g = self.inner.lock();
        g.map.clear();
        g.order.clear();
        g.bytes = 0;
    }

    /// Counters so far.
    pub(crate) fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            stale: self.stale.load(Ordering::Relaxed),
            entries: self.inner.lock().map.len() as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mc_schema::msg::{ReplicaDesc, SliceDesc};

    fn loc(endpoint: &str) -> Arc<ReplicaListResult> {
        Arc::new(ReplicaListResult {
            status: 0,
            size: 10,
            replicas: vec![ReplicaDesc {
                kind: Default::default(),
                slices: vec![SliceDesc {
                    segment_id: 1,
                    endpoint: endpoint.into(),
                    offset: 0,
                    length: 10,
                    generation: 5,
                    token: None,
                }],
                complete: true,
            }],
            slice_crcs: vec![7],
        })
    }

    #[test]
    fn bounded_by_entries_oldest_first() {
        let c = LocationCache::new(2, 1 << 20);
        c.insert("a", loc("x:1"));
        c.insert("b", loc("x:1"));
        c.insert("a", loc("x:2")); // re-inserted: now the newest
        c.insert("c", loc("x:1"));
        assert!(c.get("b").is_none(), "the oldest insertion went first");
        assert_eq!(c.get("a").unwrap().replicas[0].slices[0].endpoint, "x:2");
        assert!(c.get("c").is_some());
        assert_eq!(c.stats().entries, 2);
    }

    #[test]
    fn bounded_by_bytes_and_off_at_zero() {
        let one = cost("k0", &loc("x:1"));
        let c = LocationCache::new(1000, one * 3);
        for i in 0..10 {
            c.insert(&format!("k{i}"), loc("x:1"));
        }
        assert!(c.stats().entries <= 3);
        for off in [LocationCache::new(0, 1 << 20), LocationCache::new(10, 0)] {
            off.insert("a", loc("x:1"));
            assert!(off.get("a").is_none());
        }
    }

    #[test]
    fn failures_and_removes_forget_and_incomplete_answers_are_not_kept() {
        let c = LocationCache::new(10, 1 << 20);
        c.insert("a", loc("x:1"));
        c.drop_stale("a");
        assert!(c.get("a").is_none());
        let mut bad = (*loc("x:1")).clone();
        bad.status = -704;
        c.insert("b", Arc::new(bad));
        assert!(c.get("b").is_none());
        c.insert("c", loc("x:1"));
        c.clear();
        assert!(c.get("c").is_none());
        let s = c.stats();
        assert_eq!((s.stale, s.misses, s.entries), (1, 3, 0));
    }

    #[test]
    fn reads_through_an_entry_are_remembered() {
        let c = LocationCache::new(10, 1 << 20);
        c.insert("a", loc("x:1"));
        assert!(!c.read_within("a", Duration::from_secs(60)));
        c.hit("a");
        assert!(c.read_within("a", Duration::from_secs(60)));
        assert!(!c.read_within("a", Duration::ZERO));
        assert_eq!(
            c.read_keys_within(Duration::from_secs(60)),
            vec!["a".to_string()]
        );
        c.insert("a", loc("x:2"));
        assert!(
            !c.read_within("a", Duration::from_secs(60)),
            "a new location was not read"
        );
        assert_eq!(c.stats().hits, 1);
    }

    #[test]
    fn order_is_compacted_under_churn() {
        let c = LocationCache::new(4, 1 << 20);
        for _ in 0..5000 {
            c.insert("a", loc("x:1"));
        }
        assert!(c.inner.lock().order.len() <= 2 + 1024 + 1, "one live key");
    }
}
