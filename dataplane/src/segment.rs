//! Segment memory owned by a shard, with the range checks that guard it.

use mc_hugepages::{Arena, Memory, Region, RegionOptions};

/// A random, non-zero segment id.
fn new_id() -> u64 {
    loop {
        let id: u64 = rand::random();
        if id != 0 {
            return id;
        }
    }
}

/// A segment: a region of memory clients write into and read from by offset.
#[derive(Debug)]
pub struct SegmentMem {
    /// Segment id (random, non-zero), reported to the master at mount.
    pub id: u64,
    mem: Memory,
}

impl SegmentMem {
    /// Allocates and prefaults `size_bytes` of segment memory.
    pub fn new(size_bytes: usize, opts: &RegionOptions) -> Result<SegmentMem, mc_hugepages::Error> {
        Self::new_in(size_bytes, opts, None)
    }

    /// `size_bytes` of segment memory from `arena` when it has room, else mapped on its own
    /// under `opts` ([`Memory::allocate`]).
    pub fn new_in(
        size_bytes: usize,
        opts: &RegionOptions,
        arena: Option<&Arena>,
    ) -> Result<SegmentMem, mc_hugepages::Error> {
        Ok(SegmentMem {
            id: new_id(),
            mem: Memory::allocate(size_bytes, opts, arena)?,
        })
    }

    /// Maps `size_bytes` of an existing shared-memory file from `offset_bytes` as segment
    /// memory (the file's bytes are kept).
    pub fn from_file(
        path: &std::path::Path,
        offset_bytes: u64,
        size_bytes: usize,
        opts: &RegionOptions,
    ) -> Result<SegmentMem, mc_hugepages::Error> {
        let region = Region::map_file(path, offset_bytes, size_bytes, opts)?;
        Ok(SegmentMem {
            id: new_id(),
            mem: region.into(),
        })
    }

    /// Segment `id` again, over a memfd an earlier segment made (a restarted data plane
    /// takes over its predecessor's memory, `crate::keep`): same id, same bytes.
    pub fn from_memfd(
        id: u64,
        fd: std::os::fd::OwnedFd,
        opts: &RegionOptions,
    ) -> Result<SegmentMem, mc_hugepages::Error> {
        let region = Region::from_fd(fd, &opts.name, opts.numa_node)?;
        Ok(SegmentMem {
            id,
            mem: region.into(),
        })
    }

    /// Segment `id` again, over the same range of a named file ([`from_file`](Self::from_file)).
    pub fn from_file_again(
        id: u64,
        path: &std::path::Path,
        offset_bytes: u64,
        size_bytes: usize,
        opts: &RegionOptions,
    ) -> Result<SegmentMem, mc_hugepages::Error> {
        let mut seg = Self::from_file(path, offset_bytes, size_bytes, opts)?;
        seg.id = id;
        Ok(seg)
    }

    /// The memfd behind the segment, when it has one of its own (not an arena slice, not a
    /// named file): what a keeper holds so a restarted data plane maps the same bytes.
    pub fn memfd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        match &self.mem {
            Memory::Region(r) if r.backing() != mc_hugepages::Backing::File => Some(r.fd()),
            _ => None,
        }
    }

    /// Faults in `[offset, offset + len)` without changing its bytes (a segment served
    /// before it was prefaulted).
    pub fn prefault_range(&self, offset: usize, len: usize) -> std::io::Result<()> {
        self.mem.populate_range(offset, len)
    }

    /// Usable bytes.
    pub fn size_bytes(&self) -> u64 {
        self.mem.len_bytes() as u64
    }

    /// Whether the memory is a slice of the node's mmap arena.
    pub fn from_arena(&self) -> bool {
        self.mem.from_arena()
    }

    /// Whether `[offset, offset + len)` lies inside the segment (overflow-safe).
    pub fn contains(&self, offset: u64, len: u64) -> bool {
        offset
            .checked_add(len)
            .is_some_and(|end| end <= self.size_bytes())
    }

    /// Mutable view of a range.
    ///
    /// # Safety
    /// `[offset, offset + len)` must lie inside the segment, and no other view of an
    /// overlapping range may exist while this one lives. [`crate::inflight::InFlight`] is
    /// the one caller, and it enforces both.
    // Segment memory is shared by design (many connections use disjoint ranges of it), so
    // handing out `&mut` from `&self` is the point; the contract above replaces the borrow
    // checker here.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn slice_mut(&self, offset: u64, len: u64) -> &mut [u8] {
        assert!(self.contains(offset, len), "range outside the segment");
        // SAFETY: in bounds (asserted); the region lives as long as `self`; exclusivity is
        // the caller's contract above.
        unsafe {
            std::slice::from_raw_parts_mut(self.mem.as_ptr().add(offset as usize), len as usize)
        }
    }

    /// Shared view of a range.
    ///
    /// # Safety
    /// In bounds, and no mutable view of an overlapping range may exist while this one
    /// lives (enforced by [`crate::inflight::InFlight`], the one caller).
    pub(crate) unsafe fn slice(&self, offset: u64, len: u64) -> &[u8] {
        assert!(self.contains(offset, len), "range outside the segment");
        // SAFETY: in bounds (asserted); the region outlives the view; no writer is the
        // caller's contract above.
        unsafe { std::slice::from_raw_parts(self.mem.as_ptr().add(offset as usize), len as usize) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_checked() {
        let s = SegmentMem::new(1 << 20, &RegionOptions::default()).unwrap();
        assert!(s.contains(0, 1 << 20));
        assert!(!s.contains(1, 1 << 20));
        assert!(!s.contains(u64::MAX, 2));
        assert!(!s.from_arena());
    }

    #[test]
    fn segments_draw_from_the_arena_and_give_it_back() {
        let arena = Arena::reserve(4 << 20, &RegionOptions::default()).unwrap();
        let a = SegmentMem::new_in(3 << 20, &RegionOptions::default(), Some(&arena)).unwrap();
        assert!(a.from_arena());
        assert_eq!(a.size_bytes(), 3 << 20);
        assert_eq!(arena.used_bytes(), 3 << 20);
        // Too large for what is left: a region of its own.
        let b = SegmentMem::new_in(2 << 20, &RegionOptions::default(), Some(&arena)).unwrap();
        assert!(!b.from_arena());
        drop(a);
        assert_eq!(arena.used_bytes(), 0);
    }
}
