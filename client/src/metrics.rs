//! Client-side metrics, as in Mooncake (`MC_STORE_CLIENT_METRIC`, on by default;
//! `MC_STORE_CLIENT_METRIC_INTERVAL` seconds between log lines, 0 = collect only).
//!
//! Each public operation counts calls, keys, bytes, failed keys, and call latency in
//! power-of-two microsecond buckets, on the `prometheus` crate: the counters of every
//! operation are made once, in an array indexed by [`Op`], so recording is a few relaxed
//! atomic adds with no label lookup, lock or allocation. [`crate::Store::metrics`] reads
//! them as a [`MetricsSnapshot`]; [`crate::Store::metrics_text`] gives the Prometheus
//! text format (families `mc_client_*`, label `op`).
//!
//! Each `Store` has its own registry, so two stores in one process (an application and an
//! embedded node's REST client, or tests) never mix their counts.

use std::fmt;
use std::time::Duration;

use prometheus::core::Metric as _;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
};
use prometheus::{Registry, TextEncoder};

/// Defines [`Op`] and its names from one list, so that every operation has a name and a
/// slot in [`Op::ALL`].
macro_rules! ops {
    ($($(#[$doc:meta])* $variant:ident => $name:literal,)+) => {
        /// Operations measured.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Op {
            $($(#[$doc])* $variant,)+
        }

        impl Op {
            /// Every operation in declaration order: `op as usize` is its position.
            pub const ALL: [Op; [$($name),+].len()] = [$(Op::$variant),+];

            /// The operation's name (`put`, `get`, ...), also its `op` label.
            pub fn name(self) -> &'static str {
                match self {
                    $(Op::$variant => $name,)+
                }
            }
        }
    };
}

ops! {
    /// put / put_batch.
    Put => "put",
    /// upsert / upsert_batch.
    Upsert => "upsert",
    /// get / get_batch / get_into.
    Get => "get",
    /// exists / batch_exists.
    Exists => "exists",
    /// remove / remove_batch / remove_by_regex / remove_all.
    Remove => "remove",
}

/// Latency buckets: bucket i holds calls of at most 2^i microseconds (1 µs .. ~18 min); the
/// last, `+Inf`, holds the slower ones.
const BUCKETS: usize = 32;

/// Upper bound of bucket `i`, in microseconds.
fn bucket_us(i: usize) -> u64 {
    1u64 << i
}

/// The finite bucket bounds, in seconds. Observed values go through the same division, so
/// a call of exactly 2^i µs lands in bucket i.
fn bucket_bounds_s() -> Vec<f64> {
    (0..BUCKETS - 1)
        .map(|i| bucket_us(i) as f64 / 1e6)
        .collect()
}

/// The metrics of one operation.
struct OpMetrics {
    calls: IntCounter,
    keys: IntCounter,
    bytes: IntCounter,
    failed_keys: IntCounter,
    latency: Histogram,
}

/// Live counters of one `Store`.
pub struct ClientMetrics {
    ops: [OpMetrics; Op::ALL.len()],
    /// Slices read by copying from a node of this host (`MC_STORE_MEMCPY`).
    pub(crate) same_host_reads: IntCounter,
    /// Same-host attempts that read over TCP instead.
    pub(crate) same_host_fallbacks: IntCounter,
    /// The local hot cache's counters (`mc_client_hot_cache_*`; zero while it is off).
    pub(crate) hot: HotMetrics,
    registry: Registry,
}

/// Counters of the local hot cache (`MC_STORE_LOCAL_HOT_CACHE_SIZE`), shared with it.
#[derive(Clone)]
pub(crate) struct HotMetrics {
    /// `mc_client_hot_cache_hits_total`: gets served from the cache.
    pub(crate) hits: IntCounter,
    /// `mc_client_hot_cache_misses_total`: gets of keys it did not hold.
    pub(crate) misses: IntCounter,
    /// `mc_client_hot_cache_admitted_total`: values copied in.
    pub(crate) admitted: IntCounter,
    /// `mc_client_hot_cache_evicted_total`: entries evicted for room.
    pub(crate) evicted: IntCounter,
    /// `mc_client_hot_cache_stale_total`: entries dropped because the object changed.
    pub(crate) stale: IntCounter,
    /// `mc_client_hot_cache_corrupt_total`: entries whose bytes failed their CRC on serve.
    pub(crate) corrupt: IntCounter,
    /// `mc_client_hot_cache_invalidated_total`: entries dropped by this client's writes.
    pub(crate) invalidated: IntCounter,
    /// `mc_client_hot_cache_used_bytes`: bytes of blocks held by entries.
    pub(crate) used_bytes: IntGauge,
    /// `mc_client_hot_cache_capacity_bytes`: bytes of blocks in the cache.
    pub(crate) capacity_bytes: IntGauge,
}

impl HotMetrics {
    /// The counters, registered in `registry` when given.
    fn new(registry: Option<&Registry>) -> HotMetrics {
        let reg = |c: Box<dyn prometheus::core::Collector>| {
            if let Some(r) = registry {
                r.register(c).expect("client families are registered once");
            }
        };
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("client counter definitions are valid");
            reg(Box::new(c.clone()));
            c
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("client gauge definitions are valid");
            reg(Box::new(g.clone()));
            g
        };
        HotMetrics {
            hits: counter(
                "mc_client_hot_cache_hits_total",
                "Gets served from the local hot cache.",
            ),
            misses: counter(
                "mc_client_hot_cache_misses_total",
                "Gets of keys the local hot cache did not hold.",
            ),
            admitted: counter(
                "mc_client_hot_cache_admitted_total",
                "Values copied into the local hot cache.",
            ),
            evicted: counter(
                "mc_client_hot_cache_evicted_total",
                "Local hot cache entries evicted to make room.",
            ),
            stale: counter(
                "mc_client_hot_cache_stale_total",
                "Local hot cache entries dropped because their object changed or failed a check.",
            ),
            corrupt: counter(
                "mc_client_hot_cache_corrupt_total",
                "Local hot cache entries whose bytes failed their CRC32C when served.",
            ),
            invalidated: counter(
                "mc_client_hot_cache_invalidated_total",
                "Local hot cache entries dropped because this client wrote or removed the key.",
            ),
            used_bytes: gauge(
                "mc_client_hot_cache_used_bytes",
                "Bytes of local hot cache blocks held by entries.",
            ),
            capacity_bytes: gauge(
                "mc_client_hot_cache_capacity_bytes",
                "Bytes of blocks in the local hot cache.",
            ),
        }
    }
}

#[cfg(test)]
impl Default for HotMetrics {
    /// Unregistered counters, for the cache's unit tests.
    fn default() -> HotMetrics {
        HotMetrics::new(None)
    }
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

/// The upper bound, in µs, of the bucket holding quantile `q` of `h`'s calls.
fn percentile(h: &Histogram, q: f64) -> u64 {
    let m = h.metric();
    let h = m.get_histogram();
    let total = h.get_sample_count();
    if total == 0 {
        return 0;
    }
    let want = ((total as f64) * q).ceil().max(1.0) as u64;
    h.get_bucket()
        .iter()
        .position(|b| b.cumulative_count() >= want)
        .map_or(bucket_us(BUCKETS - 1), bucket_us)
}

impl Default for ClientMetrics {
    fn default() -> Self {
        let vec = |name: &str, help: &str| {
            IntCounterVec::new(Opts::new(name, help), &["op"])
                .expect("client counter definitions are valid")
        };
        let calls = vec("mc_client_calls_total", "Calls made (a batch counts once).");
        let keys = vec("mc_client_keys_total", "Keys handled.");
        let bytes = vec(
            "mc_client_bytes_total",
            "Value bytes moved by successful keys.",
        );
        let failed = vec("mc_client_failed_keys_total", "Keys that failed.");
        let latency = HistogramVec::new(
            HistogramOpts::new("mc_client_call_latency_seconds", "Time of one call, by op.")
                .buckets(bucket_bounds_s()),
            &["op"],
        )
        .expect("the client latency definition is valid");
        let ops = Op::ALL.map(|op| {
            let l = [op.name()];
            OpMetrics {
                calls: calls.with_label_values(&l),
                keys: keys.with_label_values(&l),
                bytes: bytes.with_label_values(&l),
                failed_keys: failed.with_label_values(&l),
                latency: latency.with_label_values(&l),
            }
        });
        let registry = Registry::new();
        for c in [calls, keys, bytes, failed] {
            registry
                .register(Box::new(c))
                .expect("client families are registered once");
        }
        registry
            .register(Box::new(latency))
            .expect("client families are registered once");
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("client counter definitions are valid");
            registry
                .register(Box::new(c.clone()))
                .expect("client families are registered once");
            c
        };
        let same_host_reads = counter(
            "mc_client_same_host_reads_total",
            "Slices read by copying from a store node of this host.",
        );
        let same_host_fallbacks = counter(
            "mc_client_same_host_fallbacks_total",
            "Same-host read attempts that went over TCP instead.",
        );
        let hot = HotMetrics::new(Some(&registry));
        ClientMetrics {
            ops,
            same_host_reads,
            same_host_fallbacks,
            hot,
            registry,
        }
    }
}

impl ClientMetrics {
    /// Records one call.
    pub fn record(&self, op: Op, keys: u64, bytes: u64, failed_keys: u64, took: Duration) {
        let m = &self.ops[op as usize];
        m.calls.inc();
        m.keys.inc_by(keys);
        m.bytes.inc_by(bytes);
        m.failed_keys.inc_by(failed_keys);
        let us = took.as_micros().max(1) as u64;
        m.latency.observe(us as f64 / 1e6);
    }

    /// Copies the counters.
    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            ops: Op::ALL
                .iter()
                .zip(&self.ops)
                .map(|(op, m)| OpSnapshot {
                    op: op.name(),
                    calls: m.calls.get(),
                    keys: m.keys.get(),
                    bytes: m.bytes.get(),
                    failed_keys: m.failed_keys.get(),
                    p50_us: percentile(&m.latency, 0.50),
                    p99_us: percentile(&m.latency, 0.99),
                })
                .collect(),
        }
    }

    /// Every family in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        // Encoding fails only for a family without samples or name; gather drops the former
        // and every family here has a name.
        TextEncoder::new()
            .encode_utf8(&self.registry.gather(), &mut out)
            .expect("gathered families are well formed");
        out
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

    #[test]
    fn bucket_edges_and_the_open_top_bucket() {
        let m = ClientMetrics::default();
        m.record(Op::Exists, 1, 0, 0, Duration::from_micros(128));
        assert_eq!(
            m.snapshot().op("exists").unwrap().p50_us,
            128,
            "2^7 us is in bucket 7"
        );
        m.record(Op::Remove, 1, 0, 0, Duration::from_nanos(1_500));
        assert_eq!(
            m.snapshot().op("remove").unwrap().p99_us,
            1,
            "whole microseconds"
        );
        m.record(Op::Upsert, 1, 0, 0, Duration::from_secs(3600));
        assert_eq!(m.snapshot().op("upsert").unwrap().p99_us, 1 << 31);
    }

    #[test]
    fn text_format_has_every_op_and_the_calls() {
        let m = ClientMetrics::default();
        m.record(Op::Put, 2, 20, 0, Duration::from_micros(5));
        let text = m.encode();
        assert!(
            text.contains("\nmc_client_calls_total{op=\"put\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("\nmc_client_bytes_total{op=\"put\"} 20\n"),
            "{text}"
        );
        for op in Op::ALL {
            let line = format!(
                "mc_client_call_latency_seconds_count{{op=\"{}\"}}",
                op.name()
            );
            assert!(text.contains(&line), "{line} missing from\n{text}");
        }
    }
}
