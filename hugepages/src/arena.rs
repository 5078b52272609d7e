//! [`Arena`]: one region reserved up front (Mooncake's `MC_MMAP_ARENA_POOL_SIZE`) that
//! runtime mounts and client buffers carve [`ArenaSlice`]s from, so they need no `mmap`,
//! no hugepage reservation and no prefault of their own, and cannot fail for want of
//! hugepages once the pool is had.
//!
//! Slices are whole pages of the pool (2 MiB for a hugetlb pool), first fit, and merge back
//! into their neighbours when dropped. A slice's bytes are whatever its last user left.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::Error;
use crate::region::{Backing, Region, RegionOptions};

/// A pool of memory reserved once; cheap to clone (all clones share the pool).
#[derive(Debug, Clone)]
pub struct Arena {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    region: Region,
    /// Free ranges: offset → length, both multiples of the region's page size, never
    /// adjacent (merged on free). At most one more entry than there are live slices.
    free: Mutex<BTreeMap<usize, usize>>,
}

impl Inner {
    fn free_list(&self) -> MutexGuard<'_, BTreeMap<usize, usize>> {
        self.free.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A piece of an [`Arena`]; goes back to the pool when dropped.
#[derive(Debug)]
pub struct ArenaSlice {
    arena: Arc<Inner>,
    offset: usize,
    len_bytes: usize,
}

// SAFETY: a slice is an offset into a Region (Send + Sync) that the Arc keeps alive; the
// free list is behind a mutex. No other slice overlaps it, so moving or sharing the handle
// across threads never creates two owners of the same bytes.
unsafe impl Send for ArenaSlice {}
// SAFETY: `&ArenaSlice` only hands out a raw pointer and lengths, like `&Region`.
unsafe impl Sync for ArenaSlice {}

impl Arena {
    /// Reserves a pool of at least `pool_bytes` under `opts` (a hugetlb pool with
    /// [`HugePolicy::Try`](crate::HugePolicy::Try) falls back to plain pages with a logged
    /// reason; with `Require` a short pool is an error that says how to grow it).
    pub fn reserve(pool_bytes: usize, opts: &RegionOptions) -> Result<Arena, Error> {
        let region = Region::new(pool_bytes, opts)?;
        tracing::info!(
            arena = %opts.name,
            pool_bytes = region.len_bytes(),
            page_bytes = region.page_bytes(),
            backing = ?region.backing(),
            numa_node = ?region.numa_node(),
            "mmap arena reserved"
        );
        let free = BTreeMap::from([(0, region.len_bytes())]);
        Ok(Arena {
            inner: Arc::new(Inner {
                region,
                free: Mutex::new(free),
            }),
        })
    }

    /// A slice of at least `len_bytes` (rounded up to whole pages), or `None` when no free
    /// range is that large (or `len_bytes` is 0).
    pub fn alloc(&self, len_bytes: usize) -> Option<ArenaSlice> {
        let page = self.inner.region.page_bytes();
        let want = len_bytes.checked_next_multiple_of(page)?;
        if want == 0 {
            return None;
        }
        let mut free = self.inner.free_list();
        let (&offset, &len) = free.iter().find(|&(_, &len)| len >= want)?;
        free.remove(&offset);
        if len > want {
            free.insert(offset + want, len - want);
        }
        drop(free);
        Some(ArenaSlice {
            arena: self.inner.clone(),
            offset,
            len_bytes: want,
        })
    }

    /// Bytes in the pool.
    pub fn pool_bytes(&self) -> usize {
        self.inner.region.len_bytes()
    }

    /// Bytes handed out in live slices.
    pub fn used_bytes(&self) -> usize {
        self.pool_bytes() - self.inner.free_list().values().sum::<usize>()
    }

    /// The page size of the pool (a slice's granularity).
    pub fn page_bytes(&self) -> usize {
        self.inner.region.page_bytes()
    }

    /// Where the pool's pages come from.
    pub fn backing(&self) -> Backing {
        self.inner.region.backing()
    }

    /// The NUMA node the pool is bound to, if any.
    pub fn numa_node(&self) -> Option<usize> {
        self.inner.region.numa_node()
    }
}

impl ArenaSlice {
    /// The start of the slice, aligned to the pool's page size.
    pub fn as_ptr(&self) -> *mut u8 {
        // SAFETY: offset + len_bytes <= the region's length (alloc carved it from a free
        // range), so the result stays inside the live mapping the Arc keeps.
        unsafe { self.arena.region.as_ptr().add(self.offset) }
    }

    /// The slice's length: the length asked for rounded up to whole pages.
    pub fn len_bytes(&self) -> usize {
        self.len_bytes
    }

    /// The page size behind the slice.
    pub fn page_bytes(&self) -> usize {
        self.arena.region.page_bytes()
    }

    /// Where its pages come from.
    pub fn backing(&self) -> Backing {
        self.arena.region.backing()
    }
}

impl Drop for ArenaSlice {
    fn drop(&mut self) {
        let mut free = self.arena.free_list();
        let mut offset = self.offset;
        let mut len = self.len_bytes;
        // Merge with the free range just before, and with the one just after.
        if let Some((&prev, &prev_len)) = free.range(..offset).next_back()
            && prev + prev_len == offset
        {
            free.remove(&prev);
            offset = prev;
            len += prev_len;
        }
        if let Some(next_len) = free.remove(&(offset + len)) {
            len += next_len;
        }
        debug_assert!(
            free.range(offset..offset + len).next().is_none(),
            "double free in the arena"
        );
        free.insert(offset, len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HugePolicy;
    use proptest::prelude::*;

    fn arena(pages: usize) -> Arena {
        let opts = RegionOptions {
            name: "test-arena".into(),
            huge: HugePolicy::Never,
            ..RegionOptions::default()
        };
        Arena::reserve(pages * crate::sys::base_page_bytes(), &opts).unwrap()
    }

    #[test]
    fn slices_are_disjoint_page_multiples_and_come_back() {
        let a = arena(8);
        let page = a.page_bytes();
        let s1 = a.alloc(1).unwrap();
        let s2 = a.alloc(2 * page).unwrap();
        assert_eq!(s1.len_bytes(), page);
        assert_eq!(s2.len_bytes(), 2 * page);
        assert_eq!(s2.as_ptr() as usize - s1.as_ptr() as usize, page);
        assert_eq!(a.used_bytes(), 3 * page);
        assert!(a.alloc(6 * page).is_none(), "only 5 pages are left");
        assert!(a.alloc(0).is_none());
        // SAFETY: each write is inside its own live slice.
        unsafe {
            s1.as_ptr().write(1);
            s2.as_ptr().add(2 * page - 1).write(2);
            assert_eq!(s1.as_ptr().read(), 1);
        }
        drop(s1);
        drop(s2);
        assert_eq!(a.used_bytes(), 0);
        let whole = a.alloc(8 * page).expect("freed ranges merge back into one");
        assert_eq!(whole.len_bytes(), a.pool_bytes());
    }

    #[test]
    fn a_slice_keeps_the_pool_alive() {
        let s = arena(2).alloc(1).unwrap();
        // SAFETY: inside the live slice; the arena handle is gone but the Arc is not.
        unsafe {
            s.as_ptr().write(7);
            assert_eq!(s.as_ptr().read(), 7);
        }
    }

    proptest! {
        #[test]
        fn any_alloc_free_sequence_keeps_the_books(ops in proptest::collection::vec((0usize..5, any::<bool>()), 1..60)) {
            let a = arena(16);
            let page = a.page_bytes();
            let mut live: Vec<ArenaSlice> = Vec::new();
            for (pages, free_one) in ops {
                if free_one && !live.is_empty() {
                    live.swap_remove(pages % live.len());
                } else if let Some(s) = a.alloc(pages * page) {
                    live.push(s);
                }
                let used: usize = live.iter().map(|s| s.len_bytes()).sum();
                prop_assert_eq!(a.used_bytes(), used);
                let mut ranges: Vec<(usize, usize)> = live.iter().map(|s| (s.as_ptr() as usize, s.len_bytes())).collect();
                ranges.sort_unstable();
                prop_assert!(ranges.windows(2).all(|w| w[0].0 + w[0].1 <= w[1].0), "slices overlap");
                prop_assert!(a.inner.free_list().len() <= live.len() + 1);
            }
            live.clear();
            prop_assert_eq!(a.used_bytes(), 0);
            prop_assert_eq!(a.inner.free_list().len(), 1);
        }
    }
}
