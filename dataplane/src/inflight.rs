//! The ranges of segment memory that transfers use right now, and the only way to view
//! segment memory.
//!
//! A WRITE receives its payload straight into segment memory and a READ sends straight
//! from it, each across many `.await`s. The master hands out disjoint ranges, but a buggy
//! client, a lease that ran out under a slow reader, or a range re-allocated while an old
//! read is still sending could still aim two transfers at the same bytes. Rust must then
//! never hold a `&mut [u8]` and another view of the same memory at once, so every view is
//! taken here, after a check against the views already out:
//! - a write claims its range exclusively: it is refused while any transfer overlaps it;
//! - a read is refused while a write overlaps it; reads share freely.
//!
//! A refused transfer is answered with `OBJECT_REPLICA_BUSY` and counted in
//! `mc_shard_range_busy_total`; the client treats it like any failed replica. The table is
//! per shard and single-threaded (a shard is one glommio executor), so it needs no lock;
//! its size is the number of transfers in flight, so a linear scan is cheap.

use std::cell::{Cell, RefCell};
use std::ops::{Deref, DerefMut};

use crate::segment::SegmentMem;

/// One range in use.
#[derive(Debug, Clone, Copy)]
struct Claim {
    id: u64,
    segment_id: u64,
    start: u64,
    end: u64,
    write: bool,
}

impl Claim {
    fn conflicts(&self, other: &Claim) -> bool {
        self.segment_id == other.segment_id
            && self.start < other.end
            && other.start < self.end
            && (self.write || other.write)
    }
}

/// Why a view was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// The range is not inside the segment.
    #[error("range outside the segment")]
    OutOfBounds,
    /// Another transfer uses an overlapping range in a conflicting way.
    #[error("an overlapping transfer is in flight")]
    Busy,
}

/// The ranges in use on one shard.
#[derive(Debug, Default)]
pub struct InFlight {
    claims: RefCell<Vec<Claim>>,
    next_id: Cell<u64>,
}

impl InFlight {
    /// Transfers holding a view right now.
    pub fn len(&self) -> usize {
        self.claims.borrow().len()
    }

    /// Whether no transfer holds a view.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn claim(
        &self,
        seg: &SegmentMem,
        offset: u64,
        len: u64,
        write: bool,
    ) -> Result<u64, RangeError> {
        if !seg.contains(offset, len) {
            return Err(RangeError::OutOfBounds);
        }
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let c = Claim {
            id,
            segment_id: seg.id,
            start: offset,
            end: offset + len,
            write,
        };
        let mut claims = self.claims.borrow_mut();
        if claims.iter().any(|o| o.conflicts(&c)) {
            return Err(RangeError::Busy);
        }
        claims.push(c);
        Ok(id)
    }

    fn release(&self, id: u64) {
        let mut claims = self.claims.borrow_mut();
        if let Some(i) = claims.iter().position(|c| c.id == id) {
            claims.swap_remove(i);
        }
    }

    /// An exclusive view of `[offset, offset + len)` of `seg`, for receiving a WRITE.
    pub fn write<'a>(
        &'a self,
        seg: &'a SegmentMem,
        offset: u64,
        len: u64,
    ) -> Result<WriteView<'a>, RangeError> {
        let id = self.claim(seg, offset, len, true)?;
        // SAFETY: the range is inside the segment (checked by `claim`), and no other view of
        // an overlapping range of this segment exists: every view is made here, and `claim`
        // refused this one if any live claim overlapped it. The claim lives until the view
        // is dropped, so no overlapping view can be made while this one lives.
        let bytes = unsafe { seg.slice_mut(offset, len) };
        Ok(WriteView {
            table: self,
            id,
            bytes,
        })
    }

    /// A shared view of `[offset, offset + len)` of `seg`, for answering a READ.
    pub fn read<'a>(
        &'a self,
        seg: &'a SegmentMem,
        offset: u64,
        len: u64,
    ) -> Result<ReadView<'a>, RangeError> {
        let id = self.claim(seg, offset, len, false)?;
        // SAFETY: in bounds (checked by `claim`); no write view of an overlapping range
        // exists or can be made while this claim lives (see `write`), so the bytes are not
        // mutated through Rust references while shared.
        let bytes = unsafe { seg.slice(offset, len) };
        Ok(ReadView {
            table: self,
            id,
            bytes,
        })
    }
}

/// Exclusive access to a range of segment memory; the claim ends when it is dropped.
pub struct WriteView<'a> {
    table: &'a InFlight,
    id: u64,
    bytes: &'a mut [u8],
}

impl Deref for WriteView<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.bytes
    }
}

impl DerefMut for WriteView<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.bytes
    }
}

impl Drop for WriteView<'_> {
    fn drop(&mut self) {
        self.table.release(self.id);
    }
}

/// Shared access to a range of segment memory; the claim ends when it is dropped.
pub struct ReadView<'a> {
    table: &'a InFlight,
    id: u64,
    bytes: &'a [u8],
}

impl Deref for ReadView<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.bytes
    }
}

impl Drop for ReadView<'_> {
    fn drop(&mut self) {
        self.table.release(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mc_hugepages::RegionOptions;

    fn seg() -> SegmentMem {
        SegmentMem::new(1 << 20, &RegionOptions::default()).unwrap()
    }

    #[test]
    fn a_write_excludes_every_overlap_and_reads_share() {
        let (s, t) = (seg(), InFlight::default());
        let mut w = t.write(&s, 100, 100).unwrap();
        w.copy_from_slice(&[7; 100]);
        assert_eq!(t.read(&s, 150, 10).err(), Some(RangeError::Busy));
        assert_eq!(t.write(&s, 199, 1).err(), Some(RangeError::Busy));
        assert_eq!(t.write(&s, 0, 101).err(), Some(RangeError::Busy));
        // Adjacent ranges do not overlap.
        assert!(t.write(&s, 200, 10).is_ok());
        assert!(t.read(&s, 0, 100).is_ok());
        drop(w);
        let r1 = t.read(&s, 100, 100).unwrap();
        let r2 = t.read(&s, 150, 100).unwrap();
        assert_eq!(&r1[..], &[7; 100][..]);
        assert_eq!(t.write(&s, 120, 1).err(), Some(RangeError::Busy));
        assert_eq!(t.len(), 2);
        drop((r1, r2));
        assert!(t.is_empty());
        assert!(t.write(&s, 120, 1).is_ok());
    }

    #[test]
    fn other_segments_and_bounds() {
        let (a, b, t) = (seg(), seg(), InFlight::default());
        let _w = t.write(&a, 0, 10).unwrap();
        assert!(t.write(&b, 0, 10).is_ok());
        assert_eq!(t.write(&a, 1 << 20, 1).err(), Some(RangeError::OutOfBounds));
        assert_eq!(t.read(&a, u64::MAX, 2).err(), Some(RangeError::OutOfBounds));
    }
}
