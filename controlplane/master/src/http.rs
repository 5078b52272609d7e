//! Admin HTTP server (`--metrics_port`): the router, and the status pages `/health`, `/role`,
//! `/metrics` (see [`crate::metrics`]) and `/metrics/summary`. The inspection endpoints of
//! Mooncake's HTTP service live in [`query`]; both read [`HttpState`].

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::http_state::HttpState;
use crate::metrics::RpcOp;
use crate::query;
use crate::service::MasterService;

async fn health(State(s): State<HttpState>) -> Json<Value> {
    let (used, total) = s.svc.segments.usage();
    let st = &s.svc.objects.stats;
    let rs = &s.svc.recovery.stats;
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
        "term": s.svc.segments.term(),
        "recovery_pending_nodes": s.svc.recovery.pending_nodes(),
        "recovery_adopted_objects_total": n(&rs.adopted_objects_total),
        "recovery_added_replicas_total": n(&rs.added_replicas_total),
        "recovery_rejected_entries_total": n(&rs.rejected_entries_total),
        "recovery_adoption_ms_total": n(&rs.adoption_ms_total),
        "notices_queued": s.svc.segments.notices.queued(),
        "unconfirmed_removes_total": n(&s.svc.segments.notices.unconfirmed_removes_total),
    }))
}

async fn role() -> &'static str {
    "leader\n"
}

const TEXT_FORMAT: &str = "text/plain; version=0.0.4";

async fn metrics(State(s): State<HttpState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, TEXT_FORMAT)], s.metrics.encode())
}

async fn summary(State(s): State<HttpState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, TEXT_FORMAT)], summary_line(&s.svc))
}

/// The one-line summary of `/metrics/summary` and of the periodic metric report.
pub fn summary_line(svc: &MasterService) -> String {
    let (used, total) = svc.segments.usage();
    let pct = if total > 0 {
        used as f64 * 100.0 / total as f64
    } else {
        0.0
    };
    let m = &svc.rpc_metrics;
    let evicted = svc
        .objects
        .stats
        .evicted_keys_total
        .load(std::sync::atomic::Ordering::Relaxed);
    let line = format!(
        "capacity {used}/{total} bytes ({pct:.1}%), keys {}, clients {}, segments {}, \
         requests: put_start {} put_end {} get_replica_list {} exist_key {} remove {}, evicted keys {evicted}\n",
        svc.objects.len(),
        svc.client_count(),
        svc.segments.len(),
        m.requests(RpcOp::PutStart),
        m.requests(RpcOp::PutEnd),
        m.requests(RpcOp::GetReplicaList),
        m.requests(RpcOp::ExistKey),
        m.requests(RpcOp::Remove),
    );
    line
}

/// The admin router.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/role", get(role))
        .route("/metrics", get(metrics))
        .route("/metrics/summary", get(summary))
        .route("/query_key", get(query::query_key))
        .route("/batch_query_keys", get(query::batch_query_keys))
        .route("/get_all_keys", get(query::get_all_keys))
        .route("/get_all_segments", get(query::get_all_segments))
        .route("/query_segment", get(query::query_segment))
        .route("/get_segments_detail", get(query::get_segments_detail))
        .route("/api/v1/remove_all", axum::routing::post(query::remove_all))
        .with_state(state)
}
