//! A read-only view of memory another process owns and writes: a memfd mapped `PROT_READ`,
//! `MAP_SHARED`.
//!
//! A client on a store node's host maps the node's segments and index records this way and
//! copies bytes out of them (same-host reads, `docs/why-fast-path.md`). The owner may be
//! writing the very bytes being copied, so the view never hands out a reference: it only
//! copies ([`SharedView::copy_out`]), and whoever copies must validate what they got
//! afterwards (the index record around it, seqlock style, then the CRC32C).

use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::NonNull;

use crate::sys;

/// A read-only shared mapping of a descriptor's first `len` bytes.
#[derive(Debug)]
pub struct SharedView {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the view only ever copies bytes out of the mapping (no reference into it exists),
// so it may be used from any thread and by several at once.
unsafe impl Send for SharedView {}
// SAFETY: as above: `copy_out` takes `&self` and only reads.
unsafe impl Sync for SharedView {}

impl SharedView {
    /// Maps the first `len_bytes` of `fd` read-only and shared. The owner must never shrink
    /// the file below that (a sealed memfd, or a file that only grows), or reads fault.
    pub fn map(fd: BorrowedFd<'_>, len_bytes: usize) -> std::io::Result<SharedView> {
        if len_bytes == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "cannot map 0 bytes",
            ));
        }
        let ptr = map_read_only(fd, len_bytes)?;
        Ok(SharedView {
            ptr,
            len: len_bytes,
        })
    }

    /// Mapped bytes.
    pub fn len_bytes(&self) -> usize {
        self.len
    }

    /// Copies `dst.len()` bytes from `at` into `dst` and returns them, now initialised;
    /// `None` (nothing copied) when the range is not inside the view. The bytes may be
    /// changing while they are copied: the caller must check, after the copy, that they
    /// are the ones it wanted.
    pub fn copy_out<'d>(&self, at: usize, dst: &'d mut [MaybeUninit<u8>]) -> Option<&'d mut [u8]> {
        if at.checked_add(dst.len()).is_none_or(|end| end > self.len) {
            return None;
        }
        Some(copy_racy(self.ptr, at, dst))
    }

    /// The `N` bytes at `at` (as [`copy_out`](Self::copy_out)).
    pub fn read_array<const N: usize>(&self, at: usize) -> Option<[u8; N]> {
        let mut out = [MaybeUninit::new(0u8); N];
        self.copy_out(at, &mut out)?;
        Some(out.map(initialised))
    }
}

/// The byte of a `MaybeUninit` that was made with `MaybeUninit::new` (so always initialised).
fn initialised(b: MaybeUninit<u8>) -> u8 {
    // SAFETY: only called on bytes made by `MaybeUninit::new` and then overwritten by a copy
    // of bytes (`read_array`): initialised either way.
    unsafe { b.assume_init() }
}

/// Copies from a shared mapping that another process may be writing meanwhile; returns
/// `dst`, every byte of which the copy initialised.
fn copy_racy(base: NonNull<u8>, at: usize, dst: &mut [MaybeUninit<u8>]) -> &mut [u8] {
    // SAFETY: `at + dst.len()` lies inside the live mapping (checked by the caller); `dst` is
    // memory of ours, distinct from the mapping. Concurrent writes by the owner process are
    // outside what Rust can see: the copy may read a mix of old and new bytes, which the
    // caller detects (index record re-checked after a fence, then the CRC32C) and discards.
    // Once copied, every byte of `dst` is initialised, so viewing it as `[u8]` is sound.
    unsafe {
        std::ptr::copy_nonoverlapping(
            base.as_ptr().add(at),
            dst.as_mut_ptr().cast::<u8>(),
            dst.len(),
        );
        std::slice::from_raw_parts_mut(dst.as_mut_ptr().cast::<u8>(), dst.len())
    }
}

/// `mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0)`.
fn map_read_only(fd: BorrowedFd<'_>, len_bytes: usize) -> std::io::Result<NonNull<u8>> {
    // SAFETY: a NULL hint lets the kernel pick an unused range, so no existing mapping of
    // this process is replaced; `fd` is open for the duration of the call.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len_bytes,
            libc::PROT_READ,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            0,
        )
    };
    if addr == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    NonNull::new(addr.cast::<u8>()).ok_or_else(|| std::io::Error::from_raw_os_error(libc::EFAULT))
}

impl Drop for SharedView {
    fn drop(&mut self) {
        // SAFETY: our own live mapping; no reference into it exists (only copies were made).
        if let Err(e) = unsafe { sys::munmap(self.ptr, self.len) } {
            tracing::warn!("munmap of a shared view failed: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemFile;

    #[test]
    fn copies_what_the_owner_wrote_and_refuses_ranges_outside() {
        let mut f = MemFile::create("mc-test-view", 8192).unwrap();
        let v = SharedView::map(f.fd(), 8192).unwrap();
        f.write(100, b"hello");
        assert_eq!(v.read_array::<5>(100), Some(*b"hello"));
        let mut got = [MaybeUninit::new(0u8); 5];
        assert_eq!(v.copy_out(100, &mut got).as_deref(), Some(&b"hello"[..]));
        assert!(v.copy_out(8190, &mut got).is_none(), "outside the view");
        assert!(v.copy_out(usize::MAX, &mut got).is_none(), "overflow");
    }
}
