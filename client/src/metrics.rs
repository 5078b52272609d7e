//! Client-side metrics, as in Mooncake (`MC_STORE_CLIENT_METRIC`, on by default;
//! `MC_STORE_CLIENT_METRIC_INTERVAL` seconds between log lines, 0 = collect only).
//!
//! Each public operation counts calls, keys, bytes, failed keys, and call latency in
//! logarithmic buckets (relaxed atomics, no locks); [`crate::Store::metrics`] reads them.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Operations measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// put / put_batch.
    Put,
    /// upsert / upsert_batch.
    Upsert,
    /// get / get_batch / get_into.
    Get,
    /// exists / batch_exists.
    Exists,
    /// remove / remove_batch / remove_by_regex / remove_all.
    Remove,
}

const OPS: [(Op, &str); 5] = [
    (Op::Put, "put"),
    (Op::Upsert, "upsert"),
    (Op::Get, "get"),
    (Op::Exists, "exists"),
    (Op::Remove, "remove"),
];

/// Latency buckets: bucket i holds calls of at most 2^i microseconds (1 µs .. ~1 h).
const BUCKETS: usize = 32;

#[derive(Default)]
struct Counters {
    calls: AtomicU64,
    keys: AtomicU64,
    bytes: AtomicU64,
    failed_keys: AtomicU64,
    latency: [AtomicU64; BUCKETS],
}

/// Live counters of one `Store`.
#[derive(Default)]
pub struct ClientMetrics {
    ops: [Counters; OPS.len()],
}

/// A point-in-time copy of one operation's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpSnapshot {
    /// Operation name (`put`, `get`, ...).
    pub op: &'static str,
    /// Calls made (a batch counts once).
    pub calls: u64,
    /// Keys handled.
    pub keys: u64,
    /// Value bytes moved by successful keys.
    pub bytes: u64,
    /// Keys that failed.
    pub failed_keys: u64,
    /// Median call latency, microseconds (bucket upper bound, so within 2x).
    pub p50_us: u64,
    /// 99th percentile call latency, microseconds (bucket upper bound).
    pub p99_us: u64,
}

/// A point-in-time copy of every operation's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// One entry per operation.
    pub ops: Vec<OpSnapshot>,
}

impl MetricsSnapshot {
    /// The entry of `op` (`"put"`, `"get"`, ...).
    pub fn op(&self, op: &str) -> Option<&OpSnapshot> {
        self.ops.iter().find(|o| o.op == op)
    }
}

impl fmt::Display for MetricsSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .ops
            .iter()
            .filter(|o| o.calls > 0)
            .map(|o| {
                format!(
                    "{} calls={} keys={} bytes={} failed={} p50={}us p99={}us",
                    o.op, o.calls, o.keys, o.bytes, o.failed_keys, o.p50_us, o.p99_us
                )
            })
            .collect();
        if parts.is_empty() {
            write!(f, "no operations yet")
        } else {
            write!(f, "{}", parts.join("; "))
        }
    }
}

fn index(op: Op) -> usize {
    OPS.iter().position(|(o, _)| *o == op).expect("listed")
}

fn percentile(buckets: &[u64; BUCKETS], q: f64) -> u64 {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return 0;
    }
    let want = ((total as f64) * q).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (i, n) in buckets.iter().enumerate() {
        seen += n;
        if seen >= want {
            return 1u64 << i;
        }
    }
    1u64 << (BUCKETS - 1)
}

impl ClientMetrics {
    /// Records one call.
    pub fn record(&self, op: Op, keys: u64, bytes: u64, failed_keys: u64, took: Duration) {
        let c = &self.ops[index(op)];
        c.calls.fetch_add(1, Ordering::Relaxed);
        c.keys.fetch_add(keys, Ordering::Relaxed);
        c.bytes.fetch_add(bytes, Ordering::Relaxed);
        c.failed_keys.fetch_add(failed_keys, Ordering::Relaxed);
        let us = took.as_micros().max(1) as u64;
        let b = (64 - (us - 1).leading_zeros()) as usize;
        c.latency[b.min(BUCKETS - 1)].fetch_add(1, Ordering::Relaxed);
    }

    /// Copies the counters.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        MetricsSnapshot {
            ops: OPS
                .iter()
                .zip(&self.ops)
                .map(|((_, name), c)| {
                    let buckets: [u64; BUCKETS] = std::array::from_fn(|i| get(&c.latency[i]));
                    OpSnapshot {
                        op: name,
                        calls: get(&c.calls),
                        keys: get(&c.keys),
                        bytes: get(&c.bytes),
                        failed_keys: get(&c.failed_keys),
                        p50_us: percentile(&buckets, 0.50),
                        p99_us: percentile(&buckets, 0.99),
                    }
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_and_percentiles() {
        let m = ClientMetrics::default();
        for us in [1, 3, 100, 100, 100, 100, 100, 100, 100, 5000] {
            m.record(Op::Get, 1, 10, 0, Duration::from_micros(us));
        }
        m.record(Op::Put, 4, 400, 1, Duration::from_micros(10));
        let s = m.snapshot();
        let g = s.op("get").unwrap();
        assert_eq!((g.calls, g.keys, g.bytes), (10, 10, 100));
        assert_eq!(g.p50_us, 128, "100 us falls in the (64, 128] bucket");
        assert_eq!(g.p99_us, 8192);
        let p = s.op("put").unwrap();
        assert_eq!((p.calls, p.keys, p.failed_keys), (1, 4, 1));
        assert!(s.to_string().contains("put calls=1 keys=4"), "{s}");
        assert_eq!(
            ClientMetrics::default().snapshot().to_string(),
            "no operations yet"
        );
    }
}
