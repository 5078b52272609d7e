//! What the admin HTTP handlers read. Its own module so the handler modules ([`http`]'s
//! status pages and [`query`]'s inspection endpoints) depend on it and the router in
//! [`http`] depends on them, never the other way round.
//!
//! [`http`]: crate::http
//! [`query`]: crate::query

use std::sync::Arc;

use axum::Json;
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use mc_schema::ErrorCode;
use serde_json::json;

use crate::ha::Plane;
use crate::service::MasterService;

/// What the handlers read.
#[derive(Clone)]
pub struct HttpState {
    /// The gate and the current term (HA state, leader, metadata).
    pub plane: Arc<Plane>,
    /// What `/metrics` serves.
    pub metrics: crate::metrics::MasterMetrics,
    /// The snapshot writer's and restore's counters (all zero with snapshots off).
    pub snapshots: Arc<crate::snapshot::SnapshotStats>,
    /// This master's RPC address as it serves it (and, with HA, publishes it when leading).
    pub rpc_address: String,
    /// `--cluster_id`, for the RPCs the dashboard sends to the leader.
    pub cluster_id: String,
    /// The coordinator's list of masters (with HA; `None` without, or when unreachable).
    pub roster: Option<Arc<mc_coord::elect::Roster>>,
    /// The write secret this master signs with (its fingerprint is shown) and its rotation.
    pub write_secrets: Arc<crate::secret::WriteSecrets>,
}

/// The metadata of a master that serves now; an extractor for the inspection endpoints,
/// which answer 503 on a standby (as Mooncake's do) with the leader's address.
pub struct Serving(pub Arc<MasterService>);

impl FromRequestParts<HttpState> for Serving {
    type Rejection = Response;

    async fn from_request_parts(
        _parts: &mut Parts,
        state: &HttpState,
    ) -> Result<Self, Self::Rejection> {
        let status = state.plane.status();
        match status.service {
            Some(svc) if status.service_ready => Ok(Serving(svc)),
            _ => {
                let code = ErrorCode::UnavailableInCurrentStatus;
                let leader = status.leader.map(|v| v.leader);
                let body = json!({
                    "error": code.name(),
                    "code": code.code(),
                    "message": format!("this master is not serving ({})", status.state.name()),
                    "leader_address": leader,
                });
                Err((StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response())
            }
        }
    }
}
