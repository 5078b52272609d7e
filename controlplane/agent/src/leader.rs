//! The agent's connection to the master that leads.
//!
//! `--master_server` is a locator: one `host:port`, or the coordinator HA masters elect on
//! (`etcd://h1:2379;h2:2379`, `redis://host:port`). [`MasterLink`] keeps one connection to
//! the leader `mc_coord::LeaderTracker` names, sends a call once more to the new leader when
//! a standby answered it or the old leader could not be reached, and tells the agent when
//! the published leader changed so it heartbeats the new one at once (which then answers
//! that it does not know the node, and the agent re-mounts).

use std::time::{Duration, Instant};

use mc_coord::{LeaderTracker, MasterLocator, Target};
use mc_rpc::{RpcClient, RpcError};
use mc_schema::handshake::Role;
use mc_schema::msg::{Request, Response};

use crate::NodeError;

/// One connection to the leading master, following it.
pub struct MasterLink {
    leader: LeaderTracker,
    cluster_id: String,
    rpc_timeout: Duration,
    conn: Option<RpcClient>,
    /// The view version seen at the last [`MasterLink::leader_moved`].
    seen_version: Option<u64>,
}

impl MasterLink {
    /// Follows `master_server` for `cluster_id`; never waits for the coordinator.
    ///
    /// # Errors
    /// [`NodeError::MasterLocator`] for a locator that does not parse.
    pub fn new(
        master_server: &str,
        cluster_id: &str,
        rpc_timeout: Duration,
    ) -> Result<MasterLink, NodeError> {
        let bad = |source| NodeError::MasterLocator {
            value: master_server.to_string(),
            source,
        };
        let locator = MasterLocator::parse(master_server).map_err(bad)?;
        let leader = LeaderTracker::start(&locator, cluster_id).map_err(bad)?;
        Ok(MasterLink {
            leader,
            cluster_id: cluster_id.to_string(),
            rpc_timeout,
            conn: None,
            seen_version: None,
        })
    }

    /// The master calls go to now, for logs (the locator while no leader is known).
    pub fn describe(&self) -> String {
        self.leader
            .target()
            .map_or_else(|| self.leader.locator().to_string(), |t| t.address)
    }

    /// Whether a connection to the master is open.
    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// Closes the connection; the next call opens a new one.
    pub fn disconnect(&mut self) {
        self.conn = None;
    }

    /// Whether the coordinator published another leader since the last time this was asked;
    /// the connection to the old one is closed then.
    pub fn leader_moved(&mut self) -> bool {
        let now = self.leader.view().map(|v| v.version);
        let moved = now.is_some() && now != self.seen_version;
        if moved {
            self.seen_version = now;
            self.conn = None;
        }
        moved
    }

    /// One call to the leader, sent once more to the new leader when a standby answered it
    /// or the leader could not be reached (safe: see `mooncake_rs`'s master calls).
    ///
    /// # Errors
    /// [`NodeError::Master`] when no master could be reached, [`NodeError::NotServing`] when
    /// no master served the call before the deadline.
    pub fn call(&mut self, req: &Request) -> Result<Response, NodeError> {
        self.call_within(req, self.rpc_timeout)
    }

    /// [`call`](Self::call) with its own deadline, `timeout` from now (a call the master
    /// may take seconds to answer, such as the adoption of a large inventory).
    ///
    /// # Errors
    /// As [`call`](Self::call).
    pub fn call_within(&mut self, req: &Request, timeout: Duration) -> Result<Response, NodeError> {
        let deadline = Instant::now() + timeout;
        let target = match self.leader.target() {
            Some(t) => t,
            None => self
                .leader
                .wait_for_leader(self.rpc_timeout)
                .ok_or_else(|| NodeError::NotServing {
                    message: format!("no leader is published at {}", self.leader.locator()),
                })?,
        };
        let first = self.call_at(&target, req, deadline);
        let hint = match &first {
            Ok(r) if r.is_not_leader() => r.leader_address.clone(),
            Err(RpcError::Connect { .. } | RpcError::Io { .. }) => String::new(),
            _ => return served(first),
        };
        match self.leader.redirect(&target, Some(&hint), deadline) {
            Some(next) => {
                tracing::info!(from = %target.address, to = %next.address, "following the master leader");
                served(self.call_at(&next, req, deadline))
            }
            None => served(first),
        }
    }

    /// Several calls pipelined on the leader's connection (sent back to back, answers read
    /// in order): one round trip for all of them. Not sent again elsewhere: a standby's
    /// answer or a lost connection fails the whole batch, and the caller starts over
    /// (the inventory report, whose parts the master keeps until `InventoryDone`).
    ///
    /// # Errors
    /// As [`call`](Self::call).
    pub fn call_many(&mut self, reqs: &[Request]) -> Result<Vec<Response>, NodeError> {
        let deadline = Instant::now() + self.rpc_timeout;
        let target = self.leader.target().ok_or_else(|| NodeError::NotServing {
            message: format!("no leader is published at {}", self.leader.locator()),
        })?;
        self.connect_to(&target, deadline)?;
        let conn = self.conn.as_mut().expect("connected above");
        let answers = conn
            .call_many(reqs, deadline)
            .inspect_err(|_| self.conn = None)?;
        answers.into_iter().map(|r| served(Ok(r))).collect()
    }

    /// Opens a connection to `target` unless one is open to it.
    fn connect_to(&mut self, target: &Target, deadline: Instant) -> Result<(), RpcError> {
        if self
            .conn
            .as_ref()
            .is_none_or(|c| c.addr() != target.address)
        {
            self.conn = None;
            let left = deadline.saturating_duration_since(Instant::now());
            let c = RpcClient::connect(&target.address, Role::Agent, &self.cluster_id, left)?;
            self.conn = Some(c);
        }
        Ok(())
    }

    fn call_at(
        &mut self,
        target: &Target,
        req: &Request,
        deadline: Instant,
    ) -> Result<Response, RpcError> {
        self.connect_to(target, deadline)?;
        let conn = self.conn.as_mut().expect("connected above");
        conn.call(req, deadline).inspect_err(|_| self.conn = None)
    }
}

/// A call's outcome: a not-leader answer is an error (nothing was done), any other answer
/// goes back to the caller, who reads its status.
fn served(r: Result<Response, RpcError>) -> Result<Response, NodeError> {
    let resp = r?;
    if resp.is_not_leader() {
        return Err(NodeError::NotServing {
            message: resp.message,
        });
    }
    Ok(resp)
}
