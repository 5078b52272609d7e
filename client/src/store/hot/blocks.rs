//! The block allocator of the hot cache: the region is cut into equal blocks, and an entry
//! takes any `ceil(len / block)` of them (not contiguous), so no fragmentation can keep a
//! value out while enough blocks are free.

/// Free blocks of a region of `count` blocks, handed out and taken back by index.
pub(crate) struct Blocks {
    /// Free block indexes (a stack: the last one freed is reused first, still warm).
    free: Vec<u32>,
    count: u32,
}

impl Blocks {
    /// `count` blocks, all free. The free list is allocated once, here.
    pub(crate) fn new(count: u32) -> Blocks {
        Blocks {
            free: (0..count).rev().collect(),
            count,
        }
    }

    /// Blocks free now.
    pub(crate) fn free(&self) -> usize {
        self.free.len()
    }

    /// Blocks in the region.
    pub(crate) fn count(&self) -> u32 {
        self.count
    }

    /// `n` free blocks, or `None` (nothing taken) when fewer are free.
    pub(crate) fn take(&mut self, n: usize) -> Option<Vec<u32>> {
        let at = self.free.len().checked_sub(n)?;
        Some(self.free.split_off(at))
    }

    /// Gives blocks back. Each must have come from [`take`](Self::take) and not be given
    /// back twice (checked: a double free would let two entries share bytes).
    pub(crate) fn give(&mut self, blocks: &[u32]) {
        assert!(
            self.free.len() + blocks.len() <= self.count as usize,
            "hot cache: more blocks freed than exist"
        );
        debug_assert!(
            blocks
                .iter()
                .all(|b| *b < self.count && !self.free.contains(b)),
            "hot cache: a block freed twice"
        );
        self.free.extend_from_slice(blocks);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn hands_out_distinct_blocks_until_none_are_left() {
        let mut b = Blocks::new(10);
        let x = b.take(4).unwrap();
        let y = b.take(6).unwrap();
        let all: HashSet<u32> = x.iter().chain(&y).copied().collect();
        assert_eq!(all.len(), 10, "no block handed out twice");
        assert!(all.iter().all(|&i| i < 10));
        assert!(b.take(1).is_none());
        assert_eq!(b.take(0), Some(vec![]));
        b.give(&x);
        assert_eq!(b.free(), 4);
        assert!(b.take(5).is_none(), "a refused take takes nothing");
        assert_eq!(b.free(), 4);
        let z = b.take(4).unwrap();
        assert_eq!(
            z.iter().copied().collect::<HashSet<_>>(),
            x.iter().copied().collect::<HashSet<_>>()
        );
    }

    #[test]
    #[should_panic(expected = "more blocks freed")]
    fn freeing_more_than_exist_is_caught() {
        let mut b = Blocks::new(2);
        b.give(&[0]);
    }
}
