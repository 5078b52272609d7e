//! A growable shared-memory file: a memfd mapped `MAP_SHARED`, read and written only by
//! copying bytes in and out.
//!
//! This is for small structured state that must outlive the process that writes it (a
//! shard's object index): another process that gets the descriptor maps the same bytes.
//! It grows by `ftruncate` + `mremap`, which may move the mapping, so no reference into it
//! is ever handed out: [`MemFile::read`] and [`MemFile::write`] copy, and writing takes
//! `&mut self`, so Rust never sees two views of the same bytes.

use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;

use crate::Error;
use crate::sys;

/// A growable mapped memfd.
#[derive(Debug)]
pub struct MemFile {
    name: String,
    fd: OwnedFd,
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: a MemFile owns its mapping and descriptor; the raw pointer is only dereferenced
// through `&self` (copies out) and `&mut self` (copies in), so moving it to another thread
// moves exclusive ownership of the mapping with it.
unsafe impl Send for MemFile {}

impl MemFile {
    /// A new zero-filled memfd of `len_bytes` (at least one page), named `name` in
    /// `/proc/<pid>/fd`.
    pub fn create(name: &str, len_bytes: usize) -> Result<MemFile, Error> {
        let cname = CString::new(name.replace('\0', "_")).map_err(|_| Error::InvalidName {
            name: name.to_string(),
        })?;
        let fd = sys::memfd_create(&cname, libc::MFD_CLOEXEC).map_err(|source| Error::Memfd {
            name: name.to_string(),
            source,
        })?;
        let len = len_bytes.max(sys::base_page_bytes());
        sys::ftruncate(fd.as_fd(), len).map_err(|source| Error::Truncate {
            name: name.to_string(),
            len_bytes: len,
            source,
        })?;
        Self::map(name, fd, len)
    }

    /// Maps an existing memfd (say, one a previous process created and handed over) at its
    /// current size.
    pub fn from_fd(name: &str, fd: OwnedFd) -> Result<MemFile, Error> {
        let len = sys::file_len(fd.as_fd()).map_err(|source| Error::Map {
            name: name.to_string(),
            len_bytes: 0,
            source,
        })?;
        Self::map(name, fd, len.max(1))
    }

    fn map(name: &str, fd: OwnedFd, len: usize) -> Result<MemFile, Error> {
        let ptr = sys::mmap_shared(fd.as_fd(), len).map_err(|source| Error::Map {
            name: name.to_string(),
            len_bytes: len,
            source,
        })?;
        Ok(MemFile {
            name: name.to_string(),
            fd,
            ptr,
            len,
        })
    }

    /// Mapped bytes.
    pub fn len_bytes(&self) -> usize {
        self.len
    }

    /// The descriptor (to hand to another process, or to map again).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Grows the file and its mapping to `len_bytes` (no-op when already that large). New
    /// bytes read as zero.
    pub fn grow(&mut self, len_bytes: usize) -> Result<(), Error> {
        if len_bytes <= self.len {
            return Ok(());
        }
        sys::ftruncate(self.fd.as_fd(), len_bytes).map_err(|source| Error::Truncate {
            name: self.name.clone(),
            len_bytes,
            source,
        })?;
        // SAFETY: `ptr`/`len` are our live mapping; `&mut self` means no copy is running and
        // no pointer into the mapping survives this call (none is ever handed out).
        let ptr =
            unsafe { sys::mremap(self.ptr, self.len, len_bytes) }.map_err(|source| Error::Map {
                name: self.name.clone(),
                len_bytes,
                source,
            })?;
        self.ptr = ptr;
        self.len = len_bytes;
        Ok(())
    }

    /// Copies `out.len()` bytes from `at` into `out`.
    ///
    /// # Panics
    /// When the range is not inside the file.
    pub fn read(&self, at: usize, out: &mut [u8]) {
        assert!(
            at.checked_add(out.len()).is_some_and(|end| end <= self.len),
            "read of {} bytes at {at} outside a {}-byte file",
            out.len(),
            self.len
        );
        // SAFETY: the range is inside our live mapping (asserted); `out` is a distinct
        // buffer of ours, so the ranges do not overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(self.ptr.as_ptr().add(at), out.as_mut_ptr(), out.len());
        }
    }

    /// Copies `data` to `at`.
    ///
    /// # Panics
    /// When the range is not inside the file.
    pub fn write(&mut self, at: usize, data: &[u8]) {
        assert!(
            at.checked_add(data.len())
                .is_some_and(|end| end <= self.len),
            "write of {} bytes at {at} outside a {}-byte file",
            data.len(),
            self.len
        );
        // SAFETY: the range is inside our live mapping (asserted); `data` is a distinct
        // buffer, so the ranges do not overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.as_ptr().add(at), data.len());
        }
    }
}

impl Drop for MemFile {
    fn drop(&mut self) {
        // SAFETY: our own live mapping; nothing points into it once we are dropped.
        if let Err(e) = unsafe { sys::munmap(self.ptr, self.len) } {
            tracing::warn!("munmap of {} failed: {e}", self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_survive_growth_and_a_second_mapping() {
        let mut f = MemFile::create("mc-test-memfile", 4096).unwrap();
        f.write(4000, b"hello");
        f.grow(1 << 20).unwrap();
        let mut got = [0u8; 5];
        f.read(4000, &mut got);
        assert_eq!(&got, b"hello");
        f.write((1 << 20) - 3, b"end");
        let mut zero = [9u8; 4];
        f.read(8192, &mut zero);
        assert_eq!(zero, [0; 4]);
        let again = MemFile::from_fd("again", f.fd().try_clone_to_owned().unwrap()).unwrap();
        assert_eq!(again.len_bytes(), 1 << 20);
        let mut tail = [0u8; 3];
        again.read((1 << 20) - 3, &mut tail);
        assert_eq!(&tail, b"end");
    }

    #[test]
    #[should_panic(expected = "outside")]
    fn out_of_range_reads_panic() {
        let f = MemFile::create("mc-test-memfile-oob", 4096).unwrap();
        let mut b = [0u8; 8];
        f.read(4090, &mut b);
    }
}
