//! Index checkpoints: the live records of a shard's log up to a location, so a warm
//! restart reads one file and scans only the records that follow (`docs/why-ssd-format.md`).
//!
//! `shard-<i>/index.ckpt`, little-endian, written whole to `index.ckpt.tmp`, synced and
//! renamed over the old one (so a crash leaves the old checkpoint or the new one, never a
//! mix):
//!
//! ```text
//!  0 magic u32 "MCCK"  4 version u16  6 0 u16  8 covered u64  16 used_bytes u64  24 count u64
//! 32 count entries:    loc u64, value_len u64, generation u64, put_generation u64,
//!                      value_crc u32, slice_index u32, slice_count u32, key_len u32,
//!                      object_size u64, key bytes
//!    crc u32 (CRC32C of every byte before it)   end magic u32 "MCCE"
//! ```
//!
//! `covered` is a location of the log: every record below it that is live is listed, and
//! nothing at or above it is. A restart takes the entries and scans the log from
//! `covered` on (tombstones there can still delete listed records). A file that fails any
//! check is refused whole, and the restart scans the whole log instead.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use mc_schema::checksum::crc32c;

use super::format::{FIXED_BYTES, MAX_KEY_BYTES, align_up};
use super::store::SsdEntry;

/// "MCCK".
const MAGIC: u32 = u32::from_le_bytes(*b"MCCK");
/// "MCCE": the last four bytes of a complete checkpoint.
const END_MAGIC: u32 = u32::from_le_bytes(*b"MCCE");
/// Format version written.
const VERSION: u16 = 1;
/// Bytes before the first entry.
const HEAD_BYTES: usize = 32;
/// Fixed bytes of one entry (the key follows).
const ENTRY_BYTES: usize = 56;

/// Name of the checkpoint file in a shard's directory.
pub const FILE_NAME: &str = "index.ckpt";

/// What a checkpoint holds.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// Records below this location are all listed; the log is scanned from here.
    pub covered: u64,
    /// Bytes the region below `covered` takes against the quota.
    pub used_bytes: u64,
    /// Live records below `covered`, by location.
    pub entries: BTreeMap<u64, SsdEntry>,
}

/// Why a checkpoint was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// Shorter than its header, entries and trailer say.
    #[error("index checkpoint truncated")]
    Truncated,
    /// Not a checkpoint, or one of a version this build does not read.
    #[error("not an index checkpoint of a known version")]
    BadMagic,
    /// The trailer's CRC does not match (torn or corrupt).
    #[error("index checkpoint checksum mismatch")]
    Checksum,
    /// A field is out of range.
    #[error("index checkpoint field out of range")]
    Invalid,
}

/// The checkpoint path of a shard directory.
pub fn path(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

/// Encodes `entries` (those below `covered`) with the region's `used_bytes`.
pub fn encode<'a>(
    covered: u64,
    used_bytes: u64,
    entries: impl Iterator<Item = (u64, &'a SsdEntry)>,
) -> Vec<u8> {
    let mut b = Vec::with_capacity(HEAD_BYTES + entries.size_hint().0 * (ENTRY_BYTES + 32) + 8);
    b.extend_from_slice(&MAGIC.to_le_bytes());
    b.extend_from_slice(&VERSION.to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    b.extend_from_slice(&covered.to_le_bytes());
    b.extend_from_slice(&used_bytes.to_le_bytes());
    // The count is patched in once the entries are written.
    b.extend_from_slice(&0u64.to_le_bytes());
    let mut count = 0u64;
    for (loc, e) in entries {
        count += 1;
        debug_assert!(loc < covered, "an entry at or above the covered location");
        b.extend_from_slice(&loc.to_le_bytes());
        b.extend_from_slice(&e.value_len.to_le_bytes());
        b.extend_from_slice(&e.generation.to_le_bytes());
        b.extend_from_slice(&e.put_generation.to_le_bytes());
        b.extend_from_slice(&e.value_crc.to_le_bytes());
        b.extend_from_slice(&e.slice.0.to_le_bytes());
        b.extend_from_slice(&e.slice.1.to_le_bytes());
        b.extend_from_slice(&(e.key.len() as u32).to_le_bytes());
        b.extend_from_slice(&e.object_size.to_le_bytes());
        b.extend_from_slice(&e.key);
    }
    b[24..32].copy_from_slice(&count.to_le_bytes());
    let crc = crc32c(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b.extend_from_slice(&END_MAGIC.to_le_bytes());
    b
}

/// Decodes a checkpoint; any byte string yields one or a typed error.
pub fn decode(b: &[u8]) -> Result<Checkpoint, CheckpointError> {
    if b.len() < HEAD_BYTES + 8 {
        return Err(CheckpointError::Truncated);
    }
    let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
    let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
    if u32_at(0) != MAGIC || u16::from_le_bytes([b[4], b[5]]) != VERSION {
        return Err(CheckpointError::BadMagic);
    }
    let body = b.len() - 8;
    if u32_at(body + 4) != END_MAGIC {
        return Err(CheckpointError::Truncated);
    }
    if crc32c(&b[..body]) != u32_at(body) {
        return Err(CheckpointError::Checksum);
    }
    let (covered, used_bytes, count) = (u64_at(8), u64_at(16), u64_at(24));
    if count > (body / ENTRY_BYTES) as u64 {
        return Err(CheckpointError::Invalid);
    }
    let mut entries = BTreeMap::new();
    let mut at = HEAD_BYTES;
    for _ in 0..count {
        if at + ENTRY_BYTES > body {
            return Err(CheckpointError::Truncated);
        }
        let key_len = u32_at(at + 44) as usize;
        if key_len > MAX_KEY_BYTES {
            return Err(CheckpointError::Invalid);
        }
        if at + ENTRY_BYTES + key_len > body {
            return Err(CheckpointError::Truncated);
        }
        let loc = u64_at(at);
        if loc >= covered {
            return Err(CheckpointError::Invalid);
        }
        let e = SsdEntry {
            key: b[at + ENTRY_BYTES..at + ENTRY_BYTES + key_len].to_vec(),
            block_bytes: align_up((FIXED_BYTES + key_len) as u64),
            value_len: u64_at(at + 8),
            generation: u64_at(at + 16),
            put_generation: u64_at(at + 24),
            value_crc: u32_at(at + 32),
            slice: (u32_at(at + 36), u32_at(at + 40)),
            object_size: u64_at(at + 48),
        };
        if entries.insert(loc, e).is_some() {
            return Err(CheckpointError::Invalid);
        }
        at += ENTRY_BYTES + key_len;
    }
    if at != body {
        return Err(CheckpointError::Invalid);
    }
    Ok(Checkpoint {
        covered,
        used_bytes,
        entries,
    })
}

/// Writes `bytes` as the checkpoint of `dir`: to a temporary file, synced, renamed over the
/// old one, and the directory synced. Blocking: run off the shard's executor.
pub fn write(dir: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!("{FILE_NAME}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path(dir))?;
    std::fs::File::open(dir)?.sync_all()
}

/// Reads the checkpoint of `dir`: `Ok(None)` when there is none.
pub fn read(dir: &Path) -> std::io::Result<Option<Result<Checkpoint, CheckpointError>>> {
    match std::fs::read(path(dir)) {
        Ok(b) => Ok(Some(decode(&b))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(key: &str, n: u64) -> SsdEntry {
        SsdEntry {
            key: key.as_bytes().to_vec(),
            block_bytes: 4096,
            value_len: 5000 + n,
            generation: 7 + n,
            put_generation: 3 + n,
            value_crc: 0xdead_beef ^ n as u32,
            slice: (n as u32, 4),
            object_size: 20_000,
        }
    }

    fn sample() -> (Vec<u8>, BTreeMap<u64, SsdEntry>) {
        let mut m = BTreeMap::new();
        for i in 0..5u64 {
            m.insert(i * 16384, entry(&format!("key-{i}"), i));
        }
        (encode(1 << 20, 123_456, m.iter().map(|(&l, e)| (l, e))), m)
    }

    #[test]
    fn a_checkpoint_round_trips() {
        let (b, m) = sample();
        let c = decode(&b).unwrap();
        assert_eq!((c.covered, c.used_bytes), (1 << 20, 123_456));
        assert_eq!(c.entries.len(), m.len());
        for (loc, e) in &m {
            let d = &c.entries[loc];
            assert_eq!(
                (&d.key, d.value_len, d.generation, d.put_generation),
                (&e.key, e.value_len, e.generation, e.put_generation)
            );
            assert_eq!(
                (d.value_crc, d.slice, d.object_size, d.block_bytes),
                (e.value_crc, e.slice, e.object_size, e.block_bytes)
            );
        }
        let empty = encode(0, 0, std::iter::empty());
        assert!(decode(&empty).unwrap().entries.is_empty());
    }

    #[test]
    fn a_flipped_bit_or_a_cut_anywhere_is_refused() {
        let (b, _) = sample();
        for i in 0..b.len() {
            let mut c = b.clone();
            c[i] ^= 0x04;
            assert!(decode(&c).is_err(), "flip at byte {i} accepted");
        }
        for n in 0..b.len() {
            assert!(decode(&b[..n]).is_err(), "cut at {n} accepted");
        }
    }

    proptest! {
        #[test]
        fn decoding_any_bytes_never_panics(b in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&b);
        }
    }
}
