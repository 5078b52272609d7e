//! The node's REST server (`--port`): `/health` today; metrics and the store REST API of
//! Mooncake's HTTP service come next.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::agent::AgentStatus;

/// What the handlers read.
#[derive(Clone)]
pub struct RestState {
    /// Agent status.
    pub status: Arc<AgentStatus>,
    /// Number of shards on this node.
    pub shards: usize,
    /// This node's host.
    pub host: String,
    /// Every shard's counters.
    pub shard_stats: Vec<Arc<mc_dataplane::stats::ShardStats>>,
}

async fn health(State(s): State<RestState>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "host": s.host,
        "shards": s.shards,
        "mounted_segments": s.status.mounted_segments.load(Ordering::Acquire),
        "master_connected": s.status.master_connected.load(Ordering::Acquire),
    }))
}

async fn metrics(State(s): State<RestState>) -> impl axum::response::IntoResponse {
    use std::fmt::Write;
    let mut out = String::with_capacity(8192);
    let gauge = |out: &mut String, name: &str, help: &str, v: usize| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
    };
    gauge(&mut out, "mc_node_shards", "Shards on this node.", s.shards);
    gauge(
        &mut out,
        "mc_node_mounted_segments",
        "Segments the master has accepted.",
        s.status.mounted_segments.load(Ordering::Acquire),
    );
    gauge(
        &mut out,
        "mc_node_master_connected",
        "1 when the last call to the master succeeded.",
        usize::from(s.status.master_connected.load(Ordering::Acquire)),
    );
    mc_dataplane::stats::render(&s.shard_stats, &mut out);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        out,
    )
}

/// The REST router.
pub fn router(state: RestState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(state)
}
