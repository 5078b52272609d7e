//! The admission filter of the hot cache: a count-min sketch of how often each key was read.
//!
//! Four rows of 4096 one-byte counters (16 KiB, fixed); a key bumps one counter per row and
//! its estimate is the smallest of the four, which can only overestimate (collisions add,
//! never subtract). After as many increments as there are counters, every counter is halved,
//! so counts of keys no longer read decay and the counters never stay saturated (Mooncake's
//! `CountMinSketch` has the same shape and decay).

use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};

/// Rows of the sketch (independent hashes per key).
const ROWS: usize = 4;
/// Counters per row.
const WIDTH: usize = 4096;

/// Read counts per key, approximate and decaying.
pub(crate) struct Sketch {
    rows: Box<[[u8; WIDTH]; ROWS]>,
    /// Increments since the last halving.
    since_decay: usize,
}

/// The counter of `key` in each row: one 64-bit hash, remixed per row.
fn slots(key: &str) -> [usize; ROWS] {
    let h = BuildHasherDefault::<DefaultHasher>::default().hash_one(key);
    std::array::from_fn(|row| {
        let mut x = h ^ (row as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        (x % WIDTH as u64) as usize
    })
}

impl Default for Sketch {
    fn default() -> Sketch {
        Sketch {
            rows: Box::new([[0; WIDTH]; ROWS]),
            since_decay: 0,
        }
    }
}

impl Sketch {
    /// Counts one read of `key` and returns its estimated count, this read included.
    pub(crate) fn increment(&mut self, key: &str) -> u8 {
        let mut min = u8::MAX;
        for (row, slot) in self.rows.iter_mut().zip(slots(key)) {
            row[slot] = row[slot].saturating_add(1);
            min = min.min(row[slot]);
        }
        self.since_decay += 1;
        if self.since_decay >= ROWS * WIDTH {
            self.decay();
        }
        min
    }

    /// The estimated count of `key`.
    #[cfg(test)]
    pub(crate) fn estimate(&self, key: &str) -> u8 {
        self.rows
            .iter()
            .zip(slots(key))
            .map(|(row, slot)| row[slot])
            .min()
            .unwrap_or(0)
    }

    /// Halves every counter.
    pub(crate) fn decay(&mut self) {
        for c in self.rows.iter_mut().flatten() {
            *c >>= 1;
        }
        self.since_decay = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_reads_per_key_and_never_underestimates() {
        let mut s = Sketch::default();
        for i in 1..=5u8 {
            assert!(s.increment("hot") >= i);
        }
        for k in 0..1000 {
            s.increment(&format!("cold{k}"));
        }
        assert!(s.estimate("hot") >= 5, "never below the true count");
        // 1000 keys over 4096 counters: a never-read key almost surely has no count.
        let unseen = (0..100)
            .filter(|k| s.estimate(&format!("never{k}")) > 0)
            .count();
        assert!(unseen < 10, "{unseen} of 100 unseen keys have a count");
    }

    #[test]
    fn counters_saturate_and_decay() {
        let mut s = Sketch::default();
        for _ in 0..300 {
            s.increment("k");
        }
        assert_eq!(s.estimate("k"), u8::MAX);
        s.decay();
        assert_eq!(s.estimate("k"), u8::MAX / 2);
        // Enough other increments halve the counters on their own.
        let mut s = Sketch::default();
        for _ in 0..8 {
            s.increment("k");
        }
        for i in 0..ROWS * WIDTH {
            s.increment(&format!("other{i}"));
        }
        assert!(s.estimate("k") < 8, "old counts decay");
    }
}
