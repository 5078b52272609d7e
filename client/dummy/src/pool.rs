//! The dummy's memory pool: one memfd the dummy maps and hands to its real client, and the
//! bump allocator behind `alloc_from_mem_pool`.
//!
//! Memory is handed out, never taken back (Mooncake's binding has no free for it either):
//! an inference engine allocates its KV buffers once at start.

use std::os::fd::BorrowedFd;

use mc_hugepages::{Region, RegionOptions};
use parking_lot::Mutex;

use crate::DummyError;

/// Alignment of every allocation: a cache line, enough for any dtype and for DMA.
pub const ALLOC_ALIGN_BYTES: usize = 64;

/// A shared memory pool, mapped in this process.
pub struct Pool {
    region: Region,
    /// Bytes handed out so far, from the start.
    used: Mutex<usize>,
}

impl Pool {
    /// A pool of `size_bytes` bytes (rounded up to whole pages). Pages are not prefaulted:
    /// a large pool costs memory only as it is written.
    pub fn new(size_bytes: usize) -> Result<Pool, DummyError> {
        let opts = RegionOptions {
            name: "mooncake-dummy-pool".into(),
            prefault: false,
            ..RegionOptions::default()
        };
        let region = Region::new(size_bytes, &opts)
            .map_err(|source| DummyError::Pool { size_bytes, source })?;
        // The real client maps it: a fixed size means no access of its can fault.
        region.seal_size().map_err(|e| DummyError::Pool {
            size_bytes,
            source: mc_hugepages::Error::Seal { source: e },
        })?;
        Ok(Pool {
            region,
            used: Mutex::new(0),
        })
    }

    /// Address of the first byte.
    pub fn base(&self) -> usize {
        self.region.as_ptr().addr()
    }

    /// Bytes in the pool.
    pub fn len_bytes(&self) -> usize {
        self.region.len_bytes()
    }

    /// The memfd, to hand over.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.region.fd()
    }

    /// `size_bytes` bytes no earlier call handed out, or `None` when the pool has no room.
    pub fn alloc(&self, size_bytes: usize) -> Option<usize> {
        if size_bytes == 0 {
            return None;
        }
        let mut used = self.used.lock();
        let start = used.checked_next_multiple_of(ALLOC_ALIGN_BYTES)?;
        let end = start.checked_add(size_bytes)?;
        if end > self.len_bytes() {
            return None;
        }
        *used = end;
        Some(self.base() + start)
    }

    /// The offset of `[addr, addr + len)` in the pool, when the pool holds all of it.
    pub fn offset_of(&self, addr: usize, len: usize) -> Option<u64> {
        let off = addr.checked_sub(self.base())?;
        let end = off.checked_add(len)?;
        (end <= self.len_bytes() && off < self.len_bytes()).then_some(off as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocations_are_aligned_disjoint_and_bounded() {
        let p = Pool::new(1 << 20).unwrap();
        let a = p.alloc(100).unwrap();
        let b = p.alloc(100).unwrap();
        assert_eq!(a, p.base());
        assert_eq!(b % ALLOC_ALIGN_BYTES, 0);
        assert!(b >= a + 100);
        assert_eq!(p.offset_of(b, 100), Some((b - a) as u64));
        assert_eq!(p.alloc(p.len_bytes()), None);
        assert_eq!(p.alloc(0), None);
        assert_eq!(p.offset_of(p.base() + p.len_bytes() - 1, 2), None);
        assert_eq!(p.offset_of(p.base().wrapping_sub(1), 1), None);
    }
}
