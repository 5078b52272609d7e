//! The fixed 64-byte transfer header of the data port, little-endian.
//!
//! ```text
//!  0 magic u32 "MCTX"   4 op u8   5 flags u8   6 reserved u16
//!  8 segment_id u64    16 offset u64           24 length u64
//! 32 generation u64    40 crc32c u32           44 status i32
//! 48 token u64         56 request_id u64
//! ```
//! A WRITE header is followed by `length` payload bytes, received straight into segment
//! memory; its answer is a WRITE_ACK header. A READ header is answered by a READ_DATA header
//! followed by `length` bytes sent straight from segment memory (no payload when status != 0).

use mc_schema::SchemaError;

/// Header size in bytes.
pub const TRANSFER_HEADER_BYTES: usize = 64;
/// Magic of every transfer header.
pub const TRANSFER_MAGIC: u32 = u32::from_le_bytes(*b"MCTX");

/// Operation of a transfer header.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Client → shard: write `length` bytes at `offset`; payload follows.
    Write = 1,
    /// Shard → client: outcome of a write.
    WriteAck = 2,
    /// Client → shard: read `length` bytes at `offset`.
    Read = 3,
    /// Shard → client: read outcome; payload follows when status is 0.
    ReadData = 4,
}

impl Op {
    fn from_u8(v: u8) -> Option<Op> {
        Some(match v {
            1 => Op::Write,
            2 => Op::WriteAck,
            3 => Op::Read,
            4 => Op::ReadData,
            _ => return None,
        })
    }
}

/// A decoded transfer header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransferHeader {
    /// Operation.
    pub op: Op,
    /// Flags, reserved (0).
    pub flags: u8,
    /// Target segment.
    pub segment_id: u64,
    /// Byte offset in the segment.
    pub offset: u64,
    /// Byte count.
    pub length: u64,
    /// Allocation generation the master handed out.
    pub generation: u64,
    /// CRC32C of the payload (writer's value on WRITE).
    pub crc32c: u32,
    /// Mooncake error code on answers; 0 on requests.
    pub status: i32,
    /// Transfer token (reserved for HMAC-signed ranges; 0 today).
    pub token: u64,
    /// Caller's id, echoed in the answer.
    pub request_id: u64,
}

impl TransferHeader {
    /// A request header with the given op and range; other fields zero.
    pub fn request(op: Op, segment_id: u64, offset: u64, length: u64) -> TransferHeader {
        TransferHeader {
            op,
            flags: 0,
            segment_id,
            offset,
            length,
            generation: 0,
            crc32c: 0,
            status: 0,
            token: 0,
            request_id: 0,
        }
    }

    /// The answer to this request with `op` and `status`.
    pub fn answer(&self, op: Op, status: i32) -> TransferHeader {
        TransferHeader {
            op,
            status,
            ..*self
        }
    }

    /// Encodes into 64 bytes.
    pub fn encode(&self) -> [u8; TRANSFER_HEADER_BYTES] {
        let mut b = [0u8; TRANSFER_HEADER_BYTES];
        b[0..4].copy_from_slice(&TRANSFER_MAGIC.to_le_bytes());
        b[4] = self.op as u8;
        b[5] = self.flags;
        b[8..16].copy_from_slice(&self.segment_id.to_le_bytes());
        b[16..24].copy_from_slice(&self.offset.to_le_bytes());
        b[24..32].copy_from_slice(&self.length.to_le_bytes());
        b[32..40].copy_from_slice(&self.generation.to_le_bytes());
        b[40..44].copy_from_slice(&self.crc32c.to_le_bytes());
        b[44..48].copy_from_slice(&self.status.to_le_bytes());
        b[48..56].copy_from_slice(&self.token.to_le_bytes());
        b[56..64].copy_from_slice(&self.request_id.to_le_bytes());
        b
    }

    /// Decodes; any byte string yields a header or a typed error.
    pub fn decode(b: &[u8]) -> Result<TransferHeader, SchemaError> {
        if b.len() < TRANSFER_HEADER_BYTES {
            return Err(SchemaError::Truncated {
                needed: TRANSFER_HEADER_BYTES,
                got: b.len(),
            });
        }
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        if u32_at(0) != TRANSFER_MAGIC {
            return Err(SchemaError::BadMagic);
        }
        let op = Op::from_u8(b[4])
            .ok_or_else(|| SchemaError::Invalid(format!("unknown transfer op {}", b[4])))?;
        Ok(TransferHeader {
            op,
            flags: b[5],
            segment_id: u64_at(8),
            offset: u64_at(16),
            length: u64_at(24),
            generation: u64_at(32),
            crc32c: u32_at(40),
            status: u32_at(44) as i32,
            token: u64_at(48),
            request_id: u64_at(56),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip() {
        let mut h = TransferHeader::request(Op::Write, 9, 4096, 1 << 20);
        h.crc32c = 0xdead_beef;
        h.generation = 3;
        h.request_id = 77;
        assert_eq!(TransferHeader::decode(&h.encode()).unwrap(), h);
        let a = h.answer(Op::WriteAck, -801);
        assert_eq!(TransferHeader::decode(&a.encode()).unwrap().status, -801);
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = TransferHeader::decode(&bytes);
        }
    }
}
