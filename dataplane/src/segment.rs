//! Segment memory owned by a shard, with the range checks that guard it.

use mc_hugepages::{Region, RegionOptions};

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
    region: Region,
}

impl SegmentMem {
    /// Allocates and prefaults `size_bytes` of segment memory.
    pub fn new(size_bytes: usize, opts: &RegionOptions) -> Result<SegmentMem, mc_hugepages::Error> {
        let region = Region::new(size_bytes, opts)?;
        Ok(SegmentMem {
            id: new_id(),
            region,
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
            region,
        })
    }

    /// Usable bytes.
    pub fn size_bytes(&self) -> u64 {
        self.region.len_bytes() as u64
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
            std::slice::from_raw_parts_mut(self.region.as_ptr().add(offset as usize), len as usize)
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
        unsafe {
            std::slice::from_raw_parts(self.region.as_ptr().add(offset as usize), len as usize)
        }
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
    }
}
