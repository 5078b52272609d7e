//! Admin HTTP server (`--metrics_port`): the router, and the status pages `/health`, `/role`,
//! `/metrics` (see [`crate::metrics`]) and `/metrics/summary`. The inspection endpoints of
//! Mooncake's HTTP service live in [`query`], the `/dashboard` page in [`crate::dashboard`];
//! all read [`HttpState`].

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
    let status = s.plane.status();
    fn n(a: &std::sync::atomic::AtomicU64) -> u64 {
        a.load(std::sync::atomic::Ordering::Relaxed)
    }
    let mut body = json!({
        "status": "ok",
        "role": status.state.role(),
        "ha_state": status.state.name(),
        "service_ready": status.service_ready,
        "leader_address": status.leader.as_ref().map(|v| v.leader.as_str()),
        "view_version": status.leader.as_ref().map(|v| v.version),
        "write_secret_fingerprint": s.write_secrets.fingerprint(),
        "write_secret_pending_fingerprint": s.write_secrets.pending_fingerprint(),
        "write_secret_rotations_total": s.write_secrets.rotations_total(),
        "write_secret_reload_errors_total": s.write_secrets.reload_errors_total(),
    });
    // The term's counts; a master holding no term reports zeros.
    let svc = status.service;
    let (used, total) = svc.as_ref().map_or((0, 0), |m| m.segments.usage());
    let read = |f: fn(&MasterService) -> u64| svc.as_deref().map_or(0, f);
    let counts = json!({
        "segments": read(|m| m.segments.len() as u64),
        "clients": read(|m| m.client_count() as u64),
        "keys": read(|m| m.objects.len() as u64),
        "allocated_bytes": used,
        "capacity_bytes": total,
        "successful_evictions_total": read(|m| n(&m.objects.stats.successful_evictions_total)),
        "evicted_keys_total": read(|m| n(&m.objects.stats.evicted_keys_total)),
        "evicted_bytes_total": read(|m| n(&m.objects.stats.evicted_bytes_total)),
        "preempted_put_starts_total": read(|m| n(&m.objects.stats.preempted_put_starts_total)),
        "released_put_start_bytes_total": read(|m| n(&m.objects.stats.released_put_start_bytes_total)),
        "shared_host_replicas_total": read(|m| n(&m.segments.shared_host_replicas_total)),
        "term": read(|m| m.segments.term()),
        "recovery_pending_nodes": read(|m| m.recovery.pending_nodes() as u64),
        "recovery_adopted_objects_total": read(|m| n(&m.recovery.stats.adopted_objects_total)),
        "recovery_added_replicas_total": read(|m| n(&m.recovery.stats.added_replicas_total)),
        "recovery_rejected_entries_total": read(|m| n(&m.recovery.stats.rejected_entries_total)),
        "recovery_adoption_ms_total": read(|m| n(&m.recovery.stats.adoption_ms_total)),
        "notices_queued": read(|m| m.segments.notices.queued() as u64),
        "unconfirmed_removes_total": read(|m| n(&m.segments.notices.unconfirmed_removes_total)),
    });
    if let (Value::Object(b), Value::Object(c)) = (&mut body, counts) {
        b.extend(c);
    }
    if let (Value::Object(b), Value::Object(c)) = (&mut body, snapshot_fields(&s, svc)) {
        b.extend(c);
    }
    Json(body)
}

/// The snapshot part of `/health`: the writer's last snapshot and failures (process-wide),
/// the snapshot restored, and the term's hints (keys still waiting, pins applied, keys
/// dropped unconfirmed).
fn snapshot_fields(s: &HttpState, svc: Option<std::sync::Arc<MasterService>>) -> Value {
    fn n(a: &std::sync::atomic::AtomicU64) -> u64 {
        a.load(std::sync::atomic::Ordering::Relaxed)
    }
    let st = &s.snapshots;
    let hints = |f: fn(&crate::recovery::hints::Hints) -> u64| {
        svc.as_deref().map_or(0, |m| f(&m.recovery.hints))
    };
    json!({
        "snapshot_enabled": st.enabled.load(std::sync::atomic::Ordering::Relaxed),
        "snapshots_total": n(&st.snapshots_total),
        "snapshot_failures_total": n(&st.failures_total),
        "last_snapshot_id": st.last_id(),
        "last_snapshot_unix_ms": n(&st.last_unix_ms),
        "last_snapshot_duration_ms": n(&st.last_duration_ms),
        "last_snapshot_bytes": n(&st.last_bytes),
        "last_snapshot_objects": n(&st.last_objects),
        "restored_snapshot_id": st.restored_id(),
        "restored_snapshot_keys": n(&st.restored_keys),
        "snapshot_restore_fallbacks_total": n(&st.restore_fallbacks_total),
        "snapshot_hints_pending": hints(|h| h.len() as u64),
        "snapshot_pins_applied_total": hints(|h| n(&h.applied_total)),
        "snapshot_hints_dropped_total": hints(|h| n(&h.dropped_total)),
    })
}

/// `/role`: the role on the first line (Mooncake's answer), then the HA state, the leader
/// and the view version as `key=value` lines (empty values when no leader is known).
async fn role(State(s): State<HttpState>) -> String {
    let status = s.plane.status();
    let (leader, version) = status.leader.map_or((String::new(), String::new()), |v| {
        (v.leader, v.version.to_string())
    });
    format!(
        "{}\nha_state={}\nleader_address={leader}\nview_version={version}\n",
        status.state.role(),
        status.state.name()
    )
}

const TEXT_FORMAT: &str = "text/plain; version=0.0.4";

async fn metrics(State(s): State<HttpState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, TEXT_FORMAT)], s.metrics.encode())
}

async fn summary(State(s): State<HttpState>) -> impl IntoResponse {
    let status = s.plane.status();
    let line = match &status.service {
        Some(svc) => summary_line(svc),
        None => format!(
            "{}: no term held, nothing to summarise\n",
            status.state.name()
        ),
    };
    ([(header::CONTENT_TYPE, TEXT_FORMAT)], line)
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
        .merge(crate::dashboard::routes())
        .with_state(state)
}
