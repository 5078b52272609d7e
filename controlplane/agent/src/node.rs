//! Bringing a store node up and down: shards, agent, REST.
//!
//! [`start`] brings a node up inside the calling process and returns a [`NodeHandle`];
//! [`NodeHandle::stop`] (or dropping the handle) drains it, unmounts its segments, stops its
//! shards and joins every thread it started. Neither touches signal handlers, so a program
//! that embeds a node (the Python binding) keeps its own. [`run`] is the `mooncake_store`
//! binary's life: start, wait for SIGTERM or SIGINT, stop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use mc_dataplane::control::{AgentLink, ChannelAgentLink, channel_pair};
use mc_dataplane::{ShardConfig, ShardHandle, start_shard};
use mc_hugepages::{Arena, RegionOptions};
use mc_schema::agent::{SegmentInfo, SegmentKind, ToShard};
use mc_topology::CorePlan;
use tracing::{info, warn};

pub use crate::error::NodeError;

use crate::agent::{Agent, AgentConfig};
use crate::config::StoreConfig;
use crate::rest;
use crate::state::{AgentStatus, Command, CommandError, MountResult};
use tokio::sync::oneshot;

/// Smallest segment a shard may have.
pub const MIN_SHARD_SEGMENT_BYTES: u64 = 16 << 20;

/// Where POSIX shared-memory objects live (`/api/mount_shm` names are files here).
pub const SHM_DIR: &str = "/dev/shm";

/// Most threads the REST server runs blocking client calls on at once.
const REST_BLOCKING_THREADS: usize = 16;

/// Longest wait for REST requests still running when the node stops.
const REST_STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// A running store node. Stop it with [`stop`](Self::stop); dropping it stops it too.
pub struct NodeHandle {
    rest_addr: SocketAddr,
    status: Arc<AgentStatus>,
    stop: Arc<AtomicBool>,
    agent: Option<JoinHandle<()>>,
    /// The copy/move task runner (`tasks.rs`).
    tasks: Option<JoinHandle<()>>,
    rest: Option<(tokio::sync::watch::Sender<bool>, JoinHandle<()>)>,
    shards: Vec<ShardHandle>,
    commands: std::sync::mpsc::Sender<Command>,
}

impl NodeHandle {
    /// The address the REST server listens on (the port is the bound one, also with
    /// `--port 0`).
    pub fn rest_addr(&self) -> SocketAddr {
        self.rest_addr
    }

    /// Every segment the node serves now: one per shard from the start, then those
    /// mounted through `/api/mount` and `/api/mount_shm`.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        self.status.segments()
    }

    /// How many of them the master has accepted (all of them once the node is mounted).
    pub fn mounted_segments(&self) -> usize {
        self.status.mounted_segments.load(Ordering::Acquire)
    }

    /// Sends `make(reply)` to the agent and waits for the answer (what `/api/mount` and
    /// friends do, for a program that embeds the node).
    fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, CommandError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .map_err(|_| CommandError::Stopping)?;
        rx.blocking_recv().map_err(|_| CommandError::Stopping)
    }

    /// Allocates `size_bytes` more memory in a shard and mounts it as a new segment.
    pub fn mount(&self, size_bytes: u64) -> MountResult {
        self.ask(|reply| Command::Mount { size_bytes, reply })?
    }

    /// Maps `size_bytes` of the shared-memory file `path` from `offset_bytes` and mounts
    /// them as a new segment.
    pub fn mount_shm(&self, path: String, offset_bytes: u64, size_bytes: u64) -> MountResult {
        self.ask(|reply| Command::MountShm {
            path,
            offset_bytes,
            size_bytes,
            reply,
        })?
    }

    /// Maps `size_bytes` of the CXL device (or stand-in file) `path` and mounts it as the
    /// node's CXL segment, `<endpoint>/cxl`.
    pub fn mount_cxl(&self, path: String, size_bytes: u64) -> MountResult {
        self.ask(|reply| Command::MountCxl {
            path,
            size_bytes,
            reply,
        })?
    }

    /// Unmounts segments mounted by [`mount`](Self::mount) (`kind` Allocated) or
    /// [`mount_shm`](Self::mount_shm) (`kind` Shm), readable for `grace` first.
    pub fn unmount(
        &self,
        segment_ids: Vec<u64>,
        kind: SegmentKind,
        grace: Duration,
    ) -> Result<(), CommandError> {
        self.ask(|reply| Command::Unmount {
            segment_ids,
            kind,
            grace,
            reply,
        })?
    }

    /// What ended without being asked to: a shard thread, or the agent thread. `None`
    /// while every part runs (or once a stop was asked for).
    pub fn died(&self) -> Option<String> {
        if self.stop.load(Ordering::Acquire) {
            return None;
        }
        if let Some(h) = self.shards.iter().find(|h| h.is_finished()) {
            return Some(format!(
                "shard {} (segment {}) ended unasked",
                h.index, h.segment.name
            ));
        }
        self.agent
            .as_ref()
            .is_some_and(JoinHandle::is_finished)
            .then(|| "the agent thread ended unasked".to_string())
    }

    /// Drains the node (no new allocations, transfers under way finish, up to
    /// `--drain_timeout`), unmounts its segments, stops the shards and the REST server, and
    /// waits for all their threads.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let Some(agent) = self.agent.take() else {
            return;
        };
        self.stop.store(true, Ordering::Release);
        // The agent answers what it still holds with "stopping", unmounts, stops the shards.
        if agent.join().is_err() {
            warn!("the agent thread panicked; shards may not have been told to stop");
        }
        if let Some(t) = self.tasks.take() {
            let _ = t.join();
        }
        if let Some((tx, thread)) = self.rest.take() {
            let _ = tx.send(true);
            let _ = thread.join();
        }
        for h in self.shards.drain(..) {
            h.join();
        }
        info!("store node stopped");
    }
}

impl Drop for NodeHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Stops shards started before a later step of [`start`] failed.
fn abandon<L: AgentLink>(links: Vec<L>, shards: Vec<ShardHandle>) {
    for l in &links {
        let _ = l.send(ToShard::Stop);
    }
    for h in shards {
        h.join();
    }
}

/// Starts a store node in this process: its shards, then the agent (which mounts their
/// segments with the master in the background, retrying until the master answers) and the
/// REST server. Returns once the shards serve and the REST port is bound. Installs no
/// signal handlers. Whatever a failed step leaves behind is stopped before the error
/// returns.
pub fn start(cfg: StoreConfig) -> Result<NodeHandle, NodeError> {
    start_with_arena(cfg, None)
}

/// [`start`], with `arena` (when given) as the node's mmap arena instead of one reserved
/// from `--mmap_arena_pool_size` (`MC_MMAP_ARENA_POOL_SIZE`): a process that already holds
/// an arena (the Python binding's host buffers) shares it rather than reserving the pool
/// twice.
pub fn start_with_arena(cfg: StoreConfig, arena: Option<Arena>) -> Result<NodeHandle, NodeError> {
    // Flags and the REST port first: they fail without anything to clean up.
    let (plan, per_shard) = plan_shards(&cfg)?;
    let rest = RestBinding::bind(&cfg)?;
    let arena = match arena {
        Some(a) => Some(a),
        None => reserve_arena(&cfg, &plan)?,
    };
    let (shards, links) = start_shards(&cfg, &plan, per_shard, arena.as_ref())?;
    let status = Arc::new(AgentStatus::default());
    let stats: Vec<_> = shards.iter().map(|h| h.stats.clone()).collect();
    let metrics = crate::metrics::NodeMetrics::new(status.clone(), &stats, arena.clone());
    let parts = NodeParts {
        links,
        shards,
        status,
        metrics: MetricsPlan::Local(metrics),
        arena,
        client_id: None,
    };
    assemble(&cfg, parts, rest)
}

/// The REST listener, bound before anything else starts (a taken port fails first).
pub(crate) struct RestBinding {
    listener: std::net::TcpListener,
    addr: SocketAddr,
    body_limit_bytes: usize,
}

impl RestBinding {
    /// Binds `--rest_host:--port` and checks `--rest_body_limit`.
    pub(crate) fn bind(cfg: &StoreConfig) -> Result<RestBinding, NodeError> {
        cfg.cxl()?;
        let body_limit_bytes = usize::try_from(cfg.rest_body_limit).map_err(|_| {
            NodeError::Config(format!(
                "--rest_body_limit={} does not fit in memory addresses; lower --rest_body_limit",
                cfg.rest_body_limit
            ))
        })?;
        let listener = bind_rest(cfg)?;
        let addr = listener.local_addr().map_err(|source| NodeError::Rest {
            addr: format!("{}:{}", cfg.rest_host, cfg.port),
            source,
        })?;
        Ok(RestBinding {
            listener,
            addr,
            body_limit_bytes,
        })
    }
}

/// What the agent side of a node is made of: links to shards that already serve (in this
/// process, or in the data-plane process), the shards themselves when they are local, the
/// status and metrics the REST server shows, the arena, and the node's id at the master.
pub(crate) struct NodeParts<L: AgentLink> {
    pub(crate) links: Vec<L>,
    pub(crate) shards: Vec<ShardHandle>,
    pub(crate) status: Arc<AgentStatus>,
    pub(crate) metrics: MetricsPlan,
    pub(crate) arena: Option<Arena>,
    pub(crate) client_id: Option<u64>,
}

/// Where the node's `/metrics` gets the shards' families.
pub(crate) enum MetricsPlan {
    /// The shards are in this process: one registry holds everything.
    Local(crate::metrics::NodeMetrics),
    /// The shards are in the data-plane process: asked of shard 0 over its ring when
    /// scraped, after the agent's own gauges.
    FromShards(crate::metrics::ProcessFigures),
}

/// Longest wait for the data plane's families when `/metrics` is scraped.
const REMOTE_METRICS_TIMEOUT: Duration = Duration::from_secs(5);

/// The data plane's families, asked of the agent thread (which asks shard 0); empty and
/// logged when no answer comes in time.
fn ask_metrics(commands: &std::sync::mpsc::Sender<Command>) -> String {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    if commands.send(Command::Metrics { reply: tx }).is_err() {
        return String::new();
    }
    rx.recv_timeout(REMOTE_METRICS_TIMEOUT).unwrap_or_else(|_| {
        warn!("the data plane's metrics are missing from this scrape (no answer from shard 0)");
        String::new()
    })
}

/// Starts the agent and the REST server over `parts`, then mounts the CXL memory if asked.
/// Whatever a failed step leaves behind is stopped before the error returns.
pub(crate) fn assemble<L: AgentLink + 'static>(
    cfg: &StoreConfig,
    parts: NodeParts<L>,
    rest: RestBinding,
) -> Result<NodeHandle, NodeError> {
    let NodeParts {
        links,
        shards,
        status,
        metrics,
        arena,
        client_id,
    } = parts;
    let mut agent_cfg = agent_config(cfg);
    agent_cfg.client_id = client_id;
    // The agent takes the links, and gives them back if it cannot start.
    let agent = match Agent::new(agent_cfg, links, status.clone()) {
        Ok(a) => a,
        Err((e, links)) => {
            abandon(links, shards);
            return Err(e);
        }
    };
    let (commands_tx, commands_rx) = std::sync::mpsc::channel();
    let sync_tx = commands_tx.clone();
    let own_tx = commands_tx.clone();
    let shard_count = agent.shard_count();
    let metrics = match metrics {
        MetricsPlan::Local(m) => m,
        MetricsPlan::FromShards(figures) => {
            let ask = commands_tx.clone();
            let remote: crate::metrics::RemoteFamilies = Arc::new(move || ask_metrics(&ask));
            crate::metrics::NodeMetrics::for_agent(status.clone(), shard_count, figures, remote)
        }
    };
    let state = rest_state(
        cfg,
        &status,
        shard_count,
        commands_tx,
        rest.body_limit_bytes,
        metrics,
    );
    drop(arena);
    let stop = Arc::new(AtomicBool::new(false));
    let client_id = agent.client_id();
    let task_client = state.client.clone();
    let agent_thread = match spawn_agent(agent, stop.clone(), (sync_tx, commands_rx)) {
        Ok(t) => t,
        Err(e) => {
            // The links went with the closure that never ran: dropping them closes the
            // shards' control links, which stops the shards.
            for h in shards {
                h.join();
            }
            return Err(e);
        }
    };
    let tasks =
        crate::tasks::spawn(task_client, client_id, stop.clone()).map_err(NodeError::AgentThread);
    let mut handle = NodeHandle {
        rest_addr: rest.addr,
        status,
        stop,
        agent: Some(agent_thread),
        tasks: None,
        rest: None,
        shards,
        commands: own_tx,
    };
    // On error the handle drops here and stops everything started so far.
    handle.tasks = Some(tasks?);
    // A restarted agent finds the CXL segment its predecessor mounted still served.
    let have_cxl = handle.segments().iter().any(|s| s.kind == SegmentKind::Cxl);
    if let Some((path, size)) = cfg.cxl()?.filter(|_| !have_cxl) {
        let seg = handle
            .mount_cxl(path.clone(), size)
            .map_err(|e| NodeError::Config(format!("--enable_cxl: cannot mount {path}: {e}")))?;
        info!(segment = ?seg, size_bytes = size, "CXL memory mounted from {path}");
    }
    // REST last, so `/health` never answers before the CXL memory is mounted. On error the
    // handle drops here and stops everything started so far.
    handle.rest = Some(spawn_rest(rest.listener, rest.addr, state)?);
    info!(
        "store node up: {} shard(s), {} bytes, master {}, REST on {}",
        shard_count, cfg.global_segment_size, cfg.master_server, rest.addr
    );
    Ok(handle)
}

/// The core plan and each shard's segment size, checked against the 16 MiB minimum.
pub(crate) fn plan_shards(cfg: &StoreConfig) -> Result<(CorePlan, u64), NodeError> {
    let plan = core_plan(cfg)?;
    let shard_count = plan.shards.len() as u64;
    info!("core plan: {} shard(s): {}", shard_count, plan.reason);
    for s in &plan.shards {
        info!(
            shard = s.index,
            core = ?s.core,
            numa_node = ?s.numa_node,
            "shard placement (memory bound to numa_node)"
        );
    }
    let per_shard = cfg.global_segment_size / shard_count;
    if per_shard < MIN_SHARD_SEGMENT_BYTES {
        return Err(NodeError::Config(format!(
            "--global_segment_size={} gives {} bytes per shard over {} shard(s); each needs at least 16 MiB: \
             raise --global_segment_size or lower --cores",
            cfg.global_segment_size, per_shard, shard_count
        )));
    }
    Ok((plan, per_shard))
}

/// The core plan near the NICs (`MC_MS_AUTO_DISC`, `MC_MS_FILTERS`, `--device_name`) on
/// the topology in `/sys`; without a readable sysfs, the plan without topology (logged).
fn core_plan(cfg: &StoreConfig) -> Result<CorePlan, NodeError> {
    let available = mc_topology::online_cpus();
    let root = std::path::Path::new(mc_topology::SYSFS_ROOT);
    let topo = match mc_topology::Topology::discover(root) {
        Ok(t) => t,
        Err(e) => {
            warn!("no topology ({e}); planning cores without NUMA or NIC locality");
            return Ok(mc_topology::plan(&cfg.cores, &available)?);
        }
    };
    let nic_cfg = mc_topology::NicConfig::from_env(vec![cfg.device_name.clone()])?;
    let choice = mc_topology::select_nics(&topo.nics, &nic_cfg)?;
    Ok(mc_topology::plan_for(
        &cfg.cores, &available, &topo, &choice,
    )?)
}

/// The mmap arena runtime mounts draw from (`MC_MMAP_ARENA_POOL_SIZE`, off with
/// `MC_DISABLE_MMAP_ARENA=1`), reserved now with the segments' hugepage settings and bound
/// to the shards' NUMA node when they share one. A pool that cannot be had is an error: the
/// operator asked for it by size. A hugetlb pool that is short falls back to plain pages
/// (logged) unless `--hugepages=require`.
pub(crate) fn reserve_arena(
    cfg: &StoreConfig,
    plan: &CorePlan,
) -> Result<Option<Arena>, NodeError> {
    let Some(pool) = cfg.mmap_arena_pool_size.filter(|&b| b > 0) else {
        return Ok(None);
    };
    if cfg.disable_mmap_arena {
        info!(
            pool_bytes = pool,
            "MC_DISABLE_MMAP_ARENA: no mmap arena despite MC_MMAP_ARENA_POOL_SIZE; each mount maps its own memory"
        );
        return Ok(None);
    }
    let fail = |why: String| NodeError::Config(format!("MC_MMAP_ARENA_POOL_SIZE={pool}: {why}"));
    let pool_bytes = usize::try_from(pool).map_err(|_| fail("does not fit in memory".into()))?;
    if cfg.hugepages != mc_hugepages::HugePolicy::Require
        && let Some(avail) = mc_hugepages::available_memory_bytes()
        && pool > avail
    {
        return Err(fail(format!(
            "more than the {avail} bytes of memory available; lower it or unset it"
        )));
    }
    let mut nodes: Vec<Option<usize>> = plan.shards.iter().map(|s| s.numa_node).collect();
    nodes.dedup();
    let opts = RegionOptions {
        name: "mc-arena".into(),
        huge: cfg.hugepages,
        huge_page_bytes: cfg.hugepage_size,
        numa_node: if nodes.len() == 1 { nodes[0] } else { None },
        ..RegionOptions::default()
    };
    Arena::reserve(pool_bytes, &opts)
        .map(Some)
        .map_err(|e| fail(e.to_string()))
}

/// Starts one shard per placement of `plan`, each with a `per_shard`-byte segment, and
/// returns them with the agent's end of each control link. If one fails, those already
/// started are stopped.
fn start_shards(
    cfg: &StoreConfig,
    plan: &CorePlan,
    per_shard: u64,
    arena: Option<&Arena>,
) -> Result<(Vec<ShardHandle>, Vec<ChannelAgentLink>), NodeError> {
    let mut shards = Vec::new();
    let mut links = Vec::new();
    let ssd = cfg.ssd(plan.shards.len())?;
    for p in &plan.shards {
        let (agent_link, shard_link) = channel_pair();
        let started = shard_config(cfg, plan, p, per_shard, arena, ssd.clone())
            .and_then(|c| Ok(start_shard(c, shard_link)?));
        match started {
            Ok(h) => shards.push(h),
            Err(e) => {
                abandon(links, shards);
                return Err(e);
            }
        }
        links.push(agent_link);
    }
    Ok((shards, links))
}

/// The settings of the shard placed at `p`.
pub(crate) fn shard_config(
    cfg: &StoreConfig,
    plan: &CorePlan,
    p: &mc_topology::ShardPlacement,
    per_shard: u64,
    arena: Option<&Arena>,
    ssd: Option<mc_dataplane::ssd::SsdConfig>,
) -> Result<ShardConfig, NodeError> {
    let port = if cfg.data_port == 0 {
        Some(0)
    } else {
        cfg.data_port.checked_add(p.index as u16)
    };
    let Some(data_port) = port else {
        return Err(NodeError::Config(format!(
            "--data_port={} + {} shard(s) exceeds 65535; lower --data_port (0 picks free ports) or --cores",
            cfg.data_port,
            plan.shards.len()
        )));
    };
    Ok(ShardConfig {
        index: p.index,
        core: p.core,
        host: cfg.local_hostname.clone(),
        data_port,
        segment_bytes: per_shard as usize,
        region: RegionOptions {
            name: format!("mc-seg-{}", p.index),
            huge: cfg.hugepages,
            huge_page_bytes: cfg.hugepage_size,
            numa_node: p.numa_node,
            ..RegionOptions::default()
        },
        arena: arena.cloned(),
        cluster_id: cfg.cluster_id(),
        io_memory_bytes: cfg.io_memory as usize,
        control_poll_interval: mc_dataplane::shard::CONTROL_POLL_INTERVAL,
        ssd,
        // Serves the shard's memory files to clients of this host (same-host reads).
        keeper: Some(mc_dataplane::local::LocalKeeper::handle(
            &cfg.cluster_id(),
            None,
        )),
        metrics: None,
    })
}

/// The agent's settings, from the flags.
fn agent_config(cfg: &StoreConfig) -> AgentConfig {
    AgentConfig {
        master: cfg.master_server.clone(),
        cluster_id: cfg.cluster_id(),
        host: cfg.local_hostname.clone(),
        heartbeat_interval: cfg.heartbeat_interval,
        rpc_timeout: cfg.rpc_timeout,
        drain_timeout: cfg.drain_timeout,
        client_id: None,
    }
}

/// What the REST handlers read: the agent's status and command channel, the node's
/// metrics, and a client of the cluster (connected on first use) for the data endpoints.
fn rest_state(
    cfg: &StoreConfig,
    status: &Arc<AgentStatus>,
    shards: usize,
    commands: std::sync::mpsc::Sender<Command>,
    body_limit_bytes: usize,
    metrics: crate::metrics::NodeMetrics,
) -> rest::RestState {
    let mut client_cfg = mooncake_rs::StoreConfig::new(cfg.master_server.clone());
    client_cfg.cluster_id = cfg.cluster_id();
    client_cfg.local_hostname = cfg.local_hostname.clone();
    client_cfg.rpc_timeout = cfg.rpc_timeout;
    rest::RestState {
        status: status.clone(),
        shards,
        host: cfg.local_hostname.clone(),
        metrics,
        commands,
        client: Arc::new(rest::LazyStore::new(client_cfg)),
        body_limit_bytes,
        shm_dir: SHM_DIR.into(),
    }
}

/// Runs the agent on its own thread until `stop` is set. If the thread cannot start, the
/// agent (and with it the shards' control links) is dropped.
fn spawn_agent<L: AgentLink + 'static>(
    mut agent: Agent<L>,
    stop: Arc<AtomicBool>,
    (sync_tx, commands): (
        std::sync::mpsc::Sender<Command>,
        std::sync::mpsc::Receiver<Command>,
    ),
) -> Result<JoinHandle<()>, NodeError> {
    std::thread::Builder::new()
        .name("mc-agent".into())
        .spawn(move || agent.run(&stop, &commands, sync_tx))
        .map_err(NodeError::AgentThread)
}

/// Runs a store node until SIGTERM / SIGINT; then unmounts, stops the shards and returns.
/// A shard or the agent ending unasked stops the node the same way and returns
/// [`NodeError::PartDied`].
pub fn run(cfg: StoreConfig) -> Result<(), NodeError> {
    let signalled = stop_signals()?;
    let node = start(cfg)?;
    serve_until_signalled(node, &signalled)
}

/// A flag SIGTERM and SIGINT set.
pub(crate) fn stop_signals() -> Result<Arc<AtomicBool>, NodeError> {
    let signalled = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, signalled.clone()).map_err(NodeError::Signals)?;
    }
    Ok(signalled)
}

/// Watches `node` until `signalled`, then stops it in order. A part ending unasked stops
/// it the same way and returns [`NodeError::PartDied`]: a node that keeps heartbeating with
/// a dead shard would have the master place replicas on a port nobody serves.
pub(crate) fn serve_until_signalled(
    node: NodeHandle,
    signalled: &AtomicBool,
) -> Result<(), NodeError> {
    while !signalled.load(Ordering::Acquire) {
        if let Some(what) = node.died() {
            tracing::error!("{what}: stopping");
            node.stop();
            return Err(NodeError::PartDied(what));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    info!("signal received: stopping");
    node.stop();
    Ok(())
}

/// Longest wait for a REST port still held by a node process that was just killed (its
/// children die a moment after it).
const REST_BIND_RETRY: Duration = Duration::from_secs(3);

fn bind_rest(cfg: &StoreConfig) -> Result<std::net::TcpListener, NodeError> {
    let addr = format!("{}:{}", cfg.rest_host, cfg.port);
    let rest_err = |source: std::io::Error| NodeError::Rest {
        addr: addr.clone(),
        source,
    };
    let until = std::time::Instant::now() + REST_BIND_RETRY;
    let listener = loop {
        match std::net::TcpListener::bind(&addr) {
            Ok(l) => break l,
            Err(e)
                if e.kind() == std::io::ErrorKind::AddrInUse
                    && cfg.port != 0
                    && std::time::Instant::now() < until =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(rest_err(e)),
        }
    };
    listener.set_nonblocking(true).map_err(rest_err)?;
    Ok(listener)
}

/// Serves the REST API on its own thread until the returned sender says `true`; requests
/// still running then get [`REST_STOP_TIMEOUT`] to finish.
fn spawn_rest(
    listener: std::net::TcpListener,
    addr: SocketAddr,
    state: rest::RestState,
) -> Result<(tokio::sync::watch::Sender<bool>, JoinHandle<()>), NodeError> {
    let rest_err = |source: std::io::Error| NodeError::RestThread {
        addr: addr.to_string(),
        source,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(REST_BLOCKING_THREADS)
        .build()
        .map_err(rest_err)?;
    let (tx, rx) = tokio::sync::watch::channel(false);
    let thread = std::thread::Builder::new()
        .name("mc-rest".into())
        .spawn(move || {
            rt.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!("REST server on {addr}: {e}");
                        return;
                    }
                };
                let stopping = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
                    let _ = rx.wait_for(|stop| *stop).await;
                };
                let serve = axum::serve(listener, rest::router(state))
                    .with_graceful_shutdown(stopping(rx.clone()));
                let deadline = async {
                    stopping(rx).await;
                    tokio::time::sleep(REST_STOP_TIMEOUT).await;
                };
                tokio::select! {
                    r = serve => if let Err(e) = r {
                        tracing::error!("REST server failed: {e}");
                    },
                    () = deadline => warn!("REST requests still running after the stop timeout were cut"),
                }
            });
            // Blocking client calls still running get a bounded wait.
            rt.shutdown_timeout(REST_STOP_TIMEOUT);
        })
        .map_err(rest_err)?;
    Ok((tx, thread))
}
