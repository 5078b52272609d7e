//! Bringing a store node up and down: shards, agent, REST, signals.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use mc_dataplane::control::channel_pair;
use mc_dataplane::{ShardConfig, start_shard};
use mc_hugepages::RegionOptions;
use tracing::info;

use crate::agent::{Agent, AgentConfig, AgentStatus};
use crate::config::StoreConfig;
use crate::rest;

/// Smallest segment a shard may have.
pub const MIN_SHARD_SEGMENT_BYTES: u64 = 16 << 20;

/// Errors that stop a store node.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Bad combination of flags.
    #[error("{0}")]
    Config(String),
    /// Core planning failed.
    #[error("{0}")]
    Topology(#[from] mc_topology::Error),
    /// A shard failed to start.
    #[error("{0}")]
    Dataplane(#[from] mc_dataplane::DataplaneError),
    /// The REST server failed.
    #[error("REST server on {addr}: {reason} (pick another --port)")]
    Rest {
        /// Address.
        addr: String,
        /// Cause.
        reason: String,
    },
    /// The agent could not start.
    #[error("agent: {0}")]
    Agent(String),
}

/// Runs a store node until SIGTERM / SIGINT; then unmounts, stops the shards and returns.
pub fn run(cfg: StoreConfig) -> Result<(), NodeError> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone())
            .map_err(|e| NodeError::Config(e.to_string()))?;
    }
    let plan = mc_topology::plan(&cfg.cores, &mc_topology::online_cpus())?;
    let shards = plan.shards.len() as u64;
    info!("core plan: {} shard(s): {}", shards, plan.reason);
    let per_shard = cfg.global_segment_size / shards;
    if per_shard < MIN_SHARD_SEGMENT_BYTES {
        return Err(NodeError::Config(format!(
            "--global_segment_size={} gives {} bytes per shard over {} shard(s); each needs at least 16 MiB: \
             raise --global_segment_size or lower --cores",
            cfg.global_segment_size, per_shard, shards
        )));
    }
    let mut handles = Vec::new();
    let mut links = Vec::new();
    for p in &plan.shards {
        let (agent_link, shard_link) = channel_pair();
        let port = if cfg.data_port == 0 {
            0
        } else {
            cfg.data_port.checked_add(p.index as u16).ok_or_else(|| {
                NodeError::Config("--data_port + shard count exceeds 65535".into())
            })?
        };
        let shard_cfg = ShardConfig {
            index: p.index,
            core: p.core,
            host: cfg.local_hostname.clone(),
            data_port: port,
            segment_bytes: per_shard as usize,
            region: RegionOptions {
                name: format!("mc-seg-{}", p.index),
                huge: cfg.hugepages,
                ..RegionOptions::default()
            },
            cluster_id: cfg.cluster_id.clone(),
            io_memory_bytes: cfg.io_memory as usize,
        };
        handles.push(start_shard(shard_cfg, shard_link)?);
        links.push(agent_link);
    }

    let status = Arc::new(AgentStatus::default());
    let stats = handles.iter().map(|h| h.stats.clone()).collect();
    start_rest(&cfg, status.clone(), stats)?;
    let mut agent = Agent::new(
        AgentConfig {
            master: cfg.master_server.clone(),
            cluster_id: cfg.cluster_id.clone(),
            host: cfg.local_hostname.clone(),
            heartbeat_interval: cfg.heartbeat_interval,
            rpc_timeout: cfg.rpc_timeout,
            drain_timeout: cfg.drain_timeout,
        },
        links,
        status,
    )
    .map_err(NodeError::Agent)?;
    info!(
        "store node up: {} shard(s), {} bytes, master {}",
        handles.len(),
        cfg.global_segment_size,
        cfg.master_server
    );
    agent.run(&stop);
    for h in handles {
        h.join();
    }
    info!("store node stopped");
    Ok(())
}

fn start_rest(
    cfg: &StoreConfig,
    status: Arc<AgentStatus>,
    shard_stats: Vec<Arc<mc_dataplane::stats::ShardStats>>,
) -> Result<(), NodeError> {
    let addr = format!("{}:{}", cfg.rest_host, cfg.port);
    let listener = std::net::TcpListener::bind(&addr).map_err(|e| NodeError::Rest {
        addr: addr.clone(),
        reason: e.to_string(),
    })?;
    listener
        .set_nonblocking(true)
        .map_err(|e| NodeError::Rest {
            addr: addr.clone(),
            reason: e.to_string(),
        })?;
    let state = rest::RestState {
        status,
        shards: shard_stats.len(),
        host: cfg.local_hostname.clone(),
        shard_stats,
    };
    std::thread::Builder::new()
        .name("mc-rest".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime for REST");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                if let Err(e) = axum::serve(listener, rest::router(state)).await {
                    tracing::error!("REST server failed: {e}");
                }
            });
        })
        .map_err(|e| NodeError::Rest {
            addr,
            reason: e.to_string(),
        })?;
    Ok(())
}
