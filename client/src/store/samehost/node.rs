//! One node of this host as a same-host reader sees it: its shard's index records and
//! segments mapped read-only, and the idle socket whose close says the shard's process is
//! gone.

use std::collections::HashMap;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{Ordering, fence};
use std::time::{Duration, Instant};

use mc_hugepages::{Region, SharedView, handover};
use mc_schema::checksum::Crc32c;
use mc_schema::local::record::{self, RECORD_BYTES, STATE_AT};
use mc_schema::local::{FileKind, Hello, Offer, socket_name};
use mc_schema::msg::SliceDesc;
use parking_lot::RwLock;

/// How long the node may take to hand its files over.
const OFFER_TIMEOUT: Duration = Duration::from_secs(1);
/// Bytes copied, then checksummed while still in cache.
const CHUNK_BYTES: usize = 256 << 10;
/// A segment this node did not offer is asked for again (by connecting anew) at most this
/// often: it may have been mounted since.
const REFRESH_AFTER: Duration = Duration::from_secs(1);
/// Rescans of the records take at most about 1 / this share of the time.
const RESCAN_PACE: u32 = 8;

/// How reading one slice went.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum SliceRead {
    /// Copied and checked.
    Done,
    /// Not read this way (the normal path reads it).
    Fallback,
    /// The node went away or changed: forget its mappings.
    Gone,
}

/// Where each slice's record is: (segment, offset) → slot, from the last scan.
struct Slots {
    view: SharedView,
    map: HashMap<(u64, u64), u32>,
    scanned: Instant,
    scan_took: Duration,
}

/// A node of this host, mapped.
pub(super) struct LocalNode {
    sock: OwnedFd,
    records: OwnedFd,
    segments: HashMap<u64, SharedView>,
    slots: RwLock<Slots>,
    connected: Instant,
}

/// Why a node could not be mapped.
type Failure = String;

impl LocalNode {
    /// Connects to the shard serving `endpoint` on this host and maps what it offers.
    pub(super) fn connect(endpoint: &str, cluster_id: &str) -> Result<LocalNode, Failure> {
        let name = socket_name(endpoint);
        let sock = handover::seqpacket_connect(&name).map_err(|e| format!("@{name}: {e}"))?;
        let hello = Hello {
            cluster_id: cluster_id.to_string(),
        };
        handover::send_fds(sock.as_fd(), &hello.encode(), &[]).map_err(|e| e.to_string())?;
        let (records, segments) = receive_offers(&sock)?;
        let records = records.ok_or("the node offered no index records")?;
        let slots = scan(&records).map_err(|e| format!("records: {e}"))?;
        Ok(LocalNode {
            sock,
            records,
            segments,
            slots: RwLock::new(slots),
            connected: Instant::now(),
        })
    }

    /// Reads slice `s` (CRC32C `crc`) into `buf` (exactly its length).
    pub(super) fn read_slice(
        &self,
        s: &SliceDesc,
        crc: u32,
        buf: &mut [MaybeUninit<u8>],
    ) -> SliceRead {
        if handover::peer_gone(self.sock.as_fd()) {
            return SliceRead::Gone;
        }
        let Some(seg) = self.segments.get(&s.segment_id) else {
            return if self.connected.elapsed() > REFRESH_AFTER {
                SliceRead::Gone
            } else {
                SliceRead::Fallback
            };
        };
        if buf.len() as u64 != s.length {
            return SliceRead::Fallback;
        }
        let mut read = self.copy_validated(s, crc, seg, buf);
        if read == Copied::Unknown && self.rescan() {
            read = self.copy_validated(s, crc, seg, buf);
        }
        match read {
            Copied::Done => SliceRead::Done,
            Copied::Unknown | Copied::Mismatch => SliceRead::Fallback,
        }
    }

    /// The seqlock read: the slice's record is checked, the bytes copied (and checksummed
    /// chunk by chunk), and the record checked again; then the CRC32C.
    fn copy_validated(
        &self,
        s: &SliceDesc,
        crc: u32,
        seg: &SharedView,
        buf: &mut [MaybeUninit<u8>],
    ) -> Copied {
        let slots = self.slots.read();
        let Some(&slot) = slots.map.get(&(s.segment_id, s.offset)) else {
            return Copied::Unknown;
        };
        let at = slot as usize * RECORD_BYTES;
        let Some(before) = slots.view.read_array::<RECORD_BYTES>(at) else {
            return Copied::Unknown;
        };
        let r = record::parse(&before);
        if (r.segment_id, r.offset) != (s.segment_id, s.offset) || !r.live {
            // The slot holds something else now: the map is out of date.
            return Copied::Unknown;
        }
        if (r.length, r.generation, r.crc32c) != (s.length, s.generation, crc) {
            return Copied::Mismatch;
        }
        // The bytes are read only after the record (which the shard clears before any byte
        // of the range is rewritten).
        fence(Ordering::Acquire);
        let mut sum = Crc32c::default();
        let mut done = 0usize;
        for chunk in buf.chunks_mut(CHUNK_BYTES) {
            let Some(bytes) = seg.copy_out(s.offset as usize + done, chunk) else {
                return Copied::Mismatch;
            };
            sum.update(bytes);
            done += bytes.len();
        }
        // ... and the record is read again only after the bytes.
        fence(Ordering::Acquire);
        let Some(after) = slots.view.read_array::<RECORD_BYTES>(at) else {
            return Copied::Mismatch;
        };
        // A commit may have moved the state from written to committed meanwhile: the
        // entry is the same.
        let same = before[..STATE_AT] == after[..STATE_AT] && record::live_state(after[STATE_AT]);
        if same && sum.finish() == crc {
            Copied::Done
        } else {
            Copied::Mismatch
        }
    }

    /// Scans the records again (mapping them anew when the file grew), unless the last
    /// scan was so recent that scanning now would take more than its share of the time.
    /// True when it scanned.
    fn rescan(&self) -> bool {
        let mut slots = self.slots.write();
        let pace = slots.scan_took * RESCAN_PACE;
        if slots.scanned.elapsed() < pace.max(Duration::from_millis(1)) {
            return false;
        }
        match scan(&self.records) {
            Ok(fresh) => {
                *slots = fresh;
                true
            }
            Err(e) => {
                tracing::debug!("same-host records could not be scanned: {e}");
                false
            }
        }
    }
}

/// What one validated copy found.
#[derive(Debug, PartialEq, Eq)]
enum Copied {
    /// Copied, record unchanged, CRC32C right.
    Done,
    /// No record for that slice is known (a rescan may find it).
    Unknown,
    /// The record or the bytes are not the slice's.
    Mismatch,
}

/// The files a node offers: its records file and its segments, mapped.
fn receive_offers(sock: &OwnedFd) -> Result<(Option<OwnedFd>, HashMap<u64, SharedView>), Failure> {
    let mut records = None;
    let mut segments = HashMap::new();
    loop {
        if !handover::wait_readable(sock.as_fd(), OFFER_TIMEOUT).map_err(|e| e.to_string())? {
            return Err("the node did not answer".into());
        }
        let (msg, fds) = handover::recv_fds(sock.as_fd())
            .map_err(|e| e.to_string())?
            .ok_or("the node closed the connection")?;
        let (files, last) = match Offer::decode(&msg).map_err(|e| e.to_string())? {
            Offer::Refused(why) => return Err(format!("refused: {why}")),
            Offer::Files { files, last } => (files, last),
        };
        if files.len() != fds.len() {
            return Err("an offer's descriptors do not match its files".into());
        }
        for (f, fd) in files.into_iter().zip(fds) {
            match f.kind {
                FileKind::Records => records = Some(fd),
                FileKind::Segment => {
                    // Only memory that cannot shrink under the mapping (no SIGBUS).
                    // The whole file (a hugetlb file's size is a whole number of pages).
                    let len = file_len(&fd).map_err(|e| format!("segment {}: {e}", f.id))?;
                    if Region::size_sealed(fd.as_fd()) && f.size_bytes > 0 && f.size_bytes <= len {
                        let view = SharedView::map(fd.as_fd(), len as usize)
                            .map_err(|e| format!("segment {}: {e}", f.id))?;
                        segments.insert(f.id, view);
                    }
                }
            }
        }
        if last {
            return Ok((records, segments));
        }
    }
}

/// Bytes of the file behind `fd`.
fn file_len(fd: &OwnedFd) -> std::io::Result<u64> {
    Ok(std::fs::File::from(fd.try_clone()?).metadata()?.len())
}

/// Maps the records file at its current size and finds every live record's slot.
fn scan(records: &OwnedFd) -> std::io::Result<Slots> {
    let t0 = Instant::now();
    let len = file_len(records)? as usize;
    if len < RECORD_BYTES {
        return Err(std::io::Error::other("the records file is empty"));
    }
    let view = SharedView::map(records.as_fd(), len)?;
    let mut map = HashMap::new();
    for slot in 0..(view.len_bytes() / RECORD_BYTES) {
        if let Some(b) = view.read_array::<RECORD_BYTES>(slot * RECORD_BYTES) {
            let r = record::parse(&b);
            if r.live {
                map.insert((r.segment_id, r.offset), slot as u32);
            }
        }
    }
    Ok(Slots {
        view,
        map,
        scanned: Instant::now(),
        scan_took: t0.elapsed(),
    })
}
