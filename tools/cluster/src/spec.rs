//! What to start: the master's flags and one [`NodeSpec`] per store node.

use std::path::PathBuf;
use std::time::Duration;

/// How one store node (`mooncake_store`) is started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    /// Loopback address the node calls its own (`--local_hostname`) and serves its REST port
    /// on. Nodes meant to look like distinct machines use `127.0.0.2`, `127.0.0.3`, ...
    pub host: String,
    /// Size of the memory segment the node mounts, with its unit as the store parses it
    /// (`--global_segment_size`, e.g. `256MB`).
    pub segment_size: String,
    /// Value of `--cores` (e.g. `auto` or `0-3`); an empty string leaves the flag out.
    pub cores: String,
    /// Further flags appended verbatim after the ones this crate sets.
    pub extra_args: Vec<String>,
    /// Environment variables set for this node (on top of this process's), kept across
    /// restarts: e.g. `FAILPOINTS` for a build with failpoints.
    pub env: Vec<(String, String)>,
    /// What this node gets as `--master_server`, overriding the cluster's (e.g. the address
    /// of a fault-injecting proxy in front of the master).
    pub master_server: Option<String>,
}

impl Default for NodeSpec {
    fn default() -> Self {
        NodeSpec {
            host: "127.0.0.1".to_string(),
            segment_size: "256MB".to_string(),
            cores: "auto".to_string(),
            extra_args: Vec::new(),
            env: Vec::new(),
            master_server: None,
        }
    }
}

impl NodeSpec {
    /// A default node that binds to `host` (e.g. `127.0.0.2`).
    pub fn on_host(host: impl Into<String>) -> Self {
        NodeSpec {
            host: host.into(),
            ..NodeSpec::default()
        }
    }
}

/// How a whole local cluster is started: [`ClusterSpec::masters`] masters (one unless HA
/// is tested) and [`ClusterSpec::nodes`] store nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSpec {
    /// The store nodes, started in order after the master; node `i` is `nodes[i]`.
    /// The default is one default node.
    pub nodes: Vec<NodeSpec>,
    /// Further master flags appended verbatim after the ones this crate sets.
    pub master_args: Vec<String>,
    /// Environment variables set for every master (on top of this process's), kept across
    /// restarts: e.g. `MOONCAKE_SNAPSHOT_LOCAL_PATH`.
    pub master_env: Vec<(String, String)>,
    /// How many masters to start, each on its own ports with the same flags (1; more make
    /// sense with HA flags in `master_args`, e.g. [`crate::Coordinator::master_args`]).
    pub masters: usize,
    /// What nodes get as `--master_server`, e.g. a coordinator locator; master 0's address
    /// when `None`.
    pub master_server: Option<String>,
    /// Passed as `--cluster_id` to the master and every node when set.
    pub cluster_id: Option<String>,
    /// Directory holding `mooncake_master` and `mooncake_store`; see [`crate::find_binary`]
    /// for where they are looked for when this is `None`.
    pub bin_dir: Option<PathBuf>,
    /// How long each child may take to become ready after it is spawned.
    pub ready_timeout: Duration,
}

impl Default for ClusterSpec {
    fn default() -> Self {
        ClusterSpec {
            nodes: vec![NodeSpec::default()],
            master_args: Vec::new(),
            master_env: Vec::new(),
            masters: 1,
            master_server: None,
            cluster_id: None,
            bin_dir: None,
            ready_timeout: Duration::from_secs(60),
        }
    }
}

impl ClusterSpec {
    /// A default cluster with `node_count` default nodes, all on `127.0.0.1`.
    pub fn with_nodes(node_count: usize) -> Self {
        ClusterSpec {
            nodes: vec![NodeSpec::default(); node_count],
            ..ClusterSpec::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_values() {
        let node = NodeSpec::default();
        assert_eq!(node.host, "127.0.0.1");
        assert_eq!(node.segment_size, "256MB");
        assert_eq!(node.cores, "auto");
        assert!(node.extra_args.is_empty());

        let cluster = ClusterSpec::default();
        assert_eq!(cluster.nodes, vec![NodeSpec::default()]);
        assert_eq!(cluster.ready_timeout, Duration::from_secs(60));
        assert_eq!(cluster.masters, 1);
        assert!(cluster.master_env.is_empty());
        assert!(cluster.master_server.is_none());
        assert!(cluster.cluster_id.is_none() && cluster.bin_dir.is_none());

        assert_eq!(ClusterSpec::with_nodes(3).nodes.len(), 3);
        assert!(ClusterSpec::with_nodes(0).nodes.is_empty());
        assert_eq!(NodeSpec::on_host("127.0.0.2").host, "127.0.0.2");
    }
}
