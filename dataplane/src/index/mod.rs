//! The shard's object index: one entry per object slice in the shard's segments
//! (`docs/node-index.md`).
//!
//! Records live in a memory file ([`MemFile`]) of fixed 80-byte slots and keys in a second
//! one ([`keys::KeyArea`]), so a process that maps the same files again finds every entry
//! ([`Index::open`]). The lookup map by `(segment, offset)` is the process's own, rebuilt by
//! scanning the records. Entries of one segment never overlap: recording a slice first drops
//! whatever it overlaps, as those bytes are being replaced.

mod keys;
pub mod record;

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;

use mc_hugepages::MemFile;

pub use record::{Entry, EntryState};

use crate::DataplaneError;
use keys::KeyArea;
use record::{RECORD_BYTES, STATE_AT};

/// Records the files start with room for (they double when full).
const INITIAL_RECORDS: usize = 4096;
/// Key bytes the key file starts with.
const INITIAL_KEY_BYTES: usize = 256 << 10;

/// What the map keeps per entry, so overlap checks need no record read.
#[derive(Debug, Clone, Copy)]
struct Slot {
    slot: u32,
    length: u64,
    generation: u64,
}

/// The object index of one shard.
#[derive(Debug)]
pub struct Index {
    records: MemFile,
    keys: KeyArea,
    /// Slots below `slots_end` that are free.
    free_slots: Vec<u32>,
    /// First slot never used.
    slots_end: u32,
    map: BTreeMap<(u64, u64), Slot>,
}

impl Index {
    /// An empty index in new memory files named after `name`.
    pub fn create(name: &str) -> Result<Index, DataplaneError> {
        let records = MemFile::create(&format!("{name}-records"), INITIAL_RECORDS * RECORD_BYTES)
            .map_err(DataplaneError::Index)?;
        let keys = MemFile::create(&format!("{name}-keys"), INITIAL_KEY_BYTES)
            .map_err(DataplaneError::Index)?;
        Ok(Index {
            records,
            keys: KeyArea::new(keys),
            free_slots: Vec::new(),
            slots_end: 0,
            map: BTreeMap::new(),
        })
    }

    /// The index kept in existing files (descriptors of an earlier [`Index`]'s
    /// [`files`](Self::files)): every record is found again.
    pub fn open(name: &str, records: OwnedFd, keys: OwnedFd) -> Result<Index, DataplaneError> {
        let records =
            MemFile::from_fd(&format!("{name}-records"), records).map_err(DataplaneError::Index)?;
        let slots = records.len_bytes() / RECORD_BYTES;
        let mut map = BTreeMap::new();
        let mut used_keys = Vec::new();
        let mut free_slots = Vec::new();
        let mut slots_end = 0;
        for slot in 0..slots as u32 {
            match read_record(&records, slot) {
                Some((e, key_at, key_len)) => {
                    map.insert(
                        (e.segment_id, e.offset),
                        Slot {
                            slot,
                            length: e.length,
                            generation: e.generation,
                        },
                    );
                    used_keys.push((key_at, key_len));
                    slots_end = slot + 1;
                }
                None => free_slots.push(slot),
            }
        }
        free_slots.retain(|&s| s < slots_end);
        let keys =
            MemFile::from_fd(&format!("{name}-keys"), keys).map_err(DataplaneError::Index)?;
        Ok(Index {
            records,
            keys: KeyArea::rebuild(keys, used_keys),
            free_slots,
            slots_end,
            map,
        })
    }

    /// The records and keys files, for another process (or a test) to open again.
    pub fn files(&self) -> (&MemFile, &MemFile) {
        (&self.records, self.keys.file())
    }

    /// The highest master term among the entries' generations (0 when empty): a shard that
    /// takes over an index refuses allocations of older terms from the start.
    pub fn highest_term(&self) -> u64 {
        self.map
            .values()
            .map(|s| mc_schema::generation::term_of(s.generation))
            .max()
            .unwrap_or(0)
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Bytes of memory the index files take.
    pub fn file_bytes(&self) -> usize {
        self.records.len_bytes() + self.keys.file_bytes()
    }

    /// Drops every entry of `segment_id` overlapping `[offset, offset + length)`; returns how
    /// many.
    pub fn clear_range(&mut self, segment_id: u64, offset: u64, length: u64) -> usize {
        let end = offset.saturating_add(length);
        // Entries of a segment are disjoint and sorted: walk back from the last one starting
        // before `end` until one ends at or before `offset`.
        let doomed: Vec<u64> = self
            .map
            .range((segment_id, 0)..(segment_id, end))
            .rev()
            .take_while(|((_, start), s)| start + s.length > offset)
            .map(|((_, start), _)| *start)
            .collect();
        for start in &doomed {
            self.remove_at(segment_id, *start);
        }
        doomed.len()
    }

    /// Records a slice (dropping whatever it overlaps first).
    pub fn insert(&mut self, e: &Entry, key: &[u8]) -> Result<(), DataplaneError> {
        self.clear_range(e.segment_id, e.offset, e.length);
        let key_len =
            u16::try_from(key.len()).map_err(|_| DataplaneError::IndexKey { len: key.len() })?;
        let slot = match self.free_slots.pop() {
            Some(s) => s,
            None => {
                let s = self.slots_end;
                let need = (s as usize + 1) * RECORD_BYTES;
                if need > self.records.len_bytes() {
                    self.records
                        .grow(need.next_power_of_two())
                        .map_err(DataplaneError::Index)?;
                }
                self.slots_end += 1;
                s
            }
        };
        let key_at = match self.keys.put(key) {
            Ok(at) => at,
            Err(err) => {
                self.free_slots.push(slot);
                return Err(err);
            }
        };
        let rec = e.encode(key_at, key_len);
        let at = slot as usize * RECORD_BYTES;
        // Everything but the state first, then the state: a half-written record reads free.
        // The fence orders them for same-host readers on other cores (`crate::local`).
        self.records.write(at, &rec[..STATE_AT]);
        std::sync::atomic::fence(std::sync::atomic::Ordering::Release);
        self.records.write(at + STATE_AT, &rec[STATE_AT..]);
        self.map.insert(
            (e.segment_id, e.offset),
            Slot {
                slot,
                length: e.length,
                generation: e.generation,
            },
        );
        Ok(())
    }

    /// The entry at `offset` of `segment_id` with its key.
    pub fn get(&self, segment_id: u64, offset: u64) -> Option<(Entry, Vec<u8>)> {
        let s = self.map.get(&(segment_id, offset))?;
        let (e, key_at, key_len) = read_record(&self.records, s.slot)?;
        Some((e, self.keys.get(key_at, key_len)))
    }

    /// Whether the entry at `offset` of `segment_id` is the slice of `generation`, exactly
    /// `length` bytes with CRC32C `crc`: what a validated read expects to find.
    pub fn holds(
        &self,
        segment_id: u64,
        offset: u64,
        length: u64,
        generation: u64,
        crc: u32,
    ) -> bool {
        match self.map.get(&(segment_id, offset)) {
            Some(s) if s.generation == generation && s.length == length => {
                read_record(&self.records, s.slot).is_some_and(|(e, _, _)| e.crc32c == crc)
            }
            _ => false,
        }
    }

    /// Marks the entry at `offset` of `segment_id` committed, if it is that of
    /// `generation`; returns whether it was.
    pub fn commit(&mut self, segment_id: u64, offset: u64, generation: u64) -> bool {
        match self.map.get(&(segment_id, offset)) {
            Some(s) if s.generation == generation => {
                let at = s.slot as usize * RECORD_BYTES + STATE_AT;
                self.records.write(at, &[EntryState::Committed as u8]);
                true
            }
            _ => false,
        }
    }

    /// Drops the entry at `offset` of `segment_id` if it is that of `generation`; returns
    /// whether it was.
    pub fn free(&mut self, segment_id: u64, offset: u64, generation: u64) -> bool {
        match self.map.get(&(segment_id, offset)) {
            Some(s) if s.generation == generation => {
                self.remove_at(segment_id, offset);
                true
            }
            _ => false,
        }
    }

    /// Drops every entry of a segment; returns how many.
    pub fn drop_segment(&mut self, segment_id: u64) -> usize {
        self.clear_range(segment_id, 0, u64::MAX)
    }

    /// Calls `f` for every entry of `segment_id`, in offset order.
    pub fn for_each(&self, segment_id: u64, mut f: impl FnMut(&Entry, &[u8])) {
        for s in self
            .map
            .range((segment_id, 0)..=(segment_id, u64::MAX))
            .map(|(_, s)| s)
        {
            if let Some((e, key_at, key_len)) = read_record(&self.records, s.slot) {
                f(&e, &self.keys.get(key_at, key_len));
            }
        }
    }

    fn remove_at(&mut self, segment_id: u64, offset: u64) {
        let Some(s) = self.map.remove(&(segment_id, offset)) else {
            return;
        };
        let at = s.slot as usize * RECORD_BYTES;
        let key = read_record(&self.records, s.slot).map(|(_, key_at, len)| (key_at, len));
        // The state first: from here on the slot reads free. The fence makes the cleared
        // state visible to same-host readers before any new byte lands in the range.
        self.records.write(at + STATE_AT, &[0]);
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        if let Some((key_at, len)) = key {
            self.keys.release(key_at, len);
        }
        self.free_slots.push(s.slot);
    }
}

/// The record in `slot`, if it holds one.
fn read_record(records: &MemFile, slot: u32) -> Option<(Entry, u64, u16)> {
    let mut b = [0u8; RECORD_BYTES];
    records.read(slot as usize * RECORD_BYTES, &mut b);
    Entry::decode(&b)
}

#[cfg(test)]
mod tests;
