//! The snapshot writer's families, read from its counters when `/metrics` is scraped.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use prometheus::core::{Collector, Desc};
use prometheus::proto::{MetricFamily, MetricType};

use super::state::sample;
use crate::snapshot::SnapshotStats;

/// How one family reads its value.
type Read = fn(&SnapshotStats) -> f64;

/// Name, type, help and reader of every family.
const FAMILIES: [(&str, MetricType, &str, Read); 6] = [
    (
        "master_snapshots_total",
        MetricType::COUNTER,
        "Snapshots written in full (latest moved to them).",
        |s| s.snapshots_total.load(Ordering::Relaxed) as f64,
    ),
    (
        "master_snapshot_failures_total",
        MetricType::COUNTER,
        "Snapshot attempts that failed or were abandoned.",
        |s| s.failures_total.load(Ordering::Relaxed) as f64,
    ),
    (
        "master_last_snapshot_timestamp_seconds",
        MetricType::GAUGE,
        "Creation time of the last snapshot (Unix seconds, 0 = none).",
        |s| s.last_unix_ms.load(Ordering::Relaxed) as f64 / 1000.0,
    ),
    (
        "master_last_snapshot_duration_seconds",
        MetricType::GAUGE,
        "How long the last snapshot took, from the walk to latest.",
        |s| s.last_duration_ms.load(Ordering::Relaxed) as f64 / 1000.0,
    ),
    (
        "master_last_snapshot_size_bytes",
        MetricType::GAUGE,
        "Size of the last snapshot's data file.",
        |s| s.last_bytes.load(Ordering::Relaxed) as f64,
    ),
    (
        "master_last_snapshot_objects",
        MetricType::GAUGE,
        "Objects in the last snapshot.",
        |s| s.last_objects.load(Ordering::Relaxed) as f64,
    ),
];

/// A collector over [`FAMILIES`].
pub(super) struct SnapshotCollector {
    stats: Arc<SnapshotStats>,
    descs: Vec<Desc>,
}

impl SnapshotCollector {
    /// Reads `stats` at every scrape.
    pub(super) fn new(stats: Arc<SnapshotStats>) -> SnapshotCollector {
        let descs = FAMILIES
            .iter()
            .map(|(name, _, help, _)| {
                Desc::new(name.to_string(), help.to_string(), vec![], HashMap::new())
                    .expect("the snapshot family names are valid")
            })
            .collect();
        SnapshotCollector { stats, descs }
    }
}

impl Collector for SnapshotCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        FAMILIES
            .iter()
            .zip(&self.descs)
            .map(|((_, kind, _, read), desc)| {
                let mut f = MetricFamily::default();
                f.set_name(desc.fq_name.clone());
                f.set_help(desc.help.clone());
                f.set_field_type(*kind);
                f.set_metric(vec![sample(*kind, read(&self.stats))]);
                f
            })
            .collect()
    }
}
