//! `mc-cluster up`: coordinator, masters, nodes and Prometheus, each detached, each waited
//! for, recorded in the state file as soon as it runs.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use mc_cluster::{
    CoordinatorKind, MASTER_BINARY, STORE_BINARY, answers, command_line, find_binary, find_tool,
    pick_free_port, pick_free_ports,
};

use super::launch::{
    READY_TIMEOUT, master_answers, master_args, node_args, node_ready, prometheus_args,
    prometheus_ready, spawn, wait_ready,
};
use super::state::{
    CoordinatorEntry, Ha, LOG_DIR, LOOPBACK, MasterEntry, NodeEntry, PrometheusEntry, State,
};
use super::{down, health, report};

/// What `up` starts.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// Masters to run (1 without HA).
    pub masters: usize,
    /// Store nodes, on 127.0.0.2, 127.0.0.3, ...
    pub nodes: usize,
    /// The coordinator.
    pub ha: Ha,
    /// Segment size of each node, e.g. `1GB`.
    pub segment: String,
    /// Whether to run Prometheus.
    pub prometheus: bool,
    /// The cluster id.
    pub cluster_id: String,
}

/// The executables `up` needs, found before anything starts.
struct Binaries {
    master: PathBuf,
    store: PathBuf,
    coordinator: Option<(CoordinatorKind, PathBuf)>,
    prometheus: Option<PathBuf>,
}

impl Binaries {
    fn find(opts: &UpOptions) -> Result<Binaries> {
        let coordinator = coordinator_kind(opts.ha)
            .map(|kind| find_tool(kind.binary(), kind.package()).map(|path| (kind, path)))
            .transpose()?;
        let prometheus = opts
            .prometheus
            .then(|| find_tool("prometheus", "prometheus"))
            .transpose()?;
        Ok(Binaries {
            master: find_binary(MASTER_BINARY, None)?,
            store: find_binary(STORE_BINARY, None)?,
            coordinator,
            prometheus,
        })
    }
}

fn coordinator_kind(ha: Ha) -> Option<CoordinatorKind> {
    match ha {
        Ha::Etcd => Some(CoordinatorKind::Etcd),
        Ha::Redis => Some(CoordinatorKind::Redis),
        Ha::None => None,
    }
}

/// Starts the cluster in `dir` and prints its endpoints; if one already runs there, says so
/// and prints its endpoints instead.
///
/// # Errors
/// When a tool is missing (naming the package), the options conflict, or a process fails to
/// start; everything started so far is killed first.
pub fn up(dir: &Path, opts: &UpOptions) -> Result<()> {
    if opts.ha == Ha::None && opts.masters != 1 {
        bail!(
            "--ha none runs exactly one master (got --masters {}); use --ha etcd or --ha redis",
            opts.masters
        );
    }
    if opts.masters == 0 || opts.nodes == 0 {
        bail!("a cluster needs at least one master and one node");
    }
    if opts.nodes > 250 {
        bail!(
            "--nodes {} is more than the 127.0.0.x loopback hosts left",
            opts.nodes
        );
    }
    if let Some(old) = State::load(dir)? {
        let running = old.running();
        if !running.is_empty() {
            println!(
                "mc-cluster: a cluster already runs in {} ({} of {} processes up: {}); \
                 not starting another",
                dir.display(),
                running.len(),
                old.procs().len(),
                running.join(", ")
            );
            report::print(dir, &old);
            return Ok(());
        }
    }
    let bins = Binaries::find(opts)?;
    std::fs::create_dir_all(dir.join(LOG_DIR))
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", dir.display()))?;
    let mut state = State::new(opts.cluster_id.clone(), opts.ha, opts.segment.clone());
    state.save(&dir)?;
    if let Err(e) = start_all(&dir, &bins, opts, &mut state) {
        down::kill_all(&state);
        let _ = state.save(&dir);
        return Err(e.context("mc-cluster up failed; every process it started was stopped"));
    }
    println!("mc-cluster: cluster up in {}", dir.display());
    report::print(&dir, &state);
    Ok(())
}

fn start_all(dir: &Path, bins: &Binaries, opts: &UpOptions, state: &mut State) -> Result<()> {
    if let Some((kind, binary)) = &bins.coordinator {
        start_coordinator(dir, *kind, binary, state)?;
    }
    for i in 0..opts.masters {
        start_master(dir, &bins.master, i, state)?;
    }
    health::wait_for_leader(state, None, READY_TIMEOUT)?;
    for i in 0..opts.nodes {
        start_node(dir, &bins.store, i, state)?;
    }
    // "Up" means the leader serves every lookup, not only that one was elected.
    health::wait_for_serving(state, READY_TIMEOUT)?;
    if let Some(binary) = &bins.prometheus {
        start_prometheus(dir, binary, state)?;
    }
    Ok(())
}

fn start_coordinator(
    dir: &Path,
    kind: CoordinatorKind,
    binary: &Path,
    state: &mut State,
) -> Result<()> {
    let ports = pick_free_ports(LOOPBACK, kind.port_count())?;
    let data = dir.join(kind.backend());
    // A stopped cluster's coordinator data would hold its old member ports and master view
    // (whose restored lease would delay the first election): start from nothing.
    if data.exists() {
        std::fs::remove_dir_all(&data)
            .with_context(|| format!("cannot remove the old {}", data.display()))?;
    }
    std::fs::create_dir_all(&data).with_context(|| format!("cannot create {}", data.display()))?;
    let name = kind.backend();
    let (mut child, proc) = spawn(dir, name, binary, command_line(kind, &data, &ports))?;
    state.coordinator = Some(CoordinatorEntry {
        proc,
        ports: ports.clone(),
    });
    state.save(dir)?;
    wait_ready(dir, &mut child, name, || answers(kind, ports[0]))
}

fn start_master(dir: &Path, binary: &Path, i: usize, state: &mut State) -> Result<()> {
    let ports = pick_free_ports(LOOPBACK, 2)?;
    let name = format!("master-{i}");
    let args = master_args(state, ports[0], ports[1]);
    let (mut child, proc) = spawn(dir, &name, binary, args)?;
    let entry = MasterEntry {
        proc,
        rpc_port: ports[0],
        admin_port: ports[1],
    };
    let admin = entry.admin_addr();
    state.masters.push(entry);
    state.save(dir)?;
    wait_ready(dir, &mut child, &name, || master_answers(&admin))
}

fn start_node(dir: &Path, binary: &Path, i: usize, state: &mut State) -> Result<()> {
    let host = format!("127.0.0.{}", i + 2);
    let rest_port = pick_free_port(&host)?;
    let name = format!("node-{i}");
    let args = node_args(state, &host, rest_port);
    let (mut child, proc) = spawn(dir, &name, binary, args)?;
    let entry = NodeEntry {
        proc,
        host,
        rest_port,
    };
    let rest = entry.rest_addr();
    state.nodes.push(entry);
    state.save(dir)?;
    wait_ready(dir, &mut child, &name, || node_ready(&rest))
}

fn start_prometheus(dir: &Path, binary: &Path, state: &mut State) -> Result<()> {
    let port = pick_free_port(LOOPBACK)?;
    let args = prometheus_args(dir, state, port)?;
    let (mut child, proc) = spawn(dir, "prometheus", binary, args)?;
    let entry = PrometheusEntry { proc, port };
    let addr = entry.addr();
    state.prometheus = Some(entry);
    state.save(dir)?;
    wait_ready(dir, &mut child, "prometheus", || prometheus_ready(&addr))
}
