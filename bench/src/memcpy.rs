//! The `--same-host` baseline: a memcpy of the case's value size into one reused buffer.
//!
//! The source walks a buffer as large as the case's working set (capped at
//! [`MAX_SOURCE_BYTES`]), touched once before timing, so the copies read memory the way
//! the gets read a node's segment (not one hot value over and over); the destination is
//! one buffer, reused, as `get_into` reuses the bench's buffers.

use std::time::{Duration, Instant};

/// Largest source buffer the baseline walks.
pub const MAX_SOURCE_BYTES: u64 = 512 << 20;

/// A source buffer and a destination for values of one size.
pub struct Baseline {
    size: usize,
    src: Vec<u8>,
    dst: Vec<u8>,
}

impl Baseline {
    /// Buffers for `keys` values of `size` bytes (the source capped, at least one value).
    pub fn new(size: u64, keys: u64) -> Baseline {
        let bytes = size
            .saturating_mul(keys.max(1))
            .clamp(size, MAX_SOURCE_BYTES.max(size));
        // Filled (not zero pages the kernel maps lazily): every page is faulted in now.
        let src: Vec<u8> = (0..bytes as usize).map(|i| (i % 251) as u8).collect();
        Baseline {
            size: size as usize,
            src,
            dst: vec![0u8; size as usize],
        }
    }

    /// Copies per second: at least `min_ops` copies (or until `max_time` passes), each of
    /// the next value of the source into the reused destination.
    pub fn measure(&mut self, min_ops: u64, max_time: Duration) -> f64 {
        let values = (self.src.len() / self.size.max(1)).max(1);
        let t0 = Instant::now();
        let mut ops = 0u64;
        while ops < min_ops && (ops == 0 || t0.elapsed() < max_time) {
            let at = (ops as usize % values) * self.size;
            self.dst
                .copy_from_slice(std::hint::black_box(&self.src[at..at + self.size]));
            std::hint::black_box(&self.dst);
            ops += 1;
        }
        ops as f64 / t0.elapsed().as_secs_f64().max(1e-9)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_every_value_of_a_small_working_set() {
        let mut b = Baseline::new(4096, 3);
        assert_eq!(b.src.len(), 3 * 4096);
        assert!(b.measure(10, Duration::from_secs(5)) > 0.0);
        // The 10th copy (index 9) came from value 0 (9 % 3 == 0).
        assert_eq!(b.dst, b.src[..4096]);
    }
}
