//! Recovery from what the nodes hold (`docs/why-recovery.md`).
//!
//! A master that starts (or wins an election) knows no objects. Every node that mounts
//! with it reports its object index (`ReportInventory`, `InventoryDone`); the master
//! re-adopts what the entries prove complete ([`assemble`]) and tells the node to forget the
//! rest. While a registered node's report is incomplete, a lookup of an unknown key waits
//! for it instead of answering OBJECT_NOT_FOUND. For a window after the start
//! (`client_ttl`), a node that shows up late is adopted in full; keys removed meanwhile are
//! remembered (tombstones) so a late report cannot bring them back. After the window, a
//! late node's entries only add replicas to objects the master has. A restored snapshot
//! adds [`hints`]: keys it names wait for the segments that held them, and get their pins
//! back when they are adopted.

pub mod assemble;
pub mod hints;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mc_schema::ErrorCode;
use mc_schema::msg::InventoryEntry;
use parking_lot::Mutex;
use tokio::sync::Notify;

/// Most entries a node may report before InventoryDone (a node with more slices than this
/// cannot exist: segments hold at most 4M allocations each, and a node a few segments).
const MAX_REPORTED: usize = 64 << 20;

/// What an `InventoryDone` calls for.
#[derive(Debug)]
pub enum Done {
    /// Adopt these entries of a node that mounted at `mounted_ms`.
    Adopt {
        /// When the node mounted (the window is judged by it).
        mounted_ms: u64,
        /// Its report.
        entries: Vec<InventoryEntry>,
    },
    /// The report was adopted already (or is being adopted): nothing to do.
    Already,
    /// The node never mounted with a report.
    Unknown,
}

/// Counters of the recovery, for `/health` and `/metrics`.
#[derive(Debug, Default)]
pub struct RecoveryStats {
    /// Objects re-adopted from node reports.
    pub adopted_objects_total: AtomicU64,
    /// Replicas added to objects already known.
    pub added_replicas_total: AtomicU64,
    /// Reported slices refused (incomplete, overlapping, stale, removed, unknown segment).
    pub rejected_entries_total: AtomicU64,
    /// Inventories adopted.
    pub inventories_total: AtomicU64,
    /// Milliseconds the last adoption took.
    pub last_adoption_ms: AtomicU64,
    /// Milliseconds all adoptions took.
    pub adoption_ms_total: AtomicU64,
}

/// Where a node is in reporting its inventory to this master.
#[derive(Debug)]
enum Report {
    /// Mounted at `mounted_ms`; these entries came so far.
    Receiving {
        mounted_ms: u64,
        entries: Vec<InventoryEntry>,
    },
    /// InventoryDone came; the entries are being adopted.
    Adopting,
    /// Adopted: a repeated report (a node that retried) is ignored.
    Adopted,
}

#[derive(Debug, Default)]
struct Inner {
    /// Nodes that mounted with a report, by client id.
    nodes: HashMap<u64, Report>,
    /// Keys removed while recovery could still adopt them from a late report.
    tombstones: HashSet<String>,
    /// Patterns removed the same way (remove_by_regex, remove_all).
    patterns: Vec<regex::Regex>,
}

/// The recovery state of one master's term.
#[derive(Debug)]
pub struct Recovery {
    started_ms: u64,
    window_ms: u64,
    grace_ms: u64,
    inner: Mutex<Inner>,
    progress: Notify,
    /// Counters.
    pub stats: RecoveryStats,
    /// What a restored snapshot says (empty without one).
    pub hints: hints::Hints,
}

impl Recovery {
    /// Recovery of a master that started at `now_ms`; late nodes are adopted in full for
    /// `window_ms`; for `grace_ms`, lookups of unknown keys wait for nodes that may not
    /// have re-mounted yet.
    pub fn new(now_ms: u64, window_ms: u64, grace_ms: u64) -> Recovery {
        Recovery {
            started_ms: now_ms,
            window_ms,
            grace_ms: grace_ms.min(window_ms),
            inner: Mutex::new(Inner::default()),
            progress: Notify::new(),
            stats: RecoveryStats::default(),
            hints: hints::Hints::default(),
        }
    }

    /// A node mounted at `now_ms` and will report: lookups wait for it until it is done. A
    /// node mounting again before it finished starts its report over (an agent that retried
    /// resends everything); one already adopted is not adopted twice.
    pub fn expect(&self, client_id: u64, now_ms: u64) {
        let mut inner = self.inner.lock();
        match inner.nodes.get(&client_id) {
            Some(Report::Adopting | Report::Adopted) => {}
            _ => {
                inner.nodes.insert(
                    client_id,
                    Report::Receiving {
                        mounted_ms: now_ms,
                        entries: Vec::new(),
                    },
                );
            }
        }
    }

    /// Part of a node's report. Ignored (Ok) once the node's report is complete.
    pub fn report(&self, client_id: u64, entries: Vec<InventoryEntry>) -> Result<(), ErrorCode> {
        let mut inner = self.inner.lock();
        match inner.nodes.get_mut(&client_id) {
            None => Err(ErrorCode::ClientNotFound),
            Some(Report::Receiving { entries: v, .. }) => {
                if v.len() + entries.len() > MAX_REPORTED {
                    return Err(ErrorCode::InvalidParams);
                }
                v.extend(entries);
                Ok(())
            }
            Some(Report::Adopting | Report::Adopted) => Ok(()),
        }
    }

    /// What `InventoryDone` of `client_id` means now.
    pub fn take(&self, client_id: u64) -> Done {
        let mut inner = self.inner.lock();
        match inner.nodes.get_mut(&client_id) {
            None => Done::Unknown,
            Some(r @ Report::Receiving { .. }) => {
                let Report::Receiving {
                    mounted_ms,
                    entries,
                } = std::mem::replace(r, Report::Adopting)
                else {
                    unreachable!("matched above")
                };
                Done::Adopt {
                    mounted_ms,
                    entries,
                }
            }
            Some(Report::Adopting | Report::Adopted) => Done::Already,
        }
    }

    /// The adoption of `client_id`'s report finished: lookups waiting for it look again.
    pub fn adopted(&self, client_id: u64) {
        if let Some(r) = self.inner.lock().nodes.get_mut(&client_id) {
            *r = Report::Adopted;
        }
        self.progress.notify_waiters();
    }

    /// Forgets a node that went away (dropped after `client_ttl`): if it comes back, it
    /// reports again.
    pub fn forget(&self, client_id: u64) {
        if self.inner.lock().nodes.remove(&client_id).is_some() {
            self.progress.notify_waiters();
        }
    }

    /// Whether a node's report is still coming or being adopted.
    fn any_pending(inner: &Inner) -> bool {
        inner.nodes.values().any(|r| !matches!(r, Report::Adopted))
    }

    /// Whether a node that mounted is still reporting (or its report is being adopted).
    pub fn reporting(&self) -> bool {
        Self::any_pending(&self.inner.lock())
    }

    /// Whether the grace has passed and every registered node has reported in full: a key
    /// unknown now is truly unknown.
    pub fn settled(&self, now_ms: u64) -> bool {
        now_ms >= self.started_ms + self.grace_ms && !Self::any_pending(&self.inner.lock())
    }

    /// Nodes still reporting.
    pub fn pending_nodes(&self) -> usize {
        let inner = self.inner.lock();
        inner
            .nodes
            .values()
            .filter(|r| !matches!(r, Report::Adopted))
            .count()
    }

    /// Whether a node that mounted at `mounted_ms` has its unknown keys adopted: it came
    /// within the window after the start.
    pub fn in_window(&self, mounted_ms: u64) -> bool {
        mounted_ms < self.started_ms + self.window_ms
    }

    /// The notifier woken by every adoption (enable a `notified()` before looking).
    pub fn progress(&self) -> &Notify {
        &self.progress
    }

    /// How long the grace still runs at `now_ms`.
    pub fn grace_left(&self, now_ms: u64) -> Duration {
        Duration::from_millis((self.started_ms + self.grace_ms).saturating_sub(now_ms))
    }

    /// Remembers that `key` was removed, while a late report could still bring it back.
    pub fn tombstone(&self, key: &str, now_ms: u64) {
        let mut inner = self.inner.lock();
        if self.in_window(now_ms) || Self::any_pending(&inner) {
            inner.tombstones.insert(key.to_string());
        } else if !inner.tombstones.is_empty() || !inner.patterns.is_empty() {
            inner.tombstones = HashSet::new();
            inner.patterns = Vec::new();
        }
    }

    /// Remembers that every key matching `pattern` was removed (see [`tombstone`](Self::tombstone)).
    pub fn tombstone_pattern(&self, pattern: &str, now_ms: u64) {
        let mut inner = self.inner.lock();
        let live = self.in_window(now_ms) || Self::any_pending(&inner);
        if let (true, Ok(re)) = (live, regex::Regex::new(pattern)) {
            inner.patterns.push(re);
        }
    }

    /// Whether `key` was removed during recovery.
    pub fn is_tombstoned(&self, key: &str) -> bool {
        let inner = self.inner.lock();
        inner.tombstones.contains(key) || inner.patterns.iter().any(|p| p.is_match(key))
    }

    /// Whether some key a restored snapshot names may still be reported: an expected
    /// segment has not reported and `client_ttl` since the start has not passed.
    pub fn hints_awaited(&self, now_ms: u64) -> bool {
        self.in_window(now_ms) && self.hints.awaiting()
    }

    /// Whether a lookup of `key`, unknown to the master, waits for a segment the snapshot
    /// says held it.
    pub fn awaits_hint(&self, key: &str, now_ms: u64) -> bool {
        self.in_window(now_ms) && self.hints.awaits(key)
    }

    /// The segments `ids` have reported: hints waiting only for them end; wakes lookups.
    pub fn segments_reported(&self, ids: &[u64]) {
        let dropped = self.hints.reported(ids);
        if dropped > 0 {
            tracing::warn!(
                keys = dropped,
                "every segment of the restored snapshot reported: keys no node holds are dropped"
            );
        }
        self.progress.notify_waiters();
    }

    /// Drops the snapshot's hints once `client_ttl` has passed since the start: the keys no
    /// node confirmed by then are gone (their bytes were never reported).
    pub fn expire_hints(&self, now_ms: u64) {
        if self.in_window(now_ms) || !self.hints.is_live() {
            return;
        }
        let dropped = self.hints.expire();
        if dropped > 0 {
            tracing::warn!(
                keys = dropped,
                "client_ttl passed: keys of the restored snapshot no node confirmed are dropped"
            );
            self.progress.notify_waiters();
        }
    }

    /// Counts one adoption.
    pub fn count(&self, r: &assemble::AdoptReport) {
        let s = &self.stats;
        s.adopted_objects_total
            .fetch_add(r.adopted_objects, Ordering::Relaxed);
        s.added_replicas_total
            .fetch_add(r.added_replicas, Ordering::Relaxed);
        s.rejected_entries_total
            .fetch_add(r.rejected_entries, Ordering::Relaxed);
        s.inventories_total.fetch_add(1, Ordering::Relaxed);
        s.last_adoption_ms.store(r.took_ms, Ordering::Relaxed);
        s.adoption_ms_total.fetch_add(r.took_ms, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_are_buffered_per_node_adopted_once_and_restarted_on_a_new_mount() {
        let r = Recovery::new(0, 1000, 100);
        assert!(!r.settled(50), "within the grace");
        assert!(r.settled(100));
        assert_eq!(r.report(1, vec![]), Err(ErrorCode::ClientNotFound));
        r.expect(1, 10);
        r.expect(2, 10);
        r.report(1, vec![InventoryEntry::default()]).unwrap();
        // The node mounts again before InventoryDone: its report starts over.
        r.expect(1, 20);
        r.report(1, vec![InventoryEntry::default()]).unwrap();
        assert!(!r.settled(100));
        match r.take(1) {
            Done::Adopt {
                mounted_ms,
                entries,
            } => assert_eq!((mounted_ms, entries.len()), (20, 1)),
            other => panic!("{other:?}"),
        }
        assert!(matches!(r.take(1), Done::Already), "adopting");
        r.adopted(1);
        r.expect(1, 30);
        assert!(matches!(r.take(1), Done::Already), "adopted once only");
        assert!(matches!(r.take(9), Done::Unknown));
        r.forget(2);
        assert!(r.settled(100));
        r.tombstone("k", 10);
        assert!(r.is_tombstoned("k"));
        // Past the window and settled: tombstones are no longer needed.
        r.tombstone("j", 2000);
        assert!(!r.is_tombstoned("k"));
    }
}
