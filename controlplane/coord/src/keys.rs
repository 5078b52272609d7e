//! Where the master view lives on each coordinator, and how its value is written.
//!
//! The layout is Mooncake's (`mooncake-store/src/ha/leadership/backends/*`), so a Mooncake
//! client can follow a mooncake-rs leader and the reverse:
//!
//! - **etcd**: key `mooncake-store/<cluster_id>/master_view`, value the leader's RPC address
//!   as plain bytes, attached to the leader's lease. The view version is the key's
//!   `create_revision`: each election creates the key anew, and etcd revisions only grow.
//! - **Redis**: a hash at `mooncake-store/{<cluster_id>}/master_view` with the fields
//!   `leader_address`, `view_version` and `owner_token`, expiring with `PX`; the version comes
//!   from `INCR` on `mooncake-store/{<cluster_id>}/master_view_version`. The braces are a
//!   Redis Cluster hash tag: both keys land in one slot, as a multi-key script needs.
//!   mooncake-rs adds a channel, `mooncake-store/{<cluster_id>}/master_view_channel`, that the
//!   scripts `PUBLISH` on so followers learn of a change at once; Mooncake's followers poll.

use crate::{CoordError, MasterView};

/// Mooncake's cluster id when `MC_STORE_CLUSTER_ID` is unset.
pub const DEFAULT_CLUSTER_ID: &str = "mooncake_cluster";
/// Mooncake's variable naming the cluster id.
pub const ENV_CLUSTER_ID: &str = "MC_STORE_CLUSTER_ID";

/// Redis hash field holding the leader's RPC address.
pub const FIELD_LEADER_ADDRESS: &str = "leader_address";
/// Redis hash field holding the view version (decimal).
pub const FIELD_VIEW_VERSION: &str = "view_version";
/// Redis hash field holding the owner token of the term (a UUID).
pub const FIELD_OWNER_TOKEN: &str = "owner_token";

/// The cluster id from `MC_STORE_CLUSTER_ID`, or Mooncake's default `mooncake_cluster`.
pub fn cluster_id_from_env() -> String {
    std::env::var(ENV_CLUSTER_ID)
        .ok()
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| DEFAULT_CLUSTER_ID.to_string())
}

/// Mooncake drops one trailing `/` of the cluster id before building keys.
fn normalize(cluster_id: &str) -> &str {
    cluster_id.strip_suffix('/').unwrap_or(cluster_id)
}

/// The etcd key of the master view: `mooncake-store/<cluster_id>/master_view`.
pub fn etcd_view_key(cluster_id: &str) -> String {
    format!("mooncake-store/{}/master_view", normalize(cluster_id))
}

/// The etcd prefix under which HA masters announce themselves (mooncake-rs only):
/// `mooncake-store/<cluster_id>/masters/`, one key per master RPC address.
pub fn etcd_masters_prefix(cluster_id: &str) -> String {
    format!("mooncake-store/{}/masters/", normalize(cluster_id))
}

/// The Redis keys of one cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisKeys {
    /// The hash holding the view: `mooncake-store/{<cluster_id>}/master_view`.
    pub view: String,
    /// The `INCR` counter of view versions: `mooncake-store/{<cluster_id>}/master_view_version`.
    pub version: String,
    /// The change channel: `mooncake-store/{<cluster_id>}/master_view_channel`.
    pub channel: String,
    /// The hash where HA masters announce themselves (mooncake-rs only):
    /// `mooncake-store/{<cluster_id>}/masters`, one field per master RPC address.
    pub masters: String,
}

impl RedisKeys {
    /// The keys for `cluster_id`; `{` and `}` in it become `_` (as in Mooncake) so the hash
    /// tag stays intact.
    pub fn new(cluster_id: &str) -> Self {
        let tag = normalize(cluster_id).replace(['{', '}'], "_");
        Self {
            view: format!("mooncake-store/{{{tag}}}/master_view"),
            version: format!("mooncake-store/{{{tag}}}/master_view_version"),
            channel: format!("mooncake-store/{{{tag}}}/master_view_channel"),
            masters: format!("mooncake-store/{{{tag}}}/masters"),
        }
    }
}

/// Decodes the three hash fields of a Redis view (as `HMGET` returns them): all absent means
/// no leader; some absent means a half-written view, which Mooncake also rejects.
pub fn parse_redis_view(
    key: &str,
    leader: Option<String>,
    version: Option<String>,
    owner: Option<String>,
) -> Result<Option<MasterView>, CoordError> {
    let bad = |reason: &str| CoordError::BadView {
        key: key.into(),
        reason: reason.into(),
    };
    match (leader, version, owner) {
        (None, None, None) => Ok(None),
        (Some(leader), Some(version), Some(owner)) => {
            if owner.is_empty() {
                return Err(bad("empty owner_token"));
            }
            let version = version
                .trim()
                .parse::<u64>()
                .map_err(|_| bad("view_version is not a non-negative integer"))?;
            Ok(Some(MasterView { leader, version }))
        }
        _ => Err(bad(
            "only some of leader_address, view_version, owner_token are set",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_match_mooncake() {
        assert_eq!(
            etcd_view_key("mooncake_cluster"),
            "mooncake-store/mooncake_cluster/master_view"
        );
        assert_eq!(etcd_view_key("c1/"), "mooncake-store/c1/master_view");
        let keys = RedisKeys::new("a{b}/");
        assert_eq!(keys.view, "mooncake-store/{a_b_}/master_view");
        assert_eq!(keys.version, "mooncake-store/{a_b_}/master_view_version");
        assert_eq!(keys.channel, "mooncake-store/{a_b_}/master_view_channel");
    }

    #[test]
    fn redis_view_fields() {
        let s = |v: &str| Some(v.to_string());
        assert_eq!(parse_redis_view("k", None, None, None).unwrap(), None);
        assert_eq!(
            parse_redis_view("k", s("h:1"), s("7"), s("tok")).unwrap(),
            Some(MasterView {
                leader: "h:1".into(),
                version: 7
            })
        );
        for (l, v, o) in [
            (s("h:1"), None, s("t")),
            (None, s("1"), None),
            (s("h:1"), s("x"), s("t")),
            (s("h:1"), s("-1"), s("t")),
            (s("h:1"), s("1"), s("")),
        ] {
            let err = parse_redis_view("k", l, v, o).unwrap_err();
            assert!(matches!(err, CoordError::BadView { .. }), "{err:?}");
        }
    }
}
