//! Admin HTTP server (`--metrics_port`): the router, and the status pages `/health`, `/role`,
//! `/metrics` and `/metrics/summary`. The inspection endpoints of Mooncake's HTTP service
//! live in [`query`]; both read [`HttpState`].

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::http_state::HttpState;
use crate::query;
use crate::service::MasterService;

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

const TEXT_FORMAT: &str = "text/plain; version=0.0.4";

async fn metrics(State(s): State<HttpState>) -> impl IntoResponse {
    use crate::metrics::family;
    let svc = &s.svc;
    let (used, total) = svc.segments.usage();
    let st = &svc.objects.stats;
    let n = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    let mut out = String::with_capacity(32 * 1024);
    family(
        &mut out,
        "master_key_count",
        "gauge",
        "Objects in the metadata (in-flight puts included).",
        svc.objects.len(),
    );
    family(
        &mut out,
        "master_allocated_bytes",
        "gauge",
        "Bytes allocated in mounted segments.",
        used,
    );
    family(
        &mut out,
        "master_total_capacity_bytes",
        "gauge",
        "Bytes of all mounted segments.",
        total,
    );
    family(
        &mut out,
        "master_active_clients",
        "gauge",
        "Store nodes that heartbeat.",
        svc.client_count(),
    );
    family(
        &mut out,
        "master_mounted_segments",
        "gauge",
        "Mounted segments.",
        svc.segments.len(),
    );
    family(
        &mut out,
        "master_successful_evictions_total",
        "counter",
        "Eviction rounds that freed space.",
        n(&st.successful_evictions_total),
    );
    family(
        &mut out,
        "master_evicted_key_count",
        "counter",
        "Objects evicted.",
        n(&st.evicted_keys_total),
    );
    family(
        &mut out,
        "master_evicted_size_bytes",
        "counter",
        "Bytes freed by eviction.",
        n(&st.evicted_bytes_total),
    );
    family(
        &mut out,
        "master_preempted_put_starts_total",
        "counter",
        "PutStarts preempted after the discard timeout.",
        n(&st.preempted_put_starts_total),
    );
    family(
        &mut out,
        "master_released_put_start_bytes_total",
        "counter",
        "Bytes of abandoned puts and replaced values released later.",
        n(&st.released_put_start_bytes_total),
    );
    family(
        &mut out,
        "master_shared_host_replicas_total",
        "counter",
        "Replicas that had to share a host with another replica of the object.",
        n(&svc.segments.shared_host_replicas_total),
    );
    svc.rpc_metrics.render(&mut out);
    ([(header::CONTENT_TYPE, TEXT_FORMAT)], out)
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
        m.requests("put_start"),
        m.requests("put_end"),
        m.requests("get_replica_list"),
        m.requests("exist_key"),
        m.requests("remove"),
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
