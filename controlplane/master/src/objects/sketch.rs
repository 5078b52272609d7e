//! A count-min sketch of SSD hits (`--promotion_admission_threshold`): how often an object
//! served only from SSD was asked for, in a few KiB whatever the key count, never
//! undercounting. Counters saturate at 255 and are all halved every `AGE_EVERY` hits, so
//! old popularity fades.

use std::hash::BuildHasher;

/// Rows (independent hashes).
const ROWS: usize = 4;
/// Counters per row.
const WIDTH: usize = 4096;
/// Hits between two halvings.
const AGE_EVERY: u64 = 10 * WIDTH as u64;

/// The sketch.
pub struct Sketch {
    counters: Box<[[u8; WIDTH]; ROWS]>,
    hasher: ahash::RandomState,
    hits: u64,
}

impl Default for Sketch {
    fn default() -> Self {
        Sketch {
            counters: Box::new([[0; WIDTH]; ROWS]),
            hasher: ahash::RandomState::new(),
            hits: 0,
        }
    }
}

impl Sketch {
    /// Counts one hit of `key`; returns its estimated count (at least the true one).
    pub fn hit(&mut self, key: &str) -> u32 {
        self.hits += 1;
        if self.hits.is_multiple_of(AGE_EVERY) {
            for row in self.counters.iter_mut() {
                row.iter_mut().for_each(|c| *c /= 2);
            }
        }
        let mut est = u8::MAX;
        for r in 0..ROWS {
            let c = &mut self.counters[r][self.hasher.hash_one((r, key)) as usize % WIDTH];
            *c = c.saturating_add(1);
            est = est.min(*c);
        }
        u32::from(est)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_never_fall_short_and_distinct_keys_stay_apart() {
        let mut s = Sketch::default();
        for i in 1..=5 {
            assert!(s.hit("hot") >= i);
        }
        let cold: Vec<u32> = (0..100).map(|i| s.hit(&format!("cold-{i}"))).collect();
        assert!(cold.iter().filter(|&&c| c == 1).count() > 90, "{cold:?}");
    }
}
