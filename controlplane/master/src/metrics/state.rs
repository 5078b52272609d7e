//! Families read from the master's live state when `/metrics` is scraped: key, byte,
//! client and segment gauges, and the eviction and placement counters that the object
//! store and the segment table keep (and `/health` reports) as plain atomics.
//!
//! Reading at scrape time keeps one source of truth per number and costs the request path
//! nothing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus::core::{Collector, Desc};
use prometheus::proto::{Counter, Gauge, Metric, MetricFamily, MetricType};

use crate::service::MasterService;

/// How one family reads its value from the master.
type Read = fn(&MasterService) -> u64;

fn load(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// Name, type, help and reader of every family; the names are Mooncake's.
const FAMILIES: [(&str, MetricType, &str, Read); 22] = [
    (
        "master_key_count",
        MetricType::GAUGE,
        "Objects in the metadata (in-flight puts included).",
        |m| m.objects.len() as u64,
    ),
    (
        "master_allocated_bytes",
        MetricType::GAUGE,
        "Bytes allocated in mounted segments.",
        |m| m.segments.usage().0,
    ),
    (
        "master_total_capacity_bytes",
        MetricType::GAUGE,
        "Bytes of all mounted segments.",
        |m| m.segments.usage().1,
    ),
    (
        "master_active_clients",
        MetricType::GAUGE,
        "Store nodes that heartbeat.",
        |m| m.client_count() as u64,
    ),
    (
        "master_mounted_segments",
        MetricType::GAUGE,
        "Mounted segments.",
        |m| m.segments.len() as u64,
    ),
    (
        "master_successful_evictions_total",
        MetricType::COUNTER,
        "Eviction rounds that freed space.",
        |m| load(&m.objects.stats.successful_evictions_total),
    ),
    (
        "master_evicted_key_count",
        MetricType::COUNTER,
        "Objects evicted.",
        |m| load(&m.objects.stats.evicted_keys_total),
    ),
    (
        "master_evicted_size_bytes",
        MetricType::COUNTER,
        "Bytes freed by eviction.",
        |m| load(&m.objects.stats.evicted_bytes_total),
    ),
    (
        "master_preempted_put_starts_total",
        MetricType::COUNTER,
        "PutStarts preempted after the discard timeout.",
        |m| load(&m.objects.stats.preempted_put_starts_total),
    ),
    (
        "master_released_put_start_bytes_total",
        MetricType::COUNTER,
        "Bytes of abandoned puts and replaced values released later.",
        |m| load(&m.objects.stats.released_put_start_bytes_total),
    ),
    (
        "master_shared_host_replicas_total",
        MetricType::COUNTER,
        "Replicas that had to share a host with another replica of the object.",
        |m| load(&m.segments.shared_host_replicas_total),
    ),
    (
        "master_ssd_capacity_bytes",
        MetricType::GAUGE,
        "SSD quota of the mounted disk segments (--enable_ssd_offload nodes).",
        |m| m.segments.disk_capacity_bytes(),
    ),
    (
        "master_ssd_replica_slices",
        MetricType::GAUGE,
        "Slices of disk replicas (SSD copies) the metadata holds.",
        |m| load(&m.segments.disk_slices),
    ),
    (
        "master_offloaded_objects_total",
        MetricType::COUNTER,
        "Objects that gained an SSD copy (--enable_offload).",
        |m| load(&m.objects.stats.offloaded_objects_total),
    ),
    (
        "master_offload_rejected_total",
        MetricType::COUNTER,
        "SSD copies refused because their object changed or went meanwhile.",
        |m| load(&m.objects.stats.offload_rejected_total),
    ),
    (
        "master_evict_offloads_total",
        MetricType::COUNTER,
        "Objects eviction had copied to SSD before freeing their memory (--offload_on_evict).",
        |m| load(&m.objects.stats.evict_offloads_total),
    ),
    (
        "master_promoted_objects_total",
        MetricType::COUNTER,
        "SSD-only objects that gained a memory replica again (--promotion_on_hit).",
        |m| load(&m.objects.stats.promoted_objects_total),
    ),
    (
        "master_tasks_pending",
        MetricType::GAUGE,
        "Copy/move tasks waiting for their node (--max_total_pending_tasks).",
        |m| m.tasks.counts().pending as u64,
    ),
    (
        "master_tasks_processing",
        MetricType::GAUGE,
        "Copy/move tasks their node is running (--max_total_processing_tasks).",
        |m| m.tasks.counts().processing as u64,
    ),
    (
        "master_tasks_finished",
        MetricType::GAUGE,
        "Finished copy/move tasks remembered for queries (--max_total_finished_tasks).",
        |m| m.tasks.counts().finished as u64,
    ),
    (
        "master_put_credit_bytes",
        MetricType::GAUGE,
        "Bytes placed ahead of clients' puts and not used yet (put credit, --put_credit_ttl_sec).",
        |m| m.objects.credit_bytes(),
    ),
    (
        "master_put_credit_commits_total",
        MetricType::COUNTER,
        "Puts committed into credit (a write and one commit, no PutStart).",
        |m| load(&m.objects.stats.credit_commits_total),
    ),
];

/// A collector over [`FAMILIES`].
pub(super) struct StateCollector {
    current: super::CurrentService,
    descs: Vec<Desc>,
}

impl StateCollector {
    /// Reads the service `current` names at every scrape (zeros when it names none).
    pub(super) fn new(current: super::CurrentService) -> prometheus::Result<StateCollector> {
        let descs = FAMILIES
            .iter()
            .map(|(name, _, help, _)| {
                Desc::new(name.to_string(), help.to_string(), vec![], HashMap::new())
            })
            .collect::<prometheus::Result<_>>()?;
        Ok(StateCollector { current, descs })
    }
}

/// One unlabelled sample of `kind`.
pub(super) fn sample(kind: MetricType, value: f64) -> Metric {
    let mut m = Metric::default();
    match kind {
        MetricType::COUNTER => {
            let mut c = Counter::default();
            c.set_value(value);
            m.set_counter(c);
        }
        _ => {
            let mut g = Gauge::default();
            g.set_value(value);
            m.set_gauge(g);
        }
    }
    m
}

impl Collector for StateCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let svc = (self.current)();
        FAMILIES
            .iter()
            .zip(&self.descs)
            .map(|((_, kind, _, read), desc)| {
                let mut f = MetricFamily::default();
                f.set_name(desc.fq_name.clone());
                f.set_help(desc.help.clone());
                f.set_field_type(*kind);
                f.set_metric(vec![sample(*kind, svc.as_deref().map_or(0, read) as f64)]);
                f
            })
            .collect()
    }
}
