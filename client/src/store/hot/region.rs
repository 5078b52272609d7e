//! The hot cache's memory: one mapping of the whole cache size, made at start, either
//! anonymous or backed by a memfd (`MC_STORE_LOCAL_HOT_CACHE_USE_SHM`, as in Mooncake, where
//! the memfd lets dummy clients share it), populated at once so no get pays page faults.
//!
//! Most unsafe code of the hot cache is here: mapping, unmapping, reading a range and
//! writing one. Reads and writes run outside the cache's lock; which bytes may be touched
//! when is the pins' business (`hot/mod.rs`), stated as each function's contract.

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

// SAFETY: the mapping is plain memory owned by this value alone, reached only through
// `range` and `write`, whose contracts keep every byte either read or written at a time
// (the cache's pins, `hot/mod.rs`), so sharing the value across threads races on nothing.
#[allow(unsafe_code)]
unsafe impl Send for Region {}
// SAFETY: as above.
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

    /// Bytes `off..off + len`, to read.
    ///
    /// # Safety
    /// Nothing may [`write`](Self::write) any of those bytes while the slice lives.
    #[allow(unsafe_code)]
    pub(crate) unsafe fn range(&self, off: usize, len: usize) -> &[u8] {
        assert!(
            off <= self.len && len <= self.len - off,
            "outside the region"
        );
        // SAFETY: in bounds (checked); the mapping is readable and initialised (zero-filled
        // at first) for as long as `self` lives; by the contract no write overlaps.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(off), len) }
    }

    /// Copies `src` to bytes `off..off + src.len()`.
    ///
    /// # Safety
    /// No slice from [`range`](Self::range) over any of those bytes may be alive, and no
    /// other write to them may run at the same time.
    #[allow(unsafe_code)]
    pub(crate) unsafe fn write(&self, off: usize, src: &[u8]) {
        assert!(
            off <= self.len && src.len() <= self.len - off,
            "outside the region"
        );
        // SAFETY: in bounds (checked); the mapping is writable; `src` is other memory (a
        // caller's slice cannot borrow the mapping while it is written, by the contract);
        // nothing else reads or writes those bytes meanwhile, by the contract.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.as_ptr().add(off), src.len())
        };
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
    #[allow(unsafe_code)]
    fn both_kinds_are_writable_and_start_zeroed() {
        for shm in [false, true] {
            let r = Region::new(1 << 20, shm).unwrap();
            assert_eq!(r.is_shm(), shm);
            // SAFETY: this test is the only user of `r`, one call at a time.
            unsafe {
                assert!(r.range(0, 1 << 20).iter().all(|&b| b == 0));
                r.write(12345, &[7, 8]);
                assert_eq!(r.range(12345, 2), [7, 8]);
            }
        }
    }

    #[test]
    #[should_panic(expected = "outside the region")]
    fn a_range_past_the_end_is_refused() {
        let r = Region::new(4096, false).unwrap();
        // SAFETY: nothing writes `r`.
        #[allow(unsafe_code)]
        let _ = unsafe { r.range(4000, 97) };
    }
}
