//! Zipf-distributed key indexes for skewed reads (inverse-CDF sampling over a table).

use rand::Rng;

/// A Zipf distribution over `0..n` with exponent `s`: index 0 is the hottest.
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    /// Builds the table (n entries).
    pub fn new(n: u64, s: f64) -> Zipf {
        let mut acc = 0.0;
        let mut cdf: Vec<f64> = (1..=n.max(1))
            .map(|k| {
                acc += 1.0 / (k as f64).powf(s);
                acc
            })
            .collect();
        let total = acc;
        cdf.iter_mut().for_each(|c| *c /= total);
        Zipf { cdf }
    }

    /// One index.
    pub fn sample<R: Rng>(&self, rng: &mut R) -> u64 {
        let u: f64 = rng.random();
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skewed_towards_low_indexes() {
        let z = Zipf::new(1000, 1.1);
        let mut rng = rand::rng();
        let mut hits = [0u32; 2];
        for _ in 0..10_000 {
            let i = z.sample(&mut rng);
            assert!(i < 1000);
            hits[usize::from(i >= 10)] += 1;
        }
        assert!(
            hits[0] > hits[1] / 2,
            "first 10 keys should be hot: {hits:?}"
        );
    }
}
