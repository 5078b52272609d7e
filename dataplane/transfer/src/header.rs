//! The fixed 64-byte transfer header of the data port, little-endian.
//!
//! ```text
//!  0 magic u32 "MCTX"   4 op u8   5 flags u8   6 reserved u16
//!  8 segment_id u64    16 offset u64           24 length u64
//! 32 generation u64    40 crc32c u32           44 status i32
//! 48 token u64         56 request_id u64
//! ```
//! A WRITE header is followed by `length` payload bytes, received straight into segment
//! memory; its answer is a WRITE_ACK header. A WRITE with [`FLAG_OBJECT_INFO`] carries, between
//! header and payload, an [`ObjectInfo`] block and the object's key, which the shard records
//! in its object index (`docs/node-index.md`). A READ header is answered by a READ_DATA header
//! followed by `length` bytes sent straight from segment memory (no payload when status != 0).
//! A READ with [`FLAG_VALIDATE`] is served only if the shard's index holds the slice it names.
//! A READ with [`FLAG_PROBE`] (and [`FLAG_VALIDATE`]) asks only whether it holds it: the
//! READ_DATA answer carries the status, `length` 0 and the probe flag, and no payload.
//! A WRITE with [`FLAG_TOKEN`] carries its write token right after the header.

use mc_schema::SchemaError;
use mc_schema::token::WriteToken;

/// Header size in bytes.
pub const TRANSFER_HEADER_BYTES: usize = 64;
/// Header flag of a WRITE followed by an [`ObjectInfo`] block and the key.
pub const FLAG_OBJECT_INFO: u8 = 1;
/// Header flag of a READ that names what it expects to find: the slice's allocation
/// generation and its CRC32C (in `crc32c`). The shard answers REPLICA_IS_GONE unless its
/// object index holds exactly that slice at that range (`docs/why-fast-path.md`).
pub const FLAG_VALIDATE: u8 = 2;
/// Header flag of a WRITE followed by its write token ([`TOKEN_BYTES`], before any object
/// info): the capability the master signed for the allocation (`mc_schema::token`).
pub const FLAG_TOKEN: u8 = 4;
/// Header flag of a READ that only asks whether the shard still holds the slice it names,
/// as a [`FLAG_VALIDATE`] read would check (sent with that flag too). The answer is a
/// READ_DATA header with the status (0 held, REPLICA_IS_GONE otherwise), `length` 0, this
/// flag echoed, and no payload: a shard that predates probes would answer `length` bytes,
/// which the client refuses as a protocol error instead of taking them for an answer. Used
/// by the client's local hot cache (`docs/why-fast-path.md`).
pub const FLAG_PROBE: u8 = 8;
/// Size of a write token block: range offset, range length, deadline (u64 each), MAC.
pub const TOKEN_BYTES: usize = 24 + mc_schema::token::MAC_BYTES;
/// Size of the fixed part of an [`ObjectInfo`] block (the key follows it).
pub const OBJECT_INFO_BYTES: usize = 32;
/// Pin bit of [`ObjectInfo::pins`]: never evicted.
pub const PIN_HARD: u8 = 1;
/// Pin bit of [`ObjectInfo::pins`]: evicted last.
pub const PIN_SOFT: u8 = 2;
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
    /// [`FLAG_OBJECT_INFO`] and [`FLAG_TOKEN`] on writes, [`FLAG_VALIDATE`] and [`FLAG_PROBE`]
    /// on reads; other bits are 0.
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

/// Encodes a write token block.
pub fn encode_token(t: &WriteToken) -> [u8; TOKEN_BYTES] {
    let mut b = [0u8; TOKEN_BYTES];
    b[0..8].copy_from_slice(&t.range_offset.to_le_bytes());
    b[8..16].copy_from_slice(&t.range_length.to_le_bytes());
    b[16..24].copy_from_slice(&t.expires_unix_ms.to_le_bytes());
    b[24..].copy_from_slice(&t.mac);
    b
}

/// Decodes a write token block (any [`TOKEN_BYTES`] bytes are a token; the shard's MAC
/// check decides whether it is a real one).
pub fn decode_token(b: &[u8; TOKEN_BYTES]) -> WriteToken {
    let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
    let mut mac = [0u8; mc_schema::token::MAC_BYTES];
    mac.copy_from_slice(&b[24..]);
    WriteToken {
        range_offset: u64_at(0),
        range_length: u64_at(8),
        expires_unix_ms: u64_at(16),
        mac,
    }
}

/// What a WRITE says about the object its slice belongs to, so the shard can index it.
///
/// ```text
///  0 object_size u64     8 put_generation u64   16 slice_index u32   20 slice_count u32
/// 24 replica_index u16  26 key_len u16          28 pins u8           29 reserved [u8; 3]
/// ```
/// followed by `key_len` bytes of key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ObjectInfo {
    /// Bytes of the whole value.
    pub object_size: u64,
    /// Generation naming the put (its first slice's).
    pub put_generation: u64,
    /// Index of this slice in its replica.
    pub slice_index: u32,
    /// Slices per replica.
    pub slice_count: u32,
    /// Index of this replica in the put's replica list.
    pub replica_index: u16,
    /// [`PIN_HARD`], [`PIN_SOFT`].
    pub pins: u8,
}

impl ObjectInfo {
    /// Encodes the fixed part for a key of `key_len` bytes.
    pub fn encode(&self, key_len: u16) -> [u8; OBJECT_INFO_BYTES] {
        let mut b = [0u8; OBJECT_INFO_BYTES];
        b[0..8].copy_from_slice(&self.object_size.to_le_bytes());
        b[8..16].copy_from_slice(&self.put_generation.to_le_bytes());
        b[16..20].copy_from_slice(&self.slice_index.to_le_bytes());
        b[20..24].copy_from_slice(&self.slice_count.to_le_bytes());
        b[24..26].copy_from_slice(&self.replica_index.to_le_bytes());
        b[26..28].copy_from_slice(&key_len.to_le_bytes());
        b[28] = self.pins;
        b
    }

    /// Decodes the fixed part; returns the info and the key length that follows. Any byte
    /// string yields a value or a typed error.
    pub fn decode(b: &[u8]) -> Result<(ObjectInfo, usize), SchemaError> {
        if b.len() < OBJECT_INFO_BYTES {
            return Err(SchemaError::Truncated {
                needed: OBJECT_INFO_BYTES,
                got: b.len(),
            });
        }
        let u16_at = |i: usize| u16::from_le_bytes(b[i..i + 2].try_into().expect("2 bytes"));
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let info = ObjectInfo {
            object_size: u64_at(0),
            put_generation: u64_at(8),
            slice_index: u32_at(16),
            slice_count: u32_at(20),
            replica_index: u16_at(24),
            pins: b[28] & (PIN_HARD | PIN_SOFT),
        };
        let key_len = u16_at(26) as usize;
        if key_len == 0 || key_len > mc_schema::limits::MAX_KEY_LEN {
            return Err(SchemaError::Invalid(format!(
                "object info: key of {key_len} bytes (1..={})",
                mc_schema::limits::MAX_KEY_LEN
            )));
        }
        if info.slice_count == 0 || info.slice_index >= info.slice_count || info.object_size == 0 {
            return Err(SchemaError::Invalid(format!(
                "object info: slice {} of {} of a {}-byte object",
                info.slice_index, info.slice_count, info.object_size
            )));
        }
        Ok((info, key_len))
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

    #[test]
    fn tokens_round_trip() {
        let t = mc_schema::token::WriteKey::new(b"sixteen bytes ok").sign(1, 2, (3, 4), 5);
        assert_eq!(decode_token(&encode_token(&t)), t);
    }

    #[test]
    fn object_info_round_trips_and_checks_its_fields() {
        let i = ObjectInfo {
            object_size: 40 << 20,
            put_generation: 99,
            slice_index: 2,
            slice_count: 3,
            replica_index: 1,
            pins: PIN_HARD,
        };
        assert_eq!(ObjectInfo::decode(&i.encode(12)).unwrap(), (i, 12));
        assert!(ObjectInfo::decode(&i.encode(0)).is_err());
        assert!(ObjectInfo::decode(&i.encode(5000)).is_err());
        let bad = ObjectInfo {
            slice_index: 3,
            ..i
        };
        assert!(ObjectInfo::decode(&bad.encode(1)).is_err());
        assert!(ObjectInfo::decode(&i.encode(1)[..31]).is_err());
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = TransferHeader::decode(&bytes);
            let _ = ObjectInfo::decode(&bytes);
        }
    }
}
