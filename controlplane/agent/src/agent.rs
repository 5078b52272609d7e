//! The agent loop: mount every segment with the master, heartbeat, re-mount after the
//! master forgot us (restart), unmount on stop.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mc_dataplane::control::AgentLink;
use mc_rpc::RpcClient;
use mc_schema::ErrorCode;
use mc_schema::agent::{FromShard, SegmentInfo, ToShard};
use mc_schema::handshake::Role;
use mc_schema::msg::{Request, ResponseBody};
use tracing::{info, warn};

/// Agent settings.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Master RPC address.
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
}

/// What the node's REST `/health` reports.
#[derive(Debug, Default)]
pub struct AgentStatus {
    /// Segments the master has accepted.
    pub mounted_segments: AtomicUsize,
    /// Whether the last master call succeeded.
    pub master_connected: AtomicBool,
}

/// The agent of one node.
pub struct Agent<L: AgentLink> {
    cfg: AgentConfig,
    links: Vec<L>,
    segments: Vec<SegmentInfo>,
    client_id: u64,
    status: Arc<AgentStatus>,
    conn: Option<RpcClient>,
    mounted: bool,
    last_error: Option<String>,
}

impl<L: AgentLink> Agent<L> {
    /// An agent over the given shard links. Collects each shard's segment announcement.
    pub fn new(
        cfg: AgentConfig,
        links: Vec<L>,
        status: Arc<AgentStatus>,
    ) -> Result<Agent<L>, String> {
        let mut segments = Vec::new();
        for (i, link) in links.iter().enumerate() {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                match link.recv_timeout(Duration::from_millis(100)) {
                    Ok(Some(FromShard::Segment(s))) => {
                        segments.push(s);
                        break;
                    }
                    Ok(Some(other)) => warn!(shard = i, "unexpected message at start: {other:?}"),
                    Ok(None) if Instant::now() < deadline => {}
                    Ok(None) => return Err(format!("shard {i} did not announce its segment")),
                    Err(e) => return Err(format!("shard {i}: {e}")),
                }
            }
        }
        Ok(Agent {
            cfg,
            links,
            segments,
            client_id: rand::random::<u64>() | 1,
            status,
            conn: None,
            mounted: false,
            last_error: None,
        })
    }

    /// Segments of this node.
    pub fn segments(&self) -> &[SegmentInfo] {
        &self.segments
    }

    fn note_error(&mut self, e: String) {
        if self.last_error.as_ref() != Some(&e) {
            warn!("master unreachable or refusing: {e}");
            self.last_error = Some(e);
        }
        self.conn = None;
        self.status.master_connected.store(false, Ordering::Release);
    }

    fn call(&mut self, req: &Request) -> Result<mc_schema::msg::Response, String> {
        if self.conn.is_none() {
            let c = RpcClient::connect(
                &self.cfg.master,
                Role::Agent,
                &self.cfg.cluster_id,
                self.cfg.rpc_timeout,
            )
            .map_err(|e| e.to_string())?;
            self.conn = Some(c);
        }
        let conn = self.conn.as_mut().expect("connected above");
        let r = conn
            .call(req, Instant::now() + self.cfg.rpc_timeout)
            .map_err(|e| e.to_string())?;
        if self.last_error.take().is_some() {
            info!("master reachable again at {}", self.cfg.master);
        }
        self.status.master_connected.store(true, Ordering::Release);
        Ok(r)
    }

    fn mount_all(&mut self) -> Result<(), String> {
        let mut n = 0;
        for s in self.segments.clone() {
            let r = self.call(&Request::MountSegment {
                client_id: self.client_id,
                segment_id: s.segment_id,
                name: s.name.clone(),
                host: self.cfg.host.clone(),
                endpoint: s.endpoint.clone(),
                size: s.size_bytes,
            })?;
            if r.status != 0 {
                return Err(format!(
                    "mount of {} refused: {} {}",
                    s.name,
                    ErrorCode::from_code(r.status),
                    r.message
                ));
            }
            n += 1;
        }
        self.status.mounted_segments.store(n, Ordering::Release);
        info!(segments = n, master = %self.cfg.master, "segments mounted");
        Ok(())
    }

    /// One heartbeat: (re)mount when needed, otherwise ping.
    pub fn step(&mut self) {
        let r = if self.mounted {
            self.call(&Request::Ping {
                client_id: self.client_id,
            })
            .map(|r| match r.body {
                ResponseBody::PingAck { client_known, .. } => client_known,
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
                self.status.mounted_segments.store(0, Ordering::Release);
            }
            Err(e) => self.note_error(e),
        }
    }

    /// Runs until `stop` is set, then unmounts and stops the shards.
    pub fn run(&mut self, stop: &AtomicBool) {
        while !stop.load(Ordering::Acquire) {
            self.step();
            let until = Instant::now() + self.cfg.heartbeat_interval;
            while Instant::now() < until && !stop.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if self.mounted {
            // 1. No new allocations on this node.
            let ids = self.segments.iter().map(|s| s.segment_id).collect();
            let req = Request::DrainSegments {
                client_id: self.client_id,
                segment_ids: ids,
            };
            match self.call(&req) {
                Ok(_) => info!("draining: the master places nothing new here"),
                Err(e) => warn!("drain request failed: {e}"),
            }
            // 2. Let transfers already under way finish.
            self.wait_for_shards(ToShard::Drain, |m| matches!(m, FromShard::Drained { .. }));
            // 3. Leave the cluster.
            for s in self.segments.clone() {
                let req = Request::UnmountSegment {
                    client_id: self.client_id,
                    segment_id: s.segment_id,
                };
                if let Err(e) = self.call(&req) {
                    warn!("unmount of {} failed: {e}", s.name);
                    break;
                }
            }
            self.status.mounted_segments.store(0, Ordering::Release);
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
