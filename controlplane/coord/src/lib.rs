//! The coordinator layer of mooncake-rs high availability (crate docs written below).

#![forbid(unsafe_code)]

#[cfg(feature = "elect")]
pub mod elect;
pub mod error;
pub mod follow;
pub mod keys;
pub mod locator;

pub use error::CoordError;
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
