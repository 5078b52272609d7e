//! Metadata snapshots with Mooncake's flags (`docs/snapshots.md`).
//!
//! The store nodes are the source of truth for what exists: a restarted master or a new
//! HA leader re-adopts every object they report ([`crate::recovery`]). A snapshot keeps
//! what they cannot tell: the master's term, the segments that were mounted (whom to wait
//! for) and per object its put, pins and soft-pin deadline. Restored objects still come
//! into existence only when a node reports their bytes; the snapshot's word on keys no
//! node confirms within `client_ttl` is dropped, and leases always restart fresh.
//!
//! - [`config`]: flags and environment; [`content`]: the binary data file;
//!   [`manifest`]: `manifest.json` and snapshot ids; [`collect`]: the walk over the live
//!   metadata; [`local`] and [`s3`]: the two stores, behind [`target`]; [`restore`]:
//!   reading one back; [`stats`]: `/health` and `/metrics`.
//! - Layout, in a directory or a bucket:
//!   `mooncake_master_snapshot/<cluster_id>/<snapshot_id>/{snapshot.bin,manifest.json}`
//!   and `mooncake_master_snapshot/<cluster_id>/latest` naming the newest whole one.
//! - The writer runs on the leader only (a standalone master, or an HA leader while it
//!   serves), every `--snapshot_interval_seconds`, and not while recovery still adopts.

pub mod collect;
pub mod config;
pub mod content;
pub mod local;
pub mod manifest;
pub mod restore;
pub mod s3;
pub mod stats;
pub mod target;
mod writer;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tracing::{info, warn};

pub use config::{SnapshotConfig, StoreKind};
pub use restore::Prepared;
pub use stats::{SnapshotStats, Written};
use target::Target;

use crate::clock::Clock;
use crate::ha::Plane;
use crate::service::MasterService;
use crate::{MasterConfig, MasterError};

/// The top directory (or key prefix) of all snapshots, Mooncake's.
pub const ROOT_DIR: &str = "mooncake_master_snapshot";

/// `cluster_id` as one path component: anything but ASCII letters, digits, `-`, `_` and
/// `.` becomes `_`, and `.`/`..` cannot escape the root.
pub fn path_component(cluster_id: &str) -> String {
    let s: String = cluster_id
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' | '.' => c,
            _ => '_',
        })
        .collect();
    match s.as_str() {
        "" | "." | ".." => "_".to_string(),
        _ => s,
    }
}

/// Now on the wall clock, Unix milliseconds.
pub fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A master-clock deadline as Unix milliseconds (0 when it is 0 or already past).
pub fn unix_deadline(until_ms: u64, now_ms: u64, now_unix_ms: u64) -> u64 {
    if until_ms > now_ms {
        now_unix_ms + (until_ms - now_ms)
    } else {
        0
    }
}

/// A Unix-milliseconds deadline on the master clock (0 when it is 0 or already past).
pub fn clock_deadline(until_unix_ms: u64, now_unix_ms: u64, now_ms: u64) -> u64 {
    if until_unix_ms > now_unix_ms {
        now_ms + (until_unix_ms - now_unix_ms)
    } else {
        0
    }
}

/// The snapshot machinery of one master process (its stores outlive HA terms).
pub struct Snapshots {
    cfg: SnapshotConfig,
    /// The primary store, then the backup directory.
    targets: Vec<Target>,
    clock: Arc<dyn Clock>,
    /// Counters.
    pub stats: Arc<SnapshotStats>,
    /// Creation time of the last snapshot, so ids only grow.
    last_unix_ms: AtomicU64,
}

impl Snapshots {
    /// The machinery `cfg` asks for (`None` when snapshots are off), reading environment
    /// variables from the process.
    ///
    /// # Errors
    /// As [`SnapshotConfig::from_config`] and [`Snapshots::new`].
    pub fn from_config(
        cfg: &MasterConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Option<Arc<Snapshots>>, MasterError> {
        let Some(sc) = SnapshotConfig::from_config(cfg, |k| std::env::var(k).ok())? else {
            return Ok(None);
        };
        Ok(Some(Arc::new(Snapshots::new(sc, clock)?)))
    }

    /// Opens the stores of `cfg` (nothing is read or written yet).
    ///
    /// # Errors
    /// [`MasterError::SnapshotS3`] for S3 settings the client refuses.
    pub fn new(cfg: SnapshotConfig, clock: Arc<dyn Clock>) -> Result<Snapshots, MasterError> {
        let mut targets = vec![match &cfg.store {
            StoreKind::Local(dir) => Target::Local(local::LocalDir::new(dir, &cfg.cluster_id)),
            StoreKind::S3(s) => Target::S3(Arc::new(s3::S3Bucket::open(s, &cfg.cluster_id)?)),
        }];
        if let Some(dir) = &cfg.backup_dir {
            targets.push(Target::Local(local::LocalDir::new(dir, &cfg.cluster_id)));
        }
        let stats = Arc::new(SnapshotStats::default());
        stats.enabled.store(cfg.write, Ordering::Relaxed);
        Ok(Snapshots {
            cfg,
            targets,
            clock,
            stats,
            last_unix_ms: AtomicU64::new(0),
        })
    }

    /// Whether snapshots are restored (`--enable_snapshot_restore`).
    pub fn restores(&self) -> bool {
        self.cfg.restore
    }

    /// Where snapshots go, for logs.
    pub fn describe(&self) -> String {
        let v: Vec<String> = self.targets.iter().map(Target::describe).collect();
        v.join(", backup ")
    }

    /// Reads the newest valid snapshot (primary store first, then the backup) and turns it
    /// into what a new term needs; `None`, logged, when there is none to use.
    pub async fn prepare(&self) -> Option<Prepared> {
        for t in &self.targets {
            let (found, skipped) = match restore::load_newest(t).await {
                Ok(r) => r,
                Err(e) => {
                    warn!(store = %t.describe(), "cannot read snapshots: {e}");
                    continue;
                }
            };
            self.stats
                .restore_fallbacks_total
                .fetch_add(skipped, Ordering::Relaxed);
            let Some((id, content)) = found else {
                continue;
            };
            let keys = content.objects.len() as u64;
            let (now_ms, now_unix) = (self.clock.now_ms(), unix_now_ms());
            let hints = tokio::task::spawn_blocking(move || {
                (content.term, restore::hints(content, now_ms, now_unix))
            })
            .await;
            let Ok((term, hints)) = hints else {
                warn!("converting snapshot {id} panicked; starting without it");
                return None;
            };
            self.stats.restored(&id, keys);
            info!(snapshot = %id, store = %t.describe(), keys, "read the snapshot to restore");
            return Some(Prepared { id, term, hints });
        }
        warn!(store = %self.describe(), "no usable snapshot: starting without one");
        None
    }

    /// Starts the periodic writer over whatever term `plane` serves (with
    /// `--enable_snapshot`).
    pub fn start_writer(self: &Arc<Self>, plane: Arc<Plane>) {
        if self.cfg.write {
            info!(
                store = %self.describe(),
                interval = ?self.cfg.interval,
                retention = self.cfg.retention,
                "snapshots on"
            );
            tokio::spawn(writer::run(self.clone(), plane));
        }
    }

    /// Takes one snapshot of `svc`: walk and encode on the blocking pool, write it whole
    /// to every store, then, if `still_leading`, point `latest` at it and apply retention.
    ///
    /// # Errors
    /// The first store error, or [`MasterError::SnapshotDeposed`] when leadership was
    /// lost before `latest` moved (the written snapshot stays, unnamed).
    pub async fn take(
        &self,
        svc: &Arc<MasterService>,
        still_leading: impl Fn() -> bool,
    ) -> Result<Written, MasterError> {
        let t0 = Instant::now();
        let now_unix = unix_now_ms().max(self.last_unix_ms.load(Ordering::Relaxed) + 1);
        self.last_unix_ms.store(now_unix, Ordering::Relaxed);
        let id = manifest::id_at(now_unix);
        let (svc, cluster, mid) = (svc.clone(), self.cfg.cluster_id.clone(), id.clone());
        let (enc, manifest) = tokio::task::spawn_blocking(move || {
            let e = collect::encode(&svc, now_unix);
            let counts = (e.objects, e.segments);
            let m =
                manifest::Manifest::describe(&mid, &cluster, (e.term, now_unix), counts, &e.data);
            (e, m.to_json())
        })
        .await
        .map_err(|_| MasterError::SnapshotTaskPanicked)?;
        let (objects, bytes) = (enc.objects, enc.data.len() as u64);
        let (data, manifest) = (Arc::new(enc.data), Arc::new(manifest));
        for t in &self.targets {
            t.write(&id, data.clone(), manifest.clone()).await?;
        }
        if !still_leading() {
            return Err(MasterError::SnapshotDeposed { id });
        }
        for t in &self.targets {
            t.set_latest(&id).await?;
        }
        for t in &self.targets {
            match t.retain(self.cfg.retention, &id).await {
                Ok(removed) if !removed.is_empty() => {
                    info!(store = %t.describe(), removed = removed.len(), "old snapshots deleted")
                }
                Ok(_) => {}
                Err(e) => warn!(store = %t.describe(), "retention failed: {e}"),
            }
        }
        Ok(Written {
            id,
            created_unix_ms: now_unix,
            bytes,
            objects,
            duration_ms: t0.elapsed().as_millis() as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_convert_both_ways_and_past_deadlines_are_none() {
        assert_eq!(unix_deadline(0, 5, 1_000), 0);
        assert_eq!(unix_deadline(5, 5, 1_000), 0);
        assert_eq!(unix_deadline(9, 5, 1_000), 1_004);
        assert_eq!(clock_deadline(1_004, 1_000, 77), 81);
        assert_eq!(clock_deadline(999, 1_000, 77), 0);
        assert_eq!(clock_deadline(0, 1_000, 0), 0);
    }

    #[test]
    fn cluster_ids_stay_one_path_component() {
        assert_eq!(path_component("mooncake_cluster"), "mooncake_cluster");
        assert_eq!(path_component("a/b\\c d"), "a_b_c_d");
        assert_eq!(path_component(".."), "_");
        assert_eq!(path_component(""), "_");
    }
}
