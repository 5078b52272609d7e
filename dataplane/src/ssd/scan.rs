//! Warm restart: rebuilding a shard's SSD index from its index checkpoint
//! (`checkpoint.rs`) and a scan of the record files from the location the checkpoint
//! covers (the whole log when there is no valid checkpoint).
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

use super::checkpoint;
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
    /// Records taken from the index checkpoint (0 without one).
    pub from_checkpoint: u64,
    /// Records read by the scan that followed (value records and tombstones).
    pub scanned: u64,
    /// Why a checkpoint that was there was refused (the whole log was scanned instead).
    pub refused_checkpoint: Option<String>,
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

/// Rebuilds the index of `dir`: its checkpoint's entries, then a scan of the record files
/// `000000.rec`, `000001.rec`, ... (stopping at the first missing number) from the
/// location the checkpoint covers.
pub(super) async fn scan(dir: &Path) -> std::io::Result<Scanned> {
    let mut s = Scanned {
        files: Vec::new(),
        tail: 0,
        entries: BTreeMap::new(),
        used_bytes: 0,
        torn: 0,
        from_checkpoint: 0,
        scanned: 0,
        refused_checkpoint: None,
        suspect: HashSet::new(),
    };
    let mut count = 0;
    while file_path(dir, count).exists() {
        count += 1;
    }
    let mut start = 0u64;
    match checkpoint::read(dir) {
        Ok(None) => {}
        Ok(Some(Ok(c))) if ((c.covered >> FILE_SHIFT) as usize) < count => {
            start = c.covered;
            s.used_bytes = c.used_bytes;
            s.from_checkpoint = c.entries.len() as u64;
            s.entries = c.entries;
        }
        Ok(Some(Ok(c))) => {
            s.refused_checkpoint = Some(format!(
                "it covers record file {} and there are {count}",
                c.covered >> FILE_SHIFT
            ));
        }
        Ok(Some(Err(e))) => s.refused_checkpoint = Some(e.to_string()),
        Err(e) => s.refused_checkpoint = Some(format!("unreadable: {e}")),
    }
    let (first, first_off) = (
        (start >> FILE_SHIFT) as usize,
        start & ((1 << FILE_SHIFT) - 1),
    );
    s.tail = start;
    for n in 0..count {
        let f = open_file(&file_path(dir, n)).await?;
        if n >= first {
            let from = if n == first { first_off } else { 0 };
            let end = scan_file(&f, n, from, &mut s).await?;
            s.tail = ((n as u64) << FILE_SHIFT) | end;
        }
        s.files.push(Rc::new(f));
    }
    Ok(s)
}

/// Bytes the scan reads at once: records of a few KiB are parsed out of one large
/// sequential read rather than read one by one (two reads each).
const WINDOW_BYTES: u64 = 1 << 20;

/// The part of a file the scan read last.
struct Window {
    start: u64,
    buf: Option<glommio::io::ReadResult>,
}

impl Window {
    /// `len` bytes at `off` (fewer at the end of the file), read with the window after
    /// them unless the window already holds them.
    async fn get(&mut self, f: &DmaFile, off: u64, len: u64, size: u64) -> std::io::Result<&[u8]> {
        let held = self
            .buf
            .as_ref()
            .is_some_and(|b| off >= self.start && off + len <= self.start + b.len() as u64);
        if !held {
            let want = len.max(WINDOW_BYTES.min(size.saturating_sub(off)));
            let b = f
                .read_at_aligned(off, align_up(want) as usize)
                .await
                .map_err(std::io::Error::from)?;
            self.buf = Some(b);
            self.start = off;
        }
        let b = self.buf.as_ref().expect("just read");
        let at = (off - self.start) as usize;
        Ok(&b[at.min(b.len())..(at + len as usize).min(b.len())])
    }
}

/// Scans file `n` from offset `from`; returns the end of its last valid record (`from`
/// when there is none).
async fn scan_file(f: &DmaFile, n: usize, from: u64, s: &mut Scanned) -> std::io::Result<u64> {
    let size = f.file_size().await.map_err(std::io::Error::from)?;
    let (mut off, mut end, mut in_garbage) = (from, from, false);
    let mut win = Window {
        start: 0,
        buf: None,
    };
    while off + BLOCK_BYTES <= size {
        let first = win.get(f, off, BLOCK_BYTES, size).await?;
        let h = match Header::decode(first) {
            Err(FormatError::Truncated) if first.len() as u64 == BLOCK_BYTES => {
                // A long key: the header block spans two blocks.
                let two = win.get(f, off, 2 * BLOCK_BYTES, size).await?;
                Header::decode(two)
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
        s.scanned += 1;
        let loc = ((n as u64) << FILE_SHIFT) | off;
        let block = h.block_bytes();
        let record = h.record_bytes();
        match h.kind {
            Kind::Value => {
                let rec = win.get(f, off, h.record_bytes(), size).await?;
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
