//! Master metrics: one Prometheus registry, served as text on `/metrics`, with Mooncake's
//! names where they exist.
//!
//! - [`rpc`]: per-RPC requests, failures, keys and latency, recorded on the request path.
//! - [`state`]: gauges and counters read from the live metadata and segment table at
//!   scrape time.

pub mod rpc;
mod state;

use std::sync::Arc;

use prometheus::{Registry, TextEncoder};

pub use rpc::{RpcMetrics, RpcOp, classify, failed};

use crate::service::MasterService;

/// The master's registry: the RPC families of a [`MasterService`] and its live state.
#[derive(Clone)]
pub struct MasterMetrics {
    registry: Registry,
}

impl MasterMetrics {
    /// A registry over `svc`. It holds `svc` (the service does not hold the registry, so
    /// nothing cycles).
    pub fn new(svc: Arc<MasterService>) -> MasterMetrics {
        let registry = Registry::new();
        svc.rpc_metrics
            .register(&registry)
            .expect("the RPC families are unique");
        let state = state::StateCollector::new(svc).expect("the state families are valid");
        registry
            .register(Box::new(state))
            .expect("the state families do not clash with the RPC families");
        MasterMetrics { registry }
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
        let text = MasterMetrics::new(svc).encode();
        for line in [
            "# TYPE master_key_count gauge",
            "# TYPE master_evicted_key_count counter",
            "# TYPE master_ping_requests_total counter",
            "# TYPE master_rpc_latency_seconds histogram",
            "master_rpc_latency_seconds_bucket{op=\"upsert_revoke\",le=\"2\"} 0",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }
}
