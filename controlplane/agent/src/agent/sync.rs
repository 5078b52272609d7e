//! The agent's side of the master's notices: a thread long-polls the master with `Sync`
//! on a connection of its own, hands each batch to the agent loop (which splits it over the
//! shards), waits until every shard applied it, and acknowledges it with the next `Sync`
//! (`docs/node-index.md`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mc_schema::ErrorCode;
use mc_schema::msg::{Request, ResponseBody};
use tracing::{debug, warn};

use crate::leader::MasterLink;
use crate::state::Command;

/// Longest wait for the shards to apply a batch before it is acknowledged anyway (a stuck
/// shard must not stop the node from syncing; it re-reads the batch).
const APPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// Pause after a failed `Sync` (master restarting, node not mounted yet).
const RETRY: Duration = Duration::from_millis(100);

/// What the sync thread and the agent loop share.
#[derive(Debug, Default)]
pub struct SyncState {
    /// The last notice every shard applied, and the term of the master that sent it.
    acked: Mutex<(u64, u64)>,
    applied: Condvar,
    /// The highest master term seen.
    pub term: AtomicU64,
    stop: AtomicBool,
}

impl SyncState {
    /// Records that every shard applied the notices up to `seq` of the master of `term`.
    pub fn applied(&self, term: u64, seq: u64) {
        let mut acked = self.acked.lock().unwrap_or_else(|p| p.into_inner());
        if (term, seq) > *acked {
            *acked = (term, seq);
        }
        self.applied.notify_all();
    }

    fn acked(&self) -> (u64, u64) {
        *self.acked.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until `seq` of `term` is applied, the timeout passes or the thread is told to
    /// stop.
    fn wait_applied(&self, term: u64, seq: u64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut acked = self.acked.lock().unwrap_or_else(|p| p.into_inner());
        while *acked < (term, seq) && !self.stop.load(Ordering::Acquire) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                warn!(seq, "shards did not apply the master's notices in time");
                return;
            }
            acked = self
                .applied
                .wait_timeout(acked, left.min(Duration::from_millis(100)))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Raises the term seen.
    pub fn see_term(&self, term: u64) {
        self.term.fetch_max(term, Ordering::AcqRel);
    }
}

/// Where the sync thread talks to.
#[derive(Debug, Clone)]
pub struct SyncTarget {
    /// Master locator (`host:port`, `etcd://...`, `redis://...`).
    pub master: String,
    /// Cluster id.
    pub cluster_id: String,
    /// The node's client id.
    pub client_id: u64,
    /// Deadline of one call (a second more is allowed: the master holds a `Sync`).
    pub rpc_timeout: Duration,
}

/// The running sync thread; stopped (and joined) on drop.
pub struct SyncThread {
    state: Arc<SyncState>,
    thread: Option<JoinHandle<()>>,
}

impl SyncThread {
    /// Starts the thread; batches go to the agent loop on `commands`.
    pub fn start(
        target: SyncTarget,
        state: Arc<SyncState>,
        commands: Sender<Command>,
    ) -> std::io::Result<SyncThread> {
        let s = state.clone();
        let thread = std::thread::Builder::new()
            .name("mc-agent-sync".into())
            .spawn(move || run(&target, &s, &commands))?;
        Ok(SyncThread {
            state,
            thread: Some(thread),
        })
    }
}

impl Drop for SyncThread {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::Release);
        self.state.applied.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(t: &SyncTarget, s: &SyncState, commands: &Sender<Command>) {
    // The master holds a Sync up to half a second: a call may take that much longer.
    let timeout = t.rpc_timeout + Duration::from_secs(1);
    let mut link = match MasterLink::new(&t.master, &t.cluster_id, timeout) {
        Ok(l) => l,
        Err(e) => {
            warn!("notices will not be received: {e}");
            return;
        }
    };
    // The highest term handed to the agent loop (which tells the shards).
    let mut told_term = 0;
    while !s.stop.load(Ordering::Acquire) {
        if super::injected("agent::sync") {
            // As a long poll lost on the way: the master hears nothing from this call.
            std::thread::sleep(RETRY);
            continue;
        }
        let (acked_term, acked_seq) = s.acked();
        let req = Request::Sync {
            client_id: t.client_id,
            acked_seq,
            acked_term,
        };
        let resp = match link.call(&req) {
            Ok(r) => r,
            Err(e) => {
                debug!("sync failed: {e}");
                std::thread::sleep(RETRY);
                continue;
            }
        };
        match resp.body {
            ResponseBody::Notices { term, seq, notices } if resp.status == 0 => {
                s.see_term(term);
                if notices.is_empty() && term <= told_term {
                    continue;
                }
                told_term = told_term.max(term);
                let empty = notices.is_empty();
                let cmd = Command::Notices { term, seq, notices };
                if commands.send(cmd).is_err() {
                    return;
                }
                if !empty {
                    s.wait_applied(term, seq, APPLY_TIMEOUT);
                }
            }
            _ => {
                // Not mounted with this master yet (it restarted, or is taking over).
                if resp.status != ErrorCode::ClientNotFound.code() {
                    debug!(status = resp.status, "sync refused: {}", resp.message);
                }
                std::thread::sleep(RETRY);
            }
        }
    }
}
