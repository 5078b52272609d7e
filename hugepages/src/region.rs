//! [`Region`]: one memfd mapped shared and read-write, on plain pages or hugetlb pages.

use std::ffi::CString;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::ptr::NonNull;
use std::str::FromStr;

use crate::error::Error;
use crate::pool;
use crate::sys;

/// The longest memfd name the kernel takes: `NAME_MAX` (255) minus the `memfd:` prefix.
const MEMFD_NAME_MAX_BYTES: usize = 249;

/// Whether a region's pages come from the hugetlb pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HugePolicy {
    /// Plain pages only. The default: it needs no setup and never warns.
    #[default]
    Never,
    /// Hugetlb pages when the pool has room for the whole region, else plain pages and a
    /// logged warning that says how to reserve the pool.
    Try,
    /// Hugetlb pages or an error that says how to reserve the pool.
    Require,
}

impl FromStr for HugePolicy {
    type Err = Error;

    /// Parses `never`, `try` or `require` (any case), the values of `--hugepages`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "never" => Ok(Self::Never),
            "try" => Ok(Self::Try),
            "require" => Ok(Self::Require),
            _ => Err(Error::InvalidHugePolicy {
                input: s.to_owned(),
            }),
        }
    }
}

impl fmt::Display for HugePolicy {
    /// Writes the word [`FromStr`] accepts.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Never => "never",
            Self::Try => "try",
            Self::Require => "require",
        })
    }
}

/// How to make a [`Region`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionOptions {
    /// The segment's name: shown in `/proc/<pid>/maps` (as `/memfd:<name>`) and in every error.
    /// Names longer than the kernel's 249 bytes are cut for the kernel, not for messages.
    pub name: String,
    /// Whether to use hugetlb pages.
    pub huge: HugePolicy,
    /// The hugepage size when `huge` is not [`HugePolicy::Never`]: 2 MiB by default, 1 GiB is
    /// the other size x86-64 offers.
    pub huge_page_bytes: usize,
    /// Fault every page in at creation (default `true`), so first writes into the segment do
    /// not pay for page faults.
    pub prefault: bool,
    /// Bind the pages to this NUMA node (`mbind`, `MPOL_BIND`) before they are faulted in;
    /// `None` (the default) leaves placement to the kernel (first touch). Not applied to
    /// [`Region::map_file`]: a file someone else made keeps its own policy.
    pub numa_node: Option<usize>,
}

impl Default for RegionOptions {
    fn default() -> Self {
        Self {
            name: "segment".to_owned(),
            huge: HugePolicy::Never,
            huge_page_bytes: 2 << 20,
            prefault: true,
            numa_node: None,
        }
    }
}

/// Where a region's pages come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backing {
    /// A memfd on plain (base-size) pages.
    Memfd,
    /// A memfd on hugetlb pages (`MFD_HUGETLB`).
    MemfdHugeTlb,
    /// A named file someone else made, typically a POSIX shared-memory object under
    /// `/dev/shm` ([`Region::map_file`]).
    File,
}

/// A memfd (or a named file) mapped shared and read-write into this process. Unmapped on
/// drop; the descriptor closes with it, though other processes that mapped it keep their
/// mappings.
#[derive(Debug)]
pub struct Region {
    /// Start of the mapping; page aligned.
    ptr: NonNull<u8>,
    /// Length of the mapping: the length asked for, rounded up to whole pages.
    len_bytes: usize,
    /// Size of the pages behind the mapping.
    page_bytes: usize,
    /// Where the pages come from.
    backing: Backing,
    /// The memfd or file; kept open so it can be shared.
    fd: OwnedFd,
    /// The segment name, for messages.
    name: String,
    /// The NUMA node the pages are bound to, if any.
    numa_node: Option<usize>,
}

// SAFETY: a Region owns its mapping and descriptor; neither is tied to the creating thread, and
// the memory is plain bytes with no Rust values in it. Moving the handle between threads only
// moves a pointer and a descriptor.
unsafe impl Send for Region {}

// SAFETY: `&Region` only hands out the raw pointer, length and a borrowed descriptor; it never
// creates references into the memory. Which ranges are read and written concurrently is
// coordinated by the callers (the segment allocator), as with memory shared between processes.
unsafe impl Sync for Region {}

impl Region {
    /// Makes a region of at least `len_bytes` bytes, rounded up to whole pages, following
    /// `opts`: a memfd (`MFD_CLOEXEC`, plus `MFD_HUGETLB` and the page-size flag for hugetlb),
    /// sized with `ftruncate`, mapped `MAP_SHARED` read-write, and prefaulted if asked.
    ///
    /// With [`HugePolicy::Try`] any failure to get hugetlb pages (short pool, unsupported size)
    /// is logged as a warning and plain pages are used instead.
    pub fn new(len_bytes: usize, opts: &RegionOptions) -> Result<Region, Error> {
        if len_bytes == 0 {
            return Err(Error::ZeroLength {
                name: opts.name.clone(),
            });
        }
        let memfd_name = memfd_name(&opts.name)?;
        if opts.huge != HugePolicy::Never {
            check_huge_page_bytes(opts.huge_page_bytes)?;
        }
        match opts.huge {
            HugePolicy::Never => Self::create(len_bytes, opts, &memfd_name, Backing::Memfd),
            HugePolicy::Require => {
                Self::create(len_bytes, opts, &memfd_name, Backing::MemfdHugeTlb)
            }
            HugePolicy::Try => {
                match Self::create(len_bytes, opts, &memfd_name, Backing::MemfdHugeTlb) {
                    Ok(region) => Ok(region),
                    Err(err) => {
                        tracing::warn!(
                            segment = %opts.name,
                            len_bytes,
                            error = %err,
                            "hugetlb pages unavailable; falling back to plain pages"
                        );
                        Self::create(len_bytes, opts, &memfd_name, Backing::Memfd)
                    }
                }
            }
        }
    }

    /// Maps `len_bytes` of an existing file (typically a POSIX shared-memory object,
    /// `/dev/shm/<name>`) from `offset_bytes`, shared and read-write, so this process serves
    /// bytes another process created and may map too. The file is not created, grown or
    /// truncated here; its content is kept. `opts.name` names the region in messages and
    /// `opts.prefault` applies; `opts.huge` does not (the file decides its pages).
    ///
    /// `offset_bytes` must be a multiple of the base page size, and the file must hold the
    /// whole range: a mapping past the end of a file faults with `SIGBUS` on access. The
    /// region's length is exactly `len_bytes` (not rounded up), for the same reason. The
    /// file's owner must not shrink it while the region lives. A symlink or anything but a
    /// regular file or a character device (device DAX, for CXL memory) is refused.
    pub fn map_file(
        path: &std::path::Path,
        offset_bytes: u64,
        len_bytes: usize,
        opts: &RegionOptions,
    ) -> Result<Region, Error> {
        let name = opts.name.clone();
        if len_bytes == 0 {
            return Err(Error::ZeroLength { name });
        }
        let page_bytes = sys::base_page_bytes();
        if !offset_bytes.is_multiple_of(page_bytes as u64) {
            return Err(Error::UnalignedOffset {
                name,
                offset_bytes,
                page_bytes,
            });
        }
        // O_NOFOLLOW: the name must be the file itself, so a symlink planted under
        // /dev/shm cannot make the node map some other file.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(|source| Error::OpenFile {
                name: name.clone(),
                path: path.display().to_string(),
                source,
            })?;
        let meta = file.metadata().map_err(|source| Error::OpenFile {
            name: name.clone(),
            path: path.display().to_string(),
            source,
        })?;
        // A device-DAX character device (CXL memory, `/dev/daxX.Y`) has no size to check
        // here: the kernel refuses a mapping past its end.
        let dax = {
            use std::os::unix::fs::FileTypeExt;
            meta.file_type().is_char_device()
        };
        if !meta.is_file() && !dax {
            return Err(Error::OpenFile {
                name,
                path: path.display().to_string(),
                source: io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "not a regular file or a DAX device",
                ),
            });
        }
        let file_bytes = meta.len();
        let end = offset_bytes.checked_add(len_bytes as u64);
        if !dax && end.is_none_or(|end| end > file_bytes) {
            return Err(Error::FileTooShort {
                name,
                path: path.display().to_string(),
                offset_bytes,
                len_bytes,
                file_bytes,
            });
        }
        let fd = OwnedFd::from(file);
        let ptr = sys::mmap_shared_at(fd.as_fd(), len_bytes, offset_bytes).map_err(|source| {
            Error::Map {
                name: name.clone(),
                len_bytes,
                source,
            }
        })?;
        // From here on Drop unmaps, whatever happens next.
        let region = Region {
            ptr,
            len_bytes,
            page_bytes,
            backing: Backing::File,
            fd,
            name,
            numa_node: None,
        };
        if opts.prefault {
            region.prefault().map_err(|source| Error::Prefault {
                name: opts.name.clone(),
                len_bytes,
                source,
            })?;
        }
        tracing::debug!(
            segment = %region.name,
            path = %path.display(),
            offset_bytes,
            len_bytes,
            "file region mapped"
        );
        Ok(region)
    }

    /// Maps a memfd an earlier [`Region`] made (in this process or one that handed the
    /// descriptor over: a restarted data plane gets its segments back this way) at its
    /// current size, shared and read-write. The bytes are kept; nothing is prefaulted or
    /// bound again (the pages already exist where they were placed). A hugetlb memfd is
    /// recognised by its file system and keeps its page size.
    pub fn from_fd(fd: OwnedFd, name: &str, numa_node: Option<usize>) -> Result<Region, Error> {
        let map_err = |source| Error::Map {
            name: name.to_string(),
            len_bytes: 0,
            source,
        };
        let len_bytes = sys::file_len(fd.as_fd()).map_err(map_err)?;
        if len_bytes == 0 {
            return Err(Error::ZeroLength {
                name: name.to_string(),
            });
        }
        let (backing, page_bytes) = match sys::hugetlb_page_bytes(fd.as_fd()).map_err(map_err)? {
            Some(page) => (Backing::MemfdHugeTlb, page),
            None => (Backing::Memfd, sys::base_page_bytes()),
        };
        let ptr = sys::mmap_shared(fd.as_fd(), len_bytes).map_err(|source| Error::Map {
            name: name.to_string(),
            len_bytes,
            source,
        })?;
        Ok(Region {
            ptr,
            len_bytes,
            page_bytes,
            backing,
            fd,
            name: name.to_string(),
            numa_node,
        })
    }

    /// The start of the region, aligned to its page size. Valid until the region drops.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The length of the region: the length asked for rounded up to whole pages.
    pub fn len_bytes(&self) -> usize {
        self.len_bytes
    }

    /// The size of the pages behind the region (the base page or the hugepage size).
    pub fn page_bytes(&self) -> usize {
        self.page_bytes
    }

    /// Where the pages come from.
    pub fn backing(&self) -> Backing {
        self.backing
    }

    /// The NUMA node the region's pages are bound to (`mbind`), if any.
    pub fn numa_node(&self) -> Option<usize> {
        self.numa_node
    }

    /// The segment name the region was made with.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The memfd, so another process (sent a duplicate over a Unix socket) can map the same
    /// bytes with `mmap(MAP_SHARED)` over [`len_bytes`](Self::len_bytes).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Fixes the memfd's size for good, so a process it is handed to can map it without a
    /// later shrink turning its accesses into SIGBUS.
    pub fn seal_size(&self) -> std::io::Result<()> {
        sys::seal_size(self.fd.as_fd())
    }

    /// Fixes the size of memfd `fd` for good ([`seal_size`](Self::seal_size) for a
    /// descriptor without its region, e.g. one a keeper holds).
    pub fn seal_fd_size(fd: BorrowedFd<'_>) -> std::io::Result<()> {
        sys::seal_size(fd)
    }

    /// Whether memfd `fd` can no longer shrink (`F_SEAL_SHRINK`): a mapping of it cannot
    /// fault on a truncated page.
    pub fn size_sealed(fd: BorrowedFd<'_>) -> bool {
        sys::seals(fd).is_ok_and(|s| s & libc::F_SEAL_SHRINK != 0)
    }

    /// Makes the memfd and the mapping on `backing`, then prefaults it if asked.
    fn create(
        len_bytes: usize,
        opts: &RegionOptions,
        memfd_name: &CString,
        backing: Backing,
    ) -> Result<Region, Error> {
        let huge = backing == Backing::MemfdHugeTlb;
        let page_bytes = if huge {
            opts.huge_page_bytes
        } else {
            sys::base_page_bytes()
        };
        let rounded_bytes = len_bytes
            .checked_next_multiple_of(page_bytes)
            .ok_or_else(|| Error::LengthOverflow {
                name: opts.name.clone(),
                len_bytes,
                page_size: pool::human_bytes(page_bytes),
            })?;

        // Sealing allowed, so a region handed to another process can have its size sealed
        // (`seal_size`); nothing is sealed unless asked.
        let mut flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
        if huge {
            // The page size goes in bits 26..32 as its log2 (MFD_HUGE_2MB = 21 << 26).
            flags |= libc::MFD_HUGETLB
                | ((page_bytes.trailing_zeros() & libc::MFD_HUGE_MASK) << libc::MFD_HUGE_SHIFT);
        }
        let fd = sys::memfd_create(memfd_name, flags).map_err(|source| {
            // ENODEV: no pool of this size; EINVAL: a kernel without hugetlbfs.
            if huge && matches!(source.raw_os_error(), Some(libc::ENODEV | libc::EINVAL)) {
                Error::UnsupportedHugePageSize {
                    name: opts.name.clone(),
                    page_size: pool::human_bytes(page_bytes),
                    supported: pool::supported_sizes_text(),
                }
            } else {
                Error::Memfd {
                    name: opts.name.clone(),
                    source,
                }
            }
        })?;
        sys::ftruncate(fd.as_fd(), rounded_bytes).map_err(|source| Error::Truncate {
            name: opts.name.clone(),
            len_bytes: rounded_bytes,
            source,
        })?;
        // A shared hugetlb mapping reserves all its pages here, so a short pool shows up as
        // ENOMEM now rather than as SIGBUS on a later fault.
        let ptr = sys::mmap_shared(fd.as_fd(), rounded_bytes).map_err(|source| {
            if huge && source.raw_os_error() == Some(libc::ENOMEM) {
                pool_short(&opts.name, rounded_bytes / page_bytes, page_bytes)
            } else {
                Error::Map {
                    name: opts.name.clone(),
                    len_bytes: rounded_bytes,
                    source,
                }
            }
        })?;
        // From here on Drop unmaps, whatever happens next.
        let region = Region {
            ptr,
            len_bytes: rounded_bytes,
            page_bytes,
            backing,
            fd,
            name: opts.name.clone(),
            numa_node: opts.numa_node,
        };
        if let Some(node) = opts.numa_node {
            crate::numa::bind(region.ptr, region.len_bytes, node).map_err(|source| {
                Error::Bind {
                    name: opts.name.clone(),
                    node,
                    source,
                }
            })?;
        }
        if opts.prefault {
            region.prefault().map_err(|source| Error::Prefault {
                name: opts.name.clone(),
                len_bytes: rounded_bytes,
                source,
            })?;
        }
        tracing::debug!(
            segment = %region.name,
            len_bytes = region.len_bytes,
            page_bytes,
            ?backing,
            prefault = opts.prefault,
            "region mapped"
        );
        Ok(region)
    }

    /// Faults every page in: `MADV_POPULATE_WRITE`, or one write per page on kernels without it.
    fn prefault(&self) -> io::Result<()> {
        match self.populate_write() {
            Ok(()) => Ok(()),
            // EINVAL: the kernel predates MADV_POPULATE_WRITE (Linux 5.14).
            Err(err) if err.raw_os_error() == Some(libc::EINVAL) => {
                tracing::debug!(segment = %self.name, "MADV_POPULATE_WRITE unsupported; touching each page");
                self.touch_each_page();
                Ok(())
            }
            Err(err) => Err(err),
        }
    }

    /// `madvise(MADV_POPULATE_WRITE)` over the whole region, retried on `EINTR`.
    fn populate_write(&self) -> io::Result<()> {
        self.populate_range(0, self.len_bytes)
    }

    /// Faults in the pages of `[offset, offset + len)` (clipped to the region, widened to
    /// whole pages) with `madvise(MADV_POPULATE_WRITE)`, retried on `EINTR`. The contents
    /// are unchanged, so this may run while the range is in use (a segment that serves
    /// first and prefaults behind). `EINVAL` means the kernel predates Linux 5.14.
    pub fn populate_range(&self, offset: usize, len: usize) -> io::Result<()> {
        let start = (offset.min(self.len_bytes) / self.page_bytes) * self.page_bytes;
        let end = offset
            .saturating_add(len)
            .min(self.len_bytes)
            .next_multiple_of(self.page_bytes)
            .min(self.len_bytes);
        if end <= start {
            return Ok(());
        }
        loop {
            // SAFETY: `start..end` lies inside our own live mapping (clipped above, page
            // aligned); populating faults pages in writable without changing their contents.
            let rc = unsafe {
                libc::madvise(
                    self.ptr.as_ptr().add(start).cast(),
                    end - start,
                    sys::MADV_POPULATE_WRITE,
                )
            };
            if rc == 0 {
                return Ok(());
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }

    /// Writes a zero to the first byte of every page, faulting it in. Only called while the
    /// region is being made: the memfd is new, so its bytes are zero already and no one else
    /// holds the descriptor or the pointer yet. A file region holds someone else's bytes, so
    /// its pages are only read (faulted in readable).
    fn touch_each_page(&self) {
        if self.backing == Backing::File {
            for offset in (0..self.len_bytes).step_by(self.page_bytes) {
                // SAFETY: offset < len_bytes, inside our live mapping; a volatile read keeps
                // the load and changes nothing.
                unsafe { self.ptr.as_ptr().add(offset).read_volatile() };
            }
            return;
        }
        for offset in (0..self.len_bytes).step_by(self.page_bytes) {
            // SAFETY: offset < len_bytes, so the byte lies inside our live read-write mapping;
            // a volatile write keeps the compiler from dropping the store.
            unsafe { self.ptr.as_ptr().add(offset).write_volatile(0) };
        }
    }
}

impl AsFd for Region {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd()
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: ptr/len_bytes are exactly the mapping made in `create`, unmapped only here,
        // and a dropped Region hands out no more pointers.
        if let Err(err) = unsafe { sys::munmap(self.ptr, self.len_bytes) } {
            tracing::error!(segment = %self.name, error = %err, "munmap failed; the mapping leaks");
        }
    }
}

/// The name handed to `memfd_create`: at most 249 bytes (cut at a character boundary), no NUL.
fn memfd_name(name: &str) -> Result<CString, Error> {
    let mut end = name.len().min(MEMFD_NAME_MAX_BYTES);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    CString::new(&name[..end]).map_err(|_| Error::InvalidName {
        name: name.to_owned(),
    })
}

/// Checks that a hugepage size is a power of two no smaller than a base page.
fn check_huge_page_bytes(huge_page_bytes: usize) -> Result<(), Error> {
    let base_page_bytes = sys::base_page_bytes();
    if huge_page_bytes.is_power_of_two() && huge_page_bytes >= base_page_bytes {
        Ok(())
    } else {
        Err(Error::InvalidHugePageSize {
            huge_page_bytes,
            base_page_bytes,
        })
    }
}

/// The error for a hugetlb pool without room for `pages` pages, with the command that fixes it.
fn pool_short(name: &str, pages: usize, page_bytes: usize) -> Error {
    let state = pool::state(page_bytes);
    let free_pages = state.map_or(0, |s| s.available_pages());
    let total_pages = state.map_or(0, |s| s.total_pages);
    Error::HugePoolShort {
        name: name.to_owned(),
        pages,
        page_size: pool::human_bytes(page_bytes),
        free_pages,
        suggested_total: total_pages.saturating_add(pages.saturating_sub(free_pages)),
        knob: pool::knob(page_bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Mutex, MutexGuard};

    const MIB: usize = 1 << 20;
    const HUGE_PAGE_BYTES: usize = 2 * MIB;
    /// `f_type` of a hugetlbfs file (`include/uapi/linux/magic.h`).
    const HUGETLBFS_MAGIC: libc::__fsword_t = 0x9584_58f6;

    #[test]
    fn a_region_mapped_again_from_its_fd_sees_the_same_bytes() {
        let opts = RegionOptions {
            name: "remap".into(),
            ..RegionOptions::default()
        };
        let a = Region::new(3 * sys::base_page_bytes(), &opts).unwrap();
        // SAFETY: in bounds of the live mapping; nothing else views it.
        unsafe { a.as_ptr().add(100).write(0xAB) };
        let fd = a.fd().try_clone_to_owned().unwrap();
        let b = Region::from_fd(fd, "remap", None).unwrap();
        assert_eq!(b.len_bytes(), a.len_bytes());
        assert_eq!(b.backing(), Backing::Memfd);
        // SAFETY: in bounds of b's live mapping.
        assert_eq!(unsafe { b.as_ptr().add(100).read() }, 0xAB);
        drop(a);
        // SAFETY: as above; b's mapping outlives a's.
        assert_eq!(unsafe { b.as_ptr().add(100).read() }, 0xAB);
        let empty = sys::memfd_create(c"empty", libc::MFD_CLOEXEC).unwrap();
        assert!(matches!(
            Region::from_fd(empty, "empty", None),
            Err(Error::ZeroLength { .. })
        ));
    }

    /// Serialises the tests that read or resize the hugetlb pool.
    static POOL_LOCK: Mutex<()> = Mutex::new(());

    fn lock_pool() -> MutexGuard<'static, ()> {
        POOL_LOCK.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn opts(name: &str, huge: HugePolicy, prefault: bool) -> RegionOptions {
        RegionOptions {
            name: name.to_owned(),
            huge,
            prefault,
            ..RegionOptions::default()
        }
    }

    /// How many base pages of `[ptr, ptr + len)` are resident, per `mincore(2)`.
    fn resident_pages(ptr: *mut u8, len_bytes: usize) -> (usize, usize) {
        let page = sys::base_page_bytes();
        let pages = len_bytes.div_ceil(page);
        let mut vec = vec![0u8; pages];
        // SAFETY: the range is a live mapping of the test's region; vec has one byte per page.
        let rc = unsafe { libc::mincore(ptr.cast(), len_bytes, vec.as_mut_ptr()) };
        assert_eq!(rc, 0, "mincore: {}", io::Error::last_os_error());
        (vec.iter().filter(|&&b| b & 1 == 1).count(), pages)
    }

    /// A second mapping of a region's memfd, as another process would make it.
    struct SecondMap {
        ptr: NonNull<u8>,
        len_bytes: usize,
    }

    impl SecondMap {
        fn new(region: &Region) -> SecondMap {
            let ptr = sys::mmap_shared(region.fd(), region.len_bytes()).expect("second mmap");
            SecondMap {
                ptr,
                len_bytes: region.len_bytes(),
            }
        }
    }

    impl Drop for SecondMap {
        fn drop(&mut self) {
            // SAFETY: our own mapping from `new`, unmapped once here.
            unsafe { sys::munmap(self.ptr, self.len_bytes) }.expect("munmap");
        }
    }

    /// Writes `pattern`-derived bytes at both ends of the region and reads them back through
    /// `read_at` (the same mapping or a second one).
    fn check_both_ends(region: &Region, read_at: *mut u8, seed: u8) {
        let len = region.len_bytes();
        let chunk = 4096.min(len / 2);
        let ends = [0, len - chunk];
        for &start in &ends {
            for i in 0..chunk {
                let byte = seed.wrapping_add((i % 251) as u8).wrapping_add(start as u8);
                // SAFETY: start + i < len, inside the live mapping.
                unsafe { region.as_ptr().add(start + i).write_volatile(byte) };
            }
        }
        for &start in &ends {
            for i in 0..chunk {
                let want = seed.wrapping_add((i % 251) as u8).wrapping_add(start as u8);
                // SAFETY: start + i < len, inside a live mapping of the same memfd.
                let got = unsafe { read_at.add(start + i).read_volatile() };
                assert_eq!(got, want, "byte {} differs", start + i);
            }
        }
    }

    #[test]
    fn plain_region_roundtrips_bytes_and_is_prefaulted() {
        let region = Region::new(16 * MIB, &opts("test-plain", HugePolicy::Never, true))
            .expect("16 MiB region");
        assert_eq!(region.len_bytes(), 16 * MIB);
        assert_eq!(region.backing(), Backing::Memfd);
        assert_eq!(region.page_bytes(), sys::base_page_bytes());
        assert_eq!(region.as_ptr() as usize % region.page_bytes(), 0);
        let (resident, pages) = resident_pages(region.as_ptr(), region.len_bytes());
        assert_eq!(resident, pages, "prefault left pages out");
        check_both_ends(&region, region.as_ptr(), 7);
    }

    #[test]
    fn without_prefault_pages_stay_out_until_touched() {
        let region = Region::new(16 * MIB, &opts("test-lazy", HugePolicy::Never, false))
            .expect("16 MiB region");
        let (resident, pages) = resident_pages(region.as_ptr(), region.len_bytes());
        assert!(
            resident < pages,
            "all {pages} pages resident without prefault"
        );
        // The fallback used on kernels without MADV_POPULATE_WRITE.
        region.touch_each_page();
        let (resident, pages) = resident_pages(region.as_ptr(), region.len_bytes());
        assert_eq!(resident, pages);
    }

    #[test]
    fn second_mapping_of_the_fd_sees_the_same_bytes() {
        let region = Region::new(16 * MIB, &opts("test-share", HugePolicy::Never, true))
            .expect("16 MiB region");
        let second = SecondMap::new(&region);
        assert_ne!(second.ptr.as_ptr(), region.as_ptr());
        check_both_ends(&region, second.ptr.as_ptr(), 42);
        // And the other way: written through the second mapping, read through the region.
        // SAFETY: both offsets are inside both live mappings.
        unsafe {
            second.ptr.as_ptr().add(12345).write_volatile(0xA5);
            assert_eq!(region.as_ptr().add(12345).read_volatile(), 0xA5);
        }
    }

    #[test]
    fn file_region_maps_existing_bytes_at_an_offset() {
        let page = sys::base_page_bytes();
        let path = std::env::temp_dir().join(format!("mc-hugepages-test-{}", std::process::id()));
        let mut bytes = vec![0u8; 4 * page];
        bytes[2 * page] = 7;
        std::fs::write(&path, &bytes).unwrap();
        let region = Region::map_file(
            &path,
            2 * page as u64,
            page + 10,
            &opts("f", HugePolicy::Never, true),
        )
        .unwrap();
        assert_eq!(region.len_bytes(), page + 10);
        assert_eq!(region.backing(), Backing::File);
        // SAFETY: in bounds of the live mapping; nothing else writes it in this test.
        unsafe {
            assert_eq!(region.as_ptr().read(), 7, "prefault kept the file's bytes");
            region.as_ptr().add(1).write(9);
        }
        drop(region);
        assert_eq!(
            std::fs::read(&path).unwrap()[2 * page + 1],
            9,
            "writes reach the file"
        );

        let o = opts("f", HugePolicy::Never, false);
        assert!(matches!(
            Region::map_file(&path, 1, 10, &o),
            Err(Error::UnalignedOffset { .. })
        ));
        assert!(matches!(
            Region::map_file(&path, 2 * page as u64, 2 * page + 1, &o),
            Err(Error::FileTooShort { .. })
        ));
        assert!(matches!(
            Region::map_file(&path, u64::MAX - 4095, 10, &o),
            Err(Error::UnalignedOffset { .. } | Error::FileTooShort { .. })
        ));
        assert!(matches!(
            Region::map_file(&path, 0, 0, &o),
            Err(Error::ZeroLength { .. })
        ));
        let link = path.with_extension("link");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(
            matches!(
                Region::map_file(&link, 0, 10, &o),
                Err(Error::OpenFile { .. })
            ),
            "symlinks are not followed"
        );
        std::fs::remove_file(&link).unwrap();
        assert!(matches!(
            Region::map_file(&std::env::temp_dir(), 0, 10, &o),
            Err(Error::OpenFile { .. })
        ));
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(
            Region::map_file(&path, 0, 10, &o),
            Err(Error::OpenFile { .. })
        ));
    }

    #[test]
    fn length_rounds_up_to_whole_pages() {
        let region = Region::new(1, &opts("test-round", HugePolicy::Never, true)).unwrap();
        assert_eq!(region.len_bytes(), sys::base_page_bytes());
        let region = Region::new(
            sys::base_page_bytes() + 1,
            &opts("test-round", HugePolicy::Never, false),
        )
        .unwrap();
        assert_eq!(region.len_bytes(), 2 * sys::base_page_bytes());
    }

    #[test]
    fn bad_inputs_are_rejected_with_the_fix() {
        let err = Region::new(0, &opts("seg0", HugePolicy::Never, true)).unwrap_err();
        assert!(matches!(err, Error::ZeroLength { .. }), "{err}");
        assert!(err.to_string().contains("seg0"));

        let err = Region::new(4096, &opts("a\0b", HugePolicy::Never, true)).unwrap_err();
        assert!(matches!(err, Error::InvalidName { .. }), "{err}");

        let mut bad_size = opts("seg3", HugePolicy::Require, true);
        bad_size.huge_page_bytes = 3 * MIB;
        let err = Region::new(4096, &bad_size).unwrap_err();
        assert!(matches!(err, Error::InvalidHugePageSize { .. }), "{err}");
        assert!(err.to_string().contains("2 MiB"));
        // With Never the hugepage size is not used, so it is not checked.
        bad_size.huge = HugePolicy::Never;
        assert!(Region::new(4096, &bad_size).is_ok());

        let err =
            Region::new(usize::MAX - 10, &opts("huge-len", HugePolicy::Never, false)).unwrap_err();
        assert!(matches!(err, Error::LengthOverflow { .. }), "{err}");
    }

    #[test]
    fn long_names_are_cut_for_the_kernel() {
        let name = "é".repeat(200); // 400 bytes
        let region = Region::new(4096, &opts(&name, HugePolicy::Never, true)).unwrap();
        assert_eq!(region.name(), name);
        let cut = memfd_name(&name).unwrap();
        assert!(cut.as_bytes().len() <= MEMFD_NAME_MAX_BYTES);
        assert!(std::str::from_utf8(cut.as_bytes()).is_ok());
    }

    #[test]
    fn huge_policy_parses_and_prints() {
        for p in [HugePolicy::Never, HugePolicy::Try, HugePolicy::Require] {
            assert_eq!(p.to_string().parse::<HugePolicy>().unwrap(), p);
        }
        assert_eq!(" TRY ".parse::<HugePolicy>().unwrap(), HugePolicy::Try);
        let err = "always".parse::<HugePolicy>().unwrap_err();
        assert!(err.to_string().contains("`never`, `try` or `require`"));
    }

    #[test]
    fn region_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Region>();
    }

    /// Raises the 2 MiB pool by some pages for the life of the guard, then puts the old size back.
    struct PoolGrowth {
        knob: String,
        previous: String,
    }

    impl PoolGrowth {
        /// Writes `total + extra_pages` to the pool knob. `None` (with the reason printed) when
        /// the knob cannot be written or the kernel could not find the memory.
        fn grow(extra_pages: usize) -> Option<PoolGrowth> {
            let knob = pool::knob(HUGE_PAGE_BYTES);
            let previous = std::fs::read_to_string(&knob).ok()?.trim().to_owned();
            let before: usize = previous.parse().ok()?;
            let want = before + extra_pages;
            if let Err(err) = std::fs::write(&knob, want.to_string()) {
                eprintln!("skipped: cannot grow the hugetlb pool through {knob}: {err}");
                return None;
            }
            let guard = PoolGrowth { knob, previous };
            let now = pool::state(HUGE_PAGE_BYTES).map_or(0, |s| s.total_pages);
            if now < want {
                eprintln!(
                    "skipped: asked the kernel for {want} hugepages, it found memory for {now}"
                );
                return None; // the guard restores the old size
            }
            Some(guard)
        }
    }

    impl Drop for PoolGrowth {
        fn drop(&mut self) {
            if let Err(err) = std::fs::write(&self.knob, &self.previous) {
                eprintln!(
                    "could not restore {} to {}: {err}",
                    self.knob, self.previous
                );
            }
        }
    }

    #[test]
    fn require_gets_hugetlb_pages_when_the_pool_has_room() {
        let _lock = lock_pool();
        if pool::state(HUGE_PAGE_BYTES).is_none() {
            eprintln!("skipped: this kernel has no 2 MiB hugetlb pool");
            return;
        }
        let opts = opts("test-require", HugePolicy::Require, true);
        // Declared before the region so the pool shrinks back only after the region is gone.
        let mut _growth = None;
        let region = match Region::new(4 * MIB, &opts) {
            Ok(region) => region,
            Err(Error::HugePoolShort { .. }) => {
                _growth = PoolGrowth::grow(2);
                if _growth.is_none() {
                    eprintln!("skipped: the hugetlb pool is short and could not be grown");
                    return;
                }
                match Region::new(4 * MIB, &opts) {
                    Ok(region) => region,
                    Err(err @ Error::HugePoolShort { .. }) => {
                        eprintln!("skipped: pool grown but taken by someone else: {err}");
                        return;
                    }
                    Err(err) => panic!("hugetlb region after growing the pool: {err}"),
                }
            }
            Err(err) => panic!("hugetlb region: {err}"),
        };
        assert_eq!(region.backing(), Backing::MemfdHugeTlb);
        assert_eq!(region.len_bytes(), 4 * MIB);
        assert_eq!(region.page_bytes(), HUGE_PAGE_BYTES);
        assert_eq!(region.as_ptr() as usize % HUGE_PAGE_BYTES, 0);

        // The kernel agrees the file lives on hugetlbfs with 2 MiB blocks.
        // SAFETY: zeroed stat/statfs are valid out-parameters; the fd is open.
        let (st, sfs) = unsafe {
            use std::os::fd::AsRawFd;
            let mut st: libc::stat = std::mem::zeroed();
            let mut sfs: libc::statfs = std::mem::zeroed();
            assert_eq!(libc::fstat(region.fd().as_raw_fd(), &mut st), 0);
            assert_eq!(libc::fstatfs(region.fd().as_raw_fd(), &mut sfs), 0);
            (st, sfs)
        };
        assert_eq!(st.st_blksize as usize, HUGE_PAGE_BYTES);
        assert_eq!(sfs.f_type, HUGETLBFS_MAGIC);

        let (resident, pages) = resident_pages(region.as_ptr(), region.len_bytes());
        assert_eq!(resident, pages, "prefault left hugepages out");
        let second = SecondMap::new(&region);
        check_both_ends(&region, second.ptr.as_ptr(), 99);
        drop(second);
        drop(region);
    }

    #[test]
    fn try_falls_back_to_plain_pages_when_the_pool_is_short() {
        let _lock = lock_pool();
        let Some(state) = pool::state(HUGE_PAGE_BYTES) else {
            eprintln!("skipped: this kernel has no 2 MiB hugetlb pool");
            return;
        };
        if state.overcommit_pages > 0 {
            eprintln!("skipped: hugepage overcommit is on, so no size is sure to be short");
            return;
        }
        // One page more than the pool can give; not prefaulted, so the plain fallback costs
        // address space only.
        let pages = state.available_pages() + 1;
        let len_bytes = pages * HUGE_PAGE_BYTES;

        let err = Region::new(len_bytes, &opts("test-short", HugePolicy::Require, false))
            .expect_err("the pool cannot hold one page more than it has");
        let msg = err.to_string();
        assert!(matches!(err, Error::HugePoolShort { .. }), "{msg}");
        assert!(
            msg.contains(&format!("could not get {pages} hugepages of 2 MiB")),
            "{msg}"
        );
        assert!(msg.contains("segment test-short"), "{msg}");
        assert!(msg.contains("nr_hugepages"), "{msg}");
        assert!(msg.contains("--hugepages=never"), "{msg}");

        let region = Region::new(len_bytes, &opts("test-try", HugePolicy::Try, false))
            .expect("Try falls back instead of failing");
        if region.backing() == Backing::MemfdHugeTlb {
            eprintln!("skipped: another process grew the hugetlb pool meanwhile");
            return;
        }
        assert_eq!(region.backing(), Backing::Memfd);
        assert_eq!(region.page_bytes(), sys::base_page_bytes());
        assert_eq!(region.len_bytes(), len_bytes);
        check_both_ends(&region, region.as_ptr(), 3);
    }

    #[test]
    fn unsupported_huge_page_size_is_named_and_try_falls_back() {
        // 512 MiB is a power of two no x86-64 kernel offers as a hugepage size.
        let size = 512 * MIB;
        if pool::state(size).is_some() {
            eprintln!("skipped: this kernel offers 512 MiB hugepages");
            return;
        }
        let mut o = opts("test-odd-size", HugePolicy::Require, false);
        o.huge_page_bytes = size;
        let err = Region::new(4096, &o).unwrap_err();
        assert!(
            matches!(err, Error::UnsupportedHugePageSize { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("512 MiB"), "{err}");

        o.huge = HugePolicy::Try;
        let region = Region::new(4096, &o).expect("Try falls back");
        assert_eq!(region.backing(), Backing::Memfd);
        assert_eq!(region.len_bytes(), sys::base_page_bytes());
    }
}
