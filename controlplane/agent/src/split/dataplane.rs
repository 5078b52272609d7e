//! `mooncake_store dataplane ...`: the node's shards in a process of their own.
//!
//! It takes over what the supervisor kept of an earlier data plane (or starts afresh),
//! starts one shard per placement with the shard's end of its ring pair, hands every
//! segment and index file to the supervisor as it comes, says ready (shard 0 answers the
//! agent's `Metrics` with every shard's families), and exits once every shard was stopped (by the agent, at the
//! node's orderly stop). A shard that dies on its own takes the process down with it, so
//! the supervisor restarts the whole data plane from the kept memory.

use std::os::fd::AsFd;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use mc_dataplane::control::ring::RingShardLink;
use mc_dataplane::keep::KeeperHandle;
use mc_dataplane::stats::FamiliesText;
use mc_dataplane::{ShardHandle, start_shard_from};
use tracing::info;

use super::vault::{self, VaultKeeper};
use super::{ENV_VAULT, die_with_supervisor, env_fd, env_rings};
use crate::metrics::NodeMetrics;
use crate::{NodeError, StoreConfig};

/// How often a shard's ring end says it is alive.
pub(super) const BEAT: Duration = Duration::from_millis(50);
/// How long some shards may be stopped while others run before the data plane counts the
/// stopped ones as dead (an orderly stop stops all of them within moments).
const PARTIAL_STOP: Duration = Duration::from_secs(5);

fn err(what: impl std::fmt::Display) -> NodeError {
    NodeError::Process(what.to_string())
}

/// Runs the data plane until its shards are stopped.
pub(super) fn run(cfg: StoreConfig) -> Result<(), NodeError> {
    die_with_supervisor()?;
    // Ctrl-C in a terminal reaches the whole process group: the agent stops the shards in
    // order (transfers under way finish first), so the data plane does not die of it.
    signal_hook::flag::register(
        signal_hook::consts::SIGINT,
        Arc::new(AtomicBool::new(false)),
    )
    .map_err(NodeError::Signals)?;
    let rings = env_rings()?;
    let vault_sock = env_fd(ENV_VAULT)?;
    let (plan, per_shard) = crate::node::plan_shards(&cfg)?;
    if rings.len() != plan.shards.len() {
        return Err(err(format!(
            "{} ring pair(s) for {} shard(s)",
            rings.len(),
            plan.shards.len()
        )));
    }
    let memory = vault::receive(vault_sock.as_fd(), rings.len()).map_err(err)?;
    let taken_over = memory.iter().filter(|m| m.is_some()).count();
    let arena = crate::node::reserve_arena(&cfg, &plan)?;
    let keeper = VaultKeeper::new(vault_sock);
    let ssd = cfg.ssd(plan.shards.len())?;
    // Shard 0 answers the agent's `Metrics` with every shard's families and the arena's,
    // once they all run.
    let families: Arc<OnceLock<NodeMetrics>> = Arc::default();
    let text = families.clone();
    let source = FamiliesText(Arc::new(move || {
        text.get().map(NodeMetrics::encode).unwrap_or_default()
    }));
    let mut shards = Vec::new();
    for ((p, ring), mem) in plan.shards.iter().zip(&rings).zip(memory) {
        let mut c =
            crate::node::shard_config(&cfg, &plan, p, per_shard, arena.as_ref(), ssd.clone())?;
        c.keeper = Some(mc_dataplane::local::LocalKeeper::handle(
            &cfg.cluster_id(),
            Some(KeeperHandle(keeper.clone())),
        ));
        c.metrics = (p.index == 0).then(|| source.clone());
        let mut link = RingShardLink::new(ring);
        link.spawn_heartbeat(BEAT)
            .map_err(|e| err(format!("cannot start shard {}'s heartbeat: {e}", p.index)))?;
        shards.push(start_shard_from(c, link, mem)?);
    }
    let stats: Vec<_> = shards.iter().map(|h| h.stats.clone()).collect();
    let _ = families.set(NodeMetrics::for_data_plane(&stats, arena));
    keeper
        .ready()
        .map_err(|e| err(format!("cannot tell the supervisor the shards serve: {e}")))?;
    info!(
        shards = shards.len(),
        taken_over,
        "data plane serving (pid {})",
        std::process::id()
    );
    wait_for_stop(shards)
}

/// Returns once every shard has stopped; an error when some stopped while others kept
/// running (a shard died).
fn wait_for_stop(shards: Vec<ShardHandle>) -> Result<(), NodeError> {
    let mut first_stop: Option<Instant> = None;
    loop {
        let stopped = shards.iter().filter(|h| h.is_finished()).count();
        if stopped == shards.len() {
            break;
        }
        if stopped > 0 {
            let since = *first_stop.get_or_insert_with(Instant::now);
            if since.elapsed() > PARTIAL_STOP {
                let dead: Vec<usize> = shards
                    .iter()
                    .filter(|h| h.is_finished())
                    .map(|h| h.index)
                    .collect();
                return Err(err(format!(
                    "shard(s) {dead:?} ended unasked while the others run"
                )));
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let panicked: Vec<usize> = shards
        .into_iter()
        .filter_map(|h| {
            let index = h.index;
            (!h.join()).then_some(index)
        })
        .collect();
    if !panicked.is_empty() {
        return Err(err(format!(
            "shard(s) {panicked:?} ended unasked (panicked)"
        )));
    }
    info!("data plane stopped");
    Ok(())
}
