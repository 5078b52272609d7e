//! The Redis elector: Mooncake's view hash, created, extended and deleted by Lua scripts.
//!
//! Acquire creates the hash only if absent (the scripted equivalent of `SET NX PX`, kept as a
//! hash so Mooncake can read it), takes the version from `INCR` on the counter key in the
//! same script, sets `PEXPIRE` and publishes on the change channel. Renew extends `PEXPIRE`
//! only if `owner_token` is this term's; release deletes only if it is. Scripts run atomically
//! on the server, so no other client's write interleaves with a check and its action.

use std::time::Duration;

use futures_util::StreamExt as _;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Script, Value};
use tokio::sync::Mutex;

use super::{Acquire, ElectionConfig, Elector, Term};
use crate::keys::{self, RedisKeys};
use crate::{CoordError, MasterView, RedisTarget};

/// KEYS: view, counter. ARGV: leader, ttl ms, owner token, version floor, channel.
/// Returns {1, version} when created, {0, leader, version, owner} when held.
const ACQUIRE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then
  local v = redis.call('HMGET', KEYS[1], 'leader_address', 'view_version', 'owner_token')
  return {0, v[1] or '', v[2] or '', v[3] or ''}
end
local current = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
local floor = tonumber(ARGV[4]) or 0
if current < floor then
  redis.call('SET', KEYS[2], ARGV[4])
end
local version = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], 'leader_address', ARGV[1], 'view_version', tostring(version),
  'owner_token', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PUBLISH', ARGV[5], tostring(version))
return {1, version}
";

/// KEYS: view. ARGV: owner token, ttl ms. Returns 1 when extended, 0 when not ours.
const RENEW: &str = r"
if redis.call('HGET', KEYS[1], 'owner_token') == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
";

/// KEYS: view. ARGV: owner token, channel. Returns 1 when deleted, 0 when not ours.
const RELEASE: &str = r"
if redis.call('HGET', KEYS[1], 'owner_token') == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], '')
  return 1
end
return 0
";

/// Elects on one Redis server with the async `redis` API.
pub struct RedisElector {
    client: redis::Client,
    keys: RedisKeys,
    config: ElectionConfig,
    conn: Mutex<Option<MultiplexedConnection>>,
    acquire: Script,
    renew: Script,
    release: Script,
}

fn redis_err(op: &'static str) -> impl FnOnce(redis::RedisError) -> CoordError {
    move |source| CoordError::Redis { op, source }
}

impl RedisElector {
    /// Builds the elector for `cluster_id` on `target` (credentials as given; see
    /// [`RedisTarget::with_env`]). Connects on first use.
    pub fn new(
        target: &RedisTarget,
        cluster_id: &str,
        config: ElectionConfig,
    ) -> Result<Self, CoordError> {
        config.validate()?;
        let client = redis::Client::open(target.connection_info()).map_err(redis_err("open"))?;
        Ok(Self {
            client,
            keys: RedisKeys::new(cluster_id),
            config,
            conn: Mutex::new(None),
            acquire: Script::new(ACQUIRE),
            renew: Script::new(RENEW),
            release: Script::new(RELEASE),
        })
    }

    /// The keys this elector uses.
    pub fn keys(&self) -> &RedisKeys {
        &self.keys
    }

    fn ttl_ms(&self) -> u64 {
        u64::try_from(self.config.ttl.as_millis()).unwrap_or(u64::MAX)
    }

    /// The shared connection, opened if needed.
    async fn conn(&self) -> Result<MultiplexedConnection, CoordError> {
        let mut slot = self.conn.lock().await;
        if let Some(conn) = slot.as_ref() {
            return Ok(conn.clone());
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.config.op_timeout))
            .set_response_timeout(Some(self.config.op_timeout));
        let conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(redis_err("connect"))?;
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// Runs `f` on the connection; a failure drops it so the next call reconnects (a
    /// multiplexed connection whose socket died keeps failing).
    async fn with_conn<T, F, Fut>(&self, op: &'static str, f: F) -> Result<T, CoordError>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let conn = self.conn().await?;
        match f(conn).await {
            Ok(v) => Ok(v),
            Err(source) => {
                if source.is_io_error() || source.is_connection_dropped() || source.is_timeout() {
                    *self.conn.lock().await = None;
                }
                Err(CoordError::Redis { op, source })
            }
        }
    }

    fn parse_acquire(
        &self,
        leader: &str,
        token: String,
        reply: Vec<Value>,
    ) -> Result<Acquire, CoordError> {
        let bad = |reason: &str| CoordError::BadView {
            key: self.keys.view.clone(),
            reason: format!("acquire script answered {reason}"),
        };
        let text = |v: &Value| -> Option<String> {
            let s: String = redis::from_redis_value_ref(v).ok()?;
            (!s.is_empty()).then_some(s)
        };
        let code: i64 = reply
            .first()
            .and_then(|v| redis::from_redis_value_ref(v).ok())
            .ok_or_else(|| bad("no status"))?;
        match (code, reply.len()) {
            (1, 2) => {
                let version: u64 =
                    redis::from_redis_value_ref(&reply[1]).map_err(|_| bad("a bad version"))?;
                Ok(Acquire::Won(Term {
                    view: MasterView {
                        leader: leader.to_string(),
                        version,
                    },
                    token,
                    ttl: self.config.ttl,
                }))
            }
            (0, 4) => {
                let view = keys::parse_redis_view(
                    &self.keys.view,
                    text(&reply[1]),
                    text(&reply[2]),
                    text(&reply[3]),
                )?;
                Ok(Acquire::Held(view))
            }
            _ => Err(bad("an unexpected shape")),
        }
    }
}

impl Elector for RedisElector {
    fn config(&self) -> &ElectionConfig {
        &self.config
    }

    async fn try_acquire(&self, leader: &str, min_version: u64) -> Result<Acquire, CoordError> {
        let token = uuid::Uuid::new_v4().to_string();
        let mut call = self.acquire.prepare_invoke();
        call.key(&self.keys.view)
            .key(&self.keys.version)
            .arg(leader)
            .arg(self.ttl_ms())
            .arg(&token)
            .arg(min_version)
            .arg(&self.keys.channel);
        let reply: Vec<Value> = self
            .with_conn("acquire script", |mut c| async move {
                call.invoke_async(&mut c).await
            })
            .await?;
        self.parse_acquire(leader, token, reply)
    }

    async fn renew(&self, term: &Term) -> Result<Option<Duration>, CoordError> {
        let mut call = self.renew.prepare_invoke();
        call.key(&self.keys.view)
            .arg(&term.token)
            .arg(self.ttl_ms());
        let extended: i64 = self
            .with_conn("renew script", |mut c| async move {
                call.invoke_async(&mut c).await
            })
            .await?;
        Ok((extended == 1).then_some(self.config.ttl))
    }

    async fn release(&self, term: &Term) -> Result<bool, CoordError> {
        let mut call = self.release.prepare_invoke();
        call.key(&self.keys.view)
            .arg(&term.token)
            .arg(&self.keys.channel);
        let deleted: i64 = self
            .with_conn("release script", |mut c| async move {
                call.invoke_async(&mut c).await
            })
            .await?;
        Ok(deleted == 1)
    }

    async fn read_view(&self) -> Result<Option<MasterView>, CoordError> {
        let keys = &self.keys;
        let (leader, version, owner): (Option<String>, Option<String>, Option<String>) = self
            .with_conn("HMGET master view", |mut c| async move {
                redis::cmd("HMGET")
                    .arg(&keys.view)
                    .arg(keys::FIELD_LEADER_ADDRESS)
                    .arg(keys::FIELD_VIEW_VERSION)
                    .arg(keys::FIELD_OWNER_TOKEN)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        keys::parse_redis_view(&keys.view, leader, version, owner)
    }

    /// Subscribes to the change channel, then polls every TTL / 10 as well: an expiry
    /// publishes nothing (keyspace notifications are off by default).
    async fn wait_for_change(
        &self,
        known: Option<&MasterView>,
        timeout: Duration,
    ) -> Result<Option<MasterView>, CoordError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut pubsub =
            tokio::time::timeout(self.config.op_timeout, self.client.get_async_pubsub())
                .await
                .map_err(|_| CoordError::Timeout {
                    op: "redis subscribe",
                    after: self.config.op_timeout,
                })?
                .map_err(redis_err("connect for SUBSCRIBE"))?;
        pubsub
            .subscribe(&self.keys.channel)
            .await
            .map_err(redis_err("SUBSCRIBE"))?;
        let mut messages = Box::pin(pubsub.into_on_message());
        let poll = (self.config.ttl / 10).max(Duration::from_millis(50));
        let known_version = known.map(|v| v.version);
        loop {
            let view = self.read_view().await?;
            if view.as_ref().map(|v| v.version) != known_version
                || tokio::time::Instant::now() >= deadline
            {
                return Ok(view);
            }
            tokio::select! {
                msg = messages.next() => if msg.is_none() {
                    return Err(CoordError::Redis {
                        op: "SUBSCRIBE",
                        source: redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset)),
                    });
                },
                _ = tokio::time::sleep(poll) => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
    }
}
