//! The key area of the index: keys in size-classed blocks of a [`MemFile`].
//!
//! A key of `n` bytes takes a block of the smallest power of two ≥ max(n, 32); freed blocks
//! go to a free list of their class and are reused first (a larger free block is split when
//! a class runs dry), so the area is about twice the live key bytes at most, plus what churn
//! between classes leaves behind. The free lists live in the
//! process and are rebuilt from the records after a restart.

use mc_hugepages::MemFile;

use crate::DataplaneError;

/// Smallest block.
const MIN_BLOCK: usize = 32;
/// Number of classes: 32 B .. 4 KiB (the longest key).
const CLASSES: usize = 8;

/// Block size of a key of `len` bytes.
pub fn block_bytes(len: usize) -> usize {
    len.max(MIN_BLOCK).next_power_of_two()
}

fn class_of(block: usize) -> usize {
    (block.trailing_zeros() - MIN_BLOCK.trailing_zeros()) as usize
}

/// Keys in a growable memory file.
#[derive(Debug)]
pub struct KeyArea {
    file: MemFile,
    /// First byte never handed out.
    end: u64,
    /// Free blocks by class.
    free: [Vec<u64>; CLASSES],
}

impl KeyArea {
    /// A fresh area in `file`.
    pub fn new(file: MemFile) -> KeyArea {
        KeyArea {
            file,
            end: 0,
            free: Default::default(),
        }
    }

    /// An area whose used blocks are `used` (offset, key length), as found in the records.
    /// The gaps between them become free blocks.
    pub fn rebuild(file: MemFile, mut used: Vec<(u64, u16)>) -> KeyArea {
        used.sort_unstable();
        let mut area = KeyArea::new(file);
        let mut at = 0u64;
        for (off, len) in used {
            area.free_gap(at, off);
            at = at.max(off + block_bytes(len as usize) as u64);
        }
        area.end = at;
        area
    }

    /// Files `[from, to)` as free blocks, largest first.
    fn free_gap(&mut self, mut from: u64, to: u64) {
        while to.saturating_sub(from) >= MIN_BLOCK as u64 {
            let left = (to - from) as usize;
            let block =
                (MIN_BLOCK << (CLASSES - 1)).min(1 << (usize::BITS - 1 - left.leading_zeros()));
            self.free[class_of(block)].push(from);
            from += block as u64;
        }
    }

    /// Stores `key`; returns where.
    pub fn put(&mut self, key: &[u8]) -> Result<u64, DataplaneError> {
        let block = block_bytes(key.len());
        let at = match self.take_free(class_of(block)) {
            Some(at) => at,
            None => {
                let at = self.end;
                let need = (at as usize) + block;
                if need > self.file.len_bytes() {
                    self.file
                        .grow(need.next_power_of_two())
                        .map_err(DataplaneError::Index)?;
                }
                self.end += block as u64;
                at
            }
        };
        self.file.write(at as usize, key);
        Ok(at)
    }

    /// A free block of class `class`: from its own list, or split from a larger free block
    /// (the halves not used go to the lists below).
    fn take_free(&mut self, class: usize) -> Option<u64> {
        let from = (class..CLASSES).find(|&c| !self.free[c].is_empty())?;
        let at = self.free[from].pop().expect("non-empty list");
        for c in (class..from).rev() {
            self.free[c].push(at + (MIN_BLOCK << c) as u64);
        }
        Some(at)
    }

    /// The key of `len` bytes at `at`.
    pub fn get(&self, at: u64, len: u16) -> Vec<u8> {
        let mut k = vec![0u8; len as usize];
        self.file.read(at as usize, &mut k);
        k
    }

    /// Gives back the block of a `len`-byte key at `at`.
    pub fn release(&mut self, at: u64, len: u16) {
        self.free[class_of(block_bytes(len as usize))].push(at);
    }

    /// Bytes of the file.
    pub fn file_bytes(&self) -> usize {
        self.file.len_bytes()
    }

    /// The file.
    pub fn file(&self) -> &MemFile {
        &self.file
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn area() -> KeyArea {
        KeyArea::new(MemFile::create("mc-test-keys", 4096).unwrap())
    }

    #[test]
    fn blocks_are_reused_by_class_and_the_file_grows() {
        let mut a = area();
        let k1 = a.put(b"short").unwrap();
        let long = vec![b'x'; 4096];
        let k2 = a.put(&long).unwrap();
        assert_eq!(a.get(k1, 5), b"short");
        assert_eq!(a.get(k2, 4096), long);
        a.release(k1, 5);
        assert_eq!(a.put(b"other").unwrap(), k1);
        assert!(a.file_bytes() >= 4096 + 32);
    }

    #[test]
    fn rebuild_frees_the_gaps() {
        let mut a = area();
        let ks: Vec<u64> = (0..8)
            .map(|i| a.put(format!("key-{i}").as_bytes()).unwrap())
            .collect();
        let file = MemFile::from_fd("again", a.file().fd().try_clone_to_owned().unwrap()).unwrap();
        // Keep keys 0 and 5: the four blocks between them are free again.
        let mut b = KeyArea::rebuild(file, vec![(ks[0], 5), (ks[5], 5)]);
        assert_eq!(b.get(ks[5], 5), b"key-5");
        let reused: Vec<u64> = (0..4).map(|_| b.put(b"new").unwrap()).collect();
        assert!(
            reused.iter().all(|at| *at > ks[0] && *at < ks[5]),
            "{reused:?}"
        );
    }
}
