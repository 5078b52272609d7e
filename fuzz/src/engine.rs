//! The fuzzing loop: inputs are random bytes, or a seed (a valid encoding) mutated a few
//! times (bit flips, byte overwrites with interesting values, truncation, extension,
//! splices of two seeds, duplicated ranges). Each input runs under `catch_unwind`; a
//! panicking input is written to `fuzz/crashes/<target>/<hash>.bin` and counted.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A small, fast PRNG (xorshift64*): inputs need variety, not cryptographic quality.
pub struct Rng(u64);

impl Rng {
    /// Seeded generator (never zero).
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// Values that break length and offset arithmetic.
const INTERESTING: [u64; 10] = [
    0,
    1,
    0x7F,
    0xFF,
    0xFFFF,
    0x7FFF_FFFF,
    0xFFFF_FFFF,
    0x8000_0000_0000_0000,
    u64::MAX,
    u64::MAX - 1,
];

/// One mutation of `v` in place.
fn mutate(rng: &mut Rng, v: &mut Vec<u8>, seeds: &[Vec<u8>]) {
    match rng.below(7) {
        0 if !v.is_empty() => {
            let i = rng.below(v.len());
            v[i] ^= 1 << rng.below(8);
        }
        1 if !v.is_empty() => {
            let i = rng.below(v.len());
            v[i] = rng.next_u64() as u8;
        }
        2 if !v.is_empty() => {
            let at = rng.below(v.len());
            let x = INTERESTING[rng.below(INTERESTING.len())].to_le_bytes();
            let w = [1, 2, 4, 8][rng.below(4)].min(v.len() - at);
            v[at..at + w].copy_from_slice(&x[..w]);
        }
        3 => {
            let n = rng.below(v.len() + 1);
            v.truncate(n);
        }
        4 => {
            let n = rng.below(64);
            v.extend((0..n).map(|_| rng.next_u64() as u8));
        }
        5 if !seeds.is_empty() => {
            let other = &seeds[rng.below(seeds.len())];
            let cut = rng.below(v.len() + 1);
            let from = rng.below(other.len() + 1);
            v.truncate(cut);
            v.extend_from_slice(&other[from..]);
        }
        _ if v.len() >= 2 => {
            let a = rng.below(v.len());
            let b = a + rng.below(v.len() - a);
            let dup = v[a..b].to_vec();
            let at = rng.below(v.len());
            v.splice(at..at, dup);
        }
        _ => v.push(rng.next_u64() as u8),
    }
}

/// The next input.
pub fn input(rng: &mut Rng, seeds: &[Vec<u8>], max_len: usize) -> Vec<u8> {
    let mut v = if seeds.is_empty() || rng.below(4) == 0 {
        let n = rng.below(max_len + 1);
        (0..n).map(|_| rng.next_u64() as u8).collect()
    } else {
        seeds[rng.below(seeds.len())].clone()
    };
    for _ in 0..1 + rng.below(4) {
        mutate(rng, &mut v, seeds);
    }
    v.truncate(max_len.max(1) * 4);
    v
}

/// What a run of one target did.
#[derive(Debug, Default)]
pub struct Report {
    /// Inputs run.
    pub inputs: u64,
    /// Inputs that panicked.
    pub crashes: u64,
    /// Where they were written.
    pub crash_files: Vec<PathBuf>,
}

/// FNV-1a, to name crash files by content.
fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325, |h, &x| {
        (h ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Runs `f` on fresh inputs for `duration` (or `max_inputs`, whichever comes first).
pub fn run(
    name: &str,
    f: &dyn Fn(&[u8]),
    seeds: &[Vec<u8>],
    max_len: usize,
    duration: Duration,
    max_inputs: u64,
    seed: u64,
) -> Report {
    let mut rng = Rng::new(seed ^ fnv(name.as_bytes()));
    let mut report = Report::default();
    let end = Instant::now() + duration;
    // Seeds themselves first: a valid encoding must decode without a panic too.
    let mut queue: Vec<Vec<u8>> = seeds.to_vec();
    while report.inputs < max_inputs && (report.inputs % 256 != 0 || Instant::now() < end) {
        let data = queue
            .pop()
            .unwrap_or_else(|| input(&mut rng, seeds, max_len));
        report.inputs += 1;
        if catch_unwind(AssertUnwindSafe(|| f(&data))).is_err() {
            report.crashes += 1;
            let dir = PathBuf::from("crashes").join(name);
            let path = dir.join(format!("{:016x}.bin", fnv(&data)));
            if std::fs::create_dir_all(&dir).is_ok() && std::fs::write(&path, &data).is_ok() {
                report.crash_files.push(path);
            }
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_target_is_caught_and_saved() {
        let dir = std::env::temp_dir().join(format!("mc-fuzz-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::env::set_current_dir(&dir).unwrap();
        let r = run(
            "panics_on_ff",
            &|b: &[u8]| assert!(!b.contains(&0xFF)),
            &[vec![0u8; 16]],
            32,
            Duration::from_secs(10),
            2000,
            1,
        );
        assert_eq!(r.inputs, 2000);
        assert!(r.crashes > 0 && !r.crash_files.is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
