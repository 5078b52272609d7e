//! The roster: which masters a cluster has, for tools and the dashboard (mooncake-rs only;
//! Mooncake keeps no such list). Each HA master announces its RPC address and admin port
//! every TTL/3, and the entry dies one TTL after the last announcement, so a killed master
//! drops out by itself and a restarted one comes back.
//!
//! - etcd: key `mooncake-store/<cluster_id>/masters/<rpc address>`, value the admin port,
//!   attached to a lease of the TTL that each announcement replaces.
//! - Redis: field `<rpc address>` of the hash `mooncake-store/{<cluster_id>}/masters`, value
//!   `<admin port> <expiry, Unix ms>`. Readers skip (and delete) expired fields, by their own
//!   clock: the roster is informational, so clock skew only delays when an entry is hidden.
//!
//! Nothing here takes part in the election: a failed announcement is logged and retried.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use etcd_client::{Client, ConnectOptions, GetOptions, PutOptions};
use redis::AsyncCommands as _;
use tokio::sync::Mutex;

use crate::{CoordError, MasterLocator, keys};

/// One master as it announced itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Its RPC address, as it publishes it when leading.
    pub rpc_address: String,
    /// Its admin HTTP port (`--metrics_port`), on the RPC address's host.
    pub admin_port: u16,
}

/// Where the roster lives (the etcd client boxed: it is large, the Redis one is not).
enum Store {
    Etcd {
        client: Box<Client>,
        prefix: String,
        /// The lease each announced key hangs on now, by key.
        leases: Mutex<HashMap<String, i64>>,
    },
    Redis {
        client: redis::Client,
        key: String,
    },
}

/// A connection to a cluster's roster; see the [module docs](self).
pub struct Roster {
    store: Store,
    op_timeout: Duration,
}

fn etcd_err(op: &'static str) -> impl FnOnce(etcd_client::Error) -> CoordError {
    move |source| CoordError::Etcd { op, source }
}

fn redis_err(op: &'static str) -> impl FnOnce(redis::RedisError) -> CoordError {
    move |source| CoordError::Redis { op, source }
}

fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Parses a Redis field value `<admin port> <expiry ms>`.
fn parse_redis_entry(value: &str) -> Option<(u16, u64)> {
    let (port, expiry) = value.split_once(' ')?;
    Some((port.parse().ok()?, expiry.parse().ok()?))
}

impl Roster {
    /// Connects to the roster of `cluster_id` on the coordinator `locator` names; a static
    /// locator has none. Connects lazily: succeeds while the coordinator is down.
    pub async fn connect(
        locator: &MasterLocator,
        cluster_id: &str,
        op_timeout: Duration,
    ) -> Result<Self, CoordError> {
        let store = match locator {
            MasterLocator::Etcd(endpoints) => {
                let urls: Vec<String> = endpoints.iter().map(crate::Endpoint::http_url).collect();
                let options = ConnectOptions::new().with_connect_timeout(op_timeout);
                Store::Etcd {
                    client: Box::new(
                        Client::connect(urls, Some(options))
                            .await
                            .map_err(etcd_err("connect"))?,
                    ),
                    prefix: keys::etcd_masters_prefix(cluster_id),
                    leases: Mutex::new(HashMap::new()),
                }
            }
            MasterLocator::Redis(target) => {
                let target = target.clone().with_env(|name| std::env::var(name).ok())?;
                Store::Redis {
                    client: redis::Client::open(target.connection_info())
                        .map_err(redis_err("open"))?,
                    key: keys::RedisKeys::new(cluster_id).masters,
                }
            }
            MasterLocator::Static(_) => {
                return Err(CoordError::NotACoordinator {
                    locator: locator.to_string(),
                });
            }
        };
        Ok(Self { store, op_timeout })
    }

    /// Announces `member` for `ttl` (whole seconds on etcd, rounded up).
    pub async fn announce(&self, member: &Member, ttl: Duration) -> Result<(), CoordError> {
        let bounded = tokio::time::timeout(self.op_timeout, self.announce_now(member, ttl));
        bounded.await.unwrap_or(Err(CoordError::Timeout {
            op: "announce",
            after: self.op_timeout,
        }))
    }

    async fn announce_now(&self, member: &Member, ttl: Duration) -> Result<(), CoordError> {
        match &self.store {
            Store::Etcd {
                client,
                prefix,
                leases,
            } => {
                let mut client = Client::clone(client);
                let secs = i64::try_from(ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0))
                    .unwrap_or(i64::MAX)
                    .max(1);
                let granted = client
                    .lease_grant(secs, None)
                    .await
                    .map_err(etcd_err("lease grant"))?
                    .id();
                let key = format!("{prefix}{}", member.rpc_address);
                let value = member.admin_port.to_string();
                client
                    .put(
                        key.as_str(),
                        value,
                        Some(PutOptions::new().with_lease(granted)),
                    )
                    .await
                    .map_err(etcd_err("put"))?;
                // The key now hangs on the new lease; its old one holds nothing any more.
                let old = leases.lock().await.insert(key, granted);
                if let Some(old) = old {
                    let _ = client.lease_revoke(old).await;
                }
                Ok(())
            }
            Store::Redis { client, key } => {
                let mut conn = client
                    .get_multiplexed_async_connection()
                    .await
                    .map_err(redis_err("connect"))?;
                let expiry = now_unix_ms() + u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
                let value = format!("{} {expiry}", member.admin_port);
                let () = conn
                    .hset(key, &member.rpc_address, value)
                    .await
                    .map_err(redis_err("HSET"))?;
                // The hash itself goes once no master has announced for ten TTLs.
                let keep_ms = i64::try_from(ttl.as_millis() * 10).unwrap_or(i64::MAX);
                let _: bool = conn
                    .pexpire(key, keep_ms)
                    .await
                    .map_err(redis_err("PEXPIRE"))?;
                Ok(())
            }
        }
    }

    /// The masters whose announcement has not expired, sorted by RPC address.
    pub async fn members(&self) -> Result<Vec<Member>, CoordError> {
        let bounded = tokio::time::timeout(self.op_timeout, self.members_now());
        bounded.await.unwrap_or(Err(CoordError::Timeout {
            op: "list masters",
            after: self.op_timeout,
        }))
    }

    async fn members_now(&self) -> Result<Vec<Member>, CoordError> {
        let mut members = match &self.store {
            Store::Etcd { client, prefix, .. } => {
                let resp = Client::clone(client)
                    .get(prefix.as_str(), Some(GetOptions::new().with_prefix()))
                    .await
                    .map_err(etcd_err("get"))?;
                resp.kvs()
                    .iter()
                    .filter_map(|kv| {
                        let rpc_address = kv.key_str().ok()?.strip_prefix(prefix.as_str())?;
                        Some(Member {
                            rpc_address: rpc_address.to_string(),
                            admin_port: kv.value_str().ok()?.parse().ok()?,
                        })
                    })
                    .collect::<Vec<_>>()
            }
            Store::Redis { client, key } => {
                let mut conn = client
                    .get_multiplexed_async_connection()
                    .await
                    .map_err(redis_err("connect"))?;
                let all: Vec<(String, String)> =
                    conn.hgetall(key).await.map_err(redis_err("HGETALL"))?;
                let now = now_unix_ms();
                let mut live = Vec::new();
                for (rpc_address, value) in all {
                    match parse_redis_entry(&value) {
                        Some((admin_port, expiry)) if expiry > now => live.push(Member {
                            rpc_address,
                            admin_port,
                        }),
                        _ => {
                            let _: redis::RedisResult<i64> = conn.hdel(key, &rpc_address).await;
                        }
                    }
                }
                live
            }
        };
        members.sort_by(|a, b| a.rpc_address.cmp(&b.rpc_address));
        Ok(members)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_entries_parse_or_are_dropped() {
        assert_eq!(
            parse_redis_entry("9003 1700000000000"),
            Some((9003, 1_700_000_000_000))
        );
        assert_eq!(parse_redis_entry("9003"), None);
        assert_eq!(parse_redis_entry("x 1"), None);
        assert_eq!(parse_redis_entry("70000 1"), None);
    }

    #[test]
    fn keys_are_per_cluster() {
        assert_eq!(
            keys::etcd_masters_prefix("c1"),
            "mooncake-store/c1/masters/"
        );
        assert_eq!(
            keys::RedisKeys::new("c1").masters,
            "mooncake-store/{c1}/masters"
        );
    }
}
