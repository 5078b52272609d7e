//! Counters of the snapshot writer and of the last restore, for `/health` and `/metrics`.
//! One per process: they outlive the HA terms the snapshots are taken in.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;

/// What the writer and the restore did.
#[derive(Debug, Default)]
pub struct SnapshotStats {
    /// Whether periodic snapshots are on (`--enable_snapshot`).
    pub enabled: AtomicBool,
    /// Snapshots written in full (`latest` moved).
    pub snapshots_total: AtomicU64,
    /// Snapshot attempts that failed (I/O, S3, timeout, leadership lost).
    pub failures_total: AtomicU64,
    /// Creation time of the last snapshot, Unix milliseconds (0 = none yet).
    pub last_unix_ms: AtomicU64,
    /// How long the last snapshot took, walk to `latest`.
    pub last_duration_ms: AtomicU64,
    /// Size of the last snapshot's data file.
    pub last_bytes: AtomicU64,
    /// Objects in the last snapshot.
    pub last_objects: AtomicU64,
    /// Snapshots skipped at restore because they were missing or corrupt.
    pub restore_fallbacks_total: AtomicU64,
    /// Keys named by the restored snapshot.
    pub restored_keys: AtomicU64,
    last_id: Mutex<String>,
    restored_id: Mutex<String>,
}

/// One snapshot that was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// Its id.
    pub id: String,
    /// Creation time, Unix milliseconds.
    pub created_unix_ms: u64,
    /// Data file bytes.
    pub bytes: u64,
    /// Objects.
    pub objects: u64,
    /// Walk to `latest`.
    pub duration_ms: u64,
}

impl SnapshotStats {
    /// Records a snapshot written in full.
    pub fn written(&self, w: &Written) {
        self.snapshots_total.fetch_add(1, Ordering::Relaxed);
        self.last_unix_ms
            .store(w.created_unix_ms, Ordering::Relaxed);
        self.last_duration_ms
            .store(w.duration_ms, Ordering::Relaxed);
        self.last_bytes.store(w.bytes, Ordering::Relaxed);
        self.last_objects.store(w.objects, Ordering::Relaxed);
        *self.last_id.lock() = w.id.clone();
    }

    /// Records a failed attempt.
    pub fn failed(&self) {
        self.failures_total.fetch_add(1, Ordering::Relaxed);
    }

    /// Records the snapshot a restore used.
    pub fn restored(&self, id: &str, keys: u64) {
        *self.restored_id.lock() = id.to_string();
        self.restored_keys.store(keys, Ordering::Relaxed);
    }

    /// Id of the last snapshot written ("" = none).
    pub fn last_id(&self) -> String {
        self.last_id.lock().clone()
    }

    /// Id of the snapshot the last restore used ("" = none).
    pub fn restored_id(&self) -> String {
        self.restored_id.lock().clone()
    }
}
