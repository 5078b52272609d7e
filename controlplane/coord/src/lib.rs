//! The coordinator layer of mooncake-rs high availability: the seam between mooncake-rs and
//! an existing coordinator (etcd or Redis) on which masters elect a leader.
//!
//! # Model
//!
//! A cluster's leader is whoever holds one key, the **master view** (layout in [`keys`]):
//! `mooncake-store/<cluster_id>/master_view` on etcd, a hash at
//! `mooncake-store/{<cluster_id>}/master_view` on Redis, as in Mooncake. Its value names the
//! leader's RPC address; its **view version** grows with every election (the key's etcd
//! `create_revision`, or a Redis `INCR` counter) and serves as the leader's term.
//!
//! - [`MasterLocator`] parses where to look: `host:port` (one static master, version 0),
//!   `etcd://h1:2379;h2:2379` or `redis://[:password@]host:port[/db]`.
//! - [`ViewFollower`] (blocking, one thread, no tokio) keeps the current [`MasterView`] for
//!   clients and store nodes and wakes waiters within milliseconds of a change;
//!   [`LeaderTracker`] on top of it says which master a call goes to, and where to send it
//!   again when a standby or a dead leader did not serve it.
//! - `elect` (cargo feature `elect`, tokio) runs the election for masters: the `elect::Elector`
//!   trait is the coordinator seam (etcd via `etcd-client`, Redis via `redis`), and
//!   `elect::Election` drives it.
//!
//! # Why two leaders never overlap (fencing)
//!
//! 1. The key is created only if absent (an etcd transaction on `create_revision == 0`, a Redis
//!    script checking `EXISTS`), with an expiry: an etcd lease of the TTL, a Redis `PEXPIRE`.
//!    So a new leader can win only after the old key is gone: deleted by the old leader's
//!    resign, or expired.
//! 2. Every other change is conditional on ownership: a renew extends the key only while it
//!    carries this term's lease (etcd) or owner token (Redis); a release deletes only then.
//!    A stale leader can neither prolong nor delete a newer leader's key.
//! 3. **Fail closed.** A leader believes in its term only until
//!    `last successful renew start + TTL - margin` (margin = max(TTL/5, 500 ms)). The
//!    coordinator extends the key from the moment it *handles* the renew, which is no earlier
//!    than the renew's start, so the key outlives the leader's own deadline by at least the
//!    margin. The deadline is read with [`std::time::Instant`] (`CLOCK_MONOTONIC`, which keeps
//!    counting while the process is stopped by SIGSTOP), so a paused leader that wakes after
//!    its deadline finds `elect::Election::is_leader_now` false before its first write. A
//!    failed renew, a renew that finds the key lost, or the deadline passing end the term at
//!    once, and the elector never claims that term again: leading again means winning the key
//!    again, with a higher version.
//! 4. A resign clears the local deadline *before* deleting the key, so the next leader
//!    cannot start while this one still claims to lead.
//!
//! Hence, at any instant, at most one process has `is_leader_now()`, provided that the
//! coordinator's clock runs no more than `margin / TTL` (20 %) faster than the leader's,
//! that a write admitted by `is_leader_now()` finishes within the margin, and that nobody
//! deletes the key by hand (a leader notices that at its next renew, up to TTL/3 later). On
//! Redis the guarantee also needs a single primary (an asynchronous replica promoted after a
//! failover may have missed the last write) and a server clock that does not jump: Redis
//! expires keys by wall-clock time. A whole machine that is suspended (not a stopped
//! process) does not advance `CLOCK_MONOTONIC`; the view version stamped on every
//! master-to-node message is the fence for that case.
//!
//! # Coordinator outages
//!
//! A leader whose renew fails steps down before its lease could expire; standbys and
//! followers retry with back-off (100 ms doubling to 1-2 s), log the first failures and the
//! recovery, and the election resumes when the coordinator is back. A term lost without a
//! resign has its key deleted (if still its own) on the next contact, so a restarted
//! coordinator does not wait out a lease it restored.

#![forbid(unsafe_code)]

#[cfg(feature = "elect")]
pub mod elect;
pub mod error;
pub mod follow;
pub mod keys;
pub mod locator;

pub use error::CoordError;
pub use follow::tracker::{LeaderTracker, Target};
pub use follow::{FollowerConfig, ViewFollower};
pub use keys::{DEFAULT_CLUSTER_ID, ENV_CLUSTER_ID, RedisKeys, cluster_id_from_env, etcd_view_key};
pub use locator::{Endpoint, MasterLocator, RedisTarget};

/// Who leads a cluster: the leader's RPC address and the view version of its term.
///
/// The version only grows across elections while the coordinator keeps its data (etcd: the
/// key's create revision; Redis: an `INCR` counter), so a higher version is a newer term.
/// Version 0 is the fixed view of a static `host:port` locator.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MasterView {
    /// The leader's master RPC address, `host:port`.
    pub leader: String,
    /// The view version (term) this leader won.
    pub version: u64,
}
