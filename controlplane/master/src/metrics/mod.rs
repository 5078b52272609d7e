//! Master metrics: one Prometheus registry, served as text on `/metrics`, with Mooncake's
//! names where they exist.
//!
//! - [`rpc`]: per-RPC requests, failures, keys and latency, recorded on the request path.
//! - [`state`]: gauges and counters read from the live metadata and segment table at
//!   scrape time.
//! - [`snapshot`]: the snapshot writer's counters, read at scrape time.
//! - [`secret`]: the write secret's rotations and failed reloads, read at scrape time.

pub mod rpc;
mod secret;
mod snapshot;
mod state;

use std::sync::Arc;

use prometheus::{Registry, TextEncoder};

pub use rpc::{RpcMetrics, RpcOp, classify, failed};

use crate::service::MasterService;

/// The service whose state the families read at scrape time: the current term's, if this
/// master serves one (a standby reports zeros).
pub type CurrentService = Arc<dyn Fn() -> Option<Arc<MasterService>> + Send + Sync>;

/// The master's registry: the process's RPC families and the live state of the current term.
#[derive(Clone)]
pub struct MasterMetrics {
    registry: Registry,
}

impl MasterMetrics {
    /// A registry over one service that never changes (no HA terms).
    pub fn new(svc: Arc<MasterService>) -> MasterMetrics {
        let rpc = svc.rpc_metrics.clone();
        Self::with_source(&rpc, Arc::new(move || Some(svc.clone())))
    }

    /// A registry over `rpc` and whatever service `current` names at each scrape. It holds
    /// `current` (no service holds the registry, so nothing cycles).
    pub fn with_source(rpc: &RpcMetrics, current: CurrentService) -> MasterMetrics {
        let registry = Registry::new();
        rpc.register(&registry)
            .expect("the RPC families are unique");
        let state = state::StateCollector::new(current).expect("the state families are valid");
        registry
            .register(Box::new(state))
            .expect("the state families do not clash with the RPC families");
        MasterMetrics { registry }
    }

    /// Adds the snapshot writer's families, read from `stats` at each scrape.
    pub fn with_snapshots(self, stats: Arc<crate::snapshot::SnapshotStats>) -> MasterMetrics {
        self.registry
            .register(Box::new(snapshot::SnapshotCollector::new(stats)))
            .expect("the snapshot families are unique");
        self
    }

    /// Adds the write secret's families, read from `secrets` at each scrape.
    pub fn with_write_secrets(self, secrets: Arc<crate::secret::WriteSecrets>) -> MasterMetrics {
        self.registry
            .register(Box::new(secret::SecretCollector::new(secrets)))
            .expect("the write secret families are unique");
        self
    }

    /// Every family as gathered for a scrape (what [`Self::encode`] prints).
    pub fn families(&self) -> Vec<prometheus::proto::MetricFamily> {
        self.registry.gather()
    }

    /// Every family in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(32 * 1024);
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
    use crate::clock::SystemClock;
    use crate::service::ServiceConfig;

    #[test]
    fn one_registry_holds_rpc_and_state_families() {
        let svc = MasterService::new(ServiceConfig::default(), Arc::new(SystemClock::default()));
        let stats = Arc::new(crate::snapshot::SnapshotStats::default());
        stats
            .snapshots_total
            .store(3, std::sync::atomic::Ordering::Relaxed);
        stats
            .last_duration_ms
            .store(1500, std::sync::atomic::Ordering::Relaxed);
        let secrets = Arc::new(crate::secret::WriteSecrets::new(
            mc_schema::token::new_secret().into(),
            0,
        ));
        secrets.note_reload_error();
        let text = MasterMetrics::new(svc)
            .with_snapshots(stats)
            .with_write_secrets(secrets)
            .encode();
        for line in [
            "# TYPE master_key_count gauge",
            "# TYPE master_evicted_key_count counter",
            "# TYPE master_ping_requests_total counter",
            "# TYPE master_rpc_latency_seconds histogram",
            "master_rpc_latency_seconds_bucket{op=\"upsert_revoke\",le=\"2\"} 0",
            "master_snapshots_total 3",
            "master_last_snapshot_duration_seconds 1.5",
            "# TYPE master_snapshot_failures_total counter",
            "# TYPE master_write_secret_rotations_total counter",
            "master_write_secret_rotations_total 0",
            "master_write_secret_reload_errors_total 1",
            "master_write_secret_rotation_pending 0",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }
}
