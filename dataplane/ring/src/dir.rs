//! One direction of the pair: its indices, counters and data area in the mapping.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::layout::{
    DIR_FULL_EVENTS, DIR_READ, DIR_WRITE, FRAME_HEADER_BYTES, OFF_DIR, data_offset, frame_header,
};
use crate::map::Mapping;

/// A view of one ring. Indices are byte counts since the ring was made (never wrapped); the
/// position in the data area is `index & (capacity - 1)`. Both are multiples of 8.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dir {
    ctl: usize,
    data: usize,
    capacity: usize,
}

impl Dir {
    /// Direction `dir` (0 = agent → shard, 1 = shard → agent) of a ring of `capacity` bytes.
    pub(crate) fn new(dir: usize, capacity: usize) -> Dir {
        Dir {
            ctl: OFF_DIR[dir],
            data: data_offset(dir, capacity),
            capacity,
        }
    }

    /// Bytes of the data area.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    pub(crate) fn write_index<'m>(&self, m: &'m Mapping) -> &'m AtomicU64 {
        m.word(self.ctl + DIR_WRITE)
    }

    pub(crate) fn read_index<'m>(&self, m: &'m Mapping) -> &'m AtomicU64 {
        m.word(self.ctl + DIR_READ)
    }

    pub(crate) fn full_events<'m>(&self, m: &'m Mapping) -> &'m AtomicU64 {
        m.word(self.ctl + DIR_FULL_EVENTS)
    }

    /// Offset in the mapping of ring position `index`.
    pub(crate) fn at(&self, index: u64) -> usize {
        self.data + (index as usize & (self.capacity - 1))
    }

    /// Bytes from position `index` to the end of the data area.
    pub(crate) fn contiguous(&self, index: u64) -> usize {
        self.capacity - (index as usize & (self.capacity - 1))
    }

    /// Writes a frame (header and payload) at `index`; not yet visible to the consumer.
    pub(crate) fn write_frame(&self, m: &Mapping, index: u64, flags: u16, payload: &[u8]) {
        let len = u32::try_from(payload.len()).expect("fragments are smaller than the ring");
        let at = self.at(index);
        assert!(FRAME_HEADER_BYTES + payload.len() <= self.contiguous(index));
        m.write(at, &frame_header(len, flags));
        m.write(at + FRAME_HEADER_BYTES, payload);
    }

    /// Makes everything before `index` visible to the consumer.
    pub(crate) fn publish(&self, m: &Mapping, index: u64) {
        self.write_index(m).store(index, Ordering::Release);
    }

    /// Zeroes indices and counters.
    pub(crate) fn reset(&self, m: &Mapping) {
        self.write_index(m).store(0, Ordering::SeqCst);
        self.read_index(m).store(0, Ordering::SeqCst);
        self.full_events(m).store(0, Ordering::SeqCst);
    }
}
