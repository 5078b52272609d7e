//! Per-shard data-plane metrics (`mc_shard_*`), on the `prometheus` crate.
//!
//! A shard makes its counters once, at start, with its `shard` and `endpoint` as constant
//! labels; each shard writes only its own (relaxed atomics, nothing shared with another
//! shard on the hot path). The node registers every shard's families in its one registry
//! ([`ShardStats::register`]) and serves them on `/metrics`.

use std::time::Duration;

use prometheus::core::{AtomicU64, GenericGauge};
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry,
};

/// Renders metric families as Prometheus text: what a shard answers `ToShard::Metrics`
/// with (the node's data-plane process gives shard 0 one covering all its shards).
#[derive(Clone)]
pub struct FamiliesText(pub std::sync::Arc<dyn Fn() -> String + Send + Sync>);

impl std::fmt::Debug for FamiliesText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FamiliesText")
    }
}

/// Upper bounds of the transfer latency histogram, in seconds.
pub const LATENCY_BUCKETS_S: [f64; 10] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.01, 0.05, 0.25, 1.0,
];

/// A gauge of bytes (unsigned, like the sizes it counts).
pub type BytesGauge = GenericGauge<AtomicU64>;

/// One transfer direction.
#[derive(Debug, Clone)]
pub struct OpStats {
    /// Transfers answered.
    pub ops_total: IntCounter,
    /// Payload bytes moved.
    pub bytes_total: IntCounter,
    /// Transfers refused or failed.
    pub errors_total: IntCounter,
    latency: Histogram,
}

impl OpStats {
    /// Records one transfer.
    pub fn record(&self, bytes: u64, ok: bool, took: Duration) {
        self.ops_total.inc();
        if ok {
            self.bytes_total.inc_by(bytes);
        } else {
            self.errors_total.inc();
        }
        self.latency.observe(took.as_secs_f64());
    }
}

/// Metrics of one shard.
#[derive(Debug, Clone)]
pub struct ShardStats {
    /// Shard index.
    pub shard: u32,
    /// Data endpoint.
    pub endpoint: String,
    /// Segment bytes the shard serves.
    pub capacity_bytes: BytesGauge,
    /// WRITEs (bytes in).
    pub writes: OpStats,
    /// READs (bytes out).
    pub reads: OpStats,
    /// WRITE payloads refused because they did not match the writer's CRC32C.
    pub crc_failures_total: IntCounter,
    /// Connections accepted.
    pub connections_total: IntCounter,
    /// Transfers refused because an overlapping write was in flight (`OBJECT_REPLICA_BUSY`).
    pub range_busy_total: IntCounter,
    /// WRITEs refused because their allocation came from a deposed master's term.
    pub stale_term_writes_total: IntCounter,
    /// Slices stored but not indexed (the index could not grow).
    pub index_errors_total: IntCounter,
    /// Validated READs (a client's location cache) served from the index.
    pub validated_reads_total: IntCounter,
    /// Validated READs refused because the index no longer holds that slice.
    pub gone_reads_total: IntCounter,
    /// Probes (a client's hot cache asking whether a slice is still held, no payload);
    /// held ones count in `validated_reads_total` too, refused ones in `gone_reads_total`.
    pub probes_total: IntCounter,
    /// WRITEs refused by their write token, by reason (`capability::Refusal::label`).
    pub refused_writes_total: IntCounterVec,
    /// Entries in the shard's object index.
    pub index_entries: BytesGauge,
    /// Bytes of memory the object index takes.
    pub index_bytes: BytesGauge,
    /// The SSD tier's metrics (zero without `--enable_ssd_offload`).
    pub ssd: crate::ssd::SsdStats,
    /// The family of both directions' latency children, kept for registration.
    latency: HistogramVec,
}

impl ShardStats {
    /// Zeroed metrics of shard `shard`, serving on `endpoint`.
    pub fn new(shard: u32, endpoint: &str) -> ShardStats {
        let labels = |opts: Opts| {
            opts.const_label("shard", shard.to_string())
                .const_label("endpoint", endpoint)
        };
        // The names and label names are fixed here; only label values vary, and any
        // string is a valid label value.
        let counter = |name: &str, help: &str| {
            IntCounter::with_opts(labels(Opts::new(name, help)))
                .expect("shard counter definitions are valid")
        };
        let gauge = |name: &str, help: &str| {
            BytesGauge::with_opts(labels(Opts::new(name, help)))
                .expect("shard gauge definitions are valid")
        };
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "mc_shard_transfer_latency_seconds",
                "Time from a transfer header to its answer, by shard and op.",
            )
            .const_label("shard", shard.to_string())
            .const_label("endpoint", endpoint)
            .buckets(LATENCY_BUCKETS_S.to_vec()),
            &["op"],
        )
        .expect("the shard latency definition is valid");
        let refused_writes_total = IntCounterVec::new(
            labels(Opts::new(
                "mc_shard_refused_writes_total",
                "WRITEs refused by their write token (forged, expired, out_of_range, revoked); \
                 none of their bytes landed.",
            )),
            &["reason"],
        )
        .expect("the refused-writes definition is valid");
        // Every reason is exported from the start, at 0, so alerts need no absent() rule.
        for reason in ["forged", "expired", "out_of_range", "revoked"] {
            refused_writes_total.with_label_values(&[reason]);
        }
        ShardStats {
            shard,
            refused_writes_total,
            endpoint: endpoint.to_string(),
            capacity_bytes: BytesGauge::with_opts(labels(Opts::new(
                "mc_shard_segment_capacity_bytes",
                "Segment bytes the shard serves.",
            )))
            .expect("the shard capacity definition is valid"),
            writes: OpStats {
                ops_total: counter("mc_shard_write_ops_total", "WRITE transfers answered."),
                bytes_total: counter(
                    "mc_shard_bytes_in_total",
                    "Payload bytes received into segment memory.",
                ),
                errors_total: counter(
                    "mc_shard_write_errors_total",
                    "WRITE transfers refused or failed.",
                ),
                latency: latency.with_label_values(&["write"]),
            },
            reads: OpStats {
                ops_total: counter("mc_shard_read_ops_total", "READ transfers answered."),
                bytes_total: counter(
                    "mc_shard_bytes_out_total",
                    "Payload bytes sent from segment memory.",
                ),
                errors_total: counter(
                    "mc_shard_read_errors_total",
                    "READ transfers refused or failed.",
                ),
                latency: latency.with_label_values(&["read"]),
            },
            crc_failures_total: counter(
                "mc_shard_crc_failures_total",
                "WRITE payloads refused for a CRC32C mismatch.",
            ),
            connections_total: counter("mc_shard_connections_total", "Data connections accepted."),
            range_busy_total: counter(
                "mc_shard_range_busy_total",
                "Transfers refused because an overlapping write was in flight.",
            ),
            stale_term_writes_total: counter(
                "mc_shard_stale_term_writes_total",
                "WRITEs refused because their allocation came from a deposed master.",
            ),
            index_errors_total: counter(
                "mc_shard_index_errors_total",
                "Slices stored but not recorded in the object index.",
            ),
            validated_reads_total: counter(
                "mc_shard_validated_reads_total",
                "READs of a client's cached location served after checking the object index.",
            ),
            gone_reads_total: counter(
                "mc_shard_gone_reads_total",
                "READs of a cached location refused: the slice is no longer there (REPLICA_IS_GONE).",
            ),
            probes_total: counter(
                "mc_shard_probes_total",
                "Probes answered: a client's hot cache asked whether a slice is still held.",
            ),
            index_entries: gauge("mc_shard_index_entries", "Entries in the object index."),
            index_bytes: gauge(
                "mc_shard_index_bytes",
                "Bytes of memory the object index takes.",
            ),
            ssd: crate::ssd::SsdStats::new(shard, endpoint),
            latency,
        }
    }

    /// Adds this shard's families to `registry`. Fails when a shard with the same index and
    /// endpoint is registered there already.
    pub fn register(&self, registry: &Registry) -> prometheus::Result<()> {
        registry.register(Box::new(self.capacity_bytes.clone()))?;
        registry.register(Box::new(self.index_entries.clone()))?;
        registry.register(Box::new(self.index_bytes.clone()))?;
        self.ssd.register(registry)?;
        for c in [
            &self.connections_total,
            &self.crc_failures_total,
            &self.range_busy_total,
            &self.stale_term_writes_total,
            &self.index_errors_total,
            &self.validated_reads_total,
            &self.gone_reads_total,
            &self.probes_total,
            &self.writes.ops_total,
            &self.writes.bytes_total,
            &self.writes.errors_total,
            &self.reads.ops_total,
            &self.reads.bytes_total,
            &self.reads.errors_total,
        ] {
            registry.register(Box::new(c.clone()))?;
        }
        registry.register(Box::new(self.refused_writes_total.clone()))?;
        registry.register(Box::new(self.latency.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_share_families_and_keep_their_own_counts() {
        let registry = Registry::new();
        let (a, b) = (ShardStats::new(0, "h:1"), ShardStats::new(1, "h:2"));
        a.register(&registry).unwrap();
        b.register(&registry).unwrap();
        assert!(a.register(&registry).is_err(), "a shard registers once");
        a.writes.record(100, true, Duration::from_micros(70));
        a.writes.record(100, false, Duration::from_secs(2));
        b.reads.record(7, true, Duration::from_micros(10));
        let families = registry.gather();
        let family = |name: &str| {
            families
                .iter()
                .find(|f| f.name() == name)
                .unwrap_or_else(|| panic!("{name} missing"))
        };
        assert_eq!(family("mc_shard_write_ops_total").get_metric().len(), 2);
        assert_eq!(
            (a.writes.ops_total.get(), a.writes.bytes_total.get()),
            (2, 100)
        );
        assert_eq!(a.writes.errors_total.get(), 1);
        assert_eq!(b.reads.bytes_total.get(), 7);
        let latency = family("mc_shard_transfer_latency_seconds");
        assert_eq!(latency.get_metric().len(), 4, "two shards by two ops");
    }
}
