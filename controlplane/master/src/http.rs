//! Admin HTTP server (`--metrics_port`): `/health` and `/role` today; metrics and the
//! query endpoints of Mooncake's HTTP service come next.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::service::MasterService;

/// What the handlers read.
#[derive(Clone)]
pub struct HttpState {
    /// The master.
    pub svc: Arc<MasterService>,
    /// Address clients reach the leader's RPC at.
    pub leader_address: String,
}

async fn health(State(s): State<HttpState>) -> Json<Value> {
    let (used, total) = s.svc.segments.usage();
    let st = &s.svc.objects.stats;
    let n = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    Json(json!({
        "status": "ok",
        "role": "leader",
        "ha_state": "standalone",
        "service_ready": true,
        "leader_address": s.leader_address,
        "view_version": 1,
        "segments": s.svc.segments.len(),
        "clients": s.svc.client_count(),
        "keys": s.svc.objects.len(),
        "allocated_bytes": used,
        "capacity_bytes": total,
        "successful_evictions_total": n(&st.successful_evictions_total),
        "evicted_keys_total": n(&st.evicted_keys_total),
        "evicted_bytes_total": n(&st.evicted_bytes_total),
        "preempted_put_starts_total": n(&st.preempted_put_starts_total),
        "released_put_start_bytes_total": n(&st.released_put_start_bytes_total),
        "shared_host_replicas_total": s
            .svc
            .segments
            .shared_host_replicas_total
            .load(std::sync::atomic::Ordering::Relaxed),
    }))
}

async fn role() -> &'static str {
    "leader\n"
}

/// The admin router.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/role", get(role))
        .with_state(state)
}
