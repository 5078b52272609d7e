//! `mooncake_store`: starts the data-plane and agent processes, restarts whichever dies, and
//! stops both in order on SIGTERM / SIGINT.
//!
//! - The agent dies: a new one starts at once over the same rings with the same node id;
//!   the shards never stopped serving.
//! - The data plane dies: the agent is killed (it must not unmount anything), the rings are
//!   reset, a new data plane takes the kept memory over ([`super::vault`]), then a new agent
//!   starts and mounts the same segments again.
//! - SIGTERM: the agent drains, unmounts and stops the shards; the data plane then exits;
//!   the supervisor exits 0.
//!
//! A child that keeps dying right after it starts ([`CRASH_LOOP`]) stops the node with an
//! error instead of restarting forever.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mc_hugepages::handover::{inherit, keep_private, seqpacket_pair, terminate};
use mc_ring::SharedRing;
use tracing::{error, info, warn};

use super::vault::{self, Msg, Vault};
use super::{
    AGENT_ROLE, DATAPLANE_ROLE, ENV_AGENT_RESTARTS, ENV_CLIENT_ID, ENV_DATAPLANE_RESTARTS,
    ENV_READY, ENV_RINGS, ENV_SUPERVISOR, ENV_VAULT,
};
use crate::{NodeError, StoreConfig};

/// Bytes of each ring of a shard's pair.
const RING_BYTES: usize = mc_ring::DEFAULT_CAPACITY_BYTES;
/// Longest wait for a data plane to serve (prefaulting large segments and scanning SSD
/// records take time).
const DATAPLANE_START: Duration = Duration::from_secs(300);
/// Longest wait for an agent to bind its REST port and reach its shards.
const AGENT_START: Duration = Duration::from_secs(60);
/// A child that dies sooner than this after its start counts towards a crash loop.
const EARLY_DEATH: Duration = Duration::from_secs(2);
/// Early deaths in a row that stop the node.
const CRASH_LOOP: u32 = 5;
/// How long the data plane may take to exit once the agent stopped it.
const DATAPLANE_EXIT: Duration = Duration::from_secs(15);

fn err(what: impl std::fmt::Display) -> NodeError {
    NodeError::Process(what.to_string())
}

/// A running child and when it started.
struct Running {
    child: Child,
    since: Instant,
}

/// The supervisor's state.
struct Supervisor {
    exe: std::path::PathBuf,
    /// The node's flags, without the program name.
    args: Vec<String>,
    rings: Vec<SharedRing>,
    client_id: u64,
    vault: Arc<Mutex<Vault>>,
    drain_timeout: Duration,
    dataplane: Option<Running>,
    /// The thread reading the current data plane's vault messages.
    vault_reader: Option<std::thread::JoinHandle<()>>,
    agent: Option<Running>,
    early_deaths: u32,
    /// Set by SIGTERM / SIGINT.
    signalled: Arc<AtomicBool>,
    /// Children started so far: agents, data planes.
    started: (u64, u64),
}

/// Runs the node's processes until SIGTERM / SIGINT or a crash loop.
pub(super) fn run(cfg: StoreConfig, args: Vec<String>) -> Result<(), NodeError> {
    let signalled = crate::node::stop_signals()?;
    // What the children would refuse is refused here, before anything starts.
    let (plan, _) = crate::node::plan_shards(&cfg)?;
    cfg.cxl()?;
    cfg.ssd(plan.shards.len())?;
    let rings = (0..plan.shards.len())
        .map(|i| SharedRing::create(&format!("mc-ring-{i}"), RING_BYTES))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(format!("cannot make the shards' rings: {e}")))?;
    let mut sup = Supervisor {
        exe: std::env::current_exe().map_err(|e| err(format!("cannot find my executable: {e}")))?,
        args: args.into_iter().skip(1).collect(),
        rings,
        client_id: rand::random::<u64>() | 1,
        vault: Arc::default(),
        drain_timeout: cfg.drain_timeout,
        dataplane: None,
        vault_reader: None,
        agent: None,
        early_deaths: 0,
        signalled: signalled.clone(),
        started: (0, 0),
    };
    let outcome = sup.supervise(&signalled);
    sup.kill_all();
    outcome
}

impl Supervisor {
    fn supervise(&mut self, signalled: &AtomicBool) -> Result<(), NodeError> {
        self.start_dataplane()?;
        self.start_agent()?;
        info!(
            shards = self.rings.len(),
            "store node processes up: data plane pid {}, agent pid {}",
            self.pid(&self.dataplane),
            self.pid(&self.agent)
        );
        loop {
            if signalled.load(Ordering::Acquire) {
                info!("signal received: stopping the agent, then the data plane");
                return self.stop_in_order();
            }
            if let Some(status) = exited(&mut self.dataplane) {
                let (since, _) = status;
                warn!(
                    "the data plane exited unasked ({}); restarting it",
                    status.1
                );
                self.count_death(since)?;
                self.kill_agent();
                for r in &self.rings {
                    r.reset();
                }
                self.start_dataplane()?;
                self.start_agent()?;
                continue;
            }
            if let Some((since, why)) = exited(&mut self.agent) {
                warn!("the agent exited unasked ({why}); restarting it");
                self.count_death(since)?;
                self.start_agent()?;
                continue;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn pid(&self, r: &Option<Running>) -> u32 {
        r.as_ref().map_or(0, |r| r.child.id())
    }

    /// Counts an early death; too many in a row stop the node.
    fn count_death(&mut self, since: Instant) -> Result<(), NodeError> {
        if since.elapsed() < EARLY_DEATH {
            self.early_deaths += 1;
        } else {
            self.early_deaths = 0;
        }
        if self.early_deaths >= CRASH_LOOP {
            return Err(err(format!(
                "a child died within {} s of its start {CRASH_LOOP} times in a row; see its log lines above",
                EARLY_DEATH.as_secs()
            )));
        }
        Ok(())
    }

    /// A command for the child `role`, with the ring descriptors and the supervisor's pid.
    fn command(&self, role: &str) -> Command {
        let mut cmd = Command::new(&self.exe);
        cmd.arg(role).args(&self.args);
        let rings: Vec<String> = self
            .rings
            .iter()
            .map(|r| r.fd().as_raw_fd().to_string())
            .collect();
        cmd.env(ENV_RINGS, rings.join(","))
            .env(ENV_SUPERVISOR, std::process::id().to_string());
        cmd
    }

    /// Spawns `cmd` with `fds` (and the rings) inherited, keeping them private again after.
    fn spawn(&self, mut cmd: Command, fds: &[BorrowedFd<'_>]) -> Result<Child, NodeError> {
        let all: Vec<BorrowedFd<'_>> = self
            .rings
            .iter()
            .map(SharedRing::fd)
            .chain(fds.iter().copied())
            .collect();
        for fd in &all {
            inherit(*fd).map_err(|e| err(format!("cannot hand a descriptor to a child: {e}")))?;
        }
        let spawned = cmd.spawn();
        for fd in &all {
            let _ = keep_private(*fd);
        }
        spawned.map_err(|e| err(format!("cannot start {}: {e}", self.exe.display())))
    }

    /// Starts a data plane, hands it the kept memory and waits until its shards serve.
    fn start_dataplane(&mut self) -> Result<(), NodeError> {
        // What the previous data plane sent before it died is read to the end first.
        if let Some(t) = self.vault_reader.take() {
            let _ = t.join();
        }
        let (mine, theirs) =
            seqpacket_pair().map_err(|e| err(format!("cannot make the vault socket: {e}")))?;
        let mut cmd = self.command(DATAPLANE_ROLE);
        cmd.env(ENV_VAULT, theirs.as_raw_fd().to_string());
        let child = self.spawn(cmd, &[theirs.as_fd()])?;
        self.started.1 += 1;
        drop(theirs);
        let since = Instant::now();
        self.dataplane = Some(Running { child, since });
        let kept = self
            .vault
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .segments();
        self.vault
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .hand_back(mine.as_fd())
            .map_err(|e| {
                err(format!(
                    "cannot hand the kept memory to the data plane: {e}"
                ))
            })?;
        let (ready, reader) = spawn_vault_reader(mine, self.vault.clone())?;
        self.vault_reader = Some(reader);
        self.wait_ready(&ready, DATAPLANE_START, true)?;
        info!(
            pid = self.pid(&self.dataplane),
            kept_segments = kept,
            took_ms = since.elapsed().as_millis() as u64,
            "data plane serving"
        );
        Ok(())
    }

    /// Starts an agent and waits until it serves.
    fn start_agent(&mut self) -> Result<(), NodeError> {
        let (reader, writer) =
            std::io::pipe().map_err(|e| err(format!("cannot make the ready pipe: {e}")))?;
        let writer = OwnedFd::from(writer);
        let mut cmd = self.command(AGENT_ROLE);
        cmd.env(ENV_CLIENT_ID, self.client_id.to_string())
            .env(ENV_READY, writer.as_raw_fd().to_string())
            .env(ENV_AGENT_RESTARTS, self.started.0.to_string())
            .env(
                ENV_DATAPLANE_RESTARTS,
                self.started.1.saturating_sub(1).to_string(),
            );
        let child = self.spawn(cmd, &[writer.as_fd()])?;
        self.started.0 += 1;
        drop(writer);
        let since = Instant::now();
        self.agent = Some(Running { child, since });
        let (tx, ready) = mpsc::channel();
        std::thread::Builder::new()
            .name("mc-agent-ready".into())
            .spawn(move || {
                let mut b = [0u8; 1];
                let ok = std::io::Read::read(&mut &reader, &mut b).is_ok_and(|n| n == 1);
                let _ = tx.send(ok);
            })
            .map_err(|e| err(format!("cannot start a thread: {e}")))?;
        self.wait_ready(&ready, AGENT_START, false)?;
        info!(
            pid = self.pid(&self.agent),
            took_ms = since.elapsed().as_millis() as u64,
            "agent serving"
        );
        Ok(())
    }

    /// Waits for a child's ready signal; an exit first is the child's start-up failure.
    fn wait_ready(
        &mut self,
        ready: &Receiver<bool>,
        timeout: Duration,
        dp: bool,
    ) -> Result<(), NodeError> {
        let name = if dp { "data plane" } else { "agent" };
        let until = Instant::now() + timeout;
        loop {
            if self.signalled.load(Ordering::Acquire) {
                return Err(err(format!(
                    "stopped by a signal while the {name} was starting"
                )));
            }
            match ready.recv_timeout(Duration::from_millis(20)) {
                Ok(true) => return Ok(()),
                Ok(false) | Err(RecvTimeoutError::Disconnected) => {
                    let slot = if dp {
                        &mut self.dataplane
                    } else {
                        &mut self.agent
                    };
                    let why = slot
                        .as_mut()
                        .and_then(|r| r.child.wait().ok())
                        .map_or("it vanished".into(), |s| s.to_string());
                    *slot = None;
                    return Err(err(format!(
                        "the {name} failed to start ({why}); see its log lines above"
                    )));
                }
                Err(RecvTimeoutError::Timeout) if Instant::now() < until => {}
                Err(RecvTimeoutError::Timeout) => {
                    return Err(err(format!(
                        "the {name} did not start within {} s",
                        timeout.as_secs()
                    )));
                }
            }
        }
    }

    fn kill_agent(&mut self) {
        if let Some(mut a) = self.agent.take() {
            let _ = a.child.kill();
            let _ = a.child.wait();
        }
    }

    fn kill_all(&mut self) {
        self.kill_agent();
        if let Some(mut d) = self.dataplane.take() {
            let _ = d.child.kill();
            let _ = d.child.wait();
        }
    }

    /// SIGTERM to the agent (it drains, unmounts, stops the shards), then waits for both.
    fn stop_in_order(&mut self) -> Result<(), NodeError> {
        let mut outcome = Ok(());
        if let Some(mut a) = self.agent.take() {
            let _ = terminate(a.child.id());
            match wait_for(&mut a.child, self.drain_timeout + Duration::from_secs(30)) {
                Some(s) if s.success() => {}
                Some(s) => outcome = Err(err(format!("the agent stopped with {s}"))),
                None => {
                    let _ = a.child.kill();
                    let _ = a.child.wait();
                    outcome = Err(err("the agent did not stop in time; killed"));
                }
            }
        }
        if let Some(mut d) = self.dataplane.take()
            && wait_for(&mut d.child, DATAPLANE_EXIT).is_none()
        {
            warn!("the data plane did not exit after its shards were stopped; killing it");
            let _ = d.child.kill();
            let _ = d.child.wait();
        }
        if outcome.is_ok() {
            info!("store node stopped");
        }
        outcome
    }
}

/// The start instant and exit status of a child that has exited (taking it), if it has.
fn exited(slot: &mut Option<Running>) -> Option<(Instant, String)> {
    let r = slot.as_mut()?;
    match r.child.try_wait() {
        Ok(Some(status)) => {
            let since = r.since;
            *slot = None;
            Some((since, status.to_string()))
        }
        Ok(None) => None,
        Err(e) => {
            error!("cannot check child {}: {e}", r.child.id());
            None
        }
    }
}

/// Waits up to `timeout` for `child` to exit.
fn wait_for(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let until = Instant::now() + timeout;
    while Instant::now() < until {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// Reads the data plane's vault messages into `vault` until it closes; the returned channel
/// says `true` once the data plane is ready (`false` if it closed first).
fn spawn_vault_reader(
    sock: OwnedFd,
    vault: Arc<Mutex<Vault>>,
) -> Result<(Receiver<bool>, std::thread::JoinHandle<()>), NodeError> {
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("mc-vault".into())
        .spawn(move || {
            let mut told = false;
            loop {
                match vault::recv(sock.as_fd()) {
                    Ok(Some((Msg::Ready, _))) => {
                        told = true;
                        let _ = tx.send(true);
                    }
                    Ok(Some((msg, fds))) => vault
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .take(msg, fds),
                    Ok(None) => break,
                    Err(e) => {
                        warn!("vault: {e}");
                        break;
                    }
                }
            }
            if !told {
                let _ = tx.send(false);
            }
        })
        .map_err(|e| err(format!("cannot start a thread: {e}")))?;
    Ok((rx, thread))
}
