//! What the client was told succeeded, and the check that reads it all back.
//!
//! Values are derived from a seed (position-dependent bytes), so the ledger keeps only key,
//! seed and length, and a misplaced or flipped byte anywhere is seen.

use std::time::{Duration, Instant};

use mooncake_rs::Store;

/// Deterministic, position-dependent bytes (xorshift of the seed).
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// One acknowledged put.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acked {
    /// The key.
    pub key: String,
    /// Seed of its value ([`pattern`]).
    pub seed: u64,
    /// Length of its value.
    pub len: usize,
    /// When the ack came.
    pub at: Instant,
}

impl Acked {
    /// The value that was written.
    pub fn value(&self) -> Vec<u8> {
        pattern(self.len, self.seed)
    }
}

/// What a read-back found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Acknowledged objects never read back before the deadline.
    pub lost: u64,
    /// Reads that returned other bytes.
    pub wrong: u64,
}

impl Tally {
    /// Adds another tally.
    pub fn add(&mut self, o: Tally) {
        self.lost += o.lost;
        self.wrong += o.wrong;
    }
}

/// Reads every acknowledged object back; one that errors is asked again until `deadline`
/// (a master that restarts or a node that re-mounts takes a while), then counted lost.
/// Wrong bytes are counted at once and never retried away.
pub fn verify(store: &Store, acked: &[Acked], patience: Duration) -> Tally {
    let deadline = Instant::now() + patience;
    let mut t = Tally::default();
    for a in acked {
        let want = a.value();
        loop {
            match store.get(&a.key) {
                Ok(got) if got == want => break,
                Ok(_) => {
                    t.wrong += 1;
                    break;
                }
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(_) => {
                    t.lost += 1;
                    break;
                }
            }
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_differ_by_seed_and_position() {
        let a = pattern(64, 1);
        assert_eq!(a, pattern(64, 1));
        assert_ne!(a, pattern(64, 2));
        assert_ne!(a[..32], a[32..]);
    }
}
