//! The hot cache's memory: one mapping of the whole cache size, made at start, either
//! anonymous or backed by a memfd (`MC_STORE_LOCAL_HOT_CACHE_USE_SHM`, as in Mooncake, where
//! the memfd lets dummy clients share it), populated at once so no get pays page faults.
//!
//! The only unsafe code of the hot cache is here: mapping, unmapping, and viewing the
//! mapping as a byte slice.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;

/// A private mapping of `len` bytes, unmapped on drop.
pub(crate) struct Region {
    ptr: NonNull<u8>,
    len: usize,
    /// The memfd behind the mapping (shared memory), kept open so it can be handed to
    /// another process; `None` for anonymous memory.
    fd: Option<OwnedFd>,
}

// SAFETY: the mapping is plain memory owned by this value alone; `&Region` only ever gives
// `&[u8]` and `&mut Region` `&mut [u8]`, so the borrow rules of the slices hold across threads.
#[allow(unsafe_code)]
unsafe impl Send for Region {}
// SAFETY: as above: shared access is read-only through `&[u8]`.
#[allow(unsafe_code)]
unsafe impl Sync for Region {}

/// Why a region could not be made, with the fix.
fn failed(what: &str, len: usize) -> String {
    format!(
        "local hot cache: {what} of {len} bytes failed: {}; lower \
         MC_STORE_LOCAL_HOT_CACHE_SIZE (StoreConfig::hot_cache.size_bytes) or free memory",
        std::io::Error::last_os_error()
    )
}

/// A memfd of `len` bytes.
#[allow(unsafe_code)]
fn memfd(len: usize) -> Result<OwnedFd, String> {
    let name = c"mooncake-rs-hot-cache";
    // SAFETY: `name` is a NUL-terminated string; the call has no other inputs.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(failed("memfd_create", len));
    }
    // SAFETY: `fd` was just returned by memfd_create and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: `fd` is an open memfd; ftruncate only sets its size.
    if unsafe { libc::ftruncate(fd.as_raw_fd(), len as libc::off_t) } != 0 {
        return Err(failed("sizing the memfd", len));
    }
    Ok(fd)
}

/// Maps `len` bytes read-write: of `fd` (shared) or anonymous (private).
#[allow(unsafe_code)]
fn map(len: usize, fd: Option<&OwnedFd>) -> Result<NonNull<u8>, String> {
    // Populated at once: the pages are faulted in (and zeroed) here, at connect, rather
    // than by the first gets that admit values.
    let (flags, raw) = match fd {
        Some(fd) => (libc::MAP_SHARED | libc::MAP_POPULATE, fd.as_raw_fd()),
        None => (
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
            -1,
        ),
    };
    // SAFETY: a fresh mapping chosen by the kernel (no address hint), of a valid fd of at
    // least `len` bytes or anonymous; it aliases no Rust object.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            flags,
            raw,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(failed("mmap", len));
    }
    NonNull::new(p.cast()).ok_or_else(|| failed("mmap (null)", len))
}

impl Region {
    /// Maps `len` (> 0) bytes: backed by a memfd when `shm`, anonymous otherwise.
    pub(crate) fn new(len: usize, shm: bool) -> Result<Region, String> {
        assert!(len > 0, "an empty hot cache region");
        let fd = if shm { Some(memfd(len)?) } else { None };
        let ptr = map(len, fd.as_ref())?;
        Ok(Region { ptr, len, fd })
    }

    /// Whether the memory is a memfd's.
    pub(crate) fn is_shm(&self) -> bool {
        self.fd.is_some()
    }

    /// The whole region.
    #[allow(unsafe_code)]
    pub(crate) fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr` maps `len` readable bytes (zero-filled at first, so initialised)
        // for as long as `self` lives; writes need `&mut self`, so none happen meanwhile.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The whole region, writable.
    #[allow(unsafe_code)]
    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`; `&mut self` makes this the only view of the mapping (the
        // memfd is mapped by this process alone).
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Region {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` is the mapping made in `new`, unmapped once, here; no slice of
        // it outlives `self`.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_kinds_are_writable_and_start_zeroed() {
        for shm in [false, true] {
            let mut r = Region::new(1 << 20, shm).unwrap();
            assert_eq!(r.is_shm(), shm);
            assert!(r.bytes().iter().all(|&b| b == 0));
            r.bytes_mut()[12345] = 7;
            assert_eq!(r.bytes()[12345], 7);
        }
    }
}
