//! Results of a case, as a table row or a JSON object.

use hdrhistogram::Histogram;
use serde::Serialize;

/// One measured case.
#[derive(Debug, Serialize)]
pub struct CaseResult {
    /// `put` or `get`.
    pub op: &'static str,
    /// Value size in bytes.
    pub size: u64,
    /// Keys per call.
    pub batch: usize,
    /// Client threads.
    pub threads: usize,
    /// Operations (keys) completed.
    pub ops: u64,
    /// Operations per second.
    pub ops_per_s: f64,
    /// Payload gigabytes (1e9) per second.
    pub gbps: f64,
    /// Per-call latency percentiles, microseconds.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Failed operations.
    pub failed: u64,
    /// Every value read back was byte-identical and nothing failed.
    pub ok: bool,
}

impl CaseResult {
    /// Builds a result from counts, elapsed seconds and a latency histogram (µs).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        op: &'static str,
        size: u64,
        batch: usize,
        threads: usize,
        ops: u64,
        failed: u64,
        secs: f64,
        hist: &Histogram<u64>,
    ) -> CaseResult {
        let ops_per_s = ops as f64 / secs;
        CaseResult {
            op,
            size,
            batch,
            threads,
            ops,
            ops_per_s,
            gbps: ops_per_s * size as f64 / 1e9,
            p50_us: hist.value_at_quantile(0.50),
            p99_us: hist.value_at_quantile(0.99),
            p999_us: hist.value_at_quantile(0.999),
            failed,
            ok: failed == 0,
        }
    }
}

fn human(size: u64) -> String {
    match size {
        s if s >= 1 << 20 && s % (1 << 20) == 0 => format!("{}MiB", s >> 20),
        s if s >= 1 << 10 && s % (1 << 10) == 0 => format!("{}KiB", s >> 10),
        s => format!("{s}B"),
    }
}

/// Prints the table header.
pub fn print_header() {
    println!(
        "{:<4} {:>8} {:>5} {:>7} {:>8} {:>11} {:>8} {:>9} {:>9} {:>9} {:>4}",
        "op",
        "size",
        "batch",
        "threads",
        "ops",
        "ops/s",
        "GB/s",
        "p50(us)",
        "p99(us)",
        "p999(us)",
        "ok"
    );
}

/// Prints one case.
pub fn print(c: &CaseResult, json: bool) {
    if json {
        println!("{}", serde_json::to_string(c).expect("serializable"));
        return;
    }
    println!(
        "{:<4} {:>8} {:>5} {:>7} {:>8} {:>11.0} {:>8.3} {:>9} {:>9} {:>9} {:>4}",
        c.op,
        human(c.size),
        c.batch,
        c.threads,
        c.ops,
        c.ops_per_s,
        c.gbps,
        c.p50_us,
        c.p99_us,
        c.p999_us,
        if c.ok { "yes" } else { "NO" }
    );
}
