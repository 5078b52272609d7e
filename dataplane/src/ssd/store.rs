//! One shard's SSD record store: log-structured record files read and written through
//! glommio DMA files (O_DIRECT, the shard's own io_uring).
//!
//! Records are appended to the current file (`NNNNNN.rec`, at most `file_bytes` each);
//! a record's location is `file << 40 | offset`. Space is reserved under a one-permit
//! semaphore (rolling to a new file may await its creation) and written outside it, so
//! offloads overlap on the ring. A delete appends a tombstone, syncs it, and punches the
//! dead record's payload out of the file (`fallocate`), so deleted space is returned to
//! the file system without a compaction pass.
//!
//! Every so many writes the store writes an index checkpoint (`checkpoint.rs`): the live
//! records below the lowest write still in flight, written by a helper thread so the shard
//! never blocks on it. A restart reads it and scans only the log after it.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use glommio::io::DmaFile;
use glommio::sync::Semaphore;
use mc_schema::checksum::crc32c;
use mc_schema::msg::DroppedSlice;
use tracing::{info, warn};

use super::SsdConfig;
use super::buffers::Spares;
use super::checkpoint;
use super::format::{self, BLOCK_BYTES, Header, Kind, align_up};
use super::scan;
use super::stats::SsdStats;
use super::syncs::Syncs;
use crate::DataplaneError;

/// Bits of a location that hold the offset in its file.
pub(super) const FILE_SHIFT: u32 = 40;

/// Name of the small file every shard opens first: glommio probes polled I/O on the first
/// DMA file an executor opens and gets it wrong on an empty new file
/// (`shared/DEPENDENCIES.md`, pitfall 1).
const PROBE_FILE: &str = "probe.dma";

/// What the store keeps per live record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsdEntry {
    /// The object's key.
    pub key: Vec<u8>,
    /// Bytes of the header block.
    pub block_bytes: u64,
    /// Payload bytes.
    pub value_len: u64,
    /// The slice's generation.
    pub generation: u64,
    /// The put it belongs to.
    pub put_generation: u64,
    /// CRC32C of the payload.
    pub value_crc: u32,
    /// Position of the slice in its value, and the value's slice count.
    pub slice: (u32, u32),
    /// Bytes of the whole value.
    pub object_size: u64,
}

/// Why a read was refused.
#[derive(Debug)]
pub enum ReadError {
    /// No live record at that location with that generation and length.
    Gone,
    /// The record failed its header or payload checksum.
    Corrupt,
    /// The disk failed.
    Io(std::io::Error),
}

/// A shard's SSD record store.
pub struct SsdStore {
    /// The disk segment id announced to the master (reads name it).
    pub segment_id: u64,
    dir: PathBuf,
    file_bytes: u64,
    quota_bytes: u64,
    files: RefCell<Vec<Rc<DmaFile>>>,
    /// Next free location.
    tail: Cell<u64>,
    /// Bytes of live records (quota accounting).
    used_bytes: Cell<u64>,
    /// Bytes of records being written (counted against the quota too, so offloads in
    /// flight together cannot pass it).
    writing_bytes: Cell<u64>,
    /// Live records by location: oldest first, since records are appended.
    entries: RefCell<BTreeMap<u64, SsdEntry>>,
    /// Records dropped on the store's own account (corrupt on read, disk eviction), not
    /// yet reported.
    dropped: RefCell<Vec<DroppedSlice>>,
    evict_oldest: Cell<bool>,
    reserve: Semaphore,
    /// When a quota refusal was last logged (they are logged at most every
    /// [`QUOTA_LOG_EVERY`]).
    quota_logged: Cell<Option<Instant>>,
    /// Locations reserved whose write (and sync) has not finished: a checkpoint covers the
    /// log only below the lowest of them.
    pending: RefCell<BTreeSet<u64>>,
    /// Record writes since the last checkpoint was taken.
    since_checkpoint: Cell<u64>,
    /// Least writes between checkpoints (0 = none).
    checkpoint_every: u64,
    /// A checkpoint is being written by its helper thread.
    checkpoint_busy: Arc<AtomicBool>,
    /// DMA buffers of finished record writes, for the next ones.
    spares: Spares,
    /// Group commit of record writes.
    syncs: Syncs,
    /// Metrics.
    pub stats: SsdStats,
}

/// Bytes of one record write, counted in [`SsdStore::writing_bytes`] while it lives.
struct Writing<'a> {
    cell: &'a Cell<u64>,
    bytes: u64,
}

impl<'a> Writing<'a> {
    fn start(cell: &'a Cell<u64>, bytes: u64) -> Writing<'a> {
        cell.set(cell.get() + bytes);
        Writing { cell, bytes }
    }
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        self.cell.set(self.cell.get() - self.bytes);
    }
}

/// Reserved locations whose writes are in flight, listed in [`SsdStore::pending`] while
/// this lives.
struct Pending<'a> {
    set: &'a RefCell<BTreeSet<u64>>,
    locs: Vec<u64>,
}

impl<'a> Pending<'a> {
    fn new(set: &'a RefCell<BTreeSet<u64>>) -> Pending<'a> {
        Pending {
            set,
            locs: Vec::new(),
        }
    }

    fn add(&mut self, loc: u64) {
        self.set.borrow_mut().insert(loc);
        self.locs.push(loc);
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        let mut set = self.set.borrow_mut();
        for l in &self.locs {
            set.remove(l);
        }
    }
}

/// Least time between two log lines about the quota being used up.
const QUOTA_LOG_EVERY: Duration = Duration::from_secs(10);

/// The OS error inside a glommio error (so `raw_os_error`, e.g. ENOSPC, survives), with
/// glommio's wording of the operation and path kept in the message.
fn io_err(e: glommio::GlommioError<()>) -> std::io::Error {
    match e {
        glommio::GlommioError::IoError(source) => source,
        glommio::GlommioError::EnhancedIoError {
            source, op, path, ..
        } => {
            let kind = source.kind();
            match source.raw_os_error() {
                Some(code) => std::io::Error::from_raw_os_error(code),
                None => std::io::Error::new(kind, format!("{op} {path:?}: {source}")),
            }
        }
        other => other.into(),
    }
}

fn open_error(path: &Path, source: std::io::Error) -> DataplaneError {
    DataplaneError::SsdOpen {
        path: path.display().to_string(),
        source,
    }
}

fn split(loc: u64) -> (usize, u64) {
    ((loc >> FILE_SHIFT) as usize, loc & ((1 << FILE_SHIFT) - 1))
}

impl SsdStore {
    /// Opens the store of shard `shard` under `cfg.dir` (`shard-<i>/`), rebuilding its
    /// index from the record files an earlier run left (`scan.rs`).
    pub async fn open(
        cfg: &SsdConfig,
        shard: usize,
        stats: SsdStats,
    ) -> Result<SsdStore, DataplaneError> {
        let t0 = std::time::Instant::now();
        let dir = super::shard_dir(&cfg.dir, shard);
        std::fs::create_dir_all(&dir).map_err(|e| open_error(&dir, e))?;
        let probe = dir.join(PROBE_FILE);
        std::fs::write(&probe, vec![0u8; BLOCK_BYTES as usize])
            .map_err(|e| open_error(&probe, e))?;
        let f = DmaFile::open(&probe)
            .await
            .map_err(|e| open_error(&probe, io_err(e)))?;
        f.read_at_aligned(0, BLOCK_BYTES as usize)
            .await
            .map_err(|e| open_error(&probe, io_err(e)))?;
        let _ = f.close().await;
        let file_bytes = cfg.file_bytes.next_multiple_of(BLOCK_BYTES).max(1 << 20);
        let found = scan::scan(&dir).await.map_err(|e| open_error(&dir, e))?;
        let store = SsdStore {
            segment_id: rand::random::<u64>() | 1,
            dir,
            file_bytes,
            quota_bytes: cfg.quota_bytes,
            tail: Cell::new(found.tail),
            used_bytes: Cell::new(found.used_bytes),
            writing_bytes: Cell::new(0),
            files: RefCell::new(found.files),
            entries: RefCell::new(found.entries),
            dropped: RefCell::new(Vec::new()),
            evict_oldest: Cell::new(cfg.evict_oldest),
            reserve: Semaphore::new(1),
            quota_logged: Cell::new(None),
            pending: RefCell::new(BTreeSet::new()),
            since_checkpoint: Cell::new(0),
            checkpoint_every: cfg.checkpoint_every,
            checkpoint_busy: Arc::new(AtomicBool::new(false)),
            spares: Spares::default(),
            syncs: Syncs::default(),
            stats,
        };
        if store.files.borrow().is_empty() {
            store.add_file().await?;
        }
        store.stats.quota_bytes.set(cfg.quota_bytes);
        store.stats.torn_records_total.inc_by(found.torn);
        store.stats.checkpoint_records.set(found.from_checkpoint);
        store.stats.scanned_records.set(found.scanned);
        if let Some(why) = &found.refused_checkpoint {
            store.stats.checkpoints_refused_total.inc();
            warn!(
                shard,
                "SSD index checkpoint refused ({why}): scanned the whole log"
            );
        }
        store.publish();
        if found.torn > 0 {
            warn!(
                shard,
                torn = found.torn,
                "SSD scan skipped torn or corrupt records"
            );
        }
        info!(
            shard,
            dir = %store.dir.display(),
            records = store.len(),
            from_checkpoint = found.from_checkpoint,
            scanned = found.scanned,
            quota_bytes = cfg.quota_bytes,
            took_ms = t0.elapsed().as_millis() as u64,
            "SSD record store open"
        );
        Ok(store)
    }

    async fn add_file(&self) -> Result<(), DataplaneError> {
        let n = self.files.borrow().len();
        let path = scan::file_path(&self.dir, n);
        let f = scan::open_file(&path)
            .await
            .map_err(|e| open_error(&path, e))?;
        self.files.borrow_mut().push(Rc::new(f));
        self.tail.set((n as u64) << FILE_SHIFT);
        Ok(())
    }

    fn file(&self, i: usize) -> Option<Rc<DmaFile>> {
        self.files.borrow().get(i).cloned()
    }

    /// Reserves `bytes` at the tail; returns the location and its file.
    async fn reserve(&self, bytes: u64) -> Result<(u64, Rc<DmaFile>), DataplaneError> {
        let _permit = self
            .reserve
            .acquire_permit(1)
            .await
            .map_err(|e| DataplaneError::SsdIo {
                what: "reserve",
                source: io_err(e),
            })?;
        let (_, off) = split(self.tail.get());
        // A record larger than a file gets a file of its own.
        if off + bytes > self.file_bytes && off > 0 {
            self.add_file().await?;
        }
        let loc = self.tail.get();
        self.tail.set(loc + bytes);
        let file = self.file(split(loc).0).expect("the tail's file exists");
        Ok((loc, file))
    }

    /// From now on, delete the oldest records to make room when the quota is reached
    /// (the master's `--enable_disk_eviction`, sent with its offload notices).
    pub fn enable_disk_eviction(&self) {
        self.evict_oldest.set(true);
    }

    /// Whether `bytes` more would pass the quota (records being written included).
    pub fn over_quota(&self, bytes: u64) -> bool {
        self.used_bytes.get() + self.writing_bytes.get() + bytes > self.quota_bytes
    }

    /// Whether a quota refusal should be logged now (the first one, then at most every
    /// [`QUOTA_LOG_EVERY`]); every refusal is counted either way.
    pub fn log_quota_refusal(&self) -> bool {
        let now = Instant::now();
        let due = self
            .quota_logged
            .get()
            .is_none_or(|t| now.duration_since(t) >= QUOTA_LOG_EVERY);
        if due {
            self.quota_logged.set(Some(now));
        }
        due
    }

    /// Appends a value record of `payload` and syncs it; returns its location. The payload
    /// is copied into a DMA buffer (an earlier write's, when one of the size is spare) the
    /// operation owns until the kernel is done with it. `written` is called once the
    /// record's bytes are written and before the sync, which writes finishing meanwhile
    /// share (`syncs.rs`): a caller that limits writes in flight lets the next one start.
    pub async fn append(
        &self,
        key: &[u8],
        payload: impl FnOnce(&mut [u8]) -> bool,
        written: impl FnOnce(),
        value_len: u64,
        ids: (u64, u64, u32, u32),
        (value_crc, object_size): (u32, u64),
    ) -> Result<Option<u64>, DataplaneError> {
        // Failpoint: `return` fails this record as a failing disk would (EIO); `sleep` is a
        // slow disk; `panic` kills the shard thread mid-offload.
        #[cfg(feature = "failpoints")]
        if fail::eval("shard::ssd::write", |_| ()).is_some() {
            return Err(DataplaneError::SsdIo {
                what: "write (failpoint shard::ssd::write)",
                source: std::io::Error::from_raw_os_error(libc::EIO),
            });
        }
        let (generation, put_generation, slice_index, slice_count) = ids;
        let h = Header {
            kind: Kind::Value,
            key: key.to_vec(),
            value_len,
            generation,
            put_generation,
            value_crc,
            slice_index,
            slice_count,
            target: 0,
            object_size,
        };
        let total = h.record_bytes();
        while self.over_quota(total) {
            // Disk eviction: the oldest record goes first.
            let oldest = self
                .entries
                .borrow()
                .iter()
                .next()
                .map(|(&l, e)| (l, e.generation));
            match oldest {
                Some((loc, generation)) if self.evict_oldest.get() => {
                    self.drop_record(loc, generation).await?;
                    self.stats.evicted_total.inc();
                }
                _ => {
                    return Err(DataplaneError::SsdQuota {
                        quota_bytes: self.quota_bytes,
                    });
                }
            }
        }
        // Counted from now until this write ends, however it ends.
        let _writing = Writing::start(&self.writing_bytes, total);
        let (loc, file) = self.reserve(total).await?;
        let mut pending = Pending::new(&self.pending);
        pending.add(loc);
        let (mut buf, spare) = self.spares.take(&file, total as usize);
        if spare {
            self.stats.write_buffers_reused_total.inc();
        }
        let block = h.block_bytes() as usize;
        let bytes = buf.as_bytes_mut();
        // Every byte is written: a spare holds its last record's.
        h.encode_into(&mut bytes[..block]);
        let (value, pad) = bytes[block..].split_at_mut(value_len as usize);
        pad.fill(0);
        let copied = payload(value);
        let buf = Rc::new(buf);
        if !copied {
            self.spares.give(buf);
            return Ok(None);
        }
        let (_, off) = split(loc);
        let wrote = file.write_rc_at(buf.clone(), off).await;
        self.spares.give(buf);
        let n = wrote.map_err(|e| DataplaneError::SsdIo {
            what: "write",
            source: io_err(e),
        })?;
        if n as u64 != total {
            return Err(DataplaneError::SsdIo {
                what: "write",
                source: std::io::Error::other(format!("short write: {n} of {total} bytes")),
            });
        }
        written();
        let (file_index, _) = split(loc);
        let shared =
            self.syncs
                .covering(file_index, &file)
                .await
                .map_err(|e| DataplaneError::SsdIo {
                    what: "fdatasync",
                    source: io_err(e),
                })?;
        if shared {
            self.stats.shared_syncs_total.inc();
        }
        self.entries.borrow_mut().insert(
            loc,
            SsdEntry {
                key: h.key,
                block_bytes: block as u64,
                value_len,
                generation,
                put_generation,
                value_crc,
                slice: (slice_index, slice_count),
                object_size,
            },
        );
        self.used_bytes.set(self.used_bytes.get() + total);
        self.publish();
        drop(pending);
        self.wrote(1);
        Ok(Some(loc))
    }

    /// Counts `n` record writes and takes a checkpoint when enough have been made since
    /// the last one: [`checkpoint_every`](SsdConfig::checkpoint_every), or an eighth of
    /// the live records if that is more (so a large index is not rewritten too often).
    fn wrote(&self, n: u64) {
        let since = self.since_checkpoint.get() + n;
        self.since_checkpoint.set(since);
        let due = self.checkpoint_every > 0
            && since >= self.checkpoint_every.max(self.len() as u64 / 8)
            && !self.checkpoint_busy.load(Ordering::Acquire);
        if due {
            self.checkpoint();
        }
    }

    /// Takes an index checkpoint now and hands it to a helper thread that writes it
    /// (nothing is taken when one is still being written). Returns whether one was taken.
    pub fn checkpoint(&self) -> bool {
        if self.checkpoint_busy.swap(true, Ordering::AcqRel) {
            return false;
        }
        // Below the lowest write in flight every record is complete and synced; records
        // at or above it are left to the scan, with the bytes they take.
        let covered = self
            .pending
            .borrow()
            .first()
            .copied()
            .unwrap_or(self.tail.get());
        let entries = self.entries.borrow();
        let above: u64 = entries
            .range(covered..)
            .map(|(_, e)| e.block_bytes + align_up(e.value_len))
            .sum();
        let bytes = checkpoint::encode(
            covered,
            self.used_bytes.get().saturating_sub(above),
            entries.range(..covered).map(|(&l, e)| (l, e)),
        );
        drop(entries);
        self.since_checkpoint.set(0);
        let (dir, busy, stats) = (
            self.dir.clone(),
            self.checkpoint_busy.clone(),
            self.stats.clone(),
        );
        let spawned = std::thread::Builder::new()
            .name("ssd-checkpoint".into())
            .spawn(move || {
                match checkpoint::write(&dir, &bytes) {
                    Ok(()) => stats.checkpoints_total.inc(),
                    Err(e) => warn!(
                        dir = %dir.display(),
                        "SSD index checkpoint not written (the next restart scans more): {e}"
                    ),
                }
                busy.store(false, Ordering::Release);
            });
        if let Err(e) = spawned {
            warn!("SSD index checkpoint thread not started: {e}");
            self.checkpoint_busy.store(false, Ordering::Release);
        }
        true
    }

    /// Whether a checkpoint is being written.
    pub fn checkpoint_in_progress(&self) -> bool {
        self.checkpoint_busy.load(Ordering::Acquire)
    }

    fn publish(&self) {
        self.stats.bytes.set(self.used_bytes.get());
        self.stats.objects.set(self.entries.borrow().len() as u64);
    }

    /// The live record at `loc`, if it is the slice of `generation` (0 = any).
    pub fn get(&self, loc: u64, generation: u64) -> Option<SsdEntry> {
        self.entries
            .borrow()
            .get(&loc)
            .filter(|e| generation == 0 || e.generation == generation)
            .cloned()
    }

    /// Reads the record at `loc` (the slice of `generation`, `length` bytes) and checks its
    /// header and payload; returns the record's bytes and where the payload starts.
    pub async fn read(
        &self,
        loc: u64,
        generation: u64,
        length: u64,
    ) -> Result<(glommio::io::ReadResult, usize), ReadError> {
        let e = self.get(loc, generation).ok_or(ReadError::Gone)?;
        if e.value_len != length {
            return Err(ReadError::Gone);
        }
        let (f, off) = split(loc);
        let file = self.file(f).ok_or(ReadError::Gone)?;
        let total = e.block_bytes + align_up(e.value_len);
        let r = file
            .read_at_aligned(off, total as usize)
            .await
            .map_err(|e| ReadError::Io(io_err(e)))?;
        if r.len() as u64 != total {
            return Err(ReadError::Corrupt);
        }
        let block = e.block_bytes as usize;
        let ok = match Header::decode(&r[..block]) {
            Ok(h) => {
                h.kind == Kind::Value
                    && h.generation == e.generation
                    && h.value_len == e.value_len
                    && h.key == e.key
                    && crc32c(&r[block..block + length as usize]) == e.value_crc
            }
            Err(_) => false,
        };
        if !ok {
            // A delete that ran meanwhile punched the payload out: the record is gone,
            // not corrupt.
            if self.get(loc, generation).is_none() {
                return Err(ReadError::Gone);
            }
            self.stats.crc_failures_total.inc();
            // Never served again: deleted, and reported so the master forgets the replica.
            if let Err(err) = self.drop_record(loc, e.generation).await {
                warn!("corrupt SSD record not deleted: {err}");
            }
            return Err(ReadError::Corrupt);
        }
        Ok((r, block))
    }

    /// Deletes the record at `loc` (the slice of `generation`) durably: a tombstone is
    /// written and synced before this returns, then the record's payload is punched out.
    /// Returns whether there was such a record.
    pub async fn delete(&self, loc: u64, generation: u64) -> Result<bool, DataplaneError> {
        Ok(self.delete_many(&[(loc, generation)]).await? == 1)
    }

    /// Deletes the records at `targets` (location, slice generation; 0 = any) durably, as
    /// one group: every tombstone is written, then each file touched is synced once, so a
    /// large remove costs one `fdatasync` per file rather than one per record. Returns how
    /// many records there were.
    pub async fn delete_many(&self, targets: &[(u64, u64)]) -> Result<usize, DataplaneError> {
        let fail = |what| {
            move |e: glommio::GlommioError<()>| DataplaneError::SsdIo {
                what,
                source: io_err(e),
            }
        };
        let mut dead: Vec<(u64, SsdEntry, u64)> = Vec::new();
        let mut touched: Vec<Rc<DmaFile>> = Vec::new();
        let mut pending = Pending::new(&self.pending);
        for &(loc, generation) in targets {
            let e = match self.entries.borrow_mut().remove(&loc) {
                Some(e) if generation == 0 || e.generation == generation => e,
                Some(e) => {
                    self.entries.borrow_mut().insert(loc, e);
                    continue;
                }
                None => continue,
            };
            let t = Header {
                kind: Kind::Tombstone,
                key: e.key.clone(),
                value_len: 0,
                generation: e.generation,
                put_generation: e.put_generation,
                value_crc: 0,
                slice_index: 0,
                slice_count: 0,
                target: loc,
                object_size: 0,
            };
            let total = t.block_bytes();
            let (tloc, file) = self.reserve(total).await?;
            pending.add(tloc);
            let mut buf = file.alloc_dma_buffer(total as usize);
            t.encode_into(buf.as_bytes_mut());
            file.write_at(buf, split(tloc).1)
                .await
                .map_err(fail("tombstone write"))?;
            if !touched.iter().any(|f| Rc::ptr_eq(f, &file)) {
                touched.push(file);
            }
            dead.push((loc, e, total));
        }
        for f in &touched {
            f.fdatasync().await.map_err(fail("tombstone fdatasync"))?;
        }
        drop(pending);
        for (loc, e, total) in &dead {
            let record = e.block_bytes + align_up(e.value_len);
            let (f, off) = split(*loc);
            // Only the payload goes: the header stays, so a scan of the file can still
            // step over the dead record by its length.
            let payload = align_up(e.value_len);
            if let Some(file) = self.file(f)
                && payload > 0
                && let Err(err) = file.deallocate(off + e.block_bytes, payload).await
            {
                warn!("could not punch a deleted SSD record out of its file: {err}");
            }
            // Headers and tombstones stay until a compaction (not built): they count
            // against the quota.
            self.used_bytes
                .set(self.used_bytes.get().saturating_sub(record) + e.block_bytes + total);
            self.stats.deletes_total.inc();
        }
        self.publish();
        if !dead.is_empty() {
            self.wrote(dead.len() as u64);
        }
        Ok(dead.len())
    }

    /// Deletes a record on the store's own account and keeps it for the next report.
    async fn drop_record(&self, loc: u64, generation: u64) -> Result<(), DataplaneError> {
        let key = match self.entries.borrow().get(&loc) {
            Some(e) => e.key.clone(),
            None => return Ok(()),
        };
        if self.delete(loc, generation).await? {
            self.dropped.borrow_mut().push(DroppedSlice {
                key: String::from_utf8_lossy(&key).into_owned(),
                segment_id: self.segment_id,
                offset: loc,
                generation,
            });
        }
        Ok(())
    }

    /// The records dropped on the store's own account since the last call.
    pub fn take_dropped(&self) -> Vec<DroppedSlice> {
        std::mem::take(&mut *self.dropped.borrow_mut())
    }

    /// Calls `f` with every live record.
    pub fn for_each(&self, mut f: impl FnMut(u64, &SsdEntry)) {
        for (&loc, e) in self.entries.borrow().iter() {
            f(loc, e);
        }
    }

    /// Live records.
    pub fn len(&self) -> usize {
        self.entries.borrow().len()
    }

    /// Whether no record is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of the header block a record of `key_len` key bytes takes.
    pub fn header_block_bytes(key_len: usize) -> u64 {
        align_up((format::FIXED_BYTES + key_len) as u64)
    }
}
