//! One metadata shard: objects in a dense slab, found through a hash index of slab positions.
//!
//! A `HashMap<String, Object>` keeps its entries in the table itself, so every empty bucket
//! costs a whole entry, and a power-of-two table is often only half full. Here the index holds
//! 4-byte positions (plus hashbrown's control byte) and the entries sit densely in fixed-size
//! chunks, so growing costs one chunk, never a copy, and the only slack is one partly filled
//! chunk per shard. Removal moves the last entry into the hole (its index slot is updated),
//! which keeps the slab dense and lets eviction sample uniformly by position.

use hashbrown::HashTable;

use super::object::Object;

/// Entries per slab chunk: 256 × 96 bytes = 24 KiB, small next to a shard's share of a
/// million keys and allocated whole (no reallocation ever moves entries).
const CHUNK: usize = 256;

/// A key and its object.
#[derive(Debug)]
pub struct Entry {
    /// The key (a boxed `str`: 16 bytes inline, no spare capacity).
    pub key: Box<str>,
    /// Its metadata.
    pub obj: Object,
}

const _: () = assert!(size_of::<Entry>() == 96);

/// One shard's objects.
#[derive(Debug, Default)]
pub struct Shard {
    index: HashTable<u32>,
    chunks: Vec<Vec<Entry>>,
    len: usize,
}

impl Shard {
    /// Number of objects.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Entry at slab position `i` (< `len`).
    pub fn at(&self, i: usize) -> &Entry {
        &self.chunks[i / CHUNK][i % CHUNK]
    }

    fn at_mut(&mut self, i: usize) -> &mut Entry {
        &mut self.chunks[i / CHUNK][i % CHUNK]
    }

    /// Every entry, in slab order.
    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.chunks.iter().flatten()
    }

    /// Slab position of `key` (`hash` is its hash).
    pub fn find(&self, hash: u64, key: &str) -> Option<usize> {
        let chunks = &self.chunks;
        self.index
            .find(hash, |&i| {
                *chunks[i as usize / CHUNK][i as usize % CHUNK].key == *key
            })
            .map(|&i| i as usize)
    }

    /// The object of `key`.
    pub fn get(&self, hash: u64, key: &str) -> Option<&Object> {
        self.find(hash, key).map(|i| &self.at(i).obj)
    }

    /// The object of `key`, mutable.
    pub fn get_mut(&mut self, hash: u64, key: &str) -> Option<&mut Object> {
        self.find(hash, key).map(|i| &mut self.at_mut(i).obj)
    }

    /// Adds `key`, which must be absent. `hasher` hashes any key as `hash` was computed
    /// (the index rehashes with it when it grows).
    pub fn insert(&mut self, hash: u64, key: &str, obj: Object, hasher: impl Fn(&str) -> u64) {
        debug_assert!(self.find(hash, key).is_none(), "duplicate key {key}");
        let i = self.len;
        if self.chunks.last().is_none_or(|c| c.len() == CHUNK) {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        self.chunks.last_mut().expect("pushed").push(Entry {
            key: key.into(),
            obj,
        });
        self.len += 1;
        let chunks = &self.chunks;
        self.index.insert_unique(hash, i as u32, |&j| {
            hasher(&chunks[j as usize / CHUNK][j as usize % CHUNK].key)
        });
    }

    /// Removes `key` and returns its object.
    pub fn remove(&mut self, hash: u64, key: &str, hasher: impl Fn(&str) -> u64) -> Option<Object> {
        let i = self.find(hash, key)?;
        Some(self.remove_at(i, hash, hasher).obj)
    }

    /// Removes the entry at slab position `i`, whose key hashes to `hash`; the last entry
    /// moves into its place.
    pub fn remove_at(&mut self, i: usize, hash: u64, hasher: impl Fn(&str) -> u64) -> Entry {
        let pos = i as u32;
        match self.index.find_entry(hash, |&j| j == pos) {
            Ok(e) => {
                e.remove();
            }
            Err(_) => panic!("slab position {i} is missing from the index"),
        }
        let last = self.len - 1;
        let mut tail = self
            .chunks
            .last_mut()
            .expect("non-empty")
            .pop()
            .expect("non-empty");
        if self.chunks.last().is_some_and(Vec::is_empty) {
            self.chunks.pop();
        }
        self.len -= 1;
        if i == last {
            return tail;
        }
        std::mem::swap(self.at_mut(i), &mut tail);
        // `tail` is now the removed entry; re-point the moved one's index slot.
        let moved_hash = hasher(&self.at(i).key);
        let slot = self
            .index
            .find_mut(moved_hash, |&j| j as usize == last)
            .expect("moved entry is indexed");
        *slot = pos;
        tail
    }

    /// Removes every entry for which `take` returns true (it may first edit the object),
    /// calling `gone` with each removed entry. Stops early once `gone` returns false.
    pub fn drain_where(
        &mut self,
        mut take: impl FnMut(&str, &mut Object) -> bool,
        mut gone: impl FnMut(Entry) -> bool,
        hasher: impl Fn(&str) -> u64,
    ) {
        let mut i = 0;
        while i < self.len {
            let e = self.at_mut(i);
            if take(&e.key, &mut e.obj) {
                let hash = hasher(&e.key);
                let removed = self.remove_at(i, hash, &hasher);
                if !gone(removed) {
                    return;
                }
                // The last entry moved into `i`: look at it next.
            } else {
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::hash::{BuildHasher, RandomState};

    use super::*;
    use crate::segments::SliceLoc;

    fn obj(n: u64) -> Object {
        let loc = SliceLoc {
            generation: n + 1,
            ..SliceLoc::default()
        };
        Object::pending(n + 1, vec![loc], false, 0, n)
    }

    #[test]
    fn insert_find_remove_keep_index_and_slab_in_step() {
        let rs = RandomState::new();
        let h = |k: &str| rs.hash_one(k);
        let mut s = Shard::default();
        let keys: Vec<String> = (0..1000).map(|i| format!("key-{i}")).collect();
        for (i, k) in keys.iter().enumerate() {
            s.insert(h(k), k, obj(i as u64), h);
        }
        assert_eq!(s.len(), 1000);
        for (i, k) in keys.iter().enumerate().step_by(3) {
            let o = s.remove(h(k), k, h).expect("present");
            assert_eq!(o.size(), i as u64 + 1);
        }
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(
                s.get(h(k), k).map(Object::size),
                (i % 3 != 0).then_some(i as u64 + 1)
            );
        }
        let mut seen = 0;
        s.drain_where(|k, _| k.ends_with('7'), |_| true, h);
        for (i, k) in keys.iter().enumerate() {
            let want = i % 3 != 0 && !k.ends_with('7');
            assert_eq!(s.get(h(k), k).is_some(), want, "{k}");
            seen += want as usize;
        }
        assert_eq!(s.len(), seen);
        assert_eq!(s.iter().count(), seen);
        s.drain_where(|_, _| true, |_| true, h);
        assert_eq!((s.len(), s.chunks.len()), (0, 0));
    }
}
