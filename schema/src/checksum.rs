//! CRC32C (Castagnoli), the checksum of every slice on the wire and at rest.
//!
//! Backed by `crc-fast` (SIMD, ~90 GB/s on this machine's cores versus ~25 GB/s for a
//! plain SSE4.2 implementation), so the checksum costs far less than the wire.

use crc_fast::{CrcAlgorithm, Digest};

/// CRC32C of `data`.
pub fn crc32c(data: &[u8]) -> u32 {
    crc_fast::checksum(CrcAlgorithm::Crc32Iscsi, data) as u32
}

/// Incremental CRC32C, for checksumming bytes as they arrive.
pub struct Crc32c(Digest);

impl Default for Crc32c {
    fn default() -> Self {
        Crc32c(Digest::new(CrcAlgorithm::Crc32Iscsi))
    }
}

impl Crc32c {
    /// Adds bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// The CRC32C of everything added.
    pub fn finish(&self) -> u32 {
        self.0.finalize() as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_value_and_incremental_agree() {
        // The CRC32C check value of "123456789".
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
        let mut inc = Crc32c::default();
        for c in data.chunks(4093) {
            inc.update(c);
        }
        assert_eq!(inc.finish(), crc32c(&data));
    }
}
