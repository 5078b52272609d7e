//! The SSD record format (`docs/why-ssd-format.md`), little-endian.
//!
//! A record is a header block followed by the payload, each a whole number of 4 KiB
//! blocks, so both are written and read with O_DIRECT at their own offsets:
//!
//! ```text
//!  0 magic u32 "MCSR"   4 version u16      6 kind u8 (1 value, 2 tombstone)  7 0 u8
//!  8 key_len u32       12 header_crc u32  16 value_len u64   24 generation u64
//! 32 put_generation u64                   40 value_crc u32   44 slice_index u32
//! 48 slice_count u32   52 0 u32           56 target u64 (tombstone: the deleted record)
//! 64 object_size u64
//! 72 key bytes, then zeros up to the next 4 KiB boundary; then the payload, zero-padded.
//! ```
//! `header_crc` is the CRC32C of the 72 fixed bytes (with the field itself zero) and the
//! key: a torn or overwritten header is detected before its lengths are trusted.

use mc_schema::checksum::crc32c;

/// Alignment of every record part (O_DIRECT on 4 KiB-sector disks).
pub const BLOCK_BYTES: u64 = 4096;
/// Bytes of the fixed header.
pub const FIXED_BYTES: usize = 72;
/// "MCSR".
pub const MAGIC: u32 = u32::from_le_bytes(*b"MCSR");
/// Format version written.
pub const VERSION: u16 = 1;
/// Longest key a record holds (`mc_schema::limits`).
pub const MAX_KEY_BYTES: usize = 4096;

/// What a record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A value slice.
    Value = 1,
    /// The record at `target` is deleted.
    Tombstone = 2,
}

/// A decoded record header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Value or tombstone.
    pub kind: Kind,
    /// The object's key.
    pub key: Vec<u8>,
    /// Payload bytes (0 for a tombstone).
    pub value_len: u64,
    /// The slice's allocation generation.
    pub generation: u64,
    /// The put the slice belongs to.
    pub put_generation: u64,
    /// CRC32C of the payload.
    pub value_crc: u32,
    /// Position of the slice in its value.
    pub slice_index: u32,
    /// Slices of the value.
    pub slice_count: u32,
    /// A tombstone's deleted record; 0 for a value.
    pub target: u64,
    /// Bytes of the whole value the slice belongs to.
    pub object_size: u64,
}

/// Why a header was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// Fewer bytes than the header needs.
    #[error("record truncated")]
    Truncated,
    /// Not a record (never written, or another file).
    #[error("bad record magic")]
    BadMagic,
    /// Written by a newer version.
    #[error("record version {0} is not supported")]
    Version(u16),
    /// The header's checksum does not match (torn or corrupt).
    #[error("record header checksum mismatch")]
    Checksum,
    /// A field is out of range.
    #[error("record field out of range")]
    Invalid,
}

/// `n` rounded up to whole blocks.
pub fn align_up(n: u64) -> u64 {
    n.next_multiple_of(BLOCK_BYTES)
}

impl Header {
    /// Bytes of the header block (fixed part and key, padded).
    pub fn block_bytes(&self) -> u64 {
        align_up((FIXED_BYTES + self.key.len()) as u64)
    }

    /// Bytes of the whole record on disk.
    pub fn record_bytes(&self) -> u64 {
        self.block_bytes() + align_up(self.value_len)
    }

    /// Writes the header block into `out` (at least [`block_bytes`](Self::block_bytes)
    /// long); the padding is zeroed.
    pub fn encode_into(&self, out: &mut [u8]) {
        let n = self.block_bytes() as usize;
        assert!(out.len() >= n, "header block of {n} bytes");
        assert!(
            self.key.len() <= MAX_KEY_BYTES,
            "key of {} bytes",
            self.key.len()
        );
        let b = &mut out[..n];
        b.fill(0);
        b[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        b[4..6].copy_from_slice(&VERSION.to_le_bytes());
        b[6] = self.kind as u8;
        b[8..12].copy_from_slice(&(self.key.len() as u32).to_le_bytes());
        b[16..24].copy_from_slice(&self.value_len.to_le_bytes());
        b[24..32].copy_from_slice(&self.generation.to_le_bytes());
        b[32..40].copy_from_slice(&self.put_generation.to_le_bytes());
        b[40..44].copy_from_slice(&self.value_crc.to_le_bytes());
        b[44..48].copy_from_slice(&self.slice_index.to_le_bytes());
        b[48..52].copy_from_slice(&self.slice_count.to_le_bytes());
        b[56..64].copy_from_slice(&self.target.to_le_bytes());
        b[64..72].copy_from_slice(&self.object_size.to_le_bytes());
        b[FIXED_BYTES..FIXED_BYTES + self.key.len()].copy_from_slice(&self.key);
        let crc = crc32c(&b[..FIXED_BYTES + self.key.len()]);
        b[12..16].copy_from_slice(&crc.to_le_bytes());
    }

    /// Decodes a header from the start of `b`; any byte string yields a header or a typed
    /// error.
    pub fn decode(b: &[u8]) -> Result<Header, FormatError> {
        if b.len() < FIXED_BYTES {
            return Err(FormatError::Truncated);
        }
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        if u32_at(0) != MAGIC {
            return Err(FormatError::BadMagic);
        }
        let version = u16::from_le_bytes([b[4], b[5]]);
        if version != VERSION {
            return Err(FormatError::Version(version));
        }
        let key_len = u32_at(8) as usize;
        if key_len > MAX_KEY_BYTES {
            return Err(FormatError::Invalid);
        }
        if b.len() < FIXED_BYTES + key_len {
            return Err(FormatError::Truncated);
        }
        let mut fixed = [0u8; FIXED_BYTES];
        fixed.copy_from_slice(&b[..FIXED_BYTES]);
        fixed[12..16].fill(0);
        let mut crc = mc_schema::checksum::Crc32c::default();
        crc.update(&fixed);
        crc.update(&b[FIXED_BYTES..FIXED_BYTES + key_len]);
        if crc.finish() != u32_at(12) {
            return Err(FormatError::Checksum);
        }
        let kind = match b[6] {
            1 => Kind::Value,
            2 => Kind::Tombstone,
            _ => return Err(FormatError::Invalid),
        };
        Ok(Header {
            kind,
            key: b[FIXED_BYTES..FIXED_BYTES + key_len].to_vec(),
            value_len: u64_at(16),
            generation: u64_at(24),
            put_generation: u64_at(32),
            value_crc: u32_at(40),
            slice_index: u32_at(44),
            slice_count: u32_at(48),
            target: u64_at(56),
            object_size: u64_at(64),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header(key: &[u8]) -> Header {
        Header {
            kind: Kind::Value,
            key: key.to_vec(),
            value_len: 5000,
            generation: 7,
            put_generation: 7,
            value_crc: 0xdead_beef,
            slice_index: 0,
            slice_count: 1,
            target: 0,
            object_size: 5000,
        }
    }

    #[test]
    fn a_header_round_trips_and_parts_are_block_aligned() {
        let h = header(b"key-1");
        assert_eq!((h.block_bytes(), h.record_bytes()), (4096, 4096 + 8192));
        let mut b = vec![0xffu8; 4096];
        h.encode_into(&mut b);
        assert_eq!(Header::decode(&b).unwrap(), h);
        assert!(
            b[FIXED_BYTES + 5..].iter().all(|&x| x == 0),
            "padding zeroed"
        );
        let long = header(&[b'k'; MAX_KEY_BYTES]);
        assert_eq!(long.block_bytes(), 8192);
    }

    #[test]
    fn a_flipped_bit_anywhere_in_the_header_is_refused() {
        let h = header(b"some-key");
        let mut b = vec![0u8; 4096];
        h.encode_into(&mut b);
        for i in 0..FIXED_BYTES + 8 {
            let mut c = b.clone();
            c[i] ^= 0x10;
            assert!(Header::decode(&c).is_err(), "flip at byte {i} accepted");
        }
    }

    proptest! {
        #[test]
        fn decoding_any_bytes_never_panics(b in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = Header::decode(&b);
        }
    }
}
