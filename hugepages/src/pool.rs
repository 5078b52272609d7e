//! What the kernel's hugetlb pools hold, read from sysfs: used to write error messages that
//! give the exact command to run, and by the tests to find out whether they can run.

use std::path::PathBuf;

/// Where the kernel lists one directory per hugepage size it supports.
const SYSFS_DIR: &str = "/sys/kernel/mm/hugepages";

/// The pool-size knob for the default hugepage size, the one administrators know.
const DEFAULT_SIZE_KNOB: &str = "/proc/sys/vm/nr_hugepages";

/// The counters of one hugepage pool, in pages of that pool's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PoolState {
    /// Pages in the persistent pool (`nr_hugepages`).
    pub(crate) total_pages: usize,
    /// Pages not faulted in by anyone.
    pub(crate) free_pages: usize,
    /// Free pages already promised to existing mappings.
    pub(crate) reserved_pages: usize,
    /// How many pages beyond the pool the kernel may allocate on demand.
    pub(crate) overcommit_pages: usize,
}

impl PoolState {
    /// Pages a new mapping can still reserve from the persistent pool.
    pub(crate) fn available_pages(&self) -> usize {
        self.free_pages.saturating_sub(self.reserved_pages)
    }
}

/// The sysfs directory of the pool of `page_bytes` pages.
fn size_dir(page_bytes: usize) -> PathBuf {
    PathBuf::from(format!("{SYSFS_DIR}/hugepages-{}kB", page_bytes / 1024))
}

/// Reads a file holding one decimal number.
fn read_count(path: &std::path::Path) -> Option<usize> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The counters of the pool of `page_bytes` pages, or `None` when the kernel has no such pool.
pub(crate) fn state(page_bytes: usize) -> Option<PoolState> {
    let dir = size_dir(page_bytes);
    Some(PoolState {
        total_pages: read_count(&dir.join("nr_hugepages"))?,
        free_pages: read_count(&dir.join("free_hugepages"))?,
        reserved_pages: read_count(&dir.join("resv_hugepages")).unwrap_or(0),
        overcommit_pages: read_count(&dir.join("nr_overcommit_hugepages")).unwrap_or(0),
    })
}

/// The default hugepage size (`Hugepagesize` in `/proc/meminfo`).
fn default_huge_page_bytes() -> Option<usize> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("Hugepagesize:"))?;
    let kib: usize = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    kib.checked_mul(1024)
}

/// Memory the kernel says can be given to new allocations without swapping (`MemAvailable`
/// in `/proc/meminfo`); `None` when it cannot be read.
pub fn available_memory_bytes() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    kib.checked_mul(1024)
}

/// The file an administrator writes to size the pool of `page_bytes` pages.
pub(crate) fn knob(page_bytes: usize) -> String {
    if default_huge_page_bytes() == Some(page_bytes) {
        DEFAULT_SIZE_KNOB.to_owned()
    } else {
        size_dir(page_bytes)
            .join("nr_hugepages")
            .display()
            .to_string()
    }
}

/// The hugepage sizes this kernel supports, smallest first, written for people (`2 MiB, 1 GiB`),
/// or `none`.
pub(crate) fn supported_sizes_text() -> String {
    let mut sizes: Vec<usize> = std::fs::read_dir(SYSFS_DIR)
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            let kib: usize = name
                .strip_prefix("hugepages-")?
                .strip_suffix("kB")?
                .parse()
                .ok()?;
            kib.checked_mul(1024)
        })
        .collect();
    if sizes.is_empty() {
        return "none".to_owned();
    }
    sizes.sort_unstable();
    sizes
        .iter()
        .map(|&s| human_bytes(s))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `2097152` → `2 MiB`: the largest binary unit that divides the size exactly.
pub(crate) fn human_bytes(bytes: usize) -> String {
    const UNITS: [(usize, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (unit_bytes, unit) in UNITS {
        if bytes >= unit_bytes && bytes.is_multiple_of(unit_bytes) {
            return format!("{} {unit}", bytes / unit_bytes);
        }
    }
    format!("{bytes} bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_bytes_picks_the_exact_unit() {
        assert_eq!(human_bytes(2 << 20), "2 MiB");
        assert_eq!(human_bytes(1 << 30), "1 GiB");
        assert_eq!(human_bytes(4096), "4 KiB");
        assert_eq!(human_bytes(3 << 19), "1536 KiB");
        assert_eq!(human_bytes(1000), "1000 bytes");
        assert_eq!(human_bytes(0), "0 bytes");
    }

    #[test]
    fn available_pages_subtracts_reservations() {
        let s = PoolState {
            total_pages: 10,
            free_pages: 6,
            reserved_pages: 4,
            overcommit_pages: 0,
        };
        assert_eq!(s.available_pages(), 2);
        let s = PoolState {
            reserved_pages: 9,
            ..s
        };
        assert_eq!(s.available_pages(), 0);
    }

    #[test]
    fn knob_for_the_default_size_is_the_proc_file() {
        match default_huge_page_bytes() {
            Some(default) => assert_eq!(knob(default), DEFAULT_SIZE_KNOB),
            None => eprintln!("skipped: this kernel reports no default hugepage size"),
        }
        assert!(knob(1 << 40).ends_with("/hugepages-1073741824kB/nr_hugepages"));
    }
}
