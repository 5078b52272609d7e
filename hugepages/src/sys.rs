//! Thin wrappers over the system calls a region needs, each turning `-1`/`errno` into
//! `io::Error`. The `unsafe` of this crate lives here and in the few `Region` methods that
//! touch the mapped range.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;

/// `madvise` advice that faults every page of a range in, writable, without writing to it.
/// Linux 5.14; not yet exported by the `libc` crate. Value from `include/uapi/asm-generic/mman-common.h`.
pub(crate) const MADV_POPULATE_WRITE: libc::c_int = 23;

/// The base page size of this machine (4 KiB on x86-64).
pub(crate) fn base_page_bytes() -> usize {
    // SAFETY: sysconf only reads a configuration value.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    // sysconf(_SC_PAGESIZE) cannot fail on Linux; 4 KiB is the only sane fallback.
    usize::try_from(page)
        .ok()
        .filter(|&p| p > 0)
        .unwrap_or(4096)
}

/// `memfd_create(name, flags)`.
pub(crate) fn memfd_create(name: &CStr, flags: libc::c_uint) -> io::Result<OwnedFd> {
    // SAFETY: `name` is a valid NUL-terminated string that outlives the call; the kernel copies it.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: memfd_create just returned this descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Seals the size of memfd `fd` for good: `F_SEAL_SHRINK | F_SEAL_GROW`, then `F_SEAL_SEAL`.
pub(crate) fn seal_size(fd: BorrowedFd<'_>) -> io::Result<()> {
    let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
    // SAFETY: `fd` is an open descriptor for the duration of the borrow; F_ADD_SEALS takes
    // an int argument and touches no memory of ours.
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The seals of memfd `fd` (`F_GET_SEALS`).
pub(crate) fn seals(fd: BorrowedFd<'_>) -> io::Result<libc::c_int> {
    // SAFETY: as in `seal_size`; F_GET_SEALS takes no argument.
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// `ftruncate(fd, len_bytes)`, retried on `EINTR`.
pub(crate) fn ftruncate(fd: BorrowedFd<'_>, len_bytes: usize) -> io::Result<()> {
    let len =
        libc::off_t::try_from(len_bytes).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
    loop {
        // SAFETY: `fd` is an open descriptor for the duration of the borrow; ftruncate touches
        // no memory of ours.
        let rc = unsafe { libc::ftruncate(fd.as_raw_fd(), len) };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Maps `len_bytes` of `fd` from offset 0, shared and read-write, at an address the kernel picks.
pub(crate) fn mmap_shared(fd: BorrowedFd<'_>, len_bytes: usize) -> io::Result<NonNull<u8>> {
    mmap_shared_at(fd, len_bytes, 0)
}

/// Maps `len_bytes` of `fd` from `offset_bytes` (page aligned), shared and read-write, at an
/// address the kernel picks.
pub(crate) fn mmap_shared_at(
    fd: BorrowedFd<'_>,
    len_bytes: usize,
    offset_bytes: u64,
) -> io::Result<NonNull<u8>> {
    let offset = libc::off_t::try_from(offset_bytes)
        .map_err(|_| io::Error::from_raw_os_error(libc::EOVERFLOW))?;
    // SAFETY: a NULL hint lets the kernel pick an unused range, so no existing mapping of this
    // process is replaced; `fd` is open for the duration of the call.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len_bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            offset,
        )
    };
    if addr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    NonNull::new(addr.cast::<u8>()).ok_or_else(|| io::Error::from_raw_os_error(libc::EFAULT))
}

/// Unmaps a range mapped by [`mmap_shared`].
///
/// # Safety
/// `ptr` and `len_bytes` must be exactly a mapping returned by [`mmap_shared`] that is not yet
/// unmapped, and no reference into it may be used afterwards.
pub(crate) unsafe fn munmap(ptr: NonNull<u8>, len_bytes: usize) -> io::Result<()> {
    // SAFETY: the caller guarantees the range is our own live mapping and is done with it.
    let rc = unsafe { libc::munmap(ptr.as_ptr().cast(), len_bytes) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Grows (or shrinks) a mapping made by [`mmap_shared`] to `new_len_bytes`, letting the
/// kernel move it.
///
/// # Safety
/// `ptr` and `old_len_bytes` must be exactly a live mapping returned by [`mmap_shared`] (or
/// an earlier `mremap`), and no pointer or reference into the old range may be used once
/// this returns: the mapping may have moved.
pub(crate) unsafe fn mremap(
    ptr: NonNull<u8>,
    old_len_bytes: usize,
    new_len_bytes: usize,
) -> io::Result<NonNull<u8>> {
    // SAFETY: the caller guarantees the range is our own live mapping and gives up every
    // pointer into it; MREMAP_MAYMOVE never overwrites another mapping.
    let addr = unsafe {
        libc::mremap(
            ptr.as_ptr().cast(),
            old_len_bytes,
            new_len_bytes,
            libc::MREMAP_MAYMOVE,
        )
    };
    if addr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    NonNull::new(addr.cast::<u8>()).ok_or_else(|| io::Error::from_raw_os_error(libc::EFAULT))
}

/// Size in bytes of the file behind `fd`.
pub(crate) fn file_len(fd: BorrowedFd<'_>) -> io::Result<usize> {
    let f = std::fs::File::from(fd.try_clone_to_owned()?);
    usize::try_from(f.metadata()?.len()).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))
}

/// `statfs` magic of hugetlbfs (`linux/magic.h`).
const HUGETLBFS_MAGIC: i64 = 0x9584_58f6;

/// The hugepage size of the memfd behind `fd` when it lives on hugetlbfs, else `None`.
pub(crate) fn hugetlb_page_bytes(fd: BorrowedFd<'_>) -> io::Result<Option<usize>> {
    let mut st = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: `fd` is a live descriptor and `st` points at writable memory of the struct's
    // size; fstatfs fills it completely on success.
    let rc = unsafe { libc::fstatfs(fd.as_raw_fd(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fstatfs returned 0, so it initialised the struct.
    let st = unsafe { st.assume_init() };
    #[allow(clippy::unnecessary_cast)] // f_type's width differs between architectures
    let huge = st.f_type as i64 == HUGETLBFS_MAGIC;
    Ok(huge.then_some(st.f_bsize as usize))
}
