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

/// The REST router.
pub fn router(state: RestState) -> Router {
    Router::new()
        .route("/health", get(health))
        .with_state(state)
}
