//! The command line of `mc-cluster`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use super::state::Ha;
use super::up::UpOptions;

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "mc-cluster",
    version,
    about = "A local mooncake-rs HA cluster: start it, check it, kill its leader, stop it"
)]
pub struct Cli {
    /// Directory holding the cluster's state file and logs [default: the user's cache dir,
    /// `$XDG_CACHE_HOME/mc-cluster` or `~/.cache/mc-cluster`].
    #[arg(long, global = true)]
    pub dir: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start coordinator, masters, store nodes (and Prometheus) in the background and print
    /// every endpoint.
    Up(UpArgs),
    /// Check every process, /health, the leader, put/get round trips and Prometheus; exits
    /// non-zero if any check fails.
    Check,
    /// The drill: SIGKILL the leader, time the failover, restart it as a standby.
    KillLeader,
    /// Print every endpoint and whether it runs.
    Status,
    /// Print a process's log (names: etcd or redis, master-N, node-N, prometheus).
    Logs {
        /// The process.
        name: String,
        /// Only the last N lines.
        #[arg(long)]
        tail: Option<usize>,
    },
    /// Stop everything: SIGTERM, then wait.
    Down {
        /// SIGKILL what still runs after the timeout.
        #[arg(long)]
        force: bool,
        /// Remove the directory afterwards.
        #[arg(long)]
        clean: bool,
        /// Seconds each group of processes gets to exit after SIGTERM.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
}

/// Flags of `up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Masters [default: 3 with HA, 1 with `--ha none`].
    #[arg(long)]
    pub masters: Option<usize>,
    /// Store nodes, on 127.0.0.2, 127.0.0.3, ...
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// Coordinator the masters elect on.
    #[arg(long, value_enum, default_value = "etcd")]
    pub ha: Ha,
    /// Memory each node contributes (`--global_segment_size`).
    #[arg(long, default_value = "1GB")]
    pub segment: String,
    /// Also run Prometheus, scraping every master and node.
    #[arg(long)]
    pub prometheus: bool,
    /// Cluster id of masters and nodes.
    #[arg(long = "cluster-id", default_value = "mooncake_cluster")]
    pub cluster_id: String,
}

impl UpArgs {
    /// The options `up` runs with.
    pub fn options(&self) -> UpOptions {
        let default_masters = if self.ha == Ha::None { 1 } else { 3 };
        UpOptions {
            masters: self.masters.unwrap_or(default_masters),
            nodes: self.nodes,
            ha: self.ha,
            segment: self.segment.clone(),
            prometheus: self.prometheus,
            cluster_id: self.cluster_id.clone(),
        }
    }
}
