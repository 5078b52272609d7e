//! The SSD tier of a shard (`docs/why-ssd-format.md`): offloaded copies of committed
//! slices, kept as log-structured records in large files under the node's storage
//! directory and moved through the shard's own io_uring with glommio DMA files.
//!
//! The store ([`store`]) knows only files and records; the shard decides what to offload
//! (`shard/offload.rs`) and the transfer server serves reads of the shard's disk segment
//! from it, over the same data port as memory reads.

mod buffers;
pub mod checkpoint;
pub mod format;
mod scan;
mod stats;
mod store;
mod syncs;
#[cfg(test)]
mod test_support;

use std::path::{Path, PathBuf};

pub use stats::SsdStats;
pub use store::{ReadError, SsdEntry, SsdStore};

/// Default size of one record file.
pub const DEFAULT_FILE_BYTES: u64 = 1 << 30;

/// Default number of record writes (appends and deletes) between two index checkpoints
/// of a shard; a larger index waits longer (an eighth of its records), so the cost of
/// checkpoints stays a fixed share of the writes.
pub const DEFAULT_CHECKPOINT_EVERY: u64 = 4096;

/// Default bound of a shard's offload queue.
pub const DEFAULT_QUEUE_LIMIT: usize = 1024;

/// How a shard's SSD tier is set up.
#[derive(Debug, Clone)]
pub struct SsdConfig {
    /// The node's storage directory (`--ssd_offload_path`); the shard uses `shard-<i>/`.
    pub dir: PathBuf,
    /// Bytes this shard may fill.
    pub quota_bytes: u64,
    /// Bytes of one record file.
    pub file_bytes: u64,
    /// Offloads waiting at most; more are dropped (and counted).
    pub queue_limit: usize,
    /// When the quota is reached, delete the oldest records to make room instead of
    /// refusing the offload (`--enable_disk_eviction`).
    pub evict_oldest: bool,
    /// Record writes between two index checkpoints at least (`--ssd_checkpoint_every`;
    /// 0 = never write one).
    pub checkpoint_every: u64,
}

/// The directory of shard `shard`'s record files under the node's storage directory.
pub fn shard_dir(dir: &Path, shard: usize) -> PathBuf {
    dir.join(format!("shard-{shard}"))
}

/// Whether shard `shard` left records under `dir` (its first record file has a non-zero
/// byte in its first block): a cheap look before the index is rebuilt, so a shard that
/// will re-adopt objects can get its memory segment ready behind serving.
pub fn holds_records(dir: &Path, shard: usize) -> bool {
    use std::io::Read;
    let Ok(mut f) = std::fs::File::open(scan::file_path(&shard_dir(dir, shard), 0)) else {
        return false;
    };
    let mut block = vec![0u8; format::BLOCK_BYTES as usize];
    match f.read(&mut block) {
        Ok(n) => block[..n].iter().any(|&b| b != 0),
        Err(_) => false,
    }
}

/// 90% of the free space of the file system holding `dir` (Mooncake's default quota).
pub fn default_quota_bytes(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::other("a path with a NUL byte"))?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a NUL-terminated path and `st` points to writable memory of the size
    // statvfs fills; it is read only after statvfs reported success.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it initialised `st`.
    let st = unsafe { st.assume_init() };
    let free = st.f_bavail.saturating_mul(st.f_frsize);
    Ok(free / 10 * 9)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_default_quota_is_below_the_free_space() {
        let q = super::default_quota_bytes(std::path::Path::new(".")).unwrap();
        assert!(q > 0);
    }

    #[test]
    fn records_are_seen_only_in_a_first_block_that_holds_bytes() {
        let root = std::env::temp_dir().join(format!("mc-holds-records-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        assert!(!super::holds_records(&root, 0), "no directory");
        let dir = super::shard_dir(&root, 0);
        std::fs::create_dir_all(&dir).unwrap();
        let file = super::scan::file_path(&dir, 0);
        std::fs::write(&file, vec![0u8; 8192]).unwrap();
        assert!(
            !super::holds_records(&root, 0),
            "a file of zeros holds no record"
        );
        let mut bytes = vec![0u8; 8192];
        bytes[100] = 1;
        std::fs::write(&file, &bytes).unwrap();
        assert!(super::holds_records(&root, 0));
        assert!(!super::holds_records(&root, 1), "another shard's directory");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
