//! Per-shard data-plane counters. Each shard writes only its own counters (relaxed atomics,
//! no sharing on the hot path); the node's REST server reads them for `/metrics`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the transfer latency histogram, in seconds.
pub const LATENCY_BUCKETS_S: [f64; 10] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.01, 0.05, 0.25, 1.0,
];

/// One transfer direction.
#[derive(Debug, Default)]
pub struct OpStats {
    /// Transfers answered.
    pub ops_total: AtomicU64,
    /// Payload bytes moved.
    pub bytes_total: AtomicU64,
    /// Transfers refused or failed.
    pub errors_total: AtomicU64,
    latency_sum_us: AtomicU64,
    buckets: [AtomicU64; LATENCY_BUCKETS_S.len() + 1],
}

impl OpStats {
    /// Records one transfer.
    pub fn record(&self, bytes: u64, ok: bool, took: Duration) {
        self.ops_total.fetch_add(1, Ordering::Relaxed);
        if ok {
            self.bytes_total.fetch_add(bytes, Ordering::Relaxed);
        } else {
            self.errors_total.fetch_add(1, Ordering::Relaxed);
        }
        self.latency_sum_us
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        let s = took.as_secs_f64();
        let b = LATENCY_BUCKETS_S
            .iter()
            .position(|&ub| s <= ub)
            .unwrap_or(LATENCY_BUCKETS_S.len());
        self.buckets[b].fetch_add(1, Ordering::Relaxed);
    }
}

/// Counters of one shard.
#[derive(Debug, Default)]
pub struct ShardStats {
    /// Shard index.
    pub shard: u32,
    /// Data endpoint.
    pub endpoint: String,
    /// Segment bytes the shard serves.
    pub capacity_bytes: AtomicU64,
    /// WRITEs (bytes in).
    pub writes: OpStats,
    /// READs (bytes out).
    pub reads: OpStats,
    /// WRITE payloads refused because they did not match the writer's CRC32C.
    pub crc_failures_total: AtomicU64,
    /// Connections accepted.
    pub connections_total: AtomicU64,
    /// Transfers refused because an overlapping write was in flight (`OBJECT_REPLICA_BUSY`).
    pub range_busy_total: AtomicU64,
}

fn family_header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Renders every shard's counters in the Prometheus text format.
pub fn render(shards: &[std::sync::Arc<ShardStats>], out: &mut String) {
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let label = |s: &ShardStats| format!("shard=\"{}\",endpoint=\"{}\"", s.shard, s.endpoint);
    type Field = fn(&ShardStats) -> &AtomicU64;
    let simple: [(&str, &str, &str, Field); 10] = [
        (
            "mc_shard_segment_capacity_bytes",
            "gauge",
            "Segment bytes the shard serves.",
            |s| &s.capacity_bytes,
        ),
        (
            "mc_shard_connections_total",
            "counter",
            "Data connections accepted.",
            |s| &s.connections_total,
        ),
        (
            "mc_shard_write_ops_total",
            "counter",
            "WRITE transfers answered.",
            |s| &s.writes.ops_total,
        ),
        (
            "mc_shard_bytes_in_total",
            "counter",
            "Payload bytes received into segment memory.",
            |s| &s.writes.bytes_total,
        ),
        (
            "mc_shard_write_errors_total",
            "counter",
            "WRITE transfers refused or failed.",
            |s| &s.writes.errors_total,
        ),
        (
            "mc_shard_read_ops_total",
            "counter",
            "READ transfers answered.",
            |s| &s.reads.ops_total,
        ),
        (
            "mc_shard_bytes_out_total",
            "counter",
            "Payload bytes sent from segment memory.",
            |s| &s.reads.bytes_total,
        ),
        (
            "mc_shard_read_errors_total",
            "counter",
            "READ transfers refused or failed.",
            |s| &s.reads.errors_total,
        ),
        (
            "mc_shard_crc_failures_total",
            "counter",
            "WRITE payloads refused for a CRC32C mismatch.",
            |s| &s.crc_failures_total,
        ),
        (
            "mc_shard_range_busy_total",
            "counter",
            "Transfers refused because an overlapping write was in flight.",
            |s| &s.range_busy_total,
        ),
    ];
    for (name, kind, help, field) in &simple {
        family_header(out, name, kind, help);
        for s in shards {
            let _ = writeln!(out, "{name}{{{}}} {}", label(s), get(field(s)));
        }
    }
    family_header(
        out,
        "mc_shard_transfer_latency_seconds",
        "histogram",
        "Time from a transfer header to its answer, by shard and op.",
    );
    for s in shards {
        for (op, st) in [("write", &s.writes), ("read", &s.reads)] {
            let l = format!("{},op=\"{op}\"", label(s));
            let mut cum = 0;
            for (b, ub) in LATENCY_BUCKETS_S.iter().enumerate() {
                cum += get(&st.buckets[b]);
                let _ = writeln!(
                    out,
                    "mc_shard_transfer_latency_seconds_bucket{{{l},le=\"{ub}\"}} {cum}"
                );
            }
            cum += get(&st.buckets[LATENCY_BUCKETS_S.len()]);
            let _ = writeln!(
                out,
                "mc_shard_transfer_latency_seconds_bucket{{{l},le=\"+Inf\"}} {cum}"
            );
            let sum = get(&st.latency_sum_us) as f64 / 1e6;
            let _ = writeln!(out, "mc_shard_transfer_latency_seconds_sum{{{l}}} {sum}");
            let _ = writeln!(out, "mc_shard_transfer_latency_seconds_count{{{l}}} {cum}");
        }
    }
}
