//! The fixed 80-byte record of one index entry, as it lies in the records file.
//!
//! ```text
//!  0 segment_id u64      8 offset u64          16 length u64         24 generation u64
//! 32 put_generation u64 40 object_size u64     48 key_at u64
//! 56 slice_index u32    60 slice_count u32     64 crc32c u32         68 replica_index u16
//! 70 key_len u16        72 pins u8             73 reserved [u8; 6]   79 state u8
//! ```
//! Little-endian. `state` is written last and cleared first, so a process that dies in the
//! middle of an update leaves either the old record or a free slot, never half a record.

/// Bytes of one record.
pub const RECORD_BYTES: usize = 80;

/// Offset of the state byte in a record.
pub const STATE_AT: usize = RECORD_BYTES - 1;

/// How far an entry got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryState {
    /// The slice's bytes landed and matched their CRC32C; the master has not confirmed the
    /// put (yet).
    Written = 1,
    /// The master committed the put.
    Committed = 2,
}

impl EntryState {
    /// The state of a state byte; `None` for a free slot (or garbage).
    pub fn from_byte(b: u8) -> Option<EntryState> {
        match b {
            1 => Some(EntryState::Written),
            2 => Some(EntryState::Committed),
            _ => None,
        }
    }
}

/// One slice of one object held by the shard (see `docs/node-index.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Segment holding the bytes.
    pub segment_id: u64,
    /// First byte in the segment.
    pub offset: u64,
    /// Bytes of the slice.
    pub length: u64,
    /// The allocation's generation.
    pub generation: u64,
    /// Generation naming the put this slice belongs to.
    pub put_generation: u64,
    /// Bytes of the whole value.
    pub object_size: u64,
    /// Index of the slice in its replica.
    pub slice_index: u32,
    /// Slices per replica.
    pub slice_count: u32,
    /// CRC32C of the slice.
    pub crc32c: u32,
    /// Index of the replica in the put.
    pub replica_index: u16,
    /// Pin bits (`mc_transfer::header::PIN_*`).
    pub pins: u8,
    /// Written or committed.
    pub state: EntryState,
}

impl Entry {
    /// One past the last byte.
    pub fn end(&self) -> u64 {
        self.offset + self.length
    }

    /// Encodes the record whose key lies at `key_at` (`key_len` bytes).
    pub fn encode(&self, key_at: u64, key_len: u16) -> [u8; RECORD_BYTES] {
        let mut b = [0u8; RECORD_BYTES];
        for (at, v) in [
            (0, self.segment_id),
            (8, self.offset),
            (16, self.length),
            (24, self.generation),
            (32, self.put_generation),
            (40, self.object_size),
            (48, key_at),
        ] {
            b[at..at + 8].copy_from_slice(&v.to_le_bytes());
        }
        b[56..60].copy_from_slice(&self.slice_index.to_le_bytes());
        b[60..64].copy_from_slice(&self.slice_count.to_le_bytes());
        b[64..68].copy_from_slice(&self.crc32c.to_le_bytes());
        b[68..70].copy_from_slice(&self.replica_index.to_le_bytes());
        b[70..72].copy_from_slice(&key_len.to_le_bytes());
        b[72] = self.pins;
        b[STATE_AT] = self.state as u8;
        b
    }

    /// Decodes a record: the entry, where its key lies and how long it is. `None` for a free
    /// slot.
    pub fn decode(b: &[u8; RECORD_BYTES]) -> Option<(Entry, u64, u16)> {
        let state = EntryState::from_byte(b[STATE_AT])?;
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        let u16_at = |i: usize| u16::from_le_bytes(b[i..i + 2].try_into().expect("2 bytes"));
        let e = Entry {
            segment_id: u64_at(0),
            offset: u64_at(8),
            length: u64_at(16),
            generation: u64_at(24),
            put_generation: u64_at(32),
            object_size: u64_at(40),
            slice_index: u32_at(56),
            slice_count: u32_at(60),
            crc32c: u32_at(64),
            replica_index: u16_at(68),
            pins: b[72],
            state,
        };
        Some((e, u64_at(48), u16_at(70)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_a_zero_state_is_free() {
        let e = Entry {
            segment_id: 1,
            offset: 2,
            length: 3,
            generation: 4,
            put_generation: 5,
            object_size: 6,
            slice_index: 7,
            slice_count: 8,
            crc32c: 9,
            replica_index: 10,
            pins: 1,
            state: EntryState::Committed,
        };
        let b = e.encode(4096, 12);
        assert_eq!(Entry::decode(&b), Some((e, 4096, 12)));
        let mut free = b;
        free[STATE_AT] = 0;
        assert_eq!(Entry::decode(&free), None);
        // Same-host readers parse the same bytes (`mc_schema::local::record`).
        assert_eq!(RECORD_BYTES, mc_schema::local::record::RECORD_BYTES);
        let v = mc_schema::local::record::parse(&b);
        assert_eq!(
            (
                v.segment_id,
                v.offset,
                v.length,
                v.generation,
                v.crc32c,
                v.live
            ),
            (1, 2, 3, 4, 9, true)
        );
        assert!(!mc_schema::local::record::parse(&free).live);
    }
}
