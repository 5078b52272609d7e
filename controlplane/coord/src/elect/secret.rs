//! The cluster's write-token secret, kept on the coordinator so every HA master signs with
//! the same one (mooncake-rs only): the first master to ask stores its candidate, every
//! later one reads that back. A node that follows a failover then needs no new secret, and
//! a token one leader signed is still good under the next.
//!
//! - etcd: key `mooncake-store/<cluster_id>/write_secret`, created in a transaction only if
//!   absent (no lease: it outlives every master).
//! - Redis: key `mooncake-store/{<cluster_id>}/write_secret`, `SET ... NX`, then `GET`.
//!
//! The secret is stored as plain bytes: whoever can read the coordinator can forge write
//! tokens, as whoever can read `--cluster_secret_file` can (`docs/ha.md`).

use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, ConnectOptions, Txn, TxnOp, TxnOpResponse};

use crate::{CoordError, MasterLocator, keys};

/// The etcd key: `mooncake-store/<cluster_id>/write_secret`.
pub fn etcd_secret_key(cluster_id: &str) -> String {
    format!(
        "mooncake-store/{}/write_secret",
        cluster_id.strip_suffix('/').unwrap_or(cluster_id)
    )
}

/// The Redis key: `mooncake-store/{<cluster_id>}/write_secret`.
pub fn redis_secret_key(cluster_id: &str) -> String {
    let view = keys::RedisKeys::new(cluster_id).view;
    view.strip_suffix("master_view")
        .map(|prefix| format!("{prefix}write_secret"))
        .unwrap_or(view)
}

/// The secret the cluster's masters share: the one stored on the coordinator `locator`
/// names, or `candidate` once it is stored there (when no master stored one before).
///
/// # Errors
/// The coordinator cannot be reached within `op_timeout`, or is not one (a static
/// locator).
pub async fn shared_secret(
    locator: &MasterLocator,
    cluster_id: &str,
    candidate: &[u8],
    op_timeout: Duration,
) -> Result<Vec<u8>, CoordError> {
    let bounded = tokio::time::timeout(
        op_timeout,
        agree(locator, cluster_id, candidate, op_timeout),
    );
    bounded.await.unwrap_or(Err(CoordError::Timeout {
        op: "share the write secret",
        after: op_timeout,
    }))
}

async fn agree(
    locator: &MasterLocator,
    cluster_id: &str,
    candidate: &[u8],
    op_timeout: Duration,
) -> Result<Vec<u8>, CoordError> {
    match locator {
        MasterLocator::Etcd(endpoints) => {
            let urls: Vec<String> = endpoints.iter().map(crate::Endpoint::http_url).collect();
            let options = ConnectOptions::new().with_connect_timeout(op_timeout);
            let etcd = |op| move |source| CoordError::Etcd { op, source };
            let mut client = Client::connect(urls, Some(options))
                .await
                .map_err(etcd("connect"))?;
            let key = etcd_secret_key(cluster_id);
            let txn = Txn::new()
                .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
                .and_then([TxnOp::put(key.clone(), candidate, None)])
                .or_else([TxnOp::get(key.clone(), None)]);
            let resp = client.txn(txn).await.map_err(etcd("txn"))?;
            if resp.succeeded() {
                return Ok(candidate.to_vec());
            }
            resp.op_responses()
                .into_iter()
                .find_map(|op| match op {
                    TxnOpResponse::Get(get) => get.kvs().first().map(|kv| kv.value().to_vec()),
                    _ => None,
                })
                .ok_or(CoordError::BadSecret {
                    key,
                    reason: "the key exists but reads back empty",
                })
        }
        MasterLocator::Redis(target) => {
            let target = target.clone().with_env(|name| std::env::var(name).ok())?;
            let redis = |op| move |source| CoordError::Redis { op, source };
            let client = redis::Client::open(target.connection_info()).map_err(redis("open"))?;
            let mut conn = client
                .get_multiplexed_async_connection()
                .await
                .map_err(redis("connect"))?;
            let key = redis_secret_key(cluster_id);
            let _: Option<String> = redis::cmd("SET")
                .arg(&key)
                .arg(candidate)
                .arg("NX")
                .query_async(&mut conn)
                .await
                .map_err(redis("SET NX"))?;
            let stored: Option<Vec<u8>> = redis::cmd("GET")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .map_err(redis("GET"))?;
            stored.ok_or(CoordError::BadSecret {
                key,
                reason: "it vanished between SET NX and GET",
            })
        }
        MasterLocator::Static(_) => Err(CoordError::NotACoordinator {
            locator: locator.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_cluster_layout() {
        assert_eq!(etcd_secret_key("c1/"), "mooncake-store/c1/write_secret");
        assert_eq!(redis_secret_key("c1"), "mooncake-store/{c1}/write_secret");
    }
}
