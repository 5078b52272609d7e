//! The write secret the master signs write tokens with, and its rotation without a restart.
//!
//! Shards check tokens with the current and the previous secret they were handed
//! (`mc_dataplane`'s capabilities). A rotation (a rewritten `--cluster_secret_file`, read by
//! [`watch`]) must never leave a shard unable to check a token the master signs, so a new
//! secret goes through two steps:
//!
//! 1. **Pending**: the master keeps signing with the current secret and hands the new one to
//!    every node with mounted segments in its heartbeat answer (`PingAck::write_secret`). A
//!    node counts as holding it once it pings *again* after such an answer: its agent handles
//!    one heartbeat answer at a time and has forwarded the secret to its shards before it
//!    sends the next heartbeat.
//! 2. **Current**: once every node with mounted segments holds it, or `client_ttl` after the
//!    change (a node silent that long is dropped anyway), the master signs with it. The
//!    shards keep the old secret as their previous one, so tokens signed before still verify.
//!
//! A MountAck carries the secret the master signs with at that moment; a node that mounts
//! during a rotation gets the pending one in its next heartbeat answers, and the switch waits
//! for it like for any other node. A further new secret waits until the last switch is
//! `hold_ms` old (the longest a client keeps a token unused: put credit), so no shard drops
//! a secret that a live token was signed with.

pub mod watch;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use mc_schema::token::{WriteKey, fingerprint};
use parking_lot::RwLock;
use tracing::{info, warn};

/// What [`WriteSecrets::stage`] did with a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Staged {
    /// The secret is already the current or the pending one: nothing to do.
    Same,
    /// A rotation is under way, or the last one is younger than the hold time: try later.
    Deferred,
    /// The secret is pending: nodes get it from now on.
    Pending,
}

/// A secret handed to the nodes but not signed with yet.
struct Pending {
    secret: Arc<[u8]>,
    fingerprint: String,
    /// When it was staged (master clock, ms).
    since_ms: u64,
    /// Clients answered a ping carrying it.
    answered: HashSet<u64>,
    /// Clients that pinged again after such an answer: their shards hold it.
    holding: HashSet<u64>,
}

/// The secret signed with now and, during a rotation, the next one.
struct State {
    current: Arc<[u8]>,
    key: WriteKey,
    fingerprint: String,
    pending: Option<Pending>,
    /// When the master last switched secrets (master clock, ms); `None` = never.
    switched_ms: Option<u64>,
}

/// The master's write secrets, shared by every HA term of one process (see the
/// [module docs](self)).
pub struct WriteSecrets {
    state: RwLock<State>,
    /// Least time between a switch and the next staged secret.
    hold_ms: u64,
    rotations_total: AtomicU64,
    reload_errors_total: AtomicU64,
}

impl std::fmt::Debug for WriteSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.state.read();
        f.debug_struct("WriteSecrets")
            .field("fingerprint", &s.fingerprint)
            .field("pending", &s.pending.as_ref().map(|p| &p.fingerprint))
            .finish()
    }
}

impl WriteSecrets {
    /// Signs with `secret`; a later secret is staged no sooner than `hold_ms` after a switch.
    pub fn new(secret: Arc<[u8]>, hold_ms: u64) -> WriteSecrets {
        WriteSecrets {
            state: RwLock::new(State {
                key: WriteKey::new(&secret),
                fingerprint: fingerprint(&secret),
                current: secret,
                pending: None,
                switched_ms: None,
            }),
            hold_ms,
            rotations_total: AtomicU64::new(0),
            reload_errors_total: AtomicU64::new(0),
        }
    }

    /// The secret signed with now (what a MountAck carries).
    pub fn current(&self) -> Arc<[u8]> {
        self.state.read().current.clone()
    }

    /// [`mc_schema::token::fingerprint`] of the secret signed with now.
    pub fn fingerprint(&self) -> String {
        self.state.read().fingerprint.clone()
    }

    /// The fingerprint of the pending secret, during a rotation.
    pub fn pending_fingerprint(&self) -> Option<String> {
        self.state
            .read()
            .pending
            .as_ref()
            .map(|p| p.fingerprint.clone())
    }

    /// Whether a secret is pending.
    pub fn rotating(&self) -> bool {
        self.state.read().pending.is_some()
    }

    /// Runs `f` with the key of the current secret (held for the call: a switch waits).
    pub fn with_key<R>(&self, f: impl FnOnce(&WriteKey) -> R) -> R {
        f(&self.state.read().key)
    }

    /// Makes `secret` pending at `now_ms`, unless it is already current or pending, or a
    /// rotation is under way or younger than the hold time (see [`Staged`]).
    pub fn stage(&self, secret: &[u8], now_ms: u64) -> Staged {
        let mut s = self.state.write();
        if *s.current == *secret || s.pending.as_ref().is_some_and(|p| *p.secret == *secret) {
            return Staged::Same;
        }
        let held = s
            .switched_ms
            .is_some_and(|t| now_ms < t.saturating_add(self.hold_ms));
        if s.pending.is_some() || held {
            return Staged::Deferred;
        }
        s.pending = Some(Pending {
            secret: secret.into(),
            fingerprint: fingerprint(secret),
            since_ms: now_ms,
            answered: HashSet::new(),
            holding: HashSet::new(),
        });
        Staged::Pending
    }

    /// The secret for the heartbeat answer to `client_id`, a node with mounted segments: the
    /// pending one during a rotation (and the client's progress towards holding it is
    /// recorded), else the current one.
    pub fn for_node(&self, client_id: u64) -> Vec<u8> {
        {
            let s = self.state.read();
            if s.pending.is_none() {
                return s.current.to_vec();
            }
        }
        let mut s = self.state.write();
        match &mut s.pending {
            Some(p) => {
                if !p.answered.insert(client_id) {
                    p.holding.insert(client_id);
                }
                p.secret.to_vec()
            }
            None => s.current.to_vec(),
        }
    }

    /// Forgets what `client_id` was handed during a rotation: it mounts (again), and a node
    /// that restarted under the same id holds only what its MountAck carries.
    pub fn forget_node(&self, client_id: u64) {
        let mut s = self.state.write();
        if let Some(p) = &mut s.pending {
            p.answered.remove(&client_id);
            p.holding.remove(&client_id);
        }
    }

    /// Switches to the pending secret when every client `mounted` names (called under the
    /// lock, so a node mounting meanwhile is either named or gets the new secret in its
    /// MountAck) holds it, or when it has been pending `ttl_ms`. True when it switched.
    pub fn try_switch(&self, now_ms: u64, ttl_ms: u64, mounted: impl FnOnce() -> Vec<u64>) -> bool {
        let mut s = self.state.write();
        let Some(p) = &s.pending else {
            return false;
        };
        let waited_ms = now_ms.saturating_sub(p.since_ms);
        let clients = mounted();
        let missing = clients.iter().filter(|c| !p.holding.contains(c)).count();
        if missing > 0 && waited_ms < ttl_ms {
            return false;
        }
        let Some(p) = s.pending.take() else {
            return false;
        };
        let old = std::mem::replace(&mut s.fingerprint, p.fingerprint.clone());
        s.key = WriteKey::new(&p.secret);
        s.current = p.secret;
        s.switched_ms = Some(now_ms);
        self.rotations_total.fetch_add(1, Ordering::Relaxed);
        if missing == 0 {
            info!(
                from = %old,
                to = %p.fingerprint,
                nodes = clients.len(),
                waited_ms,
                "write secret rotated: every node with mounted segments holds the new \
                 secret; signing with it now"
            );
        } else {
            warn!(
                from = %old,
                to = %p.fingerprint,
                nodes = clients.len(),
                missing,
                waited_ms,
                "write secret rotated after client_ttl although some nodes did not confirm \
                 the new secret (silent nodes are dropped; a live one gets it in its next \
                 heartbeat and refuses writes until then)"
            );
        }
        true
    }

    /// Counts a reload of the secret file that failed.
    pub fn note_reload_error(&self) {
        self.reload_errors_total.fetch_add(1, Ordering::Relaxed);
    }

    /// Switches to a new secret so far (`master_write_secret_rotations_total`).
    pub fn rotations_total(&self) -> u64 {
        self.rotations_total.load(Ordering::Relaxed)
    }

    /// Failed reloads of the secret file so far (`master_write_secret_reload_errors_total`).
    pub fn reload_errors_total(&self) -> u64 {
        self.reload_errors_total.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &[u8] = b"secret A, long enough to be one.";
    const B: &[u8] = b"secret B, long enough to be one.";
    const C: &[u8] = b"secret C, long enough to be one.";

    fn secrets() -> WriteSecrets {
        WriteSecrets::new(A.into(), 1_000)
    }

    #[test]
    fn a_staged_secret_is_handed_out_but_signed_with_only_once_every_node_holds_it() {
        let s = secrets();
        assert_eq!(s.for_node(1), A, "no rotation: the current secret");
        assert_eq!(s.stage(A, 0), Staged::Same);
        assert_eq!(s.stage(B, 10), Staged::Pending);
        assert_eq!(s.stage(B, 11), Staged::Same, "already pending");
        assert_eq!(s.pending_fingerprint(), Some(fingerprint(B)));
        let signs_with = |s: &WriteSecrets, secret: &[u8]| {
            let t = s.with_key(|k| k.sign(1, 2, (0, 8), 99));
            WriteKey::new(secret).verify(1, 2, &t)
        };
        let mounted = || vec![1, 2];

        // Node 1 answered once: not yet known to hold it.
        assert_eq!(s.for_node(1), B);
        assert!(!s.try_switch(20, 10_000, mounted));
        // Node 1 pings again: it holds it. Node 2 answered once only.
        assert_eq!(s.for_node(1), B);
        assert_eq!(s.for_node(2), B);
        assert!(!s.try_switch(30, 10_000, mounted));
        assert!(signs_with(&s, A), "still signing with the current secret");
        assert_eq!(s.fingerprint(), fingerprint(A));
        assert_eq!(
            s.current().as_ref(),
            A,
            "a MountAck carries the current one"
        );

        assert_eq!(s.for_node(2), B);
        assert!(s.try_switch(40, 10_000, mounted));
        assert!(signs_with(&s, B));
        assert_eq!(s.fingerprint(), fingerprint(B));
        assert_eq!(s.pending_fingerprint(), None);
        assert_eq!(s.rotations_total(), 1);
        assert!(!s.try_switch(50, 10_000, mounted), "nothing pending");
        assert_eq!(s.for_node(3), B);
    }

    #[test]
    fn a_node_mounted_during_the_rotation_is_waited_for_and_silence_ends_the_wait() {
        let s = secrets();
        assert_eq!(s.stage(B, 100), Staged::Pending);
        assert_eq!(s.for_node(1), B);
        assert_eq!(s.for_node(1), B);
        // Node 2 mounted meanwhile and has not pinged: no switch before client_ttl.
        assert!(!s.try_switch(200, 1_000, || vec![1, 2]));
        assert!(!s.try_switch(1_099, 1_000, || vec![1, 2]));
        // Node 2 pings twice, then mounts again (restarted): it starts over.
        assert_eq!(s.for_node(2), B);
        assert_eq!(s.for_node(2), B);
        s.forget_node(2);
        assert!(!s.try_switch(1_099, 1_000, || vec![1, 2]));
        assert_eq!(s.for_node(2), B);
        assert!(!s.try_switch(1_099, 1_000, || vec![1, 2]));
        assert!(
            s.try_switch(1_100, 1_000, || vec![1, 2]),
            "client_ttl passed"
        );
        assert_eq!(s.fingerprint(), fingerprint(B));
    }

    #[test]
    fn without_nodes_the_switch_is_at_once_and_the_next_secret_waits_for_the_hold_time() {
        let s = secrets();
        assert_eq!(s.stage(B, 0), Staged::Pending);
        assert_eq!(s.stage(C, 1), Staged::Deferred, "one rotation at a time");
        assert!(s.try_switch(5, 10_000, Vec::new));
        assert_eq!(
            s.stage(C, 500),
            Staged::Deferred,
            "hold time after a switch"
        );
        assert_eq!(s.stage(C, 1_005), Staged::Pending);
        assert!(s.try_switch(1_006, 10_000, Vec::new));
        assert_eq!(s.current().as_ref(), C);
        assert_eq!(s.rotations_total(), 2);
        // Going back to an earlier secret is a rotation like any other.
        assert_eq!(s.stage(A, 2_006), Staged::Pending);
    }

    #[test]
    fn reload_errors_are_counted() {
        let s = secrets();
        s.note_reload_error();
        s.note_reload_error();
        assert_eq!(s.reload_errors_total(), 2);
        assert!(format!("{s:?}").contains(&fingerprint(A)));
        assert!(
            !format!("{s:?}").contains("secret A"),
            "never shows the secret"
        );
    }
}
