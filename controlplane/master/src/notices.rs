//! Notices to the nodes' object indexes: which slices are committed, which were freed.
//!
//! Every free of a slice (remove, eviction, revoke, a replaced value, a rejected inventory
//! entry) and every commit queues a notice for the node holding it. A node's agent long-polls
//! with `Sync`, its shards apply the batch, and the next `Sync` acknowledges it by sequence
//! number. A remove is answered once the holders acknowledged its free notices, so a master
//! that dies right after cannot have the removed object come back from a node's index
//! (`docs/why-recovery.md`).
//!
//! Queues are bounded per node ([`MAX_QUEUED`]); a node that stops syncing is forgotten with
//! its client (`client_ttl`).

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mc_schema::msg::Notice;
use parking_lot::Mutex;
use tokio::sync::Notify;

/// Most notices queued for one node; older ones are dropped beyond it (and counted).
pub const MAX_QUEUED: usize = 4 << 20;

/// Most notices in one `Sync` answer.
pub const MAX_BATCH: usize = 64 << 10;

/// The notices of one node.
#[derive(Debug, Default)]
struct Queue {
    /// Sequence number of `pending[0]`.
    first_seq: u64,
    pending: VecDeque<Notice>,
    /// Highest sequence number the node's shards applied.
    acked: u64,
    /// Whether the node syncs at all (a node that never sent `Sync` is not waited for).
    syncing: bool,
    /// Woken on every push and every ack.
    wake: Arc<Notify>,
}

impl Queue {
    fn last_seq(&self) -> u64 {
        self.first_seq + self.pending.len() as u64 - 1
    }
}

/// Notice queues of every node.
#[derive(Debug, Default)]
pub struct Notices {
    nodes: Mutex<HashMap<u64, Queue>>,
    /// Notices dropped because a queue was full.
    pub dropped_total: AtomicU64,
    /// Removes answered before every holder confirmed its free notices.
    pub unconfirmed_removes_total: AtomicU64,
}

thread_local! {
    /// While [`collect`] runs: the highest sequence number queued per node.
    static COLLECTING: RefCell<Option<Vec<(u64, u64)>>> = const { RefCell::new(None) };
}

/// Runs `f` and returns what it returned with the highest notice sequence number it queued
/// for each node, so a caller can wait for those to be applied.
pub fn collect<R>(f: impl FnOnce() -> R) -> (R, Vec<(u64, u64)>) {
    COLLECTING.with(|c| *c.borrow_mut() = Some(Vec::new()));
    let r = f();
    let seqs = COLLECTING
        .with(|c| c.borrow_mut().take())
        .unwrap_or_default();
    (r, seqs)
}

fn note_collected(client_id: u64, seq: u64) {
    COLLECTING.with(|c| {
        if let Some(v) = c.borrow_mut().as_mut() {
            match v.iter_mut().find(|(c, _)| *c == client_id) {
                Some(e) => e.1 = e.1.max(seq),
                None => v.push((client_id, seq)),
            }
        }
    });
}

impl Notices {
    /// Queues `n` for the node `client_id`.
    pub fn push(&self, client_id: u64, n: Notice) {
        let mut nodes = self.nodes.lock();
        let q = nodes.entry(client_id).or_insert_with(|| Queue {
            first_seq: 1,
            ..Queue::default()
        });
        if q.pending.len() >= MAX_QUEUED {
            q.pending.pop_front();
            q.first_seq += 1;
            self.dropped_total.fetch_add(1, Ordering::Relaxed);
        }
        q.pending.push_back(n);
        let seq = q.last_seq();
        let syncing = q.syncing;
        q.wake.notify_waiters();
        drop(nodes);
        if syncing {
            note_collected(client_id, seq);
        }
    }

    /// Records that `client_id`'s shards applied everything up to `acked`, and returns the
    /// notices after it (at most [`MAX_BATCH`]) with the sequence number of the last one;
    /// `None` when nothing is pending.
    pub fn sync(&self, client_id: u64, acked: u64) -> Option<(u64, Vec<Notice>)> {
        let mut nodes = self.nodes.lock();
        let q = nodes.entry(client_id).or_insert_with(|| Queue {
            first_seq: 1,
            ..Queue::default()
        });
        q.syncing = true;
        if acked > q.acked {
            q.acked = acked;
            while q.first_seq <= acked && !q.pending.is_empty() {
                q.pending.pop_front();
                q.first_seq += 1;
            }
            q.wake.notify_waiters();
        }
        if q.pending.is_empty() {
            return None;
        }
        let n = q.pending.len().min(MAX_BATCH);
        let batch: Vec<Notice> = q.pending.iter().take(n).copied().collect();
        Some((q.first_seq + n as u64 - 1, batch))
    }

    /// Marks `client_id` as a node whose agent syncs (it mounted announcing a report), so a
    /// remove waits for it even before its first `Sync` reached this master.
    pub fn expect_sync(&self, client_id: u64) {
        self.nodes
            .lock()
            .entry(client_id)
            .or_insert_with(|| Queue {
                first_seq: 1,
                ..Queue::default()
            })
            .syncing = true;
    }

    /// What wakes on every push and ack for `client_id`.
    pub fn waker(&self, client_id: u64) -> Arc<Notify> {
        self.nodes
            .lock()
            .entry(client_id)
            .or_insert_with(|| Queue {
                first_seq: 1,
                ..Queue::default()
            })
            .wake
            .clone()
    }

    /// Whether `client_id` acknowledged `seq` (true for a node no longer tracked: it is
    /// gone, so nothing of it can come back).
    pub fn acked(&self, client_id: u64, seq: u64) -> bool {
        self.nodes
            .lock()
            .get(&client_id)
            .is_none_or(|q| q.acked >= seq)
    }

    /// Waits until every `(client_id, seq)` is acknowledged, or `timeout`; returns how many
    /// were not.
    pub async fn wait_acked(&self, seqs: &[(u64, u64)], timeout: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut left = 0;
        for &(client_id, seq) in seqs {
            let wake = self.waker(client_id);
            loop {
                let notified = wake.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if self.acked(client_id, seq) {
                    break;
                }
                if tokio::time::timeout_at(deadline, notified).await.is_err() {
                    left += 1;
                    break;
                }
            }
        }
        left
    }

    /// Forgets a node (dropped after `client_ttl`): its index is gone or will be replaced
    /// when it mounts again.
    pub fn forget(&self, client_id: u64) {
        if let Some(q) = self.nodes.lock().remove(&client_id) {
            q.wake.notify_waiters();
        }
    }

    /// Notices queued over all nodes.
    pub fn queued(&self) -> usize {
        self.nodes.lock().values().map(|q| q.pending.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn free(offset: u64) -> Notice {
        Notice::Free {
            segment_id: 1,
            offset,
            generation: 1,
        }
    }

    #[test]
    fn batches_are_numbered_and_acks_drop_them() {
        let n = Notices::default();
        n.sync(7, 0);
        n.sync(8, 0);
        let ((), seqs) = collect(|| {
            n.push(7, free(0));
            n.push(7, free(1));
            n.push(8, free(2));
        });
        assert_eq!(seqs, vec![(7, 2), (8, 1)]);
        let (seq, batch) = n.sync(7, 0).unwrap();
        assert_eq!((seq, batch.len()), (2, 2));
        assert!(!n.acked(7, 2));
        assert!(n.sync(7, 2).is_none());
        assert!(n.acked(7, 2));
        n.push(7, free(3));
        assert_eq!(n.sync(7, 2).unwrap(), (3, vec![free(3)]));
        n.forget(8);
        assert!(n.acked(8, 1));
    }

    #[tokio::test]
    async fn waiting_ends_with_the_ack_or_the_timeout() {
        let n = Arc::new(Notices::default());
        n.sync(1, 0);
        n.push(1, free(0));
        let m = n.clone();
        let acker = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            m.sync(1, 1);
        });
        assert_eq!(n.wait_acked(&[(1, 1)], Duration::from_secs(30)).await, 0);
        acker.await.unwrap();
        n.push(1, free(1));
        assert_eq!(n.wait_acked(&[(1, 2)], Duration::from_millis(10)).await, 1);
    }
}
