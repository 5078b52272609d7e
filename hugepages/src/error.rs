//! The one error type of this crate. Every message names the cause and what to do about it.

use std::io;

/// Why a [`Region`](crate::Region) could not be made.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A region of zero bytes was asked for.
    #[error(
        "segment {name}: a region of 0 bytes was asked for; give the segment a size above 0 (e.g. --global_segment_size=4GB)"
    )]
    ZeroLength {
        /// The segment's name.
        name: String,
    },

    /// Rounding the length up to whole pages does not fit in `usize`.
    #[error(
        "segment {name}: {len_bytes} bytes rounded up to whole {page_size} pages does not fit in memory addresses; ask for a smaller segment"
    )]
    LengthOverflow {
        /// The segment's name.
        name: String,
        /// The length asked for.
        len_bytes: usize,
        /// The page size, written for people (`2 MiB`).
        page_size: String,
    },

    /// The segment name cannot be passed to the kernel.
    #[error("segment name {name:?} contains a NUL byte; pick a name without one")]
    InvalidName {
        /// The name as given.
        name: String,
    },

    /// A hugepage policy string was not one of the accepted words.
    #[error("hugepage policy {input:?} is not known; use `never`, `try` or `require`")]
    InvalidHugePolicy {
        /// The text as given.
        input: String,
    },

    /// The configured hugepage size is not a power of two at least as large as a base page.
    #[error(
        "hugepage size {huge_page_bytes} bytes is not a power of two of at least the base page size ({base_page_bytes} bytes); use 2 MiB (2097152) or 1 GiB (1073741824)"
    )]
    InvalidHugePageSize {
        /// The size as configured.
        huge_page_bytes: usize,
        /// The base page size of this machine.
        base_page_bytes: usize,
    },

    /// The kernel has no hugetlb pool of the configured size (or no hugetlb support at all).
    #[error(
        "segment {name}: this kernel offers no {page_size} hugepages (sizes it offers: {supported}); set the hugepage size to one of those or use --hugepages=never"
    )]
    UnsupportedHugePageSize {
        /// The segment's name.
        name: String,
        /// The page size asked for, written for people.
        page_size: String,
        /// The sizes this kernel offers, or `none`.
        supported: String,
    },

    /// The hugetlb pool has fewer free pages than the region needs.
    #[error(
        "could not get {pages} hugepages of {page_size} for segment {name}: the hugetlb pool is short ({free_pages} free); reserve more with `echo {suggested_total} > {knob}` or use --hugepages=never"
    )]
    HugePoolShort {
        /// The segment's name.
        name: String,
        /// How many hugepages the region needs.
        pages: usize,
        /// The hugepage size, written for people.
        page_size: String,
        /// How many pages of that size were free and unreserved (0 when it could not be read).
        free_pages: usize,
        /// A pool size that would fit the region next to what is already in use.
        suggested_total: usize,
        /// The file that sets the pool size.
        knob: String,
    },

    /// `memfd_create(2)` failed.
    #[error(
        "could not create a memfd for segment {name}: {source}; check the open-files limit (`ulimit -n`) and that the kernel has memfd (Linux 3.17 or newer)"
    )]
    Memfd {
        /// The segment's name.
        name: String,
        /// What the kernel said.
        source: io::Error,
    },

    /// `ftruncate(2)` on the memfd failed.
    #[error(
        "could not size the memfd of segment {name} to {len_bytes} bytes: {source}; check the file-size limit (`ulimit -f`) or ask for a smaller segment"
    )]
    Truncate {
        /// The segment's name.
        name: String,
        /// The size asked for.
        len_bytes: usize,
        /// What the kernel said.
        source: io::Error,
    },

    /// Sealing a memfd's size failed.
    #[error("could not seal the memfd's size: {source}")]
    Seal {
        /// What the kernel said.
        source: io::Error,
    },

    /// `mmap(2)` failed.
    #[error(
        "could not map {len_bytes} bytes for segment {name}: {source}; ask for a smaller segment or raise the address-space limit (`ulimit -v`) and vm.max_map_count"
    )]
    Map {
        /// The segment's name.
        name: String,
        /// The length asked for.
        len_bytes: usize,
        /// What the kernel said.
        source: io::Error,
    },

    /// Faulting the pages in failed, almost always for lack of memory.
    #[error(
        "could not prefault {len_bytes} bytes of segment {name}: {source}; the machine (or this process's memory cgroup) is short of memory: free some or ask for a smaller segment"
    )]
    Prefault {
        /// The segment's name.
        name: String,
        /// The length of the region.
        len_bytes: usize,
        /// What the kernel said.
        source: io::Error,
    },

    /// A file region's offset is not page aligned (`mmap(2)` needs that).
    #[error(
        "segment {name}: offset {offset_bytes} is not a multiple of the page size ({page_bytes} bytes); pass an aligned offset"
    )]
    UnalignedOffset {
        /// The segment's name.
        name: String,
        /// The offset asked for.
        offset_bytes: u64,
        /// The base page size.
        page_bytes: usize,
    },

    /// The file behind a file region could not be opened read-write.
    #[error(
        "segment {name}: cannot open {path} read-write: {source}; create the shared-memory object first (shm_open + ftruncate) and check its permissions"
    )]
    OpenFile {
        /// The segment's name.
        name: String,
        /// The file.
        path: String,
        /// What the kernel said.
        source: io::Error,
    },

    /// The file behind a file region ends before the range asked for.
    #[error(
        "segment {name}: {path} holds {file_bytes} bytes, fewer than offset {offset_bytes} + size {len_bytes}; grow the file (ftruncate) or ask for less"
    )]
    FileTooShort {
        /// The segment's name.
        name: String,
        /// The file.
        path: String,
        /// The offset asked for.
        offset_bytes: u64,
        /// The length asked for.
        len_bytes: usize,
        /// The file's size.
        file_bytes: u64,
    },

    /// `mbind(2)` refused to bind the region to its NUMA node.
    #[error(
        "segment {name}: cannot bind its memory to NUMA node {node}: {source}; the node must exist and have memory (see /sys/devices/system/node), so check the core plan's NUMA nodes"
    )]
    Bind {
        /// The segment's name.
        name: String,
        /// The node asked for.
        node: usize,
        /// What the kernel said.
        source: io::Error,
    },

    /// A memory environment variable has a value this crate does not accept.
    #[error("{var}={value:?} is not accepted: {reason}")]
    InvalidEnv {
        /// The variable.
        var: &'static str,
        /// Its value (cut to 64 characters).
        value: String,
        /// What is accepted.
        reason: String,
    },
}
