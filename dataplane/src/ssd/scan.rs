//! Warm restart: rebuilding a shard's SSD index by scanning its record files.
//!
//! Files are read in order, record by record: a value record whose header and payload
//! check out is live until a later tombstone names it. A block that is not a valid header
//! (a torn or corrupt write, or an offload that was in flight at a crash while a later one
//! completed) is counted and stepped over block by block until the next valid header, so
//! one torn record never hides the durable records after it. A value whose payload fails
//! its CRC is counted and skipped; nothing that fails a check is ever indexed.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use glommio::io::{DmaFile, OpenOptions};
use mc_schema::checksum::crc32c;

use super::format::{BLOCK_BYTES, FIXED_BYTES, FormatError, Header, Kind, align_up};
use super::store::{FILE_SHIFT, SsdEntry};

/// What a scan found.
pub(super) struct Scanned {
    /// The record files, in order.
    pub files: Vec<Rc<DmaFile>>,
    /// Where the next record goes: after the last valid record of the last file.
    pub tail: u64,
    /// Live records by location (oldest first).
    pub entries: BTreeMap<u64, SsdEntry>,
    /// Bytes the live records, dead headers and tombstones take.
    pub used_bytes: u64,
    /// Torn or corrupt records skipped.
    pub torn: u64,
    /// Value records whose payload failed its CRC: torn, unless a later tombstone names
    /// them (a delete punches the payload out).
    suspect: HashSet<u64>,
}

/// The record file `n` of `dir`.
pub(super) fn file_path(dir: &Path, n: usize) -> PathBuf {
    dir.join(format!("{n:06}.rec"))
}

/// Opens a record file for reading and appending.
pub(super) async fn open_file(path: &Path) -> std::io::Result<DmaFile> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .dma_open(path)
        .await
        .map_err(Into::into)
}

/// Scans `dir`'s record files `000000.rec`, `000001.rec`, ... (stopping at the first
/// missing number).
pub(super) async fn scan(dir: &Path) -> std::io::Result<Scanned> {
    let mut s = Scanned {
        files: Vec::new(),
        tail: 0,
        entries: BTreeMap::new(),
        used_bytes: 0,
        torn: 0,
        suspect: HashSet::new(),
    };
    let mut n = 0;
    while file_path(dir, n).exists() {
        let f = open_file(&file_path(dir, n)).await?;
        let end = scan_file(&f, n, &mut s).await?;
        s.tail = ((n as u64) << FILE_SHIFT) | end;
        s.files.push(Rc::new(f));
        n += 1;
    }
    Ok(s)
}

/// Reads `len` bytes at `off` (fewer at the end of the file).
async fn read(f: &DmaFile, off: u64, len: u64) -> std::io::Result<glommio::io::ReadResult> {
    f.read_at_aligned(off, len as usize)
        .await
        .map_err(Into::into)
}

/// Scans file `n`; returns the end of its last valid record.
async fn scan_file(f: &DmaFile, n: usize, s: &mut Scanned) -> std::io::Result<u64> {
    let size = f.file_size().await.map_err(std::io::Error::from)?;
    let (mut off, mut end, mut in_garbage) = (0u64, 0u64, false);
    while off + BLOCK_BYTES <= size {
        let first = read(f, off, BLOCK_BYTES).await?;
        let h = match Header::decode(&first) {
            Err(FormatError::Truncated) if first.len() as u64 == BLOCK_BYTES => {
                // A long key: the header block spans two blocks.
                let two = read(f, off, 2 * BLOCK_BYTES).await?;
                Header::decode(&two)
            }
            other => other,
        };
        let Ok(h) = h.filter_fits(off, size) else {
            if !in_garbage {
                s.torn += 1;
                in_garbage = true;
            }
            off += BLOCK_BYTES;
            continue;
        };
        in_garbage = false;
        let loc = ((n as u64) << FILE_SHIFT) | off;
        let block = h.block_bytes();
        let record = h.record_bytes();
        match h.kind {
            Kind::Value => {
                let rec = read(f, off, h.record_bytes()).await?;
                let payload = rec.get(block as usize..(block + h.value_len) as usize);
                if payload.is_some_and(|p| crc32c(p) == h.value_crc) {
                    s.used_bytes += h.record_bytes();
                    s.entries.insert(loc, entry(h, block));
                } else {
                    s.torn += 1;
                    s.suspect.insert(loc);
                    s.used_bytes += block;
                }
            }
            Kind::Tombstone => {
                if let Some(e) = s.entries.remove(&h.target) {
                    s.used_bytes -= align_up(e.value_len);
                }
                if s.suspect.remove(&h.target) {
                    s.torn -= 1;
                }
                s.used_bytes += block;
            }
        }
        off += record;
        end = off;
    }
    Ok(end)
}

fn entry(h: Header, block: u64) -> SsdEntry {
    SsdEntry {
        block_bytes: block,
        value_len: h.value_len,
        generation: h.generation,
        put_generation: h.put_generation,
        value_crc: h.value_crc,
        slice: (h.slice_index, h.slice_count),
        object_size: h.object_size,
        key: h.key,
    }
}

/// A decoded header whose record lies inside the file.
trait FitsInFile {
    fn filter_fits(self, off: u64, size: u64) -> Result<Header, FormatError>;
}

impl FitsInFile for Result<Header, FormatError> {
    fn filter_fits(self, off: u64, size: u64) -> Result<Header, FormatError> {
        let h = self?;
        if FIXED_BYTES as u64 + h.key.len() as u64 > h.block_bytes()
            || off + h.record_bytes() > size
        {
            return Err(FormatError::Truncated);
        }
        Ok(h)
    }
}
