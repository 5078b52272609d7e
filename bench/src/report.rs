//! Results of a case, as a table row or a JSON object.

use serde::Serialize;

use crate::run::PhaseResult;

/// One case: an op at one size and batch, over several interleaved repetitions.
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
    /// Keys per repetition.
    pub ops: u64,
    /// Median keys per second over the repetitions.
    pub ops_per_s: f64,
    /// Payload gigabytes (1e9) per second at the median.
    pub gbps: f64,
    /// Per-call latency percentiles over all repetitions, microseconds.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Median same-run ceiling, round trips (keys) per second; null when not measured.
    pub ceiling: Option<f64>,
    /// ops_per_s / ceiling.
    pub ratio: Option<f64>,
    /// (max - min) / median of the repetitions' ops/s.
    pub spread: f64,
    /// Every value read back was byte-identical and no operation failed; misses do not
    /// count against it.
    pub ok: bool,
    /// Failed keys over all repetitions.
    pub failed: u64,
    /// Keys a get did not find over all repetitions (evicted, or never written).
    pub misses: u64,
    /// Gets only: the share of keys read through the client's location cache rather than
    /// looked up at the master (0 with the cache off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_hit_rate: Option<f64>,
    /// Figures of a scenario that belong to this row (e.g. the master's memory per key on
    /// the `get_meta` row), as extra JSON fields.
    #[serde(flatten, skip_serializing_if = "serde_json::Map::is_empty")]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// Median of a non-empty list.
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

impl CaseResult {
    /// Folds repetitions (and their ceilings) into one result.
    pub fn from_reps(
        op: &'static str,
        size: u64,
        batch: usize,
        threads: usize,
        reps: &[PhaseResult],
        ceilings: &[f64],
    ) -> CaseResult {
        let rates: Vec<f64> = reps.iter().map(PhaseResult::ops_per_s).collect();
        let med = median(&rates);
        let max = rates.iter().copied().fold(f64::MIN, f64::max);
        let min = rates.iter().copied().fold(f64::MAX, f64::min);
        let mut hist = reps[0].hist.clone();
        for r in &reps[1..] {
            hist.add(&r.hist).expect("same bounds");
        }
        let ceiling = (!ceilings.is_empty()).then(|| median(ceilings));
        let failed = reps.iter().map(|r| r.failed).sum();
        CaseResult {
            op,
            size,
            batch,
            threads,
            ops: reps.iter().map(|r| r.ops).max().unwrap_or(0),
            ops_per_s: med,
            gbps: med * size as f64 / 1e9,
            p50_us: hist.value_at_quantile(0.50),
            p99_us: hist.value_at_quantile(0.99),
            p999_us: hist.value_at_quantile(0.999),
            ceiling,
            ratio: ceiling.map(|c| med / c),
            spread: if med > 0.0 { (max - min) / med } else { 0.0 },
            ok: failed == 0 && reps.iter().all(|r| r.ops > 0),
            failed,
            misses: reps.iter().map(|r| r.misses).sum(),
            cache_hit_rate: matches!(op, "get" | "get_owned" | "get_cold" | "get_4proc").then(
                || {
                    let (hits, misses) = reps
                        .iter()
                        .fold((0, 0), |(h, m), r| (h + r.cache.0, m + r.cache.1));
                    hits as f64 / ((hits + misses) as f64).max(1.0)
                },
            ),
            extra: serde_json::Map::new(),
        }
    }
}

/// A size as `4KiB`, `16MiB` or `100B`.
pub fn human(size: u64) -> String {
    match size {
        s if s >= 1 << 20 && s % (1 << 20) == 0 => format!("{}MiB", s >> 20),
        s if s >= 1 << 10 && s % (1 << 10) == 0 => format!("{}KiB", s >> 10),
        s => format!("{s}B"),
    }
}

/// Prints the table header.
pub fn print_header() {
    println!(
        "{:<9} {:>7} {:>5} {:>3} {:>7} {:>9} {:>7} {:>7} {:>7} {:>8} {:>9} {:>6} {:>6} {:>7} {:>3}",
        "op",
        "size",
        "batch",
        "thr",
        "keys",
        "ops/s",
        "GB/s",
        "p50us",
        "p99us",
        "p999us",
        "ceiling",
        "ratio",
        "spread",
        "misses",
        "ok"
    );
}

/// Prints one case.
pub fn print(c: &CaseResult, json: bool) {
    if json {
        println!("{}", serde_json::to_string(c).expect("serializable"));
        return;
    }
    let opt = |v: Option<f64>, prec: usize| v.map_or("-".to_string(), |x| format!("{x:.prec$}"));
    println!(
        "{:<9} {:>7} {:>5} {:>3} {:>7} {:>9.0} {:>7.3} {:>7} {:>7} {:>8} {:>9} {:>6} {:>6.2} {:>7} {:>3}",
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
        opt(c.ceiling, 0),
        opt(c.ratio, 2),
        c.spread,
        c.misses,
        if c.ok { "yes" } else { "NO" }
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
