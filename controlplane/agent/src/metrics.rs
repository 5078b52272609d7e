//! The node's metrics: one Prometheus registry per store node, holding the agent's
//! `mc_node_*` gauges and every shard's `mc_shard_*` families, served on `/metrics`.
//!
//! The shards write their own counters ([`mc_dataplane::stats`]); the node gauges read the
//! agent's status when scraped, so nothing on the node's paths updates them.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use mc_dataplane::stats::ShardStats;
use mc_hugepages::Arena;
use prometheus::{PullingGauge, Registry, TextEncoder};

use crate::agent::AgentStatus;

/// Text of metric families another process serves (the data plane's, read by the agent
/// process when scraped).
pub type RemoteFamilies = Arc<dyn Fn() -> String + Send + Sync>;

/// What the node's process split adds to the agent's gauges: full-ring events of the
/// shards' rings and how often the supervisor restarted each child (all 0 in one process).
#[derive(Clone)]
pub struct ProcessFigures {
    /// Times a sender found its ring full, both directions of every shard's pair, summed.
    pub ring_full_events: Arc<dyn Fn() -> u64 + Send + Sync>,
    /// Agent processes the supervisor started after the first.
    pub agent_restarts: u64,
    /// Data-plane processes the supervisor started after the first.
    pub dataplane_restarts: u64,
}

impl ProcessFigures {
    /// The figures of a node in one process.
    pub fn single() -> ProcessFigures {
        ProcessFigures {
            ring_full_events: Arc::new(|| 0),
            agent_restarts: 0,
            dataplane_restarts: 0,
        }
    }
}

/// The registry of one store node.
#[derive(Clone)]
pub struct NodeMetrics {
    registry: Registry,
    remote: Option<RemoteFamilies>,
}

/// A gauge whose name and help are fixed in this file.
fn gauge(name: &str, help: &str, read: impl Fn() -> f64 + Send + Sync + 'static) -> PullingGauge {
    PullingGauge::new(name, help, Box::new(read)).expect("node gauge definitions are valid")
}

fn register_all(registry: &Registry, gauges: impl IntoIterator<Item = PullingGauge>) {
    for g in gauges {
        registry
            .register(Box::new(g))
            .expect("node gauges are registered once");
    }
}

/// The agent's gauges: shards, segments, mounts, master connection, rings and restarts.
fn agent_gauges(status: Arc<AgentStatus>, shards: usize, p: ProcessFigures) -> [PullingGauge; 7] {
    let count = shards as f64;
    let (s1, s2, s3) = (status.clone(), status.clone(), status);
    let full = p.ring_full_events.clone();
    let (ar, dr) = (p.agent_restarts as f64, p.dataplane_restarts as f64);
    [
        gauge(
            "mc_node_ring_full_events",
            "Times a sender found a shard's control ring full (agent and data-plane processes).",
            move || full() as f64,
        ),
        gauge(
            "mc_node_agent_restarts",
            "Agent processes the node's supervisor started after the first.",
            move || ar,
        ),
        gauge(
            "mc_node_dataplane_restarts",
            "Data-plane processes the node's supervisor started after the first.",
            move || dr,
        ),
        gauge("mc_node_shards", "Shards on this node.", move || count),
        gauge(
            "mc_node_segments",
            "Segments this node serves.",
            move || s1.segments.lock().unwrap_or_else(|p| p.into_inner()).len() as f64,
        ),
        gauge(
            "mc_node_mounted_segments",
            "Segments the master has accepted.",
            move || s2.mounted_segments.load(Ordering::Acquire) as f64,
        ),
        gauge(
            "mc_node_master_connected",
            "1 when the last call to the master succeeded.",
            move || f64::from(u8::from(s3.master_connected.load(Ordering::Acquire))),
        ),
    ]
}

/// The data plane's gauges of the mmap arena, and every shard's families.
fn memory_families(registry: &Registry, shards: &[Arc<ShardStats>], arena: Option<Arena>) {
    let (a1, a2) = (arena.clone(), arena);
    register_all(
        registry,
        [
            gauge(
                "mc_node_arena_pool_bytes",
                "Bytes of the mmap arena (MC_MMAP_ARENA_POOL_SIZE); 0 without one.",
                move || a1.as_ref().map_or(0.0, |a| a.pool_bytes() as f64),
            ),
            gauge(
                "mc_node_arena_used_bytes",
                "Bytes of the mmap arena held by mounted segments.",
                move || a2.as_ref().map_or(0.0, |a| a.used_bytes() as f64),
            ),
        ],
    );
    for s in shards {
        s.register(registry)
            .expect("every shard has its own index and endpoint");
    }
}

impl NodeMetrics {
    /// The registry of a node whose agent reports into `status`, whose shards are
    /// `shards` (each shard index and endpoint appears once) and whose mmap arena, if it
    /// has one, is `arena`: everything in one process.
    pub fn new(
        status: Arc<AgentStatus>,
        shards: &[Arc<ShardStats>],
        arena: Option<Arena>,
    ) -> NodeMetrics {
        let registry = Registry::new();
        register_all(
            &registry,
            agent_gauges(status, shards.len(), ProcessFigures::single()),
        );
        memory_families(&registry, shards, arena);
        NodeMetrics {
            registry,
            remote: None,
        }
    }

    /// The agent process's registry: its own gauges, then the families `remote` reads
    /// from the data-plane process when scraped.
    pub fn for_agent(
        status: Arc<AgentStatus>,
        shards: usize,
        figures: ProcessFigures,
        remote: RemoteFamilies,
    ) -> NodeMetrics {
        let registry = Registry::new();
        register_all(&registry, agent_gauges(status, shards, figures));
        NodeMetrics {
            registry,
            remote: Some(remote),
        }
    }

    /// The data-plane process's registry: the arena and the shards.
    pub fn for_data_plane(shards: &[Arc<ShardStats>], arena: Option<Arena>) -> NodeMetrics {
        let registry = Registry::new();
        memory_families(&registry, shards, arena);
        NodeMetrics {
            registry,
            remote: None,
        }
    }

    /// Every family in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(8192);
        // Encoding fails only for a family without samples or name; gather drops the former
        // and every family here has a name.
        TextEncoder::new()
            .encode_utf8(&self.registry.gather(), &mut out)
            .expect("gathered families are well formed");
        if let Some(remote) = &self.remote {
            out.push_str(&remote());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arena_gauges_follow_its_slices() {
        let arena = Arena::reserve(4 << 20, &mc_hugepages::RegionOptions::default()).unwrap();
        let m = NodeMetrics::new(Arc::new(AgentStatus::default()), &[], Some(arena.clone()));
        assert!(m.encode().contains("\nmc_node_arena_pool_bytes 4194304\n"));
        let slice = arena.alloc(1 << 20).unwrap();
        assert!(m.encode().contains("\nmc_node_arena_used_bytes 1048576\n"));
        drop(slice);
        assert!(m.encode().contains("\nmc_node_arena_used_bytes 0\n"));
    }

    #[test]
    fn the_agent_process_appends_the_data_planes_families() {
        let shards = [Arc::new(ShardStats::new(0, "h:1"))];
        let dp = NodeMetrics::for_data_plane(&shards, None);
        shards[0].connections_total.inc();
        let remote: RemoteFamilies = Arc::new(move || dp.encode());
        let figures = ProcessFigures {
            agent_restarts: 2,
            ..ProcessFigures::single()
        };
        let m = NodeMetrics::for_agent(Arc::new(AgentStatus::default()), 1, figures, remote);
        let text = m.encode();
        for line in [
            "\nmc_node_shards 1\n",
            "\nmc_node_agent_restarts 2\n",
            "\nmc_node_arena_pool_bytes 0\n",
            "\nmc_shard_connections_total{endpoint=\"h:1\",shard=\"0\"} 1\n",
        ] {
            assert!(text.contains(line), "{line:?} missing from\n{text}");
        }
        assert_eq!(text.matches("# TYPE mc_node_shards ").count(), 1);
    }

    #[test]
    fn node_gauges_read_the_agent_status_when_scraped() {
        let status = Arc::new(AgentStatus::default());
        let shards = [Arc::new(ShardStats::new(0, "h:1"))];
        let m = NodeMetrics::new(status.clone(), &shards, None);
        assert!(m.encode().contains("\nmc_node_mounted_segments 0\n"));
        assert!(m.encode().contains("\nmc_node_arena_pool_bytes 0\n"));
        status.mounted_segments.store(3, Ordering::Release);
        status.master_connected.store(true, Ordering::Release);
        shards[0].connections_total.inc();
        let text = m.encode();
        for line in [
            "\nmc_node_shards 1\n",
            "\nmc_node_mounted_segments 3\n",
            "\nmc_node_master_connected 1\n",
            "\nmc_shard_connections_total{endpoint=\"h:1\",shard=\"0\"} 1\n",
        ] {
            assert!(text.contains(line), "{line:?} missing from\n{text}");
        }
    }
}
