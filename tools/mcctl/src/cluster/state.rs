//! The state file (`DIR/state.json`): every process `up` started, with the command line it
//! was started with, its pid and start time, and its ports. Later commands (`check`,
//! `kill-leader`, `status`, `down`) read it; `kill-leader` rewrites it after the restart.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use mc_cluster::detached::ProcessId;
use serde::{Deserialize, Serialize};

/// Name of the state file inside the cluster directory.
pub const STATE_FILE: &str = "state.json";
/// Subdirectory holding one log per process, `<name>.log`.
pub const LOG_DIR: &str = "logs";
/// The address every master and the coordinator bind.
pub const LOOPBACK: &str = "127.0.0.1";

/// Which coordinator the masters elect on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Ha {
    /// A single-member etcd (Debian's `etcd-server`).
    Etcd,
    /// A redis-server.
    Redis,
    /// No HA: one master, nodes dial it directly.
    None,
}

impl Ha {
    /// The name as the flag spells it.
    pub fn name(self) -> &'static str {
        match self {
            Ha::Etcd => "etcd",
            Ha::Redis => "redis",
            Ha::None => "none",
        }
    }
}

/// One process started by `up`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Proc {
    /// Its name: `etcd`, `redis`, `master-0`, `node-1`, `prometheus`; also its log's name.
    pub name: String,
    /// The executable.
    pub binary: PathBuf,
    /// The arguments it was started with (a restart reuses them, ports included).
    pub args: Vec<String>,
    /// Its pid.
    pub pid: u32,
    /// Its start time in clock ticks after boot, so a recycled pid is not taken for it.
    pub start_ticks: u64,
}

impl Proc {
    /// The process's identity.
    pub fn id(&self) -> ProcessId {
        ProcessId {
            pid: self.pid,
            start_ticks: self.start_ticks,
        }
    }

    /// True while the very process that was started runs.
    pub fn is_alive(&self) -> bool {
        self.id().is_alive()
    }
}

/// The coordinator and its ports (client first).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CoordinatorEntry {
    /// The process.
    pub proc: Proc,
    /// Client port, then etcd's peer port.
    pub ports: Vec<u16>,
}

/// A master and its ports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MasterEntry {
    /// The process.
    pub proc: Proc,
    /// `--rpc_port`.
    pub rpc_port: u16,
    /// `--metrics_port`: `/health`, `/metrics`, `/dashboard`.
    pub admin_port: u16,
}

impl MasterEntry {
    /// Its RPC address.
    pub fn rpc_addr(&self) -> String {
        format!("{LOOPBACK}:{}", self.rpc_port)
    }

    /// Its admin HTTP address.
    pub fn admin_addr(&self) -> String {
        format!("{LOOPBACK}:{}", self.admin_port)
    }
}

/// A store node, its host (its failure domain) and REST port.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeEntry {
    /// The process.
    pub proc: Proc,
    /// `--local_hostname`, e.g. `127.0.0.2`.
    pub host: String,
    /// `--port`.
    pub rest_port: u16,
}

impl NodeEntry {
    /// Its REST address.
    pub fn rest_addr(&self) -> String {
        format!("{}:{}", self.host, self.rest_port)
    }
}

/// Prometheus and its port.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PrometheusEntry {
    /// The process.
    pub proc: Proc,
    /// `--web.listen-address` port.
    pub port: u16,
}

impl PrometheusEntry {
    /// Its HTTP address.
    pub fn addr(&self) -> String {
        format!("{LOOPBACK}:{}", self.port)
    }
}

/// Everything `up` started; see the [module docs](self).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    /// `--cluster_id` of every master and node.
    pub cluster_id: String,
    /// The coordinator kind.
    pub ha: Ha,
    /// `--global_segment_size` of every node.
    pub segment: String,
    /// The coordinator, unless `ha` is `none`.
    pub coordinator: Option<CoordinatorEntry>,
    /// The masters, in start order.
    pub masters: Vec<MasterEntry>,
    /// The store nodes, in start order.
    pub nodes: Vec<NodeEntry>,
    /// Prometheus, with `--prometheus`.
    pub prometheus: Option<PrometheusEntry>,
}

impl State {
    /// An empty state for a cluster about to start.
    pub fn new(cluster_id: String, ha: Ha, segment: String) -> State {
        State {
            cluster_id,
            ha,
            segment,
            coordinator: None,
            masters: Vec::new(),
            nodes: Vec::new(),
            prometheus: None,
        }
    }

    /// What clients and nodes are given as the master: the coordinator's locator with HA,
    /// else master 0's RPC address.
    pub fn locator(&self) -> String {
        match (&self.coordinator, self.ha) {
            (Some(c), Ha::Etcd) => format!("etcd://{LOOPBACK}:{}", c.ports[0]),
            (Some(c), Ha::Redis) => format!("redis://{LOOPBACK}:{}", c.ports[0]),
            _ => self
                .masters
                .first()
                .map_or_else(String::new, MasterEntry::rpc_addr),
        }
    }

    /// Every process in start order: coordinator, masters, nodes, Prometheus.
    pub fn procs(&self) -> Vec<&Proc> {
        let mut all: Vec<&Proc> = self.coordinator.iter().map(|c| &c.proc).collect();
        all.extend(self.masters.iter().map(|m| &m.proc));
        all.extend(self.nodes.iter().map(|n| &n.proc));
        all.extend(self.prometheus.iter().map(|p| &p.proc));
        all
    }

    /// Names of the processes still running.
    pub fn running(&self) -> Vec<&str> {
        self.procs()
            .into_iter()
            .filter(|p| p.is_alive())
            .map(|p| p.name.as_str())
            .collect()
    }

    /// Reads `DIR/state.json`; `None` when there is none.
    ///
    /// # Errors
    /// When the file exists but cannot be read or parsed.
    pub fn load(dir: &Path) -> Result<Option<State>> {
        let path = dir.join(STATE_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let state = serde_json::from_str(&text)
            .with_context(|| format!("{} is not an mc-cluster state file", path.display()))?;
        Ok(Some(state))
    }

    /// Reads `DIR/state.json`, failing with a hint when no cluster was started there.
    ///
    /// # Errors
    /// As for [`State::load`], and when there is no state file.
    pub fn load_existing(dir: &Path) -> Result<State> {
        match State::load(dir)? {
            Some(state) => Ok(state),
            None => bail!(
                "no cluster in {} (no {STATE_FILE}); start one with `mc-cluster up --dir {}`",
                dir.display(),
                dir.display()
            ),
        }
    }

    /// Writes `DIR/state.json` atomically (a temporary file renamed over it).
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = dir.join(STATE_FILE);
        let tmp = dir.join(format!("{STATE_FILE}.tmp"));
        let text = serde_json::to_string_pretty(self).context("state serialises")?;
        std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))
    }
}

/// The log file of the process called `name`.
pub fn log_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(LOG_DIR).join(format!("{name}.log"))
}

/// The default cluster directory: `$XDG_CACHE_HOME/mc-cluster`, else
/// `$HOME/.cache/mc-cluster`.
///
/// # Errors
/// When neither variable is set.
pub fn default_dir() -> Result<PathBuf> {
    let from = |var: &str| std::env::var_os(var).filter(|v| !v.is_empty());
    if let Some(cache) = from("XDG_CACHE_HOME") {
        return Ok(PathBuf::from(cache).join("mc-cluster"));
    }
    match from("HOME") {
        Some(home) => Ok(PathBuf::from(home).join(".cache").join("mc-cluster")),
        None => bail!("neither XDG_CACHE_HOME nor HOME is set: pass --dir DIR"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proc(name: &str) -> Proc {
        Proc {
            name: name.into(),
            binary: PathBuf::from("/bin/true"),
            args: vec![],
            pid: u32::MAX,
            start_ticks: 0,
        }
    }

    #[test]
    fn state_round_trips_and_names_its_locator() {
        let dir = std::env::temp_dir().join(format!("mc-cluster-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(State::load(&dir).unwrap().is_none());
        assert!(
            State::load_existing(&dir)
                .unwrap_err()
                .to_string()
                .contains("mc-cluster up")
        );

        let mut s = State::new("c1".into(), Ha::Redis, "64MB".into());
        s.coordinator = Some(CoordinatorEntry {
            proc: proc("redis"),
            ports: vec![7001],
        });
        s.masters.push(MasterEntry {
            proc: proc("master-0"),
            rpc_port: 7002,
            admin_port: 7003,
        });
        s.save(&dir).unwrap();
        let back = State::load_existing(&dir).unwrap();
        assert_eq!(back.locator(), "redis://127.0.0.1:7001");
        assert_eq!(back.masters[0].admin_addr(), "127.0.0.1:7003");
        let names: Vec<_> = back.procs().iter().map(|p| p.name.clone()).collect();
        assert_eq!(names, ["redis", "master-0"]);
        assert!(back.running().is_empty(), "pid u32::MAX never runs");

        let mut none = back.clone();
        none.ha = Ha::None;
        none.coordinator = None;
        assert_eq!(none.locator(), "127.0.0.1:7002");

        std::fs::write(dir.join(STATE_FILE), "{not json").unwrap();
        assert!(State::load(&dir).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
