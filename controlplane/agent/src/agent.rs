//! The agent loop: mount every segment with the master, heartbeat, re-mount after the
//! master forgot us (restart), mount and unmount segments on request, unmount on stop.
//!
//! The agent owns the node's segment list. Requests from the REST server arrive as
//! [`Command`]s on a channel and are answered on a oneshot; the agent turns them into shard
//! messages (`ToShard::Mount`, `MountShm`, `Unmount`) and master calls, and never waits
//! for a shard inside one tick: answers are matched to requests by number, so heartbeats
//! keep going while a shard prefaults a large segment.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use mc_dataplane::control::AgentLink;
use mc_schema::ErrorCode;
use mc_schema::agent::{FromShard, SegmentInfo, SegmentKind, ToShard};
use mc_schema::msg::{Request, ResponseBody};
use tokio::sync::oneshot;
use tracing::{info, warn};

use crate::NodeError;
use crate::leader::MasterLink;

mod hits;
mod inventory;
mod offload;
mod runtime;
pub mod sync;

// Shared with the REST server, so they live in `state`; embedders know them as the agent's.
pub use crate::state::{AgentStatus, Command, CommandError, MountResult};

/// Longest pause of the agent loop between looks at its commands and shard answers.
const TICK: Duration = Duration::from_millis(20);

/// Pause between attempts to reach a master that does not have the node mounted.
const REMOUNT_RETRY: Duration = Duration::from_millis(100);

/// Longest wait for a shard to announce its start-up segment.
const ANNOUNCE_TIMEOUT: Duration = Duration::from_secs(30);

/// Agent settings.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Master RPC address or coordinator locator (`--master_server`).
    pub master: String,
    /// Cluster id.
    pub cluster_id: String,
    /// This node's host (failure domain).
    pub host: String,
    /// Time between heartbeats.
    pub heartbeat_interval: Duration,
    /// Deadline of one master call.
    pub rpc_timeout: Duration,
    /// Longest wait for in-flight transfers when the node stops.
    pub drain_timeout: Duration,
    /// The node's id at the master; `None` picks a random one. A restarted agent process
    /// takes its predecessor's (the supervisor keeps it), so the master accepts the same
    /// segments again from the same node.
    pub client_id: Option<u64>,
}

/// One segment of the node as the agent tracks it.
#[derive(Debug, Clone)]
struct NodeSegment {
    info: SegmentInfo,
    /// Whether the master has it mounted (as far as the agent knows).
    at_master: bool,
    /// Set once an unmount was asked: no new allocations, released at this instant.
    release_at: Option<Instant>,
    /// Set once the shard was asked to release it.
    releasing: bool,
}

/// A shard request waiting for its answer.
enum Pending {
    Mount(oneshot::Sender<MountResult>),
    /// An unmount; `group` names the zero-grace request to answer when all are released.
    Unmount {
        group: Option<u64>,
    },
    /// A `Metrics` asked of shard 0.
    Metrics(std::sync::mpsc::SyncSender<String>),
}

/// A zero-grace unmount waiting for its segments to be released.
struct Group {
    left: usize,
    reply: oneshot::Sender<Result<(), CommandError>>,
}

/// The agent of one node.
pub struct Agent<L: AgentLink> {
    cfg: AgentConfig,
    links: Vec<L>,
    segments: Vec<NodeSegment>,
    client_id: u64,
    status: Arc<AgentStatus>,
    link: MasterLink,
    mounted: bool,
    last_error: Option<String>,
    next_request: u64,
    pending: HashMap<u64, Pending>,
    groups: HashMap<u64, Group>,
    /// Segments released here whose unmount the master has not confirmed yet.
    orphans: Vec<u64>,
    /// Shared with the sync thread: the term seen and the notices applied.
    sync: Arc<sync::SyncState>,
    /// Notice batches being applied: (term, sequence number) → shards that have not
    /// answered.
    applying: HashMap<(u64, u64), usize>,
    /// The highest master term the shards were told (they refuse older writers).
    shards_term: u64,
    /// The write-token secret last handed to the shards.
    write_secret: Vec<u8>,
    /// Keys clients read from their location caches since the last report.
    hits: std::collections::HashSet<String>,
    /// When hits were last reported.
    last_hits: Instant,
}

impl<L: AgentLink> Agent<L> {
    /// An agent over the given shard links. Collects each shard's segment announcement;
    /// on failure gives the links back (so the caller can stop the shards).
    pub fn new(
        cfg: AgentConfig,
        links: Vec<L>,
        status: Arc<AgentStatus>,
    ) -> Result<Agent<L>, (NodeError, Vec<L>)> {
        let segments = match Self::announcements(&links) {
            Ok(s) => s,
            Err(e) => return Err((e, links)),
        };
        let link = match MasterLink::new(&cfg.master, &cfg.cluster_id, cfg.rpc_timeout) {
            Ok(l) => l,
            Err(e) => return Err((e, links)),
        };
        let client_id = cfg.client_id.unwrap_or_else(|| rand::random::<u64>() | 1);
        let agent = Agent {
            cfg,
            links,
            segments,
            client_id,
            status,
            link,
            mounted: false,
            last_error: None,
            // Random, so answers a dead predecessor's requests get on the rings match nothing here.
            next_request: (rand::random::<u64>() >> 8) | 1,
            pending: HashMap::new(),
            groups: HashMap::new(),
            orphans: Vec::new(),
            sync: Arc::new(sync::SyncState::default()),
            applying: HashMap::new(),
            shards_term: 0,
            write_secret: Vec::new(),
            hits: Default::default(),
            last_hits: Instant::now(),
        };
        agent.publish();
        Ok(agent)
    }

    /// Every segment of every shard, asked for with `Describe` (a shard answers with its
    /// segments, then `Described`).
    fn announcements(links: &[L]) -> Result<Vec<NodeSegment>, NodeError> {
        let mut segments = Vec::new();
        for (i, link) in links.iter().enumerate() {
            link.send(ToShard::Describe)
                .map_err(|source| NodeError::ShardLink { shard: i, source })?;
            let deadline = Instant::now() + ANNOUNCE_TIMEOUT;
            loop {
                match link.recv_timeout(Duration::from_millis(100)) {
                    Ok(Some(FromShard::Segment(s))) => segments.push(NodeSegment {
                        info: s,
                        at_master: false,
                        release_at: None,
                        releasing: false,
                    }),
                    Ok(Some(FromShard::Described { .. })) => break,
                    Ok(Some(other)) => warn!(shard = i, "unexpected message at start: {other:?}"),
                    Ok(None) if Instant::now() < deadline => {}
                    Ok(None) => {
                        return Err(NodeError::ShardSilent {
                            shard: i,
                            timeout_seconds: ANNOUNCE_TIMEOUT.as_secs(),
                        });
                    }
                    Err(source) => return Err(NodeError::ShardLink { shard: i, source }),
                }
            }
        }
        Ok(segments)
    }

    /// The node's id at the master.
    pub fn client_id(&self) -> u64 {
        self.client_id
    }

    /// Shards the agent reaches.
    pub fn shard_count(&self) -> usize {
        self.links.len()
    }

    /// Segments of this node.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        self.segments.iter().map(|s| s.info.clone()).collect()
    }

    /// Copies the segment list and the mounted count into the shared status.
    fn publish(&self) {
        let n = self.segments.iter().filter(|s| s.at_master).count();
        self.status.mounted_segments.store(n, Ordering::Release);
        *self
            .status
            .segments
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = self.segments();
    }

    /// Logs a failed master call (once per distinct error) and drops the connection.
    fn note_error(&mut self, e: &NodeError) {
        let e = e.to_string();
        if self.last_error.as_ref() != Some(&e) {
            warn!("master unreachable or refusing: {e}");
            self.last_error = Some(e);
        }
        self.link.disconnect();
        self.status.master_connected.store(false, Ordering::Release);
    }

    /// One call to the leading master, connecting first if needed.
    fn call(&mut self, req: &Request) -> Result<mc_schema::msg::Response, NodeError> {
        let timeout = self.cfg.rpc_timeout;
        self.call_within(req, timeout)
    }

    /// [`call`](Self::call) with a deadline of its own.
    fn call_within(
        &mut self,
        req: &Request,
        timeout: Duration,
    ) -> Result<mc_schema::msg::Response, NodeError> {
        let r = self.link.call_within(req, timeout)?;
        if self.last_error.take().is_some() {
            info!("master reachable again at {}", self.link.describe());
        }
        self.status.master_connected.store(true, Ordering::Release);
        Ok(r)
    }

    /// Several calls pipelined to the leading master ([`MasterLink::call_many`]).
    fn call_many(&mut self, reqs: &[Request]) -> Result<Vec<mc_schema::msg::Response>, NodeError> {
        let r = self.link.call_many(reqs)?;
        if self.last_error.take().is_some() {
            info!("master reachable again at {}", self.link.describe());
        }
        self.status.master_connected.store(true, Ordering::Release);
        Ok(r)
    }

    /// Mounts one segment at the master. With `reports` the master places nothing in it
    /// until the node reported its inventory; a fresh (empty) segment needs no report.
    fn mount_at_master(&mut self, s: &SegmentInfo, reports: bool) -> Result<(), NodeError> {
        let r = self
            .call(&Request::MountSegment {
                client_id: self.client_id,
                segment_id: s.segment_id,
                name: s.name.clone(),
                host: self.cfg.host.clone(),
                endpoint: s.endpoint.clone(),
                size: s.size_bytes,
                term_seen: self.sync.term.load(Ordering::Acquire),
                reports_inventory: reports,
                disk: s.kind == SegmentKind::LocalDisk,
            })
            .inspect_err(|e| self.note_error(e))?;
        if r.status != 0 {
            return Err(NodeError::MountRefused {
                segment: s.name.clone(),
                code: ErrorCode::from_code(r.status),
                message: r.message,
            });
        }
        if let ResponseBody::MountAck { term, write_secret } = r.body {
            self.raise_term(term);
            self.take_write_secret(write_secret);
        }
        Ok(())
    }

    /// Hands the master's write-token secret (from a MountAck, or a heartbeat answer during
    /// a rotation) to the shards when it is new: from then on they accept only writes
    /// carrying a token signed with it or the one before. Empty (a master that sends none)
    /// changes nothing.
    fn take_write_secret(&mut self, secret: Vec<u8>) {
        if secret.is_empty() || secret == self.write_secret {
            return;
        }
        for l in &self.links {
            let _ = l.send(ToShard::SetWriteSecret {
                secret: secret.clone(),
            });
        }
        self.write_secret = secret;
    }

    /// Takes the master's term, and tells the shards: allocations of older terms are
    /// refused from now on.
    pub(super) fn raise_term(&mut self, term: u64) {
        self.sync.see_term(term);
        if term > self.shards_term {
            self.shards_term = term;
            for l in &self.links {
                let _ = l.send(ToShard::SetTerm { term });
            }
        }
    }

    /// Tells the master to place nothing new in `ids`.
    fn drain_at_master(&mut self, ids: Vec<u64>) -> Result<(), NodeError> {
        self.call(&Request::DrainSegments {
            client_id: self.client_id,
            segment_ids: ids,
        })
        .map(drop)
    }

    /// Mounts every segment (runtime-mounted ones included), then drains again those
    /// whose unmount is under way: a restarted master knows nothing of either.
    fn mount_all(&mut self) -> Result<(), NodeError> {
        for i in 0..self.segments.len() {
            if self.segments[i].releasing {
                continue;
            }
            let s = self.segments[i].info.clone();
            if let Err(e) = self.mount_at_master(&s, true) {
                self.publish();
                return Err(e);
            }
            self.segments[i].at_master = true;
        }
        let reported = self.report_inventory()?;
        info!(entries = reported, "inventory reported to the master");
        let draining: Vec<u64> = self
            .segments
            .iter()
            .filter(|s| s.release_at.is_some())
            .map(|s| s.info.segment_id)
            .collect();
        if !draining.is_empty() {
            self.drain_at_master(draining)?;
        }
        self.publish();
        info!(segments = self.segments.len(), master = %self.link.describe(), "segments mounted");
        Ok(())
    }

    /// One heartbeat: (re)mount when needed, otherwise ping; then retry unmounts the master
    /// has not confirmed.
    pub fn step(&mut self) {
        if self.mounted && injected("agent::heartbeat") {
            // As a heartbeat lost on the way: nothing is sent this beat.
            return;
        }
        let r = if self.mounted {
            self.call(&Request::Ping {
                client_id: self.client_id,
            })
            .map(|r| match r.body {
                ResponseBody::PingAck {
                    client_known,
                    write_secret,
                    ..
                } => {
                    // A rotated secret reaches the shards here, before the master signs
                    // with it; the shards keep the one before, so both verify.
                    if client_known {
                        self.take_write_secret(write_secret);
                    }
                    client_known
                }
                _ => true,
            })
        } else {
            self.mount_all().map(|_| true)
        };
        match r {
            Ok(true) => self.mounted = true,
            Ok(false) => {
                warn!("the master does not know this node (restarted, or dropped us): re-mounting");
                self.mounted = false;
                self.orphans.clear();
                for s in &mut self.segments {
                    s.at_master = false;
                }
                self.publish();
            }
            Err(e) => self.note_error(&e),
        }
        while let Some(&id) = self.orphans.first() {
            match self.call(&Request::UnmountSegment {
                client_id: self.client_id,
                segment_id: id,
            }) {
                Ok(_) => {
                    info!(segment_id = id, "master confirmed a late unmount");
                    self.orphans.remove(0);
                }
                Err(e) => {
                    self.note_error(&e);
                    break;
                }
            }
        }
    }

    /// Runs until `stop` is set, serving `commands` between heartbeats; then unmounts and
    /// stops the shards.
    pub fn run(
        &mut self,
        stop: &AtomicBool,
        commands: &Receiver<Command>,
        sync_tx: std::sync::mpsc::Sender<Command>,
    ) {
        let target = sync::SyncTarget {
            master: self.cfg.master.clone(),
            cluster_id: self.cfg.cluster_id.clone(),
            client_id: self.client_id,
            rpc_timeout: self.cfg.rpc_timeout,
        };
        let _sync = sync::SyncThread::start(target, self.sync.clone(), sync_tx)
            .inspect_err(|e| warn!("cannot start the notice thread: {e}"))
            .ok();
        let mut next_beat = Instant::now();
        while !stop.load(Ordering::Acquire) {
            // A new leader is heartbeaten at once: it answers that it does not know this
            // node, and the node mounts again.
            if self.link.leader_moved() {
                next_beat = Instant::now();
            }
            if Instant::now() >= next_beat {
                self.step();
                // Until the master has the node mounted again (it restarted, or a new leader
                // took over), try again soon: every moment unmounted is a moment its objects
                // cannot be read.
                let pause = if self.mounted && self.link.is_connected() {
                    self.cfg.heartbeat_interval
                } else {
                    self.cfg.heartbeat_interval.min(REMOUNT_RETRY)
                };
                next_beat = Instant::now() + pause;
            }
            self.poll_shards();
            self.report_hits();
            self.release_due();
            // While shards apply notices, look at their answers often: a remove waits for them.
            let tick = if self.applying.is_empty() {
                TICK
            } else {
                Duration::from_millis(1)
            };
            match commands.recv_timeout(tick) {
                Ok(cmd) => self.command(cmd),
                Err(RecvTimeoutError::Timeout) => {}
                // No more senders: nothing to serve, keep heartbeating.
                Err(RecvTimeoutError::Disconnected) => std::thread::sleep(TICK),
            }
        }
        // Requests still waiting are answered `Stopping` when their senders drop.
        while let Ok(cmd) = commands.try_recv() {
            drop(cmd);
        }
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.pending.clear();
        self.groups.clear();
        if self.mounted {
            // 1. No new allocations on this node.
            let ids = self.segments.iter().map(|s| s.info.segment_id).collect();
            match self.drain_at_master(ids) {
                Ok(_) => info!("draining: the master places nothing new here"),
                Err(e) => warn!("drain request failed: {e}"),
            }
            // 2. Let transfers already under way finish.
            self.wait_for_shards(ToShard::Drain, |m| matches!(m, FromShard::Drained { .. }));
            // 3. Leave the cluster.
            for i in 0..self.segments.len() {
                if !self.segments[i].at_master {
                    continue;
                }
                let s = self.segments[i].info.clone();
                let req = Request::UnmountSegment {
                    client_id: self.client_id,
                    segment_id: s.segment_id,
                };
                if let Err(e) = self.call(&req) {
                    warn!("unmount of {} failed: {e}", s.name);
                    break;
                }
                self.segments[i].at_master = false;
            }
            self.publish();
            info!("segments unmounted");
        }
        self.wait_for_shards(ToShard::Stop, |m| matches!(m, FromShard::Stopped { .. }));
    }

    /// Sends `msg` to every shard and waits (up to the drain timeout) for each to answer
    /// with a message matching `done`.
    fn wait_for_shards(&self, msg: ToShard, done: impl Fn(&FromShard) -> bool) {
        for l in &self.links {
            let _ = l.send(msg.clone());
        }
        let deadline = Instant::now() + self.cfg.drain_timeout;
        for (i, l) in self.links.iter().enumerate() {
            loop {
                if Instant::now() >= deadline {
                    warn!(shard = i, "no answer to {msg:?} within the drain timeout");
                    break;
                }
                match l.recv_timeout(Duration::from_millis(100)) {
                    Ok(Some(m)) if done(&m) => break,
                    Err(_) => break,
                    _ => {}
                }
            }
        }
    }
}

/// Failpoints of the agent (`agent::heartbeat`: a `return` drops that heartbeat;
/// `agent::sync`: a `return` drops that notice long poll, the node's other sign of life;
/// `agent::inventory`: a `return` fails that inventory report, which the next re-mount
/// sends again); `sleep(ms)` stalls that thread, `panic` kills it. Always false without
/// the `failpoints` feature.
pub(crate) fn injected(_name: &str) -> bool {
    #[cfg(feature = "failpoints")]
    if fail::eval(_name, |_| ()).is_some() {
        return true;
    }
    false
}
