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
