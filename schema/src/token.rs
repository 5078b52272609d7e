//! Write tokens: the capability a shard checks before it lets a write touch segment memory.
//!
//! When the master allocates a slice it signs what it allocated: segment, range, allocation
//! generation and a deadline (wall-clock milliseconds since the Unix epoch), with HMAC-SHA256
//! under the cluster's write secret, truncated to 128 bits. The client sends the token with
//! its write; the shard, which received the same secret when it mounted, recomputes the MAC
//! and accepts the write only inside the signed range, before the deadline, and while the
//! allocation has not been freed. Nodes are trusted; the token guards against wrong or buggy
//! clients (a stale location, an overrun, a write after a revoke), not against a node.

use ring::hmac;

/// Bytes of a generated write secret.
pub const SECRET_BYTES: usize = 32;
/// Shortest secret accepted (from `--cluster_secret_file`).
pub const MIN_SECRET_BYTES: usize = 16;
/// Bytes of a token's MAC.
pub const MAC_BYTES: usize = 16;

/// What the master signed for one slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriteToken {
    /// First byte of the range the write may touch.
    pub range_offset: u64,
    /// Bytes of that range.
    pub range_length: u64,
    /// The token is refused from this wall-clock instant on (ms since the Unix epoch).
    pub expires_unix_ms: u64,
    /// HMAC-SHA256 (truncated) over segment, range, generation and deadline.
    pub mac: [u8; MAC_BYTES],
}

/// A write secret ready to sign and check tokens.
#[derive(Clone)]
pub struct WriteKey {
    key: hmac::Key,
}

impl std::fmt::Debug for WriteKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WriteKey(..)")
    }
}

/// A new random write secret of [`SECRET_BYTES`] bytes.
pub fn new_secret() -> Vec<u8> {
    use ring::rand::SecureRandom;
    let mut s = vec![0u8; SECRET_BYTES];
    ring::rand::SystemRandom::new()
        .fill(&mut s)
        .expect("the system random source works");
    s
}

/// A short public name of `secret` (the first 8 bytes of its SHA-256, in hex), so operators
/// can see which masters sign alike without the secret being shown.
pub fn fingerprint(secret: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, secret);
    d.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect()
}

impl WriteKey {
    /// The key of `secret`.
    pub fn new(secret: &[u8]) -> WriteKey {
        WriteKey {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    fn mac(&self, segment_id: u64, generation: u64, t: &WriteToken) -> [u8; MAC_BYTES] {
        let mut msg = [0u8; 4 + 5 * 8];
        msg[..4].copy_from_slice(b"mcw1");
        for (i, v) in [
            segment_id,
            generation,
            t.range_offset,
            t.range_length,
            t.expires_unix_ms,
        ]
        .into_iter()
        .enumerate()
        {
            msg[4 + i * 8..12 + i * 8].copy_from_slice(&v.to_le_bytes());
        }
        let tag = hmac::sign(&self.key, &msg);
        let mut out = [0u8; MAC_BYTES];
        out.copy_from_slice(&tag.as_ref()[..MAC_BYTES]);
        out
    }

    /// A token for `length` bytes at `offset` of `segment_id`, allocation `generation`,
    /// valid until `expires_unix_ms`.
    pub fn sign(
        &self,
        segment_id: u64,
        generation: u64,
        (offset, length): (u64, u64),
        expires_unix_ms: u64,
    ) -> WriteToken {
        let mut t = WriteToken {
            range_offset: offset,
            range_length: length,
            expires_unix_ms,
            mac: [0; MAC_BYTES],
        };
        t.mac = self.mac(segment_id, generation, &t);
        t
    }

    /// Whether `t` was signed with this key for `segment_id` and `generation` (its range
    /// and deadline as it states them). Compares in constant time.
    pub fn verify(&self, segment_id: u64, generation: u64, t: &WriteToken) -> bool {
        let want = self.mac(segment_id, generation, t);
        want.iter()
            .zip(&t.mac)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn unix_ms_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_verifies_only_for_what_was_signed_and_with_its_key() {
        let k = WriteKey::new(&new_secret());
        let t = k.sign(7, 99, (4096, 1 << 20), 1_000);
        assert!(k.verify(7, 99, &t));
        assert!(!k.verify(8, 99, &t), "another segment");
        assert!(!k.verify(7, 98, &t), "another generation");
        for changed in [
            WriteToken {
                range_offset: 0,
                ..t
            },
            WriteToken {
                range_length: 2 << 20,
                ..t
            },
            WriteToken {
                expires_unix_ms: 2_000,
                ..t
            },
        ] {
            assert!(!k.verify(7, 99, &changed), "{changed:?}");
        }
        let mut flipped = t;
        flipped.mac[15] ^= 1;
        assert!(!k.verify(7, 99, &flipped));
        assert!(
            !WriteKey::new(&new_secret()).verify(7, 99, &t),
            "another secret"
        );
        assert_ne!(new_secret(), new_secret());
    }
}
