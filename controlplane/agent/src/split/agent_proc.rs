//! `mooncake_store agent ...`: the node's agent and REST server in a process of their own,
//! reaching the data plane's shards over their rings.
//!
//! It starts as any agent does (asks each shard for its segments, mounts them with the
//! master under the node id the supervisor keeps, so a restarted agent takes its
//! predecessor's place), tells the supervisor it serves, and runs until SIGTERM / SIGINT,
//! when it drains, unmounts and stops the shards.

use std::io::Write;
use std::sync::Arc;

use mc_dataplane::control::ring::RingAgentLink;
use tracing::info;

use super::dataplane::BEAT;
use super::{
    ENV_AGENT_RESTARTS, ENV_CLIENT_ID, ENV_DATAPLANE_RESTARTS, ENV_READY, die_with_supervisor, env,
    env_fd, env_rings,
};
use crate::metrics::ProcessFigures;
use crate::node::{MetricsPlan, NodeParts, RestBinding, assemble};
use crate::state::AgentStatus;
use crate::{NodeError, StoreConfig};

fn err(what: impl std::fmt::Display) -> NodeError {
    NodeError::Process(what.to_string())
}

/// Runs the agent until SIGTERM / SIGINT (then stops the node in order) or until a part of
/// it ends unasked.
pub(super) fn run(cfg: StoreConfig) -> Result<(), NodeError> {
    die_with_supervisor()?;
    let signalled = crate::node::stop_signals()?;
    let rings = env_rings()?;
    let id_text = env(ENV_CLIENT_ID)?;
    let client_id: u64 = id_text
        .parse()
        .map_err(|_| err(format!("{ENV_CLIENT_ID}={id_text:?} is not a node id")))?;
    let ready = env_fd(ENV_READY)?;
    let rest = RestBinding::bind(&cfg)?;
    let mut links = Vec::with_capacity(rings.len());
    for (i, ring) in rings.iter().enumerate() {
        let mut link = RingAgentLink::new(ring);
        link.spawn_heartbeat(BEAT).map_err(|e| {
            err(format!(
                "cannot start the heartbeat of shard {i}'s ring: {e}"
            ))
        })?;
        links.push(link);
    }
    let status = Arc::new(AgentStatus::default());
    let count = |name: &str| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let rings = Arc::new(rings);
    let figures = ProcessFigures {
        ring_full_events: Arc::new(move || {
            rings.iter().map(mc_ring::SharedRing::full_events).sum()
        }),
        agent_restarts: count(ENV_AGENT_RESTARTS),
        dataplane_restarts: count(ENV_DATAPLANE_RESTARTS),
    };
    let parts = NodeParts {
        links,
        shards: Vec::new(),
        status,
        metrics: MetricsPlan::FromShards(figures),
        arena: None,
        client_id: Some(client_id),
    };
    let node = assemble(&cfg, parts, rest)?;
    let mut ready = std::fs::File::from(ready);
    ready
        .write_all(b"1")
        .map_err(|e| err(format!("cannot tell the supervisor the agent serves: {e}")))?;
    drop(ready);
    info!(client_id, "agent serving (pid {})", std::process::id());
    crate::node::serve_until_signalled(node, &signalled)
}
