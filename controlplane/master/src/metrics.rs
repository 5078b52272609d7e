//! Master metrics in the Prometheus text format, with Mooncake's names where they exist.
//!
//! Every RPC counts requests, failures (a request refused as a whole or with at least one
//! key refused) and keys, and records its latency in a histogram. Gauges (keys, bytes,
//! clients, segments) and eviction counters are read from the live state at scrape time.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mc_schema::msg::{Request, Response, ResponseBody};

/// RPC names, in metric-name form; index = op id.
pub const OPS: [&str; 16] = [
    "mount_segment",
    "unmount_segment",
    "ping",
    "put_start",
    "put_end",
    "put_revoke",
    "get_replica_list",
    "exist_key",
    "get_size",
    "remove",
    "remove_by_regex",
    "remove_all",
    "drain_segments",
    "upsert_start",
    "upsert_end",
    "upsert_revoke",
];

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS_S: [f64; 12] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.0,
];

/// Counters of one RPC.
#[derive(Default)]
struct OpCounters {
    requests: AtomicU64,
    failures: AtomicU64,
    keys: AtomicU64,
    latency_sum_us: AtomicU64,
    /// Cumulative counts would race; these are per-bucket and summed when rendered.
    buckets: [AtomicU64; BUCKETS_S.len() + 1],
}

/// RPC counters of the master.
#[derive(Default)]
pub struct RpcMetrics {
    ops: [OpCounters; OPS.len()],
}

/// Index of `req` in [`OPS`] and the number of keys it carries.
pub fn classify(req: &Request) -> (usize, u64) {
    let name = req.op_name();
    let op = OPS
        .iter()
        .position(|o| *o == name)
        .expect("every request has a metric name");
    let keys = match req {
        Request::PutStart { items, .. } | Request::UpsertStart { items, .. } => items.len(),
        Request::PutEnd { items } | Request::UpsertEnd { items } => items.len(),
        Request::PutRevoke { keys }
        | Request::GetReplicaList { keys }
        | Request::ExistKey { keys }
        | Request::GetSize { keys }
        | Request::UpsertRevoke { keys }
        | Request::Remove { keys, .. } => keys.len(),
        _ => 1,
    };
    (op, keys as u64)
}

/// Whether an answer refused the request or any of its keys.
pub fn failed(resp: &Response) -> bool {
    resp.status != 0
        || match &resp.body {
            ResponseBody::Statuses(c) => c.iter().any(|&c| c != 0),
            ResponseBody::PutStart(r) => r.iter().any(|r| r.status != 0),
            ResponseBody::ReplicaLists(r) => r.iter().any(|r| r.status != 0),
            _ => false,
        }
}

impl RpcMetrics {
    /// Records one answered request.
    pub fn record(&self, op: usize, keys: u64, failed: bool, took: Duration) {
        let c = &self.ops[op];
        c.requests.fetch_add(1, Ordering::Relaxed);
        c.keys.fetch_add(keys, Ordering::Relaxed);
        if failed {
            c.failures.fetch_add(1, Ordering::Relaxed);
        }
        let s = took.as_secs_f64();
        c.latency_sum_us
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        let b = BUCKETS_S
            .iter()
            .position(|&ub| s <= ub)
            .unwrap_or(BUCKETS_S.len());
        c.buckets[b].fetch_add(1, Ordering::Relaxed);
    }

    /// Requests of one op so far.
    pub fn requests(&self, op: &str) -> u64 {
        OPS.iter()
            .position(|o| *o == op)
            .map_or(0, |i| self.ops[i].requests.load(Ordering::Relaxed))
    }

    /// Appends the RPC families to `out`.
    pub fn render(&self, out: &mut String) {
        for (i, name) in OPS.iter().enumerate() {
            let c = &self.ops[i];
            let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
            family(
                out,
                &format!("master_{name}_requests_total"),
                "counter",
                &format!("{name} requests answered"),
                get(&c.requests),
            );
            family(
                out,
                &format!("master_{name}_failures_total"),
                "counter",
                &format!("{name} requests refused as a whole or for at least one key"),
                get(&c.failures),
            );
            family(
                out,
                &format!("master_{name}_keys_total"),
                "counter",
                &format!("keys carried by {name} requests"),
                get(&c.keys),
            );
        }
        let _ = writeln!(
            out,
            "# HELP master_rpc_latency_seconds Time to answer one RPC, by op."
        );
        let _ = writeln!(out, "# TYPE master_rpc_latency_seconds histogram");
        for (i, name) in OPS.iter().enumerate() {
            let c = &self.ops[i];
            let mut cum = 0;
            for (b, ub) in BUCKETS_S.iter().enumerate() {
                cum += c.buckets[b].load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "master_rpc_latency_seconds_bucket{{op=\"{name}\",le=\"{ub}\"}} {cum}"
                );
            }
            cum += c.buckets[BUCKETS_S.len()].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "master_rpc_latency_seconds_bucket{{op=\"{name}\",le=\"+Inf\"}} {cum}"
            );
            let sum = c.latency_sum_us.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(out, "master_rpc_latency_seconds_sum{{op=\"{name}\"}} {sum}");
            let _ = writeln!(
                out,
                "master_rpc_latency_seconds_count{{op=\"{name}\"}} {cum}"
            );
        }
    }
}

/// Appends one single-sample family.
pub fn family(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    let _ = writeln!(out, "{name} {value}");
}
