//! Per-RPC counters and latency histogram of the master.
//!
//! Every RPC counts requests, failures (a request refused as a whole or with at least one
//! key refused) and keys, and records its latency. The counters of every op are made once,
//! at start-up, and kept in an array indexed by [`RpcOp`]: recording is a few relaxed
//! atomic adds, with no label lookup, lock or allocation.

use std::time::Duration;

use mc_schema::msg::{Request, Response, ResponseBody};
use prometheus::{Histogram, HistogramOpts, HistogramVec, IntCounter, Registry};

/// Defines [`RpcOp`] and its metric names from one list, so that every op has a name and a
/// slot in [`RpcOp::ALL`].
macro_rules! rpc_ops {
    ($($variant:ident => $name:literal,)+) => {
        /// An RPC of the master, as its metrics name it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum RpcOp {
            $(#[doc = concat!("`", $name, "`.")] $variant,)+
        }

        impl RpcOp {
            /// Every op in declaration order: `op as usize` is its position.
            pub const ALL: [RpcOp; [$($name),+].len()] = [$(RpcOp::$variant),+];

            /// The op in metric-name form (`put_start`, ...).
            pub fn name(self) -> &'static str {
                match self {
                    $(RpcOp::$variant => $name,)+
                }
            }
        }
    };
}

rpc_ops! {
    MountSegment => "mount_segment",
    UnmountSegment => "unmount_segment",
    Ping => "ping",
    PutStart => "put_start",
    PutEnd => "put_end",
    PutRevoke => "put_revoke",
    GetReplicaList => "get_replica_list",
    ExistKey => "exist_key",
    GetSize => "get_size",
    Remove => "remove",
    RemoveByRegex => "remove_by_regex",
    RemoveAll => "remove_all",
    DrainSegments => "drain_segments",
    UpsertStart => "upsert_start",
    UpsertEnd => "upsert_end",
    UpsertRevoke => "upsert_revoke",
    Sync => "sync",
    ReportInventory => "report_inventory",
    InventoryDone => "inventory_done",
    ReportHits => "report_hits",
    ReportOffloaded => "report_offloaded",
    ReportPromoted => "report_promoted",
    ReportDropped => "report_dropped",
    CreateCopyTask => "create_copy_task",
    CreateMoveTask => "create_move_task",
    QueryTask => "query_task",
    FetchTasks => "fetch_tasks",
    TaskStart => "task_start",
    TaskEnd => "task_end",
    ListTasks => "list_tasks",
    BatchReplicaClear => "batch_replica_clear",
    PutCredit => "put_credit",
}

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS_S: [f64; 12] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.0,
];

/// The op of `req` and the number of keys it carries. The match names every request on
/// purpose (no `_` arm): a new RPC does not compile until it has its metrics.
pub fn classify(req: &Request) -> (RpcOp, u64) {
    let (op, keys) = match req {
        Request::MountSegment { .. } => (RpcOp::MountSegment, 1),
        Request::UnmountSegment { .. } => (RpcOp::UnmountSegment, 1),
        Request::Ping { .. } => (RpcOp::Ping, 1),
        Request::PutStart { items, .. } => (RpcOp::PutStart, items.len()),
        Request::PutEnd { items } => (RpcOp::PutEnd, items.len()),
        Request::PutRevoke { keys } => (RpcOp::PutRevoke, keys.len()),
        Request::GetReplicaList { keys } => (RpcOp::GetReplicaList, keys.len()),
        Request::ExistKey { keys } => (RpcOp::ExistKey, keys.len()),
        Request::GetSize { keys } => (RpcOp::GetSize, keys.len()),
        Request::Remove { keys, .. } => (RpcOp::Remove, keys.len()),
        Request::RemoveByRegex { .. } => (RpcOp::RemoveByRegex, 1),
        Request::RemoveAll { .. } => (RpcOp::RemoveAll, 1),
        Request::DrainSegments { .. } => (RpcOp::DrainSegments, 1),
        Request::UpsertStart { items, .. } => (RpcOp::UpsertStart, items.len()),
        Request::UpsertEnd { items } => (RpcOp::UpsertEnd, items.len()),
        Request::UpsertRevoke { keys } => (RpcOp::UpsertRevoke, keys.len()),
        Request::Sync { .. } => (RpcOp::Sync, 1),
        Request::ReportInventory { entries, .. } => (RpcOp::ReportInventory, entries.len()),
        Request::InventoryDone { .. } => (RpcOp::InventoryDone, 1),
        Request::ReportHits { keys, .. } => (RpcOp::ReportHits, keys.len()),
        Request::ReportOffloaded { entries, .. } => (RpcOp::ReportOffloaded, entries.len()),
        Request::ReportPromoted { entries, .. } => (RpcOp::ReportPromoted, entries.len()),
        Request::ReportDropped { entries, .. } => (RpcOp::ReportDropped, entries.len()),
        Request::CreateCopyTask { .. } => (RpcOp::CreateCopyTask, 1),
        Request::CreateMoveTask { .. } => (RpcOp::CreateMoveTask, 1),
        Request::QueryTask { .. } => (RpcOp::QueryTask, 1),
        Request::FetchTasks { .. } => (RpcOp::FetchTasks, 1),
        Request::TaskStart { .. } => (RpcOp::TaskStart, 1),
        Request::TaskEnd { .. } => (RpcOp::TaskEnd, 1),
        Request::ListTasks { .. } => (RpcOp::ListTasks, 1),
        Request::BatchReplicaClear { keys, .. } => (RpcOp::BatchReplicaClear, keys.len()),
        // Its keys are the puts it commits (credit asked for or handed back is no key).
        Request::PutCredit { commits, .. } => (RpcOp::PutCredit, commits.len()),
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

/// The metrics of one op.
struct OpMetrics {
    requests: IntCounter,
    failures: IntCounter,
    keys: IntCounter,
    latency: Histogram,
}

/// RPC counters of the master.
pub struct RpcMetrics {
    ops: [OpMetrics; RpcOp::ALL.len()],
    /// The family the `latency` children belong to, kept for registration.
    latency: HistogramVec,
}

/// A counter with a name and help fixed in this file.
fn counter(name: String, help: String) -> IntCounter {
    IntCounter::new(name, help).expect("metric names in this file are valid")
}

impl Default for RpcMetrics {
    fn default() -> Self {
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "master_rpc_latency_seconds",
                "Time to answer one RPC, by op.",
            )
            .buckets(BUCKETS_S.to_vec()),
            &["op"],
        )
        .expect("the latency family in this file is valid");
        let ops = RpcOp::ALL.map(|op| {
            let name = op.name();
            OpMetrics {
                requests: counter(
                    format!("master_{name}_requests_total"),
                    format!("{name} requests answered"),
                ),
                failures: counter(
                    format!("master_{name}_failures_total"),
                    format!("{name} requests refused as a whole or for at least one key"),
                ),
                keys: counter(
                    format!("master_{name}_keys_total"),
                    format!("keys carried by {name} requests"),
                ),
                latency: latency.with_label_values(&[name]),
            }
        });
        RpcMetrics { ops, latency }
    }
}

impl RpcMetrics {
    /// Records one answered request.
    pub fn record(&self, op: RpcOp, keys: u64, failed: bool, took: Duration) {
        let m = &self.ops[op as usize];
        m.requests.inc();
        m.keys.inc_by(keys);
        if failed {
            m.failures.inc();
        }
        m.latency.observe(took.as_secs_f64());
    }

    /// Requests of one op so far.
    pub fn requests(&self, op: RpcOp) -> u64 {
        self.ops[op as usize].requests.get()
    }

    /// Adds every family to `registry`.
    pub fn register(&self, registry: &Registry) -> prometheus::Result<()> {
        for m in &self.ops {
            for c in [&m.requests, &m.failures, &m.keys] {
                registry.register(Box::new(c.clone()))?;
            }
        }
        registry.register(Box::new(self.latency.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_sit_at_their_index_and_have_distinct_names() {
        for (i, op) in RpcOp::ALL.iter().enumerate() {
            assert_eq!(*op as usize, i);
        }
        let mut names: Vec<_> = RpcOp::ALL.iter().map(|op| op.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), RpcOp::ALL.len());
    }

    #[test]
    fn classify_counts_the_keys_a_request_carries() {
        let keys = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        let (op, n) = classify(&Request::GetReplicaList { keys: keys.clone() });
        assert_eq!((op, n), (RpcOp::GetReplicaList, 3));
        let (op, n) = classify(&Request::Remove { keys, force: true });
        assert_eq!((op, n), (RpcOp::Remove, 3));
        assert_eq!(
            classify(&Request::Ping { client_id: 1 }),
            (RpcOp::Ping, 1),
            "a request without keys counts one"
        );
    }

    #[test]
    fn record_moves_requests_keys_failures_and_latency() {
        let m = RpcMetrics::default();
        m.record(RpcOp::PutStart, 4, false, Duration::from_micros(70));
        m.record(RpcOp::PutStart, 2, true, Duration::from_secs(3));
        let op = &m.ops[RpcOp::PutStart as usize];
        assert_eq!(m.requests(RpcOp::PutStart), 2);
        assert_eq!((op.keys.get(), op.failures.get()), (6, 1));
        assert_eq!(op.latency.get_sample_count(), 2);
        assert_eq!(m.requests(RpcOp::PutEnd), 0);
    }
}
