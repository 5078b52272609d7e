//! Which writes a shard lets touch its memory: those carrying a write token the master signed
//! (`mc_schema::token`), inside the token's range, before its deadline, for an allocation not
//! freed since.
//!
//! The secret arrives from the agent once the node has mounted at a master; until then the
//! shard checks nothing (a data plane run on its own, by tests and tools). The previous secret
//! stays accepted after a new one arrives (a restarted master signs with a new secret while
//! older puts finish; a rotating master hands the new one over before it signs with it). Freed allocations are remembered by generation for longer than any
//! token lives, so a write replayed after its put was revoked, preempted or removed is refused.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use mc_schema::ErrorCode;
use mc_schema::token::{WriteKey, WriteToken};

/// How long a freed allocation's generation is remembered: longer than the longest token
/// (`mc_master`'s `MAX_TOKEN_TTL_MS`, 10 minutes).
pub const REVOKED_KEEP: Duration = Duration::from_secs(15 * 60);
/// Most freed generations remembered; beyond it the oldest are forgotten early (a node
/// freeing more than this in 15 minutes turns over its memory faster than tokens live).
pub const MAX_REVOKED: usize = 1 << 21;

/// Why a write was refused, for its answer and the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No token, or one the secret did not sign.
    Forged,
    /// Past its deadline.
    Expired,
    /// The write reaches outside the signed range.
    OutOfRange,
    /// The allocation was freed after the token was issued.
    Revoked,
}

impl Refusal {
    /// The error code the write is answered with.
    pub fn code(self) -> ErrorCode {
        match self {
            Refusal::Forged => ErrorCode::WriteTokenInvalid,
            Refusal::Expired => ErrorCode::WriteTokenExpired,
            Refusal::OutOfRange => ErrorCode::WriteOutOfRange,
            Refusal::Revoked => ErrorCode::AllocationRevoked,
        }
    }

    /// Label of `mc_shard_refused_writes_total`.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Forged => "forged",
            Refusal::Expired => "expired",
            Refusal::OutOfRange => "out_of_range",
            Refusal::Revoked => "revoked",
        }
    }
}

/// The shard's write secrets and the allocations freed lately.
#[derive(Debug, Default)]
pub(crate) struct Capabilities {
    /// Current secret first, then the previous one; empty = not enforcing (unless
    /// `sealed`).
    keys: Vec<(Vec<u8>, WriteKey)>,
    /// Refuse every write until a secret arrives: a shard that took over a mounted
    /// predecessor's memory must not take unchecked writes meanwhile.
    sealed: bool,
    revoked: HashSet<u64>,
    order: VecDeque<(Instant, u64)>,
}

impl Capabilities {
    /// Takes `secret` as the current one (a repeat of the current secret changes nothing).
    pub(crate) fn set_secret(&mut self, secret: &[u8]) {
        if secret.is_empty() || self.keys.first().is_some_and(|(s, _)| s == secret) {
            return;
        }
        self.sealed = false;
        self.keys.retain(|(s, _)| s != secret);
        self.keys
            .insert(0, (secret.to_vec(), WriteKey::new(secret)));
        self.keys.truncate(2);
    }

    /// Capabilities that refuse every write until [`set_secret`](Self::set_secret).
    pub(crate) fn sealed() -> Capabilities {
        Capabilities {
            sealed: true,
            ..Capabilities::default()
        }
    }

    /// Whether writes are checked at all.
    pub(crate) fn enforcing(&self) -> bool {
        self.sealed || !self.keys.is_empty()
    }

    /// Remembers that allocation `generation` was freed.
    pub(crate) fn revoke(&mut self, generation: u64, now: Instant) {
        self.forget_old(now);
        if self.revoked.insert(generation) {
            self.order.push_back((now, generation));
        }
        while self.order.len() > MAX_REVOKED {
            if let Some((_, g)) = self.order.pop_front() {
                self.revoked.remove(&g);
            }
        }
    }

    fn forget_old(&mut self, now: Instant) {
        while let Some(&(t, g)) = self.order.front() {
            if now.duration_since(t) < REVOKED_KEEP {
                break;
            }
            self.order.pop_front();
            self.revoked.remove(&g);
        }
    }

    /// Whether a write of `length` bytes at `offset` of `segment_id`, allocation
    /// `generation`, carrying `token`, may land, at wall-clock `now_unix_ms`.
    pub(crate) fn check(
        &self,
        (segment_id, offset, length, generation): (u64, u64, u64, u64),
        token: Option<&WriteToken>,
        now_unix_ms: u64,
    ) -> Result<(), Refusal> {
        if !self.enforcing() {
            return Ok(());
        }
        let t = token.ok_or(Refusal::Forged)?;
        if !self
            .keys
            .iter()
            .any(|(_, k)| k.verify(segment_id, generation, t))
        {
            return Err(Refusal::Forged);
        }
        let end = offset.checked_add(length).ok_or(Refusal::OutOfRange)?;
        if offset < t.range_offset || end > t.range_offset.saturating_add(t.range_length) {
            return Err(Refusal::OutOfRange);
        }
        if now_unix_ms >= t.expires_unix_ms {
            return Err(Refusal::Expired);
        }
        if self.revoked.contains(&generation) {
            return Err(Refusal::Revoked);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEG: u64 = 3;
    const GEN: u64 = 41;

    fn caps(secret: &[u8]) -> Capabilities {
        let mut c = Capabilities::default();
        c.set_secret(secret);
        c
    }

    #[test]
    fn only_signed_in_range_unexpired_unrevoked_writes_pass() {
        let secret = b"a secret of sixteen+ bytes";
        let k = WriteKey::new(secret);
        let t = k.sign(SEG, GEN, (4096, 8192), 10_000);
        let mut c = caps(secret);
        assert_eq!(c.check((SEG, 4096, 8192, GEN), Some(&t), 9_999), Ok(()));
        assert_eq!(
            c.check((SEG, 8192, 4096, GEN), Some(&t), 0),
            Ok(()),
            "inside"
        );
        assert_eq!(
            c.check((SEG, 4096, 8192, GEN), None, 0),
            Err(Refusal::Forged)
        );
        let mut forged = t;
        forged.mac[0] ^= 0x80;
        assert_eq!(
            c.check((SEG, 4096, 8192, GEN), Some(&forged), 0),
            Err(Refusal::Forged)
        );
        // A widened range is not what was signed.
        let wide = WriteToken {
            range_length: 1 << 30,
            ..t
        };
        assert_eq!(
            c.check((SEG, 4096, 8192, GEN), Some(&wide), 0),
            Err(Refusal::Forged)
        );
        assert_eq!(
            c.check((SEG, GEN, 8192, GEN), Some(&t), 0),
            Err(Refusal::OutOfRange)
        );
        assert_eq!(
            c.check((SEG, 4096, 8193, GEN), Some(&t), 0),
            Err(Refusal::OutOfRange)
        );
        assert_eq!(
            c.check((SEG, u64::MAX, 2, GEN), Some(&t), 0),
            Err(Refusal::OutOfRange)
        );
        assert_eq!(
            c.check((SEG, 4096, 8192, GEN), Some(&t), 10_000),
            Err(Refusal::Expired)
        );
        assert_eq!(
            c.check((SEG + 1, 4096, 8192, GEN), Some(&t), 0),
            Err(Refusal::Forged),
            "another segment"
        );
        c.revoke(GEN, Instant::now());
        assert_eq!(
            c.check((SEG, 4096, 8192, GEN), Some(&t), 0),
            Err(Refusal::Revoked)
        );
    }

    #[test]
    fn without_a_secret_nothing_is_checked_and_the_previous_secret_stays_valid() {
        let sealed = Capabilities::sealed();
        assert_eq!(
            sealed.check((1, 0, 8, 5), None, 0),
            Err(Refusal::Forged),
            "a sealed shard refuses writes before a secret arrives"
        );
        let c = Capabilities::default();
        assert!(!c.enforcing());
        assert_eq!(c.check((SEG, 0, 1, GEN), None, 0), Ok(()));
        let (old, new) = (
            b"the old secret, 16+".as_slice(),
            b"the new secret, 16+".as_slice(),
        );
        let t_old = WriteKey::new(old).sign(SEG, GEN, (0, 10), 100);
        let mut c = caps(old);
        c.set_secret(new);
        c.set_secret(new);
        assert_eq!(c.check((SEG, 0, 10, GEN), Some(&t_old), 0), Ok(()));
        c.set_secret(b"a third secret, 16+");
        assert_eq!(
            c.check((SEG, 0, 10, GEN), Some(&t_old), 0),
            Err(Refusal::Forged),
            "two secrets back"
        );
    }

    #[test]
    fn going_back_to_the_previous_secret_keeps_both() {
        // A rotation: the heartbeat hands over `new`, then a MountAck (the node mounted
        // again before the master switched) the one still signed with, then `new` again.
        let (old, new) = (
            b"the old secret, 16+".as_slice(),
            b"the new secret, 16+".as_slice(),
        );
        let t_old = WriteKey::new(old).sign(SEG, GEN, (0, 10), 100);
        let t_new = WriteKey::new(new).sign(SEG, GEN, (0, 10), 100);
        let mut c = caps(old);
        for s in [new, old, new] {
            c.set_secret(s);
            assert_eq!(c.check((SEG, 0, 10, GEN), Some(&t_old), 0), Ok(()));
            assert_eq!(c.check((SEG, 0, 10, GEN), Some(&t_new), 0), Ok(()));
        }
    }

    #[test]
    fn freed_generations_are_forgotten_after_the_keep_time_and_beyond_the_bound() {
        let mut c = caps(b"a secret of sixteen+ bytes");
        let t0 = Instant::now();
        c.revoke(1, t0);
        c.revoke(2, t0 + REVOKED_KEEP / 2);
        c.revoke(3, t0 + REVOKED_KEEP);
        assert!(!c.revoked.contains(&1), "kept past REVOKED_KEEP");
        assert!(c.revoked.contains(&2) && c.revoked.contains(&3));
        for g in 10..(10 + MAX_REVOKED as u64 + 5) {
            c.revoke(g, t0 + REVOKED_KEEP);
        }
        assert_eq!(c.revoked.len(), MAX_REVOKED);
        assert!(!c.revoked.contains(&2));
    }
}
