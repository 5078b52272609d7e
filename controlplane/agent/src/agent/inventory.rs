//! The agent's part in recovery (`docs/why-recovery.md`): after (re-)mounting with a master
//! that did not know the node, report every shard's object index; and hand the master's
//! notices to the shards holding their segments.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use mc_dataplane::control::AgentLink;
use mc_schema::ErrorCode;
use mc_schema::agent::{FromShard, ToShard};
use mc_schema::msg::{InventoryEntry, Notice, Request, ResponseBody};
use tracing::warn;

use super::Agent;
use crate::NodeError;

/// Longest wait for the shards' index reports.
const INVENTORY_TIMEOUT: Duration = Duration::from_secs(60);

/// Longest wait for the master to adopt the report (`InventoryDone`).
const ADOPTION_TIMEOUT: Duration = Duration::from_secs(120);

/// Most inventory parts sent to the master in one pipelined round trip: while the master
/// decodes and files one part, the next ones are on their way (one part is a ring
/// message's worth of entries, ~400 KB for 4 KiB records).
const PIPELINE_PARTS: usize = 8;

/// Most messages taken from one shard's ring between two master calls.
const DRAIN_PER_ROUND: usize = 256;

impl<L: AgentLink> Agent<L> {
    /// Asks every shard for its entries, sends them to the master as they come, then
    /// `InventoryDone`. Returns how many entries were reported.
    pub(super) fn report_inventory(&mut self) -> Result<u64, NodeError> {
        if super::injected("agent::inventory") {
            return Err(NodeError::InventoryRefused {
                code: ErrorCode::InternalError,
                message: "failpoint agent::inventory".into(),
            });
        }
        let request = self.request_id();
        for (i, l) in self.links.iter().enumerate() {
            l.send(ToShard::Inventory { request })
                .map_err(|source| NodeError::ShardLink { shard: i, source })?;
        }
        let started = Instant::now();
        let mut done = vec![false; self.links.len()];
        // Parts taken from the rings and not yet sent: the rings are drained before every
        // master call, so a shard never waits on the master's round trips.
        let mut queue: VecDeque<Vec<InventoryEntry>> = VecDeque::new();
        let (mut reported, mut calls) = (0u64, 0u64);
        let deadline = Instant::now() + INVENTORY_TIMEOUT;
        while done.iter().any(|d| !d) || !queue.is_empty() {
            if Instant::now() >= deadline {
                return Err(NodeError::InventorySilent {
                    shard: done.iter().position(|d| !d).unwrap_or(0),
                    timeout_seconds: INVENTORY_TIMEOUT.as_secs(),
                });
            }
            for (i, finished) in done.iter_mut().enumerate() {
                // Bounded, so a chatty shard cannot hold the loop past its deadline.
                for _ in 0..DRAIN_PER_ROUND {
                    // Wait a little only when there is nothing to send meanwhile.
                    let wait = if queue.is_empty() && !*finished {
                        Duration::from_millis(5)
                    } else {
                        Duration::ZERO
                    };
                    let msg = match self.links[i].recv_timeout(wait) {
                        Ok(Some(m)) => m,
                        Ok(None) => break,
                        Err(source) => return Err(NodeError::ShardLink { shard: i, source }),
                    };
                    match msg {
                        FromShard::Inventory {
                            request: r,
                            entries,
                            last,
                        } if r == request => {
                            reported += entries.len() as u64;
                            if !entries.is_empty() {
                                queue.push_back(entries);
                            }
                            *finished |= last;
                        }
                        other => self.on_shard_message(i, other),
                    }
                }
            }
            if !queue.is_empty() {
                let batch: Vec<Request> = queue
                    .drain(..queue.len().min(PIPELINE_PARTS))
                    .map(|entries| Request::ReportInventory {
                        client_id: self.client_id,
                        entries,
                    })
                    .collect();
                let answers = self.call_many(&batch).inspect_err(|e| self.note_error(e))?;
                calls += 1;
                if let Some(r) = answers.into_iter().find(|r| r.status != 0) {
                    return Err(NodeError::InventoryRefused {
                        code: ErrorCode::from_code(r.status),
                        message: r.message,
                    });
                }
            }
        }
        let sent_ms = started.elapsed().as_millis() as u64;
        // The master answers once it has adopted every entry: seconds for a million, more
        // than one `rpc_timeout`. Giving up early would only make the node report again.
        let adoption = self.cfg.rpc_timeout.max(ADOPTION_TIMEOUT);
        let r = self
            .call_within(
                &Request::InventoryDone {
                    client_id: self.client_id,
                },
                adoption,
            )
            .inspect_err(|e| self.note_error(e))?;
        if r.status != 0 {
            return Err(NodeError::InventoryRefused {
                code: ErrorCode::from_code(r.status),
                message: r.message,
            });
        }
        if let ResponseBody::Count(n) = r.body {
            tracing::info!(
                reported,
                adopted = n,
                calls,
                sent_ms,
                took_ms = started.elapsed().as_millis() as u64,
                "the master adopted this node's objects"
            );
        }
        Ok(reported)
    }

    /// Sends each shard the notices about its segments (every shard gets the batch, so each
    /// answers `Applied` and the batch is known to be done). A batch without notices only
    /// carries the master's term to the shards.
    pub(super) fn forward_notices(&mut self, term: u64, seq: u64, notices: Vec<Notice>) {
        // A master's term reaches the shards with its first answer, even an empty one.
        self.raise_term(term);
        if notices.is_empty() {
            return;
        }
        let shard_of: HashMap<u64, usize> = self
            .segments
            .iter()
            .map(|s| (s.info.segment_id, s.info.shard as usize))
            .collect();
        let mut per_shard: Vec<Vec<Notice>> = vec![Vec::new(); self.links.len()];
        for n in notices {
            if let Some(v) = shard_of
                .get(&n.segment_id())
                .and_then(|&s| per_shard.get_mut(s))
            {
                v.push(n);
            }
        }
        let mut sent = 0;
        for (l, notices) in self.links.iter().zip(per_shard) {
            let msg = ToShard::Notices { seq, term, notices };
            match l.send(msg) {
                Ok(()) => sent += 1,
                Err(_) => warn!("a shard is gone: its notices are dropped"),
            }
        }
        if sent == 0 {
            self.sync.applied(term, seq);
        } else {
            self.applying.insert((term, seq), sent);
        }
    }

    /// One shard applied batch `seq` of `term`; once all have, the sync thread may
    /// acknowledge it.
    pub(super) fn notices_applied(&mut self, term: u64, seq: u64) {
        let Some(left) = self.applying.get_mut(&(term, seq)) else {
            return;
        };
        *left -= 1;
        if *left == 0 {
            self.applying.remove(&(term, seq));
            self.sync.applied(term, seq);
        }
    }
}
